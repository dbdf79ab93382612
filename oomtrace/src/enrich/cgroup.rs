//! cgroup ids -> cgroup paths, on v1 (the memory controller's hierarchy) and
//! v2 (the unified hierarchy).
//!
//! A memcg id is the kernfs id of the cgroup directory, which is also its
//! inode number. A container's cgroup (and often its pod's) disappears right
//! after the kill, so the kernel captures the victim's cgroup path at the kill
//! (ids and names of every level up to the root): it is named from that
//! alone, and each level it names is remembered for the OOMing memcg, one of
//! its ancestors. Other cgroups come from an index of the hierarchy, rebuilt
//! when an unknown id shows up; one whose directory is gone is named from its
//! parent's entry plus the name the kernel captured.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::escape::Escaped;
use oomtrace_event::{CapturedPath, Cgroup};

/// Minimum time between two rescans of the hierarchy.
const RESCAN_INTERVAL: Duration = Duration::from_millis(200);
/// Upper bound on directories indexed (a busy node has a few thousand).
const MAX_INDEXED: usize = 200_000;

/// Which cgroup hierarchy memcg ids refer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryHierarchy {
    /// cgroup v1: a hierarchy with the memory controller.
    V1 { root: PathBuf },
    /// cgroup v2: the unified hierarchy.
    V2 { root: PathBuf },
}

impl MemoryHierarchy {
    pub fn root(&self) -> &Path {
        match self {
            Self::V1 { root } | Self::V2 { root } => root,
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Self::V1 { .. } => 1,
            Self::V2 { .. } => 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error(
        "no memory cgroup hierarchy is mounted (no cgroup2 mount and no cgroup v1 mount with the \
         memory controller in /proc/self/mountinfo); cgroup paths will be missing from events"
    )]
    NoMemoryHierarchy,
}

/// Finds the hierarchy memcg ids live in, from `/proc/self/mountinfo`.
pub fn detect_hierarchy() -> Result<MemoryHierarchy, CgroupError> {
    let path = "/proc/self/mountinfo";
    let text =
        std::fs::read_to_string(path).map_err(|source| CgroupError::Read { path: path.to_owned(), cause: source })?;
    hierarchy_from_mountinfo(&text).ok_or(CgroupError::NoMemoryHierarchy)
}

/// A v1 memory hierarchy wins over v2 (on hybrid systems the unified mount has
/// no controllers); otherwise the cgroup2 mount.
pub fn hierarchy_from_mountinfo(text: &str) -> Option<MemoryHierarchy> {
    let mut v2 = None;
    for line in text.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let mountpoint = left.split_whitespace().nth(4);
        let mut right = right.split_whitespace();
        let fstype = right.next();
        let superoptions = right.nth(1).unwrap_or_default();
        match (fstype, mountpoint) {
            (Some("cgroup"), Some(mp)) if superoptions.split(',').any(|o| o == "memory") => {
                return Some(MemoryHierarchy::V1 { root: PathBuf::from(unescape(mp)) });
            }
            (Some("cgroup2"), Some(mp)) if v2.is_none() => {
                v2 = Some(MemoryHierarchy::V2 { root: PathBuf::from(unescape(mp)) });
            }
            _ => {}
        }
    }
    v2
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Resolves cgroup ids to paths relative to the hierarchy root ("/" for the root).
pub struct CgroupResolver {
    hierarchy: Option<MemoryHierarchy>,
    index: HashMap<u64, String>,
    last_scan: Option<Instant>,
    /// Paths that could not be determined at all.
    pub unresolved: u64,
}

impl CgroupResolver {
    pub fn new(hierarchy: Option<MemoryHierarchy>) -> Self {
        let mut resolver = Self { hierarchy, index: HashMap::new(), last_scan: None, unresolved: 0 };
        resolver.rescan();
        resolver
    }

    pub fn hierarchy(&self) -> Option<&MemoryHierarchy> {
        self.hierarchy.as_ref()
    }

