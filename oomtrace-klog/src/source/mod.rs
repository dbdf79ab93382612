//! The kernel log's sources, parsed: each turns its own framing into [`LogLine`]s.
//!
//! - [`kmsg`]: one `/dev/kmsg` record (sequence number, µs since boot, escaped text).
//! - [`journal`]: one line of `journalctl -k -o json`.
//! - [`file`]: one line of a saved log (syslog, `dmesg` in its variants, `journalctl -k`'s
//!   short formats, bare messages), format detected per line.
//!
//! All three are pure functions of their input (no I/O) and never panic: they are fuzzed
//! together (`fuzz/fuzz_targets/log_lines.rs`).

pub mod file;
pub mod journal;
pub mod kmsg;

use crate::line::{Caller, LogLine};

/// Splits a message that spans several lines (the kernel's v2 `memory.stat` dump is one
/// record, lines joined by `\n`) into one [`LogLine`] per line, each with `template`'s times,
/// sequence number and caller. A trailing newline does not make an empty last line; an empty
/// message stays one (empty) line, so every record yields at least one.
fn split_message(message: &str, template: &LogLine) -> Vec<LogLine> {
    let message = message.strip_suffix('\n').unwrap_or(message);
    message
        .split('\n')
        .map(|text| LogLine { message: text.strip_suffix('\r').unwrap_or(text).to_owned(), ..template.clone() })
        .collect()
}

/// `CONFIG_PRINTK_CALLER`'s id: `T<pid>` (a task) or `C<cpu>` (printed outside task context).
fn parse_caller(text: &str) -> Option<Caller> {
    let (kind, number) = text.split_at_checked(1)?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u32 = number.parse().ok()?;
    match kind {
        "T" => Some(Caller::Task(number)),
        "C" => Some(Caller::Cpu(number)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_message_becomes_one_line_each_with_the_same_stamp() {
        let template = LogLine { seq: Some(7), ..LogLine::default() };
        let lines = split_message("anon 1\nfile 2\n", &template);
        let texts: Vec<&str> = lines.iter().map(|line| line.message.as_str()).collect();
        assert_eq!(texts, ["anon 1", "file 2"]);
        assert!(lines.iter().all(|line| line.seq == Some(7)));
        assert_eq!(split_message("", &template).len(), 1);
    }

    #[test]
    fn callers_are_tasks_or_cpus() {
        assert_eq!(parse_caller("T1234"), Some(Caller::Task(1234)));
        assert_eq!(parse_caller("C1"), Some(Caller::Cpu(1)));
        for not_a_caller in ["", "T", "X12", "T-1", "T+1", "T99999999999", "é1"] {
            assert_eq!(parse_caller(not_a_caller), None, "{not_a_caller:?}");
        }
    }
}
