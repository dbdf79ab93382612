use std::time::{Duration, SystemTime};

use jiff::civil::date;
use jiff::tz::{TimeZone, offset};

use super::*;
use crate::source::kmsg::{KmsgRecord, parse_record};

/// One memcg OOM report from this machine (6.18, cgroup v1; the zone is UTC), read in one go
/// as /dev/kmsg records and as `dmesg`, `dmesg -T`, `dmesg -x` and `dmesg --time-format iso`
/// printed them: the same 102 records in each.
const KMSG: &str = include_str!("../testdata/host-6.18-memcg.kmsg");
const DMESG: &str = include_str!("../testdata/host-6.18-memcg.dmesg");
const DMESG_T: &str = include_str!("../testdata/host-6.18-memcg.dmesg-T");
const DMESG_X: &str = include_str!("../testdata/host-6.18-memcg.dmesg-x");
const DMESG_ISO: &str = include_str!("../testdata/host-6.18-memcg.dmesg-iso");

/// The boot time of this machine when the fixtures were read: `dmesg -T` is boot time + stamp.
fn host_boot_time() -> SystemTime {
    utc("2026-11-29T10:58:17.692634Z") - Duration::from_micros(20_291_692_634)
}

fn utc(text: &str) -> SystemTime {
    SystemTime::try_from(text.parse::<jiff::Timestamp>().unwrap()).unwrap()
}

fn parser() -> FileParser {
    FileParser::new(FileContext { written_on: date(2026, 11, 29), time_zone: TimeZone::UTC })
}

fn kernel_line(parser: &mut FileParser, text: &str) -> LogLine {
    match parser.parse_line(text) {
        FileEvent::Line(line) => line,
        other => panic!("{text:?} gave {other:?}"),
    }
}

fn kmsg_lines() -> Vec<LogLine> {
    KMSG.lines().flat_map(|record| parse_record(record.as_bytes()).unwrap().lines).collect()
}

fn file_lines(text: &str) -> Vec<LogLine> {
    let mut parser = parser();
    let lines: Vec<LogLine> = text.lines().map(|line| kernel_line(&mut parser, line)).collect();
    assert_eq!(parser.counts().kernel_lines, 102);
    assert_eq!(parser.counts().bare_lines, 0);
    lines
}

#[test]
fn dmesg_and_dmesg_x_give_the_kmsg_messages_and_stamps() {
    let kmsg = kmsg_lines();
    for text in [DMESG, DMESG_X] {
        let lines = file_lines(text);
        assert_eq!(lines.len(), kmsg.len());
        for (line, record) in lines.iter().zip(&kmsg) {
            assert_eq!(line.message, record.message);
            assert_eq!(line.since_boot, record.since_boot);
            assert_eq!((line.wall, line.seq, line.caller), (None, None, None));
        }
    }
}

#[test]
fn dmesg_t_and_iso_give_the_kmsg_messages_at_wall_times() {
    let kmsg = kmsg_lines();
    for (text, precision) in [(DMESG_T, Duration::from_secs(1)), (DMESG_ISO, Duration::from_micros(1))] {
        for (line, record) in file_lines(text).iter().zip(&kmsg) {
            assert_eq!(line.message, record.message);
            assert_eq!(line.since_boot, None);
            let expected = host_boot_time() + record.since_boot.unwrap();
            let wall = line.wall.unwrap();
            // dmesg computes the wall time from the boot time it reads once; allow its rounding.
            let error = wall.duration_since(expected).or_else(|e| Ok::<_, ()>(e.duration())).unwrap();
            assert!(error < precision, "{:?}: {wall:?} vs {expected:?}", line.message);
        }
    }
}

