//! One `/dev/kmsg` record (Documentation/ABI/testing/dev-kmsg):
//!
//! ```text
//! 6,110843,20291692634,-,caller=T13567;oom-kill:constraint=CONSTRAINT_MEMCG,…\n
//!  SUBSYSTEM=pci\n
//! ```
//!
//! A header of comma-separated fields (`priority,seq,µs since boot,flags`, then optional
//! `key=value` fields such as `caller=`) up to the first `;`, the message up to the first
//! newline, then optional dictionary lines that start with a space. The kernel escapes every
//! byte below 0x20, from 0x7f, and `\` itself as `\xNN`, so a message spanning several lines
//! arrives as one record with `\x0a` inside.

use std::time::Duration;

use crate::line::{Caller, LogLine};

use super::{parse_caller, split_message};

/// A parsed `/dev/kmsg` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Syslog severity, 0 (emerg) … 7 (debug).
    pub level: u8,
    /// Syslog facility: 0 for the kernel's own messages; user space writing to /dev/kmsg gets
    /// 1 (user) or what it asks for. Only facility 0 is the kernel speaking ([`Self::is_kernel`]).
    pub facility: u32,
    /// The record's sequence number: consecutive, so a gap means records were lost.
    pub seq: u64,
    /// The kernel's time stamp (local_clock, µs since boot, suspend not counted).
    pub since_boot: Duration,
    /// `caller=T123` / `caller=C1` (CONFIG_PRINTK_CALLER, 5.1+).
    pub caller: Option<Caller>,
    pub continuation: Continuation,
    /// The `KEY=value` lines after the message (device messages: `SUBSYSTEM=`, `DEVICE=`).
    pub dictionary: Vec<(String, String)>,
    /// The message, unescaped and split at its newlines: at least one line, each carrying
    /// this record's seq, since_boot and caller.
    pub lines: Vec<LogLine>,
}

impl KmsgRecord {
    /// Whether the kernel printed this record (facility 0), rather than a process that wrote
    /// to /dev/kmsg (systemd and others do).
    pub fn is_kernel(&self) -> bool {
        self.facility == 0
    }
}

/// The record's continuation flag. Kernels before 5.10 split `pr_cont` output over records;
/// since then every record is whole (`-`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Continuation {
    /// `-`: a whole message.
    #[default]
    Whole,
    /// `c`: the first fragment of a message continued by later records.
    Begins,
    /// `+`: a fragment continuing the previous record.
    Continues,
}

/// Why a record could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KmsgParseError {
    #[error("kmsg record has no ';' ending its header")]
    NoHeaderEnd,
    #[error("kmsg record header has no valid {field} field")]
    BadField { field: &'static str },
}

