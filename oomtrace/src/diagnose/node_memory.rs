//! The node's memory now: MemTotal and MemAvailable (/proc/meminfo), the
//! `kubepods` cgroup's usage and limit (what the kubelet gives all pods
//! together), PSI memory pressure (/proc/pressure/memory) and the kernel's
//! count of OOM kills since boot (/proc/vmstat `oom_kill`). Whatever cannot
//! be read is absent, and a note says why.

use std::{io, path::PathBuf};

use serde::Serialize;

use crate::{
    enrich::cgroup::{MemoryHierarchy, detect_hierarchy},
    kernel::oom_count,
};

/// The note when there is no `kubepods` cgroup.
pub const NO_KUBEPODS: &str = "no kubepods cgroup: not a Kubernetes node";
/// The note when /proc/pressure/memory is absent or refuses reads.
pub const NO_PSI: &str = "PSI not available (kernel without CONFIG_PSI or psi=0)";
/// A limit at or above this is the "no limit" value (cgroup v1 writes
/// `PAGE_COUNTER_MAX` pages: 0x7ffffffffffff000 with 4 KiB pages).
const UNLIMITED_BYTES: u64 = 1 << 62;
/// Where `kubepods` lives under the memory hierarchy's root: the cgroupfs
/// and the systemd drivers' names.
const KUBEPODS_DIRS: [&str; 2] = ["kubepods.slice", "kubepods"];

/// The node's memory picture (`node_memory` in docs/diagnose.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeMemory {
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    pub kubepods: Option<Kubepods>,
    pub psi: Option<Psi>,
    /// `oom_kill` of /proc/vmstat: every OOM kill since boot.
    pub kernel_oom_kills: Option<u64>,
    /// Why something above is absent.
    pub notes: Vec<String>,
}

/// The cgroup all pods run under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Kubepods {
    /// Its path from the hierarchy root (`/kubepods`, `/kubepods.slice`).
    pub cgroup: String,
    pub cgroup_version: u8,
    pub usage_bytes: Option<u64>,
    /// Absent: no limit (`max`).
    pub limit_bytes: Option<u64>,
}

/// /proc/pressure/memory: the share of time some (or all) tasks waited for
/// memory, in percent over 10 s, 60 s and 300 s.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Psi {
    pub some: PsiLine,
    /// Absent on kernels before 5.2's `full` line for memory (never, in practice).
    pub full: Option<PsiLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PsiLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Total stall time, in microseconds.
    pub total_us: u64,
}

/// Where the picture is read from; tests point it at a scratch directory.
#[derive(Clone, Debug)]
pub struct Sources {
    /// `/proc`.
    pub proc_dir: PathBuf,
    /// The memory cgroup hierarchy, if any is mounted.
    pub hierarchy: Option<MemoryHierarchy>,
}

impl Sources {
    /// This machine's.
    pub fn this_node() -> Self {
        Self { proc_dir: PathBuf::from("/proc"), hierarchy: detect_hierarchy().ok() }
    }
}

/// Reads the picture; never fails (what is missing is noted).
pub fn read(sources: &Sources) -> NodeMemory {
    let mut picture = NodeMemory::default();
    match std::fs::read_to_string(sources.proc_dir.join("meminfo")) {
        Ok(text) => {
            picture.mem_total_bytes = meminfo_bytes(&text, "MemTotal");
            picture.mem_available_bytes = meminfo_bytes(&text, "MemAvailable");
        }
        Err(error) => picture.notes.push(format!("/proc/meminfo unreadable: {error}")),
    }
    match &sources.hierarchy {
        Some(hierarchy) => match kubepods(hierarchy) {
            Some(found) => picture.kubepods = Some(found),
            None => picture.notes.push(NO_KUBEPODS.to_owned()),
        },
        None => picture.notes.push(format!("{NO_KUBEPODS} (no memory cgroup hierarchy is mounted)")),
    }
    match std::fs::read_to_string(sources.proc_dir.join("pressure/memory")) {
        Ok(text) => match psi(&text) {
            Some(found) => picture.psi = Some(found),
            None => picture.notes.push(format!("/proc/pressure/memory not understood: {:?}", text.trim())),
        },
        Err(error) if psi_absent(&error) => picture.notes.push(NO_PSI.to_owned()),
        Err(error) => picture.notes.push(format!("/proc/pressure/memory unreadable: {error}")),
    }
    match std::fs::read_to_string(sources.proc_dir.join("vmstat")) {
        Ok(text) => match oom_count::counter(&text, "oom_kill") {
            Some(count) => picture.kernel_oom_kills = Some(count),
            None => picture.notes.push("/proc/vmstat has no oom_kill counter (Linux 4.13 added it)".to_owned()),
        },
        Err(error) => picture.notes.push(format!("/proc/vmstat unreadable: {error}")),
    }
    picture
}

