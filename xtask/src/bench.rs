//! `cargo xtask bench`: oomtrace on real memcg OOM kills, and bpftrace on the
//! same kills as a peer, measured the same way in the same run.
//!
//! For each tool: start-to-attached (5 starts), idle footprint (RSS, CPU over
//! 10 s), then kill-to-line latency for N sequential kills and a storm of
//! parallel kills, counting every kill's events. Then `oomtrace daemon` with
//! both exporters on (`daemon.rs`) and the cost of pod attribution
//! (`enrichment.rs`), against the real containerd, Prometheus and OTLP
//! receiver the tests use (started when not running). The report goes to
//! stdout and to docs/benchmarks.md.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsString,
    fs,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    cgroup::{BenchCgroups, Hierarchy, Hog, MemCgroup, wait_hog},
    components::{self, ComponentState},
    cri, daemon, enrichment, observability,
    procfs::{self, Clock, Memory},
    report::{self, ClockCheck, KillRun, Peer, Report, Section, ToolFigures},
    tracer::{Observed, Spec, Tracer},
};

/// Memory limit of every cgroup a hog runs in.
pub const LIMIT_BYTES: u64 = 64 << 20;
/// Starts measured per tool for start-to-attached.
pub const ATTACH_RUNS: usize = 5;
/// How long a tracer may take to attach before the bench gives up on it.
const ATTACH_DEADLINE: Duration = Duration::from_secs(60);
/// Settling time after attach before the idle footprint is sampled.
pub const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// Window over which idle CPU is measured.
pub const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// How long to wait for a kill's event before counting it missing.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(3);
/// Quiet period after the last kill, to catch late or duplicate events.
pub const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// oomtrace logs this at info level once every probe is attached.
pub const OOMTRACE_READY: &str = "waiting for OOM kills";
/// bpftrace prints this just before it attaches.
const BPFTRACE_ATTACHING: &str = "Attaching 1 probe";
/// bpftrace prints this once its probes are attached when the environment
/// variable of the same name is set (its runtime tests use it).
const BPFTRACE_NOTIFY: &str = "__BPFTRACE_NOTIFY_PROBES_ATTACHED";
const BPFTRACE_PROGRAM: &str = r#"tracepoint:oom:mark_victim { printf("%llu %d\n", nsecs, args->pid); }"#;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Sequential OOM kills per tool.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub kills: u32,
    /// Parallel OOM kills in the storm (each hog in its own 64 MiB cgroup).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub storm: u32,
    /// Parallel OOM kills in the daemon's burst.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub burst: u32,
    /// Measure oomtrace only (no bpftrace, no bcc).
    #[arg(long)]
    pub no_peer: bool,
    /// Leave out the daemon footprint (no Prometheus or OTLP receiver needed).
    #[arg(long)]
    pub no_daemon: bool,
    /// Leave out the pod attribution cost (no containerd needed).
    #[arg(long)]
    pub no_enrichment: bool,
    /// Use the existing release binaries (target/release/oomtrace, and
    /// target/release/xtask for the enrichment probe) instead of building them.
    #[arg(long)]
    pub no_build: bool,
    /// Do not start containerd, Prometheus or the OTLP receiver
    /// (scripts/runtime.sh up, scripts/observability.sh up) when they are
    /// not running: their sections then say they are unavailable.
    #[arg(long)]
    pub no_start: bool,
    /// Where to write the markdown report [default: <workspace>/docs/benchmarks.md].
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    let euid = procfs::euid();
    if euid != 0 {
        bail!(
            "the bench needs root to load eBPF programs and create memory cgroups (euid is {euid}); run it with sudo"
        );
    }
    let root = workspace_root()?;
    let output = args.output.clone().unwrap_or_else(|| root.join("docs/benchmarks.md"));
    let oomtrace = root.join("target/release/oomtrace");
    if args.no_build {
        if !oomtrace.exists() {
            bail!(
                "--no-build given but {} does not exist; build it with `cargo build --release -p oomtrace`",
                oomtrace.display()
            );
        }
    } else {
        build_oomtrace(&root)?;
    }
    let hierarchy = Hierarchy::detect()?;
    ensure_tracefs()?;
    let machine = procfs::machine()?;
    let (runtime_state, observability_state) = start_components(&root, args);
    let cgroup_name = format!("oomtrace-bench-{}", std::process::id());
    progress(&format!(
        "cgroup v{} at {}; bench cgroups under /{cgroup_name}",
        hierarchy.version(),
        hierarchy.root().display()
    ));

    let oomtrace_tool = Tool {
        name: "oomtrace",
        version: version_of(&oomtrace, "--version"),
        attach_spec: oomtrace_spec(&oomtrace, None),
        run_spec: oomtrace_spec(&oomtrace, Some(&format!("/{cgroup_name}"))),
    };
    let oomtrace_figures = measure(&oomtrace_tool, &hierarchy, args, &cgroup_name)?;
    let all = oomtrace_figures.seq.events_matched() + oomtrace_figures.storm.events_matched();
    if all == 0 {
        bail!(
            "oomtrace reported none of the {} OOM kills; nothing to measure (see its log above)",
            oomtrace_figures.seq.oom_killed() + oomtrace_figures.storm.oom_killed()
        );
    }

    let (bpftrace, clock_check, bcc) = if args.no_peer {
        (Peer::Skipped, None, Peer::Skipped)
    } else {
        let (bpftrace, clock_check) = bpftrace_peer(&hierarchy, args, &cgroup_name);
        (bpftrace, clock_check, bcc_peer())
    };

    let cri_socket = cri::test_socket();
    let daemon = if args.no_daemon {
        Section::Skipped("--no-daemon")
    } else if let Some(reason) = observability_state.as_ref().and_then(ComponentState::unavailable) {
        Section::Unavailable(reason.to_owned())
    } else {
        progress("daemon: footprint with Prometheus and OTLP export on");
        match daemon::measure(&oomtrace, &hierarchy, &cgroup_name, args.burst as usize, &cri_socket) {
            Ok(figures) => Section::Measured(Box::new(figures)),
            Err(error) => {
                progress(&format!("daemon: {error:#}"));
                Section::Unavailable(format!("{error:#}"))
            }
        }
    };
    let enrichment = if args.no_enrichment {
        Section::Skipped("--no-enrichment")
    } else if let Some(reason) = runtime_state.as_ref().and_then(ComponentState::unavailable) {
        Section::Unavailable(reason.to_owned())
    } else {
        progress("enrichment: PodResolver::attribute on a real pod");
        match enrichment::measure_release(&root, &cri_socket, !args.no_build) {
            Ok(figures) => Section::Measured(Box::new(figures)),
            Err(error) => {
                progress(&format!("enrichment: {error:#}"));
                Section::Unavailable(format!("{error:#}"))
            }
        }
    };
    let mut component_rows = Vec::new();
    if let Some(state) = &runtime_state {
        component_rows.push(("containerd (`scripts/runtime.sh`)", format!("{cri_socket}: {}", state.describe())));
    }
    if let Some(state) = &observability_state {
        component_rows.push((
            "Prometheus, OTLP receiver (`scripts/observability.sh`)",
            format!(
                "{}, gRPC {}: {}",
                observability::prometheus_address(),
                observability::otlp_grpc_address(),
                state.describe()
            ),
        ));
    }

    let report = Report {
        generated: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        commit: git_commit(&root),
        machine,
        hierarchy: format!("v{} ({})", hierarchy.version(), hierarchy.root().display()),
        kills: args.kills as usize,
        storm: args.storm as usize,
        built: !args.no_build,
        oomtrace: oomtrace_figures,
        bpftrace,
        bcc,
        clock_check,
        components: component_rows,
        burst: args.burst as usize,
        daemon,
        enrichment,
        bench_seconds: started.elapsed().as_secs(),
    };
    let markdown = report::render(&report);
    print!("{markdown}");
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&output, &markdown).with_context(|| format!("writing the report to {}", output.display()))?;
    progress(&format!("report written to {} ({} s)", output.display(), started.elapsed().as_secs()));
    Ok(())
}

