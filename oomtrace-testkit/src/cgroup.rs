//! Memory cgroups made by a test or the bench. Every hog runs inside a cgroup
//! whose memory limit its creator set, so only the hog is OOM-killed, never the
//! host.
//!
//! The hierarchy is found by probing `/sys/fs/cgroup` directly: an oracle
//! independent of oomtrace's own mountinfo reading.

use std::{
    fs,
    os::unix::{fs::MetadataExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

/// What each bench hog asks for: far more than its cgroup's limit.
pub const HOG_ALLOC: &str = "256M";

/// Where the cgroup file systems are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The memory cgroup hierarchy of this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1 with the memory controller mounted here.
    V1(PathBuf),
    /// cgroup v2 (unified) mounted here.
    V2(PathBuf),
}

impl Hierarchy {
    /// The hierarchy below [`CGROUP_ROOT`].
    pub fn detect() -> Result<Hierarchy> {
        Self::detect_in(Path::new(CGROUP_ROOT))
    }

    /// A v1 memory controller (`<root>/memory/memory.limit_in_bytes`) wins
    /// over a cgroup2 mount (hybrid hosts mount an empty cgroup2 at
    /// `<root>/unified`); otherwise `<root>` must be cgroup2 with the memory
    /// controller in its `cgroup.controllers`.
    pub fn detect_in(root: &Path) -> Result<Hierarchy> {
        let v1 = root.join("memory");
        if v1.join("memory.limit_in_bytes").exists() {
            return Ok(Hierarchy::V1(v1));
        }
        let controllers = root.join("cgroup.controllers");
        let text = fs::read_to_string(&controllers).with_context(|| {
            format!("no cgroup v1 memory controller at {} and no cgroup2 at {}", v1.display(), root.display())
        })?;
        if !text.split_whitespace().any(|c| c == "memory") {
            bail!("the cgroup2 at {} has no memory controller ({})", root.display(), text.trim());
        }
        Ok(Hierarchy::V2(root.to_owned()))
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

    pub fn is_v2(&self) -> bool {
        matches!(self, Hierarchy::V2(_))
    }

    /// The file a task writes its pid into to join a cgroup.
    fn procs_file(&self) -> &'static str {
        match self {
            Hierarchy::V1(_) => "tasks",
            Hierarchy::V2(_) => "cgroup.procs",
        }
    }

    /// The file holding a cgroup's memory limit.
    pub fn limit_file(&self) -> &'static str {
        match self {
            Hierarchy::V1(_) => "memory.limit_in_bytes",
            Hierarchy::V2(_) => "memory.max",
        }
    }

    /// The directory of cgroup `path` (`/a/b`, relative to the root).
    pub fn dir_of(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }
}

/// A memory cgroup made for a test or the bench; removed on drop, with the
/// intermediate directories [`MemCgroup::create`] made.
#[derive(Debug)]
pub struct MemCgroup {
    pub hierarchy: Hierarchy,
    pub dir: PathBuf,
    /// Path from the hierarchy root, as oomtrace reports it (`/a/b`).
    pub path: String,
    /// Intermediate directories made by `create`, innermost first.
    made_parents: Vec<PathBuf>,
}

impl MemCgroup {
    /// Creates `/<name>` (which may be nested, e.g. `system.slice/x.service`:
    /// missing intermediate directories are made, existing ones reused) with
    /// an optional memory limit and no swap. The leaf must not exist yet.
    pub fn create(name: &str, limit_bytes: Option<u64>) -> Result<MemCgroup> {
        Self::create_in(&Hierarchy::detect()?, name, limit_bytes)
    }

