//! What pod attribution adds to an event: oomtrace's own
//! `enrich::pod::PodResolver::attribute`, timed in process on a real pod
//! that containerd runs, cold (first lookup) and cached, and against a CRI
//! socket that never answers.
//!
//! `cargo xtask` builds the xtask without optimizations, and the library with
//! it; timing that would overstate what the shipped (release) oomtrace spends.
//! So the bench builds the xtask with `--release` and runs its hidden
//! `enrichment-probe` command, which measures and prints the figures as JSON.

use std::{
    os::unix::net::UnixListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use k8s_cri::v1::ContainerState;
use oomtrace::enrich::pod::{Attribution, PodResolver, WorkloadInfo};

use crate::{
    cri::{self, CriClient, Pod},
    report::EnrichmentFigures,
};

/// Cached attribute() calls timed.
pub const CACHED_CALLS: usize = 1000;
/// Fresh resolvers timed for the cold lookups.
pub const COLD_RUNS: usize = 20;
/// attribute() calls of a container that has exited.
pub const EXITED_CALLS: usize = 20;
/// Lookups against the socket that never answers.
pub const HUNG_CALLS: usize = 5;
/// oomtrace's default --cri-timeout.
pub const CRI_TIMEOUT: Duration = Duration::from_millis(250);
const NAMESPACE: &str = "oomtrace-bench";
const RUNNING_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The CRI socket of the runtime to run the pod in.
    #[arg(long, value_name = "PATH")]
    pub cri_socket: String,
}

/// The hidden `enrichment-probe` command: measure, print JSON on stdout.
pub fn probe(args: &ProbeArgs) -> Result<()> {
    let figures = measure(&args.cri_socket)?;
    println!("{}", serde_json::to_string(&figures).context("encoding the figures")?);
    Ok(())
}

/// Builds the xtask with `--release` (unless `build` is false: then the
/// existing target/release/xtask) and runs its `enrichment-probe`.
pub fn measure_release(root: &Path, socket: &str, build: bool) -> Result<EnrichmentFigures> {
    if build {
        crate::bench::cargo_build_release(root, "xtask")?;
    }
    let binary = root.join("target/release/xtask");
    if !binary.exists() {
        bail!("{} does not exist (--no-build); build it with `cargo build --release -p xtask`", binary.display());
    }
    let output = Command::new(&binary)
        .args(["enrichment-probe", "--cri-socket", socket])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} enrichment-probe", binary.display()))?;
    if !output.status.success() {
        bail!("{} enrichment-probe failed ({}); see its output above", binary.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| format!("the probe printed no figures: {:?}", stdout.trim()))
}

pub fn measure(socket: &str) -> Result<EnrichmentFigures> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building a tokio runtime")?;
    runtime.block_on(async {
        let client = CriClient::connect(socket).await?;
        let version = client.version().await?;
        let name = format!("oomtrace-bench-{}", std::process::id());
        progress(&format!("running pod {NAMESPACE}/{name} in {version}"));
        let pod = client.run_pod(&name, NAMESPACE, &cri::new_uid()).await?;
        let measured = measure_pod(&client, &pod, socket, version).await;
        let removed = client.remove_pod(&pod).await;
        let figures = measured?;
        removed.with_context(|| format!("removing the bench pod {} (sandbox {})", pod.name, pod.id))?;
        Ok(figures)
    })
}

fn progress(message: &str) {
    eprintln!("xtask bench: enrichment: {message}");
}

/// A running container of the pod: its main pid and memory cgroup path.
struct Running {
    pid: u32,
    path: String,
}

async fn run_sleeper(client: &CriClient, pod: &Pod, name: &str) -> Result<Running> {
    let id = client.run_container(pod, name, &["sleep", "3600"]).await?;
    let status =
        client.wait_status(&id, |s| s.state == ContainerState::ContainerRunning && s.pid > 0, RUNNING_DEADLINE).await?;
    let path = cri::memory_cgroup_of(status.pid)
        .with_context(|| format!("no memory cgroup for pid {} of container {name}", status.pid))?;
    let expected = format!("{}/{id}", pod.cgroup_parent);
    if path != expected {
        bail!("container {name} runs in the memory cgroup {path}, not {expected} (is containerd using cgroupfs?)");
    }
    Ok(Running { pid: status.pid, path })
}