/// containerd for the enrichment (and the daemon's CRI socket), Prometheus
/// and the OTLP receiver for the daemon: started when not running.
fn start_components(root: &Path, args: &BenchArgs) -> (Option<ComponentState>, Option<ComponentState>) {
    let start = !args.no_start;
    let runtime = (!args.no_daemon || !args.no_enrichment).then(|| components::ensure_runtime(root, start));
    let observability = (!args.no_daemon).then(|| components::ensure_observability(root, start));
    for (what, state) in [("containerd", &runtime), ("Prometheus and the OTLP receiver", &observability)] {
        if let Some(state) = state {
            progress(&format!("{what}: {}", state.describe()));
        }
    }
    (runtime, observability)
}

fn progress(message: &str) {
    eprintln!("xtask bench: {message}");
}

fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_owned)
        .with_context(|| format!("{} has no parent directory", manifest_dir.display()))
}

fn build_oomtrace(root: &Path) -> Result<()> {
    cargo_build_release(root, "oomtrace")
}

/// `cargo build --release -p <package>`, with cargo's output on our stderr
/// (stdout is for the report).
pub fn cargo_build_release(root: &Path, package: &str) -> Result<()> {
    progress(&format!("building the release binary: cargo build --release -p {package}"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let stderr = std::io::stderr().as_fd().try_clone_to_owned().context("duplicating stderr")?;
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", package])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("running {} build", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!("`cargo build --release -p {package}` failed ({status}); see its output above");
    }
    Ok(())
}

/// bpftrace reads tracepoint formats from tracefs, which this host does not
/// mount by default.
fn ensure_tracefs() -> Result<()> {
    let tracing = Path::new("/sys/kernel/tracing");
    if tracing.join("events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        return Ok(());
    }
    progress("mounting tracefs at /sys/kernel/tracing");
    let status = Command::new("mount")
        .args(["-t", "tracefs", "tracefs"])
        .arg(tracing)
        .status()
        .context("running mount -t tracefs")?;
    if !status.success() {
        bail!("`mount -t tracefs tracefs /sys/kernel/tracing` failed ({status})");
    }
    Ok(())
}

/// The trimmed stdout of a command that succeeded.
fn quiet_stdout(command: &mut Command) -> Option<String> {
    command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn version_of(program: &Path, flag: &str) -> String {
    quiet_stdout(Command::new(program).arg(flag)).unwrap_or_else(|| "unknown version".to_owned())
}

fn git_commit(root: &Path) -> String {
    let git = |args: &[&str]| quiet_stdout(Command::new("git").args(args).current_dir(root));
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{commit} + uncommitted changes"),
            _ => commit,
        },
        None => "unknown".to_owned(),
    }
}