/// `MemTotal:  24684092 kB` -> bytes.
pub fn meminfo_bytes(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, rest) = line.split_once(':')?;
        if key.trim() != name {
            return None;
        }
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

/// The first `kubepods` directory under the hierarchy's root, with its usage
/// and limit; `None` when there is none.
pub fn kubepods(hierarchy: &MemoryHierarchy) -> Option<Kubepods> {
    let root = hierarchy.root();
    let name = KUBEPODS_DIRS.iter().find(|name| root.join(name).is_dir())?;
    let dir = root.join(name);
    let (usage_file, limit_file) = match hierarchy {
        MemoryHierarchy::V1 { .. } => ("memory.usage_in_bytes", "memory.limit_in_bytes"),
        MemoryHierarchy::V2 { .. } => ("memory.current", "memory.max"),
    };
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
    Some(Kubepods {
        cgroup: format!("/{name}"),
        cgroup_version: hierarchy.version(),
        usage_bytes: read(usage_file).and_then(|v| v.trim().parse().ok()),
        limit_bytes: read(limit_file).and_then(|v| limit(&v)),
    })
}

/// A limit file's value; `None` for no limit (`max`, or v1's huge value).
fn limit(text: &str) -> Option<u64> {
    text.trim().parse().ok().filter(|bytes| *bytes < UNLIMITED_BYTES)
}

