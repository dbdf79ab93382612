//! The test runtime itself (containerd + CRI from `scripts/runtime.sh up`),
//! before oomtrace is pointed at it: pods made the way kubelet makes them get
//! kubelet's cgroup layout, and a container that outgrows its memory limit is
//! OOM-killed and reported as such by CRI.
//!
//! Needs root and a running runtime; otherwise each test is reported as
//! ignored, with the reason (set OOMTRACE_TEST_REQUIRE_CRI=1 to make that a
//! failure instead).

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use oomtrace_testkit::{
    cgroup::{Hierarchy, memory_cgroup_of},
    cri::{
        CONTAINER_NAME_LABEL, ContainerState, POD_UID_LABEL, Qos,
        blocking::{Cri, PodHandle},
        new_uid,
    },
    harness::{self, Need},
    trial,
};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const NAMESPACE: &str = "oomtrace-test";
/// The hog waits this long before allocating, so the test can look at it alive.
const HOG_DELAY: &str = "1";
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    harness::main(vec![
        trial!(container_over_its_limit_is_oom_killed, Need::Cri),
        trial!(sidecar_survives_the_oom_kill_of_its_neighbour, Need::Cri),
    ])
}

/// Starts a hog in `pod` that will outgrow [`LIMIT`]; checks, while it still
/// waits, that it sits in its own cgroup below the pod's with that limit.
/// Returns its container id.
fn start_hog(client: &Cri, pod: &PodHandle, name: &str) -> Result<String> {
    let id = client.run_container(pod, name, &["hog", "256", HOG_DELAY], Some(LIMIT)).context("run the hog")?;
    let status = client.container_status(&id).context("hog status")?;
    assert_eq!(status.state, ContainerState::ContainerRunning, "hog right after start: {status:?}");
    assert_eq!(status.labels.get(CONTAINER_NAME_LABEL).map(String::as_str), Some(name));
    assert_eq!(status.labels.get(POD_UID_LABEL), Some(&pod.uid));

    // cgroupfs driver: <cgroup_parent>/<64-hex container id>.
    let expected = format!("{}/{id}", pod.cgroup_parent);
    assert_eq!(status.cgroups_path, expected, "cgroupsPath in the OCI spec");
    assert!(status.pid > 0, "no pid in the verbose status: {status:?}");
    let live = memory_cgroup_of(status.pid).unwrap_or_else(|| {
        panic!("hog pid {} gone before its delay ran out:\n{}", status.pid, pod.container_log(name))
    });
    assert_eq!(live, expected, "/proc/{}/cgroup memory line", status.pid);
    let hierarchy = Hierarchy::detect()?;
    let dir = hierarchy.dir_of(&live);
    let limit_file = hierarchy.limit_file();
    let limit = std::fs::read_to_string(dir.join(limit_file)).context("read the container's memory limit")?;
    assert_eq!(limit.trim(), LIMIT.to_string(), "{}/{limit_file}", dir.display());
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", status.pid)).unwrap_or_default();
    println!("{name}: pid {} in {live}, oom_score_adj {}", status.pid, adj.trim());
    Ok(id)
}

/// Waits for the hog to die and checks CRI calls it an OOM kill.
fn expect_oom_killed(client: &Cri, pod: &PodHandle, name: &str, id: &str) -> Result<()> {
    let started = Instant::now();
    let (exit_code, reason) = client.wait_exited(id, EXIT_TIMEOUT).context("hog exit")?;
    println!("{name}: exit_code={exit_code} reason={reason} after {:?}", started.elapsed());
    assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"), "hog log:\n{}", pod.container_log(name));
    // The container cgroup goes away with its task (runc removes it).
    let dir = Hierarchy::detect()?.dir_of(&format!("{}/{id}", pod.cgroup_parent));
    let deadline = Instant::now() + Duration::from_secs(5);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("{name}: container cgroup {} after exit", if dir.exists() { "still present" } else { "removed" });
    Ok(())
}

fn container_over_its_limit_is_oom_killed() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let t0 = Instant::now();
    let uid = new_uid();
    let pod = client.run_pod("hog-pod", NAMESPACE, &uid, Qos::Burstable).context("run pod sandbox")?;
    assert_eq!(pod.cgroup_parent, format!("/kubepods/burstable/pod{uid}"));
    println!("pod {} (uid {uid}) ready after {:?}", pod.id, t0.elapsed());

    let id = start_hog(&client, &pod, "hog")?;
    let parent = Hierarchy::detect()?.dir_of(&pod.cgroup_parent);
    assert!(parent.is_dir(), "pod cgroup {} missing", pod.cgroup_parent);
    expect_oom_killed(&client, &pod, "hog", &id)?;

    client.remove_pod(pod).context("remove pod")?;
    assert!(!parent.exists(), "pod cgroup {} left behind", parent.display());
    println!("container_over_its_limit_is_oom_killed: done in {:?}", t0.elapsed());
    Ok(())
}

fn sidecar_survives_the_oom_kill_of_its_neighbour() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let t0 = Instant::now();
    let uid = new_uid();
    let pod = client.run_pod("sidecar-pod", NAMESPACE, &uid, Qos::Burstable).context("run pod sandbox")?;

    let sidecar = client.run_container(&pod, "sidecar", &["sleep", "3600"], None).context("run the sidecar")?;
    let before = client.container_status(&sidecar).context("sidecar status")?;
    assert_eq!(before.state, ContainerState::ContainerRunning, "{before:?}");
    assert_eq!(before.cgroups_path, format!("{}/{sidecar}", pod.cgroup_parent));

    let hog = start_hog(&client, &pod, "main")?;
    expect_oom_killed(&client, &pod, "main", &hog)?;

    let after = client.container_status(&sidecar).context("sidecar status")?;
    assert_eq!(after.state, ContainerState::ContainerRunning, "sidecar after the OOM kill: {after:?}");
    assert_eq!(after.pid, before.pid, "sidecar restarted?");
    assert_eq!(
        memory_cgroup_of(after.pid).as_deref(),
        Some(before.cgroups_path.as_str()),
        "sidecar pid {} no longer in its cgroup",
        after.pid
    );
    println!("sidecar: still running, pid {} in {}", after.pid, after.cgroups_path);

    client.remove_pod(pod).context("remove pod")?;
    println!("sidecar_survives_the_oom_kill_of_its_neighbour: done in {:?}", t0.elapsed());
    Ok(())
}