#[test]
fn syslog_forms_with_and_without_the_kernels_stamp() {
    let mut parser = parser();
    let line = kernel_line(
        &mut parser,
        "Nov 29 10:58:17 node-1 kernel: [20291.692735] Memory cgroup out of memory: Killed process 13567 (dd)",
    );
    assert_eq!(line.message, "Memory cgroup out of memory: Killed process 13567 (dd)");
    assert_eq!(line.since_boot, Some(Duration::from_micros(20_291_692_735)));
    assert_eq!(line.wall, Some(utc("2026-11-29T10:58:17Z")));

    // journalctl -k (short): no bracket; short-precise: µs.
    let short =
        kernel_line(&mut parser, "Nov 29 10:58:17 node-1 kernel: dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL)");
    assert_eq!((short.message.as_str(), short.since_boot), ("dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL)", None));
    let precise = kernel_line(&mut parser, "Nov  1 10:58:17.748109 node-1 kernel:  oom_kill_process.cold+0x8/0x8a");
    assert_eq!(precise.message, " oom_kill_process.cold+0x8/0x8a", "a call trace line keeps its own space");
    assert_eq!(precise.wall, Some(utc("2026-11-01T10:58:17.748109Z")));

    // The task table keeps its brackets; they are no time stamps.
    let row = kernel_line(&mut parser, "Nov 29 10:58:17 node-1 kernel: [  13567]     0 13567    66280    16704");
    assert_eq!((row.message.as_str(), row.since_boot), ("[  13567]     0 13567    66280    16704", None));
    let header =
        kernel_line(&mut parser, "Nov 29 10:58:17 node-1 kernel: [20291.748395] [  pid  ]   uid  tgid total_vm");
    assert_eq!(header.message, "[  pid  ]   uid  tgid total_vm");

    // Other programs' lines are not kernel messages.
    for other in [
        "Nov 29 10:58:18 node-1 sshd[12]: Accepted publickey for root",
        "Nov 29 10:58:18 node-1 kubelet[812]: E1129 10:58:18 kuberuntime_manager.go:1 \"container OOMKilled\"",
        "2026-11-29T10:58:18.000001+00:00 node-1 containerd[700]: task oom event",
        "1795949898.000001 node-1 systemd[1]: cri-containerd-abc.scope: A process of this unit has been killed by the OOM killer.",
    ] {
        assert_eq!(parser.parse_line(other), FileEvent::Skipped(SkipReason::NotKernel), "{other}");
    }
    assert_eq!(parser.counts().not_kernel, 4);
}

#[test]
fn rfc3339_and_unix_forms() {
    let mut parser = parser();
    let rsyslog =
        kernel_line(&mut parser, "2026-11-29T10:58:17.692735+00:00 node-1 kernel: Memory cgroup out of memory: x");
    assert_eq!(
        (rsyslog.message.as_str(), rsyslog.wall),
        ("Memory cgroup out of memory: x", Some(utc("2026-11-29T10:58:17.692735Z")))
    );
    let short_iso =
        kernel_line(&mut parser, "2026-11-29T11:58:17+0100 node-1 kernel: oom_reaper: reaped process 13567 (dd)");
    assert_eq!(
        (short_iso.message.as_str(), short_iso.wall),
        ("oom_reaper: reaped process 13567 (dd)", Some(utc("2026-11-29T10:58:17Z")))
    );
    let unix = kernel_line(&mut parser, "1795949897.692735 node-1 kernel: Tasks state (memory values in pages):");
    assert_eq!(
        (unix.message.as_str(), unix.wall),
        ("Tasks state (memory values in pages):", Some(utc("2026-11-29T10:58:17.692735Z")))
    );
    let monotonic = kernel_line(&mut parser, "[20291.692735] node-1 kernel: Memory cgroup out of memory: x");
    assert_eq!(
        (monotonic.message.as_str(), monotonic.since_boot),
        ("Memory cgroup out of memory: x", Some(Duration::from_micros(20_291_692_735)))
    );
    // dmesg --time-format iso has no host: "Call Trace:" is its message, not host "Call".
    let iso = kernel_line(&mut parser, "2026-11-29T10:58:17,748127+00:00 Call Trace:");
    assert_eq!(iso.message, "Call Trace:");
}

#[test]
fn printk_caller_prefixes() {
    let mut parser = parser();
    for (text, caller) in [
        ("[  123.456789] [ T1234] Memory cgroup out of memory: x", Caller::Task(1234)),
        ("[  123.456789][ T1234] Memory cgroup out of memory: x", Caller::Task(1234)),
        ("[  123.456789][T1234] Memory cgroup out of memory: x", Caller::Task(1234)),
        ("[  123.456789] [    C1] Memory cgroup out of memory: x", Caller::Cpu(1)),
        ("[Sun Nov 29 10:58:17 2026] [ T1234] Memory cgroup out of memory: x", Caller::Task(1234)),
        ("Nov 29 10:58:17 node-1 kernel: [  123.456789][ T1234] Memory cgroup out of memory: x", Caller::Task(1234)),
    ] {
        let line = kernel_line(&mut parser, text);
        assert_eq!((line.message.as_str(), line.caller), ("Memory cgroup out of memory: x", Some(caller)), "{text}");
    }
}

