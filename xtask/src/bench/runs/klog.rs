//! `oomtrace history` timed on a 100 MB syslog file and on the whole kernel
//! ring buffer, with grep, cat and dmesg on the same input in the same run:
//! each round runs every command once, so load from elsewhere on the host
//! falls on all of them alike.

use std::{
    fs::{self, File},
    io::{BufWriter, Read as _},
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
    process::Command,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};

use super::{
    child::{self, Ran},
    syslog_file::{self, Layout},
};
use crate::bench::{
    figures::{Found, KlogFigures, RingFigures, SyslogFigures, Timed},
    host::{self, progress},
    settings::{KLOG_RUNS, REPETITION_GAP_S, SYSLOG_BYTES, SYSLOG_FIXTURE, SYSLOG_PATH, UNRELATED_EVERY},
};

/// The kernel's "Killed process" line, what grep looks for.
const KILL_LINE: &str = "Killed process";

/// Both halves; either may fail without the other.
pub fn measure(root: &Path, oomtrace: &Path, generated: String, commit: String) -> KlogFigures {
    let syslog = syslog(root, oomtrace).map_err(|error| {
        progress(&format!("kernel log, syslog file: {error:#}"));
        format!("{error:#}")
    });
    let ring = ring(oomtrace).map_err(|error| {
        progress(&format!("kernel log, ring buffer: {error:#}"));
        format!("{error:#}")
    });
    KlogFigures { generated, commit, syslog, ring }
}

/// Writes the file, times the three commands on it, and removes it.
fn syslog(root: &Path, oomtrace: &Path) -> Result<SyslogFigures> {
    let fixture_path = root.join(SYSLOG_FIXTURE);
    let fixture = fs::read_to_string(&fixture_path).with_context(|| format!("reading {}", fixture_path.display()))?;
    let lines = syslog_file::dmesg_lines(&fixture).with_context(|| format!("in {}", fixture_path.display()))?;
    let path = root.join(SYSLOG_PATH);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    progress(&format!("kernel log: writing {} MB of syslog to {}", SYSLOG_BYTES / 1_000_000, path.display()));
    let started = Instant::now();
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut shape = syslog_file::write(&mut BufWriter::with_capacity(1 << 20, file), &lines, layout(fixture.len()))?;
    shape.written_in = started.elapsed();
    let figures = time_syslog(oomtrace, &path, root);
    let _ = fs::remove_file(&path);
    let SyslogTimes { history, grep, cat, grep_count, found, diagnose, diagnose_found } = figures?;
    Ok(SyslogFigures {
        path: SYSLOG_PATH.to_owned(),
        shape,
        oomtrace: history,
        grep,
        cat,
        grep_count,
        found,
        diagnose,
        diagnose_found,
    })
}

/// The file's lines end a day before now: a year-less syslog stamp later
/// than the file's own date would be taken for last year's.
fn layout(fixture_bytes: usize) -> Layout {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // The fixture's text is shorter than its syslog form: more repetitions than this never happen.
    let span_s = (SYSLOG_BYTES / fixture_bytes.max(1) as u64 + 1) * REPETITION_GAP_S;
    let start = now.saturating_sub(span_s + 86_400);
    Layout {
        target_bytes: SYSLOG_BYTES,
        start_unix_s: i64::try_from(start).unwrap_or(0),
        gap_s: REPETITION_GAP_S,
        unrelated_every: UNRELATED_EVERY,
    }
}

/// The syslog file's runs.
struct SyslogTimes {
    history: Timed,
    grep: Timed,
    cat: Timed,
    grep_count: Option<u64>,
    found: Result<Found, String>,
    diagnose: Timed,
    diagnose_found: Result<Found, String>,
}

