//! One cgroup path component (with its parent) -> what it names: a pod, a
//! container, a runtime's monitor of a container, a Nomad task, or nothing.
//! Each layout's source is cited in `fixtures.rs`.

use oomtrace_event::{Qos, Runtime};

/// What one path component names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// A Kubernetes pod cgroup: dashed uid, QoS when the path shows it.
    Pod { uid: String, qos: Option<Qos> },
    /// A container. `in_unit`: its parent is the systemd service it runs in
    /// (podman `--cgroups=split`, as quadlet uses).
    Container { runtime: Runtime, id: String, in_unit: bool },
    /// A runtime's monitor process of one container (conmon, LXC's monitor,
    /// nspawn's supervisor); `id` is `None` where the path doesn't name it.
    Monitor { runtime: Runtime, id: Option<String>, in_unit: bool },
    /// A Nomad task cgroup: `<alloc uuid>.<task>`.
    NomadTask { alloc_id: String, task: String },
    /// Nothing of the above (slices, units, sub-cgroups).
    Other,
}

/// What a runtime-prefixed scope or cgroup name holds.
#[derive(Clone, Copy)]
enum Role {
    Container,
    Monitor,
    /// podman `--cgroups=split`: the payload beside conmon's `runtime` cgroup.
    SplitPayload,
}

/// Runtime prefixes of container scope/cgroup names, all followed by a 64-hex
/// id (and `.scope` under systemd). Longer prefixes come before the prefixes
/// they extend.
const PREFIXES: &[(&str, Runtime, Role)] = &[
    ("cri-containerd-", Runtime::Containerd, Role::Container),
    ("crio-conmon-", Runtime::Crio, Role::Monitor),
    ("crio-", Runtime::Crio, Role::Container),
    ("docker-", Runtime::Docker, Role::Container),
    ("libpod-conmon-", Runtime::Podman, Role::Monitor),
    ("libpod-payload-", Runtime::Podman, Role::SplitPayload),
    ("libpod-", Runtime::Podman, Role::Container),
];

/// LXC ≥ 4.0 cgroup name prefixes (`lxc.payload.<name>`, `lxc.monitor.<name>`).
const LXC_PAYLOAD: &str = "lxc.payload.";
const LXC_MONITOR: &str = "lxc.monitor.";

/// Classifies `component`, whose parent component is `parent`.
pub(super) fn classify(component: &str, parent: Option<&str>) -> Step {
    if let Some((uid, qos)) = pod(component, parent) {
        return Step::Pod { uid, qos };
    }
    if let Some(step) = prefixed(component).or_else(|| lxc(component)) {
        return step;
    }
    if is_container_id(component) {
        return match parent {
            Some("docker") => Step::Container { runtime: Runtime::Docker, id: component.to_owned(), in_unit: false },
            // A podman pod under the cgroupfs manager (its containers are `libpod-<id>`).
            Some("libpod_parent") => Step::Other,
            _ => Step::Container { runtime: Runtime::Unknown, id: component.to_owned(), in_unit: false },
        };
    }
    parent.and_then(|parent| by_parent(component, parent)).unwrap_or(Step::Other)
}

/// `<runtime prefix><64-hex id>[.scope]`.
fn prefixed(component: &str) -> Option<Step> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    PREFIXES.iter().find_map(|&(prefix, runtime, role)| {
        let id = name.strip_prefix(prefix).filter(|id| is_container_id(id))?.to_owned();
        Some(match role {
            Role::Container => Step::Container { runtime, id, in_unit: false },
            Role::SplitPayload => Step::Container { runtime, id, in_unit: true },
            Role::Monitor => Step::Monitor { runtime, id: Some(id), in_unit: false },
        })
    })
}

/// `lxc.payload.<name>` / `lxc.monitor.<name>`.
fn lxc(component: &str) -> Option<Step> {
    let named = |prefix| component.strip_prefix(prefix).filter(|name| !name.is_empty()).map(str::to_owned);
    if let Some(id) = named(LXC_PAYLOAD) {
        return Some(Step::Container { runtime: Runtime::Lxc, id, in_unit: false });
    }
    named(LXC_MONITOR).map(|id| Step::Monitor { runtime: Runtime::Lxc, id: Some(id), in_unit: false })
}

/// Names that mean something only under a given parent.
fn by_parent(component: &str, parent: &str) -> Option<Step> {
    let nspawn_service = parent.strip_prefix("systemd-nspawn@").and_then(|p| p.strip_suffix(".service"));
    let nspawn_scope = parent.strip_prefix("machine-").and_then(|p| p.strip_suffix(".scope"));
    match component {
        // systemd-nspawn on the unified hierarchy: the container's payload
        // beside nspawn's own `supervisor` (with --keep-unit).
        "payload" => nspawn_service.or(nspawn_scope).filter(|name| !name.is_empty()).map(|name| Step::Container {
            runtime: Runtime::Nspawn,
            id: unescape_unit(name),
            in_unit: false,
        }),
        "supervisor" => nspawn_service.filter(|name| !name.is_empty()).map(|name| Step::Monitor {
            runtime: Runtime::Nspawn,
            id: Some(unescape_unit(name)),
            in_unit: false,
        }),
        // podman --cgroups=split: conmon's cgroup inside the service.
        "runtime" if parent.strip_suffix(".service").is_some_and(|stem| !stem.is_empty()) => {
            Some(Step::Monitor { runtime: Runtime::Podman, id: None, in_unit: true })
        }
        "conmon" => podman_cgroupfs_conmon(parent),
        // LXC before 4.0 (lxc.cgroup.pattern "lxc/%n"), and LXD on it.
        name if parent == "lxc" && !name.starts_with('.') => {
            Some(Step::Container { runtime: Runtime::Lxc, id: name.to_owned(), in_unit: false })
        }
        name if parent == "nomad" => nomad_task(name),
        name if parent == "share.slice" || parent == "reserve.slice" => nomad_task(name.strip_suffix(".scope")?),
        _ => None,
    }
}

