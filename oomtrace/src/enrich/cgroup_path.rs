//! cgroup path -> workload: the container, pod or systemd unit a cgroup path
//! belongs to, from the path alone (no I/O, never an error).
//!
//! The Kubernetes part is found anywhere in the path, so kind/nested prefixes
//! and cgroup-namespace `..` components don't matter. Both kubelet drivers are
//! read: cgroupfs (`/kubepods[/<qos>]/pod<uid>/<id>`) and systemd
//! (`...kubepods[-<qos>]-pod<uid_>.slice/<runtime>-<id>.scope`, with any
//! `<prefix>-` before `kubepods` as in kind, or the unconverted cgroupsPath
//! component `<slice>:<runtime>:<id>`); so are standalone docker and podman.
//! Sub-cgroups of a container (CRI-O's `crio-<id>.scope/container`) are that
//! container. Outside containers, a path whose innermost component is a unit
//! (`.service`, `.scope`, `.slice`) is that unit: user sessions
//! (`user-1000.slice/session-3.scope`) too are [`Workload::SystemService`]s,
//! named by the innermost unit.

use std::borrow::Cow;

use crate::event::{Qos, Runtime};

/// What a cgroup path belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// A container (runtime, id), inside a Kubernetes pod when `pod_uid` is
    /// `Some`. `qos` is `None` outside pods and when the path doesn't show the
    /// QoS level; `conmon` marks a CRI-O/podman conmon monitor cgroup.
    Container { runtime: Runtime, container_id: String, pod_uid: Option<String>, qos: Option<Qos>, conmon: bool },
    /// A pod-level cgroup with no container (e.g. the pod's own limit).
    Pod { pod_uid: String, qos: Qos },
    /// A systemd unit outside Kubernetes, e.g. `system.slice/ssh.service` ->
    /// unit `ssh.service`.
    SystemService { unit: String },
    /// The root cgroup (`/` or empty).
    HostRoot,
    /// Anything else; the caller keeps the raw path.
    Unknown,
}

impl Workload {
    /// The 64-hex container id, for containers.
    pub fn container_id(&self) -> Option<&str> {
        match self {
            Self::Container { container_id, .. } => Some(container_id),
            _ => None,
        }
    }

    /// The pod uid (dashed form), for pods and containers in pods.
    pub fn pod_uid(&self) -> Option<&str> {
        match self {
            Self::Container { pod_uid, .. } => pod_uid.as_deref(),
            Self::Pod { pod_uid, .. } => Some(pod_uid),
            _ => None,
        }
    }

    /// The pod's QoS class, when the path shows it.
    pub fn qos(&self) -> Option<Qos> {
        match self {
            Self::Container { qos, .. } => *qos,
            Self::Pod { qos, .. } => Some(*qos),
            _ => None,
        }
    }

    /// The container runtime; `Runtime::Unknown` for anything not a container.
    pub fn runtime(&self) -> Runtime {
        match self {
            Self::Container { runtime, .. } => *runtime,
            _ => Runtime::Unknown,
        }
    }
}

/// Classifies a cgroup path (v1 or v2, relative to the hierarchy root).
pub fn parse(path: &str) -> Workload {
    let components = split_components(path);
    if components.is_empty() {
        return Workload::HostRoot;
    }
    if let Some(workload) = find_pod(&components) {
        return workload;
    }
    let standalone = components.iter().enumerate().find_map(|(i, component)| {
        let parent = i.checked_sub(1).map(|p| components[p].as_ref());
        container_component(component, parent)
    });
    if let Some(container) = standalone {
        return container.into_workload(None, None);
    }
    match components.last() {
        Some(last) if is_unit_name(last) && !components.iter().any(|c| c.contains("kubepods")) => {
            Workload::SystemService { unit: last.to_string() }
        }
        _ => Workload::Unknown,
    }
}

