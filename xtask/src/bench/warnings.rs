//! `cargo xtask bench --only warnings`: the warnings before the kill
//! (docs/warnings.md) measured on real leaks, real kills and real page cache,
//! by the real `oomtrace live`, and written into docs/benchmarks.md between
//! its own markers (the rest of the report stays as the last full run wrote
//! it; a full run keeps this block):
//!
//! - leaks at 1 to 64 MiB/s toward a 256 MiB limit, all at once (and the
//!   rates from 4 MiB/s a second time): recall (kills warned), the lead time
//!   (`warned_seconds_before`) against the ideal (from the leak's start to its
//!   kill), and the first warning's error (its `seconds_left` against the time
//!   that really passed);
//! - meanwhile the four workloads that must never be warned (page cache at the
//!   limit, steady memory at 90 %, a sawtooth, a dirty-page writer): their
//!   warnings, per hour;
//! - the watcher's cost: `oomtrace live` with and without warnings beside 250
//!   memory cgroups with limits (25 of them holding memory), CPU and RSS;
//! - the reclaim counter's cost on the path it instruments: a stream through
//!   a file 3× its cgroup's limit (limit reclaim all the time), its read
//!   rate with nothing attached, with bpftrace counting the same tracepoint,
//!   with `oomtrace live` (counter attached) and `--no-warnings` (not).
//!
//! The workloads are this binary itself (`oomtrace_testkit::workload`).

use std::{
    collections::HashMap,
    fs,
    path::Path,
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    live::Live,
    procfs,
    warning::{Record, epoch_seconds},
    workload::{Running, Workload, disk_dir, uncached_file},
};

use crate::bench::host::{self, progress};

pub const BLOCK_BEGIN: &str = "<!-- warnings: begin (cargo xtask bench --only warnings writes this block) -->";
pub const BLOCK_END: &str = "<!-- warnings: end -->";

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 256 * MIB;
const RATES_MIB: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];
/// Rates run a second time (the slow ones take minutes each).
const REPEATED_FROM_MIB: u64 = 4;
const CGROUPS_FOR_COST: usize = 250;
const HOLDING_FOR_COST: usize = 25;
const COST_WINDOW: Duration = Duration::from_secs(30);
const COST_SETTLE: Duration = Duration::from_secs(5);
const RECLAIM_LIMIT: u64 = 64 * MIB;
const RECLAIM_WINDOW: Duration = Duration::from_secs(15);
/// bpftrace's equivalent of the reclaim counter: per cgroup, runs and pages.
const BPFTRACE_RECLAIM: &str = "tracepoint:vmscan:mm_vmscan_memcg_reclaim_end { @runs[cgroup] = count(); \
                                @pages[cgroup] = sum(args->nr_reclaimed); }";

/// The stream's read rate under one observer.
#[derive(Clone, Debug)]
struct ReclaimRun {
    observer: &'static str,
    mib_per_second: Option<f64>,
}

/// One leak, to its kill.
#[derive(Clone, Debug)]
struct LeakRun {
    rate_mib: u64,
    /// From its start to its kill.
    to_kill_seconds: Option<f64>,
    /// `warned_seconds_before` of its kill.
    lead_seconds: Option<f64>,
    /// The first warning's `seconds_left`, and the time that really passed from it to the kill.
    predicted_and_actual: Option<(f64, f64)>,
}

/// What one warning-free workload did.
#[derive(Clone, Debug)]
struct Calm {
    name: &'static str,
    warnings: usize,
    peak_mib: u64,
}

#[derive(Clone, Debug)]
struct Cost {
    cpu_percent_on: f64,
    cpu_percent_off: f64,
    rss_kb_on: u64,
    rss_kb_off: u64,
    watched: Option<u64>,
}

pub fn run(root: &Path, oomtrace: &Path, output: &Path) -> Result<()> {
    let started = Instant::now();
    let name = format!("oomtrace-bench-warn-{}", std::process::id());
    let parent = MemCgroup::create(&name, None)?;
    let (leaks, calm, calm_seconds) = leaks_and_calm(oomtrace, &parent)?;
    let cost = cost(oomtrace, &parent)?;
    let reclaim = reclaim_cost(oomtrace, &parent)?;
    let generated = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut block = render(&generated, &host::git_commit(root), &leaks, &calm, calm_seconds, &cost);
    block.insert_str(block.len() - BLOCK_END.len() - 1, &render_reclaim(&reclaim));
    print!("{block}");
    let previous = fs::read_to_string(output).unwrap_or_default();
    fs::write(output, with_block(&previous, &block)).with_context(|| format!("writing {}", output.display()))?;
    progress(&format!("warnings section written into {} ({} s)", output.display(), started.elapsed().as_secs()));
    Ok(())
}

