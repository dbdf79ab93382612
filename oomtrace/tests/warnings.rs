//! Warnings before the kill (docs/warnings.md), from real memory behaviour in
//! real memory cgroups, watched by the real `oomtrace live`: leaks at three
//! rates are warned before the kernel kills them, with the time they had left
//! within ±25 %; a growing tmpfs file is warned; a sudden allocation is
//! reported as not warnable; page cache at the limit, steady memory, a
//! sawtooth and a dirty-page writer are never warned; a leak under page
//! cache carries the kernel side's count of the limit reclaim that held it
//! off. cgroup v1 on this host, v2 in every kernel of the VM matrix (page
//! cache and dirty pages on the guests' scratch disk: an ext4 image on an
//! emulated NVMe drive).

mod support;

use std::{fs, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    event::Event,
    harness::{self, Need},
    live::Live,
    procfs, trial,
    warning::{Record, WarningRecord, epoch_seconds},
    workload::{DISK_ERROR_ENV, Running, Workload, disk_dir, uncached_file},
};
use support::{assert_matches_dmesg, docs, oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 128 * MIB;
/// How long a page-cache stream may take to fill its cgroup's limit.
const CACHE_FILL_DEADLINE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    harness::main(vec![
        trial!(leaks_at_three_rates_are_warned_with_the_time_they_had_left, Need::Root),
        trial!(a_growing_tmpfs_file_is_warned_as_shmem, Need::Root),
        trial!(a_sudden_allocation_is_not_warnable_and_says_why, Need::Root),
        trial!(steady_memory_and_a_sawtooth_are_never_warned, Need::Root),
        trial!(page_cache_and_dirty_pages_are_never_warned, Need::Root, Need::Probe(disk_dir_is_on_a_disk)),
        trial!(
            a_leak_under_page_cache_is_warned_with_the_reclaim_that_held_it_off,
            Need::Root,
            Need::Probe(disk_dir_is_on_a_disk),
            Need::Probe(the_kernel_has_the_memcg_reclaim_tracepoint)
        ),
        trial!(
            a_leak_held_at_memory_high_turns_imminent,
            Need::Root,
            Need::Probe(memory_high_exists),
            Need::Probe(the_kernel_has_the_memcg_reclaim_tracepoint)
        ),
        trial!(top_ranks_a_leak_first, Need::Root),
        trial!(every_field_of_a_real_warning_is_documented, Need::Root, Need::SourceTree),
        trial!(cgroups_churned_while_watched_leave_nothing_behind, Need::Root),
    ])
}

/// `oomtrace live` with warnings, for `cgroup` and what is under it.
fn watch(cgroup: &MemCgroup) -> Result<Live> {
    Live::start_with_warnings(oomtrace(), &["--cgroup", &cgroup.path])
}

fn warnings_of<'a>(records: &'a [Record], path: &str) -> Vec<&'a WarningRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Warning(w) if w.cgroup.as_deref() == Some(path) => Some(w.as_ref()),
            _ => None,
        })
        .collect()
}

fn kills_of(records: &[Record], pid: u32) -> Vec<&Event> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Kill(e) if e.victim.pid == pid => Some(e.as_ref()),
            _ => None,
        })
        .collect()
}

fn seconds(time: Option<&str>) -> Result<f64> {
    time.and_then(epoch_seconds).with_context(|| format!("no RFC 3339 time: {time:?}"))
}

