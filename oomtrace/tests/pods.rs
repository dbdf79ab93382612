//! Pod attribution against a real containerd over CRI: pods and containers
//! made the way kubelet makes them are OOM-killed, and each event must name
//! the namespace, pod, container, container id, pod uid and QoS that the
//! runtime itself reports.

#[path = "support/cri.rs"]
mod cri;
mod support;

use std::{process::Command, time::Duration};

use serde_json::Value;
use support::{LiveTracer, MemCgroup, privileged, str_at, u64_at, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const NAMESPACE: &str = "oomtrace-test";
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// `oomtrace live` watching one pod's cgroup through the test runtime's CRI.
fn tracer_for(pod: &cri::PodHandle, socket: &str) -> LiveTracer {
    LiveTracer::start(&["--cgroup", &pod.cgroup_parent, "--cri-socket", socket])
}

fn assert_names(event: &Value, pod: &cri::PodHandle, name: &str, container: &str, id: &str) {
    let w = &event["workload"];
    assert_eq!(w["kind"], "container", "{event}");
    assert_eq!(w["attribution"], "full", "{event}");
    assert_eq!(w["runtime"], "containerd", "{event}");
    assert_eq!(w["namespace"], NAMESPACE, "{event}");
    assert_eq!(w["pod"], name, "{event}");
    assert_eq!(w["container"], container, "{event}");
    assert_eq!(w["container_id"], id, "{event}");
    assert_eq!(w["pod_uid"], pod.uid.as_str(), "{event}");
    assert_eq!(w["qos"], "burstable", "{event}");
    assert_eq!(w["kube_system"], false, "{event}");
    assert_eq!(w["sandbox"], false, "{event}");
    assert!(w["image"].as_str().is_some_and(|i| i.contains("oomtrace-test")), "{event}");
    assert_eq!(str_at(event, &["victim_cgroup", "path"]), format!("{}/{id}", pod.cgroup_parent));
    assert!(event["node"].as_str().is_some_and(|n| !n.is_empty()), "{event}");
}

#[test]
fn a_single_container_pod_is_named() {
    let test = "single_container_pod";
    let Some(client) = cri::connect_or_skip(test) else { return };
    let pod_name = unique("web");
    let pod = client.run_pod(&pod_name, NAMESPACE, &cri::new_uid(), "burstable").expect("run pod");
    let tracer = tracer_for(&pod, client.socket());
    let id = client.run_container(&pod, "app", &["hog", "256", "1"], Some(LIMIT)).expect("run hog");
    let main_pid = client.container_status(&id).expect("status").pid;
    let (exit_code, reason) = client.wait_exited(&id, EXIT_TIMEOUT).expect("hog exits");
    assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"));

    let event = tracer.expect_event(EVENT_TIMEOUT);
    assert_names(&event, &pod, &pod_name, "app", &id);
    assert_eq!(u64_at(&event, &["victim", "tgid"]), u64::from(main_pid));
    assert_eq!(event["workload"]["main_process"], true, "{event}");
    assert_eq!(event["workload"]["restart_count"], 0, "{event}");
    assert_eq!(str_at(&event, &["victim", "comm"]), "hog");
    assert_eq!(u64_at(&event, &["oom_cgroup", "limit_bytes"]), LIMIT);
    let (status, log) = tracer.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("partially_attributed=0"), "{log}");
    client.remove_pod(pod).expect("remove pod");
}

#[test]
fn only_the_container_that_oomed_is_named_in_a_pod_with_a_sidecar() {
    let test = "sidecar_pod";
    let Some(client) = cri::connect_or_skip(test) else { return };
    let pod_name = unique("api");
    let pod = client.run_pod(&pod_name, NAMESPACE, &cri::new_uid(), "burstable").expect("run pod");
    let tracer = tracer_for(&pod, client.socket());
    let sidecar = client.run_container(&pod, "proxy", &["sleep", "3600"], None).expect("run sidecar");
    let sidecar_pid = client.container_status(&sidecar).expect("sidecar status").pid;

    // `whois` on the live sidecar names it through the same resolution.
    let out = Command::new(env!("CARGO_BIN_EXE_oomtrace"))
        .args(["whois", &sidecar_pid.to_string(), "-o", "json", "--cri-socket", client.socket()])
        .output()
        .expect("run whois");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let whois: Value = serde_json::from_slice(&out.stdout).expect("whois json");
    assert_eq!(whois["container"], "proxy", "{whois}");
    assert_eq!(whois["pod"], pod_name.as_str(), "{whois}");
    assert_eq!(whois["namespace"], NAMESPACE, "{whois}");
    assert_eq!(whois["container_id"], sidecar.as_str(), "{whois}");
    assert_eq!(whois["pod_uid"], pod.uid.as_str(), "{whois}");
    assert_eq!(whois["qos"], "burstable", "{whois}");
    assert_eq!(whois["runtime"], "containerd", "{whois}");

    let main = client.run_container(&pod, "main", &["hog", "256", "1"], Some(LIMIT)).expect("run main");
    let (exit_code, _) = client.wait_exited(&main, EXIT_TIMEOUT).expect("main exits");
    assert_eq!(exit_code, 137);
    let event = tracer.expect_event(EVENT_TIMEOUT);
    assert_names(&event, &pod, &pod_name, "main", &main);
    assert!(tracer.drain(Duration::from_secs(1)).is_empty(), "only one container was killed");
    let sidecar_after = client.container_status(&sidecar).expect("sidecar status");
    assert_eq!(sidecar_after.state, cri::ContainerState::ContainerRunning);
    drop(tracer);
    client.remove_pod(pod).expect("remove pod");
}