/// The leaks, with the four calm workloads beside them all the while.
fn leaks_and_calm(oomtrace: &Path, parent: &MemCgroup) -> Result<(Vec<LeakRun>, Vec<Calm>, f64)> {
    let stream_file = uncached_file(&format!("{}-stream", parent.path.trim_start_matches('/')), 3 * LIMIT)?;
    let dirty_file = disk_dir().join(format!("{}-dirty", parent.path.trim_start_matches('/')));
    let calm_cases: [(&str, Workload); 4] = [
        (
            "page cache at the limit (a file 3× the limit read over and over)",
            Workload::Stream { file: stream_file.clone() },
        ),
        ("anonymous memory steady at 90 %", Workload::Steady { bytes: LIMIT * 9 / 10 }),
        (
            "a sawtooth 10 % -> 80 % -> 10 % every second",
            Workload::Sawtooth { low: LIMIT / 10, high: LIMIT * 8 / 10, period_ms: 1000 },
        ),
        (
            "a dirty-page writer at 32 MiB/s",
            Workload::DirtyWriter { file: dirty_file.clone(), bytes_per_second: 32 * MIB, max_file_bytes: 4 * LIMIT },
        ),
    ];
    let live = Live::start_with_warnings(oomtrace, &["--cgroup", &parent.path])?;
    let calm_cgroups: Vec<MemCgroup> =
        (0..calm_cases.len()).map(|i| parent.child(&format!("calm-{i}"), Some(LIMIT))).collect::<Result<_>>()?;
    let calm_started = Instant::now();
    let _calm: Vec<Running> = calm_cgroups
        .iter()
        .zip(&calm_cases)
        .map(|(cgroup, (_, workload))| Running::start(cgroup, workload))
        .collect::<Result<_>>()?;
    let mut records = Vec::new();
    let mut peaks = vec![0u64; calm_cgroups.len()];
    let mut runs = Vec::new();
    for (round, rates) in [RATES_MIB.to_vec(), RATES_MIB.iter().copied().filter(|r| *r >= REPEATED_FROM_MIB).collect()]
        .into_iter()
        .enumerate()
    {
        progress(&format!("warnings: round {}: leaks at {rates:?} MiB/s toward {} MiB", round + 1, LIMIT / MIB));
        let cgroups: Vec<MemCgroup> = rates
            .iter()
            .map(|rate| parent.child(&format!("leak-{round}-{rate}"), Some(LIMIT)))
            .collect::<Result<_>>()?;
        // The watcher finds new cgroups within its 2 s scan.
        thread::sleep(Duration::from_secs(3));
        let mut started_at = HashMap::new();
        let mut leaks = Vec::new();
        for (cgroup, rate) in cgroups.iter().zip(&rates) {
            let leak = Running::start(cgroup, &Workload::Leak { bytes_per_second: rate * MIB })?;
            started_at.insert(leak.pid(), (*rate, epoch_now(), cgroup.path.clone()));
            leaks.push(leak);
        }
        let deadline = Instant::now() + Duration::from_secs(LIMIT / MIB + 60);
        let mut killed = HashMap::new();
        while killed.len() < leaks.len() && Instant::now() < deadline {
            for record in live.records_until(Duration::from_millis(500), |_| false)? {
                if let Record::Kill(event) = &record
                    && started_at.contains_key(&event.victim.pid)
                {
                    killed.insert(event.victim.pid, (*event).clone());
                }
                records.push(record);
            }
            for (peak, cgroup) in peaks.iter_mut().zip(&calm_cgroups) {
                *peak = (*peak).max(cgroup.usage_bytes());
            }
        }
        for (pid, (rate_mib, spawned, path)) in started_at {
            let kill = killed.get(&pid);
            let killed_at = kill.and_then(|k| k.time.as_deref()).and_then(epoch_seconds);
            let first = records.iter().find_map(|r| match r {
                Record::Warning(w) if w.cgroup.as_deref() == Some(path.as_str()) && w.state != "recovered" => Some(w),
                _ => None,
            });
            let predicted_and_actual = match (first, killed_at) {
                (Some(w), Some(k)) => w.seconds_left.zip(w.epoch_seconds().map(|at| k - at)),
                _ => None,
            };
            runs.push(LeakRun {
                rate_mib,
                to_kill_seconds: killed_at.map(|k| k - spawned),
                lead_seconds: kill.and_then(|k| k.warned_seconds_before),
                predicted_and_actual,
            });
        }
    }
    let calm_seconds = calm_started.elapsed().as_secs_f64();
    let calm = calm_cases
        .iter()
        .zip(&calm_cgroups)
        .zip(&peaks)
        .map(|(((name, _), cgroup), peak)| Calm {
            name,
            warnings: records
                .iter()
                .filter(|r| matches!(r, Record::Warning(w) if w.cgroup.as_deref() == Some(cgroup.path.as_str()) && w.state != "recovered"))
                .count(),
            peak_mib: peak / MIB,
        })
        .collect();
    drop(live);
    let _ = fs::remove_file(stream_file);
    let _ = fs::remove_file(dirty_file);
    runs.sort_by_key(|r| r.rate_mib);
    Ok((runs, calm, calm_seconds))
}

