//! Memory cgroups for the bench. Every hog runs inside a cgroup whose memory
//! limit the bench set, so only the hog is OOM-killed, never the host.

use std::{
    fs,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

/// What each hog asks for: far more than its cgroup's limit.
pub const HOG_ALLOC: &str = "256M";

/// The memory cgroup hierarchy of this machine.
#[derive(Clone, Debug)]
pub enum Hierarchy {
    /// cgroup v1 with the memory controller mounted here.
    V1(PathBuf),
    /// cgroup v2 (unified) mounted here.
    V2(PathBuf),
}

impl Hierarchy {
    /// A v1 memory controller wins over a v2 mount (hybrid hosts mount an
    /// empty cgroup2 at /sys/fs/cgroup/unified).
    pub fn detect() -> Result<Hierarchy> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        parse_mountinfo(&mountinfo)
            .context("no cgroup v1 memory controller and no cgroup2 file system in /proc/self/mountinfo")
    }

    pub fn root(&self) -> &Path {
        match self {
            Hierarchy::V1(root) | Hierarchy::V2(root) => root,
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Hierarchy::V1(_) => 1,
            Hierarchy::V2(_) => 2,
        }
    }

    /// The file a task writes its pid into to join a cgroup.
    fn procs_file(&self) -> &'static str {
        match self {
            Hierarchy::V1(_) => "tasks",
            Hierarchy::V2(_) => "cgroup.procs",
        }
    }
}

/// The memory hierarchy in mountinfo: a v1 `cgroup` mount with the memory
/// controller wins over the first `cgroup2` mount. (The xtask no longer links
/// oomtrace; oomtrace-testkit replaces this file.)
fn parse_mountinfo(text: &str) -> Option<Hierarchy> {
    let mut v2 = None;
    for line in text.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
        let Some((mount, filesystem)) = line.split_once(" - ") else { continue };
        let Some(mountpoint) = mount.split_whitespace().nth(4).map(PathBuf::from) else { continue };
        let mut filesystem = filesystem.split_whitespace();
        match (filesystem.next(), filesystem.nth(1).unwrap_or_default()) {
            (Some("cgroup"), options) if options.split(',').any(|o| o == "memory") => {
                return Some(Hierarchy::V1(mountpoint));
            }
            (Some("cgroup2"), _) => _ = v2.get_or_insert(Hierarchy::V2(mountpoint)),
            _ => {}
        }
    }
    v2
}

/// A memory cgroup made by the bench; removed on drop.
#[derive(Debug)]
pub struct MemCgroup {
    hierarchy: Hierarchy,
    pub dir: PathBuf,
    /// Path from the hierarchy root, as oomtrace reports it (`/a/b`).
    pub path: String,
}

impl MemCgroup {
    /// Creates `<parent>/<name>` (or `/<name>` at the root) with a memory limit
    /// and no swap, so that exceeding the limit OOM-kills.
    pub fn create(hierarchy: &Hierarchy, parent: Option<&MemCgroup>, name: &str, limit_bytes: u64) -> Result<Self> {
        let (parent_dir, parent_path) = match parent {
            Some(parent) => (parent.dir.clone(), parent.path.clone()),
            None => (hierarchy.root().to_owned(), String::new()),
        };
        if let Hierarchy::V2(_) = hierarchy {
            enable_memory_controller(&parent_dir)?;
        }
        let dir = parent_dir.join(name);
        if dir.exists() {
            bail!("{} already exists (left over from an earlier bench?); remove it with rmdir", dir.display());
        }
        fs::create_dir(&dir).with_context(|| format!("creating the memory cgroup {}", dir.display()))?;
        let cgroup = MemCgroup { hierarchy: hierarchy.clone(), dir, path: format!("{parent_path}/{name}") };
        cgroup.set_limit(limit_bytes)?;
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
    }

    fn set_limit(&self, bytes: u64) -> Result<()> {
        let bytes = bytes.to_string();
        match self.hierarchy {
            Hierarchy::V1(_) => {
                self.write("memory.limit_in_bytes", &bytes)?;
                // Memory+swap no larger than memory: a hog cannot swap its way out.
                if self.dir.join("memory.memsw.limit_in_bytes").exists() {
                    self.write("memory.memsw.limit_in_bytes", &bytes)?;
                }
            }
            Hierarchy::V2(_) => {
                self.write("memory.max", &bytes)?;
                if self.dir.join("memory.swap.max").exists() {
                    self.write("memory.swap.max", "0")?;
                }
            }
        }
        Ok(())
    }

