//! The startup peak stays inside its budget: the real `oomtrace live` and
//! `oomtrace daemon` are started (debug logs on), and once they wait for
//! kills, their VmHWM (the peak resident size since they started, from
//! /proc/<pid>/status) is compared with the resident size they logged before
//! the startup's work began (the "startup memory" line of phase
//! [`BASELINE_PHASE`]: the program, its libraries and runtime). What the
//! startup adds on top of that is what its budget holds; the binary's own
//! pages are left out, as they differ between the debug build the tests run
//! (15 MiB before the startup) and the release build that ships (6.5 MiB).
//! The figures are printed either way. Times are not checked here (they are
//! `cargo xtask bench`'s).

mod support;

use std::process::ExitCode;

use anyhow::{Context as _, Result, ensure};
use oomtrace_testkit::{
    daemon::Daemon,
    harness::{self, Need},
    live::Live,
    procfs::{self, Memory},
    trial,
};
use support::{oomtrace, unique};

/// The budget for what the startup adds to the resident size at its peak
/// (VmHWM minus VmRSS before the kernel discovery), KiB. Measured on the test
/// host (kernel 6.18, a 5.5 MB BTF; 2026-12-06): 6.2 MiB with the release
/// build (a 13.1 MiB peak), 8.6 MiB with the debug build. Most of it is
/// oomtrace's one read of the kernel BTF (the 5.5 MB file and a 4-byte index
/// per type) for the layout table. aya's own parse of the whole kernel BTF
/// (~12 MiB: aya 0.14 does it in `EbpfLoader::new()`, aya-rs/aya#1172) is
/// gone through the patched aya in third_party/aya, and tp_btf and fentry are
/// loaded by type id (a BTF of placeholders up to the target's id cost
/// ~8 MiB more); either one back fails here. Margin: 1.4 MiB (~16 %) over the
/// debug build's figure.
const STARTUP_ADDS_BUDGET_KIB: u64 = 10 * 1024;
/// The phase whose line gives the resident size before the startup's work.
const BASELINE_PHASE: &str = "before the kernel discovery";

fn main() -> ExitCode {
    harness::main(vec![
        trial!(live_starts_within_its_memory_budget, Need::Root, Need::KernelBtf),
        trial!(the_daemon_starts_within_its_memory_budget, Need::Root, Need::KernelBtf),
    ])
}

/// The `rss_kib` of the baseline phase's line, in a text or JSON log.
fn baseline_rss_kib(log: &str) -> Result<u64> {
    let line = log
        .lines()
        .find(|line| line.contains("startup memory") && line.contains(BASELINE_PHASE))
        .with_context(|| format!("no \"startup memory\" line of phase {BASELINE_PHASE:?} in the log:\n{log}"))?;
    let after = line.split_once("rss_kib").context("no rss_kib on the line")?.1;
    let digits: String = after.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    digits.parse().with_context(|| format!("unparsable rss_kib in {line}"))
}

fn within_budget(command: &str, memory: Memory, log: &str) -> Result<()> {
    let baseline_kib = baseline_rss_kib(log)?;
    let added_kib = memory.hwm_kb.saturating_sub(baseline_kib);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let budget = mib(STARTUP_ADDS_BUDGET_KIB);
    println!(
        "STARTUP-PEAK {command}: VmHWM {:.1} MiB = {:.1} MiB before the startup + {:.1} MiB the startup added \
         (budget {budget:.1} MiB); VmRSS now {:.1} MiB",
        mib(memory.hwm_kb),
        mib(baseline_kib),
        mib(added_kib),
        mib(memory.rss_kb)
    );
    ensure!(
        added_kib <= STARTUP_ADDS_BUDGET_KIB,
        "oomtrace {command}'s startup added {:.1} MiB to its resident size at the peak, over its {budget:.1} MiB \
         budget; `oomtrace {command} --log debug` logs the resident size after each startup phase",
        mib(added_kib)
    );
    Ok(())
}

/// Debug lines of oomtrace alone (the phases), the rest at info.
const LOG: [&str; 2] = ["--log", "info,oomtrace=debug"];

fn live_starts_within_its_memory_budget() -> Result<()> {
    let live = Live::start(oomtrace(), &LOG)?;
    within_budget("live", procfs::memory(live.pid())?, &live.log_text())
}

fn the_daemon_starts_within_its_memory_budget() -> Result<()> {
    // Everything on as in the DaemonSet (kernel log, warnings), its state kept apart.
    let state = std::env::temp_dir().join(unique("startup-memory-state"));
    let state_arg = state.display().to_string();
    let daemon = Daemon::start(oomtrace(), Vec::new(), &[&LOG[..], &["--state-dir", state_arg.as_str()]].concat())?;
    let result = within_budget("daemon", procfs::memory(daemon.pid())?, &daemon.log_text());
    daemon.terminate()?;
    let _ = std::fs::remove_dir_all(&state);
    result
}