/// `oomtrace live` with and without the watcher beside 250 cgroups with limits.
fn cost(oomtrace: &Path, parent: &MemCgroup) -> Result<Cost> {
    progress(&format!("warnings: the watcher's cost beside {CGROUPS_FOR_COST} memory cgroups with limits"));
    let many = parent.child("many", None)?;
    let cgroups: Vec<MemCgroup> =
        (0..CGROUPS_FOR_COST).map(|i| many.child(&format!("c{i}"), Some(LIMIT))).collect::<Result<_>>()?;
    let _holding: Vec<Running> = cgroups
        .iter()
        .take(HOLDING_FOR_COST)
        .map(|c| Running::start(c, &Workload::Steady { bytes: 8 * MIB }))
        .collect::<Result<_>>()?;
    let (cpu_percent_on, rss_kb_on) = footprint(oomtrace, &[])?;
    let (cpu_percent_off, rss_kb_off) = footprint(oomtrace, &["--no-warnings"])?;
    let watched = watched_by_check(oomtrace);
    Ok(Cost { cpu_percent_on, cpu_percent_off, rss_kb_on, rss_kb_off, watched })
}

/// The stream's read rate through a cgroup at its limit, under each observer.
fn reclaim_cost(oomtrace: &Path, parent: &MemCgroup) -> Result<Vec<ReclaimRun>> {
    progress("warnings: the reclaim counter's cost on a stream that keeps limit reclaim busy");
    let cgroup = parent.child("reclaim", Some(RECLAIM_LIMIT))?;
    let file = uncached_file(&format!("{}-reclaim", parent.path.trim_start_matches('/')), 3 * RECLAIM_LIMIT)?;
    let bpftrace = host::ensure_installed("bpftrace", "bpftrace");
    let mut runs = Vec::new();
    // Three times over, alternating, so a drift of the disk's speed shows
    // and one disturbed window does not decide (the median is reported).
    for _ in 0..3 {
        runs.push(ReclaimRun { observer: "nothing", mib_per_second: stream_rate(&cgroup, &file).ok() });
        if let Ok(binary) = &bpftrace {
            let mut child = std::process::Command::new(binary)
                .args(["-e", BPFTRACE_RECLAIM])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting bpftrace")?;
            thread::sleep(COST_SETTLE);
            let rate = stream_rate(&cgroup, &file).ok();
            let _ = child.kill();
            let _ = child.wait();
            runs.push(ReclaimRun { observer: "bpftrace (the same tracepoint, per-cgroup maps)", mib_per_second: rate });
        }
        for (observer, extra) in [
            ("`oomtrace live` (reclaim counter attached)", &[][..]),
            ("`oomtrace live --no-warnings` (no counter)", &["--no-warnings"][..]),
        ] {
            let args = [&["--cgroup", "/oomtrace-bench-nothing"][..], extra].concat();
            let live = Live::start(oomtrace, &args)?;
            thread::sleep(COST_SETTLE);
            let rate = stream_rate(&cgroup, &file).ok();
            live.stop()?;
            runs.push(ReclaimRun { observer, mib_per_second: rate });
        }
    }
    let _ = fs::remove_file(file);
    Ok(runs)
}

