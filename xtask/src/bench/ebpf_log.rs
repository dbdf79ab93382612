//! `cargo xtask bench --only ebpf-log`: what the eBPF log (`--ebpf-log`)
//! costs in the kernel, off and on, measured by the kernel's own run-time
//! statistics (`BPF_ENABLE_STATS`) of the programs the real `oomtrace live`
//! holds, on real memcg OOM kills, and written into docs/benchmarks.md
//! between its own markers:
//!
//! - sequential kills (one at a time; no failure path runs, so nothing is
//!   logged): what the log sites cost when they only exist;
//! - an overflow: kills while oomtrace is stopped with a one-page ring
//!   buffer, so most records are dropped and, with the log on, each drop
//!   sends a message: what a message costs;
//! - the programs' size after the verifier (xlated instructions, instructions
//!   the verifier processed, JITed bytes), off and on.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{cgroup::MemCgroup, live::Live};

use crate::bench::{
    figures::{KernelCost, ProgramCost},
    host::{self, progress},
    runs::kernel_cost,
};

pub const BLOCK_BEGIN: &str = "<!-- ebpf-log cost: begin (cargo xtask bench --only ebpf-log writes this block) -->";
pub const BLOCK_END: &str = "<!-- ebpf-log cost: end -->";
pub const BLOCK: crate::marked::Block = crate::marked::Block { begin: BLOCK_BEGIN, end: BLOCK_END };

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const HOG: u64 = 256 * MIB;
const SEQUENTIAL_KILLS: usize = 30;
const OVERFLOW_KILLS: usize = 16;
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The message the kernel side sends for each record it drops.
const DROP_MESSAGE: &str = "ring buffer full: record of victim pid";

/// One `--ebpf-log` level's figures.
struct Mode {
    level: &'static str,
    sequential: KernelCost,
    overflow: KernelCost,
    /// Records the overflow lost (the kernel's counter) and the messages that said so.
    lost: u64,
    messages: usize,
}

pub fn run(root: &Path, oomtrace: &Path, output: &Path) -> Result<()> {
    let started = Instant::now();
    let name = format!("oomtrace-bench-ebpflog-{}", std::process::id());
    let parent = MemCgroup::create(&name, None)?;
    let mut modes = Vec::new();
    for level in ["off", "debug"] {
        progress(&format!("ebpf-log={level}: {SEQUENTIAL_KILLS} sequential kills"));
        let sequential = sequential(oomtrace, &parent, level)?;
        progress(&format!("ebpf-log={level}: {OVERFLOW_KILLS} kills into a full ring buffer"));
        let (overflow, lost, messages) = overflow(oomtrace, &parent, level)?;
        modes.push(Mode { level, sequential, overflow, lost, messages });
    }
    let generated = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let block = render(&generated, &host::git_commit(root), &modes);
    print!("{block}");
    let previous = fs::read_to_string(output).unwrap_or_default();
    fs::write(output, BLOCK.put(&previous, &block, crate::node::report::BENCH_BLOCK_BEGIN))
        .with_context(|| format!("writing {}", output.display()))?;
    progress(&format!("eBPF log section written into {} ({} s)", output.display(), started.elapsed().as_secs()));
    Ok(())
}

