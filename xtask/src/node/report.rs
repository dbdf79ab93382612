//! Reads one node's serial output (guest/run-suite.sh's `== ` markers and the
//! suite's outcome lines) into a per-kernel result, and renders docs/node.md.

use std::time::Duration;

use crate::vm::{
    qemu::Boot,
    report::{Outcome, failure_excerpt, summary_count, test_outcomes, without_colours},
};

#[derive(Clone, Debug)]
pub struct NodeResult {
    pub label: &'static str,
    pub release: String,
    pub passed: bool,
    pub cgroup_fs: String,
    pub containerd_state: String,
    pub containerd_version: String,
    pub runc_version: String,
    /// From the kernel's start to systemd's (the kernel and the initramfs).
    pub systemd_start: Option<Duration>,
    /// From the kernel's start to containerd.service active.
    pub containerd_active: Option<Duration>,
    /// The suite's own run time.
    pub suite_time: Option<Duration>,
    /// MemTotal and MemAvailable when the suite started.
    pub memory: String,
    /// Each test of the suite (one scenario each) and how it ended.
    pub scenarios: Vec<(String, Outcome)>,
    /// What stopped the node before or instead of the suite, if anything.
    pub problem: Option<String>,
    pub elapsed: Duration,
    pub failure_excerpt: String,
    /// `NODE-FIGURE key=value ...` the suite printed (the agent's RSS, ...).
    pub figures: std::collections::BTreeMap<String, u64>,
    /// `oomtrace check` in the agent's container (scenario 8), with the
    /// kernel's perf_event_paranoid: what its least privilege attaches.
    pub agent_check: Option<String>,
}

/// The value of the `== <key> <value>` marker line.
fn marker<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    let prefix = format!("== {key} ");
    lines.iter().find_map(|line| line.strip_prefix(prefix.as_str())).map(str::trim)
}

pub fn parse(label: &'static str, release: &str, boot: &Boot) -> NodeResult {
    let cleaned: Vec<String> = boot.output.lines().map(without_colours).collect();
    let lines: Vec<&str> = cleaned.iter().map(String::as_str).collect();
    let suite_start = lines.iter().position(|l| *l == "== suite").map_or(lines.len(), |i| i + 1);
    let suite_lines = &lines[suite_start..];
    let scenarios = test_outcomes(suite_lines);
    // The harness' own count, and the outcome lines (either may be cut off).
    let failed = suite_lines
        .iter()
        .filter_map(|l| summary_count(l, "failed"))
        .sum::<usize>()
        .max(scenarios.iter().filter(|(_, o)| *o == Outcome::Failed).count());
    let suite_rc = marker(&lines, "suite-rc").and_then(|rc| rc.parse::<i32>().ok());
    let problem = ["containerd-missing", "import-failed"]
        .iter()
        .find_map(|key| marker(&lines, key).map(|detail| format!("{key}: {detail}")))
        .or_else(|| {
            if suite_start == lines.len() {
                Some("the suite did not start".to_owned())
            } else if suite_rc.is_none() {
                Some("the suite did not finish (crash or timeout; see the console)".to_owned())
            } else if scenarios.is_empty() {
                Some("the suite reported no tests".to_owned())
            } else {
                None
            }
        });
    let passed = problem.is_none() && failed == 0 && suite_rc == Some(0) && boot.exit_code == Some(0);
    let failure_excerpt = if passed { String::new() } else { failure_excerpt(&lines, &boot.console_tail) };
    let text = |key: &str| marker(&lines, key).unwrap_or("?").to_owned();
    NodeResult {
        label,
        release: release.to_owned(),
        passed,
        cgroup_fs: text("cgroup-fs"),
        containerd_state: text("containerd"),
        containerd_version: text("containerd-version"),
        runc_version: text("runc-version"),
        systemd_start: microseconds(marker(&lines, "systemd-start-us")),
        containerd_active: microseconds(marker(&lines, "containerd-active-us")),
        suite_time: marker(&lines, "suite-seconds")
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok()),
        memory: text("memory"),
        scenarios,
        problem,
        elapsed: boot.elapsed,
        failure_excerpt,
        figures: figures(suite_lines),
        agent_check: between(suite_lines, "NODE-CHECK-BEGIN ", "NODE-CHECK-END"),
    }
}

