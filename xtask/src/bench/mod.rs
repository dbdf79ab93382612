//! `cargo xtask bench`: oomtrace on real memcg OOM kills, and bpftrace on the
//! same kills as a peer, measured the same way in the same run.
//!
//! For each tool: start-to-attached (5 starts), idle footprint (RSS, CPU over
//! 10 s), then kill-to-line latency for N sequential kills and a storm of
//! parallel kills, counting every kill's events, with the kernel's run-time
//! statistics of the tool's BPF programs over those kills (and the prebuilt
//! object's programs against the verifier's limits). Then `oomtrace daemon` with
//! both exporters on and the cost of pod attribution, against the real
//! containerd, Prometheus and OTLP receiver the tests use (started when not
//! running). Last, `oomtrace history` on a 100 MB syslog file and on the
//! kernel's ring buffer, beside grep, cat and dmesg. The report goes to stdout
//! and to docs/benchmarks.md; `--only klog` measures the kernel log section
//! alone and rewrites only its part of the file (`splice`). `--only warnings`
//! and `--only storm` (storms and the wave, oomtrace and bpftrace tracing the
//! same kills, and the time to know through the daemon's OTLP export) write
//! blocks of their own, which a full run keeps.
//!
//! The modules depend one way: `settings` <- `runs` -> `figures` -> `report`
//! (the report reads the settings it quotes too); `host` serves the runs and
//! this orchestration, which alone knows every part.

mod ebpf_log;
mod figures;
mod host;
pub mod receiver;
mod report;
mod runs;
mod settings;
mod splice;
mod startup;
mod warnings;

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};

