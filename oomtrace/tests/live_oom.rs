//! Real OOM kills in real memory cgroups, observed by the real `oomtrace live`,
//! checked against what the kernel says (dmesg, memory cgroup counters).

mod support;

use std::{
    collections::BTreeMap,
    os::unix::process::ExitStatusExt as _,
    process::{Command, ExitCode},
    sync::{RwLock, RwLockReadGuard},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    dmesg,
    event::Event,
    fentry,
    harness::{self, Need},
    live::Live,
    procfs,
    tracer::{Spec, Tracer},
    trial,
    workload::Workload,
};
use support::{assert_matches_dmesg, docs, live, oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const HOG: u64 = 256 * MIB;
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    harness::main(vec![
        trial!(memcg_kill_matches_the_kernel_with_default_probes, Need::Root),
        trial!(memcg_kill_matches_the_kernel_through_raw_tp, Need::Root),
        trial!(memcg_kill_matches_the_kernel_through_the_classic_tracepoint_only, Need::Root),
        trial!(
            memcg_kill_with_the_fentry_context,
            Need::Root,
            Need::Probe(|| fentry::kernel_accepts_fentry("oom_kill_process"))
        ),
        trial!(memcg_kill_with_the_kprobe_context, Need::Root, Need::Probe(kprobes_are_built_in)),
        trial!(nested_limit_names_the_oom_memcg_and_the_victim_cgroup, Need::Root),
        trial!(kills_across_cgroups_are_neither_missed_nor_duplicated, Need::Root),
        trial!(filters_and_count_select_and_stop, Need::Root),
        trial!(group_kill_marks_every_member, Need::Root, Need::CgroupV2),
        trial!(a_full_ring_buffer_loses_records_visibly, Need::Root),
        trial!(the_ebpf_log_names_each_record_the_full_ring_buffer_dropped, Need::Root),
        trial!(global_oom_names_the_victim_and_no_memcg, Need::Root, Need::GlobalOomVm),
        trial!(a_victim_other_than_the_allocating_task_is_named, Need::Root),
        trial!(the_table_row_names_the_cause, Need::Root),
        trial!(names_that_attack_the_terminal_are_shown_escaped, Need::Root),
        trial!(docs_show_a_real_kill, Need::Root, Need::SourceTree),
        trial!(the_docs_example_has_every_field_documented, Need::SourceTree),
    ])
}

/// The kernel's own word on CONFIG_KPROBES: its kprobe PMU.
fn kprobes_are_built_in() -> Result<(), String> {
    let pmu = "/sys/bus/event_source/devices/kprobe/type";
    if std::path::Path::new(pmu).exists() {
        Ok(())
    } else {
        Err(format!(
            "no {pmu}: this kernel is built without CONFIG_KPROBES (the VM matrix requires kprobe where it exists)"
        ))
    }
}

/// Kills in other tests would share the tiny ring buffer of the overflow test:
/// it takes this lock exclusively, every other test shares it.
static KILLS_IN_FLIGHT: RwLock<()> = RwLock::new(());

fn shared_kills() -> RwLockReadGuard<'static, ()> {
    KILLS_IN_FLIGHT.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One kill in a 64 MiB cgroup, seen through the given probes.