/// The lines from the one starting with `begin` (its rest included) to the
/// one containing `end` (its part before `end` included).
fn between(lines: &[&str], begin: &str, end: &str) -> Option<String> {
    let start = lines.iter().position(|l| l.contains(begin))?;
    let mut text = lines[start].split_once(begin)?.1.to_owned();
    for line in &lines[start + 1..] {
        text.push('\n');
        if let Some((before, _)) = line.split_once(end) {
            text.push_str(before);
            return Some(text.trim_end().to_owned());
        }
        text.push_str(line);
    }
    None
}

/// The `key=value` pairs after `NODE-FIGURE` anywhere in a line (a test's
/// output follows its name on the same line).
fn figures(lines: &[&str]) -> std::collections::BTreeMap<String, u64> {
    lines
        .iter()
        .filter_map(|line| line.split_once("NODE-FIGURE ").map(|(_, rest)| rest))
        .flat_map(str::split_whitespace)
        .filter_map(|pair| pair.split_once('=').and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?))))
        .collect()
}

/// Where node-test's figures live in docs/benchmarks.md (the bench keeps the block when it rewrites the file).
pub const BENCH_BLOCK_BEGIN: &str = "<!-- node-test figures: begin -->";
pub const BENCH_BLOCK_END: &str = "<!-- node-test figures: end -->";

/// The image's size and the agent's memory on each node, for docs/benchmarks.md.
pub fn benchmarks_block(results: &[NodeResult], image: Option<&crate::node::payload::ImageArchive>) -> String {
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    let mut out = format!("{BENCH_BLOCK_BEGIN}\n## On the AKS-shaped node (`cargo xtask node-test`)\n\n");
    out.push_str(&format!("Run: {}. ", humantime::format_rfc3339_seconds(std::time::SystemTime::now())));
    if let Some(image) = image {
        out.push_str(&format!(
            "The DaemonSet's image `{}` built from deploy/Dockerfile by scripts/image.sh: {} uncompressed, {} as \
             its OCI archive.\n\n",
            image.reference,
            image.size_bytes.map_or("?".to_owned(), mib),
            image.archive_bytes.map_or("?".to_owned(), mib),
        ));
    }
    out.push_str(
        "The agent's memory read from /proc of its main process in its container, next to the manifest's memory \
         request and limit, after the container, sidecar, pod-level, kubepods and short-lived-pod kills \
         (docs/node.md):\n\n\
         | kernel | VmRSS | VmHWM (peak since start) | request | limit |\n|---|---|---|---|---|\n",
    );
    for r in results {
        let kib = |key: &str| r.figures.get(key).map_or("?".to_owned(), |kib| mib(kib * 1024));
        out.push_str(&format!(
            "| {} ({}) | {} | {} | {} | {} |\n",
            r.label,
            r.release,
            kib("agent_rss_kib"),
            kib("agent_hwm_kib"),
            kib("agent_request_kib"),
            kib("agent_limit_kib")
        ));
    }
    out.push_str(BENCH_BLOCK_END);
    out.push('\n');
    out
}

/// `text` with its node-test block replaced by `block` (or `block` appended).
pub fn with_block(text: &str, block: &str) -> String {
    match crate::marked::find(text, BENCH_BLOCK_BEGIN, BENCH_BLOCK_END) {
        Some((begin, end)) => format!("{}{}{}", &text[..begin], block.trim_end_matches('\n'), &text[end..]),
        None => format!("{}\n\n{block}", text.trim_end_matches('\n')),
    }
}

/// The node-test block of `text`, if it has one.
pub fn block_of(text: &str) -> Option<&str> {
    crate::marked::find(text, BENCH_BLOCK_BEGIN, BENCH_BLOCK_END).map(|(begin, end)| &text[begin..end])
}

/// systemd's monotonic timestamps (0: never happened).
fn microseconds(value: Option<&str>) -> Option<Duration> {
    value.and_then(|us| us.parse::<u64>().ok()).filter(|us| *us > 0).map(Duration::from_micros)
}

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or("?".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Passed => "passed".to_owned(),
        Outcome::Failed => "FAILED".to_owned(),
        Outcome::Ignored(reason) if reason.is_empty() => "ignored".to_owned(),
        Outcome::Ignored(reason) => format!("ignored: {reason}"),
    }
}

impl crate::vm::Verdict for NodeResult {
    fn label(&self) -> &str {
        self.label
    }

    fn passed(&self) -> bool {
        self.passed
    }

    fn failure_excerpt(&self) -> &str {
        &self.failure_excerpt
    }

