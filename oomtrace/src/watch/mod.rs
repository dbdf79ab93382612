//! The watcher of issue "warn before the kill": every memory cgroup with a
//! limit, and the node, read from cgroupfs and /proc (no capability needed
//! beyond reading them), cheaply and adaptively:
//!
//! - the hierarchy is scanned every `scan_interval` for cgroups with a limit
//!   (their limit is read then); cgroups that went away are reported once;
//! - each watched cgroup's usage (`memory.current`, v1
//!   `memory.usage_in_bytes`) is read every `slow_interval` while it is
//!   steady and far from its limit, every `fast_interval` while it moves or
//!   is past `near_fraction` of it;
//! - `memory.stat` (which makes the kernel flush its statistics) only when
//!   the usage moved by `moved_bytes` since the last time, or is near the
//!   limit; `memory.events` / `memory.failcnt` only near the limit.
//!
//! - where the kernel side counts memcg limit reclaim (`probe::reclaim`),
//!   its count for each cgroup near its limit, with each reading there (a
//!   map lookup).
//!
//! What the numbers mean is decided in `forecast`.

pub mod files;
pub mod node;

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use oomtrace_event::{Reclaim, Unreclaimable};

use crate::{
    enrich::cgroup::MemoryHierarchy, escape::Escaped, kernel::clock::monotonic_now, probe::reclaim::ReclaimCounts,
};
use files::Version;
use node::NodeMemory;

/// Directories looked at per scan, at most (a busy node has a few thousand cgroups).
const MAX_SCANNED: usize = 20_000;
/// Nesting followed, at most (kubepods/burstable/pod/container is 4).
const MAX_DEPTH: usize = 12;
/// At most this many usage files are kept open at once (one descriptor
/// each, well inside the default limit of 1024 open files).
const MAX_OPEN_USAGE_FILES: usize = 256;
/// How often /proc/meminfo is read: the node's memory moves in minutes, not
/// in the tenths of a second a container's limit can come in.
const NODE_INTERVAL: Duration = Duration::from_secs(1);
/// The limits of cgroups already watched are read again every this many
/// scans (a limit changes rarely: an in-place resize); a new cgroup's at once.
const LIMIT_REREAD_SCANS: u64 = 5;

/// How the watcher polls.
#[derive(Clone, Copy, Debug)]
pub struct WatchOptions {
    pub scan_interval: Duration,
    pub fast_interval: Duration,
    pub slow_interval: Duration,
    /// Past this share of its limit a cgroup is read every `fast_interval`
    /// and its `memory.stat` every time.
    pub near_fraction: f64,
    /// A usage change of this much since the last `memory.stat` read makes
    /// the next reading read it again; between two readings, it makes the
    /// cgroup "moving" (read every `fast_interval` for `moving_for`).
    pub moved_bytes: u64,
    /// How long a cgroup that moved stays on the fast interval: sampling a
    /// periodic workload slowly would alias it into a fake trend.
    pub moving_for: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            scan_interval: Duration::from_secs(2),
            fast_interval: Duration::from_millis(100),
            slow_interval: Duration::from_secs(2),
            near_fraction: 0.5,
            moved_bytes: 256 * 1024,
            moving_for: Duration::from_secs(10),
        }
    }
}

/// What is watched: a memory cgroup (its path from the hierarchy's root,
/// `/kubepods/burstable/pod…/…`), or the node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watched {
    Cgroup(String),
    Node,
}

impl Watched {
    /// The cgroup's path; `None` for the node.
    pub fn cgroup(&self) -> Option<&str> {
        match self {
            Self::Cgroup(path) => Some(path),
            Self::Node => None,
        }
    }
}

/// One reading of a watched cgroup (or of the node).
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub watched: Watched,
    /// CLOCK_MONOTONIC, the clock of the kills' `ktime_ns`.
    pub at_ns: u64,
    pub usage_bytes: u64,
    pub limit_bytes: u64,
    /// The unreclaimable memory's parts as last read (`memory.stat`); at the
    /// node, MemTotal − MemAvailable as `anon_bytes`.
    pub unreclaimable: Unreclaimable,
    /// Limit hits so far (`memory.events` max, `memory.failcnt`); 0 where not read.
    pub limit_hits: u64,
    /// Limit reclaim so far in the cgroup or below; `None` without the
    /// kernel's reclaim counter, and at the node.
    pub reclaim: Option<Reclaim>,
}

