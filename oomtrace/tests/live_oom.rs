//! Real OOM kills in real memory cgroups, observed by the real `oomtrace live`,
//! checked against what the kernel says (dmesg, memory cgroup counters).

mod support;

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;
use support::{
    LiveTracer, MemCgroup, assert_rss_kb, attach_method_works, dmesg_killed, privileged, str_at, u64_at, unique,
};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const HOG: u64 = 256 * MIB;
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Kills in other tests would share the tiny ring buffer of the overflow test:
/// it takes this lock exclusively, every other test shares it.
static KILLS_IN_FLIGHT: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared_kills() -> std::sync::RwLockReadGuard<'static, ()> {
    KILLS_IN_FLIGHT.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The event's victim fields equal the kernel's "Killed process" line.
fn assert_matches_dmesg(event: &Value, pid: u32) {
    let line = dmesg_killed(pid);
    assert_eq!(u64_at(event, &["victim", "pid"]), pid as u64, "{event}");
    assert_eq!(str_at(event, &["victim", "comm"]), line.comm, "{event}");
    assert_eq!(u64_at(event, &["victim", "total_vm_kb"]), line.total_vm_kb, "{event}");
    assert_rss_kb(u64_at(event, &["victim", "anon_rss_kb"]), line.anon_rss_kb, "anon_rss", event);
    assert_rss_kb(u64_at(event, &["victim", "file_rss_kb"]), line.file_rss_kb, "file_rss", event);
    assert_rss_kb(u64_at(event, &["victim", "shmem_rss_kb"]), line.shmem_rss_kb, "shmem_rss", event);
    assert_eq!(u64_at(event, &["victim", "uid"]), line.uid, "{event}");
    assert_eq!(u64_at(event, &["victim", "pgtables_kb"]), line.pgtables_kb, "{event}");
    assert_eq!(event["victim"]["oom_score_adj"].as_i64(), Some(line.oom_score_adj), "{event}");
}

fn has_source(event: &Value, source: &str) -> bool {
    event["sources"].as_array().is_some_and(|s| s.iter().any(|v| v == source))
}

/// One kill in a 64 MiB cgroup, seen through the given probes.
fn single_memcg_kill(test: &str, probes: &[&str], expected_source: &str) {
    if !privileged(test) {
        return;
    }
    let _kills = shared_kills();
    let cgroup = MemCgroup::create(&unique(test), Some(LIMIT));
    let mut args = vec!["--cgroup", cgroup.path.as_str()];
    args.extend_from_slice(probes);
    let tracer = LiveTracer::start(&args);
    let pid = cgroup.oom_kill_hog(HOG);
    let event = tracer.expect_event(EVENT_TIMEOUT);

    assert_matches_dmesg(&event, pid);
    assert_eq!(u64_at(&event, &["victim", "tgid"]), pid as u64);
    assert_eq!(str_at(&event, &["victim_cgroup", "path"]), cgroup.path);
    assert_eq!(u64_at(&event, &["victim_cgroup", "id"]), cgroup.id());
    assert_eq!(str_at(&event, &["oom_cgroup", "path"]), cgroup.path);
    assert_eq!(u64_at(&event, &["oom_cgroup", "limit_bytes"]), LIMIT);
    let usage = u64_at(&event, &["oom_cgroup", "usage_bytes"]);
    assert!(usage > LIMIT - 4 * MIB && usage <= LIMIT, "usage {usage} is not at the limit");
    assert_eq!(str_at(&event, &["scope"]), "memcg");
    assert_eq!(event["killed"], Value::Bool(true));
    // The hog allocated its own memory: it is its own trigger.
    assert_eq!(u64_at(&event, &["trigger", "pid"]), pid as u64);
    assert!(has_source(&event, expected_source), "{event}");
    assert!(has_source(&event, "tracepoint:signal/signal_generate"), "{event}");
    let has_context = has_source(&event, "fentry:oom_kill_process") || has_source(&event, "kprobe:oom_kill_process");
    assert_eq!(str_at(&event, &["scope_source"]), if has_context { "oom_control" } else { "inferred" });
    let unavailable: Vec<&str> =
        event["unavailable"].as_array().map_or_else(Vec::new, |a| a.iter().filter_map(|v| v.as_str()).collect());
    for key in ["oom_id", "oom_totalpages", "chosen_points", "gfp_mask", "order"] {
        assert_eq!(event.get(key).is_some(), has_context, "{key} present iff the context was read: {event}");
        // ... and the event says which are missing.
        assert_eq!(unavailable.contains(&key), !has_context, "{key} listed as unavailable iff absent: {event}");
    }
    assert!(!unavailable.contains(&"victim_cgroup"), "{event}");
    assert_eq!(cgroup.oom_kills(), 1, "the kernel counted one kill");

    let (status, log) = tracer.stop();
    assert!(status.success(), "oomtrace exited with {status}; stderr:\n{log}");
    assert!(log.contains("shown=1"), "summary should count one event:\n{log}");
    assert!(log.contains("lost_ringbuf_full=0"), "{log}");
}

