//! What the bench and the tests read from the kernel about processes, clocks
//! and the machine.

use std::{fs, path::Path};

use anyhow::{Context as _, Result, bail};

/// A kernel clock a tracer stamps its events with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// `bpf_ktime_get_ns()`: oomtrace's `ktime_ns`.
    Monotonic,
    /// `bpf_ktime_get_boot_ns()`: bpftrace's `nsecs` on kernels since 5.7.
    Boottime,
}

impl Clock {
    pub fn now_ns(self) -> u64 {
        match self {
            Clock::Monotonic => monotonic_ns(),
            Clock::Boottime => boottime_ns(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Clock::Monotonic => "CLOCK_MONOTONIC",
            Clock::Boottime => "CLOCK_BOOTTIME",
        }
    }
}

/// CLOCK_MONOTONIC now, in ns (the clock of `bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_BOOTTIME now, in ns (the clock of `bpf_ktime_get_boot_ns`; it runs
/// ahead of CLOCK_MONOTONIC by the time spent suspended).
pub fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec that clock_gettime only writes;
    // the clock ids used here exist on every Linux since 2.6.39.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat.
pub fn clock_ticks_per_sec() -> Result<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        bail!("sysconf(_SC_CLK_TCK) returned {ticks}");
    }
    Ok(ticks as u64)
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Resident memory of a process, from /proc/<pid>/status.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kb: u64,
    /// VmHWM: the peak resident size since the process started.
    pub hwm_kb: u64,
    /// RssAnon: the anonymous (heap, stacks) part of VmRSS.
    pub anon_kb: u64,
    /// RssFile: the file-backed (binary, libraries) part of VmRSS.
    pub file_kb: u64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path} (did the process exit?)"))?;
    let field = |key: &str| -> Result<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {key} line in {path}"))
    };
    Ok(Memory {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
        anon_kb: field("RssAnon:")?,
        file_kb: field("RssFile:")?,
    })
}

/// utime + stime of a process, in clock ticks.
/// Bytes process `pid` made the kernel read from storage so far
/// (`read_bytes` of `/proc/<pid>/io`): the page cache its reads brought in.
pub fn storage_read_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/io");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("read_bytes:"))
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("no read_bytes in {path}: {text}"))
}

pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path} (did the process exit?)"))?;
    parse_cpu_ticks(&text).with_context(|| format!("unparsable {path}: {text}"))
}

/// CPU time of every thread of a process, in ns (the first field of
/// /proc/<pid>/task/<tid>/schedstat), and which threads were counted: a
/// thread that exits takes its time with it, so two readings only compare
/// when their thread sets match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadTimes {
    pub tids: Vec<u32>,
    pub run_ns: u64,
}

pub fn thread_times(pid: u32) -> Result<ThreadTimes> {
    let threads = thread_scheds(pid)?;
    let run_ns = threads.iter().map(|t| t.run_ns).sum();
    Ok(ThreadTimes { tids: threads.iter().map(|t| t.tid).collect(), run_ns })
}

/// One thread's scheduler accounting: /proc/<pid>/task/<tid>/schedstat
/// (time on a CPU, time runnable but waiting for one, times it was run) and
/// its name (`comm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadSched {
    pub tid: u32,
    pub name: String,
    pub run_ns: u64,
    pub wait_ns: u64,
    pub timeslices: u64,
}

/// Every thread of `pid`, by tid (a thread that exits between the listing
/// and the read is left out).
pub fn thread_scheds(pid: u32) -> Result<Vec<ThreadSched>> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {dir} (did the process exit?)"))? {
        let entry = entry.with_context(|| format!("listing {dir}"))?;
        let Some(tid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let (Ok(text), Ok(name)) =
            (fs::read_to_string(entry.path().join("schedstat")), fs::read_to_string(entry.path().join("comm")))
        else {
            continue;
        };
        let (run_ns, wait_ns, timeslices) =
            parse_schedstat(&text).with_context(|| format!("unparsable {dir}/{tid}/schedstat: {text}"))?;
        threads.push(ThreadSched { tid, name: name.trim_end().to_owned(), run_ns, wait_ns, timeslices });
    }
    threads.sort_unstable_by_key(|t| t.tid);
    Ok(threads)
}

/// The three fields of a schedstat file.
fn parse_schedstat(text: &str) -> Option<(u64, u64, u64)> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    Some((fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?))
}

/// Fields 14 (utime) and 15 (stime) of proc_pid_stat(5); the command name in
/// field 2 may hold spaces and parentheses, so counting starts after the last ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// What the report says about the machine.
#[derive(Clone, Debug)]
pub struct Machine {
    pub kernel: String,
    pub cpus: usize,
    pub mem_total_kb: u64,
    pub cpu_model: String,
}

pub fn machine() -> Result<Machine> {
    let kernel = read_trimmed("/proc/sys/kernel/osrelease")?;
    let cpus = std::thread::available_parallelism().context("counting the CPUs this process may use")?.get();
    let mem_total_kb = mem_total_kb()?;
    let cpuinfo = read_trimmed("/proc/cpuinfo")?;
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim()))
        .unwrap_or("unknown (no \"model name\" in /proc/cpuinfo)")
        .to_owned();
    Ok(Machine { kernel, cpus, mem_total_kb, cpu_model })
}

/// MemTotal of /proc/meminfo.
pub fn mem_total_kb() -> Result<u64> {
    read_trimmed("/proc/meminfo")?
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no MemTotal line in /proc/meminfo")
}

fn read_trimmed(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    Ok(fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_with_spaces_and_parentheses() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 123 4096 200";
        assert_eq!(parse_cpu_ticks(stat), Some(12));
        assert_eq!(parse_cpu_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn schedstat_has_run_time_wait_time_and_timeslices() {
        assert_eq!(parse_schedstat("78220562 1033684574 122\n"), Some((78_220_562, 1_033_684_574, 122)));
        assert_eq!(parse_schedstat("1 2"), None);
    }

    /// This thread's own reading: it has run, and it is listed under its name.
    #[test]
    fn the_own_process_lists_its_threads_with_their_names() {
        let threads = thread_scheds(std::process::id()).expect("own /proc/self/task");
        assert!(threads.iter().any(|t| t.run_ns > 0 && !t.name.is_empty()), "{threads:?}");
    }
}