/// What a poll found.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    Reading(Reading),
    /// The cgroup went away (or lost its limit): forget it.
    Gone(Watched),
}

/// The watcher's counters (`oomtrace check`, the daemon's log, the benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    pub watched: usize,
    pub scans: u64,
    pub usage_reads: u64,
    pub stat_reads: u64,
    /// Files that could not be read for another reason than the cgroup being gone.
    pub read_errors: u64,
}

struct Cgroup {
    dir: PathBuf,
    limit_bytes: u64,
    next_due: Instant,
    last_usage: u64,
    /// When the usage last changed by `moved_bytes` between two readings.
    last_moved: Option<Instant>,
    /// The usage when `memory.stat` was last read, and what it said.
    stat_usage: Option<u64>,
    unreclaimable: Unreclaimable,
    limit_hits: u64,
    /// The kernfs id of the cgroup (its directory's inode number), by which
    /// the kernel side counts reclaim; 0 when unknown.
    id: u64,
    reclaim: Reclaim,
    /// A read error was logged already (once per cgroup).
    complained: bool,
    /// Its usage file, kept open while it is read every `fast_interval`.
    usage_file: Option<files::UsageFile>,
}

pub struct Watcher {
    root: PathBuf,
    version: Version,
    options: WatchOptions,
    cgroups: HashMap<String, Cgroup>,
    next_scan: Instant,
    next_node: Instant,
    stats: WatchStats,
    reclaim: Option<ReclaimCounts>,
}

impl Watcher {
    pub fn new(hierarchy: &MemoryHierarchy, options: WatchOptions) -> Self {
        let version = if hierarchy.version() == 1 { Version::V1 } else { Version::V2 };
        let now = Instant::now();
        Self {
            root: hierarchy.root().to_owned(),
            version,
            options,
            cgroups: HashMap::new(),
            next_scan: now,
            next_node: now,
            stats: WatchStats::default(),
            reclaim: None,
        }
    }

    /// Reads the kernel's limit reclaim counts with every reading.
    pub fn count_reclaim(&mut self, counts: ReclaimCounts) {
        self.reclaim = Some(counts);
    }

    pub fn stats(&self) -> WatchStats {
        WatchStats { watched: self.cgroups.len(), ..self.stats }
    }

    /// When the next reading is due.
    pub fn next_due(&self) -> Instant {
        self.cgroups
            .values()
            .map(|c| c.next_due)
            .chain([self.next_scan, self.next_node])
            .min()
            .unwrap_or(self.next_scan)
    }