/// Each leak is warned before its kill; the first warning's time left is
/// within ±25 % of the time that really passed until the kill, and the kill
/// says how long before it was warned.
fn leaks_at_three_rates_are_warned_with_the_time_they_had_left() -> Result<()> {
    let parent = MemCgroup::create(&unique("leaks"), None)?;
    let rates = [32 * MIB, 12 * MIB, 4 * MIB];
    let cgroups: Vec<MemCgroup> =
        rates.iter().map(|rate| parent.child(&format!("leak-{}", rate / MIB), Some(LIMIT))).collect::<Result<_>>()?;
    let live = watch(&parent)?;
    let leaks: Vec<Running> = cgroups
        .iter()
        .zip(rates)
        .map(|(cgroup, rate)| Running::start(cgroup, &Workload::Leak { bytes_per_second: rate }))
        .collect::<Result<_>>()?;
    let pids: Vec<u32> = leaks.iter().map(Running::pid).collect();
    // The slowest reaches 128 MiB in 32 s.
    let records = live.records_until(Duration::from_secs(60), {
        let pids = pids.clone();
        let mut killed = std::collections::HashSet::new();
        move |record| {
            if let Record::Kill(event) = record {
                killed.insert(event.victim.pid);
            }
            pids.iter().all(|pid| killed.contains(pid))
        }
    });
    let records = records?;
    for ((cgroup, rate), pid) in cgroups.iter().zip(rates).zip(pids) {
        let kills = kills_of(&records, pid);
        let [kill] = kills.as_slice() else { bail!("{} MiB/s: {} kills of pid {pid}", rate / MIB, kills.len()) };
        assert_matches_dmesg(kill, pid)?;
        ensure!(cgroup.oom_kills()? >= 1, "the kernel counted no OOM kill in {}", cgroup.path);
        let warnings = warnings_of(&records, &cgroup.path);
        let first = warnings.first().with_context(|| format!("{} MiB/s: not warned; {kill}", rate / MIB))?;
        let (warned, killed) = (seconds(Some(&first.time))?, seconds(kill.time.as_deref())?);
        let actual = killed - warned;
        ensure!(actual > 0.0, "{} MiB/s: the warning came after the kill: {first}", rate / MIB);
        let predicted = first.seconds_left.with_context(|| format!("no seconds_left: {first}"))?;
        ensure!(
            (predicted - actual).abs() <= 0.25 * actual,
            "{} MiB/s: predicted {predicted:.2} s left, the kill came {actual:.2} s later: {first}",
            rate / MIB
        );
        assert_eq!(first.state, "warning", "{first}");
        assert_eq!(first.limit_level, "cgroup", "{first}");
        assert_eq!(first.limit_bytes, LIMIT, "{first}");
        assert_eq!(first.growth.as_deref(), Some("anon"), "{first}");
        let slope = first.slope_bytes_per_second / rate as f64;
        ensure!((0.8..1.2).contains(&slope), "{} MiB/s: slope {slope:.2}× the rate: {first}", rate / MIB);
        let before = kill.warned_seconds_before.with_context(|| format!("no warned_seconds_before: {kill}"))?;
        ensure!((before - actual).abs() < 0.5, "warned_seconds_before {before} vs {actual:.2} s: {kill}");
        ensure!(kill.not_warned.is_none(), "{kill}");
    }
    Ok(())
}

/// A tmpfs mounted for the test, unmounted when it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str) -> Result<Tmpfs> {
        let dir = std::env::temp_dir().join(name);
        fs::create_dir_all(&dir)?;
        let status = std::process::Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&dir).status()?;
        ensure!(status.success(), "mount -t tmpfs tmpfs {}: {status}", dir.display());
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir(&self.0);
    }
}

/// shmem is memory reclaim cannot free without swap: a file growing in a
/// tmpfs toward the limit is warned, as shmem growth, before its kill.
fn a_growing_tmpfs_file_is_warned_as_shmem() -> Result<()> {
    let tmpfs = Tmpfs::mount(&unique("tmpfs"))?;
    let cgroup = MemCgroup::create(&unique("tmpfs"), Some(LIMIT))?;
    let live = watch(&cgroup)?;
    let writer = Running::start(&cgroup, &Workload::TmpfsGrow { dir: tmpfs.0.clone(), bytes_per_second: 16 * MIB })?;
    let pid = writer.pid();
    let records =
        live.records_until(Duration::from_secs(30), |r| matches!(r, Record::Kill(e) if e.victim.pid == pid))?;
    let kills = kills_of(&records, pid);
    let kill = kills.first().with_context(|| format!("the tmpfs writer {pid} was not killed"))?;
    let warnings = warnings_of(&records, &cgroup.path);
    let first = warnings.first().with_context(|| format!("not warned before {kill}"))?;
    assert_eq!(first.growth.as_deref(), Some("shmem"), "{first}");
    ensure!(seconds(Some(&first.time))? < seconds(kill.time.as_deref())?, "warned after the kill: {first}");
    ensure!(kill.warned_seconds_before.is_some_and(|s| s > 0.0), "{kill}");
    Ok(())
}

