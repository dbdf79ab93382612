//! `oomtrace diagnose` on real kills: two memory cgroups made here, one
//! OOM-killed three times and the other once, come back as two workloads
//! whose counts, victims (the kernel log's pids and comms), cause and
//! `repeated` evidence are the kernel's; the Markdown and table forms carry
//! the same; the memory picture is /proc's; a window without kills gives the
//! eviction answer with kubectl commands the real kubectl parses; a log that
//! cannot be read is an error.

mod support;

use std::{
    process::{Command, ExitCode, Output},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, ensure};
use oomtrace_testkit::{
    cgroup::MemCgroup,
    cri::{Qos, blocking::Cri, new_uid},
    dmesg,
    harness::{self, Need},
    trial,
};
use serde_json::Value;
use support::{oomtrace, unique};

const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 64 * MIB;
const HOG: u64 = 256 * MIB;
/// Kills of one workload closer than 100 ms count as one OOM-killer
/// invocation (a group kill) for the `repeated` finding.
const BETWEEN_KILLS: Duration = Duration::from_millis(300);
/// What the table promises.
const TABLE_WIDTH: usize = 100;

fn main() -> ExitCode {
    harness::main(vec![
        trial!(kills_are_grouped_by_workload_in_every_format, Need::Root),
        trial!(a_pods_container_is_grouped_by_namespace_pod_container, Need::Cri),
        trial!(the_memory_picture_is_procs),
        trial!(a_window_without_kills_gives_the_eviction_answer, Need::Root),
        trial!(an_empty_saved_log_gives_the_eviction_answer),
        trial!(the_eviction_commands_parse_with_kubectl, Need::Kubectl),
        trial!(an_unreadable_log_is_an_error_that_says_so),
        trial!(without_cap_syslog_the_error_says_what_to_do, Need::Root, Need::Probe(dmesg_restricted)),
        trial!(the_kubelets_eviction_lines_are_found_in_its_journal, Need::Root),
    ])
}

/// `oomtrace diagnose <args>`; fails unless it exits 0.
fn diagnose(args: &[&str]) -> Result<String> {
    let out = run_diagnose(args)?;
    ensure!(out.status.success(), "oomtrace diagnose {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_diagnose(args: &[&str]) -> Result<Output> {
    Command::new(oomtrace()).arg("diagnose").args(args).output().context("running oomtrace diagnose")
}

/// A window no kill is in.
const FUTURE: [&str; 2] = ["--since", "2099-01-01 00:00:00"];
/// 2099-01-01T00:00:00Z in seconds since the epoch.
const FUTURE_EPOCH: u64 = 4_070_908_800;

fn diagnose_json(args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let text = diagnose(&all)?;
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

/// The group whose key is `key`: exactly one.
fn group<'a>(report: &'a Value, key: &str) -> &'a Value {
    let found: Vec<&Value> = report["groups"].as_array().into_iter().flatten().filter(|g| g["key"] == key).collect();
    assert_eq!(found.len(), 1, "one group {key}: {report:#}");
    found[0]
}

/// `count` kills in `cgroup`, apart; their pids.
fn kill(cgroup: &MemCgroup, count: usize) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for _ in 0..count {
        pids.push(cgroup.oom_kill_hog(HOG)?);
        thread::sleep(BETWEEN_KILLS);
    }
    Ok(pids)
}