    /// Scans if due and reads every cgroup (and the node) whose turn it is.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<WatchEvent>) {
        if now >= self.next_scan {
            self.scan(now, out);
            self.next_scan = now + self.options.scan_interval;
        }
        if now >= self.next_node {
            self.next_node = now + NODE_INTERVAL;
            if let Some(reading) = read_node() {
                out.push(WatchEvent::Reading(reading));
            }
        }
        let mut gone = Vec::new();
        let mut open_files = self.cgroups.values().filter(|c| c.usage_file.is_some()).count();
        for (path, cgroup) in &mut self.cgroups {
            if now < cgroup.next_due {
                continue;
            }
            match read_cgroup(cgroup, self.version, &self.options, self.reclaim.as_ref(), &mut self.stats, now) {
                Ok(reading) => {
                    let interval = interval(cgroup, &self.options, now);
                    cgroup.next_due = now + interval;
                    if interval < self.options.slow_interval {
                        if cgroup.usage_file.is_none() && open_files < MAX_OPEN_USAGE_FILES {
                            // (Not opened: read by its path next time, which reports the error.)
                            cgroup.usage_file = files::UsageFile::open(&cgroup.dir, self.version).ok();
                            open_files += usize::from(cgroup.usage_file.is_some());
                        }
                    } else if cgroup.usage_file.take().is_some() {
                        open_files -= 1;
                    }
                    out.push(WatchEvent::Reading(Reading { watched: Watched::Cgroup(path.clone()), ..reading }));
                }
                Err(error) if files::was_removed(&error, &cgroup.dir) => gone.push(path.clone()),
                Err(error) => {
                    self.stats.read_errors += 1;
                    cgroup.next_due = now + self.options.scan_interval;
                    if !std::mem::replace(&mut cgroup.complained, true) {
                        tracing::warn!(cgroup = %Escaped(path), %error, "cannot read a watched memory cgroup; it is not predicted");
                    }
                }
            }
        }
        for path in gone {
            self.cgroups.remove(&path);
            out.push(WatchEvent::Gone(Watched::Cgroup(path)));
        }
    }

    /// Finds the cgroups with a limit; forgets those gone or without one now.
    fn scan(&mut self, now: Instant, out: &mut Vec<WatchEvent>) {
        let reread_limits = self.stats.scans.is_multiple_of(LIMIT_REREAD_SCANS);
        self.stats.scans += 1;
        let mut found = HashMap::new();
        let mut stack = vec![(self.root.clone(), 0)];
        let mut seen = 0;
        while let Some((dir, depth)) = stack.pop() {
            seen += 1;
            if seen > MAX_SCANNED {
                tracing::warn!(
                    max = MAX_SCANNED,
                    "memory cgroup hierarchy larger than the watcher scans; the rest is not watched"
                );
                break;
            }
            // The root has no limit file (v2) or no meaningful limit (v1): the node stands for it.
            if depth > 0 {
                let path = relative(&self.root, &dir);
                let known = self.cgroups.get(&path).map(|c| c.limit_bytes);
                let limit = match known {
                    Some(limit) if !reread_limits => Ok(Some(limit)),
                    _ => files::limit(&dir, self.version),
                };
                if let Ok(Some(limit)) = limit {
                    found.insert(path, (dir.clone(), limit));
                }
            }
            if depth < MAX_DEPTH && may_have_children(&dir) {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| (e.path(), depth + 1)),
                );
            }
        }
        let before: Vec<String> = self.cgroups.keys().cloned().collect();
        for path in before {
            if !found.contains_key(&path) {
                self.cgroups.remove(&path);
                out.push(WatchEvent::Gone(Watched::Cgroup(path)));
            }
        }
        for (path, (dir, limit_bytes)) in found {
            self.cgroups.entry(path).and_modify(|c| c.limit_bytes = limit_bytes).or_insert_with(|| Cgroup {
                id: std::fs::metadata(&dir).map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m)),
                reclaim: Reclaim::default(),
                dir,
                limit_bytes,
                next_due: now,
                last_usage: 0,
                last_moved: None,
                stat_usage: None,
                unreclaimable: Unreclaimable::default(),
                limit_hits: 0,
                complained: false,
                usage_file: None,
            });
        }
    }
}

/// Whether the scan lists `dir` for child cgroups. cgroupfs (kernfs, like
/// other Unix filesystems) counts a directory's links as 2 plus its
/// subdirectories, so a leaf cgroup (a container's, most of a node's) shows
/// 2 and its listing, its 30–40 control files, is skipped: listing was the
/// largest part of the watcher's CPU beside 250 cgroups. Anything else
/// (more links, a failed `stat`, a filesystem that reports 1 for
/// directories) is listed.
fn may_have_children(dir: &Path) -> bool {
    links(dir).map_or(true, |links| links != 2)
}

/// A directory's link count.
fn links(dir: &Path) -> io::Result<u64> {
    std::fs::metadata(dir).map(|m| std::os::unix::fs::MetadataExt::nlink(&m))
}

/// `/a/b` for ROOT/a/b.
fn relative(root: &Path, dir: &Path) -> String {
    format!("/{}", dir.strip_prefix(root).unwrap_or(dir).display())
}

fn is_near(usage: u64, limit: u64, options: &WatchOptions) -> bool {
    usage as f64 >= limit as f64 * options.near_fraction
}

/// Fast while the cgroup moves (and for `moving_for` after) or is near its
/// limit, slow otherwise.
fn interval(cgroup: &Cgroup, options: &WatchOptions, now: Instant) -> Duration {
    let moving = cgroup.last_moved.is_some_and(|at| now.duration_since(at) < options.moving_for);
    if moving || is_near(cgroup.last_usage, cgroup.limit_bytes, options) {
        options.fast_interval
    } else {
        options.slow_interval
    }
}

