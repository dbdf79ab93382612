//! Real-world cgroup layouts, each with where it comes from: the runtime
//! source that builds the path (repository and file), a report, or a real
//! node. `<id>`, `<uid>`, `<uid_>` are placeholders (see `tests::path`); ids
//! and names that appear literally were copied from the source.

use super::{
    Workload, parse, parse_proc_cgroup,
    tests::{ID, UID, alone, check, in_pod, monitor, pod, unit},
};
use oomtrace_event::{Qos::*, Runtime as R};

/// A container of `runtime` named `id` outside pods.
fn named(runtime: R, id: &str) -> Workload {
    Workload::Container { runtime, container_id: id.into(), pod_uid: None, qos: None, unit: None }
}

/// The monitor of the container of `runtime` named `id`, outside pods.
fn named_monitor(runtime: R, id: &str) -> Workload {
    monitor(named(runtime, id))
}

/// A monitor whose container the path does not name.
fn anonymous_monitor(runtime: R, unit: Option<&str>) -> Workload {
    Workload::ContainerMonitor { runtime, container_id: None, pod_uid: None, qos: None, unit: unit.map(Into::into) }
}

/// Runtime monitors are never the container they watch.
#[test]
fn runtime_monitors() {
    check(&[
        // cri-o/cri-o internal/config/cgmgr/systemd_linux.go, MoveConmonToCgroup:
        // `crio-conmon-<id>.scope` in the pod slice (conmon_cgroup = "pod")...
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/crio-conmon-<id>.scope",
            monitor(in_pod(R::Crio, Burstable)),
        ),
        // ...or in the slice conmon_cgroup names (e.g. "system.slice").
        ("/system.slice/crio-conmon-<id>.scope", monitor(alone(R::Crio))),
        // cri-o/cri-o internal/config/cgmgr/cgroupfs_linux.go, MoveConmonToCgroup:
        // "%s/crio-conmon-%s" under the pod's cgroup; the container is "crio-<id>".
        ("/kubepods/burstable/pod<uid>/crio-conmon-<id>", monitor(in_pod(R::Crio, Burstable))),
        ("/kubepods/burstable/pod<uid>/crio-<id>", in_pod(R::Crio, Burstable)),
        // containers/podman libpod/oci_conmon_linux.go, moveConmonToCgroupAndSignal:
        // systemd manager -> createUnitName("libpod-conmon", id) in the parent slice...
        ("/machine.slice/libpod-conmon-<id>.scope", monitor(alone(R::Podman))),
        // ...a rootless user's podman (same code, user slice of the user manager).
        (
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-<id>.scope",
            monitor(alone(R::Podman)),
        ),
        // ...cgroupfs manager -> filepath.Join(CgroupParent, "conmon"), shared by
        // every conmon; containers/podman libpod/runtime_pod_linux.go: a pod's
        // cgroupfs parent is filepath.Join(CgroupParent, pod id).
        ("/libpod_parent/conmon", anonymous_monitor(R::Podman, None)),
        (&format!("/libpod_parent/{}/conmon", "9".repeat(64)), anonymous_monitor(R::Podman, None)),
        (&format!("/libpod_parent/{}/libpod-<id>", "9".repeat(64)), alone(R::Podman)),
        // containers/podman (podman 1.x) libpod/oci_linux.go, moveConmonToCgroup:
        // filepath.Join(CgroupParent, "libpod-<id>", "conmon") inside the container's cgroup...
        ("/libpod_parent/libpod-<id>/conmon", monitor(alone(R::Podman))),
        // ...and projectatomic/libpod libpod/oci.go (2018): "<parent>/libpod-conmon-<id>".
        ("/libpod_parent/libpod-conmon-<id>", monitor(alone(R::Podman))),
        // lxc/lxc src/lxc/cgroups/cgroup.h: DEFAULT_MONITOR_CGROUP_PREFIX "lxc.monitor.",
        // DEFAULT_PAYLOAD_CGROUP_PREFIX "lxc.payload." (LXC ≥ 4.0, LXD, Incus).
        ("/lxc.monitor.web1", named_monitor(R::Lxc, "web1")),
        ("/lxc.payload.web1", named(R::Lxc, "web1")),
        ("/lxc.payload.web1/system.slice/nginx.service", named(R::Lxc, "web1")),
        // systemd/systemd src/nspawn/nspawn-cgroup.c, create_subcgroup: "payload"
        // for the container and, with --keep-unit (systemd-nspawn@.service),
        // "supervisor" for nspawn itself; machine names are unit-escaped.
        ("/machine.slice/systemd-nspawn@debian.service/payload", named(R::Nspawn, "debian")),
        ("/machine.slice/systemd-nspawn@debian.service/payload/init.scope", named(R::Nspawn, "debian")),
        ("/machine.slice/systemd-nspawn@debian.service/supervisor", named_monitor(R::Nspawn, "debian")),
        ("/machine.slice/machine-my\\x2dbox.scope/payload", named(R::Nspawn, "my-box")),
    ]);
}