fn single_memcg_kill(test: &str, probes: &[&str], expected_source: &str) -> Result<()> {
    let _kills = shared_kills();
    let cgroup = MemCgroup::create(&unique(test), Some(LIMIT))?;
    let mut args = vec!["--cgroup", cgroup.path.as_str()];
    args.extend_from_slice(probes);
    let tracer = live(&args)?;
    let pid = cgroup.oom_kill_hog(HOG)?;
    let event = tracer.expect_event(EVENT_TIMEOUT)?;

    assert_matches_dmesg(&event, pid)?;
    assert_eq!(event.victim.tgid, Some(pid), "{event}");
    assert_eq!(event.victim_cgroup_path(), Some(cgroup.path.as_str()), "{event}");
    assert_eq!(event.victim_cgroup_id(), Some(cgroup.id()?), "{event}");
    assert_eq!(event.oom_cgroup_path(), Some(cgroup.path.as_str()), "{event}");
    assert_eq!(event.oom_limit_bytes(), Some(LIMIT), "{event}");
    let usage = event.oom_usage_bytes().with_context(|| format!("no oom_cgroup.usage_bytes: {event}"))?;
    assert!(usage > LIMIT - 4 * MIB && usage <= LIMIT, "usage {usage} is not at the limit");
    assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
    assert_eq!(event.killed, Some(true), "{event}");
    // The hog allocated its own memory: it is its own trigger.
    assert_eq!(event.trigger().pid, Some(pid), "{event}");
    assert!(event.has_source(expected_source), "{event}");
    // The kill confirmed without perf_event_open where the kernel has BTF.
    let confirmation = if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        "tp_btf:signal_generate"
    } else {
        "raw_tp:signal_generate"
    };
    assert!(event.has_source(confirmation), "{event}");
    let has_context = event.has_source("fentry:oom_kill_process") || event.has_source("kprobe:oom_kill_process");
    let expected_scope_source = if has_context { "oom_control" } else { "inferred" };
    assert_eq!(event.scope_source.as_deref(), Some(expected_scope_source), "{event}");
    let context_fields = [
        ("oom_id", event.oom_id.is_some()),
        ("oom_totalpages", event.oom_totalpages.is_some()),
        ("chosen_points", event.chosen_points.is_some()),
        ("gfp_mask", event.gfp_mask.is_some()),
        ("order", event.order.is_some()),
    ];
    for (key, present) in context_fields {
        assert_eq!(present, has_context, "{key} present iff the context was read: {event}");
        // ... and the event says which are missing.
        assert_eq!(event.is_unavailable(key), !has_context, "{key} listed as unavailable iff absent: {event}");
    }
    assert!(!event.is_unavailable("victim_cgroup"), "{event}");
    assert_eq!(cgroup.oom_kills()?, 1, "the kernel counted one kill");

    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "oomtrace exited with {}; stderr:\n{}", stopped.status, stopped.log);
    let summary = stopped.summary()?;
    assert_eq!(summary.shown, 1, "summary should count one event:\n{}", stopped.log);
    assert_eq!(summary.lost_ringbuf_full, 0, "{}", stopped.log);
    Ok(())
}

fn memcg_kill_matches_the_kernel_with_default_probes() -> Result<()> {
    single_memcg_kill("default", &[], "tp_btf:mark_victim")
}

fn memcg_kill_matches_the_kernel_through_raw_tp() -> Result<()> {
    single_memcg_kill("rawtp", &["--victim-probe", "raw-tp"], "raw_tp:mark_victim")
}

/// Tracepoint only: no task pointer and no oom_kill_process context. The
/// victim's cgroup is still named (the victim is the allocating task), the
/// scope is inferred, and what only the context gives is absent.
fn memcg_kill_matches_the_kernel_through_the_classic_tracepoint_only() -> Result<()> {
    let probes = ["--victim-probe", "tracepoint", "--context-probe", "none"];
    single_memcg_kill("tracepoint", &probes, "tracepoint:oom/mark_victim")
}

/// One kill with the `oom_kill_process` context read through `context_probe`.
fn memcg_kill_with_context(test: &str, context_probe: &str, target: &str) -> Result<()> {
    let _kills = shared_kills();
    let parent = MemCgroup::create(&unique(test), Some(LIMIT))?;
    let child = parent.child("job", None)?;
    let tracer = live(&["--cgroup", &parent.path, "--context-probe", context_probe])?;
    let pid = child.oom_kill_hog(HOG)?;
    let event = tracer.expect_event(EVENT_TIMEOUT)?;

    assert_matches_dmesg(&event, pid)?;
    assert!(event.has_source(target), "{event}");
    assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
    assert_eq!(event.scope_source.as_deref(), Some("oom_control"), "{event}");
    assert_eq!(event.victim_cgroup_path(), Some(child.path.as_str()), "{event}");
    assert_eq!(event.oom_cgroup_path(), Some(parent.path.as_str()), "{event}");
    assert_eq!(event.oom_limit_bytes(), Some(LIMIT), "{event}");
    // totalpages is the limit the OOM ran against (no swap here), in pages.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    assert_eq!(event.oom_totalpages, Some(LIMIT / page), "{event}");
    assert!(event.chosen_points.is_some_and(|p| p > 0), "{event}");
    assert!(event.order.is_some(), "{event}");
    assert!(event.gfp_mask.as_deref().is_some_and(|mask| mask.starts_with("0x")), "{event}");
    assert!(event.oom_id.is_some(), "{event}");
    assert_eq!(event.group_kill, Some(false), "{event}");
    assert_eq!(child.oom_kills()?, 1);
    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "{}", stopped.log);
    assert_eq!(stopped.summary()?.context_missing, 0, "{}", stopped.log);
    Ok(())
}

