//! Pod attribution against a real containerd over CRI: pods and containers
//! made the way kubelet makes them are OOM-killed, and each event must name
//! the namespace, pod, container, container id, pod uid and QoS that the
//! runtime itself reports.

mod support;

use std::{
    process::{Command, ExitCode},
    time::Duration,
};

use anyhow::{Context as _, Result, ensure};
use oomtrace_testkit::{
    cgroup::{self, MemCgroup},
    cri::{
        ContainerState, Qos,
        blocking::{Cri, PodHandle},
        new_uid,
        proxy::WedgeableProxy,
    },
    event::{Event, Whois},
    harness::{self, Need},
    live::Live,
    trial,
};
use support::{live, oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const NAMESPACE: &str = "oomtrace-test";
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// A container that outgrows [`LIMIT`] a second after it starts.
const HOG: [&str; 3] = ["hog", "256", "1"];

fn main() -> ExitCode {
    harness::main(vec![
        trial!(a_single_container_pod_is_named, Need::Cri),
        trial!(only_the_container_that_oomed_is_named_in_a_pod_with_a_sidecar, Need::Cri),
        trial!(a_killed_child_process_is_attributed_and_flagged_as_not_main, Need::Cri),
        trial!(without_the_runtime_events_keep_what_the_cgroup_path_gives, Need::Cri),
        trial!(a_host_service_is_reported_as_host, Need::Root),
        trial!(whois_recognises_the_pod_sandbox_and_filters_select_by_name, Need::Cri),
        trial!(a_hanging_runtime_delays_an_event_by_at_most_the_timeout, Need::Cri),
        trial!(a_container_started_after_the_tracer_is_named_when_the_runtime_hangs_at_its_kill, Need::Cri),
    ])
}

/// A burstable pod named `<prefix>-...` in [`NAMESPACE`], with its name.
fn new_pod(client: &Cri, prefix: &str) -> Result<(String, PodHandle)> {
    let name = unique(prefix);
    let pod = client.run_pod(&name, NAMESPACE, &new_uid(), Qos::Burstable).context("run pod")?;
    Ok((name, pod))
}

/// `oomtrace live` watching one pod's cgroup through the CRI socket `socket`.
fn tracer_for(pod: &PodHandle, socket: &str, more: &[&str]) -> Result<Live> {
    live(&[&["--cgroup", &pod.cgroup_parent, "--cri-socket", socket][..], more].concat())
}

/// Runs container `name` of [`HOG`] in `pod` until the kernel kills it: its
/// id and CRI's exit reason.
fn run_hog(client: &Cri, pod: &PodHandle, name: &str) -> Result<(String, String)> {
    let id = client.run_container(pod, name, &HOG, Some(LIMIT)).context("run hog")?;
    let (exit_code, reason) = client.wait_exited(&id, EXIT_TIMEOUT).context("hog exits")?;
    assert_eq!(exit_code, 137, "{name} ({reason})");
    Ok((id, reason))
}

/// `oomtrace whois <pid> -o json` through `socket`.
fn whois(pid: u32, socket: &str) -> Result<Whois> {
    let out = Command::new(oomtrace())
        .args(["whois", &pid.to_string(), "-o", "json", "--cri-socket", socket])
        .output()
        .context("run whois")?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).context("whois json")
}

fn assert_names(event: &Event, pod: &PodHandle, name: &str, container: &str, id: &str) {
    let w = event.workload();
    assert_eq!(w.kind.as_deref(), Some("container"), "{event}");
    assert_eq!(w.attribution.as_deref(), Some("full"), "{event}");
    assert_eq!(w.runtime.as_deref(), Some("containerd"), "{event}");
    assert_eq!(w.namespace.as_deref(), Some(NAMESPACE), "{event}");
    assert_eq!(w.pod.as_deref(), Some(name), "{event}");
    assert_eq!(w.container.as_deref(), Some(container), "{event}");
    assert_eq!(w.container_id.as_deref(), Some(id), "{event}");
    assert_eq!(w.pod_uid.as_deref(), Some(pod.uid.as_str()), "{event}");
    assert_eq!(w.qos.as_deref(), Some("burstable"), "{event}");
    assert_eq!(w.kube_system, Some(false), "{event}");
    assert_eq!(w.sandbox, Some(false), "{event}");
    assert!(w.image.as_deref().is_some_and(|i| i.contains("oomtrace-test")), "{event}");
    assert_eq!(event.victim_cgroup_path(), Some(format!("{}/{id}", pod.cgroup_parent).as_str()), "{event}");
    assert!(event.node.as_deref().is_some_and(|n| !n.is_empty()), "{event}");
}

