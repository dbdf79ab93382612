//! `oomtrace history` and the kernel log joined to live events, on real
//! kills: every kill made here is found in this boot's log (/dev/kmsg), in a
//! saved `dmesg` / `dmesg -T` file and on stdin, as an event whose victim,
//! cgroups and limit equal what the kernel and the cgroup say; the closing
//! line reconciles with /proc/vmstat; live events carry the kernel's report
//! and the report is never a second event.

mod support;

use std::{
    io::Write as _,
    process::{Command, ExitCode, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, ensure};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    dmesg,
    event::Event,
    harness::{self, Need},
    live::Live,
    trial,
};
use support::{oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const HOG: u64 = 256 * MIB;
const KILLS: usize = 3;
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    harness::main(vec![
        trial!(history_finds_this_boots_kills_with_the_kernels_count, Need::Root),
        trial!(a_saved_log_and_stdin_give_the_same_victims, Need::Root),
        trial!(a_live_events_kernel_report_follows_it_and_is_no_second_event, Need::Root),
        trial!(live_count_shows_the_counted_kills_report_before_it_exits, Need::Root),
    ])
}

/// `KILLS` kills in `<parent (limit)>/web`; returns the parent, the child and the pids.
fn kill_some(test: &str) -> Result<(MemCgroup, MemCgroup, Vec<u32>)> {
    let parent = MemCgroup::create(&unique(test), Some(LIMIT))?;
    let web = parent.child("web", None)?;
    // The tests check whole reports (the cgroup paths are in them): the kills
    // of the test binaries before this one must not have used up the kernel's
    // report budget. 3 tests × KILLS kills fit in one window.
    dmesg::wait_for_whole_reports();
    let pids = (0..KILLS).map(|_| web.oom_kill_hog(HOG)).collect::<Result<Vec<_>>>()?;
    ensure!(web.oom_kills()? == KILLS as u64, "the kernel counted {} kills, not {KILLS}", web.oom_kills()?);
    for &pid in &pids {
        dmesg::killed(pid)?; // printed before history reads
    }
    Ok((parent, web, pids))
}

/// Runs `oomtrace history <args> -o json` (stdin from `input`); the events and stderr.
fn history(args: &[&str], input: Option<&[u8]>) -> Result<(Vec<Event>, String)> {
    let mut child = Command::new(oomtrace())
        .arg("history")
        .args(args)
        .args(["-o", "json"])
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running oomtrace history")?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input).context("writing history's stdin")?;
    }
    let out = child.wait_with_output().context("waiting for oomtrace history")?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(out.status.success(), "oomtrace history {args:?} failed: {stderr}");
    let events = String::from_utf8_lossy(&out.stdout).lines().map(Event::parse).collect::<Result<Vec<_>>>()?;
    Ok((events, stderr))
}

/// `oom_kill` of /proc/vmstat.
fn kernel_kill_count() -> Result<u64> {
    std::fs::read_to_string("/proc/vmstat")?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok()))
        .context("oom_kill in /proc/vmstat")
}

/// The event of `pid`: exactly one.
fn only_event(events: &[Event], pid: u32) -> &Event {
    let found: Vec<&Event> = events.iter().filter(|e| e.victim.pid == pid).collect();
    assert_eq!(found.len(), 1, "one event for pid {pid}: {found:#?}");
    found[0]
}

/// Victim and cgroups as the kernel logged them and as they were made here.
fn assert_kill(event: &Event, pid: u32, parent: &MemCgroup, web: &MemCgroup, from: &str) -> Result<()> {
    let line = dmesg::killed(pid)?;
    let victim = &event.victim;
    assert_eq!(event.source, "kernel_log", "{event}");
    assert_eq!(event.kernel_log.as_ref().map(|l| l.from.as_str()), Some(from), "{event}");
    assert_eq!(victim.comm.as_deref(), Some(line.comm.as_str()), "{event}");
    assert_eq!(
        (victim.total_vm_kb, victim.anon_rss_kb, victim.file_rss_kb, victim.shmem_rss_kb),
        (Some(line.total_vm_kb), Some(line.anon_rss_kb), Some(line.file_rss_kb), Some(line.shmem_rss_kb)),
        "{event}"
    );
    assert_eq!(victim.uid.map(u64::from), Some(line.uid), "{event}");
    assert_eq!(victim.oom_score_adj, Some(line.oom_score_adj), "{event}");
    assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
    assert_eq!(event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref()), Some(web.path.as_str()), "{event}");
    let oom = event.oom_cgroup.as_ref().expect("oom_cgroup");
    assert_eq!(oom.cgroup.path.as_deref(), Some(parent.path.as_str()), "{event}");
    assert_eq!(oom.limit_bytes, Some(LIMIT), "{event}");
    assert!(event.unavailable.iter().any(|f| f == "killed"), "no log line says SIGKILL: {event}");
    assert_eq!(event.cause(), Some("cgroup_limit"), "a limit outside Kubernetes: {event}");
    Ok(())
}

