//! The bounded values both exporters label a kill with beyond the pod names:
//! the diagnosis' cause and, for kills outside pods, the systemd unit.

use oomtrace_event::Cause;
use oomtrace_event::{OomEvent, WorkloadInfo};

/// The diagnosis' cause name (docs/events.md); `unknown` for an event without
/// a diagnosis. One of the seven [`Cause`] names.
pub fn cause(event: &OomEvent) -> &'static str {
    event.diagnosis.as_ref().map_or(Cause::Unknown, |d| d.cause).as_str()
}

/// The systemd unit the victim ran in (`kubelet.service`, `containerd.service`,
/// a podman quadlet's service), empty for pods and for cgroups outside any unit.
///
/// Units whose names systemd makes up per run (`systemd-run`'s
/// `run-r<id>.scope`/`.service`, `run-u<n>.service`, logind's
/// `session-<n>.scope`) would add a series per run or login: they are named by
/// the slice that holds them instead (`system.slice`, `user-1000.slice`), or
/// empty when the path shows none.
pub fn unit(event: &OomEvent) -> String {
    unit_of(event.workload.as_ref(), event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref()))
}

/// [`unit`] of `workload` in the cgroup at `path` (a kill's victim's, a warning's).
pub fn unit_of(workload: Option<&WorkloadInfo>, path: Option<&str>) -> String {
    let Some(unit) = workload.and_then(|w| w.unit.as_deref()) else { return String::new() };
    if !is_per_run(unit) {
        return unit.to_owned();
    }
    let path = path.unwrap_or_default();
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    components
        .iter()
        .position(|c| *c == unit)
        .and_then(|at| at.checked_sub(1))
        .map(|parent| components[parent])
        .filter(|parent| parent.ends_with(".slice"))
        .unwrap_or_default()
        .to_owned()
}

/// A unit name systemd generates for one run or one login.
fn is_per_run(unit: &str) -> bool {
    let Some((stem, kind)) = unit.rsplit_once('.') else { return false };
    match kind {
        "scope" => stem.starts_with("run-") || stem.starts_with("session-"),
        "service" => stem.starts_with("run-"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        diagnosis,
        enrich::cgroup_path::{self, Workload},
    };
    use oomtrace_event::{Attribution, Cgroup, OomCgroup, Scope, Victim, WorkloadInfo, WorkloadKind};

    /// An event in `path` with the unit the cgroup-path parser gives it.
    fn event_in(path: &str) -> OomEvent {
        let mut workload = WorkloadInfo::new(WorkloadKind::SystemService, Attribution::Host);
        workload.unit = match cgroup_path::parse(path) {
            Workload::SystemService { unit } => Some(unit),
            Workload::Container { unit, .. } => unit,
            _ => None,
        };
        OomEvent {
            scope: Some(Scope::Memcg),
            victim_cgroup: Some(Cgroup { path: Some(path.to_owned()), ..Cgroup::default() }),
            oom_cgroup: Some(OomCgroup {
                cgroup: Cgroup { path: Some(path.to_owned()), ..Cgroup::default() },
                ..OomCgroup::default()
            }),
            workload: Some(workload),
            ..OomEvent::of_victim(Victim::default())
        }
    }

    /// Paths as systemd lays them out on real nodes (AKS: kubelet and
    /// containerd are services in system.slice; systemd-run and ssh logins
    /// make per-run scopes).
    #[test]
    fn host_kills_are_labelled_with_their_unit() {
        assert_eq!(unit(&event_in("/system.slice/kubelet.service")), "kubelet.service");
        assert_eq!(unit(&event_in("/system.slice/containerd.service")), "containerd.service");
        // A sub-cgroup of a service (systemd's Delegate=yes) is the service's.
        assert_eq!(unit(&event_in("/system.slice/containerd.service/x")), "containerd.service");
        assert_eq!(unit(&event_in("/system.slice/run-r0d3c6e2e1c4c4a8d9b0f0e6a3d5c7b9e.scope")), "system.slice");
        assert_eq!(unit(&event_in("/system.slice/run-u42.service")), "system.slice");
        assert_eq!(unit(&event_in("/user.slice/user-1000.slice/session-3.scope")), "user-1000.slice");
        assert_eq!(unit(&event_in("/user.slice/user-1000.slice/user@1000.service")), "user@1000.service");
        // A podman quadlet container runs in its service.
        let split = "/system.slice/nginx.service/libpod-payload-6ff7483e10cdc490cbd3ff5a3389ca2424e1b6840871b27b9c740bc749f54bb9";
        assert_eq!(unit(&event_in(split)), "nginx.service");
    }

    #[test]
    fn pods_and_cgroups_outside_units_have_no_unit() {
        let pod = "/kubepods/burstable/pod4eef3118-9623-43e2-a006-c34d3a41d2fc/6ff7483e10cdc490cbd3ff5a3389ca2424e1b6840871b27b9c740bc749f54bb9";
        assert_eq!(unit(&event_in(pod)), "");
        assert_eq!(unit(&event_in("/oomtrace-test-a")), "");
        assert_eq!(unit(&event_in("/")), "");
        assert_eq!(unit(&OomEvent::of_victim(Victim::default())), "");
    }

    #[test]
    fn the_cause_is_the_diagnosis_or_unknown() {
        let mut event = event_in("/system.slice/kubelet.service");
        assert_eq!(cause(&event), "unknown");
        event.diagnosis = Some(diagnosis::diagnose(&event));
        assert_eq!(cause(&event), "cgroup_limit");
    }
}