/// One tracer under test: how to start it for attach timing, and for the
/// kills (oomtrace then filters on the bench cgroup).
struct Tool {
    name: &'static str,
    version: String,
    attach_spec: Spec,
    run_spec: Spec,
}

fn oomtrace_spec(binary: &Path, cgroup: Option<&str>) -> Spec {
    let mut args: Vec<OsString> = ["live", "-o", "json"].map(OsString::from).into();
    if let Some(cgroup) = cgroup {
        args.extend([OsString::from("--cgroup"), OsString::from(cgroup)]);
    }
    Spec {
        program: binary.to_owned(),
        args,
        env: vec![("OOMTRACE_LOG", "info".to_owned())],
        markers: vec![OOMTRACE_READY],
        parse: parse_oomtrace_line,
        // ktime_ns comes from bpf_ktime_get_ns() in the mark_victim program.
        clock: Clock::Monotonic,
    }
}

/// An NDJSON event of `oomtrace live -o json` (and of the daemon's stdout):
/// victim.pid and ktime_ns.
pub fn parse_oomtrace_line(line: &str) -> Option<(u32, u64)> {
    let event: Value = serde_json::from_str(line).ok()?;
    let pid = u32::try_from(event.get("victim")?.get("pid")?.as_u64()?).ok()?;
    Some((pid, event.get("ktime_ns")?.as_u64()?))
}

