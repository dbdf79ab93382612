use super::*;
use oomtrace_event::{EventSource, KernelReport, Victim};

const MS: Duration = Duration::from_millis(1);

fn live(pid: u32, ktime_s: u64) -> OomEvent {
    OomEvent {
        ktime_ns: Some(ktime_s * 1_000_000_000),
        killed: Some(true),
        ..OomEvent::of_victim(Victim { pid, ..Victim::default() })
    }
}

fn report() -> KernelReport {
    KernelReport { tasks_listed: Some(3), ..KernelReport::default() }
}

/// A kill line at `ktime_s` (+ a few ms of clock skew), with a report.
fn logged(pid: u32, ktime_s: u64, seq: u64) -> LogKill {
    let mut event = live(pid, ktime_s);
    event.source = EventSource::KernelLog;
    event.ktime_ns = event.ktime_ns.map(|k| k - 9_000_000);
    event.kernel_report = Some(report());
    LogKill { event, position: LogPosition { since_boot_us: ktime_s * 1_000_000, seq: Some(seq) } }
}

/// The same kill line, its report rate-limited away by the kernel.
fn logged_alone(pid: u32, ktime_s: u64, seq: u64) -> LogKill {
    let mut kill = logged(pid, ktime_s, seq);
    kill.event.kernel_report = None;
    kill
}

fn joiner() -> Joiner {
    Joiner::new(2000 * MS, LogPosition::default())
}

/// A report record is the live event's (its kernel time, whole seconds here;
/// the log's is 9 ms earlier) with the kill's report.
fn assert_report(record: &KernelReportRecord) {
    assert_eq!(record.ktime_ns.map(|k| k % 1_000_000_000), Some(0), "the live event's time: {record:?}");
    assert_eq!(record.kernel_report, report(), "the kill's report: {record:?}");
}

/// The victims of what is ready, as (pid, `K`ill from the log or `R`eport of a live event).
fn ready(j: &mut Joiner) -> Vec<(u32, char)> {
    j.take_ready()
        .iter()
        .map(|joined| match joined {
            Joined::Kill(event) => (event.victim.pid, 'K'),
            Joined::Report(record) => {
                assert_report(record);
                (record.victim_pid, 'R')
            }
        })
        .collect()
}

/// The usual order: the event goes out first, its kill line (the report
/// printed before it) is read after: the report follows as its own record.
#[test]
fn a_live_events_report_follows_when_its_kill_line_is_read() {
    let mut j = joiner();
    j.sent(live(7, 100), Duration::ZERO);
    assert!(j.awaits_kill_line());
    assert_eq!(ready(&mut j), vec![], "nothing until the kill line");
    j.logged(logged(7, 100, 40), MS);
    assert_eq!(ready(&mut j), vec![(7, 'R')]);
    assert!(!j.awaits_kill_line());
    j.expire(5_000 * MS);
    assert_eq!(ready(&mut j), vec![], "its kill line is no second event");
    assert_eq!(j.position().seq, Some(40), "accounted for");
    assert_eq!(j.next_deadline(), None);
}

#[test]
fn a_report_read_whole_first_follows_the_live_event_at_once() {
    let mut j = joiner();
    j.logged(logged(7, 100, 40), Duration::ZERO);
    j.sent(live(7, 100), 5 * MS);
    assert_eq!(ready(&mut j), vec![(7, 'R')]);
    j.expire(10_000 * MS);
    assert_eq!(ready(&mut j), vec![], "the kill is not reported again");
    assert_eq!(j.position().seq, Some(40));
}

/// A kill whose report the kernel rate-limited (10 per 5 s) has no report
/// record: its kill line only moves the position. A fake clock: a
/// rate-limited report cannot be produced reliably for real (it takes an
/// 11th report within 5 s, and the kernel's limit is shared with every other
/// OOM on the machine).
#[test]
fn a_kill_line_without_its_report_gives_no_record() {
    let mut j = joiner();
    j.sent(live(7, 100), Duration::ZERO);
    j.logged(logged_alone(7, 100, 40), 300 * MS);
    j.expire(5_000 * MS);
    assert_eq!(ready(&mut j), vec![]);
    assert_eq!(j.position().seq, Some(40), "accounted for");
    assert!(!j.awaits_kill_line());
    j.logged(logged_alone(8, 101, 41), 300 * MS);
    j.sent(live(8, 101), 301 * MS);
    assert_eq!(ready(&mut j), vec![], "read first, the same");
    assert_eq!(j.next_deadline(), None, "nothing waits");
}

#[test]
fn a_kill_only_in_the_log_goes_out_after_the_grace() {
    let mut j = joiner();
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.expire(1_999 * MS);
    assert_eq!(ready(&mut j), vec![]);
    j.expire(2_000 * MS);
    assert_eq!(ready(&mut j), vec![(9, 'K')]);
    assert_eq!(j.position().seq, Some(12));
}

#[test]
fn kills_already_accounted_for_are_dropped() {
    let position = LogPosition { since_boot_us: 50_000_000, seq: Some(12) };
    let mut j = Joiner::new(2000 * MS, position);
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.logged(logged(10, 60, 20), Duration::ZERO);
    j.expire(3_000 * MS);
    assert_eq!(ready(&mut j), vec![(10, 'K')]);
}

#[test]
fn a_kill_an_earlier_run_sent_is_not_reported_from_its_kill_line() {
    let mut j = joiner();
    j.sent_earlier(&[(7, 100_000_000_000)], Duration::ZERO);
    assert!(!j.awaits_kill_line(), "its event is gone: nothing to wait for");
    j.logged(logged(7, 100, 40), MS);
    j.expire(3_000 * MS);
    assert_eq!(ready(&mut j), vec![]);
    assert_eq!(j.position().seq, Some(40));
}

#[test]
fn the_same_pid_far_apart_in_time_is_another_kill() {
    let mut j = joiner();
    j.logged(logged(7, 100, 40), Duration::ZERO);
    j.sent(live(7, 200), 5 * MS);
    assert_eq!(ready(&mut j), vec![], "not the other kill's report");
    j.expire(3_000 * MS);
    assert_eq!(ready(&mut j), vec![(7, 'K')], "the other kill, from the log alone");
    assert!(j.awaits_kill_line());
}

#[test]
fn the_next_deadline_is_the_oldest_unclaimed_kill() {
    let mut j = joiner();
    assert_eq!(j.next_deadline(), None);
    j.logged(logged(9, 50, 12), 10 * MS);
    j.sent(live(7, 100), 20 * MS);
    assert_eq!(j.next_deadline(), Some(2010 * MS));
}

#[test]
fn stopping_sends_the_kills_that_wait_for_a_live_event() {
    let mut j = joiner();
    j.sent(live(7, 100), Duration::ZERO);
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.flush();
    assert_eq!(ready(&mut j), vec![(9, 'K')]);
    assert_eq!(j.position().seq, Some(12));
}

/// Stopping takes the reports ready and leaves the kills for the last delivery.
#[test]
fn the_reports_are_taken_without_the_kills() {
    let mut j = joiner();
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.sent(live(7, 100), Duration::ZERO);
    j.logged(logged(7, 100, 40), MS);
    j.expire(3_000 * MS);
    let reports: Vec<u32> = j
        .take_reports()
        .iter()
        .map(|record| {
            assert_report(record);
            record.victim_pid
        })
        .collect();
    assert_eq!(reports, vec![7]);
    assert_eq!(ready(&mut j), vec![(9, 'K')], "the kill is still ready");
}