#[test]
fn year_less_stamps_get_the_year_that_is_not_after_the_files_day() {
    // Written on 3 January 2027: December lines are from 2026, January lines from 2027.
    let mut parser = FileParser::new(FileContext { written_on: date(2027, 1, 3), time_zone: TimeZone::UTC });
    let december = kernel_line(&mut parser, "Dec 31 23:59:59 node-1 kernel: Out of memory: Killed process 1 (a)");
    let january = kernel_line(&mut parser, "Jan  1 00:00:01 node-1 kernel: Out of memory: Killed process 2 (b)");
    assert_eq!(december.wall, Some(utc("2026-12-31T23:59:59Z")));
    assert_eq!(january.wall, Some(utc("2027-01-01T00:00:01Z")));
    // One day of slack for a file whose mtime is read in another zone than its stamps.
    let tomorrow = kernel_line(&mut parser, "Jan  4 00:00:01 node-1 kernel: m");
    assert_eq!(tomorrow.wall, Some(utc("2027-01-04T00:00:01Z")));
    // 29 February goes to the last leap year.
    let leap = kernel_line(&mut parser, "Feb 29 12:00:00 node-1 kernel: m");
    assert_eq!((leap.message.as_str(), leap.wall), ("m", None), "2027 and 2026 have none, 2028's is after the file");
    let mut in_2028 = FileParser::new(FileContext::for_year(2028));
    assert_eq!(kernel_line(&mut in_2028, "Feb 29 12:00:00 node-1 kernel: m").wall, Some(utc("2028-02-29T12:00:00Z")));
}

#[test]
fn local_time_stamps_use_the_contexts_zone() {
    let zone = TimeZone::fixed(offset(-5));
    let mut parser = FileParser::new(FileContext { written_on: date(2026, 11, 29), time_zone: zone });
    assert_eq!(kernel_line(&mut parser, "Nov 29 06:00:00 node-1 kernel: m").wall, Some(utc("2026-11-29T11:00:00Z")));
    assert_eq!(kernel_line(&mut parser, "[Sun Nov 29 06:00:00 2026] m").wall, Some(utc("2026-11-29T11:00:00Z")));
    // A stamp with its own offset ignores the zone.
    assert_eq!(
        kernel_line(&mut parser, "2026-11-29T06:00:00+00:00 node-1 kernel: m").wall,
        Some(utc("2026-11-29T06:00:00Z"))
    );
}

#[test]
fn journal_markers() {
    let mut parser = parser();
    assert_eq!(
        parser.parse_line("-- Boot 2f5630380a4c44f86ef49659a83bef18 --"),
        FileEvent::Boot { boot_id: Some("2f5630380a4c44f86ef49659a83bef18".to_owned()) }
    );
    assert_eq!(parser.parse_line("-- Reboot --"), FileEvent::Boot { boot_id: None });
    for marker in [
        "-- No entries --",
        "-- Logs begin at Sun 2026-11-01 00:00:01 UTC, end at Sun 2026-11-29 11:14:00 UTC. --",
        "-- Journal begins at Sun 2026-11-01 00:00:01 UTC, ends at Sun 2026-11-29 11:14:00 UTC. --",
        "-- cursor: s=a15a24921c11194d35493d43c4ee0663;i=1f345",
    ] {
        assert_eq!(parser.parse_line(marker), FileEvent::Marker, "{marker}");
    }
    assert_eq!((parser.counts().boots, parser.counts().markers), (2, 4));
}

