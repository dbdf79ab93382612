//! Attribution that cannot race or mislead: cgroups created and removed
//! around their kills are still named (the kernel captures the path at the
//! kill), and a memory limit further up than the kernel's ancestor walk goes
//! gives scope `unknown` with a reason, never `global`.

mod support;

use std::{process::ExitCode, time::Duration};

use anyhow::{Context as _, Result, ensure};
use oomtrace_common::MAX_CGROUP_DEPTH;
use oomtrace_testkit::{
    cgroup::MemCgroup,
    event::Event,
    harness::{self, Need},
    live::Live,
    trial,
};
use support::{assert_matches_dmesg, live, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const HOG: u64 = 256 * MIB;
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Kills per scenario.
const KILLS: usize = 5;

fn main() -> ExitCode {
    harness::main(vec![
        trial!(cgroups_removed_while_their_events_wait_in_the_ring_buffer_are_named, Need::Root),
        trial!(back_to_back_kills_in_short_lived_nested_cgroups_are_all_named, Need::Root),
        trial!(a_limit_just_within_the_walk_is_inferred, Need::Root),
        trial!(a_limit_beyond_the_walk_is_unknown_never_global, Need::Root),
    ])
}

/// A pod-like pair made for one kill: `<parent>/pod<i>` holds the limit,
/// `<parent>/pod<i>/ctr` the victim. Returns what the event must say, after
/// both directories are gone.
struct Expected {
    pid: u32,
    victim_path: String,
    victim_id: u64,
    oom_path: String,
    oom_id: u64,
}

/// Creates the pair, OOM-kills a hog in it and removes both directories.
fn kill_in_short_lived_pair(parent: &MemCgroup, index: usize) -> Result<Expected> {
    let pod = parent.child(&format!("pod{index}"), Some(LIMIT))?;
    let ctr = pod.child("ctr", None)?;
    let pid = ctr.oom_kill_hog(HOG)?;
    let expected = Expected {
        pid,
        victim_path: ctr.path.clone(),
        victim_id: ctr.id()?,
        oom_path: pod.path.clone(),
        oom_id: pod.id()?,
    };
    ensure!(ctr.oom_kills()? == 1, "the kernel counted no kill in {}", ctr.path);
    // Child first: rmdir waits for the killed task to leave.
    drop(ctr);
    drop(pod);
    Ok(expected)
}

/// Every kill has one event naming the vanished cgroups, and live counted no
/// cgroup it could not name.
fn assert_all_named(tracer: Live, expected: &[Expected]) -> Result<()> {
    let mut events: Vec<Event> = Vec::new();
    while events.len() < expected.len() {
        events.push(tracer.expect_event(EVENT_TIMEOUT)?);
    }
    events.extend(tracer.drain(Duration::from_secs(1))?);
    let lines: Vec<String> = events.iter().map(Event::to_string).collect();
    ensure!(events.len() == expected.len(), "one event per kill: {lines:#?}");
    for want in expected {
        let event = events
            .iter()
            .find(|e| e.victim.pid == want.pid)
            .with_context(|| format!("no event for pid {} (cgroup {}): {lines:#?}", want.pid, want.victim_path))?;
        assert_matches_dmesg(event, want.pid)?;
        assert_eq!(event.victim_cgroup_path(), Some(want.victim_path.as_str()), "{event}");
        assert_eq!(event.victim_cgroup_id(), Some(want.victim_id), "{event}");
        assert_eq!(event.oom_cgroup_path(), Some(want.oom_path.as_str()), "{event}");
        assert_eq!(event.oom_cgroup_id(), Some(want.oom_id), "{event}");
        assert_eq!(event.oom_limit_bytes(), Some(LIMIT), "{event}");
        assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
    }
    let stopped = tracer.stop()?;
    ensure!(stopped.status.success(), "live failed:\n{}", stopped.log);
    let summary = stopped.summary()?;
    assert_eq!(summary.cgroup_unresolved, 0, "{}", stopped.log);
    assert_eq!(summary.shown, expected.len() as u64, "{}", stopped.log);
    Ok(())
}

/// The reader is stopped (SIGSTOP) while the kills happen and their cgroups
/// are removed: every event is read after its cgroup and its parent are gone
/// from the hierarchy, so no rescan can ever find them.
fn cgroups_removed_while_their_events_wait_in_the_ring_buffer_are_named() -> Result<()> {
    let parent = MemCgroup::create(&unique("held"), None)?;
    let tracer = live(&["--cgroup", &parent.path])?;
    tracer.signal(libc::SIGSTOP);
    let kills: Result<Vec<Expected>> = (0..KILLS).map(|i| kill_in_short_lived_pair(&parent, i)).collect();
    tracer.signal(libc::SIGCONT);
    assert_all_named(tracer, &kills?)
}

/// Bursts of kills, each in a pair of cgroups created and removed back to
/// back, faster than the hierarchy index is rescanned (at most every 200 ms).
fn back_to_back_kills_in_short_lived_nested_cgroups_are_all_named() -> Result<()> {
    let parent = MemCgroup::create(&unique("burst"), None)?;
    let tracer = live(&["--cgroup", &parent.path])?;
    let kills = (0..KILLS).map(|i| kill_in_short_lived_pair(&parent, i)).collect::<Result<Vec<_>>>()?;
    assert_all_named(tracer, &kills)
}

/// Nested cgroups `d01/d02/...`, outermost first; removed innermost first,
/// so that every rmdir finds its directory empty, also when a test fails.
struct Nested(Vec<MemCgroup>);

impl Nested {
    fn under(top: &MemCgroup, levels: usize) -> Result<Nested> {
        let mut nested = Nested(Vec::with_capacity(levels));
        for level in 1..=levels {
            let next = nested.0.last().unwrap_or(top).child(&format!("d{level:02}"), None)?;
            nested.0.push(next);
        }
        Ok(nested)
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        while let Some(cgroup) = self.0.pop() {
            drop(cgroup);
        }
    }
}

/// One kill `levels_below` levels under a cgroup limited to [`LIMIT`], seen
/// through `probes`; the event, the limited cgroup's path and the victim's.
fn deep_kill(test: &str, levels_below: usize, probes: &[&str]) -> Result<(Event, MemCgroup, String)> {
    let limited = MemCgroup::create(&unique(test), Some(LIMIT))?;
    let nested = Nested::under(&limited, levels_below)?;
    let victim = nested.0.last().context("no levels")?;
    let mut args = vec!["--cgroup", limited.path.as_str()];
    args.extend_from_slice(probes);
    let tracer = live(&args)?;
    let result = victim.oom_kill_hog(HOG).and_then(|pid| {
        let event = tracer.expect_event(EVENT_TIMEOUT)?;
        assert_matches_dmesg(&event, pid)?;
        Ok(event)
    });
    let victim_path = victim.path.clone();
    drop(tracer);
    drop(nested);
    Ok((result?, limited, victim_path))
}

/// The victim's memcg is level 0 of the walk; the limit sits at its last level.
fn a_limit_just_within_the_walk_is_inferred() -> Result<()> {
    let (event, limited, victim_path) = deep_kill("within", MAX_CGROUP_DEPTH - 1, &["--context-probe", "none"])?;
    // Deeper than the kernel captures names: the top comes from the index.
    assert_eq!(event.victim_cgroup_path(), Some(victim_path.as_str()), "{event}");
    assert_eq!(event.victim_cgroup.as_ref().and_then(|c| c.path_truncated), None, "{event}");
    assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
    assert_eq!(event.scope_source.as_deref(), Some("inferred"), "{event}");
    assert_eq!(event.oom_cgroup_path(), Some(limited.path.as_str()), "{event}");
    assert_eq!(event.oom_cgroup_id(), Some(limited.id()?), "{event}");
    assert_eq!(event.oom_limit_bytes(), Some(LIMIT), "{event}");
    Ok(())
}

/// One level further: inference cannot see the limit and says so; with the
/// `oom_kill_process` context (where the kernel allows it) the OOMing memcg
/// is read, not inferred, and is the right one. Never `global`.
fn a_limit_beyond_the_walk_is_unknown_never_global() -> Result<()> {
    let (event, _limited, victim_path) = deep_kill("beyond", MAX_CGROUP_DEPTH, &["--context-probe", "none"])?;
    assert_eq!(event.victim_cgroup_path(), Some(victim_path.as_str()), "{event}");
    assert_eq!(event.scope.as_deref(), Some("unknown"), "{event}");
    assert_eq!(event.scope_unknown_reason.as_deref(), Some("walk_depth_limit"), "{event}");
    assert!(event.oom_cgroup.is_none(), "no OOMing memcg is made up: {event}");

    let (event, limited, _) = deep_kill("beyond-default", MAX_CGROUP_DEPTH, &[])?;
    if event.scope_source.as_deref() == Some("oom_control") {
        assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
        assert_eq!(event.oom_cgroup_path(), Some(limited.path.as_str()), "{event}");
    } else {
        eprintln!("no oom_kill_process probe on this kernel: the scope is inferred");
        assert_eq!(event.scope.as_deref(), Some("unknown"), "{event}");
        assert_eq!(event.scope_unknown_reason.as_deref(), Some("walk_depth_limit"), "{event}");
    }
    Ok(())
}
