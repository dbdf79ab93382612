//! The Kernel cost section: what each OOM kill costs the kernel side (its
//! programs' run time, the ring-buffer record), beside bpftrace's program on
//! the same tracepoint, and how close the programs are to the verifier's limits.

use std::{fmt::Write as _, time::Duration};

use crate::bench::{
    figures::{Hook, KernelCost, ObjectProgram, Peer, ProgramCost, Report, ToolFigures, median_ms},
    report::format::{cell, ratio, short_duration},
    settings::{RINGBUF_HEADER_BYTES, STACK_LIMIT_BYTES, UNPRIVILEGED_INSNS_LIMIT, VERIFIER_INSNS_LIMIT},
};

/// `## Kernel cost`.
pub fn kernel(out: &mut String, report: &Report) {
    writeln!(out, "## Kernel cost").ok();
    writeln!(out).ok();
    writeln!(
        out,
        "Measured during each tracer's kill runs above ({} sequential kills and the storm of {}): the kernel's BPF \
         run-time statistics (`BPF_ENABLE_STATS`, held only for the kills, so `kernel.bpf_stats_enabled` is left as \
         it was) count each program's runs and the time spent in it; the programs are those the tracer's process \
         holds (the `bpf-prog` descriptors in its `/proc/<pid>/fd`), read before and after the kills. The time is \
         the program's own execution: a tracepoint program (bpftrace's) is also handed its arguments in a perf \
         buffer the kernel fills before running it, which tp_btf and raw_tp programs do without. The kernel \
         times each run with a `sched_clock()` read on either side, so an interrupt during a run, or (in a VM) \
         time the vCPU was descheduled, counts too: the mean over all the kills can be made by a few such runs, so \
         each sequential kill is also a window of its own (the programs read after its event), and the median \
         over those windows is given beside the mean.",
        report.kills, report.storm
    )
    .ok();
    writeln!(out).ok();
    let peer = match &report.bpftrace {
        Peer::Measured(peer) => Some(peer.as_ref()),
        _ => None,
    };
    programs(out, &report.oomtrace, peer);
    summary(out, report, peer);
    verifier(out, report);
}

/// One row per program of each tracer.
fn programs(out: &mut String, oomtrace: &ToolFigures, peer: Option<&ToolFigures>) {
    writeln!(
        out,
        "| tool | program | type | runs during the kills | run time | per run, mean | per run, median of the \
         sequential kills (slowest) | instructions (translated) | instructions the verifier processed (of \
         {VERIFIER_INSNS_LIMIT}) | JIT code |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    .ok();
    for tool in std::iter::once(oomtrace).chain(peer) {
        let cost = match &tool.kernel {
            Ok(cost) if !cost.programs.is_empty() => cost,
            Ok(_) => {
                writeln!(out, "| {} | none found | | | | | | | | |", tool.name).ok();
                continue;
            }
            Err(reason) => {
                writeln!(out, "| {} | not measured: {reason} | | | | | | | | |", tool.name).ok();
                continue;
            }
        };
        for p in &cost.programs {
            let count = |n: Option<u32>| n.map_or_else(|| "n/a".to_owned(), |n| n.to_string());
            writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} B |",
                tool.name,
                p.name,
                p.program_type,
                p.runs,
                short_duration(Duration::from_nanos(p.run_time_ns)),
                cell(p.ns_per_run(), "ns", 0),
                windows(p),
                count(p.xlated_insns),
                count(p.verified_insns),
                p.jited_bytes
            )
            .ok();
        }
    }
    writeln!(out).ok();
}

/// Per event, oomtrace against bpftrace, and the ring buffer.
fn summary(out: &mut String, report: &Report, peer: Option<&ToolFigures>) {
    let kills = |tool: &ToolFigures| tool.seq.oom_killed() + tool.storm.oom_killed();
    let mark_victim = |tool: Option<&ToolFigures>| cost(tool).and_then(|c| c.ns_per_run(Hook::MarkVictim));
    let mark_victim_median =
        |tool: Option<&ToolFigures>| cost(tool).and_then(|c| c.median_ns_per_run(Hook::MarkVictim));
    let per_kill = |tool: Option<&ToolFigures>| tool.and_then(|t| cost(Some(t))?.ns_per_kill(kills(t)));
    let oomtrace = Some(&report.oomtrace);
    let event = &report.verifier.event;
    let record = |sent: usize| (sent + RINGBUF_HEADER_BYTES).div_ceil(8) * 8;
    writeln!(out, "| per OOM kill | oomtrace | bpftrace | oomtrace / bpftrace |\n|---|---|---|---|").ok();
    for (metric, a, b) in [
        (
            "time in the `mark_victim` program per run, median of the sequential kills",
            mark_victim_median(oomtrace),
            mark_victim_median(peer),
        ),
        ("time in the `mark_victim` program per run, mean of all the kills", mark_victim(oomtrace), mark_victim(peer)),
        (
            "time in all its programs during the kills, per kill (an upper bound: `signal_generate` also runs for \
             every other signal sent meanwhile)",
            per_kill(oomtrace),
            per_kill(peer),
        ),
    ] {
        let b_cell = if peer.is_some() { cell(b, "ns", 0) } else { report.bpftrace.summary() };
        writeln!(out, "| {metric} | {} | {b_cell} | {} |", cell(a, "ns", 0), ratio(a, b)).ok();
    }
    writeln!(
        out,
        "| ring-buffer bytes per event | {} B in `{}` ({} B sent + {RINGBUF_HEADER_BYTES} B header, padded to 8); \
         {} B with no path names, {} B with the longest | n/a (`printf` goes through a perf buffer) | |",
        record(event.bench_bytes),
        event.bench_cgroup,
        event.bench_bytes,
        record(event.fixed_bytes),
        record(event.max_bytes)
    )
    .ok();
    writeln!(out).ok();
    if let Some(finding) = instructions_finding(cost(oomtrace), cost(peer)) {
        writeln!(out, "- {finding}").ok();
    }
    if let Some(ring) = cost(oomtrace).and_then(|c| c.ringbuf_bytes) {
        writeln!(
            out,
            "- oomtrace's ring buffer is {} KiB (read from the running tracer): {} events like the bench's fit \
             before the kernel side drops one, if the reader falls that far behind ({} with the longest paths).",
            ring / 1024,
            ring as usize / record(event.bench_bytes),
            ring as usize / record(event.max_bytes)
        )
        .ok();
    }
    writeln!(out).ok();
}

