//! Which events a command shows: [`EventFilter`] by workload and command name (`live`,
//! `history`), [`since`] by time (`history`, `diagnose`).

pub mod since;

use oomtrace_event::OomEvent;

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
        if let Some(comm) = &self.comm
            && event.victim.comm.as_deref() != Some(comm.as_str())
        {
            return false;
        }
        let identity = event.workload.as_ref().map(|w| &w.identity);
        let wanted = |want: &Option<String>, have: Option<&String>| want.as_ref().is_none_or(|w| have == Some(w));
        if !wanted(&self.namespace, identity.and_then(|id| id.namespace.as_ref()))
            || !wanted(&self.pod, identity.and_then(|id| id.pod.as_ref()))
            || !wanted(&self.container, identity.and_then(|id| id.container.as_ref()))
        {
            return false;
        }
        if let Some(prefix) = &self.cgroup_prefix {
            let path = event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref());
            if !path.is_some_and(|p| cgroup_has_prefix(p, prefix)) {
                return false;
            }
        }
        true
    }
}

/// `/a/b` has prefixes `/a/b`, `/a` and `/`, but `/ab` does not have `/a`.
fn cgroup_has_prefix(path: &str, prefix: &str) -> bool {
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