fn kills_are_grouped_by_workload_in_every_format() -> Result<()> {
    let thrice = MemCgroup::create(&unique("diagnose-thrice"), Some(LIMIT))?;
    let once = MemCgroup::create(&unique("diagnose-once"), Some(LIMIT))?;
    // Groups are keyed by the cgroup paths of the kernel's whole reports,
    // which it rate-limits: a fresh window after the earlier tests' kills.
    dmesg::wait_for_whole_reports();
    let thrice_pids = kill(&thrice, 3)?;
    let once_pids = kill(&once, 1)?;
    for &pid in thrice_pids.iter().chain(&once_pids) {
        dmesg::killed(pid)?; // in the log before diagnose reads it
    }
    let report = diagnose_json(&["--since", "10m"])?;
    assert_eq!(report["version"], 1, "{report:#}");
    assert_eq!(report["kernel_log"]["source"], "kmsg", "{report:#}");
    assert!(report["no_kill"].is_null(), "kills were found: {report:#}");
    assert!(report["kills"].as_u64().is_some_and(|k| k >= 4), "{report:#}");
    for (cgroup, pids) in [(&thrice, &thrice_pids), (&once, &once_pids)] {
        let group = group(&report, &cgroup.path);
        assert_eq!(group["kills"].as_u64(), Some(pids.len() as u64), "{group:#}");
        assert_eq!(group["cgroup"], cgroup.path.as_str(), "{group:#}");
        assert_eq!(group["causes"], serde_json::json!(["cgroup_limit"]), "{group:#}");
        let victims = group["victims"].as_array().context("victims")?;
        let victim_pids: Vec<u64> = victims.iter().filter_map(|v| v["pid"].as_u64()).collect();
        assert_eq!(victim_pids, pids.iter().map(|&p| u64::from(p)).collect::<Vec<_>>(), "{group:#}");
        for (victim, &pid) in victims.iter().zip(pids.iter()) {
            assert_eq!(victim["comm"].as_str(), Some(dmesg::killed(pid)?.comm.as_str()), "{victim:#}");
            assert_eq!(victim["limit_bytes"].as_u64(), Some(LIMIT), "{victim:#}");
            assert_eq!(victim["oom_cgroup"], cgroup.path.as_str(), "{victim:#}");
        }
        assert!(group["first_kill"].is_string() && group["last_kill"].is_string(), "{group:#}");
        let summary = group["summary"].as_str().unwrap_or_default();
        let last_pid = pids.last().copied().unwrap_or_default();
        assert!(summary.contains(&last_pid.to_string()), "the latest kill's summary: {group:#}");
    }
    let repeated: Vec<&Value> = group(&report, &thrice.path)["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"] == "repeated")
        .collect();
    assert_eq!(repeated.len(), 1, "{report:#}");
    assert_eq!(repeated[0]["kills"].as_u64(), Some(3), "{report:#}");
    assert_eq!(repeated[0]["in_kills"].as_u64(), Some(2), "the second and third kill were repeats: {report:#}");
    let over = repeated[0]["over_seconds"].as_u64().context("over_seconds")?;
    assert!(over <= 60, "three kills within a minute: {over} s");
    let once_findings = group(&report, &once.path)["findings"].as_array().cloned().unwrap_or_default();
    assert!(once_findings.iter().all(|f| f["kind"] != "repeated"), "{once_findings:?}");
    // The thrice-killed workload comes before the once-killed one.
    let keys: Vec<&str> = report["groups"].as_array().into_iter().flatten().filter_map(|g| g["key"].as_str()).collect();
    let rank = |path: &str| keys.iter().position(|k| *k == path).unwrap_or(usize::MAX);
    assert!(rank(&thrice.path) < rank(&once.path), "{keys:?}");

    let markdown = diagnose(&["--since", "10m", "-o", "markdown"])?;
    let row = format!("| `{}` | 3 | ", thrice.path);
    assert!(markdown.lines().any(|l| l.contains(&row) && l.contains("| `cgroup_limit` | repeated")), "{markdown}");
    assert!(markdown.contains(&format!(". `{}`\n\n- **Kills:** 3, ", thrice.path)), "{markdown}");
    assert!(markdown.contains("\n  - repeated: kills 3, over "), "{markdown}");
    assert!(markdown.starts_with("# OOM report: node `"), "{markdown}");
    assert!(markdown.contains("\n## Node memory now\n"), "{markdown}");

    let table = diagnose(&["--since", "10m"])?;
    // Advice commands are never wrapped (they are copied as they are).
    for line in table.lines().filter(|l| !l.trim_start().starts_with("$ ")) {
        assert!(line.chars().count() <= TABLE_WIDTH, "wider than {TABLE_WIDTH}: {line}");
    }
    let overview = table.lines().find(|l| l.ends_with(&format!("  {}", thrice.path))).context("overview row")?;
    let columns: Vec<&str> = overview.split_whitespace().collect();
    assert_eq!(columns.get(1..2), Some(&["3"][..]), "KILLS column: {overview}");
    assert!(overview.contains("  cgroup_limit  "), "{overview}");
    let victims_line = format!("dd (pid {}), dd (pid {}), dd (pid {})", thrice_pids[0], thrice_pids[1], thrice_pids[2]);
    assert!(table.contains(&victims_line), "{table}");
    assert!(table.contains("    findings      repeated: kills 3, over "), "{table}");
    assert!(table.contains("\nNODE MEMORY NOW\n"), "{table}");
    Ok(())
}

