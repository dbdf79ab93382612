//! `cargo xtask bench --only startup`: the peak resident size of `oomtrace
//! live` and `oomtrace daemon` at startup, with a breakdown: what each startup
//! phase adds to the peak. oomtrace logs VmRSS and VmHWM at debug level once
//! each phase is done ("startup memory", `phase=…`); each command is started
//! [`RUNS`] times until it waits for kills, and the medians are reported,
//! written into docs/benchmarks.md between this section's markers (a full run
//! keeps the block).

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};
use oomtrace_testkit::daemon::free_port;

use crate::bench::host::{self, progress};

pub const BLOCK_BEGIN: &str = "<!-- startup memory: begin (cargo xtask bench --only startup writes this block) -->";
pub const BLOCK_END: &str = "<!-- startup memory: end -->";
/// The startup block of docs/benchmarks.md (a full run keeps it).
pub const BLOCK: crate::marked::Block = crate::marked::Block { begin: BLOCK_BEGIN, end: BLOCK_END };

/// Starts per command.
const RUNS: usize = 5;
/// The line oomtrace logs at each phase boundary, and once it is attached.
const PHASE_LINE: &str = "startup memory";
const READY: &str = oomtrace_testkit::live::READY;

/// Resident memory once a phase is done, KiB.
#[derive(Clone, Debug, PartialEq)]
struct Phase {
    name: String,
    rss_kib: u64,
    hwm_kib: u64,
}

/// The phases of one start, in order.
type Start = Vec<Phase>;

pub fn run(root: &Path, oomtrace: &Path, output: &Path) -> Result<()> {
    let started = Instant::now();
    let state = std::env::temp_dir().join(format!("oomtrace-bench-startup-{}", std::process::id()));
    let state_arg = state.display().to_string();
    let mut commands = Vec::new();
    for (label, args) in [
        ("`oomtrace live`", vec!["live".to_owned(), "-o".to_owned(), "json".to_owned()]),
        (
            "`oomtrace daemon` (kernel log, warnings, Prometheus on)",
            vec![
                "daemon".to_owned(),
                "--metrics-address".to_owned(),
                format!("127.0.0.1:{}", free_port()?),
                "--state-dir".to_owned(),
                state_arg.clone(),
            ],
        ),
    ] {
        let starts = (0..RUNS).map(|_| start(oomtrace, &args)).collect::<Result<Vec<_>>>()?;
        progress(&format!("{label}: {RUNS} starts measured"));
        commands.push((label, starts));
    }
    let _ = fs::remove_dir_all(&state);
    let generated = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let block = render(&generated, &host::git_commit(root), &btf_size(), &commands);
    print!("{block}");
    let previous = fs::read_to_string(output).unwrap_or_default();
    fs::write(output, with_block(&previous, &block)).with_context(|| format!("writing {}", output.display()))?;
    progress(&format!("startup section written into {} ({} s)", output.display(), started.elapsed().as_secs()));
    Ok(())
}

/// Runs `oomtrace <args> --log debug` until it waits for kills, then stops it;
/// the phases it logged.
fn start(oomtrace: &Path, args: &[String]) -> Result<Start> {
    let mut child = Command::new(oomtrace)
        .args(args)
        .args(["--log", "oomtrace=debug"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} {}", oomtrace.display(), args.join(" ")))?;
    let stderr = child.stderr.take().context("oomtrace's stderr")?;
    let mut phases = Vec::new();
    let mut log = String::new();
    let mut ready = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading oomtrace's stderr")?;
        if let Some(phase) = parse_phase(&line) {
            phases.push(phase);
        }
        log.push_str(&line);
        log.push('\n');
        if line.contains(READY) {
            ready = true;
            break;
        }
    }
    // SAFETY: kill(2) on the child we spawned and have not waited for yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    child.wait().context("waiting for oomtrace to stop")?;
    if !ready || phases.is_empty() {
        bail!("oomtrace {} did not log its startup phases before waiting for kills:\n{log}", args.join(" "));
    }
    Ok(phases)
}