/// Nested runtimes are named by the innermost container.
#[test]
fn nested_runtimes() {
    let node = "1".repeat(64);
    let kind = "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/\
                kubelet-kubepods-burstable-pod<uid_>.slice";
    check(&[
        // kubernetes-sigs/kind pkg/cluster/internal/kubeadm/config.go: kubelet with
        // `cgroupDriver: systemd` and `cgroupRoot: /kubelet` inside a docker node
        // container (moby/moby daemon, systemd driver: `docker-<id>.scope`).
        (
            &format!("/system.slice/docker-{node}.scope{kind}/cri-containerd-<id>.scope"),
            in_pod(R::Containerd, Burstable),
        ),
        (&format!("/system.slice/docker-{node}.scope{kind}"), pod(Burstable)),
        // The node's own containerd: the node container is the innermost container.
        (&format!("/system.slice/docker-{node}.scope/system.slice/containerd.service"), named(R::Docker, &node)),
        // The same kubelet on the cgroupfs driver (older kind; k3s nodes in docker
        // likewise): `/kubelet/kubepods/<qos>/pod<uid>/<id>` under `/docker/<node>`.
        (&format!("/docker/{node}/kubelet/kubepods/burstable/pod<uid>/<id>"), in_pod(R::Unknown, Burstable)),
        (&format!("/docker/{node}/kubelet/kubepods/burstable/pod<uid>"), pod(Burstable)),
        // moby/moby hack/dind: on cgroup v2 the outer container's processes move to
        // `/init`, the inner dockerd (cgroupfs driver, cgroup namespace) makes `/docker/<id>`.
        (&format!("/system.slice/docker-{node}.scope/docker/<id>"), alone(R::Docker)),
        (&format!("/system.slice/docker-{node}.scope/init"), named(R::Docker, &node)),
        // On cgroup v1 without cgroup namespaces the inner path nests the outer one.
        (&format!("/docker/{node}/docker/<id>"), alone(R::Docker)),
        // podman in podman: the outer container's processes sit in crun's
        // `container` sub-cgroup (see cri-o's crunContainerCgroupManager, cited
        // below); the inner podman has no systemd, so it uses its cgroupfs
        // layout (containers/podman libpod/container_internal_linux.go).
        (&format!("/machine.slice/libpod-{node}.scope/container/libpod_parent/libpod-<id>"), alone(R::Podman)),
        (
            &format!("/machine.slice/libpod-{node}.scope/container/libpod_parent/conmon"),
            anonymous_monitor(R::Podman, None),
        ),
    ]);
}