#[test]
fn bare_messages_and_grep_output() {
    let mut parser = parser();
    for bare in [
        "Memory cgroup out of memory: Killed process 13567 (dd) total-vm:265120kB, anon-rss:65280kB",
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a/b,task=dd,pid=1,uid=0",
        "oom_reaper: reaped process 13567 (dd), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
        "[  13567]     0 13567    66280    16704    16320      384         0   180224        0             0 dd",
        "65536 pages RAM",
        "Call Trace:",
    ] {
        let line = kernel_line(&mut parser, bare);
        assert_eq!((line.message.as_str(), line.since_boot, line.wall), (bare, None, None));
    }
    assert_eq!(parser.counts().bare_lines, 6);

    let grepped =
        kernel_line(&mut parser, "/var/log/syslog.1:Nov 29 10:58:17 node-1 kernel: Memory cgroup out of memory: x");
    assert_eq!(
        (grepped.message.as_str(), grepped.wall),
        ("Memory cgroup out of memory: x", Some(utc("2026-11-29T10:58:17Z")))
    );
    let numbered = kernel_line(&mut parser, "kern.log:1234:[20291.692735] Memory cgroup out of memory: x");
    assert_eq!(numbered.since_boot, Some(Duration::from_micros(20_291_692_735)));
    let line_number_only = kernel_line(&mut parser, "77:[20291.692735] Memory cgroup out of memory: x");
    assert_eq!(line_number_only.message, "Memory cgroup out of memory: x");
}

#[test]
fn unusable_lines_are_skipped_and_counted() {
    let mut parser = parser();
    assert_eq!(parser.parse_line(""), FileEvent::Skipped(SkipReason::Blank));
    assert_eq!(parser.parse_line("  \r\n"), FileEvent::Skipped(SkipReason::Blank));
    for unknown in ["2026/11/29 11:14:00 something happened", "11:14:00.123 worker started", "bell\u{7} in a line"] {
        assert_eq!(parser.parse_line(unknown), FileEvent::Skipped(SkipReason::Unrecognised), "{unknown}");
    }
    assert_eq!(
        parser.parse_line("user  :notice: [  12.300000] hello from logger"),
        FileEvent::Skipped(SkipReason::NotKernel)
    );
    let counts = parser.counts();
    assert_eq!((counts.blank, counts.unrecognised, counts.not_kernel, counts.kernel_lines), (2, 3, 1, 0));
}

#[test]
fn line_endings_are_not_part_of_the_message() {
    let mut parser = parser();
    assert_eq!(kernel_line(&mut parser, "[ 1.000000] msg\r\n").message, "msg");
    assert_eq!(kernel_line(&mut parser, "kern  :err   : [ 1.000000] msg\n").message, "msg");
}

#[test]
fn dmesg_raw_human_and_delta_forms() {
    let mut parser = parser();
    // Lines as this machine's `dmesg -r`, `dmesg -H` and `dmesg --time-format delta` print them.
    let raw = kernel_line(&mut parser, "<3>[22404.126623] Memory cgroup out of memory: Killed process 3007 (dd)");
    assert_eq!(
        (raw.message.as_str(), raw.since_boot),
        ("Memory cgroup out of memory: Killed process 3007 (dd)", Some(Duration::from_micros(22_404_126_623)))
    );
    assert_eq!(parser.parse_line("<14>[22464.886014] written by a process"), FileEvent::Skipped(SkipReason::NotKernel));
    let minute = kernel_line(&mut parser, "[Nov29 11:34] Memory cgroup out of memory: Killed process 3007 (dd)");
    assert_eq!(
        (minute.message.as_str(), minute.wall),
        ("Memory cgroup out of memory: Killed process 3007 (dd)", Some(utc("2026-11-29T11:34:00Z")))
    );
    for delta in
        ["[  +0.000117] oom_reaper: reaped process 3007 (dd)", "[<   60.759391>] oom_reaper: reaped process 3007 (dd)"]
    {
        let line = kernel_line(&mut parser, delta);
        assert_eq!(
            (line.message.as_str(), line.since_boot, line.wall),
            ("oom_reaper: reaped process 3007 (dd)", None, None)
        );
    }
}

