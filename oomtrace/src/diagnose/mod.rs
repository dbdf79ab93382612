//! `oomtrace diagnose`: the node's OOM report in one command, for the
//! operator who just logged in — the kills of the kernel log grouped by
//! workload with their diagnosis (cause, findings, summary, advice), the
//! node's memory now, and, when there was no kill, the guide's other answer
//! (evictions). docs/diagnose.md.

pub mod evictions;
pub mod group;
pub mod node_memory;
pub mod render;
pub mod report;

use std::{
    io::Write as _,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;

pub use self::render::ReportFormat;
use self::{
    group::Grouper,
    node_memory::NodeMemory,
    report::{KernelLogSummary, REPORT_VERSION, Report},
};
use crate::{
    filter::since,
    host::node_name,
    klog::{
        read::{LogKills, LogRead, LogSource},
        reconcile::LogCount,
    },
};

#[derive(Clone, Debug)]
pub struct DiagnoseOptions {
    pub source: LogSource,
    /// Only kills at or after this; `None`: the whole log.
    pub since: Option<SystemTime>,
    pub cri_socket: Option<PathBuf>,
    pub cri_timeout: Duration,
}

/// Makes the report and prints it in `format`.
pub async fn print(options: &DiagnoseOptions, format: ReportFormat) -> anyhow::Result<()> {
    let report = run(options).await?;
    let text = render::render(&report, format);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("writing the report to stdout")
        }
        _ => Ok(()),
    }
}

/// Reads the node's memory and the kernel log, and makes the report. Fails
/// only when the log cannot be read at all (the error says what to do). The
/// kills are grouped as they are read: memory is bounded by the groups kept
/// ([`group::Grouper`]), whatever the log's size.
pub async fn run(options: &DiagnoseOptions) -> anyhow::Result<Report> {
    // The kernel's count before the log is read: a kill between the two is
    // found but not counted, never counted but missing.
    let node_memory = node_memory::read(&node_memory::Sources::this_node());
    let mut kills = LogKills::open(&options.source, options.cri_socket.clone(), options.cri_timeout)?;
    let mut groups = Grouper::default();
    while let Some(event) = kills.next().await? {
        if since::in_window(&event, options.since) {
            groups.add(&event);
        }
    }
    Ok(build(&options.source, options.since, &kills.finish(), groups, node_memory, SystemTime::now()))
}

/// The report of a log read (`log`) whose kills at or after `since` are in `groups`.
pub fn build(
    source: &LogSource,
    since: Option<SystemTime>,
    log: &LogRead,
    groups: Grouper,
    node_memory: NodeMemory,
    now: SystemTime,
) -> Report {
    let this_boot = source.is_this_boot();
    let kills = groups.kills();
    let kernel_count = node_memory.kernel_oom_kills.filter(|_| this_boot);
    let count = LogCount { collected: log.collected, read: log.read, kernel_count };
    let no_kill = (kills == 0).then(|| evictions::note(since, this_boot));
    let (groups, left_out) = groups.finish();
    Report {
        version: REPORT_VERSION,
        generated_at: humantime::format_rfc3339_seconds(now).to_string(),
        node: node_name(),
        since: since.map(|s| humantime::format_rfc3339_seconds(s).to_string()),
        kernel_log: KernelLogSummary {
            source: log.read.origin.map_or("unknown", |o| o.as_str()),
            kills_in_log: log.collected.kills,
            kernel_count,
            reconciliation: count.reconciliation(),
        },
        kills,
        groups,
        groups_left_out: left_out,
        node_memory,
        no_kill,
    }
}