    /// The kernel's count of OOM kills in this cgroup.
    pub fn oom_kills(&self) -> Result<u64> {
        let file = match self.hierarchy {
            Hierarchy::V1(_) => "memory.oom_control",
            Hierarchy::V2(_) => "memory.events",
        };
        let path = self.dir.join(file);
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|value| value.trim().parse().ok())
            .with_context(|| format!("no oom_kill line in {}", path.display()))
    }

    /// Starts a process that joins this cgroup, then becomes
    /// `dd bs=256M count=1`: it needs 256 MiB and gets OOM-killed at the limit.
    /// The victim's pid is the returned child's pid (`exec` keeps it).
    pub fn spawn_hog(&self) -> Result<Child> {
        let procs = self.dir.join(self.hierarchy.procs_file());
        Command::new("sh")
            .arg("-c")
            .arg(format!("echo $$ > {} && exec dd if=/dev/zero of=/dev/null bs={HOG_ALLOC} count=1", procs.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting a hog in {}", self.dir.display()))
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // Killed tasks take a moment to leave the cgroup; rmdir fails with
        // EBUSY until they have.
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        eprintln!("xtask: warning: could not remove {}; remove it with rmdir", self.dir.display());
    }
}

fn enable_memory_controller(dir: &Path) -> Result<()> {
    let control = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&control).with_context(|| format!("reading {}", control.display()))?;
    if !current.split_whitespace().any(|c| c == "memory") {
        fs::write(&control, "+memory")
            .with_context(|| format!("enabling the memory controller in {}", control.display()))?;
    }
    Ok(())
}

/// The bench's cgroups: `/oomtrace-bench-<pid>` holding `seq` (sequential
/// kills) and `storm-NN` (one per parallel hog), each limited to `limit_bytes`.
/// The parent is limited too, above the sum of its children, so it never OOMs.
#[derive(Debug)]
pub struct BenchCgroups {
    // Field order is drop order: children before their parent.
    pub seq: MemCgroup,
    pub storm: Vec<MemCgroup>,
    pub parent: MemCgroup,
}

impl BenchCgroups {
    pub fn create(hierarchy: &Hierarchy, name: &str, limit_bytes: u64, storm: usize) -> Result<Self> {
        let parent_limit = limit_bytes.saturating_mul(storm as u64 + 2);
        let parent = MemCgroup::create(hierarchy, None, name, parent_limit)?;
        let seq = MemCgroup::create(hierarchy, Some(&parent), "seq", limit_bytes)?;
        let storm = (0..storm)
            .map(|i| MemCgroup::create(hierarchy, Some(&parent), &format!("storm-{i:02}"), limit_bytes))
            .collect::<Result<Vec<_>>>()?;
        Ok(BenchCgroups { seq, storm, parent })
    }
}

/// A hog that ran, and whether the kernel killed it.
#[derive(Clone, Copy, Debug)]
pub struct Hog {
    pub pid: u32,
    pub oom_killed: bool,
}

/// Waits for a hog; SIGKILL means the OOM killer took it (nothing else here
/// sends SIGKILL).
pub fn wait_hog(mut child: Child) -> Result<Hog> {
    let pid = child.id();
    let status = child.wait().with_context(|| format!("waiting for hog {pid}"))?;
    Ok(Hog { pid, oom_killed: status.signal() == Some(libc::SIGKILL) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_memory_controller_wins_over_an_empty_cgroup2() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu,cpuacct
32 25 0:28 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory";
        let hierarchy = parse_mountinfo(mountinfo).expect("a hierarchy");
        assert_eq!(hierarchy.version(), 1);
        assert_eq!(hierarchy.root(), Path::new("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn cgroup2_alone_is_v2() {
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";
        let hierarchy = parse_mountinfo(mountinfo).expect("a hierarchy");
        assert_eq!((hierarchy.version(), hierarchy.root()), (2, Path::new("/sys/fs/cgroup")));
        assert!(parse_mountinfo("22 1 0:5 / /proc rw - proc proc rw").is_none());
    }
}