/// All of the memory at once: from the first movement to the kill is far
/// shorter than a trend can be seen in, and the kill says so.
fn a_sudden_allocation_is_not_warnable_and_says_why() -> Result<()> {
    let cgroup = MemCgroup::create(&unique("burst"), Some(LIMIT))?;
    let live = watch(&cgroup)?;
    let burst = Running::start(&cgroup, &Workload::Burst { bytes: 2 * LIMIT })?;
    let pid = burst.pid();
    let records =
        live.records_until(Duration::from_secs(20), |r| matches!(r, Record::Kill(e) if e.victim.pid == pid))?;
    let kills = kills_of(&records, pid);
    let kill = kills.first().with_context(|| format!("the burst {pid} was not killed"))?;
    assert_matches_dmesg(kill, pid)?;
    let warnings = warnings_of(&records, &cgroup.path);
    ensure!(warnings.iter().all(|w| w.state == "recovered"), "a burst was warned: {}", warnings[0]);
    ensure!(kill.warned_seconds_before.is_none(), "{kill}");
    let not = kill.not_warned.as_ref().with_context(|| format!("no not_warned: {kill}"))?;
    assert_eq!(not.reason, "burst", "{kill}");
    ensure!(not.rise_seconds.is_some_and(|s| s < 2.0), "{kill}");
    Ok(())
}

/// Runs `cases` side by side, each in its own cgroup with the limit, for 15 s
/// under `oomtrace live`: none is warned, none is killed, and each really
/// filled its cgroup (at least half of the limit) so that the test proves
/// something.
fn never_warned(test: &str, cases: Vec<(&str, Workload)>) -> Result<()> {
    let parent = MemCgroup::create(&unique(test), None)?;
    let cgroups: Vec<MemCgroup> =
        cases.iter().map(|(case, _)| parent.child(case, Some(LIMIT))).collect::<Result<_>>()?;
    let running: Vec<Running> =
        cgroups.iter().zip(&cases).map(|(cgroup, (_, w))| Running::start(cgroup, w)).collect::<Result<_>>()?;
    // A steady process is watched once it holds its memory: filling it is a
    // climb (under emulation, at a few MiB/s for seconds: a fair warning).
    for (cgroup, (case, workload)) in cgroups.iter().zip(&cases) {
        if let Workload::Steady { bytes } = workload {
            let until = std::time::Instant::now() + Duration::from_secs(90);
            let mut last = 0;
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let usage = cgroup.usage_bytes();
                if usage >= *bytes && usage.abs_diff(last) < MIB / 2 {
                    break;
                }
                ensure!(std::time::Instant::now() < until, "{case} never held its {} MiB", bytes / MIB);
                last = usage;
            }
        }
    }
    let live = watch(&parent)?;
    let mut peaks = vec![0u64; cgroups.len()];
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut records = Vec::new();
    while std::time::Instant::now() < deadline {
        records.extend(live.records_until(Duration::from_millis(200), |_| false)?);
        for (peak, cgroup) in peaks.iter_mut().zip(&cgroups) {
            *peak = (*peak).max(cgroup.usage_bytes());
        }
    }
    for (((case, _), cgroup), (run, peak)) in cases.iter().zip(&cgroups).zip(running.iter().zip(&peaks)) {
        let warnings = warnings_of(&records, &cgroup.path);
        ensure!(warnings.is_empty(), "{case} was warned: {}", warnings[0]);
        ensure!(kills_of(&records, run.pid()).is_empty(), "{case} was killed");
        ensure!(*peak >= LIMIT / 2, "{case} peaked at {} MiB only: the test proves nothing", peak / MIB);
    }
    Ok(())
}

/// What does not grow (anonymous memory steady at 90 %, a sawtooth that
/// frees what it takes every second) is never warned.
fn steady_memory_and_a_sawtooth_are_never_warned() -> Result<()> {
    never_warned(
        "steady",
        vec![
            ("steady", Workload::Steady { bytes: LIMIT * 9 / 10 }),
            ("sawtooth", Workload::Sawtooth { low: LIMIT / 10, high: LIMIT * 8 / 10, period_ms: 1000 }),
        ],
    )
}

