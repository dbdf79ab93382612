//! The storm block of docs/benchmarks.md (`cargo xtask bench --only storm`
//! writes it between its markers; a full run keeps it): rounds of parallel
//! kills and the wave, oomtrace beside bpftrace on the same kills, and the
//! time to know through the daemon's OTLP export.

use std::fmt::Write as _;

use crate::bench::{
    figures::{KillRun, KnowFigures, Latency, SharedKills, StormFigures, ThreadCost},
    report::format::{cell, events_cell, mib, ratio},
    settings::TARGET_PEER_FACTOR,
};

/// How a latency table's row reads its figure from a [`Latency`].
type Read = fn(&Latency) -> f64;

/// The rows of each latency table: the percentile's name and how to read it.
const PERCENTILES: [(&str, Read); 3] =
    [("p50", |l: &Latency| l.p50_ms), ("p99", |l: &Latency| l.p99_ms), ("max", |l: &Latency| l.max_ms)];

pub const BLOCK_BEGIN: &str = "<!-- storm: begin (cargo xtask bench --only storm writes this block) -->";
pub const BLOCK_END: &str = "<!-- storm: end -->";
pub const BLOCK: crate::marked::Block = crate::marked::Block { begin: BLOCK_BEGIN, end: BLOCK_END };

/// The whole block, markers included.
pub fn block(figures: &StormFigures) -> String {
    let mut out = String::new();
    writeln!(out, "{BLOCK_BEGIN}").ok();
    writeln!(out, "## Storms, the wave and the time to know").ok();
    writeln!(out).ok();
    writeln!(
        out,
        "`{}`, {}, commit {}: {} and {} trace the same kills at the same time, each line stamped as it \
         arrives (issue 22, parts 0 and 3).",
        figures.invocation,
        figures.generated,
        figures.commit,
        figures.oomtrace_version,
        figures.bpftrace_version.as_deref().unwrap_or("no bpftrace")
    )
    .ok();
    writeln!(out).ok();
    if let Some(load) = figures.load_average
        && load > figures.cpus as f64
    {
        writeln!(
            out,
            "**Smoke run**: the host was loaded by other work (load average {load:.1} on {} CPUs when the run \
             started); these figures show that the sections run and what they count, not the tools' latency on a \
             quiet machine.",
            figures.cpus
        )
        .ok();
        writeln!(out).ok();
    }
    shared_section(&mut out, "Rounds of parallel kills", &figures.rounds, Goal::Within);
    shared_section(&mut out, "The wave", &figures.wave, Goal::P99NoWorse);
    know_section(&mut out, &figures.know);
    writeln!(out, "{BLOCK_END}").ok();
    out
}

/// Issue 22's goal of a phase against bpftrace in the same run.
#[derive(Clone, Copy)]
enum Goal {
    /// Part 0: p50 and p99 within TARGET_PEER_FACTOR (a 96-kill storm).
    Within,
    /// Part 3: the wave's p99 no worse than bpftrace's.
    P99NoWorse,
}