use figures::{Peer, Report, Section, Verifier};
use host::progress;
use oomtrace_testkit::{
    cgroup::Hierarchy,
    components::{self, ComponentState},
    cri, observability, procfs,
    tracer::Spec,
};
use runs::tracers::{self, Kills, Tool};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Sequential OOM kills per tool.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub kills: u32,
    /// Parallel OOM kills in the storm (each hog in its own 64 MiB cgroup).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub storm: u32,
    /// Rounds of the storm `--only storm` measures (`--storm` kills at once,
    /// this many times, oomtrace and bpftrace tracing the same kills).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub storm_rounds: u32,
    /// Memory cgroups of the wave (`--only storm`): one hog in each, each at
    /// its own 24 MiB limit, all released at once.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub wave: u32,
    /// Times the wave is released (`--only storm`), in the same cgroups: its
    /// percentiles are over every round's kills (one round's are noisy; with
    /// 3 rounds the p99 ratio ranged 0.7-1.4× between runs of one build).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub wave_rounds: u32,
    /// Kills at once for the time to know (`--only storm`): kill to the
    /// record in the OTLP receiver, beside bpftrace's kill to stdout.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub know: u32,
    /// Storms of `--know` kills the time to know is measured over, one daemon
    /// throughout (one storm's p99 is its slowest kill: noisy).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub know_rounds: u32,
    /// Parallel OOM kills in the daemon's burst.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub burst: u32,
    /// Measure oomtrace only (no bpftrace, no bcc).
    #[arg(long)]
    pub no_peer: bool,
    /// Leave out the daemon footprint (no Prometheus or OTLP receiver needed)
    /// and the storm section's time to know.
    #[arg(long)]
    pub no_daemon: bool,
    /// Leave out the pod attribution cost (no containerd needed).
    #[arg(long)]
    pub no_enrichment: bool,
    /// Use the existing builds (target/dist/oomtrace, the shipped profile;
    /// target/release/examples/enrichment_bench for the pod attribution and
    /// target/release/xtask for the time to know's receiver) instead of
    /// building them.
    #[arg(long)]
    pub no_build: bool,
    /// Do not start containerd, Prometheus or the OTLP receiver
    /// (scripts/runtime.sh up, scripts/observability.sh up) when they are
    /// not running: their sections then say they are unavailable.
    #[arg(long)]
    pub no_start: bool,
    /// Leave out the kernel log parsing (`oomtrace history` on a 100 MB syslog file and the ring buffer).
    #[arg(long, conflicts_with = "only")]
    pub no_klog: bool,
    /// Measure one section alone and rewrite only its part of the report (its
    /// block and its rows of the Targets table); the rest stays as it is.
    #[arg(long, value_enum, value_name = "SECTION")]
    pub only: Option<OnlySection>,
    /// Where to write the markdown report [default: <workspace>/docs/benchmarks.md].
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// A section `--only` measures alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnlySection {
    /// Kernel log parsing: `oomtrace history` on a 100 MB syslog file and on the ring buffer.
    Klog,
    /// Warnings before the kill: leaks at 1-64 MiB/s, the workloads never to warn, the watcher's cost.
    Warnings,
    /// Peak RSS at start of `live` and `daemon`, with what each startup phase adds to it.
    Startup,
    /// The eBPF log's kernel cost (`--ebpf-log` off and debug): the programs' run time and size.
    EbpfLog,
    /// Kill-to-line latency of oomtrace (defaults: the kernel log read) and
    /// bpftrace on the same kinds of kills in the same run (`--kills`
    /// sequential, a storm of `--storm`), and their ratios. Printed, not
    /// written: the report's figures come from whole runs.
    Latency,
    /// Storms: rounds of parallel kills and the wave against bpftrace, and the time to know through OTLP.
    Storm,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.only == Some(OnlySection::Klog) {
        return run_klog_only(args);
    }
    if args.only == Some(OnlySection::Latency) {
        return run_latency_only(args);
    }
    if let Some(section @ (OnlySection::Warnings | OnlySection::EbpfLog)) = args.only {
        if procfs::euid() != 0 {
            bail!("the {section:?} bench needs root to create memory cgroups and load eBPF programs; run it with sudo");
        }
        let root = host::workspace_root()?;
        let oomtrace = shipped_binary(&root, args)?;
        let output = report_path(&root, args);
        return match section {
            OnlySection::EbpfLog => ebpf_log::run(&root, &oomtrace, &output),
            _ => warnings::run(&root, &oomtrace, &output),
        };
    }
    if args.only == Some(OnlySection::Startup) {
        if procfs::euid() != 0 {
            bail!("the startup bench needs root to load eBPF programs; run it with sudo");
        }
        let root = host::workspace_root()?;
        let oomtrace = shipped_binary(&root, args)?;
        host::ensure_tracefs()?;
        return startup::run(&root, &oomtrace, &report_path(&root, args));
    }
    if args.only == Some(OnlySection::Storm) {
        return run_storm_only(args);
    }
    let started = Instant::now();
    let euid = procfs::euid();
    if euid != 0 {
        bail!(
            "the bench needs root to load eBPF programs and create memory cgroups (euid is {euid}); run it with sudo"
        );
    }
    let root = host::workspace_root()?;
    let output = report_path(&root, args);
    let oomtrace = shipped_binary(&root, args)?;
    let hierarchy = Hierarchy::detect()?;
    host::ensure_tracefs()?;
    let machine = procfs::machine()?;
    let (runtime_state, observability_state) = start_components(&root, args);
    let cgroup_name = format!("oomtrace-bench-{}", std::process::id());
    progress(&format!(
        "cgroup v{} at {}; bench cgroups under /{cgroup_name}",
        hierarchy.version(),
        hierarchy.root().display()
    ));
    let kills = Kills { sequential: args.kills as usize, storm: args.storm as usize, cgroup_name: &cgroup_name };

    let oomtrace_tool = oomtrace_tool(&oomtrace, &cgroup_name);
    let oomtrace_figures = tracers::measure(&oomtrace_tool, &hierarchy, kills)?;
    let all = oomtrace_figures.seq.events_matched() + oomtrace_figures.storm.events_matched();
    if all == 0 {
        bail!(
            "oomtrace reported none of the {} OOM kills; nothing to measure (see its log above)",
            oomtrace_figures.seq.oom_killed() + oomtrace_figures.storm.oom_killed()
        );
    }

    let (bpftrace, clock_check, peer_spec, bcc) = if args.no_peer {
        (Peer::Skipped, None, None, Peer::Skipped)
    } else {
        let (bpftrace, clock_check, spec) = runs::peers::bpftrace(&hierarchy, kills);
        (bpftrace, clock_check, spec, runs::peers::bcc())
    };
    let alternating = alternate(&oomtrace_tool, peer_spec.as_ref(), &bpftrace, &hierarchy, kills);

    let cri_socket = cri::test_socket();
    let daemon = optional_section("daemon", args.no_daemon.then_some("--no-daemon"), &observability_state, || {
        progress("daemon: footprint with Prometheus and OTLP export on");
        runs::daemon::measure(&oomtrace, &hierarchy, &cgroup_name, args.burst as usize, &cri_socket)
    });
    let enrichment =
        optional_section("enrichment", args.no_enrichment.then_some("--no-enrichment"), &runtime_state, || {
            progress("enrichment: PodResolver::attribute on a real pod");
            runs::enrichment::measure(&root, &cri_socket, !args.no_build)
        });
    let klog = if args.no_klog {
        Section::Skipped("--no-klog")
    } else {
        Section::Measured(Box::new(measure_klog(&root, &oomtrace)))
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

    let verifier = Verifier {
        event: runs::kernel_cost::event_record(&format!("/{cgroup_name}/seq")),
        prebuilt: runs::object::programs(&root.join(crate::ebpf_object::PREBUILT))
            .map_err(|error| format!("{error:#}")),
    };
    let report = Report {
        generated: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        commit: host::git_commit(&root),
        machine,
        hierarchy: format!("v{} ({})", hierarchy.version(), hierarchy.root().display()),
        kills: args.kills as usize,
        storm: args.storm as usize,
        built: !args.no_build,
        oomtrace: oomtrace_figures,
        bpftrace,
        bcc,
        clock_check,
        verifier,
        components: component_rows,
        burst: args.burst as usize,
        daemon,
        enrichment,
        klog,
        alternating,
        bench_seconds: started.elapsed().as_secs(),
    };
    let mut markdown = report::render(&report);
    // node-test's figures (image size, the agent's memory on the node), the
    // warnings section (`--only warnings`) and the startup peak (`--only
    // startup`) stay.
    let previous = fs::read_to_string(&output).unwrap_or_default();
    for kept in [warnings::BLOCK, startup::BLOCK, ebpf_log::BLOCK, report::storm::BLOCK] {
        if let Some(block) = kept.of(&previous) {
            markdown = kept.put(&markdown, block, crate::node::report::BENCH_BLOCK_BEGIN);
        }
    }
    if let Some(block) = crate::node::report::block_of(&previous) {
        markdown = crate::node::report::with_block(&markdown, block);
    }
    print!("{markdown}");
    write_report(&output, &markdown)?;
    progress(&format!("report written to {} ({} s)", output.display(), started.elapsed().as_secs()));
    Ok(())
}