fn bpftrace_spec(binary: &Path, clock: Clock) -> Spec {
    Spec {
        program: binary.to_owned(),
        args: vec![OsString::from("-e"), OsString::from(BPFTRACE_PROGRAM)],
        env: vec![(BPFTRACE_NOTIFY, "1".to_owned())],
        markers: vec![BPFTRACE_ATTACHING, BPFTRACE_NOTIFY],
        parse: parse_bpftrace_line,
        clock,
    }
}

/// `<nsecs> <pid>`, as the bpftrace one-liner prints it.
fn parse_bpftrace_line(line: &str) -> Option<(u32, u64)> {
    let (nsecs, pid) = line.trim().split_once(' ')?;
    Some((pid.trim().parse().ok()?, nsecs.parse().ok()?))
}

/// Every event a tracer printed during one run, by victim pid.
#[derive(Default)]
pub struct Seen {
    by_pid: HashMap<u32, Vec<Observed>>,
}

impl Seen {
    fn record(&mut self, event: Observed) {
        self.by_pid.entry(event.victim_pid).or_default().push(event);
    }

    fn has(&self, pid: u32) -> bool {
        self.by_pid.contains_key(&pid)
    }

    /// Receives events until every pid in `pids` has one, or `timeout` passes.
    pub fn wait_for(&mut self, tracer: &Tracer, pids: &[u32], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while pids.iter().any(|pid| !self.has(*pid)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            if let Some(event) = tracer.next_event(left) {
                self.record(event);
            }
        }
    }

    /// Receives events until none has come for `quiet`.
    pub fn drain(&mut self, tracer: &Tracer, quiet: Duration) {
        while let Some(event) = tracer.next_event(quiet) {
            self.record(event);
        }
    }

    pub fn tally(&self, hogs: &[Hog], kernel_oom_kills: u64) -> KillRun {
        let mut run = KillRun { hogs: hogs.len(), kernel_oom_kills, ..KillRun::default() };
        for hog in hogs {
            let events = self.by_pid.get(&hog.pid).map_or(&[][..], Vec::as_slice);
            if !hog.oom_killed {
                run.not_killed += 1;
                run.events_for_survivors += events.len();
                continue;
            }
            match events.split_first() {
                None => run.missing.push(hog.pid),
                Some((first, rest)) => {
                    run.latencies_ns.push(first.latency_ns());
                    run.duplicates += rest.len();
                }
            }
        }
        run
    }

    /// Events for victims that were none of the bench's hogs.
    pub fn foreign(&self, ours: &HashSet<u32>) -> usize {
        self.by_pid.iter().filter(|(pid, _)| !ours.contains(pid)).map(|(_, events)| events.len()).sum()
    }
}

