//! Node scenarios of the diagnosis (issue 12): a systemd unit's kill as the
//! agent labels and advises it, and `oomtrace diagnose` on the node.

use anyhow::{Context as _, Result, ensure};
use oomtrace_testkit::{cri::new_uid, event::Event};

use super::{agent, env, metric, suite_victims, wait_events};

/// Scenario 11: a systemd service at its MemoryMax (as kubelet.service or
/// containerd.service would be): the agent names the unit, the cause is
/// `cgroup_limit`, the advice is the unit's `systemctl` command, and the
/// kill counter has its own series with the `unit` label.
pub fn a_systemd_unit_at_its_memory_max_is_named_by_its_unit() -> Result<()> {
    let agent = agent()?;
    let unit = format!("oomtrace-hog-{}", &new_uid()[..5]);
    let service = format!("{unit}.service");
    let status = std::process::Command::new("systemd-run")
        .args(["--unit", &unit, "--wait", "--quiet", "-p", "MemoryMax=64M", "-p", "MemorySwapMax=0"])
        .args(["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"])
        .status()
        .context("running systemd-run")?;
    ensure!(!status.success(), "dd of 256 MiB survived MemoryMax=64M: {status}");
    let of_unit = |e: &Event| e.workload.as_ref().and_then(|w| w.unit.as_deref()) == Some(service.as_str());
    let events = wait_events(&agent, 1, of_unit)?;
    for event in &events {
        assert_eq!(event.victim.comm.as_deref(), Some("dd"), "{event}");
        assert_eq!(event.oom_cgroup_path(), Some(format!("/system.slice/{service}").as_str()), "{event}");
        assert_eq!(event.cause(), Some("cgroup_limit"), "{event}");
        let advice = event.advice("systemd_memory_limit").with_context(|| format!("no unit advice: {event}"))?;
        let command = format!(
            "systemctl show -p MemoryMax -p MemoryHigh -p MemoryCurrent {service} && systemctl set-property {service} MemoryMax=164M"
        );
        assert_eq!(advice.command.as_deref(), Some(command.as_str()), "{event}");
    }
    let kills = metric(&agent, "oomtrace_oom_kills_total", ("unit", &service))?;
    ensure!(kills >= 1.0, "no oomtrace_oom_kills_total series with unit={service}");
    Ok(())
}

/// Scenario 10: `oomtrace diagnose` on the node groups the suite's kills by
/// container, with the causes the scenarios made (container, pod and
/// node-allocatable limits) and the advice's commands; its table is what
/// docs/diagnose.md shows ("On the AKS-shaped node").
pub fn diagnose_reports_the_suites_kills_by_container_with_their_causes() -> Result<()> {
    let binary = env("OOMTRACE_BIN")?;
    let socket = env("OOMTRACE_CRI_SOCKET")?;
    let run = |format: &str| -> Result<String> {
        let out = std::process::Command::new(&binary)
            .args(["diagnose", "--journal", "-o", format, "--cri-socket", &socket])
            .output()
            .context("running oomtrace diagnose --journal")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "diagnose -o {format} failed: {stderr}");
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let report: serde_json::Value = serde_json::from_str(&run("json")?).context("diagnose -o json")?;
    let groups = report["groups"].as_array().context("no groups")?;
    // The suite's pods are gone: their groups are keyed by what the log's
    // cgroup paths give (the pod uid and container id), named where the
    // runtime still lists them.
    let causes: Vec<&str> =
        groups.iter().flat_map(|g| g["causes"].as_array().into_iter().flatten()).filter_map(|c| c.as_str()).collect();
    for cause in ["container_limit", "pod_limit", "node_allocatable", "cgroup_limit"] {
        ensure!(causes.contains(&cause), "no {cause} among the groups: {causes:?}\n{report:#}");
    }
    for group in groups {
        if let (Some(namespace), Some(pod), Some(container)) =
            (group["namespace"].as_str(), group["pod"].as_str(), group["container"].as_str())
        {
            assert_eq!(group["key"], format!("{namespace}/{pod}/{container}").as_str(), "{group:#}");
        }
        ensure!(group["advice"].as_array().is_some_and(|a| !a.is_empty()), "no advice: {group:#}");
    }
    ensure!(report["node_memory"]["kubepods"]["cgroup"] == "/kubepods.slice", "{:#}", report["node_memory"]);
    // Every kill the suite made (confirmed by the kernel's log) is one victim
    // of one group.
    let victims: Vec<(u64, &str)> = groups
        .iter()
        .flat_map(|g| g["victims"].as_array().into_iter().flatten())
        .filter_map(|v| Some((v["pid"].as_u64()?, v["comm"].as_str().unwrap_or_default())))
        .collect();
    for (pid, comm) in suite_victims() {
        let found: Vec<&(u64, &str)> = victims.iter().filter(|(p, _)| *p == u64::from(pid)).collect();
        ensure!(
            found.len() == 1,
            "{comm} (pid {pid}), killed during the suite, is {} victims of the report",
            found.len()
        );
        ensure!(found[0].1 == comm, "pid {pid}: the report says {:?}, the kernel {comm:?}", found[0].1);
    }
    let markdown = run("markdown")?;
    ensure!(markdown.starts_with("# OOM report: node `"), "{markdown}");
    let table = run("table")?;
    println!("NODE-DIAGNOSE-TABLE-BEGIN\n{table}NODE-DIAGNOSE-TABLE-END");
    Ok(())
}