fn memcg_kill_with_the_fentry_context() -> Result<()> {
    memcg_kill_with_context("fentry", "fentry", "fentry:oom_kill_process")
}

fn memcg_kill_with_the_kprobe_context() -> Result<()> {
    memcg_kill_with_context("kprobe", "kprobe", "kprobe:oom_kill_process")
}

/// A kill in a child cgroup (`job`) of a cgroup with a 64 MiB limit, seen by
/// `oomtrace live --cgroup <parent> <args>`: (parent, child, tracer, the event).
fn nested_kill(test: &str, args: &[&str]) -> Result<(MemCgroup, MemCgroup, Live, Event)> {
    let parent = MemCgroup::create(&unique(test), Some(LIMIT))?;
    let child = parent.child("job", None)?;
    let tracer = live(&[&["--cgroup", parent.path.as_str()][..], args].concat())?;
    let pid = child.oom_kill_hog(HOG)?;
    let event = tracer.expect_event(EVENT_TIMEOUT)?;
    assert_matches_dmesg(&event, pid)?;
    Ok((parent, child, tracer, event))
}

fn nested_limit_names_the_oom_memcg_and_the_victim_cgroup() -> Result<()> {
    let _kills = shared_kills();
    let (parent, child, tracer, event) = nested_kill("nested", &[])?;

    assert_eq!(event.victim_cgroup_path(), Some(child.path.as_str()), "{event}");
    assert_eq!(event.victim_cgroup_id(), Some(child.id()?), "{event}");
    assert_eq!(event.oom_cgroup_path(), Some(parent.path.as_str()), "{event}");
    assert_eq!(event.oom_cgroup_id(), Some(parent.id()?), "{event}");
    assert_eq!(event.oom_limit_bytes(), Some(LIMIT), "{event}");
    assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
    assert_eq!(child.oom_kills()?, 1);
    drop(child);
    drop(tracer);
    Ok(())
}

fn kills_across_cgroups_are_neither_missed_nor_duplicated() -> Result<()> {
    let _kills = shared_kills();
    const CGROUPS: usize = 3;
    const KILLS_EACH: usize = 3;
    let parent = MemCgroup::create(&unique("series"), None)?;
    let cgroups = (0..CGROUPS)
        .map(|i| parent.child(&format!("c{i}"), Some(LIMIT + i as u64 * 16 * MIB)))
        .collect::<Result<Vec<_>>>()?;
    let tracer = live(&["--cgroup", &parent.path])?;

    let mut expected: BTreeMap<u32, &MemCgroup> = BTreeMap::new();
    for _ in 0..KILLS_EACH {
        for cgroup in &cgroups {
            expected.insert(cgroup.oom_kill_hog(HOG)?, cgroup);
        }
    }
    let mut events = Vec::new();
    while events.len() < expected.len() {
        events.push(tracer.expect_event(EVENT_TIMEOUT)?);
    }
    events.extend(tracer.drain(Duration::from_secs(1))?);
    let lines: Vec<String> = events.iter().map(Event::to_string).collect();
    assert_eq!(events.len(), CGROUPS * KILLS_EACH, "one event per kill, no duplicates: {lines:#?}");

    let mut seen = BTreeMap::new();
    for event in &events {
        let pid = event.victim.pid;
        let cgroup = expected.get(&pid).unwrap_or_else(|| panic!("event for an unknown pid: {event}"));
        assert!(seen.insert(pid, ()).is_none(), "duplicate event for pid {pid}");
        assert_eq!(event.victim_cgroup_path(), Some(cgroup.path.as_str()), "{event}");
        assert_eq!(event.oom_cgroup_path(), Some(cgroup.path.as_str()), "{event}");
        assert_eq!(event.oom_limit_bytes(), Some(cgroup.limit_bytes()?), "{event}");
    }
    for cgroup in &cgroups {
        let events_here = events.iter().filter(|e| e.victim_cgroup_path() == Some(cgroup.path.as_str())).count();
        assert_eq!(cgroup.oom_kills()?, events_here as u64, "kernel counter vs events for {}", cgroup.path);
        assert_eq!(events_here, KILLS_EACH);
    }
    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "{}", stopped.log);
    assert_eq!(stopped.summary()?.lost_ringbuf_full, 0, "{}", stopped.log);
    Ok(())
}