/// MiB/s a stream through `file` in `cgroup` reads from storage over the window.
fn stream_rate(cgroup: &MemCgroup, file: &Path) -> Result<f64> {
    let stream = Running::start(cgroup, &Workload::Stream { file: file.to_owned() })?;
    thread::sleep(Duration::from_secs(2));
    let before = procfs::storage_read_bytes(stream.pid())?;
    thread::sleep(RECLAIM_WINDOW);
    let after = procfs::storage_read_bytes(stream.pid())?;
    Ok((after - before) as f64 / MIB as f64 / RECLAIM_WINDOW.as_secs_f64())
}

fn render_reclaim(runs: &[ReclaimRun]) -> String {
    let rate_of = |observer: &str| {
        median(runs.iter().filter(|r| r.observer == observer).filter_map(|r| r.mib_per_second).collect())
    };
    let base = rate_of("nothing");
    let mut out = format!(
        "\nThe reclaim counter's cost on the path it instruments: a stream through a file 3× its cgroup's {} MiB \
         limit (limit reclaim runs all the time), its read rate from storage over {} s, three times per \
         observer, alternating (the median); bpftrace counts the same tracepoint into per-cgroup maps:\n\n\
         | observer | read rate (median) | against nothing attached |\n|---|---|---|\n",
        RECLAIM_LIMIT / MIB,
        RECLAIM_WINDOW.as_secs()
    );
    let mut seen = Vec::new();
    for run in runs {
        if seen.contains(&run.observer) {
            continue;
        }
        seen.push(run.observer);
        let rate = rate_of(run.observer);
        let ratio = rate.zip(base).map(|(r, b)| r / b * 100.0);
        out.push_str(&format!(
            "| {} | {} | {} |
",
            run.observer,
            fmt(rate, " MiB/s"),
            fmt(ratio, " %")
        ));
    }
    out
}

/// CPU (% of one core over the window) and RSS (kB at its end) of `oomtrace live <extra>`.
fn footprint(oomtrace: &Path, extra: &[&str]) -> Result<(f64, u64)> {
    let args = [&["--cgroup", "/oomtrace-bench-nothing"][..], extra].concat();
    let live = Live::start(oomtrace, &args)?;
    thread::sleep(COST_SETTLE);
    let pid = live.pid();
    let ticks = procfs::clock_ticks_per_sec()? as f64;
    let before = procfs::cpu_ticks(pid)?;
    thread::sleep(COST_WINDOW);
    let after = procfs::cpu_ticks(pid)?;
    let rss = procfs::memory(pid)?.rss_kb;
    live.stop()?;
    Ok(((after - before) as f64 / ticks / COST_WINDOW.as_secs_f64() * 100.0, rss))
}

/// How many cgroups `oomtrace check`'s warnings line says it watches.
fn watched_by_check(oomtrace: &Path) -> Option<u64> {
    let out = std::process::Command::new(oomtrace).arg("check").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("warnings"))?;
    line.split("polling cgroupfs: ").nth(1)?.split_whitespace().next()?.parse().ok()
}

fn epoch_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

fn fmt(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}{unit}"))
}