fn a_single_container_pod_is_named() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let (pod_name, pod) = new_pod(&client, "web")?;
    let tracer = tracer_for(&pod, client.socket(), &[])?;
    let id = client.run_container(&pod, "app", &HOG, Some(LIMIT)).context("run hog")?;
    let main_pid = client.container_status(&id).context("status")?.pid;
    let (exit_code, reason) = client.wait_exited(&id, EXIT_TIMEOUT).context("hog exits")?;
    assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"));

    let event = tracer.expect_event(EVENT_TIMEOUT)?;
    assert_names(&event, &pod, &pod_name, "app", &id);
    assert_eq!(event.victim.tgid, Some(main_pid), "{event}");
    assert_eq!(event.workload().main_process, Some(true), "{event}");
    assert_eq!(event.workload().restart_count, Some(0), "{event}");
    assert_eq!(event.victim.comm.as_deref(), Some("hog"), "{event}");
    assert_eq!(event.oom_limit_bytes(), Some(LIMIT), "{event}");
    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "{}", stopped.log);
    assert_eq!(stopped.summary()?.partially_attributed, 0, "{}", stopped.log);
    client.remove_pod(pod).context("remove pod")
}

fn only_the_container_that_oomed_is_named_in_a_pod_with_a_sidecar() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let (pod_name, pod) = new_pod(&client, "api")?;
    let tracer = tracer_for(&pod, client.socket(), &[])?;
    let sidecar = client.run_container(&pod, "proxy", &["sleep", "3600"], None).context("run sidecar")?;
    let sidecar_pid = client.container_status(&sidecar).context("sidecar status")?.pid;

    // `whois` on the live sidecar names it through the same resolution.
    let whois = whois(sidecar_pid, client.socket())?;
    assert_eq!(whois.names.container.as_deref(), Some("proxy"), "{whois:?}");
    assert_eq!(whois.names.pod.as_deref(), Some(pod_name.as_str()), "{whois:?}");
    assert_eq!(whois.names.namespace.as_deref(), Some(NAMESPACE), "{whois:?}");
    assert_eq!(whois.names.container_id.as_deref(), Some(sidecar.as_str()), "{whois:?}");
    assert_eq!(whois.names.pod_uid.as_deref(), Some(pod.uid.as_str()), "{whois:?}");
    assert_eq!(whois.names.qos.as_deref(), Some("burstable"), "{whois:?}");
    assert_eq!(whois.names.runtime.as_deref(), Some("containerd"), "{whois:?}");

    let (main, _) = run_hog(&client, &pod, "main")?;
    let event = tracer.expect_event(EVENT_TIMEOUT)?;
    assert_names(&event, &pod, &pod_name, "main", &main);
    assert!(tracer.drain(Duration::from_secs(1))?.is_empty(), "only one container was killed");
    let sidecar_after = client.container_status(&sidecar).context("sidecar status")?;
    assert_eq!(sidecar_after.state, ContainerState::ContainerRunning);
    drop(tracer);
    client.remove_pod(pod).context("remove pod")
}

fn a_killed_child_process_is_attributed_and_flagged_as_not_main() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let (pod_name, pod) = new_pod(&client, "batch")?;
    let tracer = tracer_for(&pod, client.socket(), &[])?;
    // The main process (sh) stays small; its child hog is the OOM victim.
    let id = client
        .run_container(&pod, "worker", &["sh", "-c", "hog 256 1 & wait; sleep 3600"], Some(LIMIT))
        .context("run worker")?;
    let main_pid = client.container_status(&id).context("status")?.pid;
    let event = tracer.expect_event(EVENT_TIMEOUT)?;
    assert_names(&event, &pod, &pod_name, "worker", &id);
    assert_eq!(event.victim.comm.as_deref(), Some("hog"), "{event}");
    assert_ne!(event.victim.tgid, Some(main_pid), "{event}");
    assert_eq!(event.workload().main_process, Some(false), "{event}");
    assert_eq!(event.cause(), Some("container_limit"), "{event}");
    assert!(event.has_finding("not_main_process"), "{event}");
    let lost_worker = event.diagnosis.as_ref().and_then(|d| d.advice.iter().find(|a| a.action == "lost_worker"));
    assert!(lost_worker.is_some(), "{event}");
    // Kubernetes does not see this kill: the container is still running.
    let status = client.container_status(&id).context("status after the kill")?;
    assert_eq!(status.state, ContainerState::ContainerRunning, "{status:?}");
    drop(tracer);
    client.remove_pod(pod).context("remove pod")
}