/// Parses one record as `read(2)` returns it from /dev/kmsg (trailing newline optional).
pub fn parse_record(record: &[u8]) -> Result<KmsgRecord, KmsgParseError> {
    let header_end = record.iter().position(|&b| b == b';').ok_or(KmsgParseError::NoHeaderEnd)?;
    let (header, rest) = (&record[..header_end], &record[header_end + 1..]);
    let mut fields = header.split(|&b| b == b',');
    let priority: u32 = parse_number(fields.next(), "priority")?;
    let seq: u64 = parse_number(fields.next(), "sequence number")?;
    let since_boot_us: u64 = parse_number(fields.next(), "timestamp")?;
    let continuation = match fields.next().and_then(|flags| flags.first()) {
        Some(b'c') => Continuation::Begins,
        Some(b'+') => Continuation::Continues,
        _ => Continuation::Whole,
    };
    let caller = fields.find_map(|field| field.strip_prefix(b"caller=")).and_then(|id| parse_caller(ascii(id)?));

    let mut body = rest.split(|&b| b == b'\n');
    let message = unescape(body.next().unwrap_or_default());
    let dictionary = body
        .filter_map(|line| line.strip_prefix(b" "))
        .filter_map(|entry| {
            let entry = unescape(entry);
            let (key, value) = entry.split_once('=')?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect();

    let since_boot = Duration::from_micros(since_boot_us);
    let template = LogLine { since_boot: Some(since_boot), seq: Some(seq), caller, ..LogLine::default() };
    Ok(KmsgRecord {
        // The priority is `facility << 3 | level`: the mask keeps the level below 8.
        level: (priority & 7) as u8,
        facility: priority >> 3,
        seq,
        since_boot,
        caller,
        continuation,
        dictionary,
        lines: split_message(&message, &template),
    })
}

fn parse_number<T: std::str::FromStr>(field: Option<&[u8]>, name: &'static str) -> Result<T, KmsgParseError> {
    field.and_then(ascii).and_then(|text| text.parse().ok()).ok_or(KmsgParseError::BadField { field: name })
}

fn ascii(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// Undoes the kernel's `\xNN` escaping; text that is not valid UTF-8 afterwards (a comm or a
/// path with such bytes) is decoded lossily. A `\` not followed by two hex digits is kept.
fn unescape(text: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        if let (b'\\', [b'x', high, low, after @ ..]) = (byte, tail)
            && let (Some(high), Some(low)) = (hex_digit(*high), hex_digit(*low))
        {
            bytes.push(high << 4 | low);
            rest = after;
            continue;
        }
        bytes.push(byte);
        rest = tail;
    }
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

/// Joins the fragments kernels before 5.10 put in records of their own when a line was
/// printed in pieces (`pr_cont`: 4.x's `Task in /a killed as a result of limit of /b` is five
/// of them): a `c` record opens a line, the `+` records after it continue it. `dmesg` joins
/// them the same way. A fragment that lost its opening record is passed on as it is.
#[derive(Debug, Default)]
pub struct FragmentJoiner {
    open: Option<KmsgRecord>,
}

impl FragmentJoiner {
    /// Takes the next record; returns the records now complete, oldest first (at most two).
    pub fn push(&mut self, record: KmsgRecord) -> Vec<KmsgRecord> {
        match (record.continuation, &mut self.open) {
            (Continuation::Continues, Some(open)) => {
                append(open, record);
                Vec::new()
            }
            (Continuation::Begins, _) => self.open.replace(record).into_iter().collect(),
            (Continuation::Whole | Continuation::Continues, _) => {
                self.open.take().into_iter().chain([record]).collect()
            }
        }
    }

    /// The open line, if any, as it stands (at the end of the buffer: its last fragment may
    /// never come).
    pub fn flush(&mut self) -> Option<KmsgRecord> {
        self.open.take()
    }
}

/// Appends a fragment's text to the open line; lines after the fragment's first (a fragment
/// with embedded newlines) follow with the open record's stamps.
fn append(open: &mut KmsgRecord, fragment: KmsgRecord) {
    let template = open.lines.first().cloned().unwrap_or_default();
    let mut lines = fragment.lines.into_iter();
    if let (Some(last), Some(first)) = (open.lines.last_mut(), lines.next()) {
        last.message.push_str(&first.message);
    }
    open.lines.extend(lines.map(|line| LogLine { message: line.message, ..template.clone() }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's /dev/kmsg (6.18, cgroup v1) around one memcg OOM kill: 102 records read
    /// with `read(2)` and joined (none has an embedded newline).
    const HOST_REPORT: &str = include_str!("testdata/host-6.18-memcg.kmsg");

    #[test]
    fn a_real_kill_record_parses_with_its_header() {
        let record = parse_record(
            b"3,110844,20291692735,-;Memory cgroup out of memory: Killed process 13567 (dd) total-vm:265120kB, \
              anon-rss:65280kB, file-rss:1716kB, shmem-rss:0kB, UID:0 pgtables:168kB oom_score_adj:0\n",
        )
        .unwrap();
        assert_eq!((record.level, record.facility, record.seq), (3, 0, 110844));
        assert_eq!(record.since_boot, Duration::from_micros(20_291_692_735));
        assert_eq!(record.continuation, Continuation::Whole);
        assert!(record.is_kernel());
        assert_eq!(record.lines.len(), 1);
        let line = &record.lines[0];
        assert!(line.message.starts_with("Memory cgroup out of memory: Killed process 13567 (dd) total-vm"));
        assert!(line.message.ends_with("oom_score_adj:0"), "no trailing newline: {:?}", line.message);
        assert_eq!(
            (line.seq, line.since_boot, line.caller, line.wall),
            (Some(110844), Some(record.since_boot), None, None)
        );
    }

    #[test]
    fn every_record_of_the_hosts_report_parses_in_sequence() {
        let records: Vec<KmsgRecord> = HOST_REPORT.lines().map(|line| parse_record(line.as_bytes()).unwrap()).collect();
        assert_eq!(records.len(), 102);
        assert!(records.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1), "consecutive sequence numbers");
        let messages: Vec<&str> = records.iter().flat_map(|r| r.lines.iter().map(|l| l.message.as_str())).collect();
        assert!(messages.contains(&"dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"));
        // Call trace lines keep their leading space: the report parser tells them apart by it.
        assert!(messages.iter().any(|m| m.starts_with(" oom_kill_process")), "{messages:?}");
        assert!(messages.iter().any(|m| m.starts_with("[  pid  ]   uid  tgid total_vm")));
    }

    #[test]
    fn a_multi_line_record_with_caller_and_dictionary_is_split_and_unescaped() {
        // The shape of a v2 memcg `memory.stat` dump on 5.x (one pr_info of the whole buffer).
        let record = parse_record(
            b"6,5000,1234567,-,caller=T4242;anon 67108864\\x0afile 4096\\x0akernel 1024\\x0a\n SUBSYSTEM=memory\n",
        )
        .unwrap();
        assert_eq!(record.caller, Some(Caller::Task(4242)));
        let texts: Vec<&str> = record.lines.iter().map(|line| line.message.as_str()).collect();
        assert_eq!(texts, ["anon 67108864", "file 4096", "kernel 1024"]);
        assert!(record.lines.iter().all(|l| l.seq == Some(5000) && l.caller == Some(Caller::Task(4242))));
        assert_eq!(record.dictionary, [("SUBSYSTEM".to_owned(), "memory".to_owned())]);
    }

    #[test]
    fn continuation_flags_and_user_space_records_are_told_apart() {
        let begins = parse_record(b"4,1,2,c;part one").unwrap();
        let continues = parse_record(b"4,2,3,+; part two").unwrap();
        assert_eq!((begins.continuation, continues.continuation), (Continuation::Begins, Continuation::Continues));
        let from_systemd = parse_record(b"30,3,4,-;systemd[1]: Started foo.service").unwrap();
        assert_eq!((from_systemd.facility, from_systemd.level), (3, 6));
        assert!(!from_systemd.is_kernel());
        assert_eq!(parse_record(b"6,4,5,-,caller=C1;tick").unwrap().caller, Some(Caller::Cpu(1)));
    }

    #[test]
    fn escapes_are_undone_and_stray_backslashes_kept() {
        let record = parse_record(b"6,1,1,-;comm \\x5cx41 \\xzz tail\\x").unwrap();
        assert_eq!(record.lines[0].message, "comm \\x41 \\xzz tail\\x");
        let lossy = parse_record(b"6,1,1,-;bad \\xff byte").unwrap();
        assert_eq!(lossy.lines[0].message, "bad \u{fffd} byte");
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        assert_eq!(parse_record(b"no header"), Err(KmsgParseError::NoHeaderEnd));
        assert_eq!(parse_record(b";msg"), Err(KmsgParseError::BadField { field: "priority" }));
        assert_eq!(parse_record(b"6,x,1,-;msg"), Err(KmsgParseError::BadField { field: "sequence number" }));
        assert_eq!(parse_record(b"6,1;msg"), Err(KmsgParseError::BadField { field: "timestamp" }));
        assert_eq!(
            parse_record(b"6,1,99999999999999999999999,-;m"),
            Err(KmsgParseError::BadField { field: "timestamp" })
        );
        assert!(parse_record(b"6,1,2;").unwrap().lines[0].message.is_empty());
    }

    #[test]
    fn fragments_of_a_line_are_joined() {
        // 4.x memcg OOM: mem_cgroup_print_oom_info prints this line in five pr_cont pieces.
        let mut joiner = FragmentJoiner::default();
        let records = [
            "6,100,10,c;Task in ",
            "6,101,11,+;/kubepods/pod1/ctr",
            "6,102,12,+; killed as a result of limit of ",
            "6,103,13,+;/kubepods/pod1",
            "6,104,14,-;memory: usage 65536kB, limit 65536kB, failcnt 42",
        ];
        let mut complete = Vec::new();
        for record in records {
            complete.extend(joiner.push(parse_record(record.as_bytes()).unwrap()));
        }
        assert!(joiner.flush().is_none());
        let lines: Vec<(&str, Option<u64>)> =
            complete.iter().flat_map(|r| &r.lines).map(|l| (l.message.as_str(), l.seq)).collect();
        assert_eq!(
            lines,
            [
                ("Task in /kubepods/pod1/ctr killed as a result of limit of /kubepods/pod1", Some(100)),
                ("memory: usage 65536kB, limit 65536kB, failcnt 42", Some(104)),
            ]
        );
    }

    #[test]
    fn a_fragment_without_its_opening_and_an_unfinished_line_are_kept() {
        let mut joiner = FragmentJoiner::default();
        let orphan = joiner.push(parse_record(b"6,1,1,+;orphan").unwrap());
        assert_eq!(orphan.len(), 1);
        assert!(joiner.push(parse_record(b"6,2,2,c;first ").unwrap()).is_empty());
        let replaced = joiner.push(parse_record(b"6,3,3,c;second").unwrap());
        assert_eq!(replaced[0].lines[0].message, "first ");
        assert_eq!(joiner.flush().unwrap().lines[0].message, "second");
    }
}