#[test]
fn memcg_kill_matches_the_kernel_with_default_probes() {
    single_memcg_kill("default", &[], "tp_btf:mark_victim");
}

#[test]
fn memcg_kill_matches_the_kernel_through_raw_tp() {
    single_memcg_kill("rawtp", &["--victim-probe", "raw-tp"], "raw_tp:mark_victim");
}

/// Tracepoint only: no task pointer and no oom_kill_process context. The
/// victim's cgroup is still named (the victim is the allocating task), the
/// scope is inferred, and what only the context gives is absent.
#[test]
fn memcg_kill_matches_the_kernel_through_the_classic_tracepoint_only() {
    let probes = ["--victim-probe", "tracepoint", "--context-probe", "none"];
    single_memcg_kill("tracepoint", &probes, "tracepoint:oom/mark_victim");
}

/// One kill with the `oom_kill_process` context read through `context_probe`.
fn memcg_kill_with_context(test: &str, context_probe: &str, target: &str) {
    if !privileged(test) {
        return;
    }
    let _kills = shared_kills();
    if let Err(reason) = attach_method_works(target) {
        eprintln!("SKIPPED {test}: {target} does not attach on this kernel ({reason}); the VM matrix runs it");
        return;
    }
    let parent = MemCgroup::create(&unique(test), Some(LIMIT));
    let child = parent.child("job", None);
    let tracer = LiveTracer::start(&["--cgroup", &parent.path, "--context-probe", context_probe]);
    let pid = child.oom_kill_hog(HOG);
    let event = tracer.expect_event(EVENT_TIMEOUT);

    assert_matches_dmesg(&event, pid);
    assert!(has_source(&event, target), "{event}");
    assert_eq!(str_at(&event, &["scope"]), "memcg");
    assert_eq!(str_at(&event, &["scope_source"]), "oom_control");
    assert_eq!(str_at(&event, &["victim_cgroup", "path"]), child.path);
    assert_eq!(str_at(&event, &["oom_cgroup", "path"]), parent.path);
    assert_eq!(u64_at(&event, &["oom_cgroup", "limit_bytes"]), LIMIT);
    // totalpages is the limit the OOM ran against (no swap here), in pages.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    assert_eq!(u64_at(&event, &["oom_totalpages"]), LIMIT / page);
    assert!(event["chosen_points"].as_i64().is_some_and(|p| p > 0), "{event}");
    assert!(event["order"].as_i64().is_some(), "{event}");
    assert!(str_at(&event, &["gfp_mask"]).starts_with("0x"), "{event}");
    assert!(event["oom_id"].as_u64().is_some(), "{event}");
    assert_eq!(event["group_kill"], Value::Bool(false), "{event}");
    assert_eq!(child.oom_kills(), 1);
    let (status, log) = tracer.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("context_missing=0"), "{log}");
}

#[test]
fn memcg_kill_with_the_fentry_context() {
    memcg_kill_with_context("fentry", "fentry", "fentry:oom_kill_process");
}

#[test]
fn memcg_kill_with_the_kprobe_context() {
    memcg_kill_with_context("kprobe", "kprobe", "kprobe:oom_kill_process");
}

