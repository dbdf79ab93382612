//! `oomtrace live -o json` under test: started through the [`Tracer`]
//! runner, events read as [`Event`]s, its final stats line parsed once into a
//! [`LiveSummary`].

use std::{collections::BTreeMap, ffi::OsString, path::Path, process::ExitStatus, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::{
    event::Event,
    procfs::Clock,
    report::ReportRecord,
    tracer::{ParseLine, Spec, Tracer},
    warning::Record,
};

/// oomtrace logs this at info level once every probe is attached.
pub const READY: &str = "waiting for OOM kills";
/// The message of live's last log line, which carries its counters.
const SUMMARY_MESSAGE: &str = "detached";
/// How long oomtrace may take to attach before a test fails.
const ATTACH_DEADLINE: Duration = Duration::from_secs(20);
/// How long oomtrace may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// How to run `oomtrace <args>` with info logs, waiting for [`READY`];
/// `ktime_ns` is `bpf_ktime_get_ns()`.
pub fn spec(binary: &Path, args: &[&str], env: Vec<(&'static str, String)>) -> Spec {
    let mut env = env;
    env.push(("OOMTRACE_LOG", "info".to_owned()));
    Spec {
        program: binary.to_owned(),
        args: args.iter().map(OsString::from).collect(),
        env,
        markers: vec![READY],
        parse: Event::victim_and_ktime,
        clock: Clock::Monotonic,
    }
}

/// The next event of a tracer running oomtrace, or why there is none.
pub fn expect_event(tracer: &Tracer, timeout: Duration) -> Result<Event> {
    match tracer.next_event_line(timeout) {
        Some(event) => Event::parse(&event.line),
        None => bail!("no OOM event within {timeout:?}; oomtrace's log:\n{}", tracer.log_text()),
    }
}

/// The real `oomtrace live -o json`, running in the background.
pub struct Live {
    tracer: Tracer,
}

impl Live {
    /// Starts `oomtrace live -o json <args>` and waits until it is attached.
    pub fn start(binary: &Path, args: &[&str]) -> Result<Live> {
        Self::start_with(binary, args, Event::victim_and_ktime)
    }

    /// [`Live::start`] reading every record (warnings and kernel reports too):
    /// [`Live::records_until`] has them all.
    pub fn start_with_warnings(binary: &Path, args: &[&str]) -> Result<Live> {
        Self::start_with(binary, args, Record::key)
    }

    fn start_with(binary: &Path, args: &[&str], parse: ParseLine) -> Result<Live> {
        let args = [&["live", "-o", "json"][..], args].concat();
        let mut tracer = Tracer::spawn(&Spec { parse, ..spec(binary, &args, Vec::new()) })?;
        tracer.wait_marker(0, ATTACH_DEADLINE).context("oomtrace live did not attach")?;
        Ok(Live { tracer })
    }

    pub fn pid(&self) -> u32 {
        self.tracer.pid()
    }

    /// Its log so far (stderr).
    pub fn log_text(&self) -> String {
        self.tracer.log_text()
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to oomtrace.
    pub fn signal(&self, signal: libc::c_int) {
        self.tracer.signal(signal);
    }

    /// The next event, or an error with oomtrace's log after `timeout`.
    pub fn expect_event(&self, timeout: Duration) -> Result<Event> {
        expect_event(&self.tracer, timeout)
    }

    /// The next event and how long after the kill (its `ktime_ns`) its line
    /// arrived, or an error with oomtrace's log after `timeout`.
    pub fn expect_event_delayed(&self, timeout: Duration) -> Result<(Event, Duration)> {
        match self.tracer.next_event_line(timeout) {
            Some(event) => {
                let delay = Duration::from_nanos(event.observed.latency_ns().max(0) as u64);
                Ok((Event::parse(&event.line)?, delay))
            }
            None => bail!("no OOM event within {timeout:?}; oomtrace's log:\n{}", self.tracer.log_text()),
        }
    }

    /// Every event that arrives until none has come for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        while let Some(event) = self.tracer.next_event_line(quiet) {
            events.push(Event::parse(&event.line)?);
        }
        Ok(events)
    }

    /// Every record (kills and warnings; [`Live::start_with_warnings`]) until
    /// `until` returns true for one of them or `timeout` has passed.
    pub fn records_until(&self, timeout: Duration, mut until: impl FnMut(&Record) -> bool) -> Result<Vec<Record>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut records = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(records);
            }
            let Some(line) = self.tracer.next_event_line(left) else { return Ok(records) };
            let record = Record::parse(&line.line)?;
            let done = until(&record);
            records.push(record);
            if done {
                return Ok(records);
            }
        }
    }

    /// The next kill and then its kernel report (started with
    /// [`Live::start_with_warnings`]), or an error with what came and
    /// oomtrace's log after `timeout`.
    pub fn expect_kill_and_report(&self, timeout: Duration) -> Result<(Event, ReportRecord)> {
        let mut kill: Option<Event> = None;
        let records = self.records_until(timeout, |record| match record {
            Record::Kill(event) if kill.is_none() => {
                kill = Some((**event).clone());
                false
            }
            Record::KernelReport(report) => kill.as_ref().is_some_and(|kill| report.is_of(kill)),
            _ => false,
        })?;
        let report = records.iter().rev().find_map(|record| match record {
            Record::KernelReport(report) if kill.as_ref().is_some_and(|kill| report.is_of(kill)) => Some(report),
            _ => None,
        });
        match (kill, report) {
            (Some(kill), Some(report)) => Ok((kill, (**report).clone())),
            (kill, _) => bail!(
                "no kill followed by its kernel report within {timeout:?} (kill: {}); records: {records:#?}; oomtrace's log:\n{}",
                kill.map_or_else(|| "none".to_owned(), |k| k.line),
                self.tracer.log_text()
            ),
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s).
    pub fn stop(mut self) -> Result<Stopped> {
        let status = self.tracer.terminate(libc::SIGTERM, STOP_DEADLINE)?;
        Ok(Stopped { status, log: self.tracer.log_text() })
    }

    /// Waits for oomtrace to exit on its own (e.g. after --count).
    pub fn wait_exit(mut self, timeout: Duration) -> Result<Stopped> {
        let status = self.tracer.wait(timeout)?;
        Ok(Stopped { status, log: self.tracer.log_text() })
    }
}