/// A container made the way kubelet makes it (CRI, `io.kubernetes.*`
/// labels), killed at its limit: its group is `namespace/pod/container`.
fn a_pods_container_is_grouped_by_namespace_pod_container() -> Result<()> {
    const NAMESPACE: &str = "oomtrace-test";
    let client = Cri::connect_test_runtime()?;
    let pod_name = unique("diagnose-pod");
    let pod = client.run_pod(&pod_name, NAMESPACE, &new_uid(), Qos::Burstable).context("run pod")?;
    dmesg::wait_for_whole_reports(); // the cgroup path is in the whole report
    let id = client.run_container(&pod, "app", &["hog", "256", "1"], Some(LIMIT)).context("run hog")?;
    let (exit_code, reason) = client.wait_exited(&id, Duration::from_secs(30)).context("hog exits")?;
    assert_eq!((exit_code, reason.as_str()), (137, "OOMKilled"));
    let key = format!("{NAMESPACE}/{pod_name}/app");
    let report = diagnose_json(&["--since", "10m", "--cri-socket", client.socket()])?;
    let group = group(&report, &key);
    assert_eq!(group["kind"], "container", "{group:#}");
    assert_eq!(
        (group["namespace"].as_str(), group["pod"].as_str(), group["container"].as_str()),
        (Some(NAMESPACE), Some(pod_name.as_str()), Some("app")),
        "{group:#}"
    );
    assert_eq!(group["cgroup"], format!("{}/{id}", pod.cgroup_parent), "{group:#}");
    assert_eq!(group["causes"], serde_json::json!(["container_limit"]), "{group:#}");
    assert_eq!(group["kills"], 1, "{group:#}");
    let pid = group["victims"][0]["pid"].as_u64().context("victim pid")?;
    assert_eq!(group["victims"][0]["comm"].as_str(), Some(dmesg::killed(u32::try_from(pid)?)?.comm.as_str()));
    let markdown = diagnose(&["--since", "10m", "--cri-socket", client.socket(), "-o", "markdown"])?;
    assert!(markdown.contains(&format!("| `{key}` | 1 | ")), "{markdown}");
    assert!(markdown.contains(&format!("- **Cgroup:** `{}/{id}`", pod.cgroup_parent)), "{markdown}");
    client.remove_pod(pod).context("remove pod")
}

/// `Name:  N kB` of /proc/meminfo, in bytes.
fn meminfo_bytes(name: &str) -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().strip_suffix(" kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("{name} in /proc/meminfo"))
}

fn oom_kill_count() -> Result<u64> {
    std::fs::read_to_string("/proc/vmstat")?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok()))
        .context("oom_kill in /proc/vmstat")
}

fn empty_log() -> Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("{}.log", unique("diagnose-empty")));
    std::fs::write(&path, "")?;
    Ok(path)
}

fn the_memory_picture_is_procs() -> Result<()> {
    let log = empty_log()?;
    let before = oom_kill_count()?;
    let report = diagnose_json(&["--file", &log.display().to_string()])?;
    let after = oom_kill_count()?;
    std::fs::remove_file(&log)?;
    let memory = &report["node_memory"];
    assert_eq!(memory["mem_total_bytes"].as_u64(), Some(meminfo_bytes("MemTotal")?), "{memory:#}");
    let available = memory["mem_available_bytes"].as_u64().context("mem_available_bytes")?;
    let now = meminfo_bytes("MemAvailable")?;
    assert!(available.abs_diff(now) <= 512 * MIB, "MemAvailable {available} vs {now} now: {memory:#}");
    let counted = memory["kernel_oom_kills"].as_u64().context("kernel_oom_kills")?;
    assert!((before..=after).contains(&counted), "{before} <= {counted} <= {after}");
    // A saved log is not this boot's: the kernel's count does not reconcile it.
    assert!(report["kernel_log"]["kernel_count"].is_null(), "{report:#}");
    let notes: Vec<&str> = memory["notes"].as_array().into_iter().flatten().filter_map(|n| n.as_str()).collect();
    let kubepods = [
        "/sys/fs/cgroup/memory/kubepods",
        "/sys/fs/cgroup/memory/kubepods.slice",
        "/sys/fs/cgroup/kubepods.slice",
        "/sys/fs/cgroup/kubepods",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_dir());
    match kubepods {
        Some(dir) => {
            let name = dir.rsplit('/').next().unwrap_or_default();
            assert_eq!(memory["kubepods"]["cgroup"], format!("/{name}"), "{memory:#}");
            assert!(memory["kubepods"]["usage_bytes"].as_u64().is_some(), "{memory:#}");
        }
        None => assert!(notes.contains(&"no kubepods cgroup: not a Kubernetes node"), "{memory:#}"),
    }
    match std::fs::read_to_string("/proc/pressure/memory") {
        Ok(text) => {
            let total: u64 = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("some ")?.split_whitespace().find_map(|w| w.strip_prefix("total=")?.parse().ok())
                })
                .context("some total in /proc/pressure/memory")?;
            let reported = memory["psi"]["some"]["total_us"].as_u64().context("psi.some.total_us")?;
            assert!(reported <= total, "read before the test's read: {reported} <= {total}");
            for key in ["avg10", "avg60", "avg300"] {
                assert!(memory["psi"]["some"][key].as_f64().is_some_and(|v| (0.0..=100.0).contains(&v)), "{memory:#}");
            }
        }
        Err(_) => assert!(notes.contains(&"PSI not available (kernel without CONFIG_PSI or psi=0)"), "{memory:#}"),
    }
    Ok(())
}