/// What reclaim frees (page cache at the limit: a file 3× the limit read
/// over and over) and dirty pages (written back within seconds) are never
/// warned, though each fills its cgroup to the limit.
fn page_cache_and_dirty_pages_are_never_warned() -> Result<()> {
    let name = unique("cache");
    let stream_file = uncached_file(&format!("{name}-stream"), 3 * LIMIT)?;
    let dirty_file = disk_dir().join(format!("{name}-dirty"));
    let result = never_warned(
        "cache",
        vec![
            ("stream", Workload::Stream { file: stream_file.clone() }),
            (
                "dirty",
                Workload::DirtyWriter {
                    file: dirty_file.clone(),
                    bytes_per_second: 32 * MIB,
                    max_file_bytes: 4 * LIMIT,
                },
            ),
        ],
    );
    let _ = fs::remove_file(stream_file);
    let _ = fs::remove_file(dirty_file);
    result
}

/// A leak in a cgroup whose page cache fills its limit (a file twice the
/// limit read over and over): reclaim frees the cache as the leak grows, and
/// the warnings say so — every one carries the kernel side's count of limit
/// reclaim, which ran and freed memory, and never more than the stream
/// brought into the cache (its `read_bytes`, plus a little for the
/// processes' own files), nor (v2) than the kernel's `pgsteal`.
fn a_leak_under_page_cache_is_warned_with_the_reclaim_that_held_it_off() -> Result<()> {
    let name = unique("reclaim");
    let stream_file = uncached_file(&format!("{name}-stream"), 2 * LIMIT)?;
    let result = (|| {
        let cgroup = MemCgroup::create(&name, Some(LIMIT))?;
        let live = watch(&cgroup)?;
        let stream = Running::start(&cgroup, &Workload::Stream { file: stream_file.clone() })?;
        // The cache fills the limit: reclaim runs from here on. (3 s are
        // enough on this host; a VM's disk under a loaded host can take
        // several times that.)
        let filling = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        while cgroup.usage_bytes() < LIMIT * 9 / 10 && filling.elapsed() < CACHE_FILL_DEADLINE {
            std::thread::sleep(Duration::from_millis(100));
        }
        ensure!(
            cgroup.usage_bytes() >= LIMIT * 9 / 10,
            "the stream filled only {} MiB in {CACHE_FILL_DEADLINE:?}",
            cgroup.usage_bytes() / MIB
        );
        let leak = Running::start(&cgroup, &Workload::Leak { bytes_per_second: 8 * MIB })?;
        let pid = leak.pid();
        let records = live.records_until(
            Duration::from_secs(40),
            |record| matches!(record, Record::Kill(event) if event.victim.pid == pid),
        )?;
        let brought_in = procfs::storage_read_bytes(stream.pid())? + 16 * MIB;
        let pgsteal = cgroup.reclaimed_bytes()?;
        let kills = kills_of(&records, pid);
        let [kill] = kills.as_slice() else { bail!("{} kills of the leak (pid {pid})", kills.len()) };
        assert_matches_dmesg(kill, pid)?;
        let warnings = warnings_of(&records, &cgroup.path);
        let first = warnings.first().with_context(|| format!("the leak was not warned: {kill}"))?;
        ensure!(seconds(Some(&first.time))? < seconds(kill.time.as_deref())?, "warned after the kill: {first}");
        assert_eq!(first.growth.as_deref(), Some("anon"), "{first}");
        for warning in &warnings {
            let reclaim = warning.reclaim.with_context(|| format!("no reclaim count: {warning}"))?;
            let most = pgsteal.map_or(brought_in, |pgsteal| pgsteal.min(brought_in));
            ensure!(
                reclaim.reclaimed_bytes <= most,
                "{} MiB reclaimed, more than the cache ever held (at most {} MiB: the stream's read_bytes, v2 \
                 pgsteal): {warning}",
                reclaim.reclaimed_bytes / MIB,
                most / MIB
            );
        }
        let reclaim = first.reclaim.with_context(|| format!("no reclaim count: {first}"))?;
        ensure!(reclaim.runs >= 1 && reclaim.reclaimed_bytes >= MIB, "reclaim held the leak off, unseen: {first}");
        Ok(())
    })();
    let _ = fs::remove_file(stream_file);
    result
}

