//! `oomtrace live`: attach, then print every OOM victim as it happens.

use std::{
    io::{StdoutLock, Write},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    output::{self, EventWriter, OutputFormat},
    pipeline::{EventHandler, Flow, Pipeline, PipelineOptions, PipelineStats, log_stats},
};
use oomtrace_event::OomEvent;

#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub output: OutputFormat,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub filter: EventFilter,
    pub pipeline: PipelineOptions,
}

/// Which victims `live` shows; every filter that is set must match.
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

/// What happened during a run; printed on exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveSummary {
    pub shown: u64,
    pub filtered_out: u64,
    pub pipeline: PipelineStats,
}

impl From<crate::cli::FilterArgs> for EventFilter {
    fn from(args: crate::cli::FilterArgs) -> Self {
        Self {
            cgroup_prefix: args.cgroup,
            comm: args.comm,
            namespace: args.namespace,
            pod: args.pod,
            container: args.container,
        }
    }
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

/// Filters events and writes the ones wanted to stdout.
struct Printer<'a> {
    options: &'a LiveOptions,
    writer: Box<dyn EventWriter + Send>,
    out: StdoutLock<'static>,
    summary: LiveSummary,
}

impl EventHandler for Printer<'_> {
    fn event(&mut self, event: OomEvent) -> anyhow::Result<Flow> {
        if !self.options.filter.matches(&event) {
            self.summary.filtered_out += 1;
            return Ok(Flow::Continue);
        }
        if let Err(error) = self.writer.event(&mut self.out, &event) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Flow::Stop);
            }
            return Err(error).context("writing an event to stdout");
        }
        self.summary.shown += 1;
        Ok(if self.options.count.is_some_and(|n| self.summary.shown >= n) { Flow::Stop } else { Flow::Continue })
    }
}

pub async fn run(options: LiveOptions) -> anyhow::Result<LiveSummary> {
    let mut pipeline = Pipeline::start(&options.pipeline).await?;
    let mut printer = Printer {
        options: &options,
        writer: output::for_format(options.output),
        out: std::io::stdout().lock(),
        summary: LiveSummary::default(),
    };
    printer.writer.start(&mut printer.out).context("writing to stdout")?;
    pipeline.run(options.duration, &mut printer).await?;
    let mut summary = printer.summary;
    summary.pipeline = pipeline.stats();
    drop(pipeline);
    let _ = printer.out.flush();
    log_stats!("detached", summary.pipeline, shown = summary.shown, filtered_out = summary.filtered_out);
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