#[test]
fn a_killed_child_process_is_attributed_and_flagged_as_not_main() {
    let test = "child_process";
    let Some(client) = cri::connect_or_skip(test) else { return };
    let pod_name = unique("batch");
    let pod = client.run_pod(&pod_name, NAMESPACE, &cri::new_uid(), "burstable").expect("run pod");
    let tracer = tracer_for(&pod, client.socket());
    // The main process (sh) stays small; its child hog is the OOM victim.
    let id = client
        .run_container(&pod, "worker", &["sh", "-c", "hog 256 1 & wait; sleep 3600"], Some(LIMIT))
        .expect("run worker");
    let main_pid = client.container_status(&id).expect("status").pid;
    let event = tracer.expect_event(EVENT_TIMEOUT);
    assert_names(&event, &pod, &pod_name, "worker", &id);
    assert_eq!(str_at(&event, &["victim", "comm"]), "hog");
    assert_ne!(u64_at(&event, &["victim", "tgid"]), u64::from(main_pid));
    assert_eq!(event["workload"]["main_process"], false, "{event}");
    // Kubernetes does not see this kill: the container is still running.
    let status = client.container_status(&id).expect("status after the kill");
    assert_eq!(status.state, cri::ContainerState::ContainerRunning, "{status:?}");
    drop(tracer);
    client.remove_pod(pod).expect("remove pod");
}

#[test]
fn without_the_runtime_events_keep_what_the_cgroup_path_gives() {
    let test = "cri_socket_absent";
    let Some(client) = cri::connect_or_skip(test) else { return };
    let pod_name = unique("orphan");
    let pod = client.run_pod(&pod_name, NAMESPACE, &cri::new_uid(), "burstable").expect("run pod");
    let tracer = LiveTracer::start(&["--cgroup", &pod.cgroup_parent, "--cri-socket", "/nonexistent/oomtrace/cri.sock"]);
    let id = client.run_container(&pod, "app", &["hog", "256", "1"], Some(LIMIT)).expect("run hog");
    let (exit_code, _) = client.wait_exited(&id, EXIT_TIMEOUT).expect("hog exits");
    assert_eq!(exit_code, 137);
    let event = tracer.expect_event(EVENT_TIMEOUT);
    let w = &event["workload"];
    assert_eq!(w["kind"], "container", "{event}");
    assert_eq!(w["attribution"], "partial", "{event}");
    assert_eq!(w["container_id"], id.as_str(), "{event}");
    assert_eq!(w["pod_uid"], pod.uid.as_str(), "{event}");
    assert_eq!(w["qos"], "burstable", "{event}");
    assert!(w.get("pod").is_none() && w.get("namespace").is_none(), "names cannot be known: {event}");
    assert!(w["partial_reason"].as_str().is_some_and(|r| r.contains("/nonexistent/oomtrace/cri.sock")), "{event}");
    let (status, log) = tracer.stop();
    assert!(status.success(), "{log}");
    // Kills in concurrently running tests reach this tracer too (and are
    // filtered out after attribution): at least ours is counted.
    let partial: u64 = log
        .rsplit("partially_attributed=")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(partial >= 1, "the loss of names is counted:\n{log}");
    assert!(log.contains("pod names unavailable"), "and warned about:\n{log}");
    client.remove_pod(pod).expect("remove pod");
}

#[test]
fn a_host_service_is_reported_as_host() {
    let test = "host_service";
    if !privileged(test) {
        return;
    }
    let unit = format!("{}.service", unique("hog"));
    let cgroup = MemCgroup::create(&format!("system.slice/{unit}"), Some(LIMIT));
    let tracer = LiveTracer::start(&["--cgroup", &cgroup.path]);
    let pid = cgroup.oom_kill_hog(256 * MIB);
    let event = tracer.expect_event(EVENT_TIMEOUT);
    assert_eq!(u64_at(&event, &["victim", "pid"]), u64::from(pid));
    let w = &event["workload"];
    assert_eq!(w["kind"], "system_service", "{event}");
    assert_eq!(w["attribution"], "host", "{event}");
    assert_eq!(w["unit"], unit.as_str(), "{event}");
    assert!(w.get("pod").is_none() && w.get("container_id").is_none(), "{event}");
}