/// A "startup memory" line's phase and figures.
fn parse_phase(line: &str) -> Option<Phase> {
    if !line.contains(PHASE_LINE) {
        return None;
    }
    let name = line.split_once("phase=\"")?.1.split_once('"')?.0.to_owned();
    let number = |key: &str| -> Option<u64> {
        let rest = line.split_once(&format!("{key}="))?.1;
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some(Phase { name, rss_kib: number("rss_kib")?, hwm_kib: number("hwm_kib")? })
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The kernel BTF's size, the input of the largest phase.
fn btf_size() -> String {
    fs::metadata("/sys/kernel/btf/vmlinux").map_or("?".to_owned(), |m| format!("{:.1} MB", m.len() as f64 / 1e6))
}

fn render(generated: &str, commit: &str, btf: &str, commands: &[(&str, Vec<Start>)]) -> String {
    let mut out = format!("{BLOCK_BEGIN}\n## Peak RSS at start\n\n");
    out.push_str(&format!(
        "`cargo xtask bench --only startup`, {generated}, commit {commit}, `dist` build, kernel BTF {btf}: each \
         command started {RUNS} times until it waits for kills, the resident size it logs at debug level after each \
         startup phase (VmRSS and VmHWM from /proc/self/status), medians. \"Its own peak\" is how far the phase took the \
         resident size above where it began (VmHWM after it minus VmRSS before it), where it set a new peak: where \
         the peak comes from. oomtrace/tests/startup_memory.rs holds what the startup adds to its first line to a \
         budget; deploy/kubernetes/daemonset.yaml sets the memory request from the daemon's peak.\n"
    ));
    for (label, starts) in commands {
        out.push_str(&format!(
            "\n{label}:\n\n| phase (done) | VmRSS after | VmHWM after | its own peak |\n|---|---|---|---|\n"
        ));
        let Some(first) = starts.first() else { continue };
        let (mut previous_rss, mut previous_hwm) = (0, 0);
        for (at, phase) in first.iter().enumerate() {
            let at_phase = |pick: fn(&Phase) -> u64| {
                median(starts.iter().filter_map(|s| s.get(at).filter(|p| p.name == phase.name).map(pick)).collect())
            };
            let (rss, hwm) = (at_phase(|p| p.rss_kib), at_phase(|p| p.hwm_kib));
            let own = match at {
                0 => "(the program before the startup)".to_owned(),
                _ if hwm > previous_hwm => format!("+{} MiB", mib(hwm - previous_rss)),
                _ => "below the earlier peak".to_owned(),
            };
            out.push_str(&format!("| {} | {} MiB | {} MiB | {own} |\n", phase.name, mib(rss), mib(hwm)));
            (previous_rss, previous_hwm) = (rss, hwm);
        }
    }
    out.push_str(&format!("{BLOCK_END}\n"));
    out
}

/// `text` with `block` in place of its startup block (before the node
/// block, or at the end, where it has none).
fn with_block(text: &str, block: &str) -> String {
    BLOCK.put(text, block, crate::node::report::BENCH_BLOCK_BEGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_line_gives_its_name_and_figures() {
        let line = "2026-12-05T22:27:19.360270Z DEBUG oomtrace::host: startup memory phase=\"eBPF object loaded\" \
                    rss_kib=22200 hwm_kib=31016";
        assert_eq!(
            parse_phase(line),
            Some(Phase { name: "eBPF object loaded".to_owned(), rss_kib: 22200, hwm_kib: 31016 })
        );
        assert_eq!(parse_phase("INFO oomtrace::pipeline: waiting for OOM kills"), None);
    }

    #[test]
    fn the_block_replaces_its_previous_figures_only() {
        let block = format!("{BLOCK_BEGIN}\nnew\n{BLOCK_END}\n");
        let text = format!("# B\n\n{BLOCK_BEGIN}\nold\n{BLOCK_END}\n\nrest\n");
        assert_eq!(with_block(&text, &block), format!("# B\n\n{BLOCK_BEGIN}\nnew\n{BLOCK_END}\n\nrest\n"));
        assert_eq!(with_block("# B\n", &block), format!("# B\n\n{block}"));
    }
}