fn shared_section(out: &mut String, heading: &str, phase: &Result<SharedKills, String>, goal: Goal) {
    writeln!(out, "### {heading}").ok();
    writeln!(out).ok();
    let Some(phase) = measured(out, phase) else { return };
    let hogs = if phase.rounds > 1 {
        format!("{} hogs at once, {} rounds ({} kills)", phase.cgroups, phase.rounds, phase.cgroups * phase.rounds)
    } else {
        format!("{} hogs at once", phase.cgroups)
    };
    writeln!(
        out,
        "{hogs}, each in its own memory cgroup limited to {:.0} MiB, held stopped until all were ready and then \
         released together. The kills of one round spanned {} in kernel time (first to last `mark_victim`, \
         the widest round): every memory cgroup's OOM takes the kernel's one `oom_lock` (mm/memcontrol.c, \
         `mem_cgroup_out_of_memory`), so the kills themselves come one after another, as fast as the kernel can \
         make them.",
        mib(phase.limit_bytes / 1024),
        cell(phase.span_ms, "ms", 1)
    )
    .ok();
    writeln!(out).ok();
    let ours = phase.oomtrace.latency();
    let peer = phase.bpftrace_latency();
    let peer_cell = |value: fn(&Latency) -> f64| peer.as_ref().map(value);
    writeln!(out, "| | oomtrace live | bpftrace | oomtrace / bpftrace |\n|---|---|---|---|").ok();
    let peer_events = phase.bpftrace.as_ref().map_or_else(|why| format!("n/a ({why})"), events_cell);
    writeln!(out, "| events | {} | {peer_events} | |", events_cell(&phase.oomtrace)).ok();
    for (name, value) in PERCENTILES {
        let (a, b) = (ours.as_ref().map(value), peer_cell(value));
        writeln!(out, "| kill-to-line {name} | {} | {} | {} |", cell(a, "ms", 3), cell(b, "ms", 3), ratio(a, b)).ok();
    }
    writeln!(out, "| kernel oom_kill counters | {} | | |", phase.oomtrace.kernel_oom_kills).ok();
    writeln!(out).ok();
    threads_table(out, &phase.threads, phase.oomtrace.oom_killed());
    match &phase.drops {
        Ok(drops) => writeln!(
            out,
            "oomtrace's own counters at exit (its `detached` line): lost (ring buffer full) {}, undecodable {}, \
             cgroup unresolved {}, context missing {}, partially attributed {}, CRI failures {}; filtered out \
             (other cgroups' kills) {}.",
            drops.lost_ringbuf_full,
            drops.undecodable,
            drops.cgroup_unresolved,
            drops.context_missing,
            drops.partially_attributed,
            drops.cri_failures,
            drops.filtered_out
        ),
        Err(why) => writeln!(out, "oomtrace's counters at exit could not be read: {why}."),
    }
    .ok();
    writeln!(out).ok();
    let exact = phase.oomtrace.missing.is_empty()
        && phase.oomtrace.duplicates == 0
        && phase.oomtrace.oom_killed() > 0
        && phase.drops.as_ref().is_ok_and(|d| d.lost_ringbuf_full == 0 && d.undecodable == 0);
    writeln!(
        out,
        "Every kill reported exactly once, nothing lost: {}. {}",
        if exact { "yes" } else { "**no**" },
        peer_goal(ours, peer, goal)
    )
    .ok();
    writeln!(out).ok();
}

/// The receiver's time to know in two legs, at the record's own
/// `observed_time_unix_nano`: which side of the daemon's event thread the
/// time is spent on.
fn split_table(out: &mut String, know: &KnowFigures) {
    let (Some(emitted), Some(delivered)) = (Latency::of(&know.emitted_ns), Latency::of(&know.delivered_ns)) else {
        writeln!(out, "The records carried no `observed_time_unix_nano`: the time to know is not split.\n").ok();
        return;
    };
    writeln!(
        out,
        "The same {} records split at their `observed_time_unix_nano` (the daemon's clock when its event thread \
         queued the record for export): kill to that moment (the daemon's event thread: ring buffer, attribution, \
         the warning verdict, the diagnosis; the kernel's report follows in a record of its own), and from it to the receiver's stamp (the export thread's wake-up and \
         request, gRPC on loopback, the receiver's own threads). Percentiles of each leg, not additive.\n",
        know.emitted_ns.len()
    )
    .ok();
    writeln!(out, "| | kill to the daemon's emit | emit to the receiver |\n|---|---|---|").ok();
    for (name, value) in PERCENTILES {
        writeln!(
            out,
            "| {name} | {} | {} |",
            cell(Some(value(&emitted)), "ms", 3),
            cell(Some(value(&delivered)), "ms", 3)
        )
        .ok();
    }
    writeln!(out).ok();
    let larger = if delivered.p99_ms >= emitted.p99_ms {
        "from the emit to the receiver: the export thread, gRPC and the receiver set the tail, not the event thread"
    } else {
        "from the kill to the emit: the daemon's event thread sets the tail, not the export"
    };
    writeln!(out, "The larger leg at p99 is {larger}.\n").ok();
}