    /// [`MemCgroup::create`] in a hierarchy already detected.
    pub fn create_in(hierarchy: &Hierarchy, name: &str, limit_bytes: Option<u64>) -> Result<MemCgroup> {
        let components: Vec<&str> = name.split('/').filter(|c| !c.is_empty()).collect();
        let Some((leaf, parents)) = components.split_last() else { bail!("empty cgroup name {name:?}") };
        let mut dir = hierarchy.root().to_path_buf();
        let mut made_parents = Vec::new();
        for component in parents {
            enable_memory_controller(hierarchy, &dir)?;
            dir = dir.join(component);
            if !dir.exists() {
                fs::create_dir(&dir).with_context(|| format!("creating the cgroup {}", dir.display()))?;
                made_parents.push(dir.clone());
            }
        }
        made_parents.reverse();
        let parent_path = parents.iter().map(|c| format!("/{c}")).collect::<String>();
        let mut cgroup = Self::make(hierarchy, &dir, &parent_path, leaf, limit_bytes)?;
        cgroup.made_parents = made_parents;
        Ok(cgroup)
    }

    /// Creates the child `<self>/<name>` (no limit of its own unless given).
    pub fn child(&self, name: &str, limit_bytes: Option<u64>) -> Result<MemCgroup> {
        Self::make(&self.hierarchy, &self.dir, &self.path, name, limit_bytes)
    }

    fn make(
        hierarchy: &Hierarchy,
        parent_dir: &Path,
        parent_path: &str,
        name: &str,
        limit_bytes: Option<u64>,
    ) -> Result<MemCgroup> {
        // cgroup v2: a child only gets memory.* files if its parent delegates memory.
        enable_memory_controller(hierarchy, parent_dir)?;
        let dir = parent_dir.join(name);
        if dir.exists() {
            bail!("{} already exists (left over from an earlier run?); remove it with rmdir", dir.display());
        }
        fs::create_dir(&dir).with_context(|| format!("creating the memory cgroup {}", dir.display()))?;
        let cgroup = MemCgroup {
            hierarchy: hierarchy.clone(),
            dir,
            path: format!("{parent_path}/{name}"),
            made_parents: vec![],
        };
        if let Some(limit) = limit_bytes {
            cgroup.set_limit(limit)?;
        }
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
    }

    fn read(&self, file: &str) -> Result<String> {
        let path = self.dir.join(file);
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// Sets the memory limit, and no swap beyond it: a hog cannot swap its way out.
    pub fn set_limit(&self, bytes: u64) -> Result<()> {
        let bytes = bytes.to_string();
        self.write(self.hierarchy.limit_file(), &bytes)?;
        match self.hierarchy {
            Hierarchy::V1(_) if self.dir.join("memory.memsw.limit_in_bytes").exists() => {
                self.write("memory.memsw.limit_in_bytes", &bytes)
            }
            Hierarchy::V2(_) if self.dir.join("memory.swap.max").exists() => self.write("memory.swap.max", "0"),
            _ => Ok(()),
        }
    }

    /// The memory limit now, in bytes.
    pub fn limit_bytes(&self) -> Result<u64> {
        let text = self.read(self.hierarchy.limit_file())?;
        text.trim().parse().with_context(|| format!("the limit of {} is not a number: {text}", self.path))
    }

    /// Sets `memory.oom.group` (cgroup v2 only).
    pub fn set_oom_group(&self) -> Result<()> {
        self.write("memory.oom.group", "1")
    }

    /// kernfs id of the directory (what the kernel reports as the cgroup id).
    pub fn id(&self) -> Result<u64> {
        Ok(fs::metadata(&self.dir).with_context(|| format!("stat {}", self.dir.display()))?.ino())
    }

    /// Processes in this cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        self.read("cgroup.procs").unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Memory charged to this cgroup now (0 when unreadable).
    pub fn usage_bytes(&self) -> u64 {
        let file = match self.hierarchy {
            Hierarchy::V1(_) => "memory.usage_in_bytes",
            Hierarchy::V2(_) => "memory.current",
        };
        self.read(file).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }

    /// Sets `memory.high` (v2 only): past it the kernel reclaims and
    /// throttles the cgroup's tasks instead of killing them.
    pub fn set_high(&self, bytes: u64) -> Result<()> {
        anyhow::ensure!(self.hierarchy.is_v2(), "memory.high is cgroup v2 only");
        self.write("memory.high", &bytes.to_string())
    }

    /// A counter of `memory.events` (v2): `high`, `max`, `oom`, `oom_kill`.
    pub fn event_count(&self, key: &str) -> Result<u64> {
        let text = self.read("memory.events")?;
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .with_context(|| format!("no {key} line in {}/memory.events: {text}", self.dir.display()))
    }

    /// Pages reclaim freed in this cgroup and below so far, in bytes: v2
    /// `pgsteal` of `memory.stat`. `None` on v1, which counts no reclaim
    /// (its `pgpgout` counts uncharge events, a large folio as one).
    pub fn reclaimed_bytes(&self) -> Result<Option<u64>> {
        if !self.hierarchy.is_v2() {
            return Ok(None);
        }
        let text = self.read("memory.stat")?;
        let pages: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("pgsteal "))
            .and_then(|value| value.trim().parse().ok())
            .with_context(|| format!("no pgsteal line in {}/memory.stat", self.dir.display()))?;
        Ok(Some(pages * crate::workload::page_size() as u64))
    }