fn filters_and_count_select_and_stop() -> Result<()> {
    let _kills = shared_kills();
    let cgroup = MemCgroup::create(&unique("filters"), Some(LIMIT))?;
    let by_other_comm = live(&["--cgroup", &cgroup.path, "--comm", "not-dd"])?;
    let by_comm_once = live(&["--cgroup", &cgroup.path, "--comm", "dd", "--count", "1"])?;
    let elsewhere = live(&["--cgroup", &format!("{}-other", cgroup.path)])?;
    let pid = cgroup.oom_kill_hog(HOG)?;

    let event = by_comm_once.expect_event(EVENT_TIMEOUT)?;
    assert_eq!(event.victim.pid, pid, "{event}");
    let exited = by_comm_once.wait_exit(Duration::from_secs(10))?;
    assert!(exited.status.success(), "--count 1 should exit cleanly:\n{}", exited.log);

    assert!(by_other_comm.drain(Duration::from_millis(500))?.is_empty(), "--comm filter let a dd through");
    assert!(elsewhere.drain(Duration::from_millis(100))?.is_empty(), "--cgroup matched a sibling prefix");
    let stopped = by_other_comm.stop()?;
    // Kills in concurrently running tests reach this tracer too and are
    // filtered out by --cgroup: at least ours (filtered by --comm) is counted.
    assert!(stopped.summary()?.filtered_out >= 1, "{}", stopped.log);
    Ok(())
}

fn group_kill_marks_every_member() -> Result<()> {
    let _kills = shared_kills();
    let cgroup = MemCgroup::create(&unique("group"), Some(LIMIT))?;
    cgroup.set_oom_group()?;
    let tracer = live(&["--cgroup", &cgroup.path])?;
    let mut sleepers = (0..2).map(|_| cgroup.spawn("sleep 60")).collect::<Result<Vec<_>>>()?;
    let hog = cgroup.oom_kill_hog(HOG)?;
    let mut events = vec![];
    while events.len() < 3 {
        events.push(tracer.expect_event(EVENT_TIMEOUT)?);
    }
    let mut pids: Vec<u32> = events.iter().map(|e| e.victim.pid).collect();
    pids.sort();
    let mut expected: Vec<u32> = sleepers.iter().map(|c| c.id()).chain([hog]).collect();
    expected.sort();
    assert_eq!(pids, expected);
    for event in &events {
        assert_eq!(event.group_kill, Some(true), "{event}");
        assert_eq!(event.oom_id, events[0].oom_id, "one invocation");
    }
    for sleeper in &mut sleepers {
        let _ = sleeper.wait();
    }
    Ok(())
}

const OVERFLOW_KILLS: u64 = 16;