#[test]
fn journalctl_short_full() {
    let mut parser =
        FileParser::new(FileContext { written_on: date(2026, 11, 29), time_zone: TimeZone::fixed(offset(1)) });
    let utc_line =
        kernel_line(&mut parser, "Sun 2026-11-29 10:58:17 UTC node-1 kernel: Memory cgroup out of memory: x");
    assert_eq!(
        (utc_line.message.as_str(), utc_line.wall),
        ("Memory cgroup out of memory: x", Some(utc("2026-11-29T10:58:17Z")))
    );
    let local = kernel_line(&mut parser, "Sun 2026-11-29 11:58:17 CET node-1 kernel: m");
    assert_eq!(local.wall, Some(utc("2026-11-29T10:58:17Z")));
    assert_eq!(
        parser.parse_line("Sun 2026-11-29 11:58:17 CET node-1 sshd[1]: m"),
        FileEvent::Skipped(SkipReason::NotKernel)
    );
}

/// The same entries as journalctl prints them in its short formats (journald 252, this host,
/// see journal.rs's fixture), against the JSON: the same messages, and the times each prints.
#[test]
fn journalctl_short_formats_of_real_entries() {
    use crate::source::journal::parse_entry;
    let entries: Vec<_> = include_str!("../testdata/journald-252-host-6.18-memcg.json")
        .lines()
        .map(|line| parse_entry(line.as_bytes()).unwrap())
        .collect();
    let formats = [
        ("short", include_str!("../testdata/journald-252-host-6.18-memcg.short"), Duration::from_secs(1)),
        ("short-full", include_str!("../testdata/journald-252-host-6.18-memcg.short-full"), Duration::from_secs(1)),
        ("short-iso", include_str!("../testdata/journald-252-host-6.18-memcg.short-iso"), Duration::from_secs(1)),
        (
            "short-iso-precise",
            include_str!("../testdata/journald-252-host-6.18-memcg.short-iso-precise"),
            Duration::from_micros(1),
        ),
        (
            "short-precise",
            include_str!("../testdata/journald-252-host-6.18-memcg.short-precise"),
            Duration::from_micros(1),
        ),
        ("short-unix", include_str!("../testdata/journald-252-host-6.18-memcg.short-unix"), Duration::from_micros(1)),
    ];
    for (format, text, precision) in formats {
        let mut parser = parser();
        let events: Vec<FileEvent> = text.lines().map(|line| parser.parse_line(line)).collect();
        assert_eq!(events.len(), entries.len());
        for (event, entry) in events.iter().zip(&entries) {
            let line = match event {
                FileEvent::Line(line) if entry.is_kernel() => line,
                // journalctl names a record a process wrote to /dev/kmsg by its own tag.
                FileEvent::Skipped(SkipReason::NotKernel) if !entry.is_kernel() => continue,
                other => panic!("{format}: {other:?} for {entry:?}"),
            };
            assert_eq!(line.message, entry.lines[0].message, "{format}");
            // journalctl prints when journald stored the entry, to its format's precision.
            let stored_at = entry.stored_at.unwrap();
            let printed = line.wall.unwrap_or_else(|| panic!("{format}: {line:?}"));
            assert!(
                printed <= stored_at && stored_at.duration_since(printed).unwrap() < precision,
                "{format}: {line:?}"
            );
        }
    }
    // short-monotonic: the kernel's stamp. Its user-space record is taken for dmesg's
    // `[stamp] message` (only the kernel's own tag is told apart there).
    let text = include_str!("../testdata/journald-252-host-6.18-memcg.short-monotonic");
    let mut parser = parser();
    for (line, entry) in text.lines().zip(&entries).filter(|(_, entry)| entry.is_kernel()) {
        let line = kernel_line(&mut parser, line);
        assert_eq!((&line.message, line.since_boot), (&entry.lines[0].message, entry.lines[0].since_boot));
    }
}

/// `cat /dev/kmsg > f` of the same report: the records as /dev/kmsg gives them, found among the
/// other formats by their header alone.
#[test]
fn saved_kmsg_records_are_the_records() {
    let mut parser = parser();
    let records: Vec<KmsgRecord> = KMSG
        .lines()
        .map(|line| match parser.parse_line(line) {
            FileEvent::Kmsg(record) => record,
            other => panic!("{line:?} gave {other:?}"),
        })
        .collect();
    let want: Vec<KmsgRecord> = KMSG.lines().map(|line| parse_record(line.as_bytes()).unwrap()).collect();
    assert_eq!(records, want);
    assert_eq!((parser.counts().kmsg_records, parser.counts().kernel_lines), (102, 102));
}

