use super::*;
use oomtrace_event::{EventSource, Victim};

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

/// The usual order: the report is printed before the victim is marked, its
/// kill line after. The event goes out at once with the report in progress.
#[test]
fn a_live_event_goes_out_at_once_with_its_report_printed_so_far() {
    let mut j = joiner();
    j.live(live(7, 100), Some(report()), Duration::ZERO);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1, "not held for the kill line");
    assert_eq!(ready[0].source, EventSource::Ebpf);
    assert_eq!(ready[0].kernel_report.as_ref().and_then(|r| r.tasks_listed), Some(3));
    assert!(!ready[0].unavailable.contains(&"kernel_report"));
    j.logged(logged(7, 100, 40), MS);
    j.expire(5_000 * MS);
    assert!(j.take_ready().is_empty(), "its kill line is no second event");
    assert_eq!(j.position().seq, Some(40), "accounted for");
    assert_eq!(j.next_deadline(), None);
}

#[test]
fn a_report_read_whole_first_is_joined_when_the_live_event_comes() {
    let mut j = joiner();
    j.logged(logged(7, 100, 40), Duration::ZERO);
    j.live(live(7, 100), None, 5 * MS);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1);
    assert!(ready[0].kernel_report.is_some());
    j.expire(10_000 * MS);
    assert!(j.take_ready().is_empty(), "the report is not reported again");
}

/// A kill whose report the kernel rate-limited (10 per 5 s) has nothing to
/// wait for: the event goes out at once without it, and its kill line, read
/// later, is no second event. A fake clock: a rate-limited report cannot be
/// produced reliably for real (it takes an 11th report within 5 s, and the
/// kernel's limit is shared with every other OOM on the machine).
#[test]
fn an_event_whose_report_the_kernel_rate_limited_goes_out_without_waiting() {
    let mut j = joiner();
    j.live(live(7, 100), None, Duration::ZERO);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1, "ready at the instant it came");
    assert_eq!(ready[0].unavailable, vec!["kernel_report"]);
    assert_eq!(j.next_deadline(), None, "nothing waits");
    j.logged(logged_alone(7, 100, 40), 300 * MS);
    j.expire(5_000 * MS);
    assert!(j.take_ready().is_empty());
    assert_eq!(j.position().seq, Some(40), "accounted for");
}

#[test]
fn a_kill_line_read_first_without_its_report_says_so() {
    let mut j = joiner();
    j.logged(logged_alone(7, 100, 40), Duration::ZERO);
    j.live(live(7, 100), None, MS);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].kernel_report, None);
    assert_eq!(ready[0].unavailable, vec!["kernel_report"]);
}

#[test]
fn a_kill_only_in_the_log_goes_out_after_the_grace() {
    let mut j = joiner();
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.expire(1_999 * MS);
    assert!(j.take_ready().is_empty());
    j.expire(2_000 * MS);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].source, EventSource::KernelLog);
    assert_eq!(j.position().seq, Some(12));
}

#[test]
fn kills_already_accounted_for_are_dropped() {
    let position = LogPosition { since_boot_us: 50_000_000, seq: Some(12) };
    let mut j = Joiner::new(2000 * MS, position);
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.logged(logged(10, 60, 20), Duration::ZERO);
    j.expire(3_000 * MS);
    let ready = j.take_ready();
    assert_eq!(ready.iter().map(|e| e.victim.pid).collect::<Vec<_>>(), vec![10]);
}

#[test]
fn a_kill_an_earlier_run_sent_is_not_reported_from_its_kill_line() {
    let mut j = joiner();
    j.sent_earlier(&[(7, 100_000_000_000)], Duration::ZERO);
    j.logged(logged(7, 100, 40), MS);
    j.expire(3_000 * MS);
    assert!(j.take_ready().is_empty());
    assert_eq!(j.position().seq, Some(40));
}

#[test]
fn the_same_pid_far_apart_in_time_is_another_kill() {
    let mut j = joiner();
    j.logged(logged(7, 100, 40), Duration::ZERO);
    j.live(live(7, 200), None, 5 * MS);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1, "the live event goes out at once");
    assert_eq!(ready[0].unavailable, vec!["kernel_report"], "not the other kill's report");
    j.expire(3_000 * MS);
    assert_eq!(j.take_ready().len(), 1, "the other kill, from the log alone");
}

#[test]
fn the_next_deadline_is_the_oldest_unclaimed_kill() {
    let mut j = joiner();
    assert_eq!(j.next_deadline(), None);
    j.logged(logged(9, 50, 12), 10 * MS);
    j.live(live(7, 100), None, 20 * MS);
    assert_eq!(j.next_deadline(), Some(2010 * MS));
}

#[test]
fn stopping_sends_the_kills_that_wait_for_a_live_event() {
    let mut j = joiner();
    j.live(live(7, 100), None, Duration::ZERO);
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.flush();
    let mut pids: Vec<u32> = j.take_ready().iter().map(|e| e.victim.pid).collect();
    pids.sort_unstable();
    assert_eq!(pids, vec![7, 9]);
    assert_eq!(j.position().seq, Some(12));
}