fn live_args<'a>(cgroup: &'a str, level: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut args = vec![
        "--cgroup".to_owned(),
        cgroup.to_owned(),
        format!("--ebpf-log={level}"),
        "--no-warnings".to_owned(),
        "--no-kernel-log".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// Kills one at a time, each awaited, with the statistics on.
fn sequential(oomtrace: &Path, parent: &MemCgroup, level: &str) -> Result<KernelCost> {
    let cgroup = parent.child(&format!("seq-{level}"), Some(LIMIT))?;
    let args = live_args(&parent.path, level, &[]);
    let live = Live::start(oomtrace, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut window = kernel_cost::open(live.pid())?;
    for _ in 0..SEQUENTIAL_KILLS {
        cgroup.oom_kill_hog(HOG)?;
        live.expect_event(EVENT_TIMEOUT)?;
        window.sample();
    }
    let cost = window.close()?;
    live.stop()?;
    Ok(cost)
}

/// Kills while oomtrace (one page of ring buffer) is stopped: most records
/// are dropped, each with a message when the log is on.
fn overflow(oomtrace: &Path, parent: &MemCgroup, level: &str) -> Result<(KernelCost, u64, usize)> {
    let cgroup = parent.child(&format!("overflow-{level}"), Some(LIMIT))?;
    let args = live_args(&parent.path, level, &["--ring-buffer-kib", "4"]);
    let live = Live::start(oomtrace, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let window = kernel_cost::open(live.pid())?;
    live.signal(libc::SIGSTOP);
    for _ in 0..OVERFLOW_KILLS {
        cgroup.oom_kill_hog(HOG)?;
    }
    live.signal(libc::SIGCONT);
    let cost = window.close()?;
    live.drain(Duration::from_secs(2))?;
    std::thread::sleep(Duration::from_millis(1200)); // the loss check runs every second
    let stopped = live.stop()?;
    let lost = stopped.summary()?.lost_ringbuf_full;
    let messages = stopped.log.lines().filter(|line| line.contains(DROP_MESSAGE)).count();
    Ok((cost, lost, messages))
}

fn mark_victim(cost: &KernelCost) -> Option<&ProgramCost> {
    cost.programs.iter().find(|p| p.name.starts_with("mark_victim"))
}

fn ns_per_run(program: Option<&ProgramCost>) -> String {
    program
        .and_then(|p| (p.runs > 0).then(|| format!("{:.0} ns", p.run_time_ns as f64 / p.runs as f64)))
        .unwrap_or_else(|| "n/a".to_owned())
}

fn median_window(program: Option<&ProgramCost>) -> String {
    let Some(program) = program else { return "n/a".to_owned() };
    let mut windows = program.window_per_run.clone();
    windows.sort_unstable();
    windows.get(windows.len() / 2).map_or_else(|| "n/a".to_owned(), |d| format!("{} ns", d.as_nanos()))
}

fn render(generated: &str, commit: &str, modes: &[Mode]) -> String {
    let mut out = format!("{BLOCK_BEGIN}\n## eBPF log cost (`--ebpf-log`)\n\n");
    out.push_str(&format!(
        "Measured {generated} on commit {commit} by `cargo xtask bench --only ebpf-log` on this host: the real \
         `oomtrace live --no-warnings --no-kernel-log --ebpf-log=LEVEL`, the kernel's run-time statistics \
         (`BPF_ENABLE_STATS`) of the programs it holds, over real memcg OOM kills (64 MiB limit). \
         \"Sequential\": {SEQUENTIAL_KILLS} kills one at a time, no failure path runs, so nothing is logged \
         (the median over the kills' windows, and the mean). \"Overflow\": {OVERFLOW_KILLS} kills while oomtrace \
         is stopped with a one-page ring buffer, so most records are dropped, and with the log on each drop \
         sends a message (the mean over all {OVERFLOW_KILLS} runs). A 2-core machine shared with other work: \
         differences of a few hundred ns per run are noise.\n\n"
    ));
    out.push_str(
        "| --ebpf-log | mark_victim, sequential (median / mean per run) | mark_victim, overflow (mean per run) | \
         records dropped / messages | mark_victim xlated insns | verifier-processed insns | JITed bytes |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for mode in modes {
        let program = mark_victim(&mode.sequential);
        out.push_str(&format!(
            "| {} | {} / {} | {} | {} / {} | {} | {} | {} |\n",
            mode.level,
            median_window(program),
            ns_per_run(program),
            ns_per_run(mark_victim(&mode.overflow)),
            mode.lost,
            mode.messages,
            program.and_then(|p| p.xlated_insns).map_or("n/a".to_owned(), |n| n.to_string()),
            program.and_then(|p| p.verified_insns).map_or("n/a".to_owned(), |n| n.to_string()),
            program.map_or("n/a".to_owned(), |p| p.jited_bytes.to_string()),
        ));
    }
    out.push_str("\nEvery program held, sequential kills (name: runs, mean per run, xlated insns, verifier-processed insns):\n\n");
    for mode in modes {
        let programs: Vec<String> = mode
            .sequential
            .programs
            .iter()
            .map(|p| {
                format!(
                    "`{}` {} runs, {}, {} / {}",
                    p.name,
                    p.runs,
                    ns_per_run(Some(p)),
                    p.xlated_insns.map_or("n/a".to_owned(), |n| n.to_string()),
                    p.verified_insns.map_or("n/a".to_owned(), |n| n.to_string())
                )
            })
            .collect();
        out.push_str(&format!("- {}: {}\n", mode.level, programs.join("; ")));
    }
    out.push_str(&format!("\n{BLOCK_END}\n"));
    out
}