/// A leak in a cgroup with `memory.high` under its `memory.max`: past
/// `high` the kernel reclaims on every charge and finds nothing to free
/// (anonymous memory, no swap), throttling the leak — reclaim is failing, and
/// the warning turns `imminent`, with the reclaim that ran and freed little.
/// The kernel's own `memory.events` `high` says reclaim was forced.
fn a_leak_held_at_memory_high_turns_imminent() -> Result<()> {
    let cgroup = MemCgroup::create(&unique("high"), Some(LIMIT))?;
    let high = LIMIT * 3 / 4;
    cgroup.set_high(high)?;
    let live = watch(&cgroup)?;
    let leak = Running::start(&cgroup, &Workload::Leak { bytes_per_second: 16 * MIB })?;
    let records = live.records_until(
        Duration::from_secs(60),
        |record| matches!(record, Record::Warning(w) if w.state == "imminent"),
    )?;
    let forced = cgroup.event_count("high")?;
    drop(leak);
    let warnings = warnings_of(&records, &cgroup.path);
    let states: Vec<&str> = warnings.iter().map(|w| w.state.as_str()).collect();
    let imminent = warnings
        .iter()
        .find(|w| w.state == "imminent")
        .with_context(|| format!("never imminent (states {states:?}; memory.events high {forced})"))?;
    ensure!(states.first() == Some(&"warning"), "imminent before any warning: {states:?}");
    ensure!(forced >= 1, "the kernel forced no reclaim at memory.high, yet: {imminent}");
    let reclaim = imminent.reclaim.with_context(|| format!("no reclaim count: {imminent}"))?;
    ensure!(
        reclaim.runs >= 1 && reclaim.reclaimed_bytes < reclaim.runs * 32 * 4096,
        "imminent without reclaim failing: {imminent}"
    );
    ensure!(
        imminent.usage_bytes >= high - 4 * MIB,
        "imminent at {} MiB, under memory.high: {imminent}",
        imminent.usage_bytes / MIB
    );
    Ok(())
}

/// `memory.high` is cgroup v2's (the kernel's own files say which is mounted).
fn memory_high_exists() -> Result<(), String> {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Ok(())
    } else {
        Err("cgroup v1 here: no memory.high (the VM matrix runs it on v2)".to_owned())
    }
}

/// The kernel's own word that memcg limit reclaim has its tracepoint (the
/// counter attaches to it by tp_btf, else raw_tp).
fn the_kernel_has_the_memcg_reclaim_tracepoint() -> Result<(), String> {
    let event = "events/vmscan/mm_vmscan_memcg_reclaim_end";
    let found = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|tracefs| std::path::Path::new(tracefs).join(event).exists());
    if found { Ok(()) } else { Err(format!("no {event} in tracefs: this kernel has no memcg reclaim tracepoint")) }
}

/// Page cache and dirty pages need files on a disk: in RAM (tmpfs, ramfs:
/// the VM guests' initramfs, where their scratch disk is mounted unless that
/// failed) a file's pages are shmem, which reclaim cannot free. From the
/// kernel's own word on the directory (statfs); a guest whose disk failed
/// says what failed.
fn disk_dir_is_on_a_disk() -> Result<(), String> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let dir = disk_dir();
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: statfs writes only into the zeroed struct it is given.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid, writable struct.
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(format!("statfs {}: {}", dir.display(), std::io::Error::last_os_error()));
    }
    match stat.f_type as i64 {
        TMPFS_MAGIC | RAMFS_MAGIC => Err(format!(
            "{} is in RAM (tmpfs/ramfs): page cache and dirty pages need a disk-backed file system{}",
            dir.display(),
            match std::env::var(DISK_ERROR_ENV) {
                Ok(error) => format!("; the scratch disk failed: {error}"),
                Err(_) => String::new(),
            }
        )),
        _ => Ok(()),
    }
}