/// The cgroup path to classify from the contents of `/proc/<pid>/cgroup`: the
/// memory controller's path on v1 (preferred on hybrid systems), else the v2
/// (`0::`) path. `None` when neither is present.
pub fn parse_proc_cgroup(contents: &str) -> Option<String> {
    let mut unified = None;
    for line in contents.lines() {
        // hierarchy-id:controller-list:path; the path itself may hold ':'.
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(path.to_string());
        }
        if id == "0" && controllers.is_empty() && unified.is_none() {
            unified = Some(path.to_string());
        }
    }
    unified
}

/// Path components without empty, `.` and `..` (cgroup-namespace) parts; a
/// `<slice>:<prefix>:<name>` component becomes `<slice>`, `<prefix>-<name>`.
fn split_components(path: &str) -> Vec<Cow<'_, str>> {
    let mut components = Vec::new();
    for part in path.trim().split('/').filter(|p| !p.is_empty() && *p != "." && *p != "..") {
        let fields: Vec<&str> = part.split(':').collect();
        match fields.as_slice() {
            [slice, prefix, name] if !slice.is_empty() && !prefix.is_empty() && !name.is_empty() => {
                components.push(Cow::Borrowed(*slice));
                components.push(Cow::Owned(format!("{prefix}-{name}")));
            }
            _ => components.push(Cow::Borrowed(part)),
        }
    }
    components
}