fn measure(tool: &Tool, hierarchy: &Hierarchy, args: &BenchArgs, cgroup_name: &str) -> Result<ToolFigures> {
    let name = tool.name;
    progress(&format!("{name}: {ATTACH_RUNS} starts to time attaching"));
    let mut attach = Vec::with_capacity(ATTACH_RUNS);
    let mut probes_attached = Vec::new();
    for run in 1..=ATTACH_RUNS {
        let mut tracer = Tracer::spawn(&tool.attach_spec).with_context(|| format!("starting {name}"))?;
        let attached = tracer
            .wait_marker(0, ATTACH_DEADLINE)
            .with_context(|| format!("{name} (start {run} of {ATTACH_RUNS}) did not attach"))?;
        attach.push(attached);
        // A later marker, where the tracer has one (bpftrace's "probes attached").
        if tool.attach_spec.markers.len() > 1
            && let Ok(later) = tracer.wait_marker(1, Duration::from_secs(10))
        {
            probes_attached.push(later);
        }
        tracer.stop().with_context(|| format!("stopping {name}"))?;
    }
    progress(&format!("{name}: attach times {}", join_ms(&attach)));

    let mut tracer = Tracer::spawn(&tool.run_spec).with_context(|| format!("starting {name}"))?;
    tracer.wait_marker(0, ATTACH_DEADLINE).with_context(|| format!("{name} did not attach"))?;
    if tool.run_spec.markers.len() > 1 {
        // Kills must not start before the probe is really attached.
        let _ = tracer.wait_marker(1, Duration::from_secs(10));
    }
    progress(&format!("{name}: idle footprint ({IDLE_SETTLE:?} settle, {IDLE_WINDOW:?} CPU window)"));
    let (idle, idle_cpu_percent) = idle_footprint(tracer.pid()).with_context(|| format!("measuring idle {name}"))?;

    let cgroups = BenchCgroups::create(hierarchy, cgroup_name, LIMIT_BYTES, args.storm as usize)?;
    let mut seen = Seen::default();
    progress(&format!("{name}: {} sequential OOM kills in {}", args.kills, cgroups.seq.path));
    let seq_hogs = kill_sequentially(&tracer, &cgroups.seq, args.kills as usize, &mut seen)?;
    progress(&format!("{name}: storm of {} parallel OOM kills in {}/storm-NN", args.storm, cgroups.parent.path));
    let storm_hogs = kill_storm(&tracer, &cgroups.storm, &mut seen)?;
    seen.drain(&tracer, DRAIN_QUIET);
    let after_kills =
        procfs::memory(tracer.pid()).with_context(|| format!("reading {name}'s memory after the kills"))?;
    let exit = tracer.stop().with_context(|| format!("stopping {name}"))?;

    let seq = seen.tally(&seq_hogs, cgroups.seq.oom_kills()?);
    let storm_kernel_kills = cgroups.storm.iter().map(MemCgroup::oom_kills).sum::<Result<u64>>()?;
    let storm = seen.tally(&storm_hogs, storm_kernel_kills);
    let ours: HashSet<u32> = seq_hogs.iter().chain(&storm_hogs).map(|hog| hog.pid).collect();
    let foreign_events = seen.foreign(&ours);
    drop(cgroups);
    progress(&format!(
        "{name}: sequential {}/{} events, storm {}/{} events; exit {exit}",
        seq.events_matched(),
        seq.oom_killed(),
        storm.events_matched(),
        storm.oom_killed()
    ));
    Ok(ToolFigures {
        name,
        version: tool.version.clone(),
        attach,
        probes_attached,
        idle,
        idle_cpu_percent,
        after_kills,
        seq,
        storm,
        foreign_events,
    })
}

