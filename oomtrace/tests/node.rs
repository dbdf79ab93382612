//! The AKS-shaped node (`cargo xtask node-test`): systemd, containerd with
//! `SystemdCgroup = true`, cgroup v2, and the DaemonSet's own image run over
//! CRI with the manifests' security context (read from deploy/kubernetes by
//! the testkit, never restated here). Every scenario is a real OOM kill in the
//! guest; what the agent says is read only from its own outputs: its NDJSON
//! on stdout (the CRI log, as `kubectl logs` shows it), /metrics and /readyz.
//!
//! Where this imitation differs from kubelet: pods are made by the test over
//! CRI, workload pods use the host network (the agent's pod uses the pod
//! network through a bridge CNI), pod slices get their limits through
//! `systemctl set-property` right after the sandbox starts (kubelet creates
//! them through systemd's D-Bus API before), and the pod-level limit of
//! scenario 3 stands for kubelet's PodLevelResources (1.32+).

mod support;

use std::{
    process::ExitCode,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use oomtrace_testkit::{
    cri::{CgroupDriver, CriClient, Pod, Qos, daemonset::DaemonSetPod, new_uid},
    dmesg,
    event::Event,
    harness::{self, Need},
    http,
    manifest::DaemonSetSpec,
    observability::exposition::parse_exposition,
    report::ReportRecord,
    systemd, trial,
    warning::{Record, WarningRecord, epoch_seconds},
};

const MIB: u64 = 1024 * 1024;
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the guest's whole memory may take to fill (scenario 5).
const NODE_FILL_TIMEOUT: Duration = Duration::from_secs(180);
const NAMESPACE: &str = "shop";

// Scenarios 10 and 11: what a node's diagnosis reads (oomtrace diagnose, a systemd unit's kill).
#[path = "node/diagnose.rs"]
mod diagnose;
use diagnose::{
    a_systemd_unit_at_its_memory_max_is_named_by_its_unit,
    diagnose_reports_the_suites_kills_by_container_with_their_causes,
};

fn main() -> ExitCode {
    harness::main(vec![
        trial!(the_agent_runs_ready_under_the_manifests_least_privilege, Need::Node),
        trial!(check_in_the_agents_container_attaches_every_probe, Need::Node),
        trial!(a_container_over_its_limit_dies_in_one_group_kill_and_is_named, Need::Node),
        trial!(only_the_container_that_hit_its_limit_is_named_beside_a_sidecar, Need::Node),
        trial!(a_pod_level_limit_names_the_pod_slice_and_the_container, Need::Node),
        trial!(kubepods_at_node_allocatable_is_the_ooming_memcg, Need::Node),
        trial!(a_container_and_pod_removed_at_once_are_still_attributed, Need::Node),
        trial!(the_agent_stays_well_inside_its_memory_limit, Need::Node),
        trial!(a_restarted_agent_starts_clean_and_reports_nothing_twice, Need::Node),
        trial!(history_from_the_journal_names_the_suites_kills, Need::Node),
        trial!(a_systemd_unit_at_its_memory_max_is_named_by_its_unit, Need::Node),
        trial!(diagnose_reports_the_suites_kills_by_container_with_their_causes, Need::Node),
        trial!(a_leaking_container_is_warned_before_its_kill_and_top_ranks_it_first, Need::Node),
        trial!(the_agent_knows_of_a_kill_what_root_knows, Need::Node),
        trial!(the_whole_node_out_of_memory_names_a_besteffort_victim, Need::Node),
    ])
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime for the CRI client")
});

fn block<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.block_on(future)
}

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (cargo xtask node-test sets it)"))
}

fn cri() -> Result<CriClient> {
    let socket = env("OOMTRACE_CRI_SOCKET")?;
    Ok(block(CriClient::connect(&socket))?.with_cgroup_driver(CgroupDriver::Systemd))
}

/// The bound on one CRI call in the guest. The manifests' 250 ms is for real
/// nodes; under single-threaded TCG on 2 shared cores a ContainerStatus call
/// sometimes takes longer (seen: both kernels' runs lost a pod name to a
/// 250 ms timeout while other builds ran), so the test raises it through the
/// variable that overrides the config file (flag > environment > file), the
/// one place the pod differs from the manifests.
const TCG_CRI_TIMEOUT: &str = "3s";

fn spec() -> Result<DaemonSetSpec> {
    let dir = env("OOMTRACE_NODE_DEPLOY")?;
    let mut spec = DaemonSetSpec::read(std::path::Path::new(&dir))?;
    spec.env.push(("OOMTRACE_CRI_TIMEOUT".to_owned(), TCG_CRI_TIMEOUT.to_owned()));
    Ok(spec)
}

fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "node".to_owned(), |h| h.trim().to_owned())
}

/// The agent's pod, started once and shared by the scenarios (run with
/// --test-threads=1); scenario 7 replaces it.
static AGENT: Mutex<Option<DaemonSetPod>> = Mutex::new(None);

fn agent() -> Result<DaemonSetPod> {
    let mut slot = AGENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(agent) = slot.as_ref() {
        return Ok(agent.clone());
    }
    let agent = start_agent()?;
    *slot = Some(agent.clone());
    Ok(agent)
}

fn start_agent() -> Result<DaemonSetPod> {
    let spec = spec()?;
    let agent = block(cri()?.run_daemonset_pod(&spec, &node_name()))?;
    wait_ready(&agent, Duration::from_secs(60))?;
    Ok(agent)
}