    fn line(&self) -> String {
        let count = |wanted: fn(&Outcome) -> bool| self.scenarios.iter().filter(|(_, o)| wanted(o)).count();
        format!(
            "{:<5} {:<28} {}  {} passed, {} failed, {} ignored; containerd active at {}  ({:.0} s){}",
            self.label,
            self.release,
            if self.passed { "PASS" } else { "FAIL" },
            count(|o| *o == Outcome::Passed),
            count(|o| *o == Outcome::Failed),
            count(|o| matches!(o, Outcome::Ignored(_))),
            seconds(self.containerd_active),
            self.elapsed.as_secs_f64(),
            self.problem.as_ref().map(|p| format!("  [{p}]")).unwrap_or_default()
        )
    }
}

/// docs/node.md, generated from one node-test run.
pub fn markdown(results: &[NodeResult], wall_time: Duration, jobs: usize) -> String {
    let mut out = String::from(
        "# The AKS-shaped node\n\n\
         Generated by `cargo xtask node-test` (do not edit by hand; `.ci/run` runs it after vm-test). Each kernel \
         boots a Debian bookworm userspace under qemu (single-threaded TCG, 2 GiB): systemd as PID 1, dbus, \
         containerd and runc from Debian's packages, cgroup v2 only, containerd configured as on AKS (CRI on, runc \
         with `SystemdCgroup = true`, a CNI bridge for pod networking). A oneshot unit ordered after \
         containerd.service imports the images (no registry is reachable) and runs the in-guest suite \
         (`oomtrace/tests/node.rs`); each test is one scenario. Code: `xtask/src/node/`.\n\n",
    );
    out.push_str(&format!("Run: {}\n\n", humantime::format_rfc3339_seconds(std::time::SystemTime::now())));
    out.push_str(&format!(
        "node-test wall time: {:.0} s ({} kernels, {} VM{} at a time, including the build and the rootfs).\n\n",
        wall_time.as_secs_f64(),
        results.len(),
        jobs,
        if jobs == 1 { "" } else { "s" }
    ));
    out.push_str(
        "Times are seconds after the kernel started: systemd started (the kernel booted and the initramfs \
         unpacked), containerd.service active; then the suite's own time, and the VM's from qemu's start to its \
         exit.\n\n",
    );
    out.push_str(
        "| series | kernel | cgroup fs | containerd | runc | systemd started | containerd active | suite | VM total \
         | memory at suite start | result |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} ({}) | {} | {} | {} | {} | {:.0} s | {} | {} |\n",
            r.label,
            r.release,
            r.cgroup_fs,
            r.containerd_version,
            r.containerd_state,
            r.runc_version,
            seconds(r.systemd_start),
            seconds(r.containerd_active),
            seconds(r.suite_time),
            r.elapsed.as_secs_f64(),
            r.memory,
            match (&r.problem, r.passed) {
                (Some(problem), _) => format!("FAIL: {problem}"),
                (None, true) => "pass".to_owned(),
                (None, false) => "FAIL".to_owned(),
            }
        ));
    }
    for r in results {
        out.push_str(&format!("\n## {} ({})\n\n| scenario | result |\n|---|---|\n", r.label, r.release));
        for (name, outcome) in &r.scenarios {
            out.push_str(&format!("| {name} | {} |\n", outcome_text(outcome)));
        }
        if let Some(check) = &r.agent_check {
            out.push_str(&format!(
                "\n`oomtrace check` in the agent's container, under the manifests' least privilege (CAP_BPF, \
                 CAP_PERFMON, CAP_SYSLOG):\n\n```\n{check}\n```\n"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(output: &str, exit_code: Option<i32>) -> Boot {
        Boot { output: output.to_owned(), exit_code, console_tail: String::new(), elapsed: Duration::from_secs(90) }
    }

    const NODE: &str = "== uname 6.12.117+deb12-cloud-amd64\n== cgroup-fs cgroup2fs\n== containerd active\n\
        == systemd-start-us 10270000\n== containerd-active-us 24083921\n== containerd-version 1.6.20~ds1\n\
        == runc-version 1.1.5+ds1\n== imported localhost/pause:oomtrace\n\
        == memory MemTotal: 2013596 kB MemAvailable: 1500000 kB\n";

    #[test]
    fn the_agents_check_is_read_between_its_markers() {
        let lines =
            ["x NODE-CHECK-BEGIN kernel.perf_event_paranoid = 3", "btf  ok", "verdict: ok", "NODE-CHECK-END", "y"];
        assert_eq!(
            between(&lines, "NODE-CHECK-BEGIN ", "NODE-CHECK-END").as_deref(),
            Some("kernel.perf_event_paranoid = 3\nbtf  ok\nverdict: ok")
        );
        assert_eq!(between(&lines[..2], "NODE-CHECK-BEGIN ", "NODE-CHECK-END"), None);
    }

    #[test]
    fn figures_are_read_and_the_benchmarks_block_is_replaced_in_place() {
        let lines = ["test the_agent_stays ... NODE-FIGURE agent_rss_kib=12236 agent_hwm_kib=28804", "ok"];
        let figures = figures(&lines);
        assert_eq!(figures.get("agent_rss_kib"), Some(&12236));
        assert_eq!(figures.get("agent_hwm_kib"), Some(&28804));
        let block = format!("{BENCH_BLOCK_BEGIN}\nnew\n{BENCH_BLOCK_END}\n");
        let appended = with_block("# Bench\n\ntext\n", &block);
        assert_eq!(appended, format!("# Bench\n\ntext\n\n{block}"));
        let replaced = with_block(&format!("# Bench\n{BENCH_BLOCK_BEGIN}\nold\n{BENCH_BLOCK_END}\nafter\n"), &block);
        assert_eq!(replaced, format!("# Bench\n{BENCH_BLOCK_BEGIN}\nnew\n{BENCH_BLOCK_END}\nafter\n"));
        assert_eq!(block_of(&replaced), Some(block.trim_end()));
    }

    #[test]
    fn a_node_whose_suite_passed() {
        let output = format!(
            "{NODE}== suite\nrunning 2 tests\ntest group_kill ... ok\n\
             test global_oom ... ignored (TCG)\ntest result: ok. 1 passed; 0 failed; 1 ignored\n\
             == suite-seconds 42.5\n== suite-rc 0\n"
        );
        let result = parse("6.12", "6.12.117+deb12-cloud-amd64", &boot(&output, Some(0)));
        assert!(result.passed, "{result:?}");
        assert_eq!(result.problem, None);
        assert_eq!(result.cgroup_fs, "cgroup2fs");
        assert_eq!(result.containerd_active, Some(Duration::from_micros(24083921)));
        assert_eq!(result.suite_time, Some(Duration::from_millis(42500)));
        assert_eq!(result.scenarios.len(), 2);
        assert_eq!(result.scenarios[1].1, Outcome::Ignored("TCG".to_owned()));
        let markdown = markdown(&[result], Duration::from_secs(200), 2);
        assert!(markdown.contains("| global_oom | ignored: TCG |"), "{markdown}");
        assert!(markdown.contains("| 24.1 s | 42.5 s | 90 s |"), "{markdown}");
    }

    #[test]
    fn a_failed_scenario_fails_the_node() {
        let output = format!(
            "{NODE}== suite\ntest group_kill ... FAILED\ntest result: FAILED. 0 passed; 1 failed\n== suite-rc 1\n"
        );
        let result = parse("6.1", "6.1.0-56-cloud-amd64", &boot(&output, Some(1)));
        assert!(!result.passed);
        assert_eq!(result.scenarios, vec![("group_kill".to_owned(), Outcome::Failed)]);
    }

    #[test]
    fn a_suite_that_never_ran_or_never_finished_fails_the_node() {
        let cut_off = format!("{NODE}== suite\ntest group_kill ... ok\n");
        let result = parse("6.1", "6.1.0-56-cloud-amd64", &boot(&cut_off, None));
        assert!(!result.passed);
        assert!(result.problem.as_deref().is_some_and(|p| p.contains("did not finish")), "{result:?}");

        let import_failed = format!("{NODE}== import-failed oomtrace-image.oci.tar\n");
        let result = parse("6.1", "6.1.0-56-cloud-amd64", &boot(&import_failed, Some(1)));
        assert!(!result.passed);
        assert_eq!(result.problem.as_deref(), Some("import-failed: oomtrace-image.oci.tar"));

        let empty = format!("{NODE}== suite\nrunning 0 tests\n== suite-rc 0\n");
        let result = parse("6.1", "6.1.0-56-cloud-amd64", &boot(&empty, Some(0)));
        assert!(!result.passed, "a suite without tests proves nothing");
    }
}