/// `OVERFLOW_KILLS` kills while `oomtrace live <extra>` with a one-page ring
/// buffer is stopped: its events, the kills' pids (ascending) and how it ended.
fn overflow(test: &str, extra: &[&str]) -> Result<(Vec<Event>, Vec<u32>, oomtrace_testkit::live::Stopped)> {
    let _exclusive = KILLS_IN_FLIGHT.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cgroup = MemCgroup::create(&unique(test), Some(LIMIT))?;
    // One page of ring buffer holds 5 or 6 records; oomtrace is stopped while the
    // kills happen, so the rest cannot fit and must be counted as lost (and are
    // then reported from the kernel log).
    // By comm, not cgroup: a kill whose report the kernel rate-limited (10
    // per 5 s) has only its kill line in the log, which names no cgroup. No
    // other test kills meanwhile (the exclusive lock).
    let tracer = live(&[&["--comm", "dd", "--ring-buffer-kib", "4"], extra].concat())?;
    tracer.signal(libc::SIGSTOP);
    let mut pids = Vec::new();
    for _ in 0..OVERFLOW_KILLS {
        pids.push(cgroup.oom_kill_hog(HOG)?);
    }
    tracer.signal(libc::SIGCONT);
    // Records the ring buffer lost are kills the kernel log still tells of:
    // they come as `kernel_log` events once no live event claimed them (2 s).
    let events = tracer.drain(Duration::from_secs(4))?;
    std::thread::sleep(Duration::from_millis(1200)); // the loss check runs every second
    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "{}", stopped.log);
    assert_eq!(cgroup.oom_kills()?, OVERFLOW_KILLS);
    pids.sort_unstable();
    Ok((events, pids, stopped))
}

/// What the eBPF log (`--ebpf-log`) says when the ring buffer drops a record.
const EBPF_DROP_MESSAGE: &str = "ring buffer full: record of victim pid ";