/// oomtrace as the bench runs it: attached alone, then tracing the bench's cgroups.
fn oomtrace_tool(oomtrace: &Path, cgroup_name: &str) -> Tool {
    Tool {
        name: "oomtrace",
        version: host::version_of(oomtrace, "--version"),
        attach_spec: tracers::oomtrace_spec(oomtrace, None),
        run_spec: tracers::oomtrace_spec(oomtrace, Some(&format!("/{cgroup_name}"))),
    }
}

/// `--only latency`: oomtrace and bpftrace on the same kinds of kills, their
/// p50 and p99 side by side.
fn run_latency_only(args: &BenchArgs) -> Result<()> {
    if procfs::euid() != 0 {
        bail!("the latency bench needs root to load eBPF programs and create memory cgroups; run it with sudo");
    }
    let root = host::workspace_root()?;
    let oomtrace = shipped_binary(&root, args)?;
    let hierarchy = Hierarchy::detect()?;
    host::ensure_tracefs()?;
    let cgroup_name = format!("oomtrace-bench-{}", std::process::id());
    let kills = Kills { sequential: args.kills as usize, storm: args.storm as usize, cgroup_name: &cgroup_name };
    let tool = oomtrace_tool(&oomtrace, &cgroup_name);
    let ours = tracers::measure(&tool, &hierarchy, kills)?;
    let (bpftrace, _, peer_spec) = runs::peers::bpftrace(&hierarchy, kills);
    let peer = match &bpftrace {
        Peer::Measured(figures) => figures,
        Peer::Unavailable(why) => bail!("bpftrace not measured: {why}"),
        Peer::Skipped | Peer::AttachedOnly { .. } => bail!("bpftrace not measured"),
    };
    let alternating = alternate(&tool, peer_spec.as_ref(), &bpftrace, &hierarchy, kills);
    let Some(alternating) = alternating.measured() else {
        bail!("the alternating turns: {}", alternating.why_not());
    };
    let phases = [
        ("sequential", &ours.seq, &peer.seq),
        ("storm", &ours.storm, &peer.storm),
        ("alternating", &alternating.oomtrace, &alternating.peer),
    ];
    for (phase, ours, theirs) in phases {
        let (Some(a), Some(b)) = (ours.latency(), theirs.latency()) else {
            println!(
                "{phase}: no latency (events: oomtrace {}, bpftrace {})",
                ours.events_matched(),
                theirs.events_matched()
            );
            continue;
        };
        println!(
            "{phase}: oomtrace p50 {:.2} ms p99 {:.2} ms ({}/{} events); bpftrace p50 {:.2} ms p99 {:.2} ms ({}/{}); ratio p50 {:.2}x p99 {:.2}x",
            a.p50_ms,
            a.p99_ms,
            ours.events_matched(),
            ours.oom_killed(),
            b.p50_ms,
            b.p99_ms,
            theirs.events_matched(),
            theirs.oom_killed(),
            a.p50_ms / b.p50_ms,
            a.p99_ms / b.p99_ms,
        );
    }
    Ok(())
}