#[test]
fn nested_limit_names_the_oom_memcg_and_the_victim_cgroup() {
    let test = "nested";
    if !privileged(test) {
        return;
    }
    let _kills = shared_kills();
    let parent = MemCgroup::create(&unique(test), Some(LIMIT));
    let child = parent.child("job", None);
    let tracer = LiveTracer::start(&["--cgroup", &parent.path]);
    let pid = child.oom_kill_hog(HOG);
    let event = tracer.expect_event(EVENT_TIMEOUT);

    assert_matches_dmesg(&event, pid);
    assert_eq!(str_at(&event, &["victim_cgroup", "path"]), child.path);
    assert_eq!(u64_at(&event, &["victim_cgroup", "id"]), child.id());
    assert_eq!(str_at(&event, &["oom_cgroup", "path"]), parent.path);
    assert_eq!(u64_at(&event, &["oom_cgroup", "id"]), parent.id());
    assert_eq!(u64_at(&event, &["oom_cgroup", "limit_bytes"]), LIMIT);
    assert_eq!(str_at(&event, &["scope"]), "memcg");
    assert_eq!(child.oom_kills(), 1);
    drop(child);
    drop(tracer);
}

#[test]
fn kills_across_cgroups_are_neither_missed_nor_duplicated() {
    let test = "series";
    if !privileged(test) {
        return;
    }
    let _kills = shared_kills();
    const CGROUPS: usize = 3;
    const KILLS_EACH: usize = 3;
    let parent = MemCgroup::create(&unique(test), None);
    let cgroups: Vec<MemCgroup> =
        (0..CGROUPS).map(|i| parent.child(&format!("c{i}"), Some(LIMIT + i as u64 * 16 * MIB))).collect();
    let tracer = LiveTracer::start(&["--cgroup", &parent.path]);

    let mut expected: BTreeMap<u32, &MemCgroup> = BTreeMap::new();
    for _ in 0..KILLS_EACH {
        for cgroup in &cgroups {
            expected.insert(cgroup.oom_kill_hog(HOG), cgroup);
        }
    }
    let mut events = Vec::new();
    while events.len() < expected.len() {
        events.push(tracer.expect_event(EVENT_TIMEOUT));
    }
    events.extend(tracer.drain(Duration::from_secs(1)));
    assert_eq!(events.len(), CGROUPS * KILLS_EACH, "one event per kill, no duplicates: {events:#?}");

    let mut seen = BTreeMap::new();
    for event in &events {
        let pid = u64_at(event, &["victim", "pid"]) as u32;
        let cgroup = expected.get(&pid).unwrap_or_else(|| panic!("event for an unknown pid: {event}"));
        assert!(seen.insert(pid, ()).is_none(), "duplicate event for pid {pid}");
        assert_eq!(str_at(event, &["victim_cgroup", "path"]), cgroup.path);
        assert_eq!(str_at(event, &["oom_cgroup", "path"]), cgroup.path);
        let limit = std::fs::read_to_string(cgroup.dir.join(if cgroup.hierarchy.is_v2() {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        }))
        .expect("read limit");
        assert_eq!(u64_at(event, &["oom_cgroup", "limit_bytes"]), limit.trim().parse::<u64>().expect("limit"));
    }
    for cgroup in &cgroups {
        let events_here = events.iter().filter(|e| str_at(e, &["victim_cgroup", "path"]) == cgroup.path).count();
        assert_eq!(cgroup.oom_kills(), events_here as u64, "kernel counter vs events for {}", cgroup.path);
        assert_eq!(events_here, KILLS_EACH);
    }
    let (status, log) = tracer.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("lost_ringbuf_full=0"), "{log}");
}

#[test]
fn filters_and_count_select_and_stop() {
    let test = "filters";
    if !privileged(test) {
        return;
    }
    let _kills = shared_kills();
    let cgroup = MemCgroup::create(&unique(test), Some(LIMIT));
    let by_other_comm = LiveTracer::start(&["--cgroup", &cgroup.path, "--comm", "not-dd"]);
    let by_comm_once = LiveTracer::start(&["--cgroup", &cgroup.path, "--comm", "dd", "--count", "1"]);
    let elsewhere = LiveTracer::start(&["--cgroup", &format!("{}-other", cgroup.path)]);
    let pid = cgroup.oom_kill_hog(HOG);

    let event = by_comm_once.expect_event(EVENT_TIMEOUT);
    assert_eq!(u64_at(&event, &["victim", "pid"]), pid as u64);
    let (status, log) = by_comm_once.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "--count 1 should exit cleanly:\n{log}");

    assert!(by_other_comm.drain(Duration::from_millis(500)).is_empty(), "--comm filter let a dd through");
    assert!(elsewhere.drain(Duration::from_millis(100)).is_empty(), "--cgroup matched a sibling prefix");
    let (_, log) = by_other_comm.stop();
    assert!(log.contains("filtered_out=1"), "{log}");
}

