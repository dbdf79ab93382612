//! Which events a command shows: [`EventFilter`] by workload and command name (`live`,
//! `history`), [`since`] by time (`history`, `diagnose`).

pub mod since;

use oomtrace_event::{OomEvent, Warning, WorkloadInfo};

/// Which victims are shown; every filter that is set must match.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only victims whose cgroup path starts with this.
    pub cgroup_prefix: Option<String>,
    /// Only victims with this command name.
    pub comm: Option<String>,
    /// Only victims in this namespace / pod / container (by name).
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, event: &OomEvent) -> bool {
        let path = event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref());
        self.matches_parts(event.victim.comm.as_deref(), event.workload.as_ref(), path)
    }

    /// A warning has no command: with `--comm` set, none is shown.
    pub fn matches_warning(&self, warning: &Warning) -> bool {
        self.matches_parts(None, warning.workload.as_ref(), warning.cgroup.as_deref())
    }

    fn matches_parts(&self, comm: Option<&str>, workload: Option<&WorkloadInfo>, path: Option<&str>) -> bool {
        if let Some(wanted) = &self.comm
            && comm != Some(wanted.as_str())
        {
            return false;
        }
        let identity = workload.map(|w| &w.identity);
        let wanted = |want: &Option<String>, have: Option<&String>| want.as_ref().is_none_or(|w| have == Some(w));
        if !wanted(&self.namespace, identity.and_then(|id| id.namespace.as_ref()))
            || !wanted(&self.pod, identity.and_then(|id| id.pod.as_ref()))
            || !wanted(&self.container, identity.and_then(|id| id.container.as_ref()))
        {
            return false;
        }
        if let Some(prefix) = &self.cgroup_prefix
            && !path.is_some_and(|p| cgroup_has_prefix(p, prefix))
        {
            return false;
        }
        true
    }
}

/// `/a/b` has prefixes `/a/b`, `/a` and `/`, but `/ab` does not have `/a`.
pub fn cgroup_has_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_prefixes_match_whole_components() {
        assert!(cgroup_has_prefix("/a/b", "/a"));
        assert!(cgroup_has_prefix("/a/b", "/a/"));
        assert!(cgroup_has_prefix("/a", "/a"));
        assert!(cgroup_has_prefix("/a", "/"));
        assert!(!cgroup_has_prefix("/ab", "/a"));
    }
}