/// When bpftrace's program has far fewer instructions yet costs nearly as
/// much, the time per run is mostly not in the instructions.
fn instructions_finding(oomtrace: Option<&KernelCost>, peer: Option<&KernelCost>) -> Option<String> {
    let (oomtrace, peer) = (oomtrace?, peer?);
    let (ours, theirs) = (oomtrace.median_ns_per_run(Hook::MarkVictim)?, peer.median_ns_per_run(Hook::MarkVictim)?);
    let (our_insns, their_insns) = (oomtrace.insns(Hook::MarkVictim)?, peer.insns(Hook::MarkVictim)?);
    let fewer = f64::from(our_insns) / f64::from(their_insns.max(1));
    (fewer >= 10.0 && theirs > 0.0 && ours / theirs < 2.0).then(|| {
        format!(
            "bpftrace's `mark_victim` program has {fewer:.0}× fewer instructions than oomtrace's ({their_insns} \
             against {our_insns}), yet oomtrace's takes {:.2}× its time per run: most of a run's time is not in the \
             instructions oomtrace adds but in what both programs do once per event (reading the clock, writing \
             the record to a ring or perf buffer, waking the reader).",
            ours / theirs
        )
    })
}

/// "median ns (slowest ns)" of a program's sequential windows.
fn windows(p: &ProgramCost) -> String {
    match (median_ms(&p.window_per_run), p.slowest_window()) {
        (Some(median_ms), Some(slowest)) => {
            format!("{:.0} ns ({} ns)", median_ms * 1e6, slowest.as_nanos())
        }
        _ => "n/a".to_owned(),
    }
}

fn cost(tool: Option<&ToolFigures>) -> Option<&KernelCost> {
    tool.and_then(|t| t.kernel.as_ref().ok())
}

/// The prebuilt object's programs against the verifier's limits.
fn verifier(out: &mut String, report: &Report) {
    writeln!(
        out,
        "The verifier's limits, the same on 5.10 as on this host: a program may have {VERIFIER_INSNS_LIMIT} \
         instructions and the verifier may process {VERIFIER_INSNS_LIMIT} while exploring its paths (a loader \
         without CAP_BPF/CAP_SYS_ADMIN may load only {UNPRIVILEGED_INSNS_LIMIT}; oomtrace needs root anyway), and {STACK_LIMIT_BYTES} bytes of stack for a \
         program's deepest call chain, each frame rounded up to 32 bytes. Read from the prebuilt object \
         (`oomtrace-ebpf/prebuilt/oomtrace.bpf.o`, which `cargo xtask ebpf-object --check` keeps equal to the \
         sources) without loading it; the processed count above is this host's verifier, and the check itself is \
         the VM matrix: `cargo xtask vm-test` loads and attaches these programs on 5.10 and the other kernels \
         (docs/kernels.md)."
    )
    .ok();
    writeln!(out).ok();
    let programs = match &report.verifier.prebuilt {
        Ok(programs) => programs,
        Err(reason) => {
            writeln!(out, "The prebuilt object could not be read: {reason}.").ok();
            writeln!(out).ok();
            return;
        }
    };
    writeln!(
        out,
        "| program (ELF section) | instructions, with subprograms | share of {UNPRIVILEGED_INSNS_LIMIT}, the \
         unprivileged limit | subprograms | \
         stack of its own frame | stack of its deepest call chain, of {STACK_LIMIT_BYTES} B |\n|---|---|---|---|---|---|"
    )
    .ok();
    for p in programs {
        writeln!(
            out,
            "| `{}` (`{}`) | {} | {:.0} % | {} | {} B | {} B ({:.0} %) |",
            p.name,
            p.section,
            p.insns,
            percent(p.insns, UNPRIVILEGED_INSNS_LIMIT),
            subprograms(p),
            p.frame_bytes,
            p.stack_bytes,
            percent(p.stack_bytes, STACK_LIMIT_BYTES)
        )
        .ok();
    }
    writeln!(out).ok();
}

fn percent(part: u32, whole: u32) -> f64 {
    f64::from(part) / f64::from(whole) * 100.0
}

fn subprograms(p: &ObjectProgram) -> String {
    if p.subprograms.is_empty() {
        "none".to_owned()
    } else {
        p.subprograms.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn kernel_cost_as_before() {
        assert_section(Some("Kernel cost"), super::kernel);
    }
}