/// What each tracer's threads used and waited for over the kills.
fn threads_table(out: &mut String, threads: &Result<Vec<ThreadCost>, String>, kills: usize) {
    let threads = match threads {
        Ok(threads) => threads,
        Err(why) => {
            writeln!(out, "The tracers' threads could not be read: {why}.\n").ok();
            return;
        }
    };
    writeln!(
        out,
        "Each tracer's threads over the kills (`/proc/<pid>/task/<tid>/schedstat`, read once both were attached \
         and again after the last round or storm; threads present at both readings): the time each spent on a CPU and \
         runnable but waiting for one, the times it was run, and both per run. The bench's `out-` threads read \
         each tracer's stdout and stamp its lines (`kill-to-line` ends there); `receiver` is the OTLP receiver's \
         (the time to know ends at its stamp). EEVDF (Linux 6.6+) does not pick a \
         thread that ran beyond its share again until the runqueue's average virtual runtime has caught up with its \
         own: CPU taken in one run is paid for in waiting before a later one, the more so the more tasks are \
         runnable.\n"
    )
    .ok();
    writeln!(
        out,
        "| tracer | thread | CPU | CPU per kill | runnable, waiting for a CPU | times run | CPU per run | waiting per \
         run |\n|---|---|---|---|---|---|---|---|"
    )
    .ok();
    for thread in threads {
        let per_kill = (kills > 0).then(|| thread.run_ms * 1000.0 / kills as f64);
        let per_run = |ms: f64| (thread.runs > 0).then(|| ms / thread.runs as f64);
        writeln!(
            out,
            "| {} | `{}` | {:.1} ms | {} | {:.1} ms | {} | {} | {} |",
            thread.tracer,
            thread.thread,
            thread.run_ms,
            cell(per_kill, "µs", 0),
            thread.wait_ms,
            thread.runs,
            cell(per_run(thread.run_ms * 1000.0), "µs", 0),
            cell(per_run(thread.wait_ms), "ms", 2),
        )
        .ok();
    }
    writeln!(out).ok();
}

/// The figures; or, when there are none, says why and gives nothing.
fn measured<'a, T>(out: &mut String, figures: &'a Result<T, String>) -> Option<&'a T> {
    if let Err(reason) = figures {
        writeln!(out, "Not measured: {reason}.\n").ok();
    }
    figures.as_ref().ok()
}

/// Issue 22's goal against the peer, and whether it was met.
fn peer_goal(ours: Option<Latency>, peer: Option<Latency>, goal: Goal) -> String {
    let (Some(ours), Some(peer)) = (ours, peer) else {
        return "No comparison with bpftrace (not measured).".to_owned();
    };
    let met_or_not = |met: bool| if met { "met" } else { "**not met**" };
    let (p50, p99) = (ratio(Some(ours.p50_ms), Some(peer.p50_ms)), ratio(Some(ours.p99_ms), Some(peer.p99_ms)));
    match goal {
        Goal::Within => {
            let within = |a: f64, b: f64| a <= b * TARGET_PEER_FACTOR;
            let met = within(ours.p50_ms, peer.p50_ms) && within(ours.p99_ms, peer.p99_ms);
            format!(
                "p50 and p99 within {TARGET_PEER_FACTOR}× of bpftrace's (goal): {} (p50 {p50}, p99 {p99}).",
                met_or_not(met)
            )
        }
        Goal::P99NoWorse => {
            format!(
                "p99 no worse than bpftrace's (goal): {} (p99 {p99}; p50 {p50}).",
                met_or_not(ours.p99_ms <= peer.p99_ms)
            )
        }
    }
}