/// Sequential kills in alternating turns of oomtrace and bpftrace, where
/// bpftrace was measured on its own.
fn alternate(
    oomtrace: &Tool,
    peer_spec: Option<&Spec>,
    peer: &Peer,
    hierarchy: &Hierarchy,
    kills: Kills,
) -> Section<figures::Alternating> {
    match (peer, peer_spec) {
        (Peer::Measured(_), Some(spec)) => {
            match runs::alternating::measure(&oomtrace.run_spec, spec, hierarchy, kills.cgroup_name, kills.sequential) {
                Ok(figures) => Section::Measured(Box::new(figures)),
                Err(error) => {
                    progress(&format!("alternating: {error:#}"));
                    Section::Unavailable(format!("{error:#}"))
                }
            }
        }
        _ => Section::Unavailable(format!("bpftrace {}", peer.summary())),
    }
}

/// `--only klog`: the kernel log section measured alone, written into the
/// existing report in place of its previous figures.
fn run_klog_only(args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    let root = host::workspace_root()?;
    let output = report_path(&root, args);
    let oomtrace = shipped_binary(&root, args)?;
    let figures = Section::Measured(Box::new(measure_klog(&root, &oomtrace)));
    let mut section = String::new();
    report::klog::section(&mut section, &figures);
    print!("{section}");
    let previous = match fs::read_to_string(&output) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", output.display())),
    };
    write_report(&output, &splice::klog_into(&previous, &figures))?;
    progress(&format!("kernel log section written into {} ({} s)", output.display(), started.elapsed().as_secs()));
    Ok(())
}

/// `--only storm`: rounds of parallel kills and the wave, oomtrace and
/// bpftrace on the same kills, and the time to know through the daemon's OTLP
/// export; written into the existing report between the storm block's markers.
fn run_storm_only(args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    if procfs::euid() != 0 {
        bail!("the storm bench needs root to create memory cgroups and load eBPF programs; run it with sudo");
    }
    let root = host::workspace_root()?;
    let output = report_path(&root, args);
    let oomtrace = shipped_binary(&root, args)?;
    let hierarchy = Hierarchy::detect()?;
    host::ensure_tracefs()?;
    let load_average = fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split(' ').next()?.parse().ok());
    // The time to know runs its own OTLP receiver; containerd is used when it
    // answers (the daemon's CRI socket), never started for this.
    let bpftrace = if args.no_peer {
        Err("skipped (--no-peer)".to_owned())
    } else {
        runs::peers::bpftrace_checked().map(|(spec, _)| spec).map_err(|(reason, _)| reason)
    };
    let name = format!("oomtrace-bench-storm-{}", std::process::id());
    let (storm, rounds) = (args.storm as usize, args.storm_rounds as usize);
    let rounds = measured(runs::storm::shared(
        &oomtrace,
        &bpftrace,
        &hierarchy,
        &format!("{name}-rounds"),
        (storm, rounds, settings::LIMIT_BYTES),
    ));
    let wave = measured(runs::storm::wave(
        &oomtrace,
        &bpftrace,
        &hierarchy,
        &format!("{name}-wave"),
        (args.wave as usize, args.wave_rounds as usize),
    ));
    let cri_socket = cri::available().ok();
    let know = if args.no_daemon {
        Err("skipped (--no-daemon)".to_owned())
    } else {
        // The receiver optimized, as a collector is (the debug build's
        // decoding took a millisecond of CPU per request).
        measured(release_binary_of(&root, args, "xtask").and_then(|receiver| {
            runs::storm::time_to_know(
                &oomtrace,
                &receiver,
                &bpftrace,
                &hierarchy,
                &name,
                (args.know as usize, args.know_rounds as usize),
                cri_socket.as_deref(),
            )
        }))
    };
    let figures = figures::StormFigures {
        invocation: format!(
            "cargo xtask bench --only storm --storm {} --storm-rounds {} --wave {} --wave-rounds {} --know {} \
             --know-rounds {}",
            args.storm, args.storm_rounds, args.wave, args.wave_rounds, args.know, args.know_rounds
        ),
        generated: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        commit: host::git_commit(&root),
        load_average,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        oomtrace_version: host::version_of(&oomtrace, "--version"),
        bpftrace_version: bpftrace.as_ref().ok().map(|spec| host::version_of(&spec.program, "--version")),
        rounds,
        wave,
        know,
    };
    let block = report::storm::block(&figures);
    print!("{block}");
    let previous = fs::read_to_string(&output).unwrap_or_default();
    write_report(&output, &report::storm::BLOCK.put(&previous, &block, crate::bench::warnings::BLOCK_BEGIN))?;
    progress(&format!("storm section written into {} ({} s)", output.display(), started.elapsed().as_secs()));
    Ok(())
}

