//! Unit tests of the parser's rules, on synthetic paths. Real-world layouts,
//! each with its source, are in `fixtures.rs`.
use super::*;
use Qos::*;
use Runtime as R;

pub(super) const ID: &str = "4f1b9e0c3a5d7f2e8b6c1a0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f";
pub(super) const UID: &str = "0b8c1a9e-1111-4222-8333-944455556666";
pub(super) const UID_: &str = "0b8c1a9e_1111_4222_8333_944455556666";

const BURSTABLE: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice";
const BESTEFFORT: &str = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_>.slice";

/// Expands the placeholders of a test path: `<id>`, `<uid>`, `<uid_>`
/// (systemd's underscored uid) and the systemd driver's pod slices.
pub(super) fn path(template: &str) -> String {
    template
        .replace("<burstable>", BURSTABLE)
        .replace("<besteffort>", BESTEFFORT)
        .replace("<guaranteed>", "/kubepods.slice/kubepods-pod<uid_>.slice")
        .replace("<uid_>", UID_)
        .replace("<uid>", UID)
        .replace("<id>", ID)
}

/// The test container outside any pod.
pub(super) fn alone(runtime: Runtime) -> Workload {
    Workload::Container { runtime, container_id: ID.into(), pod_uid: None, qos: None, unit: None }
}

/// The test container in the test pod.
pub(super) fn in_pod(runtime: Runtime, qos: Qos) -> Workload {
    Workload::Container { runtime, container_id: ID.into(), pod_uid: Some(UID.into()), qos: Some(qos), unit: None }
}

/// The monitor of the same container, in the same place.
pub(super) fn monitor(container: Workload) -> Workload {
    match container {
        Workload::Container { runtime, container_id, pod_uid, qos, unit } => {
            Workload::ContainerMonitor { runtime, container_id: Some(container_id), pod_uid, qos, unit }
        }
        other => other,
    }
}

pub(super) fn pod(qos: Qos) -> Workload {
    Workload::Pod { pod_uid: UID.into(), qos }
}

pub(super) fn unit(name: &str) -> Workload {
    Workload::SystemService { unit: name.into() }
}

pub(super) fn check(cases: &[(&str, Workload)]) {
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
        ("<burstable>/crio-conmon-<id>.scope", monitor(in_pod(R::Crio, Burstable))),
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
        ("/machine.slice/libpod-conmon-<id>.scope", monitor(alone(R::Podman))),
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
    let no_qos = Workload::Container {
        runtime: R::Unknown,
        container_id: ID.into(),
        pod_uid: Some(UID.into()),
        qos: None,
        unit: None,
    };
    check(&[
        (kind, in_pod(R::Containerd, Burstable)),
        (&node, in_pod(R::Containerd, Burstable)),
        (unconverted, in_pod(R::Containerd, Guaranteed)),
        ("/kubelet/kubepods/besteffort/pod<uid>/<id>", in_pod(R::Unknown, BestEffort)),
        ("/../../kubepods/pod<uid>/<id>", in_pod(R::Unknown, Guaranteed)),
        ("/../<id>", alone(R::Unknown)),
        // Rooted below the QoS level: the pod is visible, its QoS is not.
        ("/../pod<uid>/<id>", no_qos),
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
    let c = monitor(in_pod(R::Crio, BestEffort));
    // A monitor is not in the container it watches.
    assert_eq!((c.container_id(), c.pod_uid()), (None, Some(UID)));
    let container = in_pod(R::Crio, BestEffort);
    assert_eq!(container.container_id(), Some(ID));
    assert_eq!((c.qos(), c.runtime()), (Some(BestEffort), R::Crio));
    let p = pod(Guaranteed);
    assert_eq!((p.container_id(), p.pod_uid()), (None, Some(UID)));
    assert_eq!((p.qos(), p.runtime()), (Some(Guaranteed), R::Unknown));
    let u = unit("ssh.service");
    assert_eq!((u.container_id(), u.pod_uid()), (None, None));
    assert_eq!((u.qos(), u.runtime()), (None, R::Unknown));
    let json = |w: &Workload| serde_json::to_string(w).unwrap_or_default();
    let want = r#"{"container_monitor":{"runtime":"crio","container_id":"<id>","pod_uid":"<uid>","qos":"besteffort","unit":null}}"#;
    assert_eq!(json(&c), path(want));
    assert_eq!(json(&Workload::HostRoot), r#""host_root""#);
    assert_eq!(json(&u), r#"{"system_service":{"unit":"ssh.service"}}"#);
}

#[test]
fn arbitrary_input_never_panics() {
    let long = format!("/kubepods{}", "/burstable".repeat(50_000));
    let unicode = format!("/kubepods/pod{}/{}", "é".repeat(40), "日本".repeat(32));
    let near = format!("/kubepods-pod{}é.slice/crio-{ID}\u{0}.scope", &UID_[..35]);
    let escapes = ["\\x", "\\x2", "\\xzz", "\\xé1"].map(|e| format!("/machine.slice/machine-{e}.scope/payload"));
    let nomad = format!("/nomad.slice/share.slice/{}é.scope", &UID[..36]);
    let mut fixed = vec![long, ":".repeat(10_000), unicode, near, "/../..".into(), "a:b:c".into(), nomad];
    fixed.extend(escapes);
    fixed.extend(
        ["/lxc.payload.", "/lxc.monitor.", "/lxc/", "/x.service/runtime", "/libpod-/conmon", "pod.slice"]
            .map(String::from),
    );
    // Plus pseudo-random byte strings (fixed-seed xorshift), decoded lossily.
    let alphabet = b"/:-_.@\\xpodkubesliceburstableBEconmlxyrutimeh0123456789abcdef\xff\xc3";
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
