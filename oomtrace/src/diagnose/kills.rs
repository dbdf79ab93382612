//! The kills in the kernel log, attributed and diagnosed as `history` does
//! it: the cgroups' ids where the directories still exist, the pods the CRI
//! still lists, the node's name, and one diagnosis per event in log order (so
//! that the `repeated` finding counts the workload's earlier kills).

use std::{path::PathBuf, time::Duration};

use crate::history::{self, LogSource, collect::CollectStats, read, read::ReadSummary};
use oomtrace_event::OomEvent;

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
    history::attribute(&mut events, source, cri_socket, cri_timeout).await;
    Ok(LogKills { events, read, collected })
}
