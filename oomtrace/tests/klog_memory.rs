//! Memory budgets of the commands that read a whole kernel log (issue 22): on a
//! generated log of many thousand kills, `oomtrace history --file` and
//! `oomtrace diagnose --file` peak at no more than [`PEAK_BUDGET_KB`] whatever
//! the log's size, and lose no kill (one event per `Killed process` line).
//! The peak is the child's own, from `wait4`'s `ru_maxrss`. Times stay in
//! the benchmark (`cargo xtask bench --only klog`), not here.

mod support;

use std::{
    fs::File,
    io::{BufRead as _, BufReader, BufWriter, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context as _, Result, bail, ensure};
use oomtrace_testkit::{
    harness::{self, Need},
    trial,
};
use serde_json::Value;
use support::{oomtrace, unique};

/// Issue 22: "peak ≤ 24 MiB whatever the log's size".
const PEAK_BUDGET_KB: u64 = 24 * 1024;
/// The real log repeated: this host's dmesg, 49 memcg kills (25 whole reports, the rest
/// rate-limited to the kill line).
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../oomtrace-klog/fixtures/host-6.18-cgroup-v1-dmesg.txt");
/// Copies of the fixture: about 20 MB, some 7 000 kills.
const COPIES: u64 = 150;
/// Each copy's kernel stamps start this much after the previous copy's (the fixture spans 18 s).
const COPY_GAP_S: f64 = 60.0;
const KILL_LINE: &str = "Killed process";

fn main() -> ExitCode {
    harness::main(vec![
        trial!(history_streams_a_large_log_within_its_budget, Need::SourceTree),
        trial!(diagnose_groups_a_large_log_within_its_budget, Need::SourceTree),
    ])
}

/// A generated log, removed when dropped.
struct LargeLog {
    path: PathBuf,
    bytes: u64,
    kill_lines: u64,
}

impl Drop for LargeLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The fixture's kernel lines `COPIES` times, each copy's `[seconds]` stamps moved on by
/// `COPY_GAP_S`, so the log reads as one boot.
fn large_log(test: &str) -> Result<LargeLog> {
    let fixture = std::fs::read_to_string(FIXTURE).with_context(|| format!("reading {FIXTURE}"))?;
    let lines: Vec<(f64, &str)> = fixture
        .lines()
        .filter_map(|line| {
            let (stamp, message) = line.strip_prefix('[')?.split_once("] ")?;
            Some((stamp.trim().parse().ok()?, message))
        })
        .collect();
    ensure!(lines.len() > 2000, "{FIXTURE}: only {} stamped lines", lines.len());
    let path = std::env::temp_dir().join(format!("{}.log", unique(test)));
    let mut out =
        BufWriter::with_capacity(1 << 20, File::create(&path).with_context(|| format!("{}", path.display()))?);
    let mut log = LargeLog { path, bytes: 0, kill_lines: 0 };
    for copy in 0..COPIES {
        for (seconds, message) in &lines {
            let line = format!("[{:12.6}] {message}\n", seconds + copy as f64 * COPY_GAP_S);
            log.bytes += line.len() as u64;
            log.kill_lines += u64::from(message.contains(KILL_LINE));
            out.write_all(line.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(log)
}

/// What a run of the binary left: its stdout, stderr and peak RSS.
struct Ran {
    stdout: Vec<u8>,
    stderr: String,
    peak_rss_kb: u64,
}

/// Runs `oomtrace <args>` to its end, its output into files beside the log (a pipe left
/// undrained would stall it), and reads its peak RSS from `wait4`.
fn run_measured(args: &[&str], scratch: &Path) -> Result<Ran> {
    let stdout_path = scratch.with_extension("stdout");
    let stderr_path = scratch.with_extension("stderr");
    let child = Command::new(oomtrace())
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path)?)
        .stderr(File::create(&stderr_path)?)
        .spawn()
        .with_context(|| format!("running oomtrace {args:?}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("the child's pid")?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not waited for yet (the `Child` is never waited on); `status`
    // and `usage` are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("wait4 on oomtrace {args:?}: {}", std::io::Error::last_os_error());
    }
    let ran = Ran {
        stdout: std::fs::read(&stdout_path)?,
        stderr: std::fs::read_to_string(&stderr_path)?,
        // ru_maxrss is in KiB on Linux.
        peak_rss_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    };
    let _ = std::fs::remove_file(&stdout_path);
    let _ = std::fs::remove_file(&stderr_path);
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "oomtrace {args:?} ended with status {status:#x}: {}",
        ran.stderr
    );
    Ok(ran)
}

fn within_budget(command: &str, log: &LargeLog, peak_rss_kb: u64) -> Result<()> {
    eprintln!(
        "{command}: {:.1} MB, {} kill lines: peak RSS {:.1} MiB (budget {} MiB)",
        log.bytes as f64 / 1e6,
        log.kill_lines,
        peak_rss_kb as f64 / 1024.0,
        PEAK_BUDGET_KB / 1024
    );
    ensure!(
        peak_rss_kb <= PEAK_BUDGET_KB,
        "{command} peaked at {peak_rss_kb} KiB on a {} byte log, over its budget of {PEAK_BUDGET_KB} KiB",
        log.bytes
    );
    Ok(())
}

fn history_streams_a_large_log_within_its_budget() -> Result<()> {
    let log = large_log("history-memory")?;
    let file = log.path.to_string_lossy().into_owned();
    let ran = run_measured(&["history", "--file", &file, "-o", "json"], &log.path)?;
    let events = BufReader::new(ran.stdout.as_slice()).lines().count() as u64;
    ensure!(events == log.kill_lines, "{events} events for {} kill lines: {}", log.kill_lines, ran.stderr);
    ensure!(
        ran.stderr.contains(&format!("{} OOM kills found in the log", log.kill_lines)),
        "the closing line does not count every kill: {}",
        ran.stderr
    );
    within_budget("oomtrace history --file -o json", &log, ran.peak_rss_kb)
}

fn diagnose_groups_a_large_log_within_its_budget() -> Result<()> {
    let log = large_log("diagnose-memory")?;
    let file = log.path.to_string_lossy().into_owned();
    let ran = run_measured(&["diagnose", "--file", &file, "-o", "json"], &log.path)?;
    let report: Value = serde_json::from_slice(&ran.stdout).context("diagnose's JSON")?;
    let grouped: u64 = report["groups"].as_array().into_iter().flatten().filter_map(|g| g["kills"].as_u64()).sum();
    let left_out = report["groups_left_out"]["kills"].as_u64().unwrap_or(0);
    ensure!(
        report["kills"].as_u64() == Some(log.kill_lines) && grouped + left_out == log.kill_lines,
        "{} kills, {grouped} grouped and {left_out} left out, for {} kill lines",
        report["kills"],
        log.kill_lines
    );
    within_budget("oomtrace diagnose --file -o json", &log, ran.peak_rss_kb)
}
