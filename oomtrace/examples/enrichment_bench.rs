//! Times `PodResolver::attribute` (pod attribution, `enrich::pod`) in
//! process, as the daemon's pipeline awaits it once per event: cold (first
//! lookup, fresh and connected resolver), after `warm()`, cached, for an
//! exited container, and against a CRI socket that never answers.
//!
//! `cargo xtask bench` runs a pod over CRI, builds this example with
//! `--release` (as oomtrace ships) and runs it against that pod's containers;
//! it prints its figures as one JSON line on stdout (progress on stderr):
//!
//! ```text
//! {"optimized":true,"attribution":"full: ns/pod/app, main_process=true",
//!  "cold_connect_ns":[..],"cold_connected_ns":[..],"after_warm_ns":[..],"cached_ns":[..],
//!  "exited_ns":[..],"exited_attribution":"..","hung_ns":[..],"hung_attribution":"..","timeout_ns":250000000}
//! ```
//!
//! By hand, against containers that run:
//! `cargo run --release -p oomtrace --example enrichment_bench -- --cri-socket S --app-cgroup P --app-pid N
//! --sidecar-cgroup P --sidecar-pid N --exited-cgroup P --expect ns/pod/app --cold-runs 20 --cached-calls 1000
//! --exited-calls 20 --hung-calls 5` (xtask's settings.rs holds the counts the bench uses). The CRI timeout is
//! oomtrace's default `--cri-timeout`.

use std::{
    os::unix::net::UnixListener,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use oomtrace::{config::DEFAULT_CRI_TIMEOUT, enrich::pod::PodResolver};
use oomtrace_event::{Attribution, WorkloadInfo};

#[derive(Debug, Parser)]
#[command(about = "Time oomtrace's pod attribution against running containers; print the figures as JSON")]
struct Args {
    /// The CRI socket of the runtime that runs the containers.
    #[arg(long, value_name = "PATH")]
    cri_socket: PathBuf,
    /// Memory cgroup path (as events carry it) of the container looked up cold, after warm() and cached.
    #[arg(long, value_name = "PATH")]
    app_cgroup: String,
    /// Its main pid.
    #[arg(long)]
    app_pid: u32,
    /// Another running container of the pod, looked up on a connected resolver.
    #[arg(long, value_name = "PATH")]
    sidecar_cgroup: String,
    #[arg(long)]
    sidecar_pid: u32,
    /// A container of the pod whose main process has exited.
    #[arg(long, value_name = "PATH")]
    exited_cgroup: String,
    /// `namespace/pod/container` the app container must be fully attributed to.
    #[arg(long, value_name = "NAME")]
    expect: String,
    /// Fresh resolvers timed for the cold lookups (and after warm()).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    cold_runs: u32,
    /// Cached attribute() calls timed.
    #[arg(long)]
    cached_calls: u32,
    /// attribute() calls of the exited container.
    #[arg(long)]
    exited_calls: u32,
    /// Lookups against a socket that never answers.
    #[arg(long)]
    hung_calls: u32,
}

/// A container to look up: its memory cgroup path and main pid.
struct Target<'a> {
    path: &'a str,
    pid: u32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building a tokio runtime")?;
    let figures = runtime.block_on(measure(&args))?;
    println!("{figures}");
    Ok(())
}

fn progress(message: &str) {
    eprintln!("enrichment_bench: {message}");
}