fn wait_ready(agent: &DaemonSetPod, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = http::get(&agent.address, "/readyz");
        if matches!(answer, Ok((200, _))) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the agent at {} is not ready after {timeout:?} ({answer:?}); its stdout:\n{}\nits log:\n{}",
                agent.address,
                agent.stdout_lines().join("\n"),
                agent.pod.container_log(&agent.container_name)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The agent's records on stdout so far. Its stdout carries only records
/// (kills and warnings): a JSON line that is no valid record
/// (docs/event.schema.json) fails the test with the reason instead of going
/// missing.
fn records(agent: &DaemonSetPod) -> Vec<Record> {
    agent
        .stdout_lines()
        .iter()
        .filter(|line| line.starts_with('{'))
        .map(|line| Record::parse(line).unwrap_or_else(|error| panic!("the agent wrote a bad record: {error:#}")))
        .collect()
}

/// The agent's kill events so far.
fn events(agent: &DaemonSetPod) -> Vec<Event> {
    records(agent)
        .into_iter()
        .filter_map(|record| match record {
            Record::Kill(event) => Some(*event),
            _ => None,
        })
        .collect()
}

/// The kernel report of `event` the agent wrote after it, waited for.
fn wait_report(agent: &DaemonSetPod, event: &Event) -> Result<ReportRecord> {
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let found = records(agent).into_iter().find_map(|record| match record {
            Record::KernelReport(report) if report.is_of(event) => Some(*report),
            _ => None,
        });
        if let Some(report) = found {
            return Ok(report);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no kernel report of {event} within {EVENT_TIMEOUT:?}; the agent's stdout:\n{}",
            agent.stdout_lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The agent's warnings so far.
fn warnings(agent: &DaemonSetPod) -> Vec<WarningRecord> {
    records(agent)
        .into_iter()
        .filter_map(|record| match record {
            Record::Warning(warning) => Some(*warning),
            _ => None,
        })
        .collect()
}

/// Waits until `count` events satisfy `matches`, then a quiet second more.
fn wait_events(agent: &DaemonSetPod, count: usize, matches: impl Fn(&Event) -> bool) -> Result<Vec<Event>> {
    wait_events_within(agent, count, matches, EVENT_TIMEOUT)
}

/// [`wait_events`] with its own deadline.
fn wait_events_within(
    agent: &DaemonSetPod,
    count: usize,
    matches: impl Fn(&Event) -> bool,
    timeout: Duration,
) -> Result<Vec<Event>> {
    let deadline = Instant::now() + timeout;
    loop {
        let found: Vec<Event> = events(agent).into_iter().filter(|e| matches(e)).collect();
        if found.len() >= count {
            std::thread::sleep(Duration::from_secs(1));
            return Ok(events(agent).into_iter().filter(|e| matches(e)).collect());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {count} events after {timeout:?}; the agent's stdout:\n{}",
                found.len(),
                agent.stdout_lines().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A killed process: (pid, comm).
type Victim = (u32, String);

/// Every victim the kernel's log confirmed so far, (pid, comm), in the order
/// the scenarios ran: what `history` and `diagnose` must find again.
static SUITE_VICTIMS: std::sync::Mutex<Vec<Victim>> = std::sync::Mutex::new(Vec::new());

/// [`SUITE_VICTIMS`] now.
fn suite_victims() -> Vec<Victim> {
    SUITE_VICTIMS.lock().map(|v| v.clone()).unwrap_or_default()
}

/// The guest kernel as the oracle of a scenario's victims: every process it
/// killed after the scenario began has exactly one event from the agent, and
/// the agent reports no kill the kernel did not make.
struct KernelOracle {
    mark: dmesg::Mark,
    events_before: usize,
}

impl KernelOracle {
    fn start(agent: &DaemonSetPod, scenario: &str) -> Result<Self> {
        Ok(Self { mark: dmesg::Mark::new(scenario)?, events_before: events(agent).len() })
    }

    /// Waits until the agent's live events since the mark name exactly the
    /// kernel's victims since it (pid and comm, each once), then a quiet
    /// second more; those events.
    fn victims(&self, agent: &DaemonSetPod) -> Result<Vec<Event>> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let compare = || -> Result<(Vec<Victim>, Vec<Victim>, Vec<Event>)> {
            // A group kill prints the chosen victim twice (killed, then
            // killed again as a member of its group); it is one victim.
            let mut kernel = self.mark.killed_since()?;
            kernel.sort();
            kernel.dedup();
            let new: Vec<Event> =
                events(agent).into_iter().skip(self.events_before).filter(|e| e.source == "ebpf").collect();
            let mut reported: Vec<Victim> =
                new.iter().map(|e| (e.victim.pid, e.victim.comm.clone().unwrap_or_default())).collect();
            reported.sort();
            Ok((kernel, reported, new))
        };
        loop {
            let (kernel, reported, _) = compare()?;
            if !kernel.is_empty() && kernel == reported {
                std::thread::sleep(Duration::from_secs(1));
                let (kernel, reported, new) = compare()?;
                ensure!(
                    kernel == reported,
                    "after a quiet second: the kernel killed {kernel:?}, the agent reported {reported:?}"
                );
                return Ok(new);
            }
            if Instant::now() >= deadline {
                bail!(
                    "after {EVENT_TIMEOUT:?} the kernel had killed {kernel:?} (its log since the scenario began), the \
                     agent reported {reported:?}; the agent's stdout:\n{}",
                    agent.stdout_lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `memory.current` of container `id` (its `cri-containerd-<id>.scope`
/// under kubepods.slice).
fn container_memory(id: &str) -> Result<u64> {
    let scope = format!("cri-containerd-{id}.scope");
    let mut dirs = vec![std::path::PathBuf::from("/sys/fs/cgroup/kubepods.slice")];
    while let Some(dir) = dirs.pop() {
        if dir.file_name().is_some_and(|name| name == scope.as_str()) {
            let text = std::fs::read_to_string(dir.join("memory.current"))?;
            return Ok(text.trim().parse()?);
        }
        // Another scenario's pod slice may be removed while this walks it.
        let entries = match std::fs::read_dir(&dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            entries => entries.with_context(|| format!("reading {}", dir.display()))?,
        };
        dirs.extend(entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
    }
    bail!("no {scope} under /sys/fs/cgroup/kubepods.slice")
}

fn in_pod(pod: &Pod) -> impl Fn(&Event) -> bool + '_ {
    move |event| event.workload.as_ref().and_then(|w| w.pod_uid.as_deref()) == Some(pod.uid.as_str())
}

fn metric(agent: &DaemonSetPod, name: &str, label: (&str, &str)) -> Result<f64> {
    let (status, text) = http::get(&agent.address, "/metrics")?;
    ensure!(status == 200, "GET /metrics answered {status}");
    Ok(parse_exposition(&text)
        .into_iter()
        .filter(|(n, labels, _)| n == name && labels.get(label.0).map(String::as_str) == Some(label.1))
        .map(|(_, _, v)| v)
        .sum())
}

/// An unlabelled gauge, which must be exported.
fn gauge(agent: &DaemonSetPod, name: &str) -> Result<f64> {
    let (status, text) = http::get(&agent.address, "/metrics")?;
    ensure!(status == 200, "GET /metrics answered {status}");
    parse_exposition(&text)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, _, v)| v)
        .with_context(|| format!("no {name} in /metrics:\n{text}"))
}

fn run_pod(cri: &CriClient, name: &str, qos: Qos) -> Result<Pod> {
    block(cri.run_pod_with_qos(&format!("{name}-{}", &new_uid()[..5]), NAMESPACE, &new_uid(), qos))
}

fn container(cri: &CriClient, pod: &Pod, name: &str, command: &[&str], limit: Option<u64>) -> Result<String> {
    block(cri.run_limited_container(pod, name, command, limit))
}

fn assert_named(event: &Event, pod: &Pod, container: &str) {
    let workload = event.workload.clone().unwrap_or_default();
    assert_eq!(workload.namespace.as_deref(), Some(NAMESPACE), "{event}");
    assert_eq!(workload.pod.as_deref(), Some(pod.name.as_str()), "{event}");
    assert_eq!(workload.container.as_deref(), Some(container), "{event}");
    assert_eq!(workload.attribution.as_deref(), Some("full"), "{event}");
}

/// The advice of a container killed at its own limit: the exact
/// `kubectl set resources` for the container at the limit VPA sets after an
/// OOM kill, max(limit + 100 MiB, limit × 1.2).
fn assert_advice_raises_the_limit(event: &Event, container: &str, limit: u64) -> Result<()> {
    let advice = event.advice("raise_limit").with_context(|| format!("no raise_limit: {event}"))?;
    let used = event.oom_usage_bytes().unwrap_or(0).max(limit);
    let n = (used + 100 * MIB).max(used * 6 / 5).div_ceil(MIB);
    let command = advice.command.as_deref().unwrap_or_default();
    let set =
        format!("kubectl set resources --local -f - -c {container} --limits=memory={n}Mi --requests=memory={n}Mi");
    ensure!(command.contains(&set), "a bare pod is recreated with {set:?}: {event}");
    Ok(())
}

/// Scenario 0: the agent starts from the image under the manifests'
/// security context and becomes ready; its events carry the node's name.
fn the_agent_runs_ready_under_the_manifests_least_privilege() -> Result<()> {
    let agent = agent()?;
    let (status, body) = http::get(&agent.address, "/readyz")?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http::get(&agent.address, "/metrics")?;
    assert_eq!(status, 200);
    Ok(())
}

/// Scenario 13's leak. `top` starts in the agent's container, samples 4 s
/// and ranks before the container reaches its limit: at 2 MiB/s that is ~50 s
/// from 24 MiB to 128 MiB. At 8 MiB/s (13 s) the container was killed before
/// top answered in a fresh-clone CI run with two emulated nodes at once, and
/// top rightly did not list it; at 4 MiB/s (26 s) the next CI run failed on
/// 6.1 again.
const LEAK_MIB_PER_SECOND: u64 = 2;

/// Scenario 13: a container leaking 2 MiB/s toward its 128 MiB limit. The
/// agent, under the manifests' least privilege, warns before the kernel kills
/// it (the warning names the container and pod and proposes the limit), and
/// the kill says how long before; `oomtrace top` in the agent's container,
/// meanwhile, ranks it first.
fn a_leaking_container_is_warned_before_its_kill_and_top_ranks_it_first() -> Result<()> {
    let agent = agent()?;
    let oracle = KernelOracle::start(&agent, "scenario-13")?;
    let cri = cri()?;
    let pod = run_pod(&cri, "leaky", Qos::Burstable)?;
    let limit = 128 * MIB;
    let rate = LEAK_MIB_PER_SECOND.to_string();
    let id = container(&cri, &pod, "app", &["hog", "512", "0", &rate], Some(limit))?;
    // Leaking for a few seconds (under emulation a container starts slowly):
    // the kernel's own count of its memory says when.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while container_memory(&id)? < 24 * MIB {
        ensure!(Instant::now() < deadline, "the leak never reached 24 MiB");
        std::thread::sleep(Duration::from_millis(200));
    }
    let top = ["/oomtrace", "top", "--once", "-o", "json", "--sample", "4s"];
    let started = Instant::now();
    let (code, stdout, stderr) = block(cri.exec_sync(&agent.container_id, &top, Duration::from_secs(60)))?;
    ensure!(code == 0, "oomtrace top failed in the agent's container:\n{stdout}{stderr}");
    // Whether the container outlived top's sample is the kernel's fact, read
    // before top's answer is judged: a container already gone cannot be
    // ranked, and the failure says that rather than "not ranked".
    let took = started.elapsed();
    let after = container_memory(&id)
        .with_context(|| format!("the container was gone when top ({took:?}) answered; leak too fast for this node"))?;
    println!("top took {took:?}; the container then held {} MiB of {} MiB", after / MIB, limit / MIB);
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&stdout).with_context(|| format!("top's JSON: {stdout}"))?;
    let first = rows.first().with_context(|| format!("top listed nothing: {stdout}"))?;
    println!("top's first row: {first}");
    assert_eq!(first["workload"]["pod"].as_str(), Some(pod.name.as_str()), "{stdout}");
    assert_eq!(first["workload"]["container"].as_str(), Some("app"), "{stdout}");
    assert_eq!(first["limit_level"].as_str(), Some("container"), "{first}");
    assert_eq!(first["limit_bytes"].as_u64(), Some(limit), "{first}");
    ensure!(first["seconds_left"].as_f64().is_some_and(|s| s > 0.0), "no time left: {first}");
    let to_the_limit = Duration::from_secs(limit / MIB / LEAK_MIB_PER_SECOND);
    block(cri.wait_exited(&id, to_the_limit + EVENT_TIMEOUT))?;
    let kills = oracle.victims(&agent)?;
    let kill = &kills[0];
    assert_named(kill, &pod, "app");
    let warned: Vec<WarningRecord> = warnings(&agent)
        .into_iter()
        .filter(|w| w.workload.as_ref().and_then(|w| w.pod_uid.as_deref()) == Some(pod.uid.as_str()))
        .collect();
    let warning = warned.first().with_context(|| format!("not warned; the kill: {kill}"))?;
    println!("the agent's first warning: {warning}");
    assert_eq!(warning.state, "warning", "{warning}");
    assert_eq!(warning.limit_level, "container", "{warning}");
    assert_eq!(warning.limit_bytes, limit, "{warning}");
    let workload = warning.workload.clone().unwrap_or_default();
    assert_eq!(workload.pod.as_deref(), Some(pod.name.as_str()), "{warning}");
    assert_eq!(workload.container.as_deref(), Some("app"), "{warning}");
    let container_of_pod = format!("container `app` of pod `{NAMESPACE}/{}`", pod.name);
    ensure!(warning.summary.contains(&container_of_pod), "{warning}");
    let raise = warning.advice("raise_limit").with_context(|| format!("no raise_limit: {warning}"))?;
    ensure!(raise.command.as_deref().is_some_and(|c| c.contains("kubectl set resources")), "{warning}");
    let warned_at = epoch_seconds(&warning.time).context("the warning's time")?;
    let killed_at = kill.time.as_deref().and_then(epoch_seconds).context("the kill's time")?;
    let lead = killed_at - warned_at;
    ensure!(lead > 1.0, "warned {lead:.2} s before the kill: {warning}");
    let before = kill.warned_seconds_before.with_context(|| format!("no warned_seconds_before: {kill}"))?;
    ensure!((before - lead).abs() < 0.5, "warned_seconds_before {before} vs {lead:.2} s: {kill}");
    block(cri.remove_pod(&pod))?;
    Ok(())
}

/// Scenario 8: `oomtrace check` in the agent's container, with its
/// privileges, attaches every probe that attaches with all of root's.
fn check_in_the_agents_container_attaches_every_probe() -> Result<()> {
    let agent = agent()?;
    let (code, stdout, stderr) =
        block(cri()?.exec_sync(&agent.container_id, &["/oomtrace", "check"], Duration::from_secs(60)))?;
    let paranoid_now = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap_or_default();
    println!("NODE-CHECK-BEGIN kernel.perf_event_paranoid = {}\n{stdout}{stderr}NODE-CHECK-END", paranoid_now.trim());
    assert_eq!(code, 0, "oomtrace check failed in the agent's container:\n{stdout}{stderr}");
    let as_root = std::process::Command::new(env("OOMTRACE_BIN")?).arg("check").output()?;
    let as_root = String::from_utf8_lossy(&as_root.stdout).into_owned();
    println!("as root on the node:\n{as_root}");
    let attaching = |report: &str| -> Vec<String> {
        report
            .lines()
            .filter(|line| line.contains(':') && line.split_whitespace().nth(1) == Some("ok"))
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect()
    };
    let root_ok = attaching(&as_root);
    ensure!(root_ok.iter().any(|p| p == "tp_btf:mark_victim"), "tp_btf does not attach even as root:\n{as_root}");
    // Debian's and Ubuntu's kernels restrict perf_event_open(2) further at
    // kernel.perf_event_paranoid > 2 and then demand CAP_SYS_ADMIN, not
    // CAP_PERFMON: the tracepoint and kprobe attach methods (perf events)
    // are refused to the agent; tp_btf, raw_tp and fentry (bpf(2) links) are not.
    let paranoid: i32 = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")?.trim().parse()?;
    let expected: Vec<String> = root_ok
        .iter()
        .filter(|p| paranoid <= 2 || !(p.starts_with("tracepoint:") || p.starts_with("kprobe:")))
        .cloned()
        .collect();
    println!("kernel.perf_event_paranoid = {paranoid}");
    assert_eq!(
        attaching(&stdout),
        expected,
        "what root attaches, the agent attaches (but perf events at paranoid > 2)"
    );
    Ok(())
}

/// Scenario 14: the same kill seen by the agent, under the manifests' least
/// privilege (CAP_BPF, CAP_PERFMON, CAP_SYSLOG; perf_event_open refused at
/// the kernel's default paranoid level), and by `oomtrace live` as root on
/// the node: the same facts, field by field, and nothing in the agent's
/// `unavailable` that root has.
fn the_agent_knows_of_a_kill_what_root_knows() -> Result<()> {
    let agent = agent()?;
    let socket = env("OOMTRACE_CRI_SOCKET")?;
    let binary = std::path::PathBuf::from(env("OOMTRACE_BIN")?);
    // The reference: root, given all the time the emulated runtime needs to
    // answer (with the 250 ms default its ContainerStatus once timed out and it
    // knew less than the agent). The agent keeps the manifest's timeout.
    let root = oomtrace_testkit::live::Live::start(
        &binary,
        &["--cgroup", "/kubepods.slice", "--cri-socket", &socket, "--cri-timeout", "5s"],
    )?;
    let oracle = KernelOracle::start(&agent, "scenario-14")?;
    let cri = cri()?;
    let pod = run_pod(&cri, "twice", Qos::Burstable)?;
    container(&cri, &pod, "app", &["hog", "256", "0.5"], Some(64 * MIB))?;
    let events = oracle.victims(&agent)?;
    let [seen_by_agent] = events.as_slice() else { bail!("{} victims: {events:?}", events.len()) };
    let seen_by_root = root.expect_event(EVENT_TIMEOUT)?;
    ensure!(seen_by_root.victim.pid == seen_by_agent.victim.pid, "root saw another kill: {seen_by_root}");
    root.stop()?;
    let agent_json: serde_json::Value = serde_json::from_str(&seen_by_agent.line)?;
    let root_json: serde_json::Value = serde_json::from_str(&seen_by_root.line)?;
    let fields = [
        "/killed",
        "/group_kill",
        "/scope",
        "/scope_source",
        "/gfp_mask",
        "/order",
        "/oom_totalpages",
        "/chosen_points",
        "/victim",
        "/victim_cgroup",
        "/oom_cgroup",
        "/trigger",
        "/sources",
        "/unavailable",
        "/workload",
    ];
    for field in fields {
        assert_eq!(agent_json.pointer(field), root_json.pointer(field), "{field}: agent {agent_json} root {root_json}");
    }
    // oom_id is the timestamp of each tracer's own oom_kill_process program:
    // both have one, a few ns apart.
    assert_eq!(seen_by_agent.oom_id.is_some(), seen_by_root.oom_id.is_some(), "{seen_by_agent}");
    assert_eq!(seen_by_agent.killed, Some(true), "{seen_by_agent}");
    ensure!(seen_by_agent.gfp_mask.is_some() && seen_by_agent.order.is_some(), "{seen_by_agent}");
    block(cri.remove_pod(&pod))?;
    Ok(())
}

/// Scenario 1: `memory.oom.group=1` (kubelet >= 1.28 on cgroup v2): the
/// container's every process dies in one kill, each named.
fn a_container_over_its_limit_dies_in_one_group_kill_and_is_named() -> Result<()> {
    let agent = agent()?;
    let oracle = KernelOracle::start(&agent, "scenario-1")?;
    let cri = cri()?;
    let pod = run_pod(&cri, "web", Qos::Burstable)?;
    let limit = 64 * MIB;
    let id = container(&cri, &pod, "app", &["sh", "-c", "sleep 600 & sleep 600 & hog 256 0.5; wait"], Some(limit))?;
    let (_, reason) = block(cri.wait_exited(&id, EVENT_TIMEOUT))?;
    // Every member of the group kill, each once, as the kernel's log has them.
    let events = oracle.victims(&agent)?;
    ensure!(events.len() >= 2, "a group kill of one: {events:?}");
    // Only the agent's outputs are asserted; what the runtime says is shown.
    println!("the runtime's reason for the container's exit: {reason:?}; {} victims", events.len());
    let comms: Vec<&str> = events.iter().filter_map(|e| e.victim.comm.as_deref()).collect();
    ensure!(comms.contains(&"hog") && comms.contains(&"sh"), "the main process and the hog die together: {comms:?}");
    let oom_id = events[0].oom_id;
    for event in &events {
        assert_named(event, &pod, "app");
        assert_eq!(event.group_kill, Some(true), "{event}");
        // Confirmed under the agent's least privilege: tp_btf/raw_tp on
        // signal_generate need no perf_event_open.
        assert_eq!(event.killed, Some(true), "{event}");
        assert_eq!(event.oom_id, oom_id, "one OOM invocation: {event}");
        assert_eq!(event.oom_limit_bytes(), Some(limit), "{event}");
        let usage = event.oom_usage_bytes().with_context(|| format!("no usage: {event}"))?;
        assert!(usage + 4 * MIB >= limit && usage <= limit, "usage {usage} at the limit: {event}");
        assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
        assert_eq!(event.cause(), Some("container_limit"), "{event}");
        assert!(event.has_finding("group_kill"), "{event}");
        assert_advice_raises_the_limit(event, "app", limit)?;
        let summary = event.diagnosis.as_ref().map(|d| d.summary.as_str()).unwrap_or_default();
        let container_of_pod = format!("container `app` of pod `{NAMESPACE}/{}`", pod.name);
        assert!(summary.contains(&container_of_pod) && summary.contains("64 MiB limit"), "{event}");
    }
    block(cri.remove_pod(&pod))?;
    Ok(())
}

/// Scenario 2: a sidecar beside the container that hit its limit is not named and keeps running.
fn only_the_container_that_hit_its_limit_is_named_beside_a_sidecar() -> Result<()> {
    let agent = agent()?;
    let oracle = KernelOracle::start(&agent, "scenario-2")?;
    let cri = cri()?;
    let pod = run_pod(&cri, "api", Qos::Burstable)?;
    let sidecar = container(&cri, &pod, "sidecar", &["sleep", "600"], Some(32 * MIB))?;
    let app = container(&cri, &pod, "app", &["hog", "256", "0.5"], Some(48 * MIB))?;
    block(cri.wait_exited(&app, EVENT_TIMEOUT))?;
    let events = oracle.victims(&agent)?;
    for event in &events {
        assert_named(event, &pod, "app");
        assert_eq!(event.oom_limit_bytes(), Some(48 * MIB), "{event}");
    }
    let status = block(cri.status(&sidecar))?;
    assert_eq!(status.state, oomtrace_testkit::cri::ContainerState::ContainerRunning, "the sidecar lives");
    block(cri.remove_pod(&pod))?;
    Ok(())
}

/// Scenario 3: the pod's slice hits its limit before the container's: the
/// container may grow to 128 MiB, the pod only to 96 MiB.
fn a_pod_level_limit_names_the_pod_slice_and_the_container() -> Result<()> {
    let agent = agent()?;
    let oracle = KernelOracle::start(&agent, "scenario-3")?;
    let cri = cri()?;
    let pod = run_pod(&cri, "batch", Qos::Burstable)?;
    systemd::set_memory_max(&pod.cgroup_parent, 96 * MIB)?;
    let sidecar = container(&cri, &pod, "sidecar", &["sleep", "600"], Some(32 * MIB))?;
    container(&cri, &pod, "worker", &["hog", "120", "0.5"], Some(128 * MIB))?;
    let events = oracle.victims(&agent)?;
    for event in &events {
        assert_eq!(event.oom_cgroup_path(), Some(pod.cgroup_parent.as_str()), "the pod's slice: {event}");
        assert_eq!(event.oom_limit_bytes(), Some(96 * MIB), "{event}");
        assert_named(event, &pod, "worker");
        assert_eq!(event.cause(), Some("pod_limit"), "{event}");
        let summary = event.diagnosis.as_ref().map(|d| d.summary.as_str()).unwrap_or_default();
        assert!(summary.contains("the pod's 96 MiB limit"), "{event}");
        assert!(event.advice("raise_limit").is_some(), "{event}");
    }
    let _ = sidecar;
    block(cri.remove_pod(&pod))?;
    Ok(())
}

/// Scenario 4: `kubepods.slice` capped like node allocatable; pods together exceed it.
fn kubepods_at_node_allocatable_is_the_ooming_memcg() -> Result<()> {
    let agent = agent()?;
    let oracle = KernelOracle::start(&agent, "scenario-4")?;
    let cri = cri()?;
    let kubepods = "/kubepods.slice";
    let current: u64 = std::fs::read_to_string("/sys/fs/cgroup/kubepods.slice/memory.current")?.trim().parse()?;
    let cap = current + 96 * MIB;
    systemd::set_memory_max(kubepods, cap)?;
    let pod = run_pod(&cri, "greedy", Qos::BestEffort)?;
    let result = (|| {
        container(&cri, &pod, "eater", &["hog", "400", "0.5"], None)?;
        oracle.victims(&agent)
    })();
    systemd::clear_memory_max(kubepods)?;
    for event in &result? {
        assert_eq!(event.oom_cgroup_path(), Some(kubepods), "{event}");
        assert_eq!(event.scope.as_deref(), Some("memcg"), "{event}");
        assert_named(event, &pod, "eater");
        assert_eq!(event.cause(), Some("node_allocatable"), "{event}");
        assert!(event.has_finding("no_limit"), "BestEffort: {event}");
        for action in ["set_limit", "list_pods_without_limits", "match_requests_to_usage"] {
            assert!(event.advice(action).is_some(), "{action}: {event}");
        }
    }
    block(cri.remove_pod(&pod))?;
    Ok(())
}

/// Scenario 6: pods created, killed and removed within a second.
fn a_container_and_pod_removed_at_once_are_still_attributed() -> Result<()> {
    let agent = agent()?;
    let oracle = KernelOracle::start(&agent, "scenario-6")?;
    let cri = cri()?;
    let mut pods = Vec::new();
    for _ in 0..3 {
        let pod = run_pod(&cri, "flash", Qos::Burstable)?;
        let id = container(&cri, &pod, "once", &["hog", "256"], Some(32 * MIB))?;
        let status = block(cri.wait_status(
            &id,
            |s| {
                s.state != oomtrace_testkit::cri::ContainerState::ContainerRunning
                    && s.state != oomtrace_testkit::cri::ContainerState::ContainerCreated
            },
            EVENT_TIMEOUT,
        ))?;
        let scope = status.cgroups_path.clone();
        block(cri.remove_pod(&pod))?;
        pods.push((pod, id, scope));
    }
    let all = oracle.victims(&agent)?;
    for (pod, id, _) in &pods {
        let events: Vec<&Event> = all.iter().filter(|e| in_pod(pod)(e)).collect();
        ensure!(
            events.len() == 1,
            "pod {}: {} events of the kernel's {} kills: {all:?}",
            pod.name,
            events.len(),
            all.len()
        );
        for event in events {
            let workload = event.workload.clone().unwrap_or_default();
            assert_eq!(workload.container_id.as_deref(), Some(id.as_str()), "{event}");
            assert_eq!(workload.kind.as_deref(), Some("container"), "{event}");
            let path = event.victim_cgroup_path().unwrap_or_default();
            assert!(
                path.starts_with(&pod.cgroup_parent) && path.ends_with(&format!("cri-containerd-{id}.scope")),
                "{event}"
            );
        }
    }
    Ok(())
}

/// After the kills above: the agent's resident memory, read from /proc of its
/// main process, next to the manifest's memory request and limit (figures for
/// the node-test block of docs/benchmarks.md). The request is the startup
/// peak plus a margin (deploy/kubernetes/daemonset.yaml): the peak (VmHWM)
/// stays within it, so the pod never runs above its request, and far below
/// the limit.
fn the_agent_stays_well_inside_its_memory_limit() -> Result<()> {
    let agent = agent()?;
    let pid = block(cri()?.status(&agent.container_id))?.pid;
    ensure!(pid != 0, "the agent's container has no running process");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} in status"))?;
        Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
    };
    let (rss_kib, hwm_kib) = (field("VmRSS:")?, field("VmHWM:")?);
    let spec = spec()?;
    let request = spec.memory_request.context("the manifest sets no memory request")?;
    let limit = spec.memory_limit.context("the manifest sets no memory limit")?;
    let (request_kib, limit_kib) = (request / 1024, limit / 1024);
    println!(
        "NODE-FIGURE agent_rss_kib={rss_kib} agent_hwm_kib={hwm_kib} agent_request_kib={request_kib} \
         agent_limit_kib={limit_kib}"
    );
    assert!(
        hwm_kib <= request_kib,
        "the agent's peak {hwm_kib} KiB (VmHWM) is above the manifest's memory request {request_kib} KiB: \
         raise the request (and the limit with it) in deploy/kubernetes/daemonset.yaml, or find what grew"
    );
    assert!(hwm_kib * 3 <= limit_kib * 2, "peak {hwm_kib} KiB is not well inside the {limit_kib} KiB limit");
    Ok(())
}

/// Scenario 7: the agent's pod deleted and created again between kills, with
/// a kill while it was away. The new agent reports that kill once, from the
/// kernel log (`source: kernel_log`, counted apart from live kills), and none
/// of the kills the old agent reported (its position in the log is kept in
/// the manifests' state directory under /run); live kills count from zero.
fn a_restarted_agent_starts_clean_and_reports_nothing_twice() -> Result<()> {
    let cri = cri()?;
    let old = agent()?;
    block(cri.remove_pod(&old.pod))?;
    // While no agent runs: a kill only the kernel log will tell of. The pod
    // stays until the new agent has named it (the CRI lists an exited
    // container until it is removed).
    let away = run_pod(&cri, "away", Qos::Burstable)?;
    let away_id = container(&cri, &away, "app", &["hog", "256", "0.5"], Some(32 * MIB))?;
    block(cri.wait_exited(&away_id, EVENT_TIMEOUT))?;
    let fresh = start_agent()?;
    *AGENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(fresh.clone());
    let past = wait_events(&fresh, 1, in_pod(&away))?;
    assert_eq!(past.len(), 1, "the kill while away, once: {past:#?}");
    assert_eq!(past[0].source, "kernel_log", "{}", past[0]);
    assert_named(&past[0], &away, "app");
    let all = events(&fresh);
    assert_eq!(all.len(), 1, "no kill the old agent reported is reported again: {all:#?}");
    assert_eq!(metric(&fresh, "oomtrace_oom_kills_total", ("namespace", NAMESPACE))?, 0.0);
    assert_eq!(metric(&fresh, "oomtrace_kernel_log_oom_kills_total", ("pod", away.name.as_str()))?, 1.0);
    let pod = run_pod(&cri, "again", Qos::Burstable)?;
    let id = container(&cri, &pod, "app", &["hog", "256", "0.5"], Some(32 * MIB))?;
    block(cri.wait_exited(&id, EVENT_TIMEOUT))?;
    let events = wait_events(&fresh, 1, in_pod(&pod))?;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].source, "ebpf", "{}", events[0]);
    let report = wait_report(&fresh, &events[0])?;
    assert!(!report.kernel_report.largest_tasks.is_empty(), "the kernel's report follows the kill: {report}");
    assert_eq!(report.workload.as_ref().and_then(|w| w.pod.as_deref()), Some(pod.name.as_str()), "{report}");
    assert_eq!(metric(&fresh, "oomtrace_oom_kills_total", ("pod", pod.name.as_str()))?, 1.0);
    // The kernel counted every kill of this boot and the agents reported each.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(gauge(&fresh, "oomtrace_kernel_oom_kills_unreported")?, 0.0);
    assert!(gauge(&fresh, "oomtrace_kernel_oom_kills")? >= 2.0);
    block(cri.remove_pod(&pod))?;
    block(cri.remove_pod(&away))?;
    Ok(())
}

/// Scenario 9: `oomtrace history --journal` on the node (journald keeps the
/// kernel's messages) finds the kills of this suite with their pods.
fn history_from_the_journal_names_the_suites_kills() -> Result<()> {
    let binary = env("OOMTRACE_BIN")?;
    let socket = env("OOMTRACE_CRI_SOCKET")?;
    let out = std::process::Command::new(&binary)
        .args(["history", "--journal", "-o", "json", "--cgroup", "/kubepods.slice", "--cri-socket", &socket])
        .output()
        .context("running oomtrace history --journal")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "history --journal failed: {stderr}");
    let events: Vec<Event> = String::from_utf8_lossy(&out.stdout).lines().map(Event::parse).collect::<Result<_>>()?;
    ensure!(!events.is_empty(), "no kill found in the journal: {stderr}");
    // Every kill the suite made in kubepods (confirmed by the kernel's log),
    // each exactly once.
    for (pid, comm) in suite_victims() {
        let found = events.iter().filter(|e| e.victim.pid == pid).count();
        ensure!(found == 1, "{comm} (pid {pid}), killed by the kernel during the suite, is in history {found} times");
        let event = events.iter().find(|e| e.victim.pid == pid).context("found above")?;
        assert_eq!(event.victim.comm.as_deref(), Some(comm.as_str()), "{event}");
    }
    for event in &events {
        assert_eq!(event.kernel_log.as_ref().map(|l| l.from.as_str()), Some("journal"), "{event}");
        let workload = event.workload.clone().unwrap_or_default();
        assert!(workload.pod_uid.is_some(), "the log's cgroup path names the pod: {event}");
    }
    let closing = stderr.lines().last().unwrap_or_default();
    assert!(closing.starts_with("kernel counted "), "{stderr}");
    println!("NODE-HISTORY events={} {closing}", events.len());
    Ok(())
}

/// Scenario 5 (last: it exhausts the guest): a BestEffort pod with no limit
/// takes the node's memory; the kernel's global OOM killer picks it
/// (oom_score_adj 1000) and the agent names it.
fn the_whole_node_out_of_memory_names_a_besteffort_victim() -> Result<()> {
    let agent = agent()?;
    let cri = cri()?;
    std::fs::write("/proc/self/oom_score_adj", "-1000").context("protecting the test from the OOM killer")?;
    let pod = run_pod(&cri, "runaway", Qos::BestEffort)?;
    let total_mib = oomtrace_testkit::procfs::mem_total_kb().unwrap_or(2 << 20) / 1024;
    let oracle = KernelOracle::start(&agent, "scenario-5")?;
    // It grows after 6 s: the agent lists the runtime's containers every
    // 2 s, so it knows this one before the node runs out of memory, when
    // containerd may not answer within the agent's CRI timeout.
    container(&cri, &pod, "leak", &["hog", &(total_mib * 2).to_string(), "6"], None)?;
    // Filling the guest's memory takes tens of seconds under emulation
    // (~40 MiB/s seen on a busy host).
    wait_events_within(&agent, 1, in_pod(&pod), NODE_FILL_TIMEOUT)?;
    // Every process the kernel killed (the pod's, and any other it chose)
    // reported once; the pod's named.
    let all = oracle.victims(&agent)?;
    let events: Vec<&Event> = all.iter().filter(|e| in_pod(&pod)(e)).collect();
    ensure!(!events.is_empty(), "no kill in the pod among {all:#?}");
    for event in events {
        assert_eq!(event.scope.as_deref(), Some("global"), "{event}");
        assert_eq!(event.cause(), Some("node_memory"), "{event}");
        for action in ["list_pods_without_limits", "system_node_pool"] {
            assert!(event.advice(action).is_some(), "{action}: {event}");
        }
        assert!(event.oom_cgroup.is_none(), "{event}");
        let workload = event.workload.clone().unwrap_or_default();
        assert_eq!(workload.kind.as_deref(), Some("container"), "{event}");
        assert_eq!(workload.qos.as_deref(), Some("besteffort"), "{event}");
        assert_named(event, &pod, "leak");
    }
    // The node ran out of memory: the kernel may have killed the pod's shim
    // too (containerd then cannot stop the container: "ttrpc: closed"). The
    // guest is thrown away after this last scenario; the failure is shown.
    if let Err(error) = block(cri.remove_pod(&pod)) {
        println!("the pod could not be removed after the node's OOM (the guest is discarded): {error:#}");
    }
    Ok(())
}
