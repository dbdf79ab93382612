//! What the kernel log says about a kill: the "Killed process" line, the
//! oracle an event's victim fields are checked against.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// How long the kernel may take to print the line after the kill.
const DEADLINE: Duration = Duration::from_secs(5);

/// The kernel prints at most 10 whole OOM reports per 5 s (mm/oom_kill.c:
/// `oom_rs` is `DEFAULT_RATELIMIT_INTERVAL`, `DEFAULT_RATELIMIT_BURST`);
/// beyond that only the kill line. A window this long after the last kill
/// starts afresh.
pub const REPORT_RATE_WINDOW: Duration = Duration::from_millis(5500);

/// Waits out the report rate limit, so the next kills (up to 10) get whole
/// reports however many kills the tests before this one made.
pub fn wait_for_whole_reports() {
    thread::sleep(REPORT_RATE_WINDOW);
}

/// The kernel's "Killed process" line for one pid, as numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KilledLine {
    pub comm: String,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub uid: u64,
    pub pgtables_kb: u64,
    pub oom_score_adj: i64,
}

/// A point in the kernel log, written there by the test: the oracle of which
/// processes the kernel killed after it ([`Mark::killed_since`]).
pub struct Mark(String);

impl Mark {
    /// Writes a unique line into the kernel log (`/dev/kmsg`, root).
    pub fn new(label: &str) -> Result<Mark> {
        let line = format!("oomtrace-test-mark {label} {}", crate::procfs::monotonic_ns());
        std::fs::write("/dev/kmsg", format!("{line}\n")).context("writing a mark into /dev/kmsg")?;
        Ok(Mark(line))
    }

    /// (pid, comm) of every "Killed process" line the kernel printed after
    /// the mark, in order.
    pub fn killed_since(&self) -> Result<Vec<(u32, String)>> {
        let out = Command::new("dmesg").output().context("running dmesg")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let after = text.rfind(&self.0).with_context(|| format!("the mark {:?} is gone from dmesg", self.0))?;
        Ok(text[after..]
            .lines()
            .filter_map(|line| {
                let rest = &line[line.find("Killed process ")? + "Killed process ".len()..];
                let (pid, rest) = rest.split_once(" (")?;
                let comm = &rest[..rest.rfind(')')?];
                Some((pid.parse().ok()?, comm.to_owned()))
            })
            .collect())
    }
}

/// Waits for dmesg's "Killed process <pid> (comm) total-vm:..." line.
pub fn killed(pid: u32) -> Result<KilledLine> {
    let needle = format!("Killed process {pid} (");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = Command::new("dmesg").output().context("running dmesg")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = text.lines().rev().find(|l| l.contains(&needle)) {
            return parse_killed(line).with_context(|| format!("unparsable dmesg line: {line}"));
        }
        if Instant::now() >= deadline {
            bail!("dmesg has no 'Killed process {pid}' line after {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn parse_killed(line: &str) -> Option<KilledLine> {
    let rest = &line[line.find("Killed process ")? + "Killed process ".len()..];
    let open = rest.find('(')?;
    let close = rest.rfind(')')?;
    let comm = rest[open + 1..close].to_owned();
    let fields = &rest[close + 1..];
    let num = |key: &str| -> Option<i64> {
        let start = fields.find(key)? + key.len();
        let value: String = fields[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
        value.parse().ok()
    };
    let unsigned = |key: &str| num(key).and_then(|v| u64::try_from(v).ok());
    Some(KilledLine {
        comm,
        total_vm_kb: unsigned("total-vm:")?,
        anon_rss_kb: unsigned("anon-rss:")?,
        file_rss_kb: unsigned("file-rss:")?,
        shmem_rss_kb: unsigned("shmem-rss:")?,
        uid: unsigned("UID:")?,
        pgtables_kb: unsigned("pgtables:")?,
        oom_score_adj: num("oom_score_adj:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_killed_process_line() {
        let line = "[ 12.3] Memory cgroup out of memory: Killed process 4242 (dd (x)) total-vm:264864kB, \
                    anon-rss:65400kB, file-rss:1024kB, shmem-rss:0kB, UID:0 pgtables:172kB oom_score_adj:-998";
        let killed = parse_killed(line).expect("parsed");
        assert_eq!(killed.comm, "dd (x)");
        assert_eq!((killed.total_vm_kb, killed.anon_rss_kb, killed.file_rss_kb), (264864, 65400, 1024));
        assert_eq!((killed.uid, killed.pgtables_kb, killed.oom_score_adj), (0, 172, -998));
        assert_eq!(parse_killed("Killed process 1 (x) total-vm:1kB"), None);
    }
}