#[test]
fn group_kill_marks_every_member() {
    let test = "group";
    if !privileged(test) {
        return;
    }
    let _kills = shared_kills();
    let cgroup = MemCgroup::create(&unique(test), Some(LIMIT));
    if !cgroup.hierarchy.is_v2() {
        eprintln!("SKIPPED {test}: memory.oom.group needs cgroup v2 (this host has v1); it runs in the VM matrix");
        return;
    }
    cgroup.set_oom_group();
    let tracer = LiveTracer::start(&["--cgroup", &cgroup.path]);
    let mut sleepers: Vec<_> = (0..2).map(|_| cgroup.spawn("sleep 60")).collect();
    let hog = cgroup.oom_kill_hog(HOG);
    let mut events = vec![];
    while events.len() < 3 {
        events.push(tracer.expect_event(EVENT_TIMEOUT));
    }
    let mut pids: Vec<u64> = events.iter().map(|e| u64_at(e, &["victim", "pid"])).collect();
    pids.sort();
    let mut expected: Vec<u64> = sleepers.iter().map(|c| c.id() as u64).chain([hog as u64]).collect();
    expected.sort();
    assert_eq!(pids, expected);
    for event in &events {
        assert_eq!(event["group_kill"], Value::Bool(true), "{event}");
        assert_eq!(event["oom_id"], events[0]["oom_id"], "one invocation");
    }
    for sleeper in &mut sleepers {
        let _ = sleeper.wait();
    }
}

