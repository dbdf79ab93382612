//! `oomtrace history`: every OOM kill since boot, from the kernel log (or a
//! saved log), as the same events `live` prints, attributed the same way, and
//! reconciled with the kernel's own count of kills.

pub mod collect;
pub mod convert;
pub mod read;
pub mod since;

use std::{
    io::Write as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context as _;

use self::{collect::CollectStats, read::ReadSummary};
use crate::{
    enrich::{cgroup::detect_hierarchy, pod::PodResolver},
    host::node_name,
    kernel::oom_count,
    live::EventFilter,
    output::{self, OutputFormat},
};
use oomtrace_event::OomEvent;

/// Which log `history` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSource {
    /// This boot's kernel ring buffer: /dev/kmsg, else syslog(2).
    Kernel,
    /// This boot's kernel messages in the systemd journal.
    Journal,
    /// A saved log; `-` is stdin.
    File(PathBuf),
}

impl LogSource {
    /// A log of this boot, which the kernel's counter covers.
    fn is_this_boot(&self) -> bool {
        !matches!(self, Self::File(_))
    }
}

#[derive(Clone, Debug)]
pub struct HistoryOptions {
    pub source: LogSource,
    pub since: Option<SystemTime>,
    pub output: OutputFormat,
    pub filter: EventFilter,
    pub cri_socket: Option<PathBuf>,
    pub cri_timeout: Duration,
}

/// What a run found; the last line says it.
#[derive(Clone, Debug, Default)]
pub struct HistorySummary {
    pub shown: u64,
    pub filtered_out: u64,
    pub collected: CollectStats,
    pub read: ReadSummary,
    /// `oom_kill` of /proc/vmstat (logs of this boot only).
    pub kernel_count: Option<u64>,
}

pub async fn run(options: HistoryOptions) -> anyhow::Result<HistorySummary> {
    let kernel_count = if options.source.is_this_boot() {
        match oom_count::oom_kills_since_boot() {
            Ok(count) => Some(count),
            Err(error) => {
                tracing::warn!(%error, "the kernel's count of OOM kills is unavailable");
                None
            }
        }
    } else {
        None
    };
    let (mut events, read, collected) = read::collect(&options.source).await?;
    attribute(&mut events, &options.source, options.cri_socket.clone(), options.cri_timeout).await;
    let mut summary = HistorySummary { collected, read, kernel_count, ..HistorySummary::default() };
    let mut writer = output::for_format(options.output);
    let mut out = std::io::stdout().lock();
    writer.start(&mut out).context("writing to stdout")?;
    for event in &events {
        if !since::in_window(event, options.since) || !options.filter.matches(event) {
            summary.filtered_out += 1;
            continue;
        }
        match writer.event(&mut out, event) {
            Ok(()) => summary.shown += 1,
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(summary),
            Err(error) => return Err(error).context("writing an event to stdout"),
        }
    }
    let _ = out.flush();
    Ok(summary)
}

/// Names the pods (the CRI still lists a container that exited, until it is
/// removed) and the cgroups' ids where the directories still exist. Not the
/// main process: the container's pid then is not the one at the kill. Each
/// event is diagnosed in log order, so `repeated` counts earlier kills.
pub async fn attribute(
    events: &mut [OomEvent],
    source: &LogSource,
    cri_socket: Option<PathBuf>,
    cri_timeout: Duration,
) {
    if events.is_empty() {
        return;
    }
    let root = detect_hierarchy().ok().map(|h| h.root().to_path_buf());
    let mut pods = PodResolver::new(cri_socket, cri_timeout);
    pods.warm().await;
    let node = node_name();
    let mut diagnoser = crate::diagnosis::Diagnoser::default();
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
        if source.is_this_boot() {
            event.node = Some(node.clone());
        }
        event.diagnosis = Some(diagnoser.diagnose(event));
    }
}

/// The kernfs id (inode) of a cgroup that still exists.
pub fn live_cgroup_id(root: &Path, path: &str) -> Option<u64> {
    std::fs::metadata(root.join(path.trim_start_matches('/'))).ok().map(|m| m.ino())
}

/// The closing line: what was found against what the kernel counted.
pub fn reconciliation(summary: &HistorySummary) -> String {
    let found = summary.collected.kills;
    let mut line = match summary.kernel_count {
        Some(counted) => format!("kernel counted {counted} OOM kills since boot; {found} found in the log"),
        None => format!("{found} OOM kills found in the log"),
    };
    let mut notes = Vec::new();
    if summary.read.rotated > 0 {
        notes.push(format!("{} earlier records rotated out of the ring buffer", summary.read.rotated));
    }
    if summary.read.overwritten > 0 {
        notes.push(format!("{} records overwritten while reading", summary.read.overwritten));
    }
    if summary.collected.kill_line_only > 0 {
        notes.push(plural(summary.collected.kill_line_only, "report", "with only the kill line (rate-limited)"));
    }
    if summary.collected.repeated > 0 {
        notes.push(format!(
            "{} of them a memory.oom.group kill's first victim killed again (one event each)",
            summary.collected.repeated
        ));
    }
    if summary.read.boots > 1 {
        notes.push(format!("{} boots", summary.read.boots));
    }
    if summary.read.skipped > 0 {
        notes.push(format!("{} lines of no known format skipped", summary.read.skipped));
    }
    if summary.collected.unparsed > 0 {
        notes.push(format!("{} OOM lines not understood", summary.collected.unparsed));
    }
    if !notes.is_empty() {
        line.push_str(&format!(" ({})", notes.join("; ")));
    }
    if let Some(counted) = summary.kernel_count
        && counted > found
    {
        line.push_str(&format!(
            "; {} not in this log{}",
            counted - found,
            if summary.read.rotated > 0 { ": try --journal, which keeps more" } else { "" }
        ));
    }
    if summary.filtered_out > 0 {
        line.push_str(&format!("; {} shown, {} filtered out", summary.shown, summary.filtered_out));
    }
    line
}

/// "1 report with …", "2 reports with …".
fn plural(count: u64, noun: &str, rest: &str) -> String {
    format!("{count} {noun}{} {rest}", if count == 1 { "" } else { "s" })
}