/// The pids of the eBPF log's drop messages in a text log.
fn ebpf_drop_messages(log: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = log
        .lines()
        .filter(|line| line.contains("oomtrace::ebpf"))
        .filter_map(|line| line.split_once(EBPF_DROP_MESSAGE))
        .filter_map(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

fn a_full_ring_buffer_loses_records_visibly() -> Result<()> {
    const KILLS: u64 = OVERFLOW_KILLS;
    let (events, pids, stopped) = overflow("overflow", &[])?;
    let shown = events.len() as u64;
    let from_log = events.iter().filter(|e| e.source == "kernel_log").count() as u64;
    let mut seen: Vec<u32> = events.iter().map(|e| e.victim.pid).collect();
    seen.sort_unstable();
    assert_eq!(seen, pids, "each kill once, live or from the log");
    let summary = stopped.summary()?;
    assert_eq!(summary.shown, shown);
    let lost = summary.lost_ringbuf_full;
    assert!(lost > 0 && shown > from_log, "shown {shown}, lost {lost}");
    assert_eq!(shown - from_log + lost, KILLS, "every kill is either seen live or counted as lost:\n{}", stopped.log);
    assert_eq!(from_log, lost, "every lost kill is recovered from the kernel log: {events:#?}");
    assert!(stopped.logged("ring buffer full"), "the loss is warned about while running:\n{}", stopped.log);
    // Without --ebpf-log the kernel side sends nothing.
    assert!(!stopped.logged("oomtrace::ebpf"), "eBPF log messages with the log off:\n{}", stopped.log);
    assert!(stopped.logged("ebpf_log=off"), "{}", stopped.log);
    Ok(())
}

/// With `--ebpf-log=warn` the kernel side names every record it dropped: as
/// many messages as its counter says, each naming a victim shown only from
/// the kernel log (the ones the ring buffer lost).
fn the_ebpf_log_names_each_record_the_full_ring_buffer_dropped() -> Result<()> {
    let (events, pids, stopped) = overflow("ebpflog", &["--ebpf-log=warn"])?;
    let summary = stopped.summary()?;
    let lost = summary.lost_ringbuf_full;
    assert!(lost > 0, "nothing was lost:\n{}", stopped.log);
    assert!(stopped.logged("ebpf_log=warn"), "{}", stopped.log);
    let dropped = ebpf_drop_messages(&stopped.log);
    assert_eq!(dropped.len() as u64, lost, "one kernel-side message per record counted lost:\n{}", stopped.log);
    let mut from_log: Vec<u32> = events.iter().filter(|e| e.source == "kernel_log").map(|e| e.victim.pid).collect();
    from_log.sort_unstable();
    assert_eq!(dropped, from_log, "the messages name the victims only the kernel log told of:\n{}", stopped.log);
    assert!(dropped.iter().all(|pid| pids.contains(pid)));
    Ok(())
}

/// A whole-machine OOM. Exhausting memory is only safe in a throw-away VM, so
/// this runs only where the VM matrix sets OOMTRACE_TEST_GLOBAL_OOM=1.
fn global_oom_names_the_victim_and_no_memcg() -> Result<()> {
    let _kills = shared_kills();
    let total_kb = procfs::mem_total_kb()?;
    let tracer = live(&["--comm", "dd"])?;
    // Seen on 7.3 under load: a second global OOM 20-30 ms after the first,
    // before the killed hog's memory was back, picked oomtrace (the next
    // biggest task) and the event never came. oomtrace is exempt from the OOM
    // killer here, and a small volunteer (oom_score_adj 999, filtered out by
    // --comm) is the one such a second OOM takes.
    std::fs::write(format!("/proc/{}/oom_score_adj", tracer.pid()), "-1000")
        .context("exempting oomtrace from the OOM killer")?;
    let mut spare = Command::new("sh")
        .arg("-c")
        .arg("echo 999 > /proc/self/oom_score_adj && exec sleep 600")
        .spawn()
        .context("spawn the spare victim")?;
    // The hog volunteers as the victim (oom_score_adj 1000) so the OOM killer
    // never picks oomtrace or the test; no cgroup limit applies to it.
    let bytes = total_kb * 1024 / 100 * 95;
    let mut hog = Command::new("sh")
        .arg("-c")
        .arg(format!("echo 1000 > /proc/self/oom_score_adj && exec dd if=/dev/zero of=/dev/null bs={bytes} count=1"))
        .spawn()
        .context("spawn hog")?;
    let pid = hog.id();
    let status = hog.wait().context("wait hog")?;
    // The spare's work is done whether or not a second OOM took it.
    let _ = spare.kill();
    let _ = spare.wait();
    assert_eq!(status.signal(), Some(9), "{status}");
    let event = tracer.expect_event(Duration::from_secs(60))?;
    assert_matches_dmesg(&event, pid)?;
    assert_eq!(event.scope.as_deref(), Some("global"), "{event}");
    assert!(event.oom_cgroup.is_none(), "a global OOM has no OOMing memcg: {event}");
    assert_eq!(event.trigger().tgid, Some(pid), "{event}");
    assert_eq!(event.killed, Some(true), "{event}");
    if event.scope_source.as_deref() == Some("oom_control") {
        // totalpages of a global OOM is RAM plus swap, in pages.
        assert!(event.oom_totalpages.is_some_and(|pages| pages > 0), "{event}");
    }
    Ok(())
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

/// The OOM killer picks a bigger process than the one allocating: the victim
/// is not the trigger. Through tp_btf the kernel side reads the victim's task;
/// through the classic tracepoint it has only a pid, and the oom_kill_process
/// context supplies the chosen task where a context probe runs. Without one
/// the victim's cgroup is absent and listed as unavailable, never guessed.
fn a_victim_other_than_the_allocating_task_is_named() -> Result<()> {
    let test = "bystander";
    // Unfiltered by cgroup (the path may be unknown): no other kills meanwhile.
    let _exclusive = KILLS_IN_FLIGHT.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let probe_sets: [&[&str]; 2] = [&[], &["--victim-probe", "tracepoint"]];
    for (i, probes) in probe_sets.iter().enumerate() {
        let cgroup = MemCgroup::create(&unique(&format!("{test}{i}")), Some(80 * MIB))?;
        let mut args = vec!["--comm", "dd"];
        args.extend_from_slice(probes);
        let tracer = live(&args)?;
        // The big one: dd with a 50 MB buffer it has filled, blocked writing
        // into a pipe nobody reads.
        let mut holder = cgroup.spawn("sh -c 'dd if=/dev/zero bs=50M count=1 | sleep 60'")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while cgroup.usage_bytes() < 50 * MIB {
            assert!(Instant::now() < deadline, "the holder never grew: {}", cgroup.usage_bytes());
            std::thread::sleep(Duration::from_millis(50));
        }
        let holder_pid = cgroup.pids().into_iter().find(|pid| comm_of(*pid) == "dd").context("the holder dd")?;
        // The small one allocates past the limit; the holder is the bigger target.
        let allocator = cgroup.run_hog(40 * MIB)?.pid;
        let event = tracer.expect_event(EVENT_TIMEOUT)?;
        for pid in cgroup.pids() {
            // SAFETY: kill(2) on pids of this test's own cgroup.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = holder.wait();
        assert_eq!(event.victim.pid, holder_pid, "{event}");
        assert_eq!(event.trigger().pid, Some(allocator), "{event}");
        assert_eq!(event.trigger().comm, "dd");
        let sees_task = event.has_source("tp_btf:mark_victim")
            || event.has_source("fentry:oom_kill_process")
            || event.has_source("kprobe:oom_kill_process");
        if sees_task {
            assert_eq!(event.victim_cgroup_path(), Some(cgroup.path.as_str()), "{probes:?}: {event}");
        } else {
            assert!(event.victim_cgroup.is_none(), "must not be guessed: {event}");
            assert!(event.is_unavailable("victim_cgroup"), "{event}");
        }
        assert_matches_dmesg(&event, holder_pid)?;
        drop(tracer);
    }
    Ok(())
}

/// A table row's victim pid (its second column); None for the header.
fn table_row_pid(line: &str) -> Option<(u32, u64)> {
    let pid = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((pid, 0))
}

/// `oomtrace live` without `-o`: the row of a kill at a cgroup's own limit
/// says `cgroup_limit` under CAUSE.
fn the_table_row_names_the_cause() -> Result<()> {
    let _kills = shared_kills();
    let cgroup = MemCgroup::create(&unique("table"), Some(LIMIT))?;
    let spec = oomtrace_testkit::live::spec(oomtrace(), &["live", "--cgroup", &cgroup.path], Vec::new());
    let mut tracer = Tracer::spawn(&Spec { parse: table_row_pid, ..spec })?;
    tracer.wait_marker(0, Duration::from_secs(20)).context("oomtrace live did not attach")?;
    let pid = cgroup.oom_kill_hog(HOG)?;
    let row = tracer.next_event_line(EVENT_TIMEOUT).context("no table row")?;
    assert_eq!(row.observed.victim_pid, pid, "{}", row.line);
    let log = tracer.log_lines();
    let header = log.iter().find(|l| l.starts_with("TIME (UTC)")).context("no table header")?;
    let (cause_at, killed_at) = (header.find("CAUSE").context("CAUSE")?, header.find("KILLED").context("KILLED")?);
    assert_eq!(row.line.get(cause_at..killed_at).map(str::trim), Some("cgroup_limit"), "{header}\n{}", row.line);
    assert!(tracer.stop()?.success(), "{}", tracer.log_text());
    Ok(())
}

/// What a process calls itself reaches the terminal escaped. The victim's
/// comm is the name of the file it executes (a symlink to dd) and clears the
/// screen and retitles the terminal when printed raw; its cgroup's name holds
/// ESC and BEL too (cgroupfs accepts any byte but `/` and NUL). `live`'s table
/// and `history`'s table (from the kernel log, which has the comm as the kernel
/// printed it) show both escaped; `live -o json` has them raw, JSON-escaped.
fn names_that_attack_the_terminal_are_shown_escaped() -> Result<()> {
    const COMM: &str = "\x1b[2J\x1b]0;pwn\x07";
    const COMM_SHOWN: &str = r"\x1b[2J\x1b]0;pwn\x07";
    let _kills = shared_kills();
    let cgroup = MemCgroup::create(&format!("{}-\x1b[2J\x07", unique("escape")), Some(LIMIT))?;
    let cgroup_shown = cgroup.path.replace('\x1b', r"\x1b").replace('\x07', r"\x07");
    let dir = std::env::temp_dir().join(unique("escape"));
    std::fs::create_dir_all(&dir).context("a directory for the hog's name")?;
    let hog = dir.join(COMM);
    // A link to this test binary (not to dd: in the VM guests dd is busybox,
    // which runs the applet its name says): the kernel takes the link's name
    // for the comm.
    let this = std::env::current_exe().context("finding this test binary")?;
    std::os::unix::fs::symlink(this, &hog).context("the hog's symlink")?;

    let spec = oomtrace_testkit::live::spec(oomtrace(), &["live", "--cgroup", &cgroup.path], Vec::new());
    let mut table = Tracer::spawn(&Spec { parse: table_row_pid, ..spec })?;
    table.wait_marker(0, Duration::from_secs(20)).context("oomtrace live did not attach")?;
    let json = live(&["--cgroup", &cgroup.path])?;
    let child = cgroup.spawn_workload_as(&Workload::Leak { bytes_per_second: 1024 * MIB }, &hog)?;
    let killed = oomtrace_testkit::cgroup::wait_hog(child)?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(killed.oom_killed, "the hog {} was not OOM-killed", killed.pid);

    let event = json.expect_event(EVENT_TIMEOUT)?;
    assert_eq!(event.victim.comm.as_deref(), Some(COMM), "{event}");
    assert_eq!(event.victim_cgroup_path(), Some(cgroup.path.as_str()), "{event}");
    assert!(event.line.contains(r"\u001b[2J\u001b]0;pwn\u0007"), "{}", event.line);
    drop(json);

    let row = table.next_event_line(EVENT_TIMEOUT).context("no table row")?;
    assert_eq!(row.observed.victim_pid, killed.pid, "{}", row.line);
    assert!(table.stop()?.success(), "{}", table.log_text());
    let shown = table.log_text();
    assert!(!shown.contains(['\x1b', '\x07']), "raw ESC or BEL in live's output: {shown:?}");
    assert!(row.line.contains(&format!(" {COMM_SHOWN} ")), "{}", row.line);
    assert!(row.line.contains(&format!(" {cgroup_shown} ")), "{}", row.line);

    let history = Command::new(oomtrace()).arg("history").output().context("running oomtrace history")?;
    let stdout = String::from_utf8_lossy(&history.stdout);
    assert!(history.status.success(), "{stdout}{}", String::from_utf8_lossy(&history.stderr));
    assert!(!history.stdout.iter().any(|b| [0x1b, 0x07].contains(b)), "raw ESC or BEL in history: {stdout:?}");
    let row = stdout
        .lines()
        .find(|line| table_row_pid(line).is_some_and(|(pid, _)| pid == killed.pid))
        .with_context(|| format!("no history row of pid {}: {stdout}", killed.pid))?;
    assert!(row.contains(&format!(" {COMM_SHOWN} ")), "{row}");
    assert!(row.contains(&format!(" {cgroup_shown} ")), "{row}");
    Ok(())
}

/// The JSON example of README.md and docs/events.md has the shape of a real
/// kill's event, and docs/events.md documents every field of it (the docs
/// cannot drift: `OOMTRACE_BLESS_DOCS=1` rewrites the example from this kill).
/// The kill of docs/events.md: a 64 MiB limit on the parent, the victim in a
/// child, no `oom_kill_process` probe; and its kernel report, whose fields
/// docs/events.md's "Kernel report records" table documents.
fn docs_show_a_real_kill() -> Result<()> {
    let _kills = shared_kills();
    let parent = MemCgroup::create(&unique("docs"), Some(LIMIT))?;
    let child = parent.child("job", None)?;
    // Without the oom_kill_process context the event has the same fields on
    // every kernel of the VM matrix and on the host (whose fentry is refused).
    let args = ["--cgroup", parent.path.as_str(), "--context-probe", "none"];
    let tracer = Live::start_with_warnings(oomtrace(), &args)?;
    // The report is printed only outside the kernel's rate limit.
    dmesg::wait_for_whole_reports();
    let pid = child.oom_kill_hog(HOG)?;
    let (event, report) = tracer.expect_kill_and_report(EVENT_TIMEOUT)?;
    assert_matches_dmesg(&event, pid)?;
    assert_eq!(report.kernel_report.memory_stat_cgroup.as_deref(), Some(parent.path.as_str()), "{report}");
    let json: serde_json::Value = serde_json::from_str(&event.line).context("the event line")?;
    docs::check_fields_documented(&json)?;
    let json: serde_json::Value = serde_json::from_str(&report.line).context("the report line")?;
    docs::check_fields_documented_in(&json, "Kernel report records")?;
    docs::check_examples(&event.line)
}

/// Without root: the committed example's fields are all in docs/events.md's table.
fn the_docs_example_has_every_field_documented() -> Result<()> {
    docs::check_formatting()?;
    for (file, _) in docs::EXAMPLE_FILES {
        docs::check_fields_documented(&docs::committed_example(file)?)
            .with_context(|| format!("the example in {file}"))?;
    }
    Ok(())
}