fn render(generated: &str, commit: &str, leaks: &[LeakRun], calm: &[Calm], calm_seconds: f64, cost: &Cost) -> String {
    let mut out = format!("{BLOCK_BEGIN}\n## Warnings\n\n");
    out.push_str(&format!(
        "`cargo xtask bench --only warnings`, {generated}, commit {commit}: real leaks (this binary, a step every \
         20 ms) toward a {} MiB limit, all rates at once, watched by `oomtrace live` with its defaults \
         (docs/warnings.md); the four workloads that must not be warned ran beside them the whole time.\n\n",
        LIMIT / MIB
    ));
    out.push_str("| rate | kills | warned | median lead | median ideal (start to kill) | lead / ideal | median error of the first warning's time left |\n|---|---|---|---|---|---|---|\n");
    for rate in RATES_MIB {
        let runs: Vec<&LeakRun> = leaks.iter().filter(|r| r.rate_mib == rate).collect();
        let kills = runs.iter().filter(|r| r.to_kill_seconds.is_some()).count();
        let warned = runs.iter().filter(|r| r.lead_seconds.is_some()).count();
        let lead = median(runs.iter().filter_map(|r| r.lead_seconds).collect());
        let ideal = median(runs.iter().filter_map(|r| r.to_kill_seconds).collect());
        let ratio = median(runs.iter().filter_map(|r| Some(r.lead_seconds? / r.to_kill_seconds?)).collect());
        let error = median(
            runs.iter().filter_map(|r| r.predicted_and_actual.map(|(p, a)| (p - a).abs() / a * 100.0)).collect(),
        );
        out.push_str(&format!(
            "| {rate} MiB/s | {kills}/{} | {warned} | {} | {} | {} | {} |\n",
            runs.len(),
            fmt(lead, " s"),
            fmt(ideal, " s"),
            fmt(ratio.map(|r| r * 100.0), " %"),
            fmt(error, " %"),
        ));
    }
    let kills = leaks.iter().filter(|r| r.to_kill_seconds.is_some()).count();
    let warned = leaks.iter().filter(|r| r.lead_seconds.is_some()).count();
    let slow_ratio = median(
        leaks.iter().filter(|r| r.rate_mib <= 16).filter_map(|r| Some(r.lead_seconds? / r.to_kill_seconds?)).collect(),
    );
    out.push_str(&format!(
        "\nRecall: {warned} of {kills} kills warned ({}; goal ≥ 95 %). Median lead at ≤ 16 MiB/s: {} of the ideal \
         (goal ≥ 70 %).\n\n",
        fmt((kills > 0).then(|| warned as f64 / kills as f64 * 100.0), " %"),
        fmt(slow_ratio.map(|r| r * 100.0), " %"),
    ));
    out.push_str(&format!(
        "False warnings over {calm_seconds:.0} s (goal 0):\n\n| workload | peak usage | warnings | per hour |\n|---|---|---|---|\n"
    ));
    for case in calm {
        out.push_str(&format!(
            "| {} | {} MiB | {} | {:.0} |\n",
            case.name,
            case.peak_mib,
            case.warnings,
            case.warnings as f64 * 3600.0 / calm_seconds.max(1.0)
        ));
    }
    out.push_str(&format!(
        "\nThe watcher's cost: `oomtrace live` beside {CGROUPS_FOR_COST} memory cgroups with a {} MiB limit \
         ({HOLDING_FOR_COST} of them holding 8 MiB; `oomtrace check` counted {} with a limit), over {} s after {} s \
         settling:\n\n| | CPU (% of one core) | RSS |\n|---|---|---|\n| warnings on | {:.2} % | {:.1} MiB |\n\
         | `--no-warnings` | {:.2} % | {:.1} MiB |\n| the watcher | **{:.2} %** (goal < 1 %) | **{:+.1} MiB** (goal < 4 MiB) |\n",
        LIMIT / MIB,
        cost.watched.map_or("?".to_owned(), |n| n.to_string()),
        COST_WINDOW.as_secs(),
        COST_SETTLE.as_secs(),
        cost.cpu_percent_on,
        cost.rss_kb_on as f64 / 1024.0,
        cost.cpu_percent_off,
        cost.rss_kb_off as f64 / 1024.0,
        cost.cpu_percent_on - cost.cpu_percent_off,
        (cost.rss_kb_on as f64 - cost.rss_kb_off as f64) / 1024.0,
    ));
    out.push_str(&format!("{BLOCK_END}\n"));
    out
}

/// `text` with `block` in place of its warnings block (before the node
/// block, or at the end, where it has none).
pub fn with_block(text: &str, block: &str) -> String {
    crate::marked::replace_or_insert(text, block, (BLOCK_BEGIN, BLOCK_END), &[crate::node::report::BENCH_BLOCK_BEGIN])
}

/// The warnings block of `text`, if it has one (a full run keeps it).
pub fn block_of(text: &str) -> Option<&str> {
    crate::marked::find(text, BLOCK_BEGIN, BLOCK_END).map(|(start, stop)| &text[start..stop])
}
