//! cgroup path -> workload: which container, pod or systemd unit a cgroup
//! belongs to, from the path alone (no I/O, never an error).
//!
//! Recognised layouts (the Kubernetes part is found anywhere in the path, so
//! kind/nested prefixes and cgroup-namespace `..` components don't matter):
//! - kubelet cgroupfs driver: `/kubepods[/burstable|/besteffort]/pod<uid>[/<id>]`
//!   (guaranteed pods sit directly under `kubepods`);
//! - kubelet systemd driver: `kubepods[-<qos>]-pod<uid_with_underscores>.slice`
//!   followed by `cri-containerd-<id>.scope`, `crio-<id>.scope`,
//!   `crio-conmon-<id>.scope` or `docker-<id>.scope`, with any `<prefix>-`
//!   before `kubepods` (kind: `kubelet-kubepods-...`), and the unconverted
//!   cgroupsPath form `<slice>:<prefix>:<id>` as one component;
//! - standalone docker (`/docker/<id>`, `docker-<id>.scope`) and podman
//!   (`libpod-<id>[.scope]`, `libpod-conmon-<id>.scope`);
//! - systemd units: the innermost component is a unit name (`.service`,
//!   `.scope`, `.slice`); user sessions (`user-1000.slice/session-3.scope`)
//!   are reported the same way, as a [`Workload::SystemService`] named after
//!   the innermost unit.
//!
//! Sub-cgroups below a container (CRI-O's `crio-<id>.scope/container`) belong
//! to that container. Paths are read as seen from the host's cgroup
//! namespace: `/` is the host root even if a reader inside a namespace wrote it.

use std::borrow::Cow;

/// Container runtime, as far as the cgroup path tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Containerd,
    Crio,
    Docker,
    Podman,
    /// The path names a container but not its runtime (cgroupfs driver).
    Unknown,
}

/// Kubernetes pod QoS class, from the pod's place under `kubepods`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    Guaranteed,
    Burstable,
    /// Serialized as `"besteffort"`, the spelling in cgroup paths.
    BestEffort,
}

