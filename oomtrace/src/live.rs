//! `oomtrace live`: attach, then print every OOM victim as it happens.

use std::{
    collections::VecDeque,
    io::{StdoutLock, Write},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    filter::EventFilter,
    output::{self, EventWriter, OutputFormat},
    pipeline::{EventHandler, Flow, Pipeline, PipelineOptions, PipelineStats, log_stats},
};
use oomtrace_event::{KernelReportRecord, OomEvent, Warning};

#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub output: OutputFormat,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub filter: EventFilter,
    pub pipeline: PipelineOptions,
}

/// What happened during a run; printed on exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveSummary {
    pub shown: u64,
    pub warnings: u64,
    /// Kernel reports shown, each after its kill.
    pub reports: u64,
    pub filtered_out: u64,
    pub pipeline: PipelineStats,
}

/// How many shown kills are remembered for their reports: more than can be
/// awaiting a kill line at once.
const SHOWN_KEPT: usize = 1024;

/// Filters events and writes the ones wanted to stdout.
struct Printer<'a> {
    options: &'a LiveOptions,
    writer: Box<dyn EventWriter + Send>,
    out: StdoutLock<'static>,
    summary: LiveSummary,
    /// The kills shown lately (victim pid, ktime_ns): their reports are shown, the others' not.
    shown: VecDeque<(u32, Option<u64>)>,
}

impl EventHandler for Printer<'_> {
    fn event(&mut self, event: &OomEvent) -> anyhow::Result<Flow> {
        if !self.options.filter.matches(event) {
            self.summary.filtered_out += 1;
            return Ok(Flow::Continue);
        }
        if let Err(error) = self.writer.event(&mut self.out, event) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Flow::Stop);
            }
            return Err(error).context("writing an event to stdout");
        }
        if self.shown.len() == SHOWN_KEPT {
            self.shown.pop_front();
        }
        self.shown.push_back((event.victim.pid, event.ktime_ns));
        self.summary.shown += 1;
        Ok(if self.options.count.is_some_and(|n| self.summary.shown >= n) { Flow::Stop } else { Flow::Continue })
    }

    /// Warnings are shown as their own rows (not counted by `--count`, which counts kills).
    fn warning(&mut self, warning: Warning) -> anyhow::Result<Flow> {
        if !self.options.filter.matches_warning(&warning) {
            return Ok(Flow::Continue);
        }
        if let Err(error) = self.writer.warning(&mut self.out, &warning) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Flow::Stop);
            }
            return Err(error).context("writing a warning to stdout");
        }
        self.summary.warnings += 1;
        Ok(Flow::Continue)
    }

    /// A report is shown after its kill, when the kill was.
    fn kernel_report(&mut self, record: &KernelReportRecord) -> anyhow::Result<Flow> {
        if !self.shown.contains(&(record.victim_pid, record.ktime_ns)) {
            return Ok(Flow::Continue);
        }
        if let Err(error) = self.writer.kernel_report(&mut self.out, record) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Flow::Stop);
            }
            return Err(error).context("writing a kernel report to stdout");
        }
        self.summary.reports += 1;
        Ok(Flow::Continue)
    }
}

pub async fn run(options: LiveOptions) -> anyhow::Result<LiveSummary> {
    let mut pipeline = Pipeline::start(&options.pipeline).await?;
    let mut printer = Printer {
        options: &options,
        writer: output::for_format(options.output),
        out: std::io::stdout().lock(),
        summary: LiveSummary::default(),
        shown: VecDeque::new(),
    };
    printer.writer.start(&mut printer.out).context("writing to stdout")?;
    pipeline.run(options.duration, &mut printer).await?;
    let mut summary = printer.summary;
    summary.pipeline = pipeline.stats();
    drop(pipeline);
    let _ = printer.out.flush();
    log_stats!(
        "detached",
        summary.pipeline,
        shown = summary.shown,
        warnings = summary.warnings,
        reports = summary.reports,
        filtered_out = summary.filtered_out
    );
    Ok(summary)
}
