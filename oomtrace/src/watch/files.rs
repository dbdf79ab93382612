//! The cgroupfs files the watcher reads, v1 and v2, each parsed into numbers.

use std::{fs::File, io, os::unix::fs::FileExt as _, path::Path};

use oomtrace_event::Unreclaimable;

/// A v1 limit at or above this is "no limit" (the kernel writes
/// PAGE_COUNTER_MAX × page size, 0x7ffffffffffff000 on 64-bit).
const V1_UNLIMITED: u64 = 1 << 62;

/// Which set of files a cgroup has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    fn usage_file(self) -> &'static str {
        match self {
            Self::V1 => "memory.usage_in_bytes",
            Self::V2 => "memory.current",
        }
    }

    fn limit_file(self) -> &'static str {
        match self {
            Self::V1 => "memory.limit_in_bytes",
            Self::V2 => "memory.max",
        }
    }

    fn hits_file(self) -> &'static str {
        match self {
            Self::V1 => "memory.failcnt",
            Self::V2 => "memory.events",
        }
    }
}

/// Reads one small cgroupfs file.
fn read(dir: &Path, file: &str) -> io::Result<String> {
    std::fs::read_to_string(dir.join(file))
}

fn number(text: &str, what: &str) -> io::Result<u64> {
    text.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {:?}", text.trim())))
}

/// Charged memory, bytes.
pub fn usage(dir: &Path, version: Version) -> io::Result<u64> {
    number(&read(dir, version.usage_file())?, version.usage_file())
}

/// One cgroup's usage file kept open: a reading is one `pread(2)` from
/// offset 0 (the kernel formats the value anew), where [`usage`] walks the
/// path, opens, sizes and closes the file each time (most of the watcher's
/// CPU while a storm of cgroups is read every `fast_interval`).
pub struct UsageFile {
    file: File,
    version: Version,
}

impl UsageFile {
    pub fn open(dir: &Path, version: Version) -> io::Result<Self> {
        Ok(Self { file: File::open(dir.join(version.usage_file()))?, version })
    }

    /// Charged memory, bytes.
    pub fn read(&self) -> io::Result<u64> {
        // A u64 in decimal and a newline.
        let mut buffer = [0u8; 24];
        let length = self.file.read_at(&mut buffer, 0)?;
        let what = self.version.usage_file();
        let text = std::str::from_utf8(&buffer[..length])
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: not text")))?;
        number(text, what)
    }
}

/// The limit, bytes; `None`: no limit.
pub fn limit(dir: &Path, version: Version) -> io::Result<Option<u64>> {
    let text = read(dir, version.limit_file())?;
    match version {
        Version::V2 if text.trim() == "max" => Ok(None),
        Version::V2 => number(&text, "memory.max").map(Some),
        Version::V1 => number(&text, "memory.limit_in_bytes").map(|bytes| (bytes < V1_UNLIMITED).then_some(bytes)),
    }
}

/// How often the limit was hit: v2 `memory.events` `max`, v1 `memory.failcnt`.
pub fn limit_hits(dir: &Path, version: Version) -> io::Result<u64> {
    let text = read(dir, version.hits_file())?;
    match version {
        Version::V1 => number(&text, "memory.failcnt"),
        Version::V2 => Ok(keyed(&text, "max").unwrap_or(0)),
    }
}

/// The memory reclaim cannot give back without swap, from `memory.stat`.
pub fn unreclaimable(dir: &Path, version: Version) -> io::Result<Unreclaimable> {
    let stat = read(dir, "memory.stat")?;
    Ok(match version {
        Version::V2 => unreclaimable_v2(&stat),
        Version::V1 => {
            // v1 keeps kernel memory in its own counter (absent without kmem accounting).
            let kernel = read(dir, "memory.kmem.usage_in_bytes").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
            unreclaimable_v1(&stat, kernel)
        }
    })
}