fn without_the_runtime_events_keep_what_the_cgroup_path_gives() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let (_, pod) = new_pod(&client, "orphan")?;
    let tracer = tracer_for(&pod, "/nonexistent/oomtrace/cri.sock", &[])?;
    let (id, _) = run_hog(&client, &pod, "app")?;
    let event = tracer.expect_event(EVENT_TIMEOUT)?;
    let w = event.workload();
    assert_eq!(w.kind.as_deref(), Some("container"), "{event}");
    assert_eq!(w.attribution.as_deref(), Some("partial"), "{event}");
    assert_eq!(w.container_id.as_deref(), Some(id.as_str()), "{event}");
    assert_eq!(w.pod_uid.as_deref(), Some(pod.uid.as_str()), "{event}");
    assert_eq!(w.qos.as_deref(), Some("burstable"), "{event}");
    assert!(w.pod.is_none() && w.namespace.is_none(), "names cannot be known: {event}");
    assert!(w.partial_reason.as_deref().is_some_and(|r| r.contains("/nonexistent/oomtrace/cri.sock")), "{event}");
    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "{}", stopped.log);
    // Kills in concurrently running tests reach this tracer too (and are
    // filtered out after attribution): at least ours is counted.
    assert!(stopped.summary()?.partially_attributed >= 1, "the loss of names is counted:\n{}", stopped.log);
    assert!(stopped.logged("pod names unavailable"), "and warned about:\n{}", stopped.log);
    client.remove_pod(pod).context("remove pod")
}

fn a_host_service_is_reported_as_host() -> Result<()> {
    let unit = format!("{}.service", unique("hog"));
    let cgroup = MemCgroup::create(&format!("system.slice/{unit}"), Some(LIMIT))?;
    let tracer = live(&["--cgroup", &cgroup.path])?;
    let pid = cgroup.oom_kill_hog(256 * MIB)?;
    let event = tracer.expect_event(EVENT_TIMEOUT)?;
    assert_eq!(event.victim.pid, pid, "{event}");
    let w = event.workload();
    assert_eq!(w.kind.as_deref(), Some("system_service"), "{event}");
    assert_eq!(w.attribution.as_deref(), Some("host"), "{event}");
    assert_eq!(w.unit.as_deref(), Some(unit.as_str()), "{event}");
    assert!(w.pod.is_none() && w.container_id.is_none(), "{event}");
    Ok(())
}

/// Host pids whose memory cgroup is exactly `path`.
fn pids_in_cgroup(path: &str) -> Result<Vec<u32>> {
    Ok(std::fs::read_dir("/proc")
        .context("read /proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| cgroup::memory_cgroup_of(*pid).as_deref() == Some(path))
        .collect())
}

fn whois_recognises_the_pod_sandbox_and_filters_select_by_name() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let (pod_name, pod) = new_pod(&client, "sandboxed")?;
    let pause = pids_in_cgroup(&format!("{}/{}", pod.cgroup_parent, pod.id))?;
    assert_eq!(pause.len(), 1, "one pause process in the sandbox cgroup: {pause:?}");
    let whois = whois(pause[0], client.socket())?;
    assert_eq!(whois.workload.as_ref().and_then(|w| w.sandbox), Some(true), "{whois:?}");
    assert_eq!(whois.names.pod.as_deref(), Some(pod_name.as_str()), "{whois:?}");
    assert_eq!(whois.names.namespace.as_deref(), Some(NAMESPACE), "{whois:?}");
    assert_eq!(whois.names.container_id.as_deref(), Some(pod.id.as_str()), "{whois:?}");

    let socket = client.socket();
    let by_pod = tracer_for(&pod, socket, &["--namespace", NAMESPACE, "--pod", &pod_name, "--container", "app"])?;
    let other_namespace = tracer_for(&pod, socket, &["--namespace", "kube-system"])?;
    let other_container = tracer_for(&pod, socket, &["--container", "not-app"])?;
    let (id, _) = run_hog(&client, &pod, "app")?;
    let event = by_pod.expect_event(EVENT_TIMEOUT)?;
    assert_eq!(event.workload().container_id.as_deref(), Some(id.as_str()), "{event}");
    assert!(other_namespace.drain(Duration::from_millis(500))?.is_empty(), "--namespace let another namespace through");
    assert!(other_container.drain(Duration::from_millis(100))?.is_empty(), "--container let another container through");
    drop((by_pod, other_namespace, other_container));
    client.remove_pod(pod).context("remove pod")
}