/// Finds the first pod cgroup and classifies the path from there: the pod
/// itself, or the container in the component right after it.
fn find_pod(components: &[Cow<'_, str>]) -> Option<Workload> {
    let (index, pod_uid, qos) = components.iter().enumerate().find_map(|(i, component)| {
        let parent = i.checked_sub(1).map(|p| components[p].as_ref());
        pod_component(component, parent).map(|(uid, qos)| (i, uid, qos))
    })?;
    let Some(next) = components.get(index + 1) else {
        return Some(qos.map_or(Workload::Unknown, |qos| Workload::Pod { pod_uid, qos }));
    };
    Some(match container_component(next, None) {
        Some(container) => container.into_workload(Some(pod_uid), qos),
        None => Workload::Unknown,
    })
}

/// A pod cgroup (cgroupfs `pod<uid>` or systemd `...kubepods[-<qos>]-pod<uid>.slice`)
/// -> (dashed uid, QoS if known).
fn pod_component(component: &str, parent: Option<&str>) -> Option<(String, Option<Qos>)> {
    if let Some(slice) = component.strip_suffix(".slice") {
        let (before, rest) = slice.split_once("kubepods-")?;
        if !before.is_empty() && !before.ends_with('-') {
            return None;
        }
        let (qos, uid) = match rest.split_once("-pod") {
            Some(("burstable", uid)) => (Qos::Burstable, uid),
            Some(("besteffort", uid)) => (Qos::BestEffort, uid),
            _ => (Qos::Guaranteed, rest.strip_prefix("pod")?),
        };
        return normalize_pod_uid(uid).map(|uid| (uid, Some(qos)));
    }
    let uid = normalize_pod_uid(component.strip_prefix("pod")?)?;
    let qos = match parent {
        Some("kubepods") => Some(Qos::Guaranteed),
        Some("burstable") => Some(Qos::Burstable),
        Some("besteffort") => Some(Qos::BestEffort),
        _ => None,
    };
    Some((uid, qos))
}

/// A pod uid in dashed form: a UUID written with `-` or `_` (systemd driver),
/// or the 32-hex md5 uid kubelet gives static pods.
fn normalize_pod_uid(raw: &str) -> Option<String> {
    let uid = raw.replace('_', "-");
    let groups: Vec<&str> = uid.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let shaped = lengths == [8, 4, 4, 4, 12] || lengths == [32];
    (shaped && groups.iter().all(|g| is_lower_hex(g))).then_some(uid)
}

/// Container-naming prefixes of scope/cgroup names: (prefix, runtime, conmon).
/// Longer prefixes come before the prefixes they extend.
const CONTAINER_PREFIXES: &[(&str, Runtime, bool)] = &[
    ("cri-containerd-", Runtime::Containerd, false),
    ("crio-conmon-", Runtime::Crio, true),
    ("crio-", Runtime::Crio, false),
    ("docker-", Runtime::Docker, false),
    ("libpod-conmon-", Runtime::Podman, true),
    ("libpod-", Runtime::Podman, false),
];

/// A container named by one path component.
struct ContainerRef {
    runtime: Runtime,
    id: String,
    conmon: bool,
}

impl ContainerRef {
    fn into_workload(self, pod_uid: Option<String>, qos: Option<Qos>) -> Workload {
        let Self { runtime, id, conmon } = self;
        Workload::Container { runtime, container_id: id, pod_uid, qos, conmon }
    }
}

/// A container cgroup: `<prefix><id>[.scope]`, or a bare 64-hex id (docker's
/// when the parent is `docker`, else of an unknown runtime).
fn container_component(component: &str, parent: Option<&str>) -> Option<ContainerRef> {
    if is_container_id(component) {
        let runtime = if parent == Some("docker") { Runtime::Docker } else { Runtime::Unknown };
        return Some(ContainerRef { runtime, id: component.to_string(), conmon: false });
    }
    let name = component.strip_suffix(".scope").unwrap_or(component);
    CONTAINER_PREFIXES.iter().find_map(|&(prefix, runtime, conmon)| {
        let id = name.strip_prefix(prefix).filter(|id| is_container_id(id))?;
        Some(ContainerRef { runtime, id: id.to_string(), conmon })
    })
}

/// A container id: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A systemd unit name of a kind that owns a cgroup.
fn is_unit_name(component: &str) -> bool {
    [".service", ".scope", ".slice"]
        .iter()
        .any(|suffix| component.strip_suffix(suffix).is_some_and(|stem| !stem.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Qos::*;
    use Runtime as R;

    const ID: &str = "4f1b9e0c3a5d7f2e8b6c1a0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f";
    const UID: &str = "0b8c1a9e-1111-4222-8333-944455556666";
    const UID_: &str = "0b8c1a9e_1111_4222_8333_944455556666";

    const BURSTABLE: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice";
    const BESTEFFORT: &str = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_>.slice";

    /// Expands the placeholders of a test path: `<id>`, `<uid>`, `<uid_>`
    /// (systemd's underscored uid) and the systemd driver's pod slices.
    fn path(template: &str) -> String {
        template
            .replace("<burstable>", BURSTABLE)
            .replace("<besteffort>", BESTEFFORT)
            .replace("<guaranteed>", "/kubepods.slice/kubepods-pod<uid_>.slice")
            .replace("<uid_>", UID_)
            .replace("<uid>", UID)
            .replace("<id>", ID)
    }

    /// The test container outside any pod.
    fn alone(runtime: Runtime) -> Workload {
        ContainerRef { runtime, id: ID.into(), conmon: false }.into_workload(None, None)
    }

    /// The test container in the test pod.
    fn in_pod(runtime: Runtime, qos: Qos) -> Workload {
        let container = ContainerRef { runtime, id: ID.into(), conmon: false };
        container.into_workload(Some(UID.into()), Some(qos))
    }

    fn conmon(mut workload: Workload) -> Workload {
        if let Workload::Container { conmon, .. } = &mut workload {
            *conmon = true;
        }
        workload
    }

    fn pod(qos: Qos) -> Workload {
        Workload::Pod { pod_uid: UID.into(), qos }
    }

    fn unit(name: &str) -> Workload {
        Workload::SystemService { unit: name.into() }
    }

    fn check(cases: &[(&str, Workload)]) {
        for (template, want) in cases {
            assert_eq!(&parse(&path(template)), want, "{template}");
        }
    }

    #[test]
    fn cgroupfs_driver() {
        check(&[
            ("/kubepods/burstable/pod<uid>/<id>", in_pod(R::Unknown, Burstable)),
            ("/kubepods/besteffort/pod<uid>/<id>", in_pod(R::Unknown, BestEffort)),
            ("/kubepods/pod<uid>/<id>", in_pod(R::Unknown, Guaranteed)),
            ("/kubepods/burstable/pod<uid>", pod(Burstable)),
            ("/kubepods/besteffort/pod<uid>/", pod(BestEffort)),
            ("/kubepods/pod<uid>", pod(Guaranteed)),
        ]);
        // Static pods have a 32-hex md5 uid, in both drivers.
        let uid = "6a1b2c3d4e5f60718293a4b5c6d7e8f9";
        let want = Workload::Pod { pod_uid: uid.into(), qos: Burstable };
        assert_eq!(parse(&format!("/kubepods/burstable/pod{uid}")), want);
        assert_eq!(parse(&path("<burstable>").replace(UID_, uid)), want);
    }

    #[test]
    fn systemd_driver() {
        check(&[
            ("<burstable>/cri-containerd-<id>.scope", in_pod(R::Containerd, Burstable)),
            ("<burstable>/crio-<id>.scope", in_pod(R::Crio, Burstable)),
            ("<burstable>/crio-<id>.scope/container", in_pod(R::Crio, Burstable)),
            ("<burstable>/crio-conmon-<id>.scope", conmon(in_pod(R::Crio, Burstable))),
            ("<burstable>/docker-<id>.scope", in_pod(R::Docker, Burstable)),
            ("<guaranteed>/cri-containerd-<id>.scope", in_pod(R::Containerd, Guaranteed)),
            ("<besteffort>/cri-containerd-<id>.scope", in_pod(R::Containerd, BestEffort)),
            ("<burstable>", pod(Burstable)),
            ("<guaranteed>", pod(Guaranteed)),
            ("<besteffort>", pod(BestEffort)),
            ("/kubepods.slice/kubepods-pod<uid>.slice", pod(Guaranteed)), // dashed uid
            // containerd's cgroupsPath form, as one component.
            ("kubepods-burstable-pod<uid_>.slice:cri-containerd:<id>", in_pod(R::Containerd, Burstable)),
            ("/kubepods.slice/kubepods-pod<uid_>.slice:crio:<id>", in_pod(R::Crio, Guaranteed)),
        ]);
    }

    #[test]
    fn standalone_docker_and_podman() {
        check(&[
            ("/docker/<id>", alone(R::Docker)),
            ("/system.slice/docker-<id>.scope", alone(R::Docker)),
            ("/machine.slice/libpod-<id>.scope", alone(R::Podman)),
            ("/machine.slice/libpod-<id>.scope/container", alone(R::Podman)),
            ("/libpod_parent/libpod-<id>", alone(R::Podman)),
            ("/machine.slice/libpod-conmon-<id>.scope", conmon(alone(R::Podman))),
            ("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-<id>.scope", alone(R::Podman)),
        ]);
    }

    #[test]
    fn kind_and_namespaced_prefixes() {
        let kind = "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/\
                    kubelet-kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope";
        // A kind node seen from the host: the pod wins over the node's docker scope.
        let node = format!("/system.slice/docker-{}.scope{kind}", "1".repeat(64));
        let unconverted = "/system.slice/containerd.service/kubepods-pod<uid_>.slice:cri-containerd:<id>";
        let no_qos = ContainerRef { runtime: R::Unknown, id: ID.into(), conmon: false };
        check(&[
            (kind, in_pod(R::Containerd, Burstable)),
            (&node, in_pod(R::Containerd, Burstable)),
            (unconverted, in_pod(R::Containerd, Guaranteed)),
            ("/kubelet/kubepods/besteffort/pod<uid>/<id>", in_pod(R::Unknown, BestEffort)),
            ("/../../kubepods/pod<uid>/<id>", in_pod(R::Unknown, Guaranteed)),
            ("/../<id>", alone(R::Unknown)),
            // Rooted below the QoS level: the pod is visible, its QoS is not.
            ("/../pod<uid>/<id>", no_qos.into_workload(Some(UID.into()), None)),
            ("/../pod<uid>", Workload::Unknown),
        ]);
    }

    #[test]
    fn systemd_units_and_root() {
        check(&[
            ("/system.slice/containerd.service", unit("containerd.service")),
            ("/system.slice/ssh.service\n", unit("ssh.service")),
            ("/user.slice/user-1000.slice/session-3.scope", unit("session-3.scope")),
            ("/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope", unit("x.scope")),
            ("/init.scope", unit("init.scope")),
            ("/system.slice", unit("system.slice")),
            ("/", Workload::HostRoot),
            ("", Workload::HostRoot),
        ]);
    }

    #[test]
    fn unrecognised_is_unknown() {
        let upper_id = format!("/kubepods/pod<uid>/{}", ID.to_uppercase());
        let short_id = format!("/kubepods/pod<uid>/{}", &ID[..63]);
        let upper_uid = format!("/kubepods/pod{}", UID.to_uppercase());
        for template in [
            "/my/random/group",
            "/kubepods/burstable/podNOTAUID/xyz",
            "/kubepods/burstable/pod<uid>/xyz",
            &upper_id,
            &short_id,
            &upper_uid,
            "/kubepods",
            "/kubepods.slice/kubepods-burstable.slice",
            "/docker",
            ".service",
        ] {
            assert_eq!(parse(&path(template)), Workload::Unknown, "{template}");
        }
    }

    #[test]
    fn proc_cgroup_contents() {
        let v1 = path("12:pids:/kubepods/pod<uid>/<id>\n7:memory:/kubepods/pod<uid>/<id>\n1:name=x:/");
        assert_eq!(parse_proc_cgroup(&v1), Some(path("/kubepods/pod<uid>/<id>")));
        assert_eq!(parse_proc_cgroup("0::/init.scope\n"), Some("/init.scope".into()));
        let hybrid = "0::/user.slice\n4:cpu,memory:/kubepods/x\n1:name=systemd:/user.slice\n";
        assert_eq!(parse_proc_cgroup(hybrid), Some("/kubepods/x".into()));
        // A path holding ':' is kept whole.
        let colons = path("0::/<guaranteed>:cri-containerd:<id>");
        let found = parse_proc_cgroup(&colons).unwrap_or_default();
        assert_eq!(parse(&found), in_pod(R::Containerd, Guaranteed));
        assert_eq!(parse_proc_cgroup("1:name=systemd:/init.scope\ngarbage\n"), None);
        assert_eq!(parse_proc_cgroup(""), None);
    }

    #[test]
    fn helpers_and_serialization() {
        let c = conmon(in_pod(R::Crio, BestEffort));
        assert_eq!((c.container_id(), c.pod_uid()), (Some(ID), Some(UID)));
        assert_eq!((c.qos(), c.runtime()), (Some(BestEffort), R::Crio));
        let p = pod(Guaranteed);
        assert_eq!((p.container_id(), p.pod_uid()), (None, Some(UID)));
        assert_eq!((p.qos(), p.runtime()), (Some(Guaranteed), R::Unknown));
        let u = unit("ssh.service");
        assert_eq!((u.container_id(), u.pod_uid()), (None, None));
        assert_eq!((u.qos(), u.runtime()), (None, R::Unknown));
        let json = |w: &Workload| serde_json::to_string(w).unwrap_or_default();
        let want = r#"{"container":{"runtime":"crio","container_id":"<id>","pod_uid":"<uid>","qos":"besteffort","conmon":true}}"#;
        assert_eq!(json(&c), path(want));
        assert_eq!(json(&Workload::HostRoot), r#""host_root""#);
        assert_eq!(json(&u), r#"{"system_service":{"unit":"ssh.service"}}"#);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let long = format!("/kubepods{}", "/burstable".repeat(50_000));
        let unicode = format!("/kubepods/pod{}/{}", "é".repeat(40), "日本".repeat(32));
        let near = format!("/kubepods-pod{}é.slice/crio-{ID}\u{0}.scope", &UID_[..35]);
        let fixed = [long, ":".repeat(10_000), unicode, near, "/../..".into(), "a:b:c".into()];
        // Plus pseudo-random byte strings (fixed-seed xorshift), decoded lossily.
        let alphabet = b"/:-_.podkubesliceburstable0123456789abcdef\xff\xc3";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let random = (0..2_000).map(|_| {
            let len = next() % 300;
            let bytes: Vec<u8> = (0..len).map(|_| alphabet[next() as usize % alphabet.len()]).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        });
        for input in fixed.into_iter().chain(random) {
            let _ = parse(&input);
            let _ = parse_proc_cgroup(&input);
        }
    }
}
