//! What pod attribution adds to an event: oomtrace's own
//! `enrich::pod::PodResolver::attribute`, timed on a real pod that
//! containerd runs, cold (first lookup) and cached, and against a CRI socket
//! that never answers.
//!
//! The xtask does not link oomtrace: it runs the pod over CRI, then the
//! `enrichment_bench` example of the oomtrace crate, built with `--release`
//! (as oomtrace ships), times the lookups of the pod's containers and prints
//! its figures as one JSON line, parsed here.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use k8s_cri::v1::ContainerState;
use serde::Deserialize;

use crate::bench::{
    figures::EnrichmentFigures,
    host::{self, cargo_build},
    settings::{
        CACHED_CALLS, COLD_RUNS, CONTAINER_DEADLINE, ENRICHMENT_EXAMPLE, EXITED_CALLS, HUNG_CALLS, POD_NAMESPACE,
    },
};
use oomtrace_testkit::cri::{self, CriClient, Pod};

/// Builds the example (unless `build` is false: then the existing release
/// build), runs a pod in the runtime behind `socket`, times its attribution,
/// removes the pod.
pub fn measure(root: &Path, socket: &str, build: bool) -> Result<EnrichmentFigures> {
    if build {
        cargo_build(root, "release", &["-p", "oomtrace", "--example", ENRICHMENT_EXAMPLE])?;
    }
    let example = root.join("target/release/examples").join(ENRICHMENT_EXAMPLE);
    if !example.exists() {
        bail!(
            "{} does not exist (--no-build); build it with `cargo build --release -p oomtrace --example {ENRICHMENT_EXAMPLE}`",
            example.display()
        );
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building a tokio runtime")?;
    let client = runtime.block_on(CriClient::connect(socket))?;
    let version = runtime.block_on(client.version())?;
    let name = format!("oomtrace-bench-{}", std::process::id());
    progress(&format!("running pod {POD_NAMESPACE}/{name} in {version}"));
    let pod = runtime.block_on(client.run_pod(&name, POD_NAMESPACE, &cri::new_uid()))?;
    let measured = runtime
        .block_on(PodUnderTest::start(&client, &pod))
        .and_then(|containers| run_example(&example, socket, &containers));
    let removed = runtime.block_on(client.remove_pod(&pod));
    let (timings, container_path) = measured?;
    removed.with_context(|| format!("removing the bench pod {} (sandbox {})", pod.name, pod.id))?;
    Ok(timings.into_figures(version, container_path))
}

fn progress(message: &str) {
    host::progress(&format!("enrichment: {message}"));
}

/// A running container of the pod: its main pid and memory cgroup path.
struct Running {
    pid: u32,
    path: String,
}

/// The pod's containers the example looks up: two that run, one that exited.
struct PodUnderTest {
    app: Running,
    sidecar: Running,
    exited_path: String,
    /// `namespace/pod/app`, the name the app container must be attributed to.
    app_name: String,
}

impl PodUnderTest {
    async fn start(client: &CriClient, pod: &Pod) -> Result<Self> {
        let app = run_sleeper(client, pod, "app").await?;
        let sidecar = run_sleeper(client, pod, "sidecar").await?;
        let exited_id = client.run_container(pod, "oneshot", &["true"]).await?;
        client.wait_status(&exited_id, |s| s.state == ContainerState::ContainerExited, CONTAINER_DEADLINE).await?;
        Ok(PodUnderTest {
            app,
            sidecar,
            exited_path: format!("{}/{exited_id}", pod.cgroup_parent),
            app_name: format!("{}/{}/app", pod.namespace, pod.name),
        })
    }
}

async fn run_sleeper(client: &CriClient, pod: &Pod, name: &str) -> Result<Running> {
    let id = client.run_container(pod, name, &["sleep", "3600"]).await?;
    let status = client
        .wait_status(&id, |s| s.state == ContainerState::ContainerRunning && s.pid > 0, CONTAINER_DEADLINE)
        .await?;
    let path = cri::memory_cgroup_of(status.pid)
        .with_context(|| format!("no memory cgroup for pid {} of container {name}", status.pid))?;
    let expected = format!("{}/{id}", pod.cgroup_parent);
    if path != expected {
        bail!("container {name} runs in the memory cgroup {path}, not {expected} (is containerd using cgroupfs?)");
    }
    Ok(Running { pid: status.pid, path })
}

/// Runs the example against the pod; its figures and the app's cgroup path.
fn run_example(example: &Path, socket: &str, pod: &PodUnderTest) -> Result<(ExampleTimings, String)> {
    let counts = [
        ("--cold-runs", COLD_RUNS),
        ("--cached-calls", CACHED_CALLS),
        ("--exited-calls", EXITED_CALLS),
        ("--hung-calls", HUNG_CALLS),
    ];
    let mut command = Command::new(example);
    command
        .arg("--cri-socket")
        .arg(PathBuf::from(socket))
        .args(["--app-cgroup", &pod.app.path, "--app-pid", &pod.app.pid.to_string()])
        .args(["--sidecar-cgroup", &pod.sidecar.path, "--sidecar-pid", &pod.sidecar.pid.to_string()])
        .args(["--exited-cgroup", &pod.exited_path, "--expect", &pod.app_name]);
    for (flag, count) in counts {
        command.args([flag, &count.to_string()]);
    }
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", example.display()))?;
    if !output.status.success() {
        bail!("{} failed ({}); see its output above", example.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let timings = ExampleTimings::parse(&stdout)?;
    Ok((timings, pod.app.path.clone()))
}

/// The JSON line oomtrace/examples/enrichment_bench.rs prints.
#[derive(Debug, Deserialize)]
struct ExampleTimings {
    optimized: bool,
    attribution: String,
    cold_connect_ns: Vec<u64>,
    cold_connected_ns: Vec<u64>,
    after_warm_ns: Vec<u64>,
    cached_ns: Vec<u64>,
    exited_ns: Vec<u64>,
    exited_attribution: String,
    hung_ns: Vec<u64>,
    hung_attribution: String,
    timeout_ns: u64,
}

impl ExampleTimings {
    /// The last non-empty line of the example's stdout.
    fn parse(stdout: &str) -> Result<Self> {
        let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        serde_json::from_str(line).with_context(|| format!("the example printed no figures: {:?}", stdout.trim()))
    }

    fn into_figures(self, runtime: String, container_path: String) -> EnrichmentFigures {
        let times = |ns: Vec<u64>| ns.into_iter().map(Duration::from_nanos).collect();
        EnrichmentFigures {
            optimized: self.optimized,
            runtime,
            container_path,
            attribution: self.attribution,
            cold_connect: times(self.cold_connect_ns),
            cold_connected: times(self.cold_connected_ns),
            after_warm: times(self.after_warm_ns),
            cached: times(self.cached_ns),
            exited: times(self.exited_ns),
            exited_attribution: self.exited_attribution,
            hung: times(self.hung_ns),
            hung_attribution: self.hung_attribution,
            timeout: Duration::from_nanos(self.timeout_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_example_line() {
        let stdout =
            r#"{"optimized":true,"attribution":"full: ns/pod/app, main_process=true","cold_connect_ns":[273100],
"cold_connected_ns":[225000],"after_warm_ns":[222600,266700],"cached_ns":[400,500],"exited_ns":[379700],
"exited_attribution":"full: ns/pod/oneshot","hung_ns":[251550000,1500],"hung_attribution":"partial: no pod name",
"timeout_ns":250000000}"#
                .replace('\n', "");
        let timings = ExampleTimings::parse(&format!("\n{stdout}\n")).unwrap();
        let figures = timings.into_figures("containerd 1.6.20".to_owned(), "/kubepods/x".to_owned());
        assert_eq!(figures.timeout, Duration::from_millis(250));
        assert_eq!(figures.hung, [Duration::from_nanos(251_550_000), Duration::from_nanos(1_500)]);
        assert_eq!(figures.after_warm.len(), 2);
        assert_eq!((figures.runtime.as_str(), figures.container_path.as_str()), ("containerd 1.6.20", "/kubepods/x"));
        assert!(figures.optimized);
        assert!(ExampleTimings::parse("no json").is_err());
    }
}