fn know_section(out: &mut String, know: &Result<KnowFigures, String>) {
    writeln!(out, "### Time to know").ok();
    writeln!(out).ok();
    let Some(know) = measured(out, know) else { return };
    writeln!(
        out,
        "`{}`, its defaults otherwise (OTLP log export as soon as a record is queued, kernel log read, warnings \
         on), with {} hogs released at once, each in its own {:.0} MiB cgroup, {} times (one daemon throughout; \
         the widest storm's kills spanned {} in kernel time; percentiles over every storm's kills); bpftrace ran \
         beside it. Time to know = the receiver's `received_unix_nano` (`xtask otlp-receiver`, \
         xtask/src/bench/receiver.rs: an OTLP/gRPC server of the official protocol types on tonic, in a process \
         of its own; it stamps each request as its handler starts, answers at once, as a collector answers once \
         its pipeline has the data, and writes it from another thread) \
         − the kill's `ktime_ns` put on the wall clock (CLOCK_REALTIME − \
         CLOCK_MONOTONIC read by the bench, ±{} ns). The records came in {} log requests.",
        know.command,
        know.kills,
        mib(know.limit_bytes / 1024),
        know.rounds,
        cell(know.span_ms, "ms", 1),
        know.clock_offset_uncertainty_ns.div_ceil(2),
        know.log_requests
    )
    .ok();
    writeln!(out).ok();
    let otlp = know.otlp.latency();
    let stdout = know.stdout.latency();
    let peer = know.bpftrace.as_ref().ok().and_then(KillRun::latency);
    writeln!(
        out,
        "| | kill to record in the OTLP receiver | kill to the daemon's stdout line | bpftrace: kill to stdout | \
         receiver / bpftrace |\n|---|---|---|---|---|"
    )
    .ok();
    let peer_events = know.bpftrace.as_ref().map_or_else(|why| format!("n/a ({why})"), events_cell);
    writeln!(out, "| events | {} | {} | {peer_events} | |", events_cell(&know.otlp), events_cell(&know.stdout)).ok();
    for (name, value) in PERCENTILES {
        let (a, b, c) = (otlp.as_ref().map(value), stdout.as_ref().map(value), peer.as_ref().map(value));
        writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            cell(a, "ms", 3),
            cell(b, "ms", 3),
            cell(c, "ms", 3),
            ratio(a, c)
        )
        .ok();
    }
    writeln!(out).ok();
    split_table(out, know);
    if let (Some(otlp), Some(stdout)) = (otlp, stdout) {
        let after_pipeline = if otlp.p99_ms <= stdout.p99_ms {
            "the export adds nothing to the pipeline's tail (the records reached the receiver before the stdout \
             lines): the tail is the pipeline's"
                .to_owned()
        } else {
            format!("the export adds {:.3} ms to the pipeline's tail", otlp.p99_ms - stdout.p99_ms)
        };
        writeln!(
            out,
            "The daemon's event thread queues each record for its export thread (`oomtrace-otlp`), then writes its \
             stdout line: both come after the same pipeline (decode, attribution, the warning verdict, the \
             diagnosis; the kernel's report follows in a record of its own). The receiver's p99 is {:.3} ms, the stdout line's {:.3} ms: {after_pipeline}. The storm's \
             cgroups are not pods', so the daemon made no CRI call for them: CRI lookups are not in these figures. \
             The exporter sends as soon as a record is queued (no timer), each request taking what waits (up to \
             256 records), up to 4 requests on their way at once.",
            otlp.p99_ms, stdout.p99_ms,
        )
        .ok();
        writeln!(out).ok();
    }
    threads_table(out, &know.threads, know.stdout.oom_killed());
    let goal = match (otlp, peer) {
        (Some(otlp), Some(peer)) => format!(
            "p99 no worse than bpftrace's kill-to-stdout (goal): {} ({}).",
            if otlp.p99_ms <= peer.p99_ms { "met" } else { "**not met**" },
            ratio(Some(otlp.p99_ms), Some(peer.p99_ms))
        ),
        _ => "No comparison with bpftrace (not measured).".to_owned(),
    };
    writeln!(out, "{goal}").ok();
    writeln!(out).ok();
    match &know.drops {
        Ok(drops) if drops.is_empty() => writeln!(out, "The daemon's loss and export counters: none exported."),
        Ok(drops) => writeln!(
            out,
            "The daemon's loss and export counters after the storm (its /metrics): {}.",
            drops.iter().map(|(series, value)| format!("`{series}` {value}")).collect::<Vec<_>>().join(", ")
        ),
        Err(why) => writeln!(out, "The daemon's /metrics could not be read: {why}."),
    }
    .ok();
    if let Some(ns) = know.clock_disagreement_ns {
        writeln!(
            out,
            "Each record's own `time_unix_nano` (the daemon's conversion of the same `ktime_ns`) was within \
             {:.1} µs of the bench's.",
            ns as f64 / 1e3
        )
        .ok();
    }
    writeln!(out).ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(latencies_ms: &[i64]) -> KillRun {
        KillRun {
            hogs: latencies_ms.len(),
            latencies_ns: latencies_ms.iter().map(|ms| ms * 1_000_000).collect(),
            kernel_oom_kills: latencies_ms.len() as u64,
            ..KillRun::default()
        }
    }

    fn figures() -> StormFigures {
        let shared = SharedKills {
            cgroups: 2,
            rounds: 1,
            limit_bytes: 24 << 20,
            oomtrace: run(&[1, 2]),
            drops: Ok(Default::default()),
            bpftrace: Ok(run(&[1, 2])),
            span_ms: Some(0.5),
            threads: Ok(vec![ThreadCost {
                tracer: "oomtrace",
                thread: "oomtrace".to_owned(),
                run_ms: 1.0,
                wait_ms: 9.5,
                runs: 4,
            }]),
        };
        StormFigures {
            invocation: "cargo xtask bench --only storm".to_owned(),
            generated: "2026-12-05T23:00:00Z".to_owned(),
            commit: "abc1234".to_owned(),
            load_average: Some(9.0),
            cpus: 2,
            oomtrace_version: "oomtrace 0.1.0".to_owned(),
            bpftrace_version: Some("bpftrace v0.17.0".to_owned()),
            rounds: Err("skipped".to_owned()),
            wave: Ok(shared),
            know: Err("no receiver".to_owned()),
        }
    }

    #[test]
    fn the_block_says_what_was_met_and_that_a_loaded_run_is_a_smoke_run() {
        let text = block(&figures());
        assert!(text.starts_with(BLOCK_BEGIN) && text.trim_end().ends_with(BLOCK_END), "{text}");
        assert!(text.contains("**Smoke run**"), "{text}");
        assert!(text.contains("| events | 2/2 (0 missing, 0 duplicate) | 2/2 (0 missing, 0 duplicate) | |"), "{text}");
        assert!(text.contains("| kill-to-line p99 | 2.000 ms | 2.000 ms | 1.00× |"), "{text}");
        assert!(text.contains("| oomtrace | `oomtrace` | 1.0 ms | 500 µs | 9.5 ms | 4 | 250 µs | 2.38 ms |"), "{text}");
        assert!(
            text.contains(
                "Every kill reported exactly once, nothing lost: yes. p99 no worse than bpftrace's (goal): met"
            ),
            "{text}"
        );
        assert!(text.contains("### Rounds of parallel kills\n\nNot measured: skipped."), "{text}");
        assert!(text.contains("### Time to know\n\nNot measured: no receiver."), "{text}");
    }

    #[test]
    fn a_second_run_replaces_the_block_and_a_first_goes_before_the_warnings() {
        let doc = format!("# B\n\n## Method\n\n{}\nw\n<!-- warnings: end -->\n", crate::bench::warnings::BLOCK_BEGIN);
        let first = BLOCK.put(&doc, &block(&figures()), crate::bench::warnings::BLOCK_BEGIN);
        assert!(first.find(BLOCK_BEGIN).unwrap() < first.find(crate::bench::warnings::BLOCK_BEGIN).unwrap());
        let mut quiet = figures();
        quiet.load_average = Some(0.5);
        let second = BLOCK.put(&first, &block(&quiet), crate::bench::warnings::BLOCK_BEGIN);
        assert_eq!(second.matches(BLOCK_BEGIN).count(), 1);
        assert!(!second.contains("Smoke run"), "{second}");
        assert_eq!(BLOCK.of(&second).map(str::len), Some(block(&quiet).trim_end().len()));
    }
}