    /// Rebuilds the index from the live hierarchy.
    pub fn rescan(&mut self) {
        let Some(root) = self.hierarchy.as_ref().map(|h| h.root().to_path_buf()) else { return };
        self.last_scan = Some(Instant::now());
        let mut index = HashMap::with_capacity(self.index.len().max(64));
        let mut stack = vec![(root.clone(), "/".to_owned())];
        while let Some((dir, rel)) = stack.pop() {
            if index.len() >= MAX_INDEXED {
                tracing::warn!(limit = MAX_INDEXED, "cgroup index is full; some cgroups are not indexed");
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            index.insert(meta.ino(), rel.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let child = if rel == "/" { format!("/{name}") } else { format!("{rel}/{name}") };
                    stack.push((entry.path(), child));
                }
            }
        }
        self.index = index;
    }

    /// The path of `cgroup` from the index alone: its own id, or its parent's
    /// plus the name the kernel captured (a container cgroup created since the
    /// last scan, or already removed).
    fn indexed_path(&self, cgroup: &Cgroup) -> Option<String> {
        if let Some(path) = self.index.get(&cgroup.id) {
            return Some(path.clone());
        }
        if cgroup.name.is_empty() || cgroup.parent_id == 0 {
            return None;
        }
        let parent = self.index.get(&cgroup.parent_id)?;
        Some(if parent == "/" { format!("/{}", cgroup.name) } else { format!("{parent}/{}", cgroup.name) })
    }

    /// What `lookup` finds in the index, after a rescan if it finds nothing
    /// (at most one rescan per RESCAN_INTERVAL).
    fn lookup_or_rescan(&mut self, lookup: impl Fn(&Self) -> Option<String>) -> Option<String> {
        let found = lookup(self);
        if found.is_some() || self.last_scan.is_some_and(|t| t.elapsed() < RESCAN_INTERVAL) {
            return found;
        }
        self.rescan();
        lookup(self)
    }

    /// The path a captured path spells, and whether its top had to be left
    /// out (`…/`). Remembers every level it names. No hierarchy I/O unless
    /// the capture stopped below the root (deeper than the kernel follows).
    fn captured_path(&mut self, captured: &CapturedPath) -> (String, bool) {
        let (below_top, top) = match captured.uncaptured_id {
            // The last level is the root itself.
            None => (&captured.levels[..captured.levels.len().saturating_sub(1)], Some("/".to_owned())),
            Some(id) => (&captured.levels[..], self.lookup_or_rescan(|this| this.index.get(&id).cloned())),
        };
        let truncated = top.is_none();
        let mut path = top.unwrap_or_else(|| "…".to_owned());
        if let (None, Some(&(root_id, _))) = (captured.uncaptured_id, captured.levels.last()) {
            self.index.entry(root_id).or_insert_with(|| path.clone());
        }
        for (id, name) in below_top.iter().rev() {
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(name);
            if !truncated {
                self.index.entry(*id).or_insert_with(|| path.clone());
            }
        }
        (path, truncated)
    }