/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=123` (and a `full` line).
pub fn psi(text: &str) -> Option<Psi> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let slot = match words.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        *slot = Some(psi_line(words)?);
    }
    Some(Psi { some: some?, full })
}

fn psi_line<'a>(words: impl Iterator<Item = &'a str>) -> Option<PsiLine> {
    let mut line = PsiLine { avg10: f64::NAN, avg60: f64::NAN, avg300: f64::NAN, total_us: 0 };
    let mut total = None;
    for word in words {
        let (key, value) = word.split_once('=')?;
        match key {
            "avg10" => line.avg10 = value.parse().ok()?,
            "avg60" => line.avg60 = value.parse().ok()?,
            "avg300" => line.avg300 = value.parse().ok()?,
            "total" => total = Some(value.parse().ok()?),
            _ => {}
        }
    }
    line.total_us = total?;
    [line.avg10, line.avg60, line.avg300].iter().all(|v| v.is_finite()).then_some(line)
}

/// No file (CONFIG_PSI off), or EOPNOTSUPP on read (CONFIG_PSI on, `psi=0`
/// or CONFIG_PSI_DEFAULT_DISABLED without `psi=1`).
fn psi_absent(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::EOPNOTSUPP)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const MEMINFO: &str = "MemTotal:       24684092 kB\nMemFree:        18352520 kB\nMemAvailable:   23649312 kB\nHugePages_Total:       0\n";
    const PRESSURE: &str = "some avg10=1.50 avg60=0.25 avg300=0.00 total=26942767\nfull avg10=0.75 avg60=0.00 avg300=0.00 total=16517863\n";

    fn read_at(proc_dir: &Path, hierarchy: Option<MemoryHierarchy>) -> NodeMemory {
        read(&Sources { proc_dir: proc_dir.to_owned(), hierarchy })
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oomtrace-node-memory-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn meminfo_values_are_bytes() {
        assert_eq!(meminfo_bytes(MEMINFO, "MemTotal"), Some(24_684_092 * 1024));
        assert_eq!(meminfo_bytes(MEMINFO, "MemAvailable"), Some(23_649_312 * 1024));
        assert_eq!(meminfo_bytes(MEMINFO, "HugePages_Total"), Some(0));
        assert_eq!(meminfo_bytes(MEMINFO, "Mem"), None);
        assert_eq!(meminfo_bytes("MemTotal: x kB\n", "MemTotal"), None);
        assert_eq!(meminfo_bytes("MemTotal: 1 MB\n", "MemTotal"), None);
    }

    #[test]
    fn psi_lines_parse_and_garbage_does_not() {
        let parsed = psi(PRESSURE).expect("parses");
        assert_eq!(parsed.some, PsiLine { avg10: 1.5, avg60: 0.25, avg300: 0.0, total_us: 26_942_767 });
        assert_eq!(parsed.full.map(|f| f.avg10), Some(0.75));
        assert!(psi("some avg10=1.00 avg60=0.00 avg300=0.00 total=5\n").is_some_and(|p| p.full.is_none()));
        assert_eq!(psi("full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n"), None, "no some line");
        assert_eq!(psi("some avg10=x avg60=0.00 avg300=0.00 total=1\n"), None);
        assert_eq!(psi("some avg10=1.00 avg60=0.00 total=1\n"), None, "avg300 missing");
        assert_eq!(psi(""), None);
    }

    #[test]
    fn limits_say_none_for_max_and_v1s_huge_value() {
        assert_eq!(limit("max\n"), None);
        assert_eq!(limit("9223372036854771712\n"), None);
        assert_eq!(limit("67108864\n"), Some(67_108_864));
    }

    #[test]
    fn a_full_picture_from_v1_and_v2_layouts() {
        let dir = scratch("full");
        write(&dir.join("proc/meminfo"), MEMINFO);
        write(&dir.join("proc/pressure/memory"), PRESSURE);
        write(&dir.join("proc/vmstat"), "nr_free_pages 1\noom_kill 42\n");
        write(&dir.join("v1/kubepods/memory.usage_in_bytes"), "774144\n");
        write(&dir.join("v1/kubepods/memory.limit_in_bytes"), "9223372036854771712\n");
        write(&dir.join("v2/kubepods.slice/memory.current"), "1048576\n");
        write(&dir.join("v2/kubepods.slice/memory.max"), "2147483648\n");
        let proc_dir = dir.join("proc");
        let v1 = read_at(&proc_dir, Some(MemoryHierarchy::V1 { root: dir.join("v1") }));
        assert_eq!(v1.mem_total_bytes, Some(24_684_092 * 1024));
        assert_eq!(v1.kernel_oom_kills, Some(42));
        assert_eq!(v1.psi.as_ref().map(|p| p.some.avg60), Some(0.25));
        assert_eq!(
            v1.kubepods,
            Some(Kubepods {
                cgroup: "/kubepods".to_owned(),
                cgroup_version: 1,
                usage_bytes: Some(774_144),
                limit_bytes: None
            })
        );
        assert!(v1.notes.is_empty(), "{:?}", v1.notes);
        let v2 = read_at(&proc_dir, Some(MemoryHierarchy::V2 { root: dir.join("v2") }));
        assert_eq!(
            v2.kubepods,
            Some(Kubepods {
                cgroup: "/kubepods.slice".to_owned(),
                cgroup_version: 2,
                usage_bytes: Some(1_048_576),
                limit_bytes: Some(2_147_483_648)
            })
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn missing_files_leave_fields_absent_with_notes() {
        let dir = scratch("missing");
        let picture = read_at(&dir, Some(MemoryHierarchy::V2 { root: dir.clone() }));
        assert_eq!(picture.mem_total_bytes, None);
        assert_eq!((picture.kubepods.is_none(), picture.psi.is_none(), picture.kernel_oom_kills), (true, true, None));
        assert!(picture.notes.iter().any(|n| n.starts_with("/proc/meminfo unreadable")), "{:?}", picture.notes);
        assert!(picture.notes.iter().any(|n| n == NO_KUBEPODS), "{:?}", picture.notes);
        assert!(picture.notes.iter().any(|n| n == NO_PSI), "{:?}", picture.notes);
        assert!(picture.notes.iter().any(|n| n.starts_with("/proc/vmstat unreadable")), "{:?}", picture.notes);
        let unmounted = read_at(&dir, None);
        assert!(unmounted.notes.iter().any(|n| n.starts_with(NO_KUBEPODS) && n.contains("no memory cgroup")));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