fn history_finds_this_boots_kills_with_the_kernels_count() -> Result<()> {
    let (parent, web, pids) = kill_some("history-kmsg")?;
    // The other tests of this binary may kill meanwhile: history's count lies
    // between /proc/vmstat's before and after it.
    let before = kernel_kill_count()?;
    let (events, stderr) = history(&["--cgroup", &parent.path], None)?;
    let after = kernel_kill_count()?;
    assert_eq!(events.len(), KILLS, "only this test's kills pass --cgroup: {events:#?}");
    for &pid in &pids {
        let event = only_event(&events, pid);
        assert_kill(event, pid, &parent, &web, "kmsg")?;
        assert!(event.kernel_log.as_ref().and_then(|l| l.seq).is_some(), "kmsg records have sequence numbers");
        assert!(event.time.is_some() && event.ktime_ns > 0, "{event}");
        let report = event.kernel_report.as_ref().expect("the first kills' reports are not rate-limited");
        assert_eq!(report.memory_stat_cgroup.as_deref(), Some(parent.path.as_str()), "{event}");
        assert!(!report.memory_stat.is_empty(), "{event}");
        assert!(report.largest_tasks.iter().any(|t| t.pid == pid), "the victim is among the largest tasks: {event}");
    }
    // The closing line: the kernel's count as /proc/vmstat had it.
    let closing = stderr.lines().last().unwrap_or_default();
    let counted: u64 = closing
        .strip_prefix("kernel counted ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .with_context(|| format!("no count in the closing line: {stderr}"))?;
    assert!((before..=after).contains(&counted), "{before} <= {counted} <= {after}: {stderr}");
    assert!(closing.contains(" OOM kills since boot; "), "{stderr}");
    assert!(closing.contains(" found in the log"), "{stderr}");
    Ok(())
}

fn a_saved_log_and_stdin_give_the_same_victims() -> Result<()> {
    let (parent, web, pids) = kill_some("history-file")?;
    let dir = std::env::temp_dir().join(unique("history-file"));
    std::fs::create_dir_all(&dir)?;
    for (name, dmesg_args) in [("dmesg.txt", &[][..]), ("dmesg-T.txt", &["-T"][..])] {
        let out = Command::new("dmesg").args(dmesg_args).output().context("dmesg")?;
        if !out.status.success() && !dmesg_args.is_empty() {
            // busybox's dmesg (the VM guests') has no -T.
            println!("dmesg {dmesg_args:?} is not supported here: {name} not checked");
            continue;
        }
        ensure!(out.status.success(), "dmesg {dmesg_args:?} failed");
        let path = dir.join(name);
        std::fs::write(&path, &out.stdout)?;
        let file_arg = path.display().to_string();
        let (from_file, _) = history(&["--file", &file_arg, "--cgroup", &parent.path], None)?;
        let (from_stdin, _) = history(&["--file", "-", "--cgroup", &parent.path], Some(&out.stdout))?;
        for events in [&from_file, &from_stdin] {
            assert_eq!(events.len(), KILLS, "{name}: {events:#?}");
            for &pid in &pids {
                let event = only_event(events, pid);
                assert_kill(event, pid, &parent, &web, "file")?;
                // `dmesg` has kernel timestamps only: no wall-clock time is
                // made up; `dmesg -T` has wall-clock times only.
                match name {
                    "dmesg.txt" => assert!(event.time.is_none() && event.ktime_ns > 0, "{event}"),
                    _ => assert!(event.time.is_some(), "{event}"),
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A live kill goes out before the kernel log is read; its report follows
/// as an `oom_kernel_report` record naming it, and the log's kill is no
/// second event once the grace is over.
fn a_live_events_kernel_report_follows_it_and_is_no_second_event() -> Result<()> {
    let parent = MemCgroup::create(&unique("history-join"), Some(LIMIT))?;
    let web = parent.child("web", None)?;
    let tracer = Live::start_with_warnings(oomtrace(), &["--cgroup", &parent.path, "--no-warnings"])?;
    let pid = web.oom_kill_hog(HOG)?;
    let (event, record) = tracer.expect_kill_and_report(EVENT_TIMEOUT)?;
    assert_eq!(event.victim.pid, pid, "{event}");
    assert_eq!(event.source, "ebpf", "{event}");
    assert!(event.kernel_report.is_none(), "a live kill does not wait for its report: {event}");
    assert_eq!(event.cause(), Some("cgroup_limit"), "{event}");
    assert_eq!((record.oom_id, record.victim_comm.as_ref()), (event.oom_id, event.victim.comm.as_ref()), "{record}");
    assert_eq!(record.diagnosis.cause, "cgroup_limit", "the same cause: {record}");
    let report = &record.kernel_report;
    assert_eq!(report.memory_stat_cgroup.as_deref(), Some(parent.path.as_str()), "{record}");
    assert!(!report.memory_stat.is_empty(), "{record}");
    assert!(report.largest_tasks.iter().any(|t| t.pid == pid), "{record}");
    let log = record.kernel_log.as_ref().with_context(|| format!("no kernel_log: {record}"))?;
    assert!(log.full_report && log.seq.is_some(), "read whole from /dev/kmsg: {record}");
    // The log's kill is joined, not reported again once the grace is over.
    let later = tracer.records_until(Duration::from_secs(4), |_| false)?;
    assert!(later.is_empty(), "no second record for the same kill: {later:#?}");
    Ok(())
}

/// `live --count 1` stops at its first kill, and shows that kill's report
/// (its kill line comes right after the kill) before it exits.
fn live_count_shows_the_counted_kills_report_before_it_exits() -> Result<()> {
    let cgroup = MemCgroup::create(&unique("history-count"), Some(LIMIT))?;
    let tracer = Live::start_with_warnings(oomtrace(), &["--cgroup", &cgroup.path, "--no-warnings", "--count", "1"])?;
    // The report is printed only outside the kernel's rate limit.
    dmesg::wait_for_whole_reports();
    let pid = cgroup.oom_kill_hog(HOG)?;
    let (event, record) = tracer.expect_kill_and_report(EVENT_TIMEOUT)?;
    assert_eq!((event.victim.pid, record.victim_pid), (pid, pid), "{event}\n{record}");
    assert_eq!(record.kernel_report.memory_stat_cgroup.as_deref(), Some(cgroup.path.as_str()), "{record}");
    let stopped = tracer.wait_exit(Duration::from_secs(10))?;
    assert!(stopped.status.success(), "live --count 1 failed: {}", stopped.log);
    Ok(())
}
