//! Kernel log lines in, events out: the report parser, the conversion, and
//! the counters `history` ends with.

use oomtrace_klog::{
    LogLine,
    report::{Parsed, ReportParser},
};

use super::convert::{self, LogClock};
use crate::event::{LogOrigin, OomEvent};

/// What reading one log found, besides the events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectStats {
    /// Lines handed to the parser.
    pub lines: u64,
    /// Kill lines (one per victim): what the kernel's `oom_kill` counts.
    pub kills: u64,
    /// Reports whose header and tables were not in the log (rate-limited
    /// away, or a filtered excerpt): their events say so in `unavailable`.
    pub kill_line_only: u64,
    /// Reports that ended before a kill line (an excerpt cut short, or a kill
    /// the kernel gave up: no killable task): no event.
    pub without_kill: u64,
    /// Lines that look like part of an OOM report but were not understood.
    pub unparsed: u64,
    /// `oom_reaper:` lines (the reaper freed a victim's memory).
    pub reaped: u64,
}

/// Feeds lines through the parser and turns every report into events.
pub struct Collector {
    parser: ReportParser,
    origin: LogOrigin,
    clock: LogClock,
    parsed: Vec<Parsed>,
    stats: CollectStats,
}

impl Collector {
    pub fn new(origin: LogOrigin, clock: LogClock) -> Self {
        Self { parser: ReportParser::new(), origin, clock, parsed: Vec::new(), stats: CollectStats::default() }
    }

    /// One line; the events of any report it completed go to `out`.
    pub fn line(&mut self, line: &LogLine, out: &mut Vec<OomEvent>) {
        self.stats.lines += 1;
        self.parser.push(line, &mut self.parsed);
        self.drain(out);
    }

    /// Lines that looked like part of an OOM report but were not understood, so far.
    pub fn unparsed(&self) -> u64 {
        self.parser.stats().unparsed
    }

    /// A boundary no report continues across (a new boot in a saved log).
    pub fn boundary(&mut self, out: &mut Vec<OomEvent>) {
        self.parser.finish(&mut self.parsed);
        self.drain(out);
    }

    /// End of input: the report in progress, if any.
    pub fn finish(&mut self, out: &mut Vec<OomEvent>) -> CollectStats {
        self.parser.finish(&mut self.parsed);
        self.drain(out);
        self.stats.unparsed = self.parser.stats().unparsed;
        self.stats
    }

    fn drain(&mut self, out: &mut Vec<OomEvent>) {
        for parsed in self.parsed.drain(..) {
            match parsed {
                Parsed::Report(report) => {
                    let events = convert::events(&report, self.origin, &self.clock);
                    if events.is_empty() {
                        self.stats.without_kill += 1;
                    } else if report.header.is_none() {
                        self.stats.kill_line_only += 1;
                    }
                    self.stats.kills += events.len() as u64;
                    out.extend(events);
                }
                Parsed::Reaped(_) => self.stats.reaped += 1,
            }
        }
    }
}
