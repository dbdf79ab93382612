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

/// A kill line at `ktime_s` (+ a few ms of clock skew), with a report.
fn logged(pid: u32, ktime_s: u64, seq: u64) -> LogKill {
    let mut event = live(pid, ktime_s);
    event.source = EventSource::KernelLog;
    event.ktime_ns = event.ktime_ns.map(|k| k - 9_000_000);
    event.kernel_report = Some(KernelReport { tasks_listed: Some(3), ..KernelReport::default() });
    LogKill { event, position: LogPosition { since_boot_us: ktime_s * 1_000_000, seq: Some(seq) } }
}

fn joiner() -> Joiner {
    Joiner::new(100 * MS, 2000 * MS, LogPosition::default())
}

#[test]
fn a_live_event_gets_the_report_that_comes_within_the_wait() {
    let mut j = joiner();
    j.live(live(7, 100), Duration::ZERO);
    j.expire(50 * MS);
    assert!(j.take_ready().is_empty(), "still waiting");
    j.logged(logged(7, 100, 40), 60 * MS);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].source, EventSource::Ebpf);
    assert_eq!(ready[0].kernel_report.as_ref().and_then(|r| r.tasks_listed), Some(3));
    assert_eq!(j.position().seq, Some(40));
}

#[test]
fn a_report_read_first_is_joined_when_the_live_event_comes() {
    let mut j = joiner();
    j.logged(logged(7, 100, 40), Duration::ZERO);
    j.live(live(7, 100), 5 * MS);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1);
    assert!(ready[0].kernel_report.is_some());
    j.expire(10_000 * MS);
    assert!(j.take_ready().is_empty(), "the report is not reported again");
}

#[test]
fn a_live_event_goes_out_without_a_late_report_and_the_report_is_not_a_second_event() {
    let mut j = joiner();
    j.live(live(7, 100), Duration::ZERO);
    j.expire(100 * MS);
    let ready = j.take_ready();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].unavailable, vec!["kernel_report"]);
    j.logged(logged(7, 100, 40), 300 * MS);
    j.expire(5_000 * MS);
    assert!(j.take_ready().is_empty());
    assert_eq!(j.position().seq, Some(40), "accounted for");
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
    let mut j = Joiner::new(100 * MS, 2000 * MS, position);
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.logged(logged(10, 60, 20), Duration::ZERO);
    j.expire(3_000 * MS);
    let ready = j.take_ready();
    assert_eq!(ready.iter().map(|e| e.victim.pid).collect::<Vec<_>>(), vec![10]);
}

#[test]
fn the_same_pid_far_apart_in_time_is_another_kill() {
    let mut j = joiner();
    j.logged(logged(7, 100, 40), Duration::ZERO);
    j.live(live(7, 200), 5 * MS);
    assert!(j.take_ready().is_empty(), "the live event waits for its own report");
    j.expire(3_000 * MS);
    assert_eq!(j.take_ready().len(), 2);
}

#[test]
fn the_next_deadline_is_the_earliest() {
    let mut j = joiner();
    assert_eq!(j.next_deadline(), None);
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.live(live(7, 100), 10 * MS);
    assert_eq!(j.next_deadline(), Some(110 * MS));
}

#[test]
fn stopping_sends_everything_that_waits() {
    let mut j = joiner();
    j.live(live(7, 100), Duration::ZERO);
    j.logged(logged(9, 50, 12), Duration::ZERO);
    j.flush();
    let mut pids: Vec<u32> = j.take_ready().iter().map(|e| e.victim.pid).collect();
    pids.sort_unstable();
    assert_eq!(pids, vec![7, 9]);
    assert_eq!(j.position().seq, Some(12));
}