async fn measure_pod(client: &CriClient, pod: &Pod, socket: &str, runtime: String) -> Result<EnrichmentFigures> {
    let app = run_sleeper(client, pod, "app").await?;
    let sidecar = run_sleeper(client, pod, "sidecar").await?;
    let exited_id = client.run_container(pod, "oneshot", &["true"]).await?;
    client.wait_status(&exited_id, |s| s.state == ContainerState::ContainerExited, RUNNING_DEADLINE).await?;
    let exited_path = format!("{}/{exited_id}", pod.cgroup_parent);
    let socket = Some(PathBuf::from(socket));

    progress(&format!(
        "{COLD_RUNS} cold lookups, {COLD_RUNS} after warm(), {CACHED_CALLS} cached ones, of {}",
        app.path
    ));
    let mut cold_connect = Vec::with_capacity(COLD_RUNS);
    let mut cold_connected = Vec::with_capacity(COLD_RUNS);
    let mut first = None;
    for _ in 0..COLD_RUNS {
        let mut resolver = PodResolver::new(socket.clone(), CRI_TIMEOUT);
        let (elapsed, workload) = timed(&mut resolver, &app.path, app.pid).await;
        cold_connect.push(elapsed);
        first.get_or_insert(workload);
        cold_connected.push(timed(&mut resolver, &sidecar.path, sidecar.pid).await.0);
    }
    let attributed = first.context("no cold lookup ran")?;
    check_full(&attributed, pod, "app")?;

    // What the daemon does at startup: warm() lists every container.
    let mut after_warm = Vec::with_capacity(COLD_RUNS);
    for _ in 0..COLD_RUNS {
        let mut resolver = PodResolver::new(socket.clone(), CRI_TIMEOUT);
        resolver.warm().await;
        after_warm.push(timed(&mut resolver, &app.path, app.pid).await.0);
    }

    let mut resolver = PodResolver::new(socket.clone(), CRI_TIMEOUT);
    timed(&mut resolver, &app.path, app.pid).await;
    let failures_before = resolver.stats.cri_failures;
    let mut cached = Vec::with_capacity(CACHED_CALLS);
    for _ in 0..CACHED_CALLS {
        let (elapsed, workload) = timed(&mut resolver, &app.path, app.pid).await;
        if workload != attributed {
            bail!("a cached attribute() gave {workload:?}, the cold lookup {attributed:?}");
        }
        cached.push(elapsed);
    }
    if resolver.stats.cri_failures != failures_before {
        bail!("CRI failures during the cached lookups: {}", resolver.stats.cri_failures - failures_before);
    }

    progress(&format!("{EXITED_CALLS} lookups of an exited container"));
    let mut exited = Vec::with_capacity(EXITED_CALLS);
    let mut exited_workload = None;
    for _ in 0..EXITED_CALLS {
        let (elapsed, workload) = timed(&mut resolver, &exited_path, 0).await;
        exited.push(elapsed);
        exited_workload = Some(workload);
    }
    let exited_attribution = exited_workload.map_or_else(|| "none".to_owned(), |w| describe(&w));

    progress(&format!("{HUNG_CALLS} lookups against a socket that never answers ({CRI_TIMEOUT:?} timeout)"));
    let (hung, hung_attribution) = hung_lookups(&app.path, app.pid).await?;

    Ok(EnrichmentFigures {
        optimized: !cfg!(debug_assertions),
        runtime,
        container_path: app.path,
        attribution: describe(&attributed),
        cold_connect,
        cold_connected,
        after_warm,
        cached,
        exited,
        exited_attribution,
        hung,
        hung_attribution,
        timeout: CRI_TIMEOUT,
    })
}

/// One attribute() call, timed around the await alone.
async fn timed(resolver: &mut PodResolver, path: &str, tgid: u32) -> (Duration, WorkloadInfo) {
    let started = Instant::now();
    let workload = resolver.attribute(Some(path), Some(tgid)).await;
    let elapsed = started.elapsed();
    (elapsed, std::hint::black_box(workload))
}

fn check_full(workload: &WorkloadInfo, pod: &Pod, container: &str) -> Result<()> {
    let expected = format!("{}/{}/{container}", pod.namespace, pod.name);
    if workload.attribution != Attribution::Full || workload.kubernetes_name().as_deref() != Some(expected.as_str()) {
        bail!("the cold lookup did not attribute the container fully to {expected}: {workload:?}");
    }
    Ok(())
}

fn describe(workload: &WorkloadInfo) -> String {
    let attribution = match workload.attribution {
        Attribution::Full => "full",
        Attribution::Partial => "partial",
        Attribution::Host => "host",
        Attribution::Unknown => "unknown",
    };
    let mut text = format!("{attribution}: {}", workload.kubernetes_name().unwrap_or_else(|| "no pod name".to_owned()));
    if let Some(main) = workload.main_process {
        text.push_str(&format!(", main_process={main}"));
    }
    if let Some(reason) = &workload.partial_reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

/// A unix socket that is bound and listening but never accepts: connections
/// queue in the backlog and nothing ever answers. Every lookup goes through
/// one resolver, as in the daemon (failures are not cached).
async fn hung_lookups(path: &str, tgid: u32) -> Result<(Vec<Duration>, String)> {
    let socket = std::env::temp_dir().join(format!("oomtrace-bench-hung-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    let mut resolver = PodResolver::new(Some(socket.clone()), CRI_TIMEOUT);
    let mut times = Vec::with_capacity(HUNG_CALLS);
    let mut last = None;
    for _ in 0..HUNG_CALLS {
        let (elapsed, workload) = timed(&mut resolver, path, tgid).await;
        times.push(elapsed);
        last = Some(workload);
    }
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    Ok((times, last.map_or_else(|| "none".to_owned(), |w| describe(&w))))
}
