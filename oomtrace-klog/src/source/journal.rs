//! One line of `journalctl -o json` (systemd's Journal JSON Format): an object of fields whose
//! values are strings, or arrays of byte values for data that is not UTF-8 text, or `null` for a
//! value over 4096 bytes unless journalctl runs with `--all`, or an array of such values when a
//! field occurs several times in the entry.
//!
//! For a kernel message (`_TRANSPORT=kernel`) journald copies the kmsg record's time stamp into
//! `_SOURCE_MONOTONIC_TIMESTAMP`; `__MONOTONIC_TIMESTAMP` and `__REALTIME_TIMESTAMP` are the times
//! journald stored the entry (for messages from early boot, read when journald started, that is
//! seconds later). The kmsg sequence number is not kept.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use crate::line::LogLine;

use super::split_message;

/// The fields of a journal entry that a kernel log reader needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalEntry {
    /// `_BOOT_ID`: which boot the entry belongs to (128-bit id as 32 hex digits).
    pub boot_id: Option<String>,
    /// `_TRANSPORT`: `kernel` for the kernel's messages ([`Self::is_kernel`]).
    pub transport: Option<String>,
    /// `PRIORITY` (syslog severity 0…7).
    pub priority: Option<u8>,
    /// `SYSLOG_FACILITY`: 0 for the kernel; a process writing to /dev/kmsg gets its own (user, 1)
    /// though journald still files it under `_TRANSPORT=kernel`.
    pub facility: Option<u32>,
    /// `__REALTIME_TIMESTAMP`: when journald stored the entry.
    pub stored_at: Option<SystemTime>,
    /// The message split at its newlines, each line with `since_boot` (the kernel's stamp when
    /// the entry has `_SOURCE_MONOTONIC_TIMESTAMP`, else journald's `__MONOTONIC_TIMESTAMP`) and
    /// `wall`: `__REALTIME_TIMESTAMP` less the time between the kernel's stamp and journald's
    /// (`__MONOTONIC_TIMESTAMP` − `_SOURCE_MONOTONIC_TIMESTAMP`), so that messages journald read
    /// late (at its start) keep their own time.
    pub lines: Vec<LogLine>,
}

impl JournalEntry {
    /// A message of the kernel itself: read from /dev/kmsg, with the kernel's facility.
    pub fn is_kernel(&self) -> bool {
        self.transport.as_deref() == Some("kernel") && self.facility.is_none_or(|facility| facility == 0)
    }
}

/// Why a line is not a usable journal entry.
#[derive(Debug, thiserror::Error)]
pub enum JournalParseError {
    #[error("not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("journal entry has no MESSAGE (a value over 4096 bytes is null unless journalctl runs with --all)")]
    NoMessage,
}

/// The fields read; serde skips the others without building them.
#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "MESSAGE")]
    message: Option<Value>,
    #[serde(rename = "_BOOT_ID")]
    boot_id: Option<Value>,
    #[serde(rename = "_TRANSPORT")]
    transport: Option<Value>,
    #[serde(rename = "PRIORITY")]
    priority: Option<Value>,
    #[serde(rename = "SYSLOG_FACILITY")]
    facility: Option<Value>,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime_us: Option<Value>,
    #[serde(rename = "__MONOTONIC_TIMESTAMP")]
    monotonic_us: Option<Value>,
    #[serde(rename = "_SOURCE_MONOTONIC_TIMESTAMP")]
    source_monotonic_us: Option<Value>,
}

/// Parses one line of `journalctl -o json` output.
pub fn parse_entry(line: &[u8]) -> Result<JournalEntry, JournalParseError> {
    let raw: RawEntry = serde_json::from_slice(line)?;
    let message = raw.message.as_ref().and_then(text).ok_or(JournalParseError::NoMessage)?;
    let stored_at =
        number(raw.realtime_us.as_ref()).and_then(|us| SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(us)));
    let stored_since_boot = number(raw.monotonic_us.as_ref()).map(Duration::from_micros);
    let source_since_boot = number(raw.source_monotonic_us.as_ref()).map(Duration::from_micros);
    // journald takes both of its stamps at once: the kernel's stamp, on the same monotonic clock,
    // dates the message that much earlier (for messages imported at journald's start, minutes).
    let wall = match (stored_at, stored_since_boot, source_since_boot) {
        (Some(stored_at), Some(stored), Some(source)) => {
            stored.checked_sub(source).and_then(|delay| stored_at.checked_sub(delay)).or(Some(stored_at))
        }
        _ => stored_at,
    };
    let template = LogLine { since_boot: source_since_boot.or(stored_since_boot), wall, ..LogLine::default() };
    Ok(JournalEntry {
        boot_id: raw.boot_id.as_ref().and_then(text),
        transport: raw.transport.as_ref().and_then(text),
        priority: number(raw.priority.as_ref()).and_then(|p| u8::try_from(p).ok()),
        facility: number(raw.facility.as_ref()).and_then(|f| u32::try_from(f).ok()),
        stored_at,
        lines: split_message(&message, &template),
    })
}