#[test]
fn a_full_ring_buffer_loses_records_visibly() {
    let test = "overflow";
    if !privileged(test) {
        return;
    }
    let _exclusive = KILLS_IN_FLIGHT.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    const KILLS: usize = 16;
    let cgroup = MemCgroup::create(&unique(test), Some(LIMIT));
    // One page of ring buffer holds 8 records; oomtrace is stopped while the
    // kills happen, so the rest cannot fit and must be counted as lost.
    let tracer = LiveTracer::start(&["--cgroup", &cgroup.path, "--ring-buffer-kib", "4"]);
    // SAFETY: signalling a child we spawned and have not reaped.
    unsafe { libc::kill(tracer.pid() as i32, libc::SIGSTOP) };
    for _ in 0..KILLS {
        cgroup.oom_kill_hog(HOG);
    }
    // SAFETY: as above.
    unsafe { libc::kill(tracer.pid() as i32, libc::SIGCONT) };
    let shown = tracer.drain(Duration::from_secs(2)).len();
    std::thread::sleep(Duration::from_millis(1200)); // the loss check runs every second
    let (status, log) = tracer.stop();
    assert!(status.success(), "{log}");
    let counter = |key: &str| -> usize {
        let start = log.rfind(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in:\n{log}")) + key.len() + 1;
        log[start..].split_whitespace().next().and_then(|v| v.parse().ok()).expect("number")
    };
    assert_eq!(counter("shown"), shown);
    let lost = counter("lost_ringbuf_full");
    assert!(lost > 0 && shown > 0, "shown {shown}, lost {lost}");
    assert_eq!(shown + lost, KILLS, "every kill is either shown or counted as lost:\n{log}");
    assert_eq!(cgroup.oom_kills(), KILLS as u64);
    assert!(log.contains("ring buffer full"), "the loss is warned about while running:\n{log}");
}

/// A whole-machine OOM. Exhausting memory is only safe in a throw-away VM, so
/// this runs only where the VM matrix sets OOMTRACE_TEST_GLOBAL_OOM=1.
#[test]
fn global_oom_names_the_victim_and_no_memcg() {
    let test = "global";
    if !privileged(test) {
        return;
    }
    let _kills = shared_kills();
    if std::env::var_os("OOMTRACE_TEST_GLOBAL_OOM").is_none() {
        eprintln!(
            "SKIPPED {test}: exhausts the machine's memory; runs only in the VM matrix (OOMTRACE_TEST_GLOBAL_OOM=1)"
        );
        return;
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let total_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal");
    let tracer = LiveTracer::start(&["--comm", "dd"]);
    // The hog volunteers as the victim (oom_score_adj 1000) so the OOM killer
    // never picks oomtrace or the test; no cgroup limit applies to it.
    let bytes = total_kb * 1024 / 100 * 95;
    let mut hog = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("echo 1000 > /proc/self/oom_score_adj && exec dd if=/dev/zero of=/dev/null bs={bytes} count=1"))
        .spawn()
        .expect("spawn hog");
    let pid = hog.id();
    let status = hog.wait().expect("wait hog");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
    let event = tracer.expect_event(Duration::from_secs(60));
    assert_matches_dmesg(&event, pid);
    assert_eq!(str_at(&event, &["scope"]), "global", "{event}");
    assert!(event.get("oom_cgroup").is_none(), "a global OOM has no OOMing memcg: {event}");
    assert_eq!(u64_at(&event, &["trigger", "tgid"]), pid as u64, "{event}");
    assert_eq!(event["killed"], Value::Bool(true));
    if event["scope_source"] == "oom_control" {
        // totalpages of a global OOM is RAM plus swap, in pages.
        assert!(u64_at(&event, &["oom_totalpages"]) > 0);
    }
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

/// The OOM killer picks a bigger process than the one allocating: the victim
/// is not the trigger. Through tp_btf the kernel side reads the victim's task;
/// through the classic tracepoint it has only a pid, and the oom_kill_process
/// context supplies the chosen task where a context probe runs. Without one
/// the victim's cgroup is absent and listed as unavailable, never guessed.
#[test]
fn a_victim_other_than_the_allocating_task_is_named() {
    let test = "bystander";
    if !privileged(test) {
        return;
    }
    // Unfiltered by cgroup (the path may be unknown): no other kills meanwhile.
    let _exclusive = KILLS_IN_FLIGHT.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let probe_sets: [&[&str]; 2] = [&[], &["--victim-probe", "tracepoint"]];
    for (i, probes) in probe_sets.iter().enumerate() {
        let cgroup = MemCgroup::create(&unique(&format!("{test}{i}")), Some(80 * MIB));
        let mut args = vec!["--comm", "dd"];
        args.extend_from_slice(probes);
        let tracer = LiveTracer::start(&args);
        // The big one: dd with a 50 MB buffer it has filled, blocked writing
        // into a pipe nobody reads.
        let mut holder = cgroup.spawn("sh -c 'dd if=/dev/zero bs=50M count=1 | sleep 60'");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while cgroup.usage_bytes() < 50 * MIB {
            assert!(std::time::Instant::now() < deadline, "the holder never grew: {}", cgroup.usage_bytes());
            std::thread::sleep(Duration::from_millis(50));
        }
        let holder_pid = cgroup.pids().into_iter().find(|pid| comm_of(*pid) == "dd").expect("the holder dd");
        // The small one allocates past the limit; the holder is the bigger target.
        let (allocator, _) = cgroup.run_hog(40 * MIB);
        let event = tracer.expect_event(EVENT_TIMEOUT);
        for pid in cgroup.pids() {
            // SAFETY: kill(2) on pids of this test's own cgroup.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = holder.wait();
        assert_eq!(u64_at(&event, &["victim", "pid"]), u64::from(holder_pid), "{event}");
        assert_eq!(u64_at(&event, &["trigger", "pid"]), u64::from(allocator), "{event}");
        assert_eq!(str_at(&event, &["trigger", "comm"]), "dd");
        let sees_task = has_source(&event, "tp_btf:mark_victim")
            || has_source(&event, "fentry:oom_kill_process")
            || has_source(&event, "kprobe:oom_kill_process");
        if sees_task {
            assert_eq!(str_at(&event, &["victim_cgroup", "path"]), cgroup.path, "{probes:?}: {event}");
        } else {
            assert!(event.get("victim_cgroup").is_none(), "must not be guessed: {event}");
            let unavailable = event["unavailable"].as_array().cloned().unwrap_or_default();
            assert!(unavailable.iter().any(|v| v == "victim_cgroup"), "{event}");
        }
        assert_matches_dmesg(&event, holder_pid);
        drop(tracer);
    }
}
