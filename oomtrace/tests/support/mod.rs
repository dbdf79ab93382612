//! Helpers for the integration tests: run the real `oomtrace` binary, make
//! real memory cgroups, trigger real OOM kills in them, and read what the
//! kernel itself says (dmesg, memory.oom_control / memory.events).
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    os::unix::{fs::MetadataExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long oomtrace may take to attach before a test fails.
const ATTACH_DEADLINE: Duration = Duration::from_secs(20);

/// True when the test can run; otherwise prints why it is skipped.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!("SKIPPED {test}: needs root to load eBPF programs and create memory cgroups (euid {euid})");
        return false;
    }
    true
}

/// A unique name for this test's cgroups.
pub fn unique(test: &str) -> String {
    format!("oomtrace-test-{test}-{}", std::process::id())
}

/// The memory cgroup hierarchy of this machine.
#[derive(Clone, Debug)]
pub enum Hierarchy {
    V1(PathBuf),
    V2(PathBuf),
}

impl Hierarchy {
    /// The hierarchy oomtrace itself reads memcg ids in.
    pub fn detect() -> Hierarchy {
        use oomtrace::enrich::cgroup::{MemoryHierarchy, detect_hierarchy};
        match detect_hierarchy().expect("a memory cgroup hierarchy") {
            MemoryHierarchy::V1 { root } => Hierarchy::V1(root),
            MemoryHierarchy::V2 { root } => Hierarchy::V2(root),
        }
    }

    pub fn root(&self) -> &Path {
        match self {
            Hierarchy::V1(p) | Hierarchy::V2(p) => p,
        }
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, Hierarchy::V2(_))
    }
}

/// A memory cgroup made for a test, removed on drop.
pub struct MemCgroup {
    pub hierarchy: Hierarchy,
    pub dir: PathBuf,
    /// Path relative to the hierarchy root, as oomtrace reports it.
    pub path: String,
    /// Intermediate directories made by `create`, removed on drop.
    children: Vec<PathBuf>,
}

impl MemCgroup {
    /// Creates `/<name>` (which may be nested, e.g. `system.slice/x.service`)
    /// with an optional memory limit. Intermediate directories this creates
    /// are removed again on drop.
    pub fn create(name: &str, limit_bytes: Option<u64>) -> MemCgroup {
        let hierarchy = Hierarchy::detect();
        let mut dir = hierarchy.root().to_path_buf();
        let mut created = Vec::new();
        let components: Vec<&str> = name.split('/').filter(|c| !c.is_empty()).collect();
        for (i, component) in components.iter().enumerate() {
            // cgroup v2: a child only gets memory.* files if its parent delegates memory.
            if hierarchy.is_v2() {
                enable_memory_controller(&dir);
            }
            dir = dir.join(component);
            if !dir.exists() {
                std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                if i + 1 < components.len() {
                    created.push(dir.clone());
                }
            }
        }
        created.reverse();
        let cgroup = MemCgroup { hierarchy, dir, path: format!("/{}", components.join("/")), children: created };
        if let Some(limit) = limit_bytes {
            cgroup.set_limit(limit);
        }
        cgroup
    }

    /// Creates a child cgroup (no limit of its own unless given).
    pub fn child(&self, name: &str, limit_bytes: Option<u64>) -> MemCgroup {
        if self.hierarchy.is_v2() {
            enable_memory_controller(&self.dir);
        }
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let child = MemCgroup {
            hierarchy: self.hierarchy.clone(),
            dir,
            path: format!("{}/{name}", self.path),
            children: Vec::new(),
        };
        if let Some(limit) = limit_bytes {
            child.set_limit(limit);
        }
        child
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
    }

    pub fn set_limit(&self, bytes: u64) {
        match self.hierarchy {
            Hierarchy::V1(_) => self.write("memory.limit_in_bytes", &bytes.to_string()),
            Hierarchy::V2(_) => {
                self.write("memory.max", &bytes.to_string());
                // Without swap limits the kernel would swap instead of killing.
                if self.dir.join("memory.swap.max").exists() {
                    self.write("memory.swap.max", "0");
                }
            }
        }
    }

    /// Sets `memory.oom.group` (cgroup v2 only).
    pub fn set_oom_group(&self) {
        self.write("memory.oom.group", "1");
    }

    /// kernfs id of the directory (what the kernel reports as the cgroup id).
    pub fn id(&self) -> u64 {
        std::fs::metadata(&self.dir).expect("stat cgroup").ino()
    }