/// The note and its commands, whatever the log.
fn assert_eviction_answer(report: &Value) -> Result<()> {
    assert_eq!(report["kills"], 0, "{report:#}");
    assert_eq!(report["groups"], serde_json::json!([]), "{report:#}");
    let note = &report["no_kill"];
    let text = note["note"].as_str().context("no_kill.note")?;
    assert!(text.contains("`Evicted`") && text.contains("not a kernel OOM kill"), "{text}");
    let commands: Vec<&str> =
        note["commands"].as_array().into_iter().flatten().filter_map(|c| c["command"].as_str()).collect();
    assert!(commands.contains(&"kubectl get pods -A --field-selector=status.phase=Failed"), "{commands:?}");
    Ok(())
}

fn a_window_without_kills_gives_the_eviction_answer() -> Result<()> {
    let future = FUTURE;
    let report = diagnose_json(&future)?;
    assert_eviction_answer(&report)?;
    let kubelet = &report["no_kill"]["kubelet_log"];
    let status = kubelet["status"].as_str().context("kubelet_log.status")?;
    assert!(["found", "none", "unavailable"].contains(&status), "this boot's journal is asked: {kubelet:#}");
    // journalctl asked over the window: 2099-01-01 is 4070908800 s after the epoch.
    assert!(
        kubelet["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("journalctl -u kubelet --no-pager -o short-iso --since @4070908800")),
        "{kubelet:#}"
    );
    if std::process::Command::new("journalctl").arg("--version").output().is_err() {
        assert_eq!(status, "unavailable", "{kubelet:#}");
    } else {
        assert_ne!(status, "found", "no kubelet line from 2099: {kubelet:#}");
    }
    let table = diagnose(&future)?;
    assert!(table.contains("\nNO KERNEL OOM KILL\n"), "{table}");
    assert!(table.contains("\n      $ kubectl get pods -A --field-selector=status.phase=Failed\n"), "{table}");
    let markdown = diagnose(&[future[0], future[1], "-o", "markdown"])?;
    assert!(markdown.contains("\n## No kernel OOM kill\n"), "{markdown}");
    assert!(
        markdown.contains("```sh\n  kubectl get pods -A --field-selector=status.phase=Failed\n  ```"),
        "{markdown}"
    );
    Ok(())
}

fn an_empty_saved_log_gives_the_eviction_answer() -> Result<()> {
    let log = empty_log()?;
    let report = diagnose_json(&["--file", &log.display().to_string()])?;
    std::fs::remove_file(&log)?;
    assert_eviction_answer(&report)?;
    assert_eq!(report["kernel_log"]["source"], "file", "{report:#}");
    assert_eq!(report["no_kill"]["kubelet_log"]["status"], "not_checked", "a saved log is not this node's: {report:#}");
    Ok(())
}

/// kubectl checks its flags before it connects: each command gets as far as
/// the (refused) connection to a server that is not there.
fn the_eviction_commands_parse_with_kubectl() -> Result<()> {
    let log = empty_log()?;
    let report = diagnose_json(&["--file", &log.display().to_string()])?;
    std::fs::remove_file(&log)?;
    let commands: Vec<String> = report["no_kill"]["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["command"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(commands.len(), 2, "{report:#}");
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"kubectl"), "{command}");
        let out = Command::new("kubectl")
            .args(["--server=http://127.0.0.1:1", "--request-timeout=5s"])
            .args(&words[1..])
            .env("KUBECONFIG", "/dev/null")
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "no server: {command}");
        assert!(!stderr.contains("unknown flag") && !stderr.contains("unknown shorthand"), "{command}: {stderr}");
        assert!(stderr.contains("127.0.0.1:1") && stderr.contains("refused"), "{command} got to the server: {stderr}");
    }
    Ok(())
}

fn an_unreadable_log_is_an_error_that_says_so() -> Result<()> {
    let missing = std::env::temp_dir().join(unique("diagnose-no-such-log"));
    let out = run_diagnose(&["--file", &missing.display().to_string()])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no report without a log");
    assert!(stderr.contains("oomtrace: error:") && stderr.contains(&missing.display().to_string()), "{stderr}");
    Ok(())
}

