//! Sequential kills in alternating turns: oomtrace and bpftrace each trace
//! alone (never both awake for one kill, which on 2 CPUs would make one wait
//! for the other), in the order A B B A A B B A …, so that a change in the
//! host's speed during the run (another guest's load, a noisy neighbour)
//! weighs on both alike. Each tool's own block of kills (see
//! [`super::tracers::measure`]) runs minutes apart from the other's, and its
//! p50 moved by up to 3× between runs of one build while the other's did not.

use anyhow::{Context as _, Result};

use crate::bench::{
    figures::{Alternating, KillRun},
    host::progress,
    runs::{
        kills::{Seen, kill_sequentially},
        tracers,
    },
    settings::{ALTERNATING_TURNS, DRAIN_QUIET, LIMIT_BYTES},
};
use oomtrace_testkit::{
    cgroup::{BenchCgroups, Hierarchy},
    tracer::Spec,
};

/// `kills` sequential kills for each of `ours` and `peer`, in
/// [`ALTERNATING_TURNS`] turns each, in the bench's cgroup `cgroup_name`.
pub fn measure(
    ours: &Spec,
    peer: &Spec,
    hierarchy: &Hierarchy,
    cgroup_name: &str,
    kills: usize,
) -> Result<Alternating> {
    let cgroups = BenchCgroups::create(hierarchy, cgroup_name, LIMIT_BYTES, 0)?;
    let per_turn = kills.div_ceil(ALTERNATING_TURNS).max(1);
    let mut runs = [KillRun::default(), KillRun::default()];
    let tools = [("oomtrace", ours), ("bpftrace", peer)];
    progress(&format!(
        "alternating: {ALTERNATING_TURNS} turns of {per_turn} sequential kills for each of oomtrace and bpftrace, A B B A …"
    ));
    for turn in 0..2 * ALTERNATING_TURNS {
        let which = turn_tool(turn);
        let (name, spec) = tools[which];
        let mut tracer = tracers::start_attached(spec, name)?;
        let killed_before = cgroups.seq.oom_kills()?;
        let mut seen = Seen::default();
        let hogs = kill_sequentially(&tracer, &cgroups.seq, per_turn, &mut seen, || {})?;
        seen.drain(&tracer, DRAIN_QUIET);
        tracer.stop().with_context(|| format!("stopping {name}"))?;
        let run = seen.tally(&hogs, cgroups.seq.oom_kills()? - killed_before);
        runs[which].merge(run);
    }
    let [oomtrace, peer] = runs;
    progress(&format!(
        "alternating: oomtrace {}/{} events, bpftrace {}/{} events",
        oomtrace.events_matched(),
        oomtrace.oom_killed(),
        peer.events_matched(),
        peer.oom_killed()
    ));
    Ok(Alternating { turns: ALTERNATING_TURNS, kills_per_turn: per_turn, oomtrace, peer })
}

/// Which tool has turn `turn` (0: oomtrace, 1: bpftrace): A B B A A B B A …
fn turn_tool(turn: usize) -> usize {
    (turn + turn / 2) % 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_go_a_b_b_a() {
        let order: Vec<usize> = (0..8).map(turn_tool).collect();
        assert_eq!(order, [0, 1, 1, 0, 0, 1, 1, 0]);
    }
}