/// podman inside a systemd service (quadlet: `--cgroups=split` by default).
#[test]
fn podman_in_a_service() {
    let payload = Workload::Container {
        runtime: R::Podman,
        container_id: ID.into(),
        pod_uid: None,
        qos: None,
        unit: Some("nginx.service".into()),
    };
    check(&[
        // containers/podman libpod/container_internal_linux.go, getOCICgroupPath:
        // split -> "<own cgroup>/libpod-payload-<id>"; podman-systemd.unit(5):
        // "the cgroups mode of the container created by Quadlet is split".
        ("/system.slice/nginx.service/libpod-payload-<id>", payload.clone()),
        ("/user.slice/user-1000.slice/user@1000.service/app.slice/nginx.service/libpod-payload-<id>", payload),
        // containers/podman libpod/oci_conmon_linux.go: with split, conmon moves
        // to the "runtime" sub-cgroup (utils.MoveUnderCgroupSubtree("runtime")).
        ("/system.slice/nginx.service/runtime", anonymous_monitor(R::Podman, Some("nginx.service"))),
        // containers/podman libpod/container_internal_linux.go: the systemd manager's
        // cgroupsPath "<slice>:libpod:<id>" -> `libpod-<id>.scope`, also in a pod's slice
        // (libpod/runtime_pod_linux.go: `machine-libpod_pod_<pod id>.slice`).
        (&format!("/machine.slice/machine-libpod_pod_{}.slice/libpod-<id>.scope", "9".repeat(64)), alone(R::Podman)),
        // cri-o/cri-o internal/config/cgmgr/systemd_linux.go: "crun actually does the
        // cgroup configuration in a child of the cgroup CRI-O expects": `container`.
        ("<burstable>/crio-<id>.scope/container", in_pod(R::Crio, Burstable)),
    ]);
}

/// Every systemd unit type that owns a cgroup (systemd.resource-control(5):
/// slice, scope, service, socket, mount, swap) is a host unit, named by the
/// innermost unit; systemd/systemd docs/CGROUP_DELEGATION.md for the user
/// manager's tree.
#[test]
fn systemd_units_of_every_type() {
    check(&[
        ("/system.slice/ssh.service", unit("ssh.service")),
        ("/system.slice/systemd-journald.socket", unit("systemd-journald.socket")),
        ("/system.slice/var-lib-docker.mount", unit("var-lib-docker.mount")),
        ("/system.slice/dev-zram0.swap", unit("dev-zram0.swap")),
        ("/system.slice/system-getty.slice/getty@tty1.service", unit("getty@tty1.service")),
        ("/user.slice/user-1000.slice/session-3.scope", unit("session-3.scope")),
        ("/user.slice/user-1000.slice/user@1000.service/init.scope", unit("init.scope")),
        (
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope",
            unit("app-firefox-1234.scope"),
        ),
        ("/user.slice/user-1000.slice/user@1000.service/session.slice/pipewire.service", unit("pipewire.service")),
        // A delegated service's own sub-cgroups belong to the service.
        ("/system.slice/foo.service/.control", unit("foo.service")),
        ("/init.scope", unit("init.scope")),
        ("/user.slice", unit("user.slice")),
    ]);
}

/// Old kubelet QoS naming: kubernetes v1.5/v1.6 pkg/kubelet/cm/qos_container_manager_linux.go
/// made the QoS cgroups `path.Join(rootContainer, string(v1.PodQOSBurstable))`,
/// i.e. `Burstable` and `BestEffort`, under `/` (1.5) or `/kubepods` (1.6);
/// the systemd driver writes them as slices.
#[test]
fn old_kubelet_qos_names() {
    check(&[
        ("/kubepods/Burstable/pod<uid>/<id>", in_pod(R::Unknown, Burstable)),
        ("/kubepods/BestEffort/pod<uid>", pod(BestEffort)),
        (
            "/kubepods.slice/kubepods-Burstable.slice/kubepods-Burstable-pod<uid_>.slice/docker-<id>.scope",
            in_pod(R::Docker, Burstable),
        ),
        ("/Burstable/pod<uid>/<id>", in_pod(R::Unknown, Burstable)),
        ("/BestEffort.slice/BestEffort-pod<uid_>.slice/docker-<id>.scope", in_pod(R::Docker, BestEffort)),
        ("/BestEffort.slice/BestEffort-pod<uid_>.slice", pod(BestEffort)),
        // The QoS level itself is kubelet's, not a host unit.
        ("/Burstable.slice", Workload::Unknown),
        ("/kubepods.slice/kubepods-BestEffort.slice", Workload::Unknown),
    ]);
}