fn a_hanging_runtime_delays_an_event_by_at_most_the_timeout() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    // A real unix socket that accepts connections (the kernel's backlog) but
    // never answers: what a wedged runtime looks like from outside.
    let dir = std::env::temp_dir().join(unique("hung-cri"));
    std::fs::create_dir_all(&dir).context("mkdir")?;
    let socket = dir.join("cri.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).context("bind")?;
    let (_, pod) = new_pod(&client, "slow")?;
    let timeout = Duration::from_millis(200);
    let tracer = tracer_for(&pod, socket.to_str().context("utf8")?, &["--cri-timeout", "200ms"])?;
    let (id, _) = run_hog(&client, &pod, "app")?;
    let first = tracer.expect_event_delayed(EVENT_TIMEOUT)?;
    // A second kill while the runtime is still hung.
    let (second, _) = run_hog(&client, &pod, "again")?;
    let then = tracer.expect_event_delayed(EVENT_TIMEOUT)?;
    let mut reasons = Vec::new();
    for ((event, delay), container_id) in [(&first, &id), (&then, &second)] {
        let w = event.workload();
        assert_eq!(w.attribution.as_deref(), Some("partial"), "{event}");
        assert_eq!(w.container_id.as_deref(), Some(container_id.as_str()), "{event}");
        let reason = w.partial_reason.unwrap_or_default();
        // Either this event's own call timed out (after --cri-timeout), or the
        // runtime is left alone for a while after a failure (no wait at all):
        // a hung runtime does not hold every event of a storm for the timeout.
        assert!(reason.contains("timed out") || reason.contains("failed recently"), "{event}");
        // Measured from the kill (its ktime_ns) to the line's arrival: the
        // call that timed out waited the timeout, and no more than that plus
        // the second it takes to decode, attribute and print under load; a
        // call skipped after a failure did not wait for it.
        ensure!(
            *delay <= timeout + Duration::from_secs(1),
            "{reason}: the event came {delay:?} after the kill: {event}"
        );
        if reason.contains("timed out") {
            ensure!(*delay >= timeout, "the CRI call timed out, yet the event came {delay:?} after the kill: {event}");
        }
        println!("{reason}: the event came {delay:?} after the kill");
        reasons.push(reason);
    }
    assert!(reasons.iter().any(|r| r.contains("failed recently")), "{reasons:?}");
    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "{}", stopped.log);
    assert!(stopped.logged("CRI lookup failed"), "the failure is warned about:\n{}", stopped.log);
    client.remove_pod(pod).context("remove pod")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The agent lists the runtime's containers every 2 s (`LEARN_INTERVAL`)
/// while it runs: a container started after it, running that long, is named
/// at its kill even when the runtime answers nothing then (a node out of
/// memory). The runtime's silence comes from a proxy the test wedges: the
/// real containerd answers everything before it.
fn a_container_started_after_the_tracer_is_named_when_the_runtime_hangs_at_its_kill() -> Result<()> {
    const LEARN_INTERVAL: Duration = Duration::from_secs(2);
    let client = Cri::connect_test_runtime()?;
    let dir = std::env::temp_dir().join(unique("wedged-cri"));
    let proxy = WedgeableProxy::start(std::path::Path::new(client.socket()), &dir)?;
    let socket = proxy.socket().to_str().context("utf8")?.to_owned();
    let (name, pod) = new_pod(&client, "learned")?;
    let timeout = Duration::from_millis(200);
    let tracer = tracer_for(&pod, &socket, &["--cri-timeout", "200ms"])?;
    // Started after the tracer warmed its cache; it waits 3 intervals
    // before it grows, the test wedges the runtime after 2.
    let delay = (LEARN_INTERVAL * 3).as_secs().to_string();
    let id = client.run_container(&pod, "app", &["hog", "256", &delay], Some(LIMIT)).context("run hog")?;
    std::thread::sleep(LEARN_INTERVAL * 2);
    proxy.wedge();
    let (exit_code, reason) = client.wait_exited(&id, EXIT_TIMEOUT).context("hog exits")?;
    assert_eq!(exit_code, 137, "app ({reason})");
    let (event, after) = tracer.expect_event_delayed(EVENT_TIMEOUT)?;
    assert_names(&event, &pod, &name, "app", &id);
    // Its own lookup timed out (the runtime was asked, and did not answer):
    // the names came from the listing made before the kill.
    ensure!(after <= timeout + Duration::from_secs(1), "the event came {after:?} after the kill: {event}");
    let stopped = tracer.stop()?;
    assert!(stopped.status.success(), "{}", stopped.log);
    assert!(
        stopped.logged("CRI lookup failed"),
        "the runtime was asked at the kill and did not answer:\n{}",
        stopped.log
    );
    client.remove_pod(pod).context("remove pod")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