async fn measure(args: &Args) -> Result<serde_json::Value> {
    // oomtrace's default --cri-timeout, as the daemon runs by default.
    let timeout = DEFAULT_CRI_TIMEOUT;
    let [cold_runs, cached_calls, exited_calls, hung_calls] =
        [args.cold_runs, args.cached_calls, args.exited_calls, args.hung_calls].map(|n| n as usize);
    let socket = Some(args.cri_socket.clone());
    let app = Target { path: &args.app_cgroup, pid: args.app_pid };
    let sidecar = Target { path: &args.sidecar_cgroup, pid: args.sidecar_pid };
    let exited_container = Target { path: &args.exited_cgroup, pid: 0 };

    progress(&format!(
        "{} cold lookups, {} after warm(), {} cached ones, of {}",
        cold_runs, cold_runs, cached_calls, app.path
    ));
    let mut cold_connect = Vec::with_capacity(cold_runs);
    let mut cold_connected = Vec::with_capacity(cold_runs);
    let mut first = None;
    for _ in 0..cold_runs {
        let mut resolver = PodResolver::new(socket.clone(), timeout);
        let (elapsed, workload) = timed(&mut resolver, &app).await;
        cold_connect.push(elapsed);
        first.get_or_insert(workload);
        cold_connected.push(timed(&mut resolver, &sidecar).await.0);
    }
    let attributed = first.context("no cold lookup ran")?;
    check_full(&attributed, &args.expect)?;

    // What the daemon does at startup: warm() lists every container.
    let mut after_warm = Vec::with_capacity(cold_runs);
    for _ in 0..cold_runs {
        let mut resolver = PodResolver::new(socket.clone(), timeout);
        resolver.warm().await;
        after_warm.push(timed(&mut resolver, &app).await.0);
    }

    let mut resolver = PodResolver::new(socket.clone(), timeout);
    timed(&mut resolver, &app).await;
    let failures_before = resolver.stats.cri_failures;
    let mut cached = Vec::with_capacity(cached_calls);
    for _ in 0..cached_calls {
        let (elapsed, workload) = timed(&mut resolver, &app).await;
        if workload != attributed {
            bail!("a cached attribute() gave {workload:?}, the cold lookup {attributed:?}");
        }
        cached.push(elapsed);
    }
    if resolver.stats.cri_failures != failures_before {
        bail!("CRI failures during the cached lookups: {}", resolver.stats.cri_failures - failures_before);
    }

    progress(&format!("{} lookups of an exited container", exited_calls));
    let (exited, exited_attribution) = repeated(&mut resolver, &exited_container, exited_calls).await;

    progress(&format!("{} lookups against a socket that never answers ({timeout:?} timeout)", hung_calls));
    let (hung, hung_attribution) = hung_lookups(&app, hung_calls, timeout).await?;

    let ns = |times: &[Duration]| times.iter().map(nanos).collect::<Vec<_>>();
    Ok(serde_json::json!({
        "optimized": !cfg!(debug_assertions),
        "attribution": describe(&attributed),
        "cold_connect_ns": ns(&cold_connect),
        "cold_connected_ns": ns(&cold_connected),
        "after_warm_ns": ns(&after_warm),
        "cached_ns": ns(&cached),
        "exited_ns": ns(&exited),
        "exited_attribution": exited_attribution,
        "hung_ns": ns(&hung),
        "hung_attribution": hung_attribution,
        "timeout_ns": nanos(&timeout),
    }))
}

fn nanos(time: &Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

/// One attribute() call, timed around the await alone.
async fn timed(resolver: &mut PodResolver, target: &Target<'_>) -> (Duration, WorkloadInfo) {
    let started = Instant::now();
    let workload = resolver.attribute(Some(target.path), Some(target.pid)).await;
    let elapsed = started.elapsed();
    (elapsed, std::hint::black_box(workload))
}

/// `calls` lookups of one container on one resolver: their times and the
/// last attribution.
async fn repeated(resolver: &mut PodResolver, target: &Target<'_>, calls: usize) -> (Vec<Duration>, String) {
    let mut times = Vec::with_capacity(calls);
    let mut last = None;
    for _ in 0..calls {
        let (elapsed, workload) = timed(resolver, target).await;
        times.push(elapsed);
        last = Some(workload);
    }
    (times, last.map_or_else(|| "none".to_owned(), |w| describe(&w)))
}

fn check_full(workload: &WorkloadInfo, expected: &str) -> Result<()> {
    if workload.attribution != Attribution::Full || workload.kubernetes_name().as_deref() != Some(expected) {
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
/// one resolver, as in the daemon.
async fn hung_lookups(target: &Target<'_>, calls: usize, timeout: Duration) -> Result<(Vec<Duration>, String)> {
    let socket = std::env::temp_dir().join(format!("oomtrace-bench-hung-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    let mut resolver = PodResolver::new(Some(socket.clone()), timeout);
    let lookups = repeated(&mut resolver, target, calls).await;
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    Ok(lookups)
}
