//! Arbitrary bytes as kernel log lines (lossy UTF-8, one line per '\n') through the OOM-report
//! parser: it must never panic, and what it yields must be consistent with its own stats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace_klog::{Caller, LogLine, Parsed, ReportParser};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parser = ReportParser::new();
    let mut out = Vec::new();
    for (index, message) in text.split('\n').enumerate() {
        // Vary the caller so that the CONFIG_PRINTK_CALLER paths run too.
        let caller = match message.len() % 3 {
            0 => None,
            1 => Some(Caller::Task(1)),
            _ => Some(Caller::Task(2)),
        };
        let line = LogLine { message: message.to_owned(), seq: Some(index as u64), caller, ..LogLine::default() };
        parser.push(&line, &mut out);
    }
    parser.finish(&mut out);
    let reports = out.iter().filter(|item| matches!(item, Parsed::Report(_))).count() as u64;
    let reaped = out.len() as u64 - reports;
    assert_eq!(parser.stats().reports, reports);
    assert_eq!(parser.stats().reaped, reaped);
});