fn join_ms(times: &[Duration]) -> String {
    times.iter().map(|t| format!("{:.1} ms", t.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", ")
}

/// VmRSS/VmHWM after settling, and CPU as % of one core over the window.
fn idle_footprint(pid: u32) -> Result<(Memory, f64)> {
    thread::sleep(IDLE_SETTLE);
    let memory = procfs::memory(pid)?;
    let ticks_per_sec = procfs::clock_ticks_per_sec()?;
    let before = procfs::cpu_ticks(pid)?;
    let from = Instant::now();
    thread::sleep(IDLE_WINDOW);
    let after = procfs::cpu_ticks(pid)?;
    let seconds = from.elapsed().as_secs_f64();
    let cpu_percent = (after.saturating_sub(before)) as f64 / (seconds * ticks_per_sec as f64) * 100.0;
    Ok((memory, cpu_percent))
}

/// One hog at a time; each kill's event is awaited before the next hog starts.
fn kill_sequentially(tracer: &Tracer, cgroup: &MemCgroup, kills: usize, seen: &mut Seen) -> Result<Vec<Hog>> {
    let mut hogs = Vec::with_capacity(kills);
    for _ in 0..kills {
        let hog = wait_hog(cgroup.spawn_hog()?)?;
        if hog.oom_killed {
            seen.wait_for(tracer, &[hog.pid], EVENT_DEADLINE);
        }
        hogs.push(hog);
    }
    Ok(hogs)
}

/// One hog per storm cgroup, all started at once.
pub fn kill_storm(tracer: &Tracer, cgroups: &[MemCgroup], seen: &mut Seen) -> Result<Vec<Hog>> {
    let children = cgroups.iter().map(MemCgroup::spawn_hog).collect::<Result<Vec<_>>>()?;
    let hogs = children.into_iter().map(wait_hog).collect::<Result<Vec<_>>>()?;
    let killed: Vec<u32> = hogs.iter().filter(|hog| hog.oom_killed).map(|hog| hog.pid).collect();
    seen.wait_for(tracer, &killed, EVENT_DEADLINE);
    Ok(hogs)
}

/// bpftrace, installed with apt-get when missing; never fails the bench.
fn bpftrace_peer(hierarchy: &Hierarchy, args: &BenchArgs, cgroup_name: &str) -> (Peer, Option<ClockCheck>) {
    let binary = match ensure_installed("bpftrace", "bpftrace") {
        Ok(binary) => binary,
        Err(reason) => return (Peer::Unavailable(reason), None),
    };
    let (clock, evidence) = bpftrace_clock(&binary);
    progress(&format!("bpftrace: nsecs is {} ({evidence})", clock.name()));
    let clock_check = match check_bpftrace_clock(&binary, clock, evidence) {
        Ok(check) => check,
        Err(error) => return (Peer::Unavailable(format!("bpftrace's clock check failed: {error:#}")), None),
    };
    if !clock_check.holds() {
        let reason = format!("bpftrace's nsecs is not {}: latencies would not be comparable", clock.name());
        return (Peer::Unavailable(reason), Some(clock_check));
    }
    let spec = bpftrace_spec(&binary, clock);
    let tool =
        Tool { name: "bpftrace", version: version_of(&binary, "--version"), attach_spec: spec.clone(), run_spec: spec };
    let peer = match measure(&tool, hierarchy, args, cgroup_name) {
        Ok(figures) => Peer::Measured(Box::new(figures)),
        Err(error) => {
            progress(&format!("bpftrace: {error:#}"));
            Peer::Unavailable(format!("{error:#}"))
        }
    };
    (peer, Some(clock_check))
}

/// Which kernel clock bpftrace's `nsecs` reads: the BPF helper it compiles to
/// (ids from include/uapi/linux/bpf.h), as `bpftrace -d` shows in its LLVM IR.
/// bpftrace documents `nsecs` as the boot clock on kernels since 5.7.
fn bpftrace_clock(binary: &Path) -> (Clock, String) {
    let output = Command::new(binary).args(["-d", "-e", BPFTRACE_PROGRAM]).stdin(Stdio::null()).output();
    let text = output
        .map(|out| format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        .unwrap_or_default();
    clock_from_ir(&text)
}

fn clock_from_ir(ir: &str) -> (Clock, String) {
    if ir.contains("inttoptr (i64 125 to") {
        (Clock::Boottime, "`bpftrace -d` shows `nsecs` compiled to BPF helper 125, bpf_ktime_get_boot_ns".to_owned())
    } else if ir.contains("inttoptr (i64 5 to") {
        (Clock::Monotonic, "`bpftrace -d` shows `nsecs` compiled to BPF helper 5, bpf_ktime_get_ns".to_owned())
    } else {
        let evidence = "bpftrace documents `nsecs` as the boot clock (bpf_ktime_get_boot_ns) on kernels since 5.7; \
                        `bpftrace -d` did not show the helper";
        (Clock::Boottime, evidence.to_owned())
    }
}

/// Checks `clock` against a BEGIN probe: its `nsecs` must fall between the
/// bench's reading of that clock before the start and when the line arrives.
fn check_bpftrace_clock(binary: &Path, clock: Clock, evidence: String) -> Result<ClockCheck> {
    fn parse_begin(line: &str) -> Option<(u32, u64)> {
        Some((0, line.trim().strip_prefix("nsecs=")?.parse().ok()?))
    }
    let spec = Spec {
        program: binary.to_owned(),
        args: vec![OsString::from("-e"), OsString::from(r#"BEGIN { printf("nsecs=%llu\n", nsecs); exit(); }"#)],
        env: Vec::new(),
        markers: Vec::new(),
        parse: parse_begin,
        clock,
    };
    let before_ns = clock.now_ns();
    let mut tracer = Tracer::spawn(&spec)?;
    let event = tracer.next_event(ATTACH_DEADLINE);
    let status = tracer.stop()?;
    let event =
        event.with_context(|| format!("no nsecs line from a BEGIN probe ({status}): {:?}", tracer.log_lines()))?;
    Ok(ClockCheck {
        clock,
        evidence,
        before_ns,
        nsecs: event.ktime_ns,
        received_ns: event.received_ns,
        boottime_minus_monotonic_ns: procfs::boottime_ns().saturating_sub(procfs::monotonic_ns()),
    })
}

/// bcc's oomkill uses a kprobe on oom_kill_process; on kernels without
/// kprobes it cannot attach, and the report says why.
fn bcc_peer() -> Peer {
    let binary = match ensure_installed("oomkill-bpfcc", "bpfcc-tools") {
        Ok(binary) => binary,
        Err(reason) => return Peer::Unavailable(reason),
    };
    progress("bcc: starting oomkill-bpfcc");
    let spec = Spec {
        program: binary,
        args: Vec::new(),
        env: vec![("PYTHONUNBUFFERED", "1".to_owned())],
        markers: vec!["Tracing OOM kills"],
        parse: |_| None,
        clock: Clock::Monotonic,
    };
    let mut tracer = match Tracer::spawn(&spec) {
        Ok(tracer) => tracer,
        Err(error) => return Peer::Unavailable(format!("{error:#}")),
    };
    let outcome = match tracer.wait_marker(0, ATTACH_DEADLINE) {
        Ok(attached) => Peer::AttachedOnly {
            attach: attached,
            note: "it prints wall-clock seconds, not kernel ns, so latency cannot be measured the same way".to_owned(),
        },
        Err(_) => Peer::Unavailable(format!("{}{}", bcc_failure_reason(&tracer.log_lines()), kprobe_support())),
    };
    let _ = tracer.stop();
    progress(&format!("bcc: {}", outcome.summary()));
    outcome
}

/// The informative lines of bcc's output: its own diagnostics (kernel
/// headers, kprobe attach) and the exception, without the traceback.
fn bcc_failure_reason(lines: &[String]) -> String {
    let informative = |line: &&str| {
        !line.starts_with("File ")
            && !line.starts_with("raise ")
            && !line.starts_with("Traceback")
            && (line.contains("kprobe") || line.contains("kernel headers") || line.starts_with("Exception"))
    };
    let parts: Vec<&str> = lines.iter().map(|l| l.trim()).filter(informative).take(3).collect();
    match (parts.is_empty(), lines.iter().rev().map(|l| l.trim()).find(|l| !l.is_empty())) {
        (false, _) => parts.join(" / "),
        (true, Some(last)) => last.to_owned(),
        (true, None) => "it exited without output".to_owned(),
    }
}

/// Whether this kernel can run a kprobe at all (bcc's oomkill needs one).
fn kprobe_support() -> &'static str {
    let pmu = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let events = Path::new("/sys/kernel/tracing/kprobe_events").exists()
        || Path::new("/sys/kernel/debug/tracing/kprobe_events").exists();
    if pmu || events {
        ""
    } else {
        "; and this kernel has no kprobes at all (no /sys/bus/event_source/devices/kprobe, no tracefs kprobe_events), \
         so it could not attach even with headers"
    }
}

/// Finds `binary` on PATH (and the sbin directories), installing `package`
/// with apt-get when it is missing. The error is the reason to report.
fn ensure_installed(binary: &str, package: &str) -> Result<PathBuf, String> {
    if let Some(path) = find_program(binary) {
        return Ok(path);
    }
    progress(&format!("{binary} not found: apt-get install -y {package}"));
    let mut result = apt_install(package);
    if result.is_err() {
        progress("apt-get install failed; running apt-get update and trying once more");
        let _ = apt(&["update"]);
        result = apt_install(package);
    }
    result?;
    find_program(binary).ok_or_else(|| format!("{package} installed but no {binary} on PATH"))
}

fn apt_install(package: &str) -> Result<(), String> {
    apt(&["install", "-y", "--no-install-recommends", package])
}

fn apt(args: &[&str]) -> Result<(), String> {
    let output = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run apt-get: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
    Err(format!("apt-get {} failed ({}): {}", args.join(" "), output.status, last.trim()))
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_oomtrace_event() {
        let line = r#"{"time":"x","ktime_ns":5000000000,"victim":{"pid":4242,"comm":"dd"},"trigger":{"pid":1}}"#;
        assert_eq!(parse_oomtrace_line(line), Some((4242, 5_000_000_000)));
        assert_eq!(parse_oomtrace_line("2025-01-01 INFO waiting for OOM kills"), None);
        assert_eq!(parse_oomtrace_line(r#"{"ktime_ns":1}"#), None);
    }

    #[test]
    fn parses_a_bpftrace_line() {
        assert_eq!(parse_bpftrace_line("123456789 4242"), Some((4242, 123_456_789)));
        assert_eq!(parse_bpftrace_line("Attaching 1 probe..."), None);
        assert_eq!(parse_bpftrace_line("__BPFTRACE_NOTIFY_PROBES_ATTACHED"), None);
    }

    #[test]
    fn tally_counts_missing_and_duplicate_events() {
        let event = |victim_pid, received_ns| Observed { victim_pid, ktime_ns: 1_000, received_ns };
        let mut seen = Seen::default();
        seen.record(event(1, 2_000));
        seen.record(event(2, 4_000));
        seen.record(event(2, 5_000));
        seen.record(event(9, 5_000));
        let hogs = [
            Hog { pid: 1, oom_killed: true },
            Hog { pid: 2, oom_killed: true },
            Hog { pid: 3, oom_killed: true },
            Hog { pid: 4, oom_killed: false },
        ];
        let run = seen.tally(&hogs, 3);
        assert_eq!(run.latencies_ns, [1_000, 3_000]);
        assert_eq!((run.missing.as_slice(), run.duplicates, run.not_killed), (&[3][..], 1, 1));
        assert_eq!(seen.foreign(&[1, 2, 3, 4].into()), 1);
    }

    #[test]
    fn bcc_reason_names_the_exception() {
        let lines = [
            "Traceback (most recent call last):",
            "  File \"/usr/lib/python3/dist-packages/bcc/__init__.py\", line 479, in __init__",
            "    raise Exception(\"Failed to compile BPF module %s\" % (src_file or \"<text>\"))",
            "Exception: Failed to compile BPF module <text>",
        ]
        .map(String::from);
        assert_eq!(bcc_failure_reason(&lines), "Exception: Failed to compile BPF module <text>");
        assert_eq!(bcc_failure_reason(&["odd".to_owned(), "".to_owned()]), "odd");
    }

    #[test]
    fn the_clock_comes_from_the_helper_in_the_ir() {
        let boot = "  %get_ns = tail call i64 inttoptr (i64 125 to i64 ()*)()";
        assert_eq!(clock_from_ir(boot).0, Clock::Boottime);
        let mono = "  %get_ns = call i64 inttoptr (i64 5 to ptr)()";
        assert_eq!(clock_from_ir(mono).0, Clock::Monotonic);
        assert_eq!(clock_from_ir("  call i64 inttoptr (i64 25 to ptr)").0, Clock::Boottime);
    }
}
