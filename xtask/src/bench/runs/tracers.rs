//! A tracer on its own (`oomtrace live`, bpftrace): start-to-attached, idle
//! footprint, then sequential kills and a storm, every kill's events counted.

use std::{
    collections::HashSet,
    ffi::OsString,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::bench::{
    figures::ToolFigures,
    host::progress,
    runs::{
        kernel_cost,
        kills::{Seen, kernel_oom_kills, kill_sequentially, kill_storm},
    },
    settings::{
        ATTACH_DEADLINE, ATTACH_RUNS, DRAIN_QUIET, IDLE_SETTLE, IDLE_WINDOW, LIMIT_BYTES, PROBES_ATTACHED_DEADLINE,
    },
};
use oomtrace_testkit::{
    cgroup::{BenchCgroups, Hierarchy},
    live,
    procfs::{self, Clock, Memory},
    tracer::{Spec, Tracer},
};

/// bpftrace prints this just before it attaches.
const BPFTRACE_ATTACHING: &str = "Attaching 1 probe";
/// bpftrace prints this once its probes are attached when the environment
/// variable of the same name is set (its runtime tests use it).
const BPFTRACE_NOTIFY: &str = "__BPFTRACE_NOTIFY_PROBES_ATTACHED";
/// The peer: one line per `mark_victim`, its clock and the victim's pid.
pub const BPFTRACE_PROGRAM: &str = r#"tracepoint:oom:mark_victim { printf("%llu %d\n", nsecs, args->pid); }"#;

/// One tracer under test: how to start it for attach timing, and for the
/// kills (oomtrace then filters on the bench cgroup).
pub struct Tool {
    pub name: &'static str,
    pub version: String,
    pub attach_spec: Spec,
    pub run_spec: Spec,
}

/// How many kills of each phase, and the name of the bench's cgroup.
#[derive(Clone, Copy)]
pub struct Kills<'a> {
    pub sequential: usize,
    pub storm: usize,
    pub cgroup_name: &'a str,
}

/// `oomtrace live -o json`, filtered on `cgroup` when given.
pub fn oomtrace_spec(binary: &Path, cgroup: Option<&str>) -> Spec {
    let mut args = vec!["live", "-o", "json"];
    if let Some(cgroup) = cgroup {
        args.extend(["--cgroup", cgroup]);
    }
    live::spec(binary, &args, Vec::new())
}

/// The bpftrace one-liner, its `nsecs` read as `clock`.
pub fn bpftrace_spec(binary: &Path, clock: Clock) -> Spec {
    Spec {
        program: binary.to_owned(),
        args: vec![OsString::from("-e"), OsString::from(BPFTRACE_PROGRAM)],
        env: vec![(BPFTRACE_NOTIFY, "1".to_owned())],
        markers: vec![BPFTRACE_ATTACHING, BPFTRACE_NOTIFY],
        parse: parse_bpftrace_line,
        clock,
    }
}

/// `<nsecs> <pid>`, as the bpftrace one-liner prints it.
fn parse_bpftrace_line(line: &str) -> Option<(u32, u64)> {
    let (nsecs, pid) = line.trim().split_once(' ')?;
    Some((pid.trim().parse().ok()?, nsecs.parse().ok()?))
}

