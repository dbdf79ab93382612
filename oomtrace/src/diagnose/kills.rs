//! The kills in the kernel log, attributed and diagnosed as `history` does
//! it: the cgroups' ids where the directories still exist, the pods the CRI
//! still lists, the node's name, and one diagnosis per event in log order (so
//! that the `repeated` finding counts the workload's earlier kills).

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use crate::{
    diagnosis::Diagnoser,
    enrich::{cgroup::detect_hierarchy, pod::PodResolver},
    event::OomEvent,
    history::{LogSource, collect::CollectStats, live_cgroup_id, read, read::ReadSummary},
    host::node_name,
};

/// Every kill of the log, and what reading it saw.
#[derive(Clone, Debug, Default)]
pub struct LogKills {
    /// In log order, each with its `diagnosis`.
    pub events: Vec<OomEvent>,
    pub read: ReadSummary,
    pub collected: CollectStats,
}

/// Reads `source` to its end. Fails only when the log cannot be read at all
/// (no CAP_SYSLOG, no /dev/kmsg, no journalctl, a missing file): the error
/// says what to do.
pub async fn collect(
    source: &LogSource,
    cri_socket: Option<PathBuf>,
    cri_timeout: Duration,
) -> anyhow::Result<LogKills> {
    let (mut events, read, collected) = read::collect(source).await?;
    attribute(&mut events, source, cri_socket, cri_timeout).await;
    Ok(LogKills { events, read, collected })
}

/// What `history` does to each event before printing it (its `attribute`,
/// which is private to it).
async fn attribute(events: &mut [OomEvent], source: &LogSource, cri_socket: Option<PathBuf>, cri_timeout: Duration) {
    if events.is_empty() {
        return;
    }
    let root = detect_hierarchy().ok().map(|h| h.root().to_path_buf());
    let mut pods = PodResolver::new(cri_socket, cri_timeout);
    pods.warm().await;
    let node = (!matches!(source, LogSource::File(_))).then(node_name);
    let mut diagnoser = Diagnoser::default();
    for event in events.iter_mut() {
        for cgroup in event.victim_cgroup.iter_mut().chain(event.oom_cgroup.iter_mut().map(|o| &mut o.cgroup)) {
            if let (Some(root), Some(path)) = (&root, &cgroup.path) {
                cgroup.id = live_cgroup_id(root, path).unwrap_or(0);
            }
        }
        let path = event.victim_cgroup.as_ref().and_then(|c| c.path.clone());
        if path.is_some() {
            event.workload = Some(pods.attribute(path.as_deref(), None).await);
        }
        event.node.clone_from(&node);
        event.diagnosis = Some(diagnoser.diagnose(event));
    }
}

/// Whether `event` happened at or after `since`. An event without a
/// wall-clock time is kept: whether it is recent is unknown.
pub fn in_window(event: &OomEvent, since: Option<SystemTime>) -> bool {
    let Some(since) = since else { return true };
    event.time.as_deref().and_then(|t| humantime::parse_rfc3339_weak(t).ok()).is_none_or(|time| time >= since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Victim;

    #[test]
    fn the_window_keeps_later_and_untimed_kills() {
        let at =
            |time: Option<&str>| OomEvent { time: time.map(str::to_owned), ..OomEvent::of_victim(Victim::default()) };
        let since = humantime::parse_rfc3339("2026-11-29T10:00:00Z").ok();
        assert!(in_window(&at(Some("2026-11-29T10:00:01.5Z")), since));
        assert!(!in_window(&at(Some("2026-11-29T09:59:59Z")), since));
        assert!(in_window(&at(None), since));
        assert!(in_window(&at(Some("2000-01-01T00:00:00Z")), None));
    }
}