    /// Processes in this cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Memory charged to this cgroup now.
    pub fn usage_bytes(&self) -> u64 {
        let file = match self.hierarchy {
            Hierarchy::V1(_) => "memory.usage_in_bytes",
            Hierarchy::V2(_) => "memory.current",
        };
        std::fs::read_to_string(self.dir.join(file)).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }

    /// The kernel's count of OOM kills in this cgroup (and below, on v2).
    pub fn oom_kills(&self) -> u64 {
        let file = match self.hierarchy {
            Hierarchy::V1(_) => "memory.oom_control",
            Hierarchy::V2(_) => "memory.events",
        };
        let text = std::fs::read_to_string(self.dir.join(file)).expect("read oom counters");
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no oom_kill line in {file}: {text}"))
    }

    /// Starts `argv` inside this cgroup (moved in before exec).
    pub fn spawn(&self, argv: &str) -> Child {
        let procs = match self.hierarchy {
            Hierarchy::V1(_) => self.dir.join("tasks"),
            Hierarchy::V2(_) => self.dir.join("cgroup.procs"),
        };
        Command::new("sh")
            .arg("-c")
            .arg(format!("echo $$ > {} && exec {argv}", procs.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh")
    }

    /// Runs a process that allocates `bytes` inside this cgroup; returns its
    /// pid and exit status (SIGKILL when the OOM killer took it).
    pub fn run_hog(&self, bytes: u64) -> (u32, ExitStatus) {
        let mut child = self.spawn(&format!("dd if=/dev/zero of=/dev/null bs={bytes} count=1"));
        let pid = child.id();
        let status = child.wait().expect("wait for the hog");
        (pid, status)
    }

    /// Runs a hog and asserts the kernel OOM-killed it.
    pub fn oom_kill_hog(&self, bytes: u64) -> u32 {
        let (pid, status) = self.run_hog(bytes);
        assert_eq!(status.signal(), Some(9), "hog {pid} in {} was not OOM-killed: {status}", self.path);
        pid
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // The killed tasks take a moment to leave the cgroup.
        let mut removed = false;
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                removed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !removed {
            eprintln!("warning: could not remove {}", self.dir.display());
        }
        // Intermediate directories `create` made (innermost first); a shared
        // one still in use by another test simply stays.
        for dir in &self.children {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn enable_memory_controller(dir: &Path) {
    let control = dir.join("cgroup.subtree_control");
    let current = std::fs::read_to_string(&control).unwrap_or_default();
    if !current.split_whitespace().any(|c| c == "memory") {
        std::fs::write(&control, "+memory").unwrap_or_else(|e| panic!("enable memory in {}: {e}", control.display()));
    }
}

/// The kernel's "Killed process" line for `pid`, as numbers.
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

/// Waits for dmesg's "Killed process <pid> (comm) total-vm:..." line.
pub fn dmesg_killed(pid: u32) -> KilledLine {
    let needle = format!("Killed process {pid} (");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = Command::new("dmesg").output().expect("run dmesg");
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = text.lines().rev().find(|l| l.contains(&needle)) {
            return parse_killed(line).unwrap_or_else(|| panic!("unparsable dmesg line: {line}"));
        }
        assert!(Instant::now() < deadline, "dmesg has no 'Killed process {pid}' line");
        std::thread::sleep(Duration::from_millis(100));
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
    Some(KilledLine {
        comm,
        total_vm_kb: num("total-vm:")? as u64,
        anon_rss_kb: num("anon-rss:")? as u64,
        file_rss_kb: num("file-rss:")? as u64,
        shmem_rss_kb: num("shmem-rss:")? as u64,
        uid: num("UID:")? as u64,
        pgtables_kb: num("pgtables:")? as u64,
        oom_score_adj: num("oom_score_adj:")?,
    })
}

/// The real `oomtrace live -o json`, running in the background.
pub struct LiveTracer {
    child: Child,
    events: mpsc::Receiver<Value>,
    stderr: Arc<Mutex<String>>,
}

impl LiveTracer {
    /// Starts `oomtrace live -o json <args>` and waits until it is attached.
    pub fn start(args: &[&str]) -> LiveTracer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oomtrace"))
            .args(["live", "-o", "json"])
            .args(args)
            .env("OOMTRACE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oomtrace");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (event_tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if event_tx.send(value).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready) = mpsc::channel();
        let log_writer = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("waiting for OOM kills") {
                    let _ = ready_tx.send(());
                }
                let mut log = log_writer.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut tracer = LiveTracer { child, events, stderr: log };
        if ready.recv_timeout(ATTACH_DEADLINE).is_err() {
            let status = tracer.child.try_wait().ok().flatten();
            panic!("oomtrace did not attach within {ATTACH_DEADLINE:?} (exit: {status:?}); stderr:\n{}", tracer.log());
        }
        tracer
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.stderr.lock().expect("log lock").clone()
    }

    /// The next event, or a panic with oomtrace's log after `timeout`.
    pub fn expect_event(&self, timeout: Duration) -> Value {
        self.events
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("no OOM event within {timeout:?}; oomtrace stderr:\n{}", self.log()))
    }

    /// Every event that arrives until none has come for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.recv_timeout(quiet) {
            out.push(event);
        }
        out
    }

    /// SIGTERM, then waits for a clean exit; returns stderr.
    pub fn stop(mut self) -> (ExitStatus, String) {
        // SAFETY: kill with a pid we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.wait_with_deadline(Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(100));
        (status, self.log())
    }

    /// Waits for oomtrace to exit on its own (e.g. after --count).
    pub fn wait_exit(mut self, timeout: Duration) -> (ExitStatus, String) {
        let status = self.wait_with_deadline(timeout);
        std::thread::sleep(Duration::from_millis(100));
        (status, self.log())
    }

    fn wait_with_deadline(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("oomtrace did not exit within {timeout:?}; stderr:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LiveTracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `event[a][b]` as u64, with a readable panic.
pub fn u64_at(event: &Value, path: &[&str]) -> u64 {
    let mut v = event;
    for key in path {
        v = &v[*key];
    }
    v.as_u64().unwrap_or_else(|| panic!("{} missing or not a number in {event}", path.join(".")))
}

pub fn str_at<'a>(event: &'a Value, path: &[&str]) -> &'a str {
    let mut v = event;
    for key in path {
        v = &v[*key];
    }
    v.as_str().unwrap_or_else(|| panic!("{} missing or not a string in {event}", path.join(".")))
}

/// Whether `oomtrace check` reports `target` (e.g. `fentry:oom_kill_process`)
/// as attaching on this kernel; `Err` carries its reason.
pub fn attach_method_works(target: &str) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_oomtrace")).arg("check").output().expect("run oomtrace check");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(target))
        .unwrap_or_else(|| panic!("oomtrace check has no line for {target}:\n{text}"));
    let rest = line[target.len()..].trim_start();
    if rest.starts_with("ok") { Ok(()) } else { Err(rest.trim_start_matches("FAIL").trim().to_owned()) }
}

/// How far an RSS figure read in the kernel may be from the "Killed process"
/// line, in kB. The kernel's own counters move between `mark_oom_victim` (the
/// tracepoint, and oomtrace, read `get_mm_counter()` there) and the printk:
///
/// - Since 6.2 the counters are per-CPU (`struct percpu_counter`); kernels that
///   print the exact per-CPU sum (7.x) differ from the folded value by at most
///   one batch (`max(32, 2 * nr_cpus)` pages) per possible CPU.
/// - Before 6.2 (SPLIT_RSS_COUNTING) a task caches up to 64 page events per
///   counter (TASK_RSS_EVENTS_THRESH) and folds them into the mm when it exits.
///   A victim that is not the allocating task starts exiting as soon as its
///   SIGKILL arrives (just before mark_oom_victim), so the printk may see up to
///   64 more pages. When the victim is the allocating task it cannot run
///   meanwhile: no slack.
pub fn rss_slack_kb(victim_is_trigger: bool) -> u64 {
    // (page size in kB, rss counter stride) of this kernel, discovered once.
    static LAYOUT: std::sync::OnceLock<(u64, u32)> = std::sync::OnceLock::new();
    let (page_kb, stride) = *LAYOUT.get_or_init(|| {
        let facts = oomtrace::kernel::discover();
        (facts.page_size / 1024, facts.offsets.rss_counter_stride)
    });
    if stride == 8 || stride == oomtrace_common::ABSENT {
        return if victim_is_trigger { 0 } else { 64 * page_kb };
    }
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    let cpus = possible
        .trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => b.parse::<u64>().unwrap_or(0) - a.parse::<u64>().unwrap_or(0) + 1,
            None => 1,
        })
        .sum::<u64>()
        .max(1);
    cpus * (2 * cpus).max(32) * page_kb
}

/// RSS from the event equals the kernel log's, within [`rss_slack_kb`].
pub fn assert_rss_kb(event_kb: u64, log_kb: u64, what: &str, event: &Value) {
    let victim_is_trigger = event["victim"]["pid"] == event["trigger"]["pid"];
    let slack = rss_slack_kb(victim_is_trigger);
    assert!(
        event_kb.abs_diff(log_kb) <= slack,
        "{what}: event {event_kb} kB, kernel log {log_kb} kB (allowed difference {slack} kB): {event}"
    );
}
