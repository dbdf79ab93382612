use std::io::Write;
use std::time::Duration;

use super::*;

fn record(seq: u64) -> KmsgRecord {
    parse_record(format!("6,{seq},{seq},-;message {seq}").as_bytes()).unwrap()
}

fn seqs_returned(records: &mut Records, seqs: impl IntoIterator<Item = u64>) -> Vec<u64> {
    seqs.into_iter()
        .filter_map(|seq| match records.account(record(seq)) {
            ReadOutcome::Record(record) => Some(record.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn records_before_the_first_rotated_out_and_gaps_were_overwritten() {
    let mut records = Records::new(PathBuf::from("test"));
    assert_eq!(seqs_returned(&mut records, [100, 101, 105, 106]), [100, 101, 105, 106]);
    let summary = records.summary;
    assert_eq!((summary.rotated_out, summary.overwritten), (100, 3));
    assert_eq!((summary.first_seq, summary.last_seq, summary.records, summary.lines), (Some(100), Some(106), 4, 4));
}

#[test]
fn after_a_saved_seq_older_records_are_skipped_and_missing_ones_counted() {
    let mut records = Records::new(PathBuf::from("test"));
    records.after_seq = Some(50);
    assert_eq!(seqs_returned(&mut records, 40..=52), [51, 52]);
    assert_eq!(
        (records.summary.already_seen, records.summary.rotated_out, records.summary.first_seq),
        (11, 0, Some(51))
    );

    // The daemon was down long enough for the buffer to wrap past its position.
    let mut records = Records::new(PathBuf::from("test"));
    records.after_seq = Some(50);
    assert_eq!(seqs_returned(&mut records, [60, 61]), [60, 61]);
    assert_eq!((records.summary.rotated_out, records.summary.already_seen), (9, 0));
}

#[test]
fn following_from_the_end_misses_nothing_before_its_first_record() {
    let mut records = Records::new(PathBuf::from("test"));
    records.from_end = true;
    assert_eq!(seqs_returned(&mut records, [1000, 1002]), [1000, 1002]);
    assert_eq!((records.summary.rotated_out, records.summary.overwritten), (0, 1));
}

#[test]
fn open_errors_say_what_to_do() {
    let missing = KmsgReader::open_path(Path::new("/nonexistent/kmsg")).unwrap_err();
    assert!(matches!(missing, KmsgError::NotFound { .. }), "{missing:?}");
    let denied = KmsgError::PermissionDenied { path: PathBuf::from(KMSG_PATH), dmesg_restrict: "1".to_owned() };
    assert_eq!(
        denied.to_string(),
        "reading /dev/kmsg needs CAP_SYSLOG when kernel.dmesg_restrict=1 (it is 1 here): run as root, add \
         CAP_SYSLOG, or use --journal / --file"
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A real OOM kill in a memory cgroup of the test's own (64 MiB limit): its pid, once the
/// kernel has reported it. On a machine just booted the ring buffer holds no kill otherwise.
pub(crate) fn oom_kill_for_the_log(name: &str) -> u32 {
    let name = format!("oomtrace-unit-{name}-{}", std::process::id());
    let cgroup = oomtrace_testkit::cgroup::MemCgroup::create(&name, Some(64 << 20)).unwrap();
    cgroup.oom_kill_hog(256 << 20).unwrap()
}

/// Reads this machine's ring buffer after a kill of the test's own and checks that kill is
/// there and the bookkeeping adds up to the sequence numbers.
#[test]
fn reads_this_machines_ring_buffer_with_its_oom_kills() {
    if !is_root() {
        eprintln!("skipped: reading /dev/kmsg needs root (CAP_SYSLOG) here");
        return;
    }
    let victim = oom_kill_for_the_log("kmsg");
    let ours = format!("out of memory: Killed process {victim} ");
    let mut reader = KmsgReader::open().unwrap();
    let mut our_kill = false;
    let mut kill_lines = 0;
    let mut kernel_records = 0;
    for record in reader.by_ref() {
        let record = record.unwrap();
        kernel_records += u64::from(record.is_kernel());
        kill_lines += record.lines.iter().filter(|line| line.message.contains("out of memory: Killed process")).count();
        our_kill |= record.lines.iter().any(|line| line.message.contains(&ours));
    }
    let summary = reader.summary();
    eprintln!("{summary:?}, {kill_lines} kill lines");
    assert!(our_kill, "the kill of pid {victim} is in the ring buffer ({kill_lines} kill lines)");
    assert!(kernel_records > 0 && summary.records >= kernel_records);
    let (first, last) = (summary.first_seq.unwrap(), summary.last_seq.unwrap());
    assert_eq!(summary.rotated_out, first, "sequence numbers start at 0 each boot");
    assert_eq!(summary.records + summary.overwritten, last - first + 1);
    assert!(summary.lines >= summary.records);

    // A reader after the last seq but five returns those five (and any printed since).
    let mut tail = KmsgReader::open().unwrap().after_seq(last - 5);
    let tail_seqs: Vec<u64> = tail.by_ref().map(|record| record.unwrap().seq).collect();
    assert_eq!(tail_seqs[..5], [last - 4, last - 3, last - 2, last - 1, last]);
    assert_eq!(tail.summary().rotated_out, 0);
    assert!(tail.summary().already_seen > 0);
}

#[tokio::test]
async fn follows_records_printed_after_it_started() {
    if !is_root() {
        eprintln!("skipped: reading and writing /dev/kmsg needs root here");
        return;
    }
    let mut follower = KmsgFollower::from_end().unwrap();
    let marker = format!("oomtrace klog follow test {}", std::process::id());
    // A process writing to /dev/kmsg gets facility user, never the kernel's.
    let mut kmsg = OpenOptions::new().write(true).open(KMSG_PATH).unwrap();
    kmsg.write_all(format!("<6>{marker}\n").as_bytes()).unwrap();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let records = follower.next_items().await.unwrap();
            if let Some(record) = records.into_iter().find(|record| record.lines[0].message == marker) {
                return record;
            }
        }
    })
    .await
    .expect("the written record arrives within 5 s");
    assert!(!found.is_kernel(), "facility {}", found.facility);
    assert_eq!(follower.summary().rotated_out, 0);
}