/// Task ids that are not 64-hex: recognised where the layout is known, never
/// mistaken for a container.
#[test]
fn other_orchestrators() {
    let alloc = "8d5e3a1b-2c4f-4e6a-9b7c-0d1e2f3a4b5c";
    let task = |name: &str| Workload::NomadTask { alloc_id: alloc.into(), task: name.into() };
    check(&[
        // hashicorp/nomad client/lib/cgroupslib/editor.go: v2 `nomad.slice/<share|reserve>.slice/
        // <alloc>.<task>.scope` (scopeCG2, pathCG2), v1 `nomad/<alloc>.<task>` (scopeCG1).
        (&format!("/nomad.slice/share.slice/{alloc}.web.scope"), task("web")),
        (&format!("/nomad.slice/reserve.slice/{alloc}.db.v2.scope"), task("db.v2")),
        (&format!("/nomad/{alloc}.web"), task("web")),
        // Nomad's docker driver runs docker containers.
        ("/docker/<id>", alone(R::Docker)),
        // aws/amazon-ecs-agent agent/engine (task cgroup resource): cgroupRoot
        // "/ecs/<task id>" (32 hex), "ecstasks-<task id>.slice" on cgroup v2; the
        // task's docker containers below it are named, the task id is never one.
        ("/ecs/0123456789abcdef0123456789abcdef/<id>", alone(R::Unknown)),
        ("/ecs/0123456789abcdef0123456789abcdef", Workload::Unknown),
        ("/ecstasks.slice/ecstasks-0123456789abcdef0123456789abcdef.slice/docker-<id>.scope", alone(R::Docker)),
        // lxc.system.conf(5) before LXC 4.0: "lxc.cgroup.pattern: Format string used
        // to generate the cgroup path (e.g. lxc/%n)".
        ("/lxc/web1", named(R::Lxc, "web1")),
        // systemd-machined scopes without nspawn's payload (libvirt VMs): host units.
        ("/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope", unit("machine-qemu\\x2d1\\x2dvm1.scope")),
        // A UUID-named cgroup under a pod is no container (kata's `kata_<id>`, gVisor):
        // unknown, with the raw path kept by the event.
        (&format!("/kubepods/burstable/pod<uid>/{alloc}"), Workload::Unknown),
        (&format!("/kubepods/burstable/pod<uid>/kata_{}", "2".repeat(64)), Workload::Unknown),
    ]);
    // The pod uid is never taken for a container id.
    assert_eq!(parse_pod_only(), Some(UID));
}

fn parse_pod_only() -> Option<&'static str> {
    match super::parse(&super::tests::path("/kubepods/pod<uid>")) {
        Workload::Pod { .. } => Some(UID),
        _ => None,
    }
}

/// `/proc/<pid>/cgroup` read on a real node: this repository's test host
/// (Debian 12, kernel 6.18, cgroup v1 hybrid), 2026-11-29, with Debian's
/// podman 4.3.1 (`--cgroup-manager cgroupfs --runtime runc`).
#[test]
fn real_node_proc_cgroup() {
    let container = "321540c86fd94207f80d02525a5605342f1315ac36330de8e3390b2297868285";
    let podman_container = format!(
        "9:name=systemd:/libpod_parent/libpod-{container}\n8:pids:/libpod_parent/libpod-{container}\n\
         4:memory:/libpod_parent/libpod-{container}\n1:cpu:/libpod_parent/libpod-{container}\n\
         0::/libpod_parent/libpod-{container}\n"
    );
    // `podman inspect -f '{{.State.ConmonPid}}'` of that container.
    let its_conmon = "9:name=systemd:/\n8:pids:/libpod_parent/conmon\n7:blkio:/libpod_parent/conmon\n\
                      4:memory:/libpod_parent/conmon\n3:cpuset:/libpod_parent/conmon\n0::/\n";
    // The test harness's own sandbox: a 32-hex task id, no container.
    let harness = "9:name=systemd:/\n4:memory:/process_api/556690f931873982f603456284b9bc76\n1:cpu:/\n0::/\n";
    let init = "9:name=systemd:/\n8:pids:/\n4:memory:/\n0::/\n";
    let cases = [
        (podman_container.as_str(), named(R::Podman, container)),
        (its_conmon, anonymous_monitor(R::Podman, None)),
        (harness, Workload::Unknown),
        (init, Workload::HostRoot),
    ];
    for (contents, want) in cases {
        let path = parse_proc_cgroup(contents).unwrap_or_default();
        assert_eq!(parse(&path), want, "{contents}");
    }
}