/// How `oomtrace live` ended: its exit status and its log.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub log: String,
}

impl Stopped {
    /// The counters of its final `detached` line.
    pub fn summary(&self) -> Result<LiveSummary> {
        LiveSummary::from_log(&self.log)
    }

    /// Whether a log line carries `message` (a warning or notice, not a counter).
    pub fn logged(&self, message: &str) -> bool {
        self.log.lines().any(|line| line.contains(message))
    }
}

/// The counters `oomtrace live` logs when it detaches.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct LiveSummary {
    pub shown: u64,
    pub filtered_out: u64,
    pub lost_ringbuf_full: u64,
    pub undecodable: u64,
    pub cgroup_unresolved: u64,
    pub context_missing: u64,
    pub partially_attributed: u64,
    pub cri_failures: u64,
}

impl LiveSummary {
    /// The last `detached key=value ...` line of a text log.
    pub fn from_log(log: &str) -> Result<LiveSummary> {
        let line = log
            .lines()
            .rev()
            .find(|line| line.split_whitespace().any(|word| word == SUMMARY_MESSAGE))
            .with_context(|| format!("no {SUMMARY_MESSAGE:?} line in oomtrace's log:\n{log}"))?;
        let fields: BTreeMap<&str, u64> = line
            .split_whitespace()
            .skip_while(|word| *word != SUMMARY_MESSAGE)
            .filter_map(|word| word.split_once('='))
            .map(|(key, value)| value.parse().map(|value| (key, value)))
            .collect::<Result<_, _>>()
            .with_context(|| format!("a counter that is not a number in: {line}"))?;
        serde_json::to_value(fields)
            .and_then(serde_json::from_value)
            .with_context(|| format!("the counters of: {line}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detached_line_is_read_into_counters() {
        let log = "2026-11-29T05:26:16Z  INFO oomtrace::pipeline: waiting for OOM kills attached=x\n\
                   2026-11-29T05:26:18Z  INFO oomtrace::live: detached shown=1 filtered_out=2 lost_ringbuf_full=0 \
                   undecodable=0 cgroup_unresolved=0 context_missing=0 partially_attributed=3 cri_failures=0\n";
        let summary = LiveSummary::from_log(log).expect("a summary");
        assert_eq!((summary.shown, summary.filtered_out, summary.partially_attributed), (1, 2, 3));
        assert!(LiveSummary::from_log("INFO waiting for OOM kills").is_err());
        assert!(LiveSummary::from_log("INFO x: detached shown=1").is_err(), "every counter is needed");
    }
}
