//! Shared by the parser's tests: fixture files turned into the lines a source would deliver.

#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::time::Duration;

use oomtrace_klog::{Caller, LogLine, Parsed, ReportParser, report::OomReport};

/// The lines of a fixture file: `# ` lines (source notes) dropped; a syslog prefix
/// (`May 15 23:09:30 host kernel: `), a `[  12.345678]` stamp (kept as `since_boot`), a
/// `dmesg -T` stamp and a `CONFIG_PRINTK_CALLER` `[ T123]` (kept as `caller`) stripped. Only as
/// much prefix handling as the fixtures need: the real sources are oomtrace-klog's `source`
/// modules.
pub fn fixture(name: &str) -> Vec<LogLine> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text.lines().filter(|line| !line.starts_with("# ")).map(log_line).collect()
}

/// One fixture line as a source would deliver it.
pub fn log_line(raw: &str) -> LogLine {
    let message = match raw.split_once(" kernel: ") {
        Some((_, message)) => message,
        None => raw,
    };
    let (since_boot, message) = stamp(message);
    let message = wall_stamp(message);
    let (caller, message) = caller(message);
    LogLine { message: message.to_owned(), since_boot, caller, ..LogLine::default() }
}

/// Strips a `dmesg -T` stamp (`[Sun Jun 29 15:57:11 2025] `).
fn wall_stamp(message: &str) -> &str {
    match message.strip_prefix('[').and_then(|rest| rest.split_once("] ")) {
        Some((stamp, rest)) if stamp.contains(':') && stamp.chars().any(|c| c.is_ascii_alphabetic()) => rest,
        _ => message,
    }
}

/// Splits a `CONFIG_PRINTK_CALLER` prefix (`[ T6736] `, `[   T55]`, `[  C1]`) off a message.
fn caller(message: &str) -> (Option<Caller>, &str) {
    let Some((inside, rest)) = message.strip_prefix('[').and_then(|rest| rest.split_once(']')) else {
        return (None, message);
    };
    let inside = inside.trim_start();
    let parsed = match inside.split_at_checked(1) {
        Some(("T", pid)) => pid.parse().ok().map(Caller::Task),
        Some(("C", cpu)) => cpu.parse().ok().map(Caller::Cpu),
        _ => None,
    };
    match parsed {
        Some(caller) => (Some(caller), rest.strip_prefix(' ').unwrap_or(rest)),
        None => (None, message),
    }
}

/// Splits a `[  12.345678] ` stamp off a message.
fn stamp(message: &str) -> (Option<Duration>, &str) {
    let Some(rest) = message.strip_prefix('[') else { return (None, message) };
    let Some((stamp, rest)) = rest.split_once(']') else { return (None, message) };
    if !stamp.contains('.') {
        return (None, message); // a task-table row (`[ 1234]`), not a time stamp
    }
    match stamp.trim().parse::<f64>() {
        Ok(seconds) => (Some(Duration::from_secs_f64(seconds)), rest.strip_prefix(' ').unwrap_or(rest)),
        Err(_) => (None, message),
    }
}

/// A bare message line.
pub fn msg(message: &str) -> LogLine {
    LogLine { message: message.to_owned(), ..LogLine::default() }
}

/// Everything the parser yields for `lines`, with its parser (for the stats).
pub fn parse(lines: &[LogLine]) -> (Vec<Parsed>, ReportParser) {
    let mut parser = ReportParser::new();
    let mut out = Vec::new();
    for line in lines {
        parser.push(line, &mut out);
    }
    parser.finish(&mut out);
    (out, parser)
}

/// The reports among `parsed`.
pub fn reports(parsed: &[Parsed]) -> Vec<&OomReport> {
    parsed
        .iter()
        .filter_map(|item| match item {
            Parsed::Report(report) => Some(report.as_ref()),
            Parsed::Reaped(_) => None,
        })
        .collect()
}

/// The one report of a fixture, every OOM line of which parses.
pub fn only_report(name: &str) -> OomReport {
    let (parsed, parser) = parse(&fixture(name));
    let reports = reports(&parsed);
    assert_eq!((reports.len(), parser.stats().unparsed), (1, 0), "{name}");
    reports[0].clone()
}

/// The victim pids of `parsed`'s reports, in order.
pub fn victim_pids(parsed: &[Parsed]) -> Vec<u32> {
    reports(parsed).iter().filter_map(|report| report.victim_pid()).collect()
}