fn time_syslog(oomtrace: &Path, path: &Path, root: &Path) -> Result<SyslogTimes> {
    let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
    let file = path.to_string_lossy().into_owned();
    // Into the page cache first, for every command alike.
    child::run(Command::new("cat").arg(&file), false).context("cat (warming the page cache)")?;
    let command = |what: &str| {
        let mut command = Command::new(oomtrace);
        command.args([what, "--file", &file, "-o", "json"]);
        command
    };
    let found = count_events(&command("history"));
    let diagnose_found = count_report(&command("diagnose"));
    let mut history_runs = Timed::new(format!("oomtrace history --file {shown} -o json >/dev/null"));
    let mut diagnose_runs = Timed::new(format!("oomtrace diagnose --file {shown} -o json >/dev/null"));
    let mut grep = Timed::new(format!("grep -c \"{KILL_LINE}\" {shown}"));
    let mut cat = Timed::new(format!("cat {shown} >/dev/null"));
    let mut grep_count = None;
    for round in 1..=KLOG_RUNS {
        progress(&format!("kernel log: syslog file, round {round} of {KLOG_RUNS}"));
        timed(&mut history_runs, &mut command("history"), false)?;
        timed(&mut diagnose_runs, &mut command("diagnose"), false)?;
        let counted = timed(&mut grep, Command::new("grep").args(["-c", KILL_LINE, &file]), true)?;
        grep_count = String::from_utf8_lossy(&counted.stdout).trim().parse().ok();
        timed(&mut cat, Command::new("cat").arg(&file), false)?;
    }
    Ok(SyslogTimes { history: history_runs, grep, cat, grep_count, found, diagnose: diagnose_runs, diagnose_found })
}

/// What the ring buffer holds, then oomtrace and dmesg on it.
fn ring(oomtrace: &Path) -> Result<RingFigures> {
    let capacity_bytes = ring_capacity();
    let held = kmsg_records().context("reading /dev/kmsg")?;
    let dmesg = child::run(&mut Command::new("dmesg"), true).context("dmesg")?;
    let kernel_only = child::run(Command::new("dmesg").arg("--kernel"), true).context("dmesg --kernel")?;
    let kill_lines =
        |ran: &Ran| String::from_utf8_lossy(&ran.stdout).lines().filter(|l| l.contains(KILL_LINE)).count() as u64;
    let found = count_events(Command::new(oomtrace).args(["history", "-o", "json"]));
    let mut oomtrace_runs = Timed::new("oomtrace history -o json >/dev/null");
    let mut dmesg_runs = Timed::new("dmesg >/dev/null");
    for round in 1..=KLOG_RUNS {
        progress(&format!("kernel log: ring buffer, round {round} of {KLOG_RUNS}"));
        timed(&mut oomtrace_runs, Command::new(oomtrace).args(["history", "-o", "json"]), false)?;
        timed(&mut dmesg_runs, &mut Command::new("dmesg"), false)?;
    }
    Ok(RingFigures {
        capacity_bytes,
        records: held.records,
        record_bytes: held.bytes,
        rotated: held.first_seq.unwrap_or(0),
        dmesg_bytes: dmesg.stdout.len() as u64,
        dmesg_kill_lines: kill_lines(&dmesg),
        kernel_kill_lines: kill_lines(&kernel_only),
        oomtrace: oomtrace_runs,
        dmesg: dmesg_runs,
        found,
    })
}

/// Runs `command` and adds what it used to `timed`.
fn timed(timed: &mut Timed, command: &mut Command, keep_stdout: bool) -> Result<Ran> {
    let ran = child::run(command, keep_stdout).with_context(|| timed.command.clone())?;
    timed.wall.push(ran.wall);
    timed.cpu.push(ran.cpu);
    Ok(ran)
}

/// One untimed run of `oomtrace history -o json`, under GNU time where it
/// can be had: its events (NDJSON lines), its closing line, its peak RSS.
fn count_events(command: &Command) -> Result<Found, String> {
    let (ran, peak_rss_kb) = untimed(command)?;
    Ok(Found {
        events: ran.stdout.iter().filter(|&&b| b == b'\n').count() as u64,
        closing: ran.last_stderr_line().to_owned(),
        peak_rss_kb,
    })
}

