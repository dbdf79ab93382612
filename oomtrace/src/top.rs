//! `oomtrace top`: the node's memory cgroups (and the node) ranked by time to
//! OOM, refreshed like `top`; `--once` and `-o json` for scripts. Needs no
//! eBPF and no capability: it reads cgroupfs and /proc (docs/warnings.md).

use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use oomtrace_event::{LimitLevel, WarningState, WorkloadInfo};
use serde::Serialize;

use crate::{
    enrich::{
        cgroup::detect_hierarchy,
        pod::{LEARN_INTERVAL, PodResolver},
    },
    filter::cgroup_has_prefix,
    forecast::{Outlook, runner::Foresight},
    output::{
        OutputFormat,
        table::{bytes, seconds, warning_subject},
    },
    pipeline::WarnOptions,
    watch::Watched,
};

#[derive(Clone, Debug)]
pub struct TopOptions {
    pub output: OutputFormat,
    pub once: bool,
    pub sample: Duration,
    pub interval: Duration,
    pub rows: usize,
    /// Only cgroups under this path (no node row).
    pub cgroup_prefix: Option<String>,
    pub warn: WarnOptions,
    pub cri_socket: Option<PathBuf>,
    pub cri_timeout: Duration,
}

/// One ranked cgroup, as `-o json` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct TopRow {
    /// The cgroup's path from the hierarchy root; absent for the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    pub limit_level: LimitLevel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadInfo>,
    pub usage_bytes: u64,
    pub unreclaimable_bytes: u64,
    pub limit_bytes: u64,
    pub slope_bytes_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<WarningState>,
}

const HEADER: &str = "TIME LEFT  STATE      LEVEL             WORKLOAD (NAMESPACE/POD/CONTAINER or CGROUP)             USAGE     UNRECLAIM  LIMIT     TREND";

pub async fn run(options: TopOptions) -> anyhow::Result<()> {
    let hierarchy = detect_hierarchy().context("oomtrace top reads the memory cgroups")?;
    let foresight = Foresight::start(&hierarchy, options.warn.watch, options.warn.forecast, None)
        .context("starting the memory cgroup watcher")?;
    let mut pods = PodResolver::new(options.cri_socket.clone(), options.cri_timeout);
    pods.warm().await;
    // The runtime's containers are listed again every 2 s while top samples
    // and refreshes: on a busy node the first listing may time out, and a
    // status call that times out falls back on what a listing learned.
    let _learner = pods.keep_learning(LEARN_INTERVAL);
    tokio::time::sleep(options.sample).await;
    let mut stdout = std::io::stdout().lock();
    loop {
        let rows = ranked(&foresight, &mut pods, &options).await;
        let text = match options.output {
            OutputFormat::Json => format!("{}\n", serde_json::to_string(&rows).context("writing JSON")?),
            OutputFormat::Table => table(&rows, foresight.stats().watched),
        };
        let clear = if !options.once && options.output == OutputFormat::Table { "\x1b[H\x1b[2J" } else { "" };
        match write!(stdout, "{clear}{text}").and_then(|()| stdout.flush()) {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            result => result.context("writing to stdout")?,
        }
        if options.once {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(options.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The first `rows` outlooks, soonest limit first, each attributed.
async fn ranked(foresight: &Foresight, pods: &mut PodResolver, options: &TopOptions) -> Vec<TopRow> {
    let wanted = |outlook: &Outlook| match (&options.cgroup_prefix, &outlook.watched) {
        (None, _) => true,
        (Some(prefix), Watched::Cgroup(path)) => cgroup_has_prefix(path, prefix),
        (Some(_), Watched::Node) => false,
    };
    let mut out = Vec::new();
    for outlook in foresight.outlooks().into_iter().filter(wanted).take(options.rows) {
        let Outlook { watched, level, usage_bytes, unreclaimable_bytes, limit_bytes, .. } = outlook;
        let cgroup = watched.cgroup().map(str::to_owned);
        let workload = pods.attribute_cgroup(cgroup.as_deref()).await;
        out.push(TopRow {
            cgroup,
            limit_level: level,
            workload,
            usage_bytes,
            unreclaimable_bytes,
            limit_bytes,
            slope_bytes_per_second: outlook.slope_bytes_per_second.round(),
            seconds_left: outlook.seconds_left.map(|s| (s * 10.0).round() / 10.0),
            state: outlook.state,
        });
    }
    out
}

fn table(rows: &[TopRow], watched: usize) -> String {
    let mut text = format!("{HEADER}\n");
    for row in rows {
        let left = row.seconds_left.map_or_else(|| "-".to_owned(), seconds);
        let state = row.state.map_or("-", |s| s.as_str());
        let workload = warning_subject(row.workload.as_ref(), row.cgroup.as_deref());
        let trend = match row.slope_bytes_per_second {
            s if s > 0.0 => format!("+{}/s", bytes(Some(s as u64))),
            _ => "flat".to_owned(),
        };
        text.push_str(&format!(
            "{left:<10} {state:<10} {level:<17} {workload:<56} {usage:<9} {held:<10} {limit:<9} {trend}\n",
            level = row.limit_level.as_str(),
            usage = bytes(Some(row.usage_bytes)),
            held = bytes(Some(row.unreclaimable_bytes)),
            limit = bytes(Some(row.limit_bytes)),
        ));
    }
    text.push_str(&format!("({watched} memory cgroups with a limit watched, and the node)\n"));
    text
}