/// `key value` from a flat-keyed cgroupfs file.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v2 `memory.stat`: anon, shmem, kernel (5.18+; before it, its parts:
/// kernel_stack, pagetables, percpu, sock, slab_unreclaimable), file_dirty,
/// file_writeback.
pub fn unreclaimable_v2(stat: &str) -> Unreclaimable {
    let get = |key| keyed(stat, key).unwrap_or(0);
    let kernel = keyed(stat, "kernel").unwrap_or_else(|| {
        ["kernel_stack", "pagetables", "percpu", "sock", "slab_unreclaimable"].iter().map(|k| get(k)).sum()
    });
    Unreclaimable {
        anon_bytes: get("anon"),
        shmem_bytes: get("shmem"),
        kernel_bytes: kernel,
        dirty_bytes: get("file_dirty") + get("file_writeback"),
    }
}

/// v1 `memory.stat` (hierarchical `total_*`): rss (anonymous, without shmem),
/// shmem, dirty, writeback; kernel memory from `memory.kmem.usage_in_bytes`.
pub fn unreclaimable_v1(stat: &str, kernel_bytes: u64) -> Unreclaimable {
    let get = |key| keyed(stat, key).unwrap_or(0);
    Unreclaimable {
        anon_bytes: get("total_rss"),
        shmem_bytes: get("total_shmem"),
        kernel_bytes,
        dirty_bytes: get("total_dirty") + get("total_writeback"),
    }
}

/// Whether a failed read means the cgroup itself went away: its directory is
/// gone, or (ENODEV) kernfs already deactivated it while `rmdir` runs — the
/// directory may still be listed for a moment then, on older kernels
/// (seen on 6.1.0-47 in the VM matrix).
pub(super) fn was_removed(error: &io::Error, dir: &Path) -> bool {
    error.raw_os_error() == Some(libc::ENODEV) || (error.kind() == io::ErrorKind::NotFound && !dir.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_stat_before_5_18_sums_the_kernel_parts() {
        let stat = "anon 100\nfile 900\nkernel_stack 1\npagetables 2\npercpu 3\nsock 4\nshmem 50\nfile_dirty 7\n\
                    file_writeback 8\nslab_unreclaimable 5\nslab_reclaimable 1000\n";
        let parts = unreclaimable_v2(stat);
        assert_eq!(parts, Unreclaimable { anon_bytes: 100, shmem_bytes: 50, kernel_bytes: 15, dirty_bytes: 15 });
        assert_eq!(parts.total(), 180);
        let with_kernel = unreclaimable_v2(&format!("kernel 40\n{stat}"));
        assert_eq!(with_kernel.kernel_bytes, 40);
    }

    #[test]
    fn v1_stat_reads_the_hierarchical_totals() {
        let stat = "rss 1\nshmem 2\ntotal_rss 100\ntotal_shmem 20\ntotal_dirty 3\ntotal_writeback 4\ntotal_cache 500\n";
        assert_eq!(
            unreclaimable_v1(stat, 9),
            Unreclaimable { anon_bytes: 100, shmem_bytes: 20, kernel_bytes: 9, dirty_bytes: 7 }
        );
    }

    #[test]
    fn a_deactivated_or_vanished_cgroup_counts_as_removed() {
        let gone = Path::new("/nonexistent/oomtrace-test-cgroup");
        assert!(was_removed(&io::Error::from_raw_os_error(libc::ENODEV), Path::new("/")));
        assert!(was_removed(&io::Error::from(io::ErrorKind::NotFound), gone));
        // A file missing from a cgroup that still exists is not a removal.
        assert!(!was_removed(&io::Error::from(io::ErrorKind::NotFound), Path::new("/")));
        assert!(!was_removed(&io::Error::from_raw_os_error(libc::EACCES), gone));
    }

    #[test]
    fn keyed_files_give_their_numbers() {
        let events = "low 0\nhigh 3\nmax 12\noom 1\noom_kill 1\n";
        assert_eq!(keyed(events, "max"), Some(12));
        assert_eq!(keyed(events, "oom_group_kill"), None);
    }
}