/// One untimed run of `oomtrace diagnose -o json`, the same way: the report's
/// kills and its reconciliation (the sentence `history` closes with), its peak RSS.
fn count_report(command: &Command) -> Result<Found, String> {
    let (ran, peak_rss_kb) = untimed(command)?;
    let report: serde_json::Value =
        serde_json::from_slice(&ran.stdout).map_err(|error| format!("diagnose's JSON: {error}"))?;
    Ok(Found {
        events: report["kills"].as_u64().ok_or("diagnose's JSON has no `kills`")?,
        closing: report["kernel_log"]["reconciliation"].as_str().unwrap_or_default().to_owned(),
        peak_rss_kb,
    })
}

/// Runs `command` with its stdout kept, under GNU time where it can be had;
/// what it printed (without GNU time's line) and its peak RSS (`%M`, KiB).
fn untimed(command: &Command) -> Result<(Ran, Option<u64>), String> {
    let gnu_time = host::ensure_installed("time", "time")
        .map_err(|reason| progress(&format!("kernel log: no peak RSS, GNU time is missing: {reason}")))
        .ok();
    let mut wrapped = match &gnu_time {
        Some(time) => {
            let mut wrapped = Command::new(time);
            wrapped.args(["--format", "%M"]).arg(command.get_program());
            wrapped
        }
        None => Command::new(command.get_program()),
    };
    wrapped.args(command.get_args());
    let mut ran = child::run(&mut wrapped, true).map_err(|error| format!("{error:#}"))?;
    // GNU time's line comes last, after the command's own.
    let peak_rss_kb = gnu_time.and_then(|_| {
        let kb = ran.last_stderr_line().parse().ok();
        let end = ran.stderr.trim_end().rfind('\n').unwrap_or(0);
        ran.stderr.truncate(end);
        kb
    });
    Ok((ran, peak_rss_kb))
}

/// The ring buffer's size from syslog(2) (SYSLOG_ACTION_SIZE_BUFFER), what
/// `dmesg` sizes a syslog(2) read by.
fn ring_capacity() -> Option<u64> {
    const SIZE_BUFFER: libc::c_int = 10;
    // SAFETY: SIZE_BUFFER takes no buffer (null, 0) and returns a size or -1.
    let size = unsafe { libc::klogctl(SIZE_BUFFER, std::ptr::null_mut(), 0) };
    u64::try_from(size).ok().filter(|&n| n > 0)
}

/// What /dev/kmsg held when read.
struct KmsgHeld {
    records: u64,
    bytes: u64,
    /// The first record's sequence number: the records before it (since
    /// boot) were overwritten.
    first_seq: Option<u64>,
}

/// Reads every record /dev/kmsg holds (one per read), without waiting for more.
fn kmsg_records() -> Result<KmsgHeld> {
    let mut kmsg =
        fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").context("opening it")?;
    let mut held = KmsgHeld { records: 0, bytes: 0, first_seq: None };
    let mut record = vec![0u8; 16 * 1024];
    loop {
        match kmsg.read(&mut record) {
            Ok(0) => break,
            Ok(len) => {
                if held.first_seq.is_none() {
                    held.first_seq = sequence_number(&record[..len]);
                }
                held.records += 1;
                held.bytes += len as u64;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
            // Overwritten while reading: the next read goes on from the oldest left.
            Err(error) if error.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(held)
}

/// `prio,seq,usec,flags;message` -> seq.
fn sequence_number(record: &[u8]) -> Option<u64> {
    let header = std::str::from_utf8(record.split(|&b| b == b';').next()?).ok()?;
    header.split(',').nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_their_sequence_number() {
        assert_eq!(sequence_number(b"6,1234,20275552083,-;Memory cgroup out of memory"), Some(1234));
        assert_eq!(sequence_number(b"6,x,1,-;text"), None);
        assert_eq!(sequence_number(b"no header"), None);
    }

    #[test]
    fn the_file_ends_a_day_before_now() {
        let layout = layout(133_000);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let repetitions = (SYSLOG_BYTES / 133_000 + 1) as i64;
        assert!(layout.start_unix_s + repetitions * REPETITION_GAP_S as i64 <= now - 86_400);
        assert_eq!(layout.target_bytes, SYSLOG_BYTES);
    }
}