fn read_cgroup(
    cgroup: &mut Cgroup,
    version: Version,
    options: &WatchOptions,
    counts: Option<&ReclaimCounts>,
    stats: &mut WatchStats,
    now: Instant,
) -> io::Result<Reading> {
    let usage = match &cgroup.usage_file {
        Some(file) => file.read(),
        None => files::usage(&cgroup.dir, version),
    };
    let usage = usage.inspect_err(|_| cgroup.usage_file = None)?;
    stats.usage_reads += 1;
    if cgroup.stat_usage.is_none() || usage.abs_diff(cgroup.last_usage) >= options.moved_bytes {
        cgroup.last_moved = Some(now);
    }
    let moved = cgroup.stat_usage.is_none_or(|at| at.abs_diff(usage) >= options.moved_bytes);
    let near = is_near(usage, cgroup.limit_bytes, options);
    // The kernel's reclaim count (one bpf(2) lookup), like the limit hits,
    // only near the limit, where limit reclaim runs: far from it, the last
    // count read stands.
    let counts = counts.filter(|_| cgroup.id != 0);
    if near && let Some(counts) = counts {
        match counts.get(cgroup.id) {
            Ok(reclaim) => cgroup.reclaim = reclaim,
            // Counted and logged as any unreadable file is; the last count stands.
            Err(error) => return Err(io::Error::other(format!("reading the kernel's reclaim count: {error}"))),
        }
    }
    let reclaim = counts.map(|_| cgroup.reclaim);
    if moved || near {
        cgroup.unreclaimable = files::unreclaimable(&cgroup.dir, version)?;
        cgroup.stat_usage = Some(usage);
        stats.stat_reads += 1;
    }
    if near {
        // A missing events file (old kernels) leaves the count at 0.
        match files::limit_hits(&cgroup.dir, version) {
            Ok(hits) => cgroup.limit_hits = hits,
            Err(error) if error.kind() == io::ErrorKind::NotFound && cgroup.dir.exists() => {}
            Err(error) => return Err(error),
        }
    }
    cgroup.last_usage = usage;
    Ok(Reading {
        watched: Watched::Node,
        at_ns: monotonic_now().as_nanos() as u64,
        usage_bytes: usage,
        limit_bytes: cgroup.limit_bytes,
        unreclaimable: cgroup.unreclaimable,
        limit_hits: cgroup.limit_hits,
        reclaim,
    })
}

