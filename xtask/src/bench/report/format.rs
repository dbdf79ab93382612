//! Cells and phrases several report sections write the same way.

use std::{fmt::Write as _, time::Duration};

use crate::bench::figures::{CpuUse, KillRun, Section};

pub fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// A value with its unit, or "n/a".
pub fn cell(value: Option<f64>, unit: &str, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:.decimals$} {unit}").trim_end().to_owned(),
        None => "n/a".to_owned(),
    }
}

/// `a / b` as a factor, or "n/a".
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".to_owned(),
    }
}

/// "matched/killed (N missing, N duplicate)", and the hogs not killed.
pub fn events_cell(run: &KillRun) -> String {
    let mut text = format!(
        "{}/{} ({} missing, {} duplicate)",
        run.events_matched(),
        run.oom_killed(),
        run.missing.len(),
        run.duplicates
    );
    if run.not_killed > 0 {
        write!(text, "; {} of {} hogs not killed", run.not_killed, run.hogs).ok();
    }
    text
}

/// µs below a millisecond, ms above.
pub fn short_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 { format!("{us:.1} µs") } else { format!("{:.2} ms", us / 1000.0) }
}

/// Both CPU readings of a window.
pub fn cpu_use(cpu: &CpuUse) -> String {
    let precise = match (cpu.precise_ms, cpu.precise_percent()) {
        (Some(ms), Some(percent)) => format!("; threads' run time {ms:.1} ms = {percent:.3} %"),
        _ => "; threads came and went, no ns figure".to_owned(),
    };
    format!("{:.2} % ({:.0} ms in ticks over {:.1} s{precise})", cpu.percent(), cpu.ticks_ms, cpu.seconds)
}

/// A section's state for a table cell; the section itself says why.
pub fn short_why<T>(section: &Section<T>, heading: &str) -> String {
    match section {
        Section::Unavailable(_) => format!("unavailable (see {heading})"),
        other => other.why_not(),
    }
}

/// The sentence a section without figures consists of.
pub fn not_measured<T>(out: &mut String, section: &Section<T>) {
    writeln!(out, "{}.", capitalized(&section.why_not())).ok();
    writeln!(out).ok();
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations_pick_their_unit() {
        assert_eq!(short_duration(Duration::from_nanos(460)), "0.5 µs");
        assert_eq!(short_duration(Duration::from_micros(251_620)), "251.62 ms");
    }

    #[test]
    fn cells_and_events() {
        assert_eq!(cell(Some(2.6691), "ms", 3), "2.669 ms");
        assert_eq!(cell(None, "ms", 3), "n/a");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50×");
        assert_eq!(ratio(Some(3.0), Some(0.0)), "n/a");
        let run = KillRun { hogs: 3, not_killed: 1, missing: vec![9], latencies_ns: vec![5], ..KillRun::default() };
        assert_eq!(events_cell(&run), "1/2 (1 missing, 0 duplicate); 1 of 3 hogs not killed");
        assert_eq!(capitalized("skipped (--no-daemon)"), "Skipped (--no-daemon)");
    }
}
