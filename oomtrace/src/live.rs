//! `oomtrace live`: attach, then print every OOM victim as it happens.

use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    event::OomEvent,
    pipeline::{Pipeline, PipelineOptions, PipelineStats},
    probe::AttachPlan,
    sink::{self, OutputFormat},
};

/// How often the kernel-side loss counters are checked.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub output: OutputFormat,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Only victims whose cgroup path starts with this.
    pub cgroup_prefix: Option<String>,
    /// Only victims with this command name.
    pub comm: Option<String>,
    /// Only victims in this namespace / pod / container (by name).
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    /// CRI socket (None: the default sockets) and the bound on each call.
    pub cri_socket: Option<PathBuf>,
    pub cri_timeout: Duration,
    pub plan: AttachPlan,
    /// Size of the kernel-to-user ring buffer, bytes.
    pub ring_bytes: u32,
}

/// What happened during a run; printed on exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveSummary {
    pub shown: u64,
    pub filtered_out: u64,
    pub pipeline: PipelineStats,
}

impl LiveOptions {
    fn matches(&self, event: &OomEvent) -> bool {
        if let Some(comm) = &self.comm
            && event.victim.comm.as_deref() != Some(comm.as_str())
        {
            return false;
        }
        let workload = event.workload.as_ref();
        let wanted = |want: &Option<String>, have: Option<&String>| want.as_ref().is_none_or(|w| have == Some(w));
        if !wanted(&self.namespace, workload.and_then(|w| w.namespace.as_ref()))
            || !wanted(&self.pod, workload.and_then(|w| w.pod.as_ref()))
            || !wanted(&self.container, workload.and_then(|w| w.container.as_ref()))
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

    fn pipeline(&self) -> PipelineOptions {
        PipelineOptions {
            plan: self.plan,
            ring_bytes: self.ring_bytes,
            cri_socket: self.cri_socket.clone(),
            cri_timeout: self.cri_timeout,
            node_name: None,
        }
    }
}

/// `/a/b` has prefixes `/a/b`, `/a` and `/`, but `/ab` does not have `/a`.
fn cgroup_has_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

pub async fn run(options: LiveOptions) -> anyhow::Result<LiveSummary> {
    let mut pipeline = Pipeline::start(&options.pipeline()).await?;
    let mut sink = sink::for_format(options.output);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    sink.start(&mut out).context("writing to stdout")?;

    let mut summary = LiveSummary::default();
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let deadline = tokio::time::sleep(options.duration.unwrap_or(Duration::from_secs(u32::MAX as u64)));
    tokio::pin!(deadline);
    let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
    let mut events = Vec::new();

    'run: loop {
        tokio::select! {
            batch = pipeline.next_events(&mut events) => {
                batch?;
                for event in events.drain(..) {
                    if !options.matches(&event) {
                        summary.filtered_out += 1;
                        continue;
                    }
                    if let Err(error) = sink.event(&mut out, &event) {
                        if error.kind() == std::io::ErrorKind::BrokenPipe {
                            break 'run;
                        }
                        return Err(error).context("writing an event to stdout");
                    }
                    summary.shown += 1;
                    if options.count.is_some_and(|n| summary.shown >= n) {
                        break 'run;
                    }
                }
            }
            _ = stats_tick.tick() => {
                pipeline.poll_stats();
            }
            _ = &mut deadline => break,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    summary.pipeline = pipeline.stats();
    drop(pipeline);
    let _ = out.flush();
    let p = summary.pipeline;
    tracing::info!(
        shown = summary.shown,
        filtered_out = summary.filtered_out,
        lost_ringbuf_full = p.lost_ringbuf_full,
        undecodable = p.undecodable,
        cgroup_unresolved = p.cgroup_unresolved,
        context_missing = p.context_missing,
        partially_attributed = p.partially_attributed,
        cri_failures = p.cri_failures,
        "detached"
    );
    Ok(summary)
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