/// podman's cgroupfs manager puts conmon in `<parent>/conmon`: one cgroup for
/// every conmon under `libpod_parent` or a pod's cgroup (podman ≥ 1.x), or
/// `libpod-<id>/conmon` inside the container's own cgroup (podman 1.0-1.5).
fn podman_cgroupfs_conmon(parent: &str) -> Option<Step> {
    let monitored = parent.strip_prefix("libpod-").filter(|id| is_container_id(id)).map(str::to_owned);
    let shared = parent == "libpod_parent" || is_container_id(parent);
    (monitored.is_some() || shared).then_some(Step::Monitor { runtime: Runtime::Podman, id: monitored, in_unit: false })
}

/// `<alloc uuid>.<task name>` (Nomad's cgroup name without `.scope`).
fn nomad_task(name: &str) -> Option<Step> {
    let (alloc_id, task) = (name.get(..36)?, name.get(37..)?);
    (name.as_bytes().get(36) == Some(&b'.') && is_uuid(alloc_id) && !task.is_empty())
        .then(|| Step::NomadTask { alloc_id: alloc_id.to_owned(), task: task.to_owned() })
}

/// A pod cgroup: cgroupfs `pod<uid>` (QoS from the parent), or a systemd
/// slice `[<prefix>-]kubepods[-<qos>]-pod<uid>.slice` (kind puts `kubelet-`
/// before it), or the QoS-first slices of kubelet 1.5/1.6
/// (`Burstable-pod<uid>.slice`). QoS names are matched in any case: kubelet
/// wrote them capitalized (`Burstable`, `BestEffort`) before 1.7.
fn pod(component: &str, parent: Option<&str>) -> Option<(String, Option<Qos>)> {
    if let Some(slice) = component.strip_suffix(".slice") {
        let at = slice.rfind("pod")?;
        let (prefix, uid) = (&slice[..at], normalize_pod_uid(&slice[at + 3..])?);
        if prefix.is_empty() {
            return Some((uid, None));
        }
        let owner = prefix.strip_suffix('-')?;
        let last = owner.rsplit('-').next().unwrap_or(owner);
        let qos = match qos_level(last) {
            Some(qos) => qos,
            None if last == "kubepods" => Qos::Guaranteed,
            None => return None,
        };
        return Some((uid, Some(qos)));
    }
    let uid = normalize_pod_uid(component.strip_prefix("pod")?)?;
    let qos = match parent {
        Some("kubepods") => Some(Qos::Guaranteed),
        Some(parent) => qos_level(parent),
        None => None,
    };
    Some((uid, qos))
}

/// A kubelet QoS level name, any case (`burstable`, `BestEffort`, ...).
pub(super) fn qos_level(name: &str) -> Option<Qos> {
    if name.eq_ignore_ascii_case("burstable") {
        Some(Qos::Burstable)
    } else if name.eq_ignore_ascii_case("besteffort") {
        Some(Qos::BestEffort)
    } else {
        None
    }
}

/// A pod uid in dashed form: a UUID written with `-` or `_` (systemd driver),
/// or the 32-hex md5 uid kubelet gives static pods.
fn normalize_pod_uid(raw: &str) -> Option<String> {
    let uid = raw.replace('_', "-");
    (is_uuid(&uid) || (uid.len() == 32 && is_lower_hex(&uid))).then_some(uid)
}

/// A lowercase UUID: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lengths == [8, 4, 4, 4, 12] && groups.iter().all(|g| is_lower_hex(g))
}

/// A container id: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Unit types that own a cgroup (systemd.resource-control(5)).
const UNIT_SUFFIXES: [&str; 6] = [".service", ".scope", ".slice", ".mount", ".socket", ".swap"];

/// A systemd unit name of a type that owns a cgroup.
pub(super) fn is_unit_name(component: &str) -> bool {
    UNIT_SUFFIXES.iter().any(|suffix| component.strip_suffix(suffix).is_some_and(|stem| !stem.is_empty()))
}

/// Undoes systemd's unit-name escaping (`\x2d` -> `-`); invalid escapes stay.
fn unescape_unit(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i..i + 4)
            .filter(|chunk| chunk.starts_with(b"\\x") && chunk[2..].iter().all(u8::is_ascii_hexdigit))
            .and_then(|chunk| std::str::from_utf8(&chunk[2..]).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