/// The rest of the dev-kmsg ABI in a saved file (Documentation/ABI/testing/dev-kmsg): dictionary
/// lines, escaped bytes (a v2 memory.stat dump is one record with `\x0a` inside), user-space
/// records, `c`/`+` fragments, and a header that does not parse (counted, not taken as a
/// message). Made from the ABI document's own examples and this host's records: no saved file
/// with dictionaries was at hand (6.18 prints none for these messages).
#[test]
fn saved_kmsg_dictionaries_escapes_and_user_space_records() {
    let mut parser = parser();
    let text = "\
7,160,424069,-;pci_root PNP0A03:00: host bridge window [io  0x0000-0x0cf7] (ignored)
 SUBSYSTEM=acpi
 DEVICE=+acpi:PNP0A03:00
6,5000,1234567,-,caller=T4242;anon 67108864\\x0afile 4096
30,5001,1234568,-;systemd[1]: Started foo.service
6,5002,1234569,c;Task in 
6,5003,1234570,+;/a killed as a result of limit of /a
6,x,1,-;bad sequence number
 DEVICE=+not:after-a-record
";
    let events: Vec<FileEvent> = text.lines().map(|line| parser.parse_line(line)).collect();
    assert!(matches!(&events[0], FileEvent::Kmsg(record) if record.dictionary.is_empty() && record.seq == 160));
    assert_eq!(events[1], FileEvent::Skipped(SkipReason::KmsgDictionary));
    assert_eq!(events[2], FileEvent::Skipped(SkipReason::KmsgDictionary));
    let FileEvent::Kmsg(stat) = &events[3] else { panic!("{:?}", events[3]) };
    let texts: Vec<&str> = stat.lines.iter().map(|line| line.message.as_str()).collect();
    assert_eq!(texts, ["anon 67108864", "file 4096"]);
    assert_eq!(stat.caller, Some(Caller::Task(4242)));
    assert_eq!(events[4], FileEvent::Skipped(SkipReason::NotKernel));
    let mut joiner = crate::source::kmsg::FragmentJoiner::default();
    let mut joined = Vec::new();
    for event in &events[5..7] {
        let FileEvent::Kmsg(record) = event else { panic!("{event:?}") };
        joined.extend(joiner.push(record.clone()));
    }
    joined.extend(joiner.flush());
    assert_eq!(joined[0].lines[0].message, "Task in /a killed as a result of limit of /a");
    assert_eq!(events[7], FileEvent::Skipped(SkipReason::Unrecognised));
    // A space-led line after no record is a message like any other (a call trace line).
    assert!(matches!(&events[8], FileEvent::Line(line) if line.message == " DEVICE=+not:after-a-record"));
    let counts = parser.counts();
    assert_eq!((counts.kmsg_records, counts.kmsg_dictionary, counts.not_kernel, counts.unrecognised), (4, 2, 1, 1));
    assert_eq!(parser.unrecognised_examples(), ["6,x,1,-;bad sequence number"]);
}

#[test]
fn what_is_not_a_kmsg_record() {
    let mut parser = parser();
    for line in ["6,1,2;no flags", "1,2,3,x;other flags", "a,1,2,-;x", "[ 1.000000] 6,1,2,-;quoted"] {
        assert!(!matches!(parser.parse_line(line), FileEvent::Kmsg(_)), "{line}");
    }
}

/// `journalctl -k -o json > f` (journald 252, this host): each line the entry `parse_entry`
/// makes of it; the record a process wrote to /dev/kmsg is not the kernel's.
#[test]
fn saved_journal_json_entries_are_the_entries() {
    use crate::source::journal::parse_entry;
    let text = include_str!("../testdata/journald-252-host-6.18-memcg.json");
    let mut parser = parser();
    for line in text.lines() {
        let want = parse_entry(line.as_bytes()).unwrap();
        match parser.parse_line(line) {
            FileEvent::Journal(entry) => assert_eq!(entry, want),
            FileEvent::Skipped(SkipReason::NotKernel) => assert!(!want.is_kernel(), "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    let counts = parser.counts();
    assert!(counts.journal_entries > 0 && counts.journal_entries == counts.kernel_lines);
    assert_eq!(parser.parse_line(r#"{"no":"message"}"#), FileEvent::Skipped(SkipReason::Unrecognised));
}