/// A field's value as text: a string, an array of bytes (lossy UTF-8), or the first of several
/// values.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            let bytes: Option<Vec<u8>> = items.iter().map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            Some(String::from_utf8_lossy(&bytes?).into_owned())
        }
        Value::Array(items) => items.first().and_then(text),
        _ => None,
    }
}

/// A decimal number field (journalctl writes them as strings; a number is accepted too).
fn number(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(number) => number.as_u64(),
        other => text(other)?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Journal JSON entries built from this machine's kmsg records of one memcg OOM kill
    /// (testdata/host-6.18-memcg.kmsg), in the field layout of real `journalctl -k -o json`
    /// output (field order as journalctl prints it; ids made up). This host runs no journald.
    const KILL_LINE: &str = r#"{"__CURSOR":"s=a15a24921c11194d35493d43c4ee0663;i=1f345;b=2f5630380a4c44f86ef49659a83bef18;m=4b97aa9f1;t=661682bafb73e;x=1cbf24eb3ecbb16c","__REALTIME_TIMESTAMP":"1795949897692990","__MONOTONIC_TIMESTAMP":"20291693041","_BOOT_ID":"2f5630380a4c44f86ef49659a83bef18","_MACHINE_ID":"65bb5423aacd4d00703c3ef79f7bbaae","_HOSTNAME":"node-1","_TRANSPORT":"kernel","SYSLOG_FACILITY":"0","SYSLOG_IDENTIFIER":"kernel","_SOURCE_MONOTONIC_TIMESTAMP":"20291692735","PRIORITY":"3","MESSAGE":"Memory cgroup out of memory: Killed process 13567 (dd) total-vm:265120kB, anon-rss:65280kB, file-rss:1716kB, shmem-rss:0kB, UID:0 pgtables:168kB oom_score_adj:0"}"#;

    #[test]
    fn a_kernel_entry_takes_the_kernels_own_time_stamp() {
        let entry = parse_entry(KILL_LINE.as_bytes()).unwrap();
        assert!(entry.is_kernel());
        assert_eq!(entry.boot_id.as_deref(), Some("2f5630380a4c44f86ef49659a83bef18"));
        assert_eq!(entry.priority, Some(3));
        assert_eq!(entry.lines.len(), 1);
        let line = &entry.lines[0];
        assert!(line.message.starts_with("Memory cgroup out of memory: Killed process 13567 (dd)"));
        assert_eq!(line.since_boot, Some(Duration::from_micros(20_291_692_735)), "_SOURCE_MONOTONIC, not journald's");
        // Stored 306 µs after the kernel stamped it: the wall time is the kernel's.
        assert_eq!(line.wall, Some(SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_949_897_692_684)));
        assert_eq!(entry.stored_at, Some(SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_949_897_692_990)));
        assert_eq!(line.seq, None);
    }

    /// Real output: systemd-journald 252 started on this machine (in a private mount namespace)
    /// imported its ring buffer; `journalctl -k -b -o json --all` around one memcg OOM kill.
    const JOURNALD_REPORT: &str = include_str!("testdata/journald-252-host-6.18-memcg.json");

    #[test]
    fn journalds_real_entries_parse_with_the_kernels_times() {
        let entries: Vec<JournalEntry> = JOURNALD_REPORT.lines().map(|l| parse_entry(l.as_bytes()).unwrap()).collect();
        assert_eq!(entries.len(), 107);
        assert!(entries.iter().all(|e| e.boot_id.as_deref() == Some("b6b1cdd3f9ba40e79902714dfdf4f8d1")));
        // One record a test process wrote to /dev/kmsg: journald files it as kernel transport.
        let written: Vec<&JournalEntry> = entries.iter().filter(|e| !e.is_kernel()).collect();
        assert_eq!(written.len(), 1);
        assert_eq!((written[0].transport.as_deref(), written[0].facility), (Some("kernel"), Some(1)));
        assert!(written[0].lines[0].message.starts_with("oomtrace klog follow test"));
        let kill = entries.iter().flat_map(|e| &e.lines).find(|l| l.message.contains("Killed process 18743")).unwrap();
        assert_eq!(kill.since_boot, Some(Duration::from_micros(22_828_096_374)));
        // journald read these records at its start, minutes after the kernel printed them:
        // realtime − (monotonic − source monotonic) is when the kernel did.
        let entry = entries.iter().find(|e| e.lines[0].message.contains("Killed process 18743")).unwrap();
        let delay = entry.stored_at.unwrap().duration_since(kill.wall.unwrap()).unwrap();
        assert!(delay > Duration::from_millis(10) && delay < Duration::from_secs(3600), "{delay:?}");
        let since_boots: Vec<Duration> = entries.iter().filter_map(|e| e.lines[0].since_boot).collect();
        assert!(since_boots.windows(2).all(|pair| pair[0] <= pair[1]), "in kernel order");
    }

    #[test]
    fn without_a_source_stamp_journalds_monotonic_time_is_used() {
        let entry =
            parse_entry(br#"{"MESSAGE":"started","__MONOTONIC_TIMESTAMP":"88608376","_TRANSPORT":"stdout"}"#).unwrap();
        assert!(!entry.is_kernel());
        assert_eq!(entry.lines[0].since_boot, Some(Duration::from_micros(88_608_376)));
        assert_eq!(entry.lines[0].wall, None);
        // The kernel's first messages are stamped 0, and 0 is their time.
        let early = parse_entry(
            br#"{"MESSAGE":"Linux version","_SOURCE_MONOTONIC_TIMESTAMP":"0","__MONOTONIC_TIMESTAMP":"5"}"#,
        );
        assert_eq!(early.unwrap().lines[0].since_boot, Some(Duration::ZERO));
    }

    #[test]
    fn a_multi_line_message_is_split() {
        let entry = parse_entry(
            br#"{"MESSAGE":"Memory cgroup stats for /pod:\nanon 67108864\nfile 4096","_SOURCE_MONOTONIC_TIMESTAMP":"7"}"#,
        )
        .unwrap();
        let texts: Vec<&str> = entry.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(texts, ["Memory cgroup stats for /pod:", "anon 67108864", "file 4096"]);
        assert!(entry.lines.iter().all(|l| l.since_boot == Some(Duration::from_micros(7))));
    }

    #[test]
    fn byte_array_and_repeated_messages_are_text() {
        let bytes = parse_entry(br#"{"MESSAGE":[75,105,108,108,101,100,32,255]}"#).unwrap();
        assert_eq!(bytes.lines[0].message, "Killed \u{fffd}");
        let repeated = parse_entry(br#"{"MESSAGE":["first","second"]}"#).unwrap();
        assert_eq!(repeated.lines[0].message, "first");
        let repeated_bytes = parse_entry(br#"{"MESSAGE":[[104,105],"x"]}"#).unwrap();
        assert_eq!(repeated_bytes.lines[0].message, "hi");
    }

    #[test]
    fn unusable_lines_are_errors() {
        assert!(matches!(parse_entry(br#"{"MESSAGE":null}"#), Err(JournalParseError::NoMessage)));
        assert!(matches!(parse_entry(br#"{"PRIORITY":"3"}"#), Err(JournalParseError::NoMessage)));
        assert!(matches!(parse_entry(br#"{"MESSAGE":[300]}"#), Err(JournalParseError::NoMessage)));
        assert!(matches!(parse_entry(b"-- No entries --"), Err(JournalParseError::Json(_))));
        assert!(matches!(parse_entry(b"[1,2]"), Err(JournalParseError::Json(_))));
        let odd_numbers = parse_entry(br#"{"MESSAGE":"m","__REALTIME_TIMESTAMP":"-1","PRIORITY":"999"}"#).unwrap();
        assert_eq!((odd_numbers.stored_at, odd_numbers.priority), (None, None));
    }
}