/// A measurement's figures, or why there are none.
fn measured<T>(result: Result<T>) -> Result<T, String> {
    result.map_err(|error| format!("{error:#}"))
}

/// The kernel log section's figures, dated and placed at a commit of their own
/// (the section can be measured alone).
fn measure_klog(root: &Path, oomtrace: &Path) -> figures::KlogFigures {
    progress("kernel log: oomtrace history on a 100 MB syslog file and on the ring buffer");
    let generated = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    runs::klog::measure(root, oomtrace, generated, host::git_commit(root))
}

fn report_path(root: &Path, args: &BenchArgs) -> PathBuf {
    args.output.clone().unwrap_or_else(|| root.join("docs/benchmarks.md"))
}

fn write_report(output: &Path, markdown: &str) -> Result<()> {
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(output, markdown).with_context(|| format!("writing the report to {}", output.display()))
}

/// target/dist/oomtrace (the profile the image and scripts/live.sh ship),
/// built unless `--no-build`.
fn shipped_binary(root: &Path, args: &BenchArgs) -> Result<PathBuf> {
    built_binary(root, args, "oomtrace", SHIPPED_PROFILE)
}

/// target/release/<package> (its binary of the same name), built unless `--no-build`.
fn release_binary_of(root: &Path, args: &BenchArgs, package: &str) -> Result<PathBuf> {
    built_binary(root, args, package, "release")
}

/// The cargo profile oomtrace is shipped in (Cargo.toml).
const SHIPPED_PROFILE: &str = "dist";

/// target/<profile>/<package>, built unless `--no-build`.
fn built_binary(root: &Path, args: &BenchArgs, package: &str, profile: &str) -> Result<PathBuf> {
    let binary = root.join("target").join(profile).join(package);
    if args.no_build {
        if !binary.exists() {
            bail!(
                "--no-build given but {} does not exist; build it with `cargo build --profile {profile} -p {package}`",
                binary.display()
            );
        }
    } else {
        host::cargo_build(root, profile, &["-p", package])?;
    }
    Ok(binary)
}

/// A section that is skipped with `skipped` (its flag), unavailable when the
/// component it needs is, and otherwise measured; a failed measurement
/// becomes its reason.
fn optional_section<T>(
    what: &str,
    skipped: Option<&'static str>,
    component: &Option<ComponentState>,
    measure: impl FnOnce() -> Result<T>,
) -> Section<T> {
    if let Some(flag) = skipped {
        return Section::Skipped(flag);
    }
    if let Some(reason) = component.as_ref().and_then(ComponentState::unavailable) {
        return Section::Unavailable(reason.to_owned());
    }
    match measure() {
        Ok(figures) => Section::Measured(Box::new(figures)),
        Err(error) => {
            progress(&format!("{what}: {error:#}"));
            Section::Unavailable(format!("{error:#}"))
        }
    }
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