    /// The kernel's count of OOM kills in this cgroup (and below, on v2).
    pub fn oom_kills(&self) -> Result<u64> {
        let file = match self.hierarchy {
            Hierarchy::V1(_) => "memory.oom_control",
            Hierarchy::V2(_) => "memory.events",
        };
        let text = self.read(file)?;
        text.lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|value| value.trim().parse().ok())
            .with_context(|| format!("no oom_kill line in {}/{file}: {text}", self.dir.display()))
    }

    /// The file a task writes its pid into to join this cgroup (`tasks` on
    /// v1, `cgroup.procs` on v2).
    pub fn procs_path(&self) -> PathBuf {
        self.dir.join(self.hierarchy.procs_file())
    }

    /// Starts `sh -c 'exec <command>'` inside this cgroup (moved in before exec,
    /// so the returned child's pid is the command's).
    pub fn spawn(&self, command: &str) -> Result<Child> {
        let procs = self.procs_path();
        Command::new("sh")
            .arg("-c")
            .arg(format!("echo $$ > {} && exec {command}", procs.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {command:?} in {}", self.dir.display()))
    }

    /// Starts `dd bs=<size> count=1`: it needs `size` of memory at once
    /// (`size` as dd reads it: `268435456`, `256M`).
    pub fn spawn_dd(&self, size: &str) -> Result<Child> {
        self.spawn(&format!("dd if=/dev/zero of=/dev/null bs={size} count=1"))
    }

    /// A bench hog: `dd bs=256M count=1`, OOM-killed at any smaller limit.
    pub fn spawn_hog(&self) -> Result<Child> {
        self.spawn_dd(HOG_ALLOC)
    }

    /// Runs a process that allocates `bytes` inside this cgroup to its end.
    pub fn run_hog(&self, bytes: u64) -> Result<Hog> {
        wait_hog(self.spawn_dd(&bytes.to_string())?)
    }

    /// Runs a hog of `bytes` and fails unless the kernel OOM-killed it; its pid.
    pub fn oom_kill_hog(&self, bytes: u64) -> Result<u32> {
        let hog = self.run_hog(bytes)?;
        if !hog.oom_killed {
            bail!("hog {} in {} was not OOM-killed", hog.pid, self.path);
        }
        Ok(hog.pid)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // Killed tasks take a moment to leave the cgroup; rmdir fails with
        // EBUSY until they have.
        if !remove_dir_patiently(&self.dir, 100, Duration::from_millis(100)) {
            eprintln!("warning: could not remove {}; remove it with rmdir", self.dir.display());
        }
        // A shared intermediate directory still in use by another test stays.
        for dir in &self.made_parents {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// rmdir, retried `tries` times `pause` apart; true once the directory is gone.
fn remove_dir_patiently(dir: &Path, tries: u32, pause: Duration) -> bool {
    for _ in 0..tries {
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return true;
        }
        thread::sleep(pause);
    }
    !dir.exists()
}

/// cgroup v2: `+memory` in `dir`'s `cgroup.subtree_control` unless there already.
fn enable_memory_controller(hierarchy: &Hierarchy, dir: &Path) -> Result<()> {
    if !hierarchy.is_v2() {
        return Ok(());
    }
    let control = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&control).with_context(|| format!("reading {}", control.display()))?;
    if !current.split_whitespace().any(|c| c == "memory") {
        fs::write(&control, "+memory")
            .with_context(|| format!("enabling the memory controller in {}", control.display()))?;
    }
    Ok(())
}

/// The bench's cgroups: `/<name>` holding `seq` (sequential kills) and
/// `storm-NN` (one per parallel hog), each limited to `limit_bytes`. The
/// parent is limited too, above the sum of its children, so it never OOMs.
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
        let parent = MemCgroup::create_in(hierarchy, name, Some(parent_limit))?;
        let seq = parent.child("seq", Some(limit_bytes))?;
        let storm = (0..storm)
            .map(|i| parent.child(&format!("storm-{i:02}"), Some(limit_bytes)))
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

/// The cgroup of `pid` holding its memory controller, relative to the
/// hierarchy root: the v1 line naming `memory`, else the unified (`0::`) one.
/// None once the process is gone.
pub fn memory_cgroup_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    memory_line(&text)
}

/// `/proc/<pid>/cgroup` lines are `id:controllers:path`.
fn memory_line(text: &str) -> Option<String> {
    let entries: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .collect();
    let v1 = entries.iter().find(|(controllers, _)| controllers.split(',').any(|c| c == "memory"));
    let unified = entries.iter().find(|(controllers, _)| controllers.is_empty());
    v1.or(unified).map(|(_, path)| (*path).to_owned())
}

/// rmdir `path` in every cgroup hierarchy that has it (the pod's tasks may
/// take a moment to leave); warns about what stays.
pub fn remove_cgroup_everywhere(path: &str) {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return;
    }
    let root = Path::new(CGROUP_ROOT);
    let mut dirs = vec![root.join(relative)];
    if let Ok(entries) = fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|entry| entry.path().join(relative)));
    }
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        if !remove_dir_patiently(&dir, 40, Duration::from_millis(50)) {
            eprintln!("warning: could not remove the cgroup {}; remove it with rmdir", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oomtrace-testkit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_v1_memory_controller_wins_over_an_empty_cgroup2() {
        let root = scratch("hybrid");
        fs::create_dir_all(root.join("memory")).expect("mkdir");
        fs::write(root.join("memory/memory.limit_in_bytes"), "9223372036854771712\n").expect("write");
        fs::create_dir_all(root.join("unified")).expect("mkdir");
        fs::write(root.join("unified/cgroup.controllers"), "\n").expect("write");
        let hierarchy = Hierarchy::detect_in(&root).expect("a hierarchy");
        assert_eq!((hierarchy.version(), hierarchy.root()), (1, root.join("memory").as_path()));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn cgroup2_alone_is_v2() {
        let root = scratch("unified");
        assert!(Hierarchy::detect_in(&root).is_err(), "neither v1 nor cgroup2");
        fs::write(root.join("cgroup.controllers"), "cpuset cpu io\n").expect("write");
        assert!(Hierarchy::detect_in(&root).is_err(), "cgroup2 without the memory controller");
        fs::write(root.join("cgroup.controllers"), "cpuset cpu io memory pids\n").expect("write");
        let hierarchy = Hierarchy::detect_in(&root).expect("a hierarchy");
        assert_eq!((hierarchy.version(), hierarchy.root()), (2, root.as_path()));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn the_memory_line_of_proc_cgroup() {
        let hybrid = "12:pids:/user.slice\n4:memory:/kubepods/burstable/podx/abc\n0::/user.slice\n";
        assert_eq!(memory_line(hybrid).as_deref(), Some("/kubepods/burstable/podx/abc"));
        assert_eq!(memory_line("0::/system.slice/x.service\n").as_deref(), Some("/system.slice/x.service"));
        assert_eq!(memory_line(""), None);
    }
}