/// Host pids whose memory cgroup is exactly `path`.
fn pids_in_cgroup(path: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| cri::memory_cgroup_of(*pid).as_deref() == Some(path))
        .collect()
}

#[test]
fn whois_recognises_the_pod_sandbox_and_filters_select_by_name() {
    let test = "sandbox_and_filters";
    let Some(client) = cri::connect_or_skip(test) else { return };
    let pod_name = unique("sandboxed");
    let pod = client.run_pod(&pod_name, NAMESPACE, &cri::new_uid(), "burstable").expect("run pod");
    let pause = pids_in_cgroup(&format!("{}/{}", pod.cgroup_parent, pod.id));
    assert_eq!(pause.len(), 1, "one pause process in the sandbox cgroup: {pause:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_oomtrace"))
        .args(["whois", &pause[0].to_string(), "-o", "json", "--cri-socket", client.socket()])
        .output()
        .expect("run whois");
    let whois: Value = serde_json::from_slice(&out.stdout).expect("whois json");
    assert_eq!(whois["workload"]["sandbox"], true, "{whois}");
    assert_eq!(whois["pod"], pod_name.as_str(), "{whois}");
    assert_eq!(whois["namespace"], NAMESPACE, "{whois}");
    assert_eq!(whois["container_id"], pod.id.as_str(), "{whois}");

    let socket = client.socket();
    let scope = ["--cgroup", pod.cgroup_parent.as_str(), "--cri-socket", socket];
    let by_pod = LiveTracer::start(
        &[&scope[..], &["--namespace", NAMESPACE, "--pod", &pod_name, "--container", "app"]].concat(),
    );
    let other_namespace = LiveTracer::start(&[&scope[..], &["--namespace", "kube-system"]].concat());
    let other_container = LiveTracer::start(&[&scope[..], &["--container", "not-app"]].concat());
    let id = client.run_container(&pod, "app", &["hog", "256", "1"], Some(LIMIT)).expect("run hog");
    let (exit_code, _) = client.wait_exited(&id, EXIT_TIMEOUT).expect("hog exits");
    assert_eq!(exit_code, 137);
    let event = by_pod.expect_event(EVENT_TIMEOUT);
    assert_eq!(event["workload"]["container_id"], id.as_str());
    assert!(other_namespace.drain(Duration::from_millis(500)).is_empty(), "--namespace let another namespace through");
    assert!(other_container.drain(Duration::from_millis(100)).is_empty(), "--container let another container through");
    drop((by_pod, other_namespace, other_container));
    client.remove_pod(pod).expect("remove pod");
}

#[test]
fn a_hanging_runtime_delays_an_event_by_at_most_the_timeout() {
    let test = "hanging_runtime";
    let Some(client) = cri::connect_or_skip(test) else { return };
    // A real unix socket that accepts connections (the kernel's backlog) but
    // never answers: what a wedged runtime looks like from outside.
    let dir = std::env::temp_dir().join(unique("hung-cri"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let socket = dir.join("cri.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let pod_name = unique("slow");
    let pod = client.run_pod(&pod_name, NAMESPACE, &cri::new_uid(), "burstable").expect("run pod");
    let tracer = LiveTracer::start(&[
        "--cgroup",
        &pod.cgroup_parent,
        "--cri-socket",
        socket.to_str().expect("utf8"),
        "--cri-timeout",
        "200ms",
    ]);
    let id = client.run_container(&pod, "app", &["hog", "256", "1"], Some(LIMIT)).expect("run hog");
    let (exit_code, _) = client.wait_exited(&id, EXIT_TIMEOUT).expect("hog exits");
    assert_eq!(exit_code, 137);
    let first = tracer.expect_event(EVENT_TIMEOUT);
    // A second kill while the runtime is still hung.
    let second = client.run_container(&pod, "again", &["hog", "256", "1"], Some(LIMIT)).expect("run hog");
    client.wait_exited(&second, EXIT_TIMEOUT).expect("second hog exits");
    let then = tracer.expect_event(EVENT_TIMEOUT);
    let mut reasons = Vec::new();
    for (event, container_id) in [(&first, &id), (&then, &second)] {
        let w = &event["workload"];
        assert_eq!(w["attribution"], "partial", "{event}");
        assert_eq!(w["container_id"], container_id.as_str(), "{event}");
        let reason = w["partial_reason"].as_str().unwrap_or_default().to_owned();
        // Either this event's own call timed out (after --cri-timeout), or the
        // runtime is left alone for a while after a failure (no wait at all):
        // a hung runtime does not hold every event of a storm for the timeout.
        assert!(reason.contains("timed out") || reason.contains("failed recently"), "{event}");
        reasons.push(reason);
    }
    assert!(reasons.iter().any(|r| r.contains("failed recently")), "{reasons:?}");
    let (status, log) = tracer.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("CRI lookup failed"), "the failure is warned about:\n{log}");
    client.remove_pod(pod).expect("remove pod");
    let _ = std::fs::remove_dir_all(&dir);
}