/// What a cgroup path belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// A container (runtime, id), inside a Kubernetes pod when `pod_uid` is
    /// `Some`. `qos` is `None` outside pods and when the path doesn't show the
    /// QoS level; `conmon` marks a CRI-O/podman conmon monitor cgroup.
    Container {
        runtime: Runtime,
        container_id: String,
        pod_uid: Option<String>,
        qos: Option<Qos>,
        conmon: bool,
    },
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
    if let Some((runtime, container_id, conmon)) = standalone {
        return Workload::Container {
            runtime,
            container_id,
            pod_uid: None,
            qos: None,
            conmon,
        };
    }
    match components.last() {
        Some(last) if is_unit_name(last) && !components.iter().any(|c| c.contains("kubepods")) => {
            Workload::SystemService {
                unit: last.to_string(),
            }
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
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
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
    for part in path
        .trim()
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        let fields: Vec<&str> = part.split(':').collect();
        match fields.as_slice() {
            [slice, prefix, name]
                if !slice.is_empty() && !prefix.is_empty() && !name.is_empty() =>
            {
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
        Some((runtime, container_id, conmon)) => Workload::Container {
            runtime,
            container_id,
            pod_uid: Some(pod_uid),
            qos,
            conmon,
        },
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
    let valid =
        (lengths == [8, 4, 4, 4, 12] || lengths == [32]) && groups.iter().all(|g| is_lower_hex(g));
    valid.then_some(uid)
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

/// A container cgroup -> (runtime, id, conmon): `<prefix><id>[.scope]`, or a
/// bare 64-hex id (docker's when the parent is `docker`).
fn container_component(component: &str, parent: Option<&str>) -> Option<(Runtime, String, bool)> {
    if is_container_id(component) {
        let runtime = if parent == Some("docker") {
            Runtime::Docker
        } else {
            Runtime::Unknown
        };
        return Some((runtime, component.to_string(), false));
    }
    let name = component.strip_suffix(".scope").unwrap_or(component);
    CONTAINER_PREFIXES
        .iter()
        .find_map(|(prefix, runtime, conmon)| {
            let id = name.strip_prefix(prefix)?;
            is_container_id(id).then(|| (*runtime, id.to_string(), *conmon))
        })
}

/// A container id: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A systemd unit name of a kind that owns a cgroup.
fn is_unit_name(component: &str) -> bool {
    [".service", ".scope", ".slice"].iter().any(|suffix| {
        component
            .strip_suffix(suffix)
            .is_some_and(|stem| !stem.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1b9e0c3a5d7f2e8b6c1a0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f";
    const UID: &str = "0b8c1a9e-1111-4222-8333-944455556666";
    const UID_: &str = "0b8c1a9e_1111_4222_8333_944455556666";

    fn container(runtime: Runtime, qos: Option<Qos>, conmon: bool) -> Workload {
        let pod_uid = qos.map(|_| UID.to_string());
        Workload::Container {
            runtime,
            container_id: ID.to_string(),
            pod_uid,
            qos,
            conmon,
        }
    }

    fn pod(qos: Qos) -> Workload {
        Workload::Pod {
            pod_uid: UID.to_string(),
            qos,
        }
    }

    fn unit(name: &str) -> Workload {
        Workload::SystemService {
            unit: name.to_string(),
        }
    }

    #[test]
    fn cgroupfs_driver() {
        use Qos::*;
        let c = |qos| container(Runtime::Unknown, Some(qos), false);
        assert_eq!(
            parse(&format!("/kubepods/burstable/pod{UID}/{ID}")),
            c(Burstable)
        );
        assert_eq!(
            parse(&format!("/kubepods/besteffort/pod{UID}/{ID}")),
            c(BestEffort)
        );
        assert_eq!(parse(&format!("/kubepods/pod{UID}/{ID}")), c(Guaranteed));
        assert_eq!(
            parse(&format!("/kubepods/burstable/pod{UID}")),
            pod(Burstable)
        );
        assert_eq!(
            parse(&format!("/kubepods/besteffort/pod{UID}/")),
            pod(BestEffort)
        );
        assert_eq!(parse(&format!("/kubepods/pod{UID}")), pod(Guaranteed));
    }

    #[test]
    fn systemd_driver() {
        use Qos::*;
        let burstable =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice");
        let containerd = Some((Runtime::Containerd, ID.to_string(), false));
        assert_eq!(
            container_component(&format!("cri-containerd-{ID}.scope"), None),
            containerd
        );
        for (leaf, runtime, conmon) in [
            (
                format!("cri-containerd-{ID}.scope"),
                Runtime::Containerd,
                false,
            ),
            (format!("crio-{ID}.scope"), Runtime::Crio, false),
            (format!("crio-{ID}.scope/container"), Runtime::Crio, false),
            (format!("crio-conmon-{ID}.scope"), Runtime::Crio, true),
            (format!("docker-{ID}.scope"), Runtime::Docker, false),
        ] {
            assert_eq!(
                parse(&format!("{burstable}/{leaf}")),
                container(runtime, Some(Burstable), conmon),
                "{leaf}"
            );
        }
        let guaranteed = format!("/kubepods.slice/kubepods-pod{UID_}.slice");
        let c = |qos| container(Runtime::Containerd, Some(qos), false);
        assert_eq!(
            parse(&format!("{guaranteed}/cri-containerd-{ID}.scope")),
            c(Guaranteed)
        );
        let besteffort = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice"
        );
        assert_eq!(
            parse(&format!("{besteffort}/cri-containerd-{ID}.scope")),
            c(BestEffort)
        );
        assert_eq!(parse(&burstable), pod(Burstable));
        assert_eq!(parse(&guaranteed), pod(Guaranteed));
        assert_eq!(parse(&besteffort), pod(BestEffort));
        // Dashed uids in a slice name are accepted too.
        assert_eq!(
            parse(&format!("/kubepods.slice/kubepods-pod{UID}.slice")),
            pod(Guaranteed)
        );
    }

    #[test]
    fn containerd_cgroups_path_form() {
        let c = container(Runtime::Containerd, Some(Qos::Burstable), false);
        assert_eq!(
            parse(&format!(
                "kubepods-burstable-pod{UID_}.slice:cri-containerd:{ID}"
            )),
            c
        );
        let crio = container(Runtime::Crio, Some(Qos::Guaranteed), false);
        assert_eq!(
            parse(&format!(
                "/kubepods.slice/kubepods-pod{UID_}.slice:crio:{ID}"
            )),
            crio
        );
    }

    #[test]
    fn standalone_docker_and_podman() {
        assert_eq!(
            parse(&format!("/docker/{ID}")),
            container(Runtime::Docker, None, false)
        );
        assert_eq!(
            parse(&format!("/system.slice/docker-{ID}.scope")),
            container(Runtime::Docker, None, false)
        );
        assert_eq!(
            parse(&format!("/machine.slice/libpod-{ID}.scope")),
            container(Runtime::Podman, None, false)
        );
        assert_eq!(
            parse(&format!("/machine.slice/libpod-{ID}.scope/container")),
            container(Runtime::Podman, None, false)
        );
        assert_eq!(
            parse(&format!("/libpod_parent/libpod-{ID}")),
            container(Runtime::Podman, None, false)
        );
        assert_eq!(
            parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            container(Runtime::Podman, None, true)
        );
        let rootless =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
        assert_eq!(parse(&rootless), container(Runtime::Podman, None, false));
    }

    #[test]
    fn kind_and_nested_prefixes() {
        use Qos::*;
        let kind = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/\
             kubelet-kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            parse(&kind),
            container(Runtime::Containerd, Some(Burstable), false)
        );
        // kind node seen from the host: the pod wins over the node's docker scope.
        let node = "/system.slice/docker-1111111111111111111111111111111111111111111111111111111111111111.scope";
        assert_eq!(
            parse(&format!("{node}{kind}")),
            container(Runtime::Containerd, Some(Burstable), false)
        );
        let unconverted = format!(
            "/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{ID}"
        );
        assert_eq!(
            parse(&unconverted),
            container(Runtime::Containerd, Some(Burstable), false)
        );
        assert_eq!(
            parse(&format!("/kubelet/kubepods/besteffort/pod{UID}/{ID}")),
            container(Runtime::Unknown, Some(BestEffort), false)
        );
        assert_eq!(
            parse(&format!("/../../kubepods/pod{UID}/{ID}")),
            container(Runtime::Unknown, Some(Guaranteed), false)
        );
        assert_eq!(
            parse(&format!("/../{ID}")),
            container(Runtime::Unknown, None, false)
        );
        // Below the QoS level only the pod is visible: its QoS is unknown.
        let c = Workload::Container {
            runtime: Runtime::Unknown,
            container_id: ID.into(),
            pod_uid: Some(UID.into()),
            qos: None,
            conmon: false,
        };
        assert_eq!(parse(&format!("/../pod{UID}/{ID}")), c);
        assert_eq!(parse(&format!("/../pod{UID}")), Workload::Unknown);
    }

    #[test]
    fn static_pod_md5_uid() {
        let uid = "6a1b2c3d4e5f60718293a4b5c6d7e8f9";
        let want = Workload::Pod {
            pod_uid: uid.to_string(),
            qos: Qos::Burstable,
        };
        assert_eq!(parse(&format!("/kubepods/burstable/pod{uid}")), want);
        assert_eq!(
            parse(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice"
            )),
            want
        );
    }

    #[test]
    fn systemd_units_and_root() {
        assert_eq!(
            parse("/system.slice/containerd.service"),
            unit("containerd.service")
        );
        assert_eq!(parse("/system.slice/ssh.service\n"), unit("ssh.service"));
        assert_eq!(
            parse("/user.slice/user-1000.slice/session-3.scope"),
            unit("session-3.scope")
        );
        assert_eq!(
            parse("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-x.scope"),
            unit("app-gnome-x.scope")
        );
        assert_eq!(parse("/init.scope"), unit("init.scope"));
        assert_eq!(parse("/system.slice"), unit("system.slice"));
        assert_eq!(parse("/"), Workload::HostRoot);
        assert_eq!(parse(""), Workload::HostRoot);
    }

    #[test]
    fn unrecognised_is_unknown() {
        for path in [
            "/my/random/group".to_string(),
            "/kubepods/burstable/podNOTAUID/xyz".to_string(),
            format!("/kubepods/burstable/pod{UID}/xyz"),
            format!("/kubepods/burstable/pod{UID}/{}", ID.to_uppercase()),
            format!("/kubepods/burstable/pod{UID}/{}", &ID[..63]),
            format!("/kubepods/burstable/pod{}", UID.to_uppercase()),
            "/kubepods".to_string(),
            "/kubepods.slice/kubepods-burstable.slice".to_string(),
            format!("/system.slice/crio-{}.scope", &ID[1..]),
            "/docker".to_string(),
            ".service".to_string(),
        ] {
            assert_eq!(parse(&path), Workload::Unknown, "{path}");
        }
    }

    #[test]
    fn proc_cgroup_contents() {
        let v1 = format!(
            "12:pids:/kubepods/burstable/pod{UID}/{ID}\n7:memory:/kubepods/burstable/pod{UID}/{ID}\n1:name=systemd:/x\n"
        );
        assert_eq!(
            parse_proc_cgroup(&v1),
            Some(format!("/kubepods/burstable/pod{UID}/{ID}"))
        );
        assert_eq!(
            parse_proc_cgroup("0::/system.slice/ssh.service\n"),
            Some("/system.slice/ssh.service".into())
        );
        let hybrid = "0::/user.slice\n4:cpu,memory:/kubepods/x\n1:name=systemd:/user.slice\n";
        assert_eq!(parse_proc_cgroup(hybrid), Some("/kubepods/x".into()));
        let colons = format!(
            "0::/system.slice/containerd.service/kubepods-pod{UID_}.slice:cri-containerd:{ID}"
        );
        assert_eq!(
            parse(&parse_proc_cgroup(&colons).unwrap_or_default()),
            container(Runtime::Containerd, Some(Qos::Guaranteed), false)
        );
        assert_eq!(
            parse_proc_cgroup("1:name=systemd:/init.scope\ngarbage\n"),
            None
        );
        assert_eq!(parse_proc_cgroup(""), None);
    }

    #[test]
    fn helpers_and_serialization() {
        let c = container(Runtime::Crio, Some(Qos::BestEffort), true);
        assert_eq!(
            (c.container_id(), c.pod_uid(), c.qos(), c.runtime()),
            (Some(ID), Some(UID), Some(Qos::BestEffort), Runtime::Crio)
        );
        let p = pod(Qos::Guaranteed);
        assert_eq!(
            (p.container_id(), p.pod_uid(), p.qos(), p.runtime()),
            (None, Some(UID), Some(Qos::Guaranteed), Runtime::Unknown)
        );
        let u = unit("ssh.service");
        assert_eq!(
            (u.container_id(), u.pod_uid(), u.qos(), u.runtime()),
            (None, None, None, Runtime::Unknown)
        );
        let json = |v: &Workload| serde_json::to_string(v).unwrap_or_default();
        let want = format!(
            r#"{{"container":{{"runtime":"crio","container_id":"{ID}","pod_uid":"{UID}","qos":"besteffort","conmon":true}}}}"#
        );
        assert_eq!(json(&c), want);
        assert_eq!(json(&Workload::HostRoot), r#""host_root""#);
        assert_eq!(json(&u), r#"{"system_service":{"unit":"ssh.service"}}"#);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let long = format!("/kubepods{}", "/burstable".repeat(50_000));
        let colons = ":".repeat(10_000);
        let mixed = format!("/kubepods/pod{}/{}", "é".repeat(40), "日本".repeat(32));
        let near = format!("/kubepods-pod{}é.slice/crio-{}\u{0}.scope", &UID_[..35], ID);
        for path in [
            long.as_str(),
            colons.as_str(),
            mixed.as_str(),
            near.as_str(),
            "/../..",
            "::",
            "a:b:c",
            "pod",
            "-pod.slice",
            "kubepods-.slice",
        ] {
            let _ = parse(path);
            let _ = parse_proc_cgroup(path);
        }
        // Pseudo-random byte strings (fixed-seed xorshift), decoded lossily.
        let alphabet = b"/:-_.podkubesliceburstable0123456789abcdef\xff\xc3";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2_000 {
            let bytes: Vec<u8> = (0..(state % 300))
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
            let _ = parse_proc_cgroup(&text);
        }
    }
}