fn dmesg_restricted() -> Result<(), String> {
    let restrict = std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict").map_err(|e| e.to_string())?;
    if restrict.trim() != "1" {
        return Err(format!("kernel.dmesg_restrict is {} here: anyone may read the log", restrict.trim()));
    }
    Command::new("setpriv").arg("--version").output().map(drop).map_err(|e| format!("no setpriv here ({e})"))
}

/// An unprivileged user where kernel.dmesg_restrict=1: no report, and the
/// error names the capability and the alternatives.
fn without_cap_syslog_the_error_says_what_to_do() -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    // As nobody: a root process that changes its uid loses its capabilities.
    let out = Command::new(oomtrace())
        .arg("diagnose")
        .uid(65534)
        .gid(65534)
        .output()
        .context("running oomtrace diagnose as nobody")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no report without a log: {}", String::from_utf8_lossy(&out.stdout));
    let error = stderr
        .lines()
        .find(|l| l.starts_with("oomtrace: error: "))
        .with_context(|| format!("no error line: {stderr}"))?;
    assert!(error.contains("CAP_SYSLOG") && error.contains("--journal / --file"), "{error}");
    Ok(())
}

/// The kubelet's lines as its eviction manager writes them (kubernetes
/// pkg/kubelet/eviction/eviction_manager.go, structured logging), one
/// unrelated line, and journalctl's output format (`-o short-iso`).
const KUBELET_JOURNAL: &str = "\
2026-11-29T10:00:00+0000 node kubelet[812]: I1129 10:00:00.100000     812 kubelet.go:2400] \"SyncLoop ADD\" source=\"api\"
2026-11-29T10:00:01+0000 node kubelet[812]: I1129 10:00:01.100000     812 eviction_manager.go:366] \"Eviction manager: attempting to reclaim\" resourceName=\"memory\"
2026-11-29T10:00:01+0000 node kubelet[812]: I1129 10:00:01.200000     812 eviction_manager.go:377] \"Eviction manager: must evict pod(s) to reclaim\" resourceName=\"memory\"
2026-11-29T10:00:02+0000 node kubelet[812]: I1129 10:00:02.300000     812 eviction_manager.go:616] \"Eviction manager: pod is evicted successfully\" pod=\"shop/api-7d9f8c6b5d-x2x4q\"
";

/// A `journalctl` first on PATH that records its arguments and prints
/// `output`: what the kubelet's journal would hold on a node.
fn fake_journalctl(dir: &std::path::Path, output: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("journal.txt"), output)?;
    let script = dir.join("journalctl");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$@\" > {0}/args\ncat {0}/journal.txt\n", dir.display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn diagnose_with_path(dir: &std::path::Path, args: &[&str]) -> Result<Value> {
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(oomtrace()).arg("diagnose").args(args).args(["-o", "json"]).env("PATH", path).output()?;
    ensure!(out.status.success(), "oomtrace diagnose failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn the_kubelets_eviction_lines_are_found_in_its_journal() -> Result<()> {
    let dir = std::env::temp_dir().join(unique("diagnose-journal"));
    fake_journalctl(&dir, KUBELET_JOURNAL)?;
    let report = diagnose_with_path(&dir, &FUTURE)?;
    let args = std::fs::read_to_string(dir.join("args"))?;
    assert_eq!(args.trim(), format!("-u kubelet --no-pager -o short-iso --since @{FUTURE_EPOCH}"));
    let kubelet = &report["no_kill"]["kubelet_log"];
    assert_eq!(kubelet["status"], "found", "{kubelet:#}");
    assert_eq!(kubelet["evicted_pods"], serde_json::json!(["shop/api-7d9f8c6b5d-x2x4q"]), "{kubelet:#}");
    let lines: Vec<&str> = kubelet["lines"].as_array().into_iter().flatten().filter_map(|l| l.as_str()).collect();
    assert_eq!(lines, KUBELET_JOURNAL.lines().skip(1).collect::<Vec<_>>(), "{kubelet:#}");

    // A kubelet that evicted nothing.
    fake_journalctl(&dir, &KUBELET_JOURNAL.lines().take(1).map(|l| format!("{l}\n")).collect::<String>())?;
    let quiet = diagnose_with_path(&dir, &FUTURE)?;
    let kubelet = &quiet["no_kill"]["kubelet_log"];
    assert_eq!(kubelet["status"], "none", "{kubelet:#}");
    assert!(
        kubelet["detail"].as_str().is_some_and(|d| d.ends_with("no eviction manager line among 1 kubelet line")),
        "{kubelet:#}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