fn read_node() -> Option<Reading> {
    let memory = NodeMemory::read().ok()?;
    Some(Reading {
        watched: Watched::Node,
        at_ns: monotonic_now().as_nanos() as u64,
        usage_bytes: memory.used_bytes(),
        limit_bytes: memory.total_bytes,
        unreclaimable: Unreclaimable { anon_bytes: memory.used_bytes(), ..Unreclaimable::default() },
        limit_hits: 0,
        reclaim: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up v2 hierarchy: `root/<name>` with the given files.
    fn tree(name: &str, files: &[(&str, &str, &str)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("oomtrace-watch-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (dir, file, text) in files {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            if text.is_empty() {
                // An unreadable "file": a directory in its place (EISDIR even for root).
                std::fs::create_dir_all(dir.join(file)).expect("mkdir");
            } else {
                std::fs::write(dir.join(file), text).expect("write");
            }
        }
        root
    }

    fn poll(watcher: &mut Watcher) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        watcher.poll(Instant::now(), &mut out);
        out
    }

    fn readings_of<'a>(events: &'a [WatchEvent], path: &str) -> Vec<&'a Reading> {
        events
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Reading(r) if r.watched == Watched::Cgroup(path.to_owned()) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Old kernels have no memory.events: the count stays 0, the cgroup is read.
    #[test]
    fn a_cgroup_without_memory_events_is_read_all_the_same() {
        let root = tree(
            "no-events",
            &[
                ("a", "memory.max", "1000\n"),
                ("a", "memory.current", "900\n"),
                ("a", "memory.stat", "anon 800\nshmem 10\nfile_dirty 0\nfile_writeback 0\n"),
                ("b", "memory.max", "max\n"),
                ("b", "memory.current", "5\n"),
            ],
        );
        let mut watcher = Watcher::new(&MemoryHierarchy::V2 { root: root.clone() }, WatchOptions::default());
        let events = poll(&mut watcher);
        let a = readings_of(&events, "/a");
        assert_eq!(a.len(), 1, "{events:?}");
        assert_eq!((a[0].usage_bytes, a[0].limit_bytes, a[0].limit_hits), (900, 1000, 0));
        assert_eq!(a[0].unreclaimable.anon_bytes, 800);
        assert!(readings_of(&events, "/b").is_empty(), "no limit, not watched");
        assert_eq!(watcher.stats().read_errors, 0);
        let _ = std::fs::remove_dir_all(root);
    }

    /// An unreadable file is counted and the cgroup left out; nothing panics.
    #[test]
    fn an_unreadable_file_is_counted_not_fatal() {
        let root = tree(
            "unreadable",
            &[("c", "memory.max", "1000\n"), ("c", "memory.current", "900\n"), ("c", "memory.stat", "")],
        );
        let mut watcher = Watcher::new(&MemoryHierarchy::V2 { root: root.clone() }, WatchOptions::default());
        let events = poll(&mut watcher);
        assert!(readings_of(&events, "/c").is_empty(), "{events:?}");
        assert_eq!(watcher.stats().read_errors, 1);
        assert_eq!(watcher.stats().watched, 1, "kept, to be read again");
        let _ = std::fs::remove_dir_all(root);
    }

    /// A cgroup that goes away is reported once and forgotten.
    #[test]
    fn a_removed_cgroup_is_gone_once() {
        let root = tree(
            "removed",
            &[("d", "memory.max", "1000\n"), ("d", "memory.current", "10\n"), ("d", "memory.stat", "anon 1\n")],
        );
        let options = WatchOptions { scan_interval: Duration::ZERO, ..WatchOptions::default() };
        let mut watcher = Watcher::new(&MemoryHierarchy::V2 { root: root.clone() }, options);
        assert_eq!(readings_of(&poll(&mut watcher), "/d").len(), 1);
        std::fs::remove_dir_all(root.join("d")).expect("rm");
        let events = poll(&mut watcher);
        assert_eq!(events.iter().filter(|e| **e == WatchEvent::Gone(Watched::Cgroup("/d".to_owned()))).count(), 1);
        assert_eq!(watcher.stats().watched, 0);
        assert!(poll(&mut watcher).iter().all(|e| !matches!(e, WatchEvent::Gone(_))));
        let _ = std::fs::remove_dir_all(root);
    }

    /// Child cgroups are found below a parent; a leaf is not listed.
    #[test]
    fn nested_cgroups_are_found_and_leaves_are_not_listed() {
        let limited =
            |dir| [(dir, "memory.max", "1000\n"), (dir, "memory.current", "10\n"), (dir, "memory.stat", "anon 10\n")];
        let files: Vec<_> = ["p", "p/c1", "p/c2", "p/c2/g", "leaf"].into_iter().flat_map(limited).collect();
        let root = tree("nested", &files);
        let mut watcher = Watcher::new(&MemoryHierarchy::V2 { root: root.clone() }, WatchOptions::default());
        let events = poll(&mut watcher);
        for path in ["/p", "/p/c1", "/p/c2", "/p/c2/g", "/leaf"] {
            assert_eq!(readings_of(&events, path).len(), 1, "{path}: {events:?}");
        }
        assert!(may_have_children(&root.join("p")));
        // (btrfs, for one, reports 1 link for every directory: all are listed there.)
        match links(&root) {
            Ok(links) if links > 2 => {
                assert!(!may_have_children(&root.join("leaf")), "a directory without subdirectories has 2 links")
            }
            links => eprintln!("not checked: {} does not count subdirectories in links ({links:?})", root.display()),
        }
        let _ = std::fs::remove_dir_all(root);
    }

    /// The fact the scan relies on, on the kernel's own cgroupfs: a cgroup's
    /// directory has 2 links plus one per child cgroup.
    #[test]
    fn cgroupfs_counts_a_cgroups_children_in_its_links() {
        let Ok(hierarchy) = crate::enrich::cgroup::detect_hierarchy() else {
            eprintln!("skipped: no memory cgroup hierarchy is mounted");
            return;
        };
        let parent = hierarchy.root().join(format!("oomtrace-links-{}", std::process::id()));
        if let Err(error) = std::fs::create_dir(&parent) {
            eprintln!("skipped: cannot create a cgroup under {} ({error}); run as root", hierarchy.root().display());
            return;
        }
        let child = parent.join("child");
        let created = std::fs::create_dir(&child);
        let (parent_listed, child_listed) = (may_have_children(&parent), may_have_children(&child));
        let _ = std::fs::remove_dir(&child);
        let _ = std::fs::remove_dir(&parent);
        created.expect("a child cgroup");
        assert!(parent_listed, "a cgroup with a child is listed");
        assert!(!child_listed, "a leaf cgroup has 2 links and is not listed");
    }
}