/// `oomtrace top --once -o json` ranks the leaking cgroup first, with a
/// trend near its rate and the limit it heads for.
fn top_ranks_a_leak_first() -> Result<()> {
    let parent = MemCgroup::create(&unique("top"), None)?;
    let leak_cgroup = parent.child("leak", Some(4 * LIMIT))?;
    let steady_cgroup = parent.child("steady", Some(LIMIT))?;
    let _steady = Running::start(&steady_cgroup, &Workload::Steady { bytes: LIMIT / 2 })?;
    let _leak = Running::start(&leak_cgroup, &Workload::Leak { bytes_per_second: 8 * MIB })?;
    let out = std::process::Command::new(oomtrace())
        .args(["top", "--once", "-o", "json", "--sample", "6s", "--cgroup", &parent.path])
        .output()
        .context("running oomtrace top")?;
    ensure!(out.status.success(), "oomtrace top: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).context("top's JSON")?;
    let first = rows.first().context("no rows")?;
    assert_eq!(first["cgroup"].as_str(), Some(leak_cgroup.path.as_str()), "{first}");
    let slope = first["slope_bytes_per_second"].as_f64().unwrap_or_default() / (8 * MIB) as f64;
    ensure!((0.8..1.2).contains(&slope), "slope {slope:.2}× the rate: {first}");
    assert_eq!(first["limit_bytes"].as_u64(), Some(4 * LIMIT), "{first}");
    let steady = rows.iter().find(|r| r["cgroup"].as_str() == Some(steady_cgroup.path.as_str()));
    let steady = steady.with_context(|| format!("the steady cgroup is not listed: {rows:?}"))?;
    ensure!(steady["seconds_left"].is_null(), "steady memory has a time left: {steady}");
    Ok(())
}

/// docs/events.md's "Warning records" table has a row for every field of a
/// real warning.
fn every_field_of_a_real_warning_is_documented() -> Result<()> {
    let cgroup = MemCgroup::create(&unique("documented"), Some(LIMIT))?;
    let live = watch(&cgroup)?;
    let _leak = Running::start(&cgroup, &Workload::Leak { bytes_per_second: 24 * MIB })?;
    let records = live.records_until(Duration::from_secs(20), |r| matches!(r, Record::Warning(_)))?;
    let warnings = warnings_of(&records, &cgroup.path);
    let warning = warnings.first().context("no warning")?;
    docs::check_fields_documented_in(&serde_json::from_str(&warning.line)?, "Warning records")
}

/// 450 cgroups with limits made and removed while `oomtrace live` watches:
/// no read error is logged, none of them is still listed afterwards, and the
/// watcher's heap does not grow with them: once the allocator's arenas have
/// their size (after 300: the first 150 already get there on this host, not
/// in the VM guests), the next 150 add at most 1 MiB of anonymous memory (a
/// leak of 7 KiB per cgroup would add more).
fn cgroups_churned_while_watched_leave_nothing_behind() -> Result<()> {
    let parent = MemCgroup::create(&unique("churn"), None)?;
    let live = watch(&parent)?;
    let churn = |rounds: std::ops::Range<usize>| -> Result<()> {
        for round in rounds {
            let cgroups: Vec<MemCgroup> =
                (0..50).map(|i| parent.child(&format!("r{round}-{i}"), Some(LIMIT))).collect::<Result<_>>()?;
            // The watcher scans every 2 s: each round is seen, then removed.
            std::thread::sleep(Duration::from_millis(2200));
            drop(cgroups);
        }
        // Long enough for a scan to forget the last round.
        std::thread::sleep(Duration::from_secs(3));
        Ok(())
    };
    churn(0..3)?;
    let first = procfs::memory(live.pid())?.anon_kb;
    churn(3..6)?;
    let warm = procfs::memory(live.pid())?.anon_kb;
    churn(6..9)?;
    let after = procfs::memory(live.pid())?.anon_kb;
    println!(
        "oomtrace live's anonymous memory: {first} kB after 150 cgroups, {warm} kB after 300, {after} kB after 450"
    );
    let out = std::process::Command::new(oomtrace())
        .args(["top", "--once", "-o", "json", "--sample", "3s", "--cgroup", &parent.path])
        .output()
        .context("running oomtrace top")?;
    ensure!(out.status.success(), "oomtrace top: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).context("top's JSON")?;
    ensure!(rows.is_empty(), "removed cgroups are still listed: {rows:?}");
    let stopped = live.stop()?;
    ensure!(!stopped.logged("cannot read a watched memory cgroup"), "{}", stopped.log);
    ensure!(
        after <= warm + 1024,
        "anonymous memory grew from {warm} kB to {after} kB over the third 150 cgroups made and removed ({first} kB \
         after the first)"
    );
    Ok(())
}