    /// Fills `cgroup.path`: from what the kernel captured, else from the
    /// index (after a rescan, at most one per RESCAN_INTERVAL). Counts the
    /// cgroups left without a path.
    pub fn resolve(&mut self, cgroup: &mut Cgroup) {
        if cgroup.path.is_some() {
            return;
        }
        if let Some(captured) = &cgroup.captured {
            let (path, truncated) = self.captured_path(captured);
            if truncated {
                tracing::debug!(cgroup_id = cgroup.id, path = %Escaped(&path), "cgroup path cut in the kernel; top not found");
            }
            cgroup.path = Some(path);
            cgroup.path_truncated = truncated;
            return;
        }
        let path = self.lookup_or_rescan(|this| this.indexed_path(cgroup));
        match &path {
            // Remember it: the group-kill siblings of this event name it too.
            Some(found) => {
                self.index.entry(cgroup.id).or_insert_with(|| found.clone());
            }
            None => {
                self.unresolved += 1;
                tracing::debug!(cgroup_id = cgroup.id, name = %Escaped(&cgroup.name), "cgroup path unresolved");
            }
        }
        cgroup.path = path;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 31 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
";
    const UNIFIED: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn hybrid_systems_use_the_v1_memory_hierarchy() {
        assert_eq!(
            hierarchy_from_mountinfo(HYBRID),
            Some(MemoryHierarchy::V1 { root: PathBuf::from("/sys/fs/cgroup/memory") })
        );
    }

    #[test]
    fn unified_systems_use_cgroup2() {
        assert_eq!(
            hierarchy_from_mountinfo(UNIFIED),
            Some(MemoryHierarchy::V2 { root: PathBuf::from("/sys/fs/cgroup") })
        );
        assert_eq!(hierarchy_from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn a_vanished_cgroup_is_named_from_its_parent() {
        let dir = std::env::temp_dir().join(format!("oomtrace-cgroup-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kubepods/pod1")).expect("mkdir");
        let mut resolver = CgroupResolver::new(Some(MemoryHierarchy::V2 { root: dir.clone() }));
        let pod_id = std::fs::metadata(dir.join("kubepods/pod1")).expect("stat").ino();
        let mut pod = Cgroup { id: pod_id, ..Cgroup::default() };
        resolver.resolve(&mut pod);
        assert_eq!(pod.path.as_deref(), Some("/kubepods/pod1"));
        // A container cgroup that is already gone: id unknown, parent known.
        let mut gone = Cgroup { id: u64::MAX - 1, parent_id: pod_id, name: "ctr".into(), ..Cgroup::default() };
        resolver.resolve(&mut gone);
        assert_eq!(gone.path.as_deref(), Some("/kubepods/pod1/ctr"));
        let mut unknown = Cgroup { id: u64::MAX - 2, parent_id: u64::MAX - 3, name: "x".into(), ..Cgroup::default() };
        resolver.resolve(&mut unknown);
        assert_eq!(unknown.path, None);
        assert_eq!(resolver.unresolved, 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    fn captured(levels: &[(u64, &str)], uncaptured_id: Option<u64>) -> Cgroup {
        let levels: Vec<(u64, String)> = levels.iter().map(|&(id, name)| (id, name.to_owned())).collect();
        Cgroup { id: levels[0].0, captured: Some(CapturedPath { levels, uncaptured_id }), ..Cgroup::default() }
    }

    #[test]
    fn a_captured_path_names_a_vanished_cgroup_and_its_ancestors() {
        // No hierarchy at all: the capture alone names the cgroup ...
        let mut resolver = CgroupResolver::new(None);
        let mut victim = captured(&[(30, "ctr"), (20, "pod1"), (10, "kubepods"), (1, "")], None);
        resolver.resolve(&mut victim);
        assert_eq!((victim.path.as_deref(), victim.path_truncated), (Some("/kubepods/pod1/ctr"), false));
        // ... and the OOMing memcg, one of its ancestors, by id.
        let mut oom = Cgroup { id: 20, name: "pod1".into(), parent_id: 10, ..Cgroup::default() };
        resolver.resolve(&mut oom);
        assert_eq!(oom.path.as_deref(), Some("/kubepods/pod1"));
        let mut root = captured(&[(1, "")], None);
        resolver.resolve(&mut root);
        assert_eq!(root.path.as_deref(), Some("/"));
        assert_eq!(resolver.unresolved, 0);
    }

    #[test]
    fn a_capture_cut_below_the_root_is_completed_from_the_index_or_marked() {
        let dir = std::env::temp_dir().join(format!("oomtrace-cut-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("deep")).expect("mkdir");
        let deep_id = std::fs::metadata(dir.join("deep")).expect("stat").ino();
        let mut resolver = CgroupResolver::new(Some(MemoryHierarchy::V2 { root: dir.clone() }));
        let mut known_top = captured(&[(7, "c"), (6, "b")], Some(deep_id));
        resolver.resolve(&mut known_top);
        assert_eq!((known_top.path.as_deref(), known_top.path_truncated), (Some("/deep/b/c"), false));
        let mut unknown_top = captured(&[(9, "y"), (8, "x")], Some(u64::MAX - 5));
        resolver.resolve(&mut unknown_top);
        assert_eq!((unknown_top.path.as_deref(), unknown_top.path_truncated), (Some("…/x/y"), true));
        let json = serde_json::to_value(&unknown_top).expect("serializes");
        assert_eq!(json, serde_json::json!({"id": 9, "path": "…/x/y", "path_truncated": true}));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
