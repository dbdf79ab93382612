//! What every oomtrace test binary needs beyond the shared kit
//! (`oomtrace-testkit`): where the binary under test is, and the checks that
//! compare an event with the kernel's own account, which know this kernel
//! through oomtrace's discovery.
#![allow(dead_code)]

pub mod docs;

use std::path::Path;

use anyhow::Result;
use oomtrace_testkit::{dmesg, event::Event, live::Live};

/// The `oomtrace` binary under test.
pub fn oomtrace() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_oomtrace"))
}

/// `oomtrace live -o json <args>`, attached.
pub fn live(args: &[&str]) -> Result<Live> {
    Live::start(oomtrace(), args)
}

/// A unique name for this test's cgroups and pods.
pub fn unique(test: &str) -> String {
    format!("oomtrace-test-{test}-{}", std::process::id())
}

/// The event's victim fields equal the kernel's "Killed process" line.
pub fn assert_matches_dmesg(event: &Event, pid: u32) -> Result<()> {
    let line = dmesg::killed(pid)?;
    let victim = &event.victim;
    assert_eq!(victim.pid, pid, "{event}");
    assert_eq!(victim.comm.as_deref(), Some(line.comm.as_str()), "{event}");
    assert_eq!(victim.total_vm_kb, Some(line.total_vm_kb), "{event}");
    assert_rss_kb(victim.anon_rss_kb, line.anon_rss_kb, "anon_rss", event);
    assert_rss_kb(victim.file_rss_kb, line.file_rss_kb, "file_rss", event);
    assert_rss_kb(victim.shmem_rss_kb, line.shmem_rss_kb, "shmem_rss", event);
    assert_eq!(victim.uid.map(u64::from), Some(line.uid), "{event}");
    assert_eq!(victim.pgtables_kb, Some(line.pgtables_kb), "{event}");
    assert_eq!(victim.oom_score_adj, Some(line.oom_score_adj), "{event}");
    Ok(())
}

/// How far an RSS figure read in the kernel may be from the "Killed process"
/// line, in kB. The kernel's own counters move between `mark_oom_victim` (the
/// tracepoint, and oomtrace, read `get_mm_counter()` there) and the printk:
///
/// - Since 6.2 the counters are per-CPU (`struct percpu_counter`); kernels that
///   print the exact per-CPU sum (7.x) differ from the folded value by at most
///   one batch (`max(32, 2 * nr_cpus)` pages) per possible CPU.
/// - Before 6.2 (SPLIT_RSS_COUNTING) a task caches up to 64 page events per
///   counter (TASK_RSS_EVENTS_THRESH) and folds them into the mm when it exits.
///   A victim that is not the allocating task starts exiting as soon as its
///   SIGKILL arrives (just before mark_oom_victim), so the printk may see up to
///   64 more pages. When the victim is the allocating task it cannot run
///   meanwhile: no slack.
pub fn rss_slack_kb(victim_is_trigger: bool) -> u64 {
    // (page size in kB, rss counter stride) of this kernel, discovered once.
    static LAYOUT: std::sync::OnceLock<(u64, u32)> = std::sync::OnceLock::new();
    let (page_kb, stride) = *LAYOUT.get_or_init(|| {
        let facts = oomtrace::kernel::discover();
        (facts.page_size / 1024, facts.layout.rss_counter_stride)
    });
    if stride == 8 || stride == oomtrace_common::ABSENT {
        return if victim_is_trigger { 0 } else { 64 * page_kb };
    }
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    let cpus = possible
        .trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => b.parse::<u64>().unwrap_or(0) - a.parse::<u64>().unwrap_or(0) + 1,
            None => 1,
        })
        .sum::<u64>()
        .max(1);
    cpus * (2 * cpus).max(32) * page_kb
}

/// RSS from the event equals the kernel log's, within [`rss_slack_kb`].
pub fn assert_rss_kb(event_kb: Option<u64>, log_kb: u64, what: &str, event: &Event) {
    let Some(event_kb) = event_kb else { panic!("{what} missing in {event}") };
    let slack = rss_slack_kb(Some(event.victim.pid) == event.trigger().pid);
    assert!(
        event_kb.abs_diff(log_kb) <= slack,
        "{what}: event {event_kb} kB, kernel log {log_kb} kB (allowed difference {slack} kB): {event}"
    );
}