/// Everything the bench measures of one tracer.
pub fn measure(tool: &Tool, hierarchy: &Hierarchy, kills: Kills) -> Result<ToolFigures> {
    let name = tool.name;
    let (attach, probes_attached) = attach_times(tool)?;

    let mut tracer = start_attached(&tool.run_spec, name)?;
    progress(&format!("{name}: idle footprint ({IDLE_SETTLE:?} settle, {IDLE_WINDOW:?} CPU window)"));
    let (idle, idle_cpu_percent) = idle_footprint(tracer.pid()).with_context(|| format!("measuring idle {name}"))?;

    let cgroups = BenchCgroups::create(hierarchy, kills.cgroup_name, LIMIT_BYTES, kills.storm)?;
    let mut kernel_window = kernel_cost::open(tracer.pid());
    let mut seen = Seen::default();
    progress(&format!("{name}: {} sequential OOM kills in {}", kills.sequential, cgroups.seq.path));
    let seq_hogs = kill_sequentially(&tracer, &cgroups.seq, kills.sequential, &mut seen, || {
        if let Ok(window) = &mut kernel_window {
            window.sample();
        }
    })?;
    progress(&format!("{name}: storm of {} parallel OOM kills in {}/storm-NN", kills.storm, cgroups.parent.path));
    let storm_hogs = kill_storm(&tracer, &cgroups.storm, &mut seen)?;
    seen.drain(&tracer, DRAIN_QUIET);
    let kernel = kernel_window.and_then(kernel_cost::KillWindow::close).map_err(|error| {
        progress(&format!("{name}: kernel cost not measured: {error:#}"));
        format!("{error:#}")
    });
    let after_kills =
        procfs::memory(tracer.pid()).with_context(|| format!("reading {name}'s memory after the kills"))?;
    let exit = tracer.stop().with_context(|| format!("stopping {name}"))?;

    let seq = seen.tally(&seq_hogs, cgroups.seq.oom_kills()?);
    let storm = seen.tally(&storm_hogs, kernel_oom_kills(&cgroups.storm)?);
    let ours: HashSet<u32> = seq_hogs.iter().chain(&storm_hogs).map(|hog| hog.pid).collect();
    let foreign_events = seen.foreign(&ours);
    drop(cgroups);
    progress(&format!(
        "{name}: sequential {}/{} events, storm {}/{} events; exit {exit}",
        seq.events_matched(),
        seq.oom_killed(),
        storm.events_matched(),
        storm.oom_killed()
    ));
    Ok(ToolFigures {
        name,
        version: tool.version.clone(),
        attach,
        probes_attached,
        idle,
        idle_cpu_percent,
        after_kills,
        seq,
        storm,
        foreign_events,
        kernel,
    })
}

/// Starts `spec` and waits until it is attached and, where it says so later,
/// until its probes are: kills must not start before the probe is really
/// attached.
pub fn start_attached(spec: &Spec, name: &str) -> Result<Tracer> {
    let mut tracer = Tracer::spawn(spec).with_context(|| format!("starting {name}"))?;
    tracer.wait_marker(0, ATTACH_DEADLINE).with_context(|| format!("{name} did not attach"))?;
    if spec.markers.len() > 1 {
        let _ = tracer.wait_marker(1, PROBES_ATTACHED_DEADLINE);
    }
    Ok(tracer)
}

/// ATTACH_RUNS starts, each timed to its first marker (and to a later one,
/// where the tracer has one: bpftrace's "probes attached").
fn attach_times(tool: &Tool) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let name = tool.name;
    progress(&format!("{name}: {ATTACH_RUNS} starts to time attaching"));
    let mut attach = Vec::with_capacity(ATTACH_RUNS);
    let mut probes_attached = Vec::new();
    for run in 1..=ATTACH_RUNS {
        let mut tracer = Tracer::spawn(&tool.attach_spec).with_context(|| format!("starting {name}"))?;
        let attached = tracer
            .wait_marker(0, ATTACH_DEADLINE)
            .with_context(|| format!("{name} (start {run} of {ATTACH_RUNS}) did not attach"))?;
        attach.push(attached);
        if tool.attach_spec.markers.len() > 1
            && let Ok(later) = tracer.wait_marker(1, PROBES_ATTACHED_DEADLINE)
        {
            probes_attached.push(later);
        }
        tracer.stop().with_context(|| format!("stopping {name}"))?;
    }
    progress(&format!("{name}: attach times {}", join_ms(&attach)));
    Ok((attach, probes_attached))
}

fn join_ms(times: &[Duration]) -> String {
    times.iter().map(|t| format!("{:.1} ms", t.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", ")
}

/// VmRSS/VmHWM after settling, and CPU as % of one core over the window.
fn idle_footprint(pid: u32) -> Result<(Memory, f64)> {
    thread::sleep(IDLE_SETTLE);
    let memory = procfs::memory(pid)?;
    let ticks_per_sec = procfs::clock_ticks_per_sec()?;
    let before = procfs::cpu_ticks(pid)?;
    let from = Instant::now();
    thread::sleep(IDLE_WINDOW);
    let after = procfs::cpu_ticks(pid)?;
    let seconds = from.elapsed().as_secs_f64();
    let cpu_percent = (after.saturating_sub(before)) as f64 / (seconds * ticks_per_sec as f64) * 100.0;
    Ok((memory, cpu_percent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_bpftrace_line() {
        assert_eq!(parse_bpftrace_line("123456789 4242"), Some((4242, 123_456_789)));
        assert_eq!(parse_bpftrace_line("Attaching 1 probe..."), None);
        assert_eq!(parse_bpftrace_line("__BPFTRACE_NOTIFY_PROBES_ATTACHED"), None);
    }
}
