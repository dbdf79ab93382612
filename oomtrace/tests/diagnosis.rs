//! The diagnosis of real OOM kills (issue 12): the cause, each finding with
//! its evidence numbers and the advice's exact command, checked against what
//! the kernel (memory.stat in its report, the kill times) and the runtime
//! (CRI: the container's start, the pod's labels) say. The node VM suite
//! (tests/node.rs) covers the causes that need a Kubernetes node's cgroups:
//! pod limit, node allocatable and node memory.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, bail};
use oomtrace_testkit::{
    cgroup::{MemCgroup, wait_hog},
    cri::{
        Qos,
        blocking::{Cri, PodHandle},
        new_uid,
    },
    dmesg,
    event::Event,
    harness::{self, Need},
    live::Live,
    trial,
};
use support::{assert_matches_dmesg, live, oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const HOG: u64 = 256 * MIB;
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// shmem the tmpfs test writes before its hog: 40 of the 64 MiB limit.
const TMPFS_FILL_MIB: u64 = 40;
/// The pod-template-hash of the test "Deployment" (the ReplicaSet's hash).
const TEMPLATE_HASH: &str = "5c9f8d7b6";

fn main() -> ExitCode {
    harness::main(vec![
        trial!(the_third_kill_of_a_cgroup_is_a_repeat_with_its_intervals, Need::Root),
        trial!(a_tmpfs_heavy_cgroup_is_found_holding_its_shmem, Need::Root),
        trial!(a_deployment_container_killed_three_times_after_start_gets_the_exact_command, Need::Cri),
        trial!(a_kube_system_pod_gets_the_system_pod_advice, Need::Cri),
    ])
}

/// The limit VPA sets after an OOM kill: max(used + 100 MiB, used × 1.2) in
/// MiB, rounded up (kubernetes/autoscaler: OOMMinBumpUp, OOMBumpUpRatio).
fn vpa_bump_mib(used_bytes: u64) -> u64 {
    (used_bytes + 100 * MIB).max(used_bytes * 6 / 5).div_ceil(MIB)
}

fn wall_clock(event: &Event) -> SystemTime {
    let time = event.time.as_deref().unwrap_or_else(|| panic!("no time: {event}"));
    humantime::parse_rfc3339_weak(time).unwrap_or_else(|e| panic!("time {time}: {e}"))
}

fn the_third_kill_of_a_cgroup_is_a_repeat_with_its_intervals() -> Result<()> {
    let cgroup = MemCgroup::create(&unique("repeat"), Some(LIMIT))?;
    let tracer = live(&["--cgroup", cgroup.path.as_str()])?;
    let mut events = Vec::new();
    for _ in 0..3 {
        let pid = cgroup.oom_kill_hog(HOG)?;
        let event = tracer.expect_event(EVENT_TIMEOUT)?;
        assert_matches_dmesg(&event, pid)?;
        assert_eq!(event.cause(), Some("cgroup_limit"), "{event}");
        events.push(event);
        // Kill times a second apart at least: the intervals are whole seconds.
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(!events[0].has_finding("repeated"), "{}", events[0]);
    for (n, event) in events.iter().enumerate().skip(1) {
        let repeated = event.finding("repeated").with_context(|| format!("kill {} not repeated: {event}", n + 1))?;
        let over = wall_clock(event).duration_since(wall_clock(&events[0]))?.as_secs();
        assert_eq!(repeated["kills"], n as u64 + 1, "{event}");
        assert_eq!(repeated["over_seconds"], over, "{event}");
        assert_eq!(repeated["mean_interval_seconds"], over / n as u64, "{event}");
    }
    let last = &events[2];
    let summary = &last.diagnosis.as_ref().context("no diagnosis")?.summary;
    assert!(summary.contains("3rd time"), "summary {summary:?}: {last}");
    Ok(())
}

/// A tmpfs mounted for one test, unmounted (freeing its pages) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str) -> Result<Tmpfs> {
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", "size=128m", "tmpfs"]).arg(&dir).status()?;
        if !status.success() {
            bail!("mount -t tmpfs on {} failed: {status}", dir.display());
        }
        Ok(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn a_tmpfs_heavy_cgroup_is_found_holding_its_shmem() -> Result<()> {
    let cgroup = MemCgroup::create(&unique("tmpfs"), Some(LIMIT))?;
    let tmpfs = Tmpfs::mount(&unique("tmpfs-mount"))?;
    let tracer = Live::start_with_warnings(oomtrace(), &["--cgroup", cgroup.path.as_str(), "--no-warnings"])?;
    // The finding is read from the kernel's report, which the kernel
    // rate-limits: start a fresh window after the earlier tests' kills.
    dmesg::wait_for_whole_reports();
    // Files in tmpfs are shmem charged to the writer's cgroup; the hog that
    // follows (the same process, exec'd) is killed and frees none of it.
    let fill = format!(
        "sh -c 'dd if=/dev/zero of={}/fill bs=1M count={TMPFS_FILL_MIB} 2>/dev/null; exec dd if=/dev/zero of=/dev/null bs={HOG} count=1'",
        tmpfs.path().display()
    );
    let hog = wait_hog(cgroup.spawn(&fill)?)?;
    assert!(hog.oom_killed, "the hog was not OOM-killed");
    let (event, record) = tracer.expect_kill_and_report(EVENT_TIMEOUT)?;
    assert_matches_dmesg(&event, hog.pid)?;
    assert!(!event.has_finding("tmpfs"), "the kill goes out before its report is read: {event}");

    let stat = &record.kernel_report.memory_stat;
    let (shmem, total) = if stat.contains_key("anon") {
        let kernel = stat.get("kernel").copied().unwrap_or(0) + stat.get("sock").copied().unwrap_or(0);
        (stat["shmem"], stat["anon"] + stat["file"] + kernel)
    } else {
        (stat["total_shmem"], stat["total_rss"] + stat["total_cache"])
    };
    assert!(shmem.abs_diff(TMPFS_FILL_MIB * MIB) <= MIB, "shmem {shmem} in the kernel's report: {record}");
    let tmpfs = record.diagnosis.finding("tmpfs").with_context(|| format!("no tmpfs finding: {record}"))?;
    assert_eq!(tmpfs["shmem_bytes"], shmem, "{record}");
    assert_eq!(tmpfs["share_percent"], shmem * 100 / total, "{record}");
    assert!(record.diagnosis.advice.iter().any(|a| a.action == "limit_tmpfs"), "the tmpfs advice: {record}");
    assert_eq!(record.diagnosis.cause, event.cause().unwrap_or_default(), "the kill's cause: {record}");
    Ok(())
}

/// A pod of a Deployment as kubelet runs it: named
/// `<deployment>-<pod-template-hash>-<5 characters>`, labelled with the hash.
fn deployment_pod(
    client: &Cri,
    deployment: &str,
    namespace: &str,
) -> Result<oomtrace_testkit::cri::blocking::PodHandle> {
    let name = format!("{deployment}-{TEMPLATE_HASH}-x2x4q");
    client
        .run_labelled_pod(
            &name,
            namespace,
            &new_uid(),
            Qos::Burstable,
            &[("pod-template-hash", TEMPLATE_HASH), ("app", deployment)],
        )
        .context("run pod")
}

/// `oomtrace live` on `pod`'s cgroup.
fn tracer_for(client: &Cri, pod: &PodHandle) -> Result<Live> {
    live(&["--cgroup", &pod.cgroup_parent, "--cri-socket", client.socket()])
}

/// Runs the `attempt`-th start of container `name` with the hog (it
/// outgrows its limit a second after it starts) until the kernel kills it:
/// the event `tracer` reports, and the start CRI reports (unix ns).
fn kill_container(client: &Cri, tracer: &Live, pod: &PodHandle, name: &str, attempt: u32) -> Result<(Event, i64)> {
    let id = client.run_container_attempt(pod, name, &["hog", "256", "1"], Some(LIMIT), attempt).context("run hog")?;
    let status = client.container_status(&id)?;
    let (exit_code, reason) = client.wait_exited(&id, EXIT_TIMEOUT).context("hog exits")?;
    assert_eq!(exit_code, 137, "{name} ({reason})");
    Ok((tracer.expect_event(EVENT_TIMEOUT)?, status.started_at_ns))
}

/// A container of a Deployment's pod killed at its limit three times, each
/// time a second after kubelet (re)started it.
fn a_deployment_container_killed_three_times_after_start_gets_the_exact_command() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let deployment = format!("diag-api-{}", std::process::id());
    let pod = deployment_pod(&client, &deployment, "oomtrace-test")?;
    let tracer = tracer_for(&client, &pod)?;
    let mut kills = Vec::new();
    for attempt in 0..3 {
        kills.push(kill_container(&client, &tracer, &pod, "api", attempt)?);
    }
    for (attempt, (event, started_at_ns)) in kills.iter().enumerate() {
        assert_eq!(event.cause(), Some("container_limit"), "{event}");
        let workload = event.workload();
        assert_eq!(workload.restart_count, Some(attempt as u32), "{event}");
        let owner = workload.owner.as_ref().with_context(|| format!("no owner: {event}"))?;
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.guessed),
            ("deployment", deployment.as_str(), false)
        );
        let started = workload.started_at.as_deref().with_context(|| format!("no started_at: {event}"))?;
        let started = humantime::parse_rfc3339_weak(started)?;
        let cri_started = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(*started_at_ns)?);
        let off = started.duration_since(cri_started).unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_millis(1), "{event}");
        let running = wall_clock(event).duration_since(cri_started)?.as_secs();
        let early = event.finding("early").with_context(|| format!("no early finding: {event}"))?;
        assert_eq!(early["running_seconds"], running, "{event}");
        assert!(event.advice("limit_below_startup").is_some(), "{event}");

        let used = event.oom_limit_bytes().max(event.oom_usage_bytes()).context("no limit")?;
        let n = vpa_bump_mib(used);
        let advice = event.advice("raise_limit").with_context(|| format!("no raise_limit advice: {event}"))?;
        let expected = format!(
            "kubectl set resources deployment/{deployment} -n oomtrace-test -c api --limits=memory={n}Mi --requests=memory={n}Mi"
        );
        assert_eq!(advice.command.as_deref(), Some(expected.as_str()), "{event}");
    }
    // The third kill is the container's third: each restart has a new
    // container id; the workload is the pod's container by name.
    let (first, last) = (&kills[0].0, &kills[2].0);
    let repeated = last.finding("repeated").with_context(|| format!("not repeated: {last}"))?;
    let over = wall_clock(last).duration_since(wall_clock(first))?.as_secs();
    assert_eq!(repeated["kills"], 3, "{last}");
    assert_eq!(repeated["over_seconds"], over, "{last}");
    assert_eq!(repeated["restart_count"], 2, "{last}");
    // Killed again and again within seconds of each start: the limit is too
    // low to start (the guide's "limit set too low"), not a leak.
    assert!(last.advice("investigate_leak").is_none(), "{last}");
    assert!(!first.has_finding("repeated"), "{first}");
    drop(tracer);
    client.remove_pod(pod)
}

fn a_kube_system_pod_gets_the_system_pod_advice() -> Result<()> {
    let client = Cri::connect_test_runtime()?;
    let pod = deployment_pod(&client, "metrics-server", "kube-system")?;
    let tracer = tracer_for(&client, &pod)?;
    let (event, _) = kill_container(&client, &tracer, &pod, "metrics-server", 0)?;
    assert_eq!(event.cause(), Some("container_limit"), "{event}");
    let system = event.finding("system_pod").with_context(|| format!("no system_pod finding: {event}"))?;
    assert_eq!(system["namespace"], "kube-system", "{event}");
    assert!(event.advice("metrics_server_vpa").is_some(), "{event}");
    assert!(event.advice("raise_limit").is_none(), "a system pod's limit is AKS's to set: {event}");
    client.remove_pod(pod)
}
