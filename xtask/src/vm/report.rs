//! Reads a guest's suite output into a per-kernel result, and renders the
//! docs/kernels.md table from the results of a matrix run.

use std::{collections::BTreeSet, time::Duration};

use super::qemu::Boot;

#[derive(Clone, Debug)]
pub struct KernelResult {
    pub label: &'static str,
    pub release: String,
    pub passed: bool,
    /// (attach point, attaches) as `oomtrace check` reported them in the guest.
    pub check: Vec<(String, bool)>,
    pub mark_victim_fields: String,
    pub cgroup: String,
    pub tests_passed: usize,
    pub tests_failed: usize,
    /// Tests the harness reported as ignored: (test, reason).
    pub skipped: Vec<(String, String)>,
    /// Attach methods a passing, non-skipped test forced and verified.
    pub exercised: BTreeSet<&'static str>,
    /// Attach methods the kernel's own facts say must work here (`required`).
    pub required: BTreeSet<&'static str>,
    pub elapsed: Duration,
    pub failure_excerpt: String,
}

/// Tests that each force one attach method.
const METHOD_TESTS: [(&str, &str); 5] = [
    ("memcg_kill_matches_the_kernel_with_default_probes", "tp_btf"),
    ("memcg_kill_matches_the_kernel_through_raw_tp", "raw_tp"),
    ("memcg_kill_matches_the_kernel_through_the_classic_tracepoint_only", "tracepoint"),
    ("memcg_kill_with_the_fentry_context", "fentry"),
    ("memcg_kill_with_the_kprobe_context", "kprobe"),
];

/// The attach methods that must work on a kernel with these facts (the
/// guest's `== facts` line: `btf=1 kprobe_pmu=1 …`): raw_tp always (4.17+;
/// every kernel of the matrix), tp_btf with BTF, fentry with BTF where
/// ftrace can patch `oom_kill_process` on x86_64, kprobe with the kprobe PMU,
/// the classic tracepoint where tracefs has it. Root runs the suite, so
/// `kernel.perf_event_paranoid` does not restrict it.
pub fn required(facts: &str) -> BTreeSet<&'static str> {
    let fact = |key: &str| {
        facts.split_whitespace().find_map(|pair| pair.strip_prefix(key)?.strip_prefix('=')).unwrap_or_default()
    };
    let on = |key: &str| fact(key) == "1";
    let mut required = BTreeSet::from(["raw_tp"]);
    if on("btf") {
        required.insert("tp_btf");
        if on("ftrace_oom_kill_process") && fact("arch") == "x86_64" {
            required.insert("fentry");
        }
    }
    if on("kprobe_pmu") {
        required.insert("kprobe");
    }
    if on("mark_victim_tracepoint") {
        required.insert("tracepoint");
    }
    required
}

pub fn parse(label: &'static str, release: &str, boot: &Boot) -> KernelResult {
    let text = &boot.output;
    let mut check = Vec::new();
    let mut fields = String::new();
    let mut cgroup = String::new();
    let mut in_check = false;
    let mut check_rc = None;
    let mut facts = None;
    let mut test_rcs = Vec::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        if line == "== check" {
            in_check = true;
            continue;
        }
        if let Some(rc) = line.strip_prefix("== check-rc ") {
            in_check = false;
            check_rc = rc.trim().parse::<i32>().ok();
            continue;
        }
        if let Some(rest) = line.strip_prefix("== facts ") {
            facts = Some(rest.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("== test-rc ") {
            test_rcs.push(rest.rsplit(' ').next().and_then(|v| v.parse::<i32>().ok()).unwrap_or(-1));
            continue;
        }
        if in_check {
            let mut words = line.split_whitespace();
            if let (Some(name), Some(status)) = (words.next(), words.next())
                && name.contains(':')
                && (status == "ok" || status == "FAIL")
            {
                check.push((name.to_owned(), status == "ok"));
            }
            if let Some(rest) = line.split("fields: ").nth(1) {
                fields = rest.trim().to_owned();
            }
            if line.starts_with("cgroup ") {
                cgroup = line.split_whitespace().nth(2).unwrap_or_default().trim_end_matches(',').to_owned();
            }
            continue;
        }
        lines.push(line);
    }
    let lines: Vec<String> = lines.into_iter().map(without_colours).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let outcomes = test_outcomes(&lines);
    let ok_tests: BTreeSet<&str> =
        outcomes.iter().filter(|(_, o)| *o == Outcome::Passed).map(|(name, _)| name.as_str()).collect();
    let skipped: Vec<(String, String)> = outcomes
        .iter()
        .filter_map(|(name, outcome)| match outcome {
            Outcome::Ignored(reason) => Some((name.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    // The harness' own count of failures, whatever the test output around
    // the outcome lines looked like.
    let failed = lines.iter().filter_map(|line| summary_count(line, "failed")).sum::<usize>();
    let exercised =
        METHOD_TESTS.iter().filter(|(test, _)| ok_tests.contains(*test)).map(|(_, method)| *method).collect();
    // No facts line: the guest did not say, so everything the matrix knows is required.
    let required = facts.as_deref().map_or_else(|| METHOD_TESTS.iter().map(|(_, m)| *m).collect(), required);
    let unexercised: Vec<&str> = required.difference(&exercised).copied().collect();
    let passed = boot.exit_code == Some(0)
        && check_rc == Some(0)
        && failed == 0
        && test_rcs.iter().all(|&rc| rc == 0)
        && unexercised.is_empty();
    let failure_excerpt = if passed {
        String::new()
    } else {
        let unexercised = if unexercised.is_empty() {
            String::new()
        } else {
            format!(
                "attach methods this kernel's facts ({}) require but no passing test exercised: {}\n",
                facts.as_deref().unwrap_or("none reported"),
                unexercised.join(" ")
            )
        };
        let output: Vec<String> = text.lines().map(without_colours).collect();
        let output: Vec<&str> = output.iter().map(String::as_str).collect();
        format!("{unexercised}{}", failure_excerpt(&output, &boot.console_tail))
    };
    KernelResult {
        label,
        release: release.to_owned(),
        passed,
        check,
        mark_victim_fields: fields,
        cgroup,
        tests_passed: ok_tests.len(),
        tests_failed: failed,
        skipped,
        exercised,
        required,
        elapsed: boot.elapsed,
        failure_excerpt,
    }
}

/// What a failed run printed, for the matrix to show: the output's last 80
/// lines, the console's tail, then what the harness said of each failed test
/// (its `failures:` block, which the lines after it may have pushed out of
/// the tail), last, where a reader of a long log looks first.
pub fn failure_excerpt(lines: &[&str], console_tail: &str) -> String {
    let tail = &lines[lines.len().saturating_sub(80)..];
    let mut excerpt = format!("{}\n--- console ---\n{console_tail}", tail.join("\n"));
    if let Some(failures) = failure_messages(lines) {
        excerpt.push_str(&format!("\n--- the failed tests' messages ---\n{failures}"));
    }
    excerpt
}

/// The harness' `failures:` blocks (one per test binary that failed): each
/// failed test's `---- name ----` and its message, without the list of
/// their names that follows.
fn failure_messages(lines: &[&str]) -> Option<String> {
    let mut blocks = Vec::new();
    let mut rest = lines;
    while let Some(at) = rest.iter().position(|line| line.trim_end() == "failures:") {
        rest = &rest[at + 1..];
        let end = rest.iter().position(|line| line.trim_end() == "failures:").unwrap_or(rest.len());
        let block = rest[..end].join("\n");
        if block.trim_start().starts_with("---- ") {
            blocks.push(block.trim().to_owned());
        }
        // The names' list that follows: skip its heading.
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    (!blocks.is_empty()).then(|| blocks.join("\n\n"))
}

/// `line` without ANSI colour sequences (`ESC [ ... m`).
pub fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// How one test ended, as the harness printed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// Skipped by the testkit's harness, with its reason.
    Ignored(String),
}

/// Each test's outcome. With `--test-threads=1` the harness prints
/// `test <name> ... ` before running a test and the outcome after it, so
/// what the test printed meanwhile (its output is not captured) may come
/// between: the outcome then starts a later line.
pub fn test_outcomes(lines: &[&str]) -> Vec<(String, Outcome)> {
    let mut outcomes = Vec::new();
    let mut pending: Option<String> = None;
    for line in lines {
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, after)) = rest.split_once(" ... ")
            && !name.trim().contains(' ')
        {
            let name = name.trim().to_owned();
            match outcome(after) {
                Some(found) => outcomes.push((name, found)),
                None => pending = Some(name),
            }
            continue;
        }
        if let Some(found) = outcome(line)
            && let Some(name) = pending.take()
        {
            outcomes.push((name, found));
        }
    }
    outcomes
}

/// `ok`, `FAILED`, `ignored` or `ignored (<reason>)`, trimmed.
fn outcome(text: &str) -> Option<Outcome> {
    match text.trim() {
        "ok" => Some(Outcome::Passed),
        "FAILED" => Some(Outcome::Failed),
        "ignored" => Some(Outcome::Ignored(String::new())),
        other => other
            .strip_prefix("ignored (")
            .and_then(|reason| reason.strip_suffix(')'))
            .map(|reason| Outcome::Ignored(reason.to_owned())),
    }
}

/// `N` of `N <what>` in a `test result: ...` line.
pub fn summary_count(line: &str, what: &str) -> Option<usize> {
    let rest = line.strip_prefix("test result: ")?;
    rest.split(';').find_map(|part| {
        part.trim().trim_start_matches("ok. ").trim_start_matches("FAILED. ").strip_suffix(what)?.trim().parse().ok()
    })
}

impl KernelResult {
    fn attaches(&self, short: &str) -> Option<bool> {
        self.check.iter().find(|(name, _)| name.starts_with(short)).map(|(_, ok)| *ok)
    }
}

impl crate::vm::Verdict for KernelResult {
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
        format!(
            "{:<11} {:<30} {}  {} passed, {} failed, {} skipped; attach methods verified: {} (required here: {})  ({:.0} s)",
            self.label,
            self.release,
            if self.passed { "PASS" } else { "FAIL" },
            self.tests_passed,
            self.tests_failed,
            self.skipped.len(),
            self.exercised.iter().copied().collect::<Vec<_>>().join(" "),
            self.required.iter().copied().collect::<Vec<_>>().join(" "),
            self.elapsed.as_secs_f64()
        )
    }
}

/// docs/kernels.md, generated from one matrix run.
pub fn markdown(results: &[KernelResult]) -> String {
    let yes_no = |v: Option<bool>| match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    };
    let mut out = String::from(
        "# Kernels oomtrace is tested on\n\n\
         Generated by `cargo xtask vm-test` (do not edit by hand): each Debian cloud kernel is booted \
         under qemu (single-threaded TCG, busybox initramfs, an ext4 scratch disk on an emulated NVMe \
         drive, cgroup v2) and runs the whole integration suite as root; the attach columns are what \
         `oomtrace check` reported inside the guest. A kernel passes only if every attach method its own \
         facts require (BTF: tp_btf; BTF and ftrace on `oom_kill_process`, x86_64: fentry; the kprobe \
         PMU: kprobe; tracefs' `oom/mark_victim`: the tracepoint; raw_tp always) was forced and verified \
         by a passing test.\n\n",
    );
    out.push_str(&format!("Run: {}\n\n", humantime::format_rfc3339_seconds(std::time::SystemTime::now())));
    out.push_str("| series | kernel | cgroup | fentry | kprobe | tp_btf | raw_tp | mark_victim fields | required by the kernel's facts | verified by forced-attach tests | result |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({} passed, {} skipped) |\n",
            r.label,
            r.release,
            if r.cgroup.is_empty() { "?" } else { &r.cgroup },
            yes_no(r.attaches("fentry:")),
            yes_no(r.attaches("kprobe:")),
            yes_no(r.attaches("tp_btf:")),
            yes_no(r.attaches("raw_tp:")),
            r.mark_victim_fields,
            r.required.iter().copied().collect::<Vec<_>>().join(", "),
            r.exercised.iter().copied().collect::<Vec<_>>().join(", "),
            if r.passed { "pass" } else { "FAIL" },
            r.tests_passed,
            r.skipped.len()
        ));
    }
    let pid_only = results.iter().filter(|r| r.mark_victim_fields.trim() == "pid").count();
    if pid_only == 0 {
        out.push_str(
            "\nNone of these kernels has the pid-only `oom/mark_victim` format of older point releases: \
             the 6.9 fields were backported to every kernel the Debian archives reachable here still \
             carry (the oldest bookworm 6.1 ABI included). The pid-only path (fields read from the \
             victim's `task_struct` and `mm` through BTF instead) is what tp_btf and raw_tp use on every \
             kernel above, and the format parser is unit-tested on the pid-only format.\n",
        );
    }
    out.push_str(
        "\nThe host (6.18, cgroup v1) runs the suite natively: `scripts/test.sh`. The AKS-shaped node (systemd, \
         containerd, the DaemonSet's image) runs on 6.1 and 6.12: [node.md](node.md).\n",
    );
    out.push_str(&skipped_table(results));
    out
}

/// The skipped tests, each reason once: one row per reason and set of
/// kernels, with the tests it skipped there.
fn skipped_table(results: &[KernelResult]) -> String {
    // test -> reason -> kernels, in the order first seen.
    let mut by_test: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for r in results {
        for (test, reason) in &r.skipped {
            match by_test.iter_mut().find(|(t, why, _)| t == test && why == reason) {
                Some((_, _, kernels)) => kernels.push(r.label),
                None => by_test.push((test, reason, vec![r.label])),
            }
        }
    }
    if by_test.is_empty() {
        return "\nNo test was skipped.\n".to_owned();
    }
    let mut rows: Vec<(&str, Vec<&str>, Vec<&str>)> = Vec::new();
    for (test, reason, kernels) in by_test {
        match rows.iter_mut().find(|(why, on, _)| *why == reason && *on == kernels) {
            Some((_, _, tests)) => tests.push(test),
            None => rows.push((reason, kernels, vec![test])),
        }
    }
    let mut out = String::from(
        "\n## Skipped tests\n\nWhat the harness skipped (reported as ignored, with its reason: a component the \
         guest does not run), each reason once:\n\n| reason | kernels | tests |\n|---|---|---|\n",
    );
    for (reason, kernels, tests) in rows {
        let kernels = if kernels.len() == results.len() { "all".to_owned() } else { kernels.join(", ") };
        let tests = tests.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
        out.push_str(&format!("| {} | {kernels} | {tests} |\n", reason.replace('|', "\\|")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_read_around_the_tests_own_output() {
        let lines = [
            "running 4 tests",
            "test memcg_kill_with_the_fentry_context          ... ok",
            "test group_kill_marks_every_member ... warning: could not remove /sys/fs/cgroup/x",
            "ok",
            "test global_oom_names_the_victim_and_no_memcg ... ignored (exhausts the machine's memory (really))",
            "test a_full_ring_buffer_loses_records_visibly    ... FAILED",
            "test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 9.1s",
        ];
        let outcomes = test_outcomes(&lines);
        assert_eq!(outcomes.len(), 4, "{outcomes:?}");
        assert_eq!(outcomes[0], ("memcg_kill_with_the_fentry_context".to_owned(), Outcome::Passed));
        assert_eq!(outcomes[1], ("group_kill_marks_every_member".to_owned(), Outcome::Passed));
        let reason = "exhausts the machine's memory (really)".to_owned();
        assert_eq!(outcomes[2], ("global_oom_names_the_victim_and_no_memcg".to_owned(), Outcome::Ignored(reason)));
        assert_eq!(outcomes[3].1, Outcome::Failed);
        assert_eq!(summary_count(lines[6], "failed"), Some(1));
        assert_eq!(summary_count(lines[6], "passed"), Some(2));
        assert_eq!(summary_count(lines[1], "failed"), None);
        assert_eq!(without_colours("test x ... \u{1b}[32mok\u{1b}[0m"), "test x ... ok");
    }

    #[test]
    fn a_failed_tests_message_ends_the_excerpt_even_when_the_tail_has_moved_past_it() {
        let mut lines = vec!["running 2 tests", "test a ... ok", "test b ... FAILED", "", "failures:", ""];
        lines.extend(["---- b ----", "not warned; the kill: pid 7", "", "", "failures:", "    b", ""]);
        lines.push("test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s");
        lines.extend(std::iter::repeat_n("containerd: shim disconnected", 100));
        lines.extend(["failures:", "", "---- c ----", "boom", "", "failures:", "    c"]);
        let messages = failure_messages(&lines);
        assert_eq!(messages.as_deref(), Some("---- b ----\nnot warned; the kill: pid 7\n\n---- c ----\nboom"));
        let excerpt = failure_excerpt(&lines, "[ 1.0] reboot: Power down");
        assert!(excerpt.ends_with("---- c ----\nboom"), "{excerpt}");
        assert!(excerpt.contains("--- console ---\n[ 1.0] reboot: Power down\n--- the failed tests' messages ---"));
        assert_eq!(failure_messages(&["test result: ok. 2 passed"]), None);
    }

    #[test]
    fn the_kernels_facts_say_which_methods_must_attach() {
        let all = "btf=1 kprobe_pmu=1 mark_victim_tracepoint=1 ftrace_oom_kill_process=1 arch=x86_64";
        assert_eq!(required(all), BTreeSet::from(["fentry", "kprobe", "raw_tp", "tp_btf", "tracepoint"]));
        let no_btf = "btf=0 kprobe_pmu=1 mark_victim_tracepoint=1 ftrace_oom_kill_process=1 arch=x86_64";
        assert_eq!(required(no_btf), BTreeSet::from(["kprobe", "raw_tp", "tracepoint"]));
        let arm = "btf=1 kprobe_pmu=0 mark_victim_tracepoint=1 ftrace_oom_kill_process=1 arch=aarch64";
        assert_eq!(required(arm), BTreeSet::from(["raw_tp", "tp_btf", "tracepoint"]));
    }

    fn result(label: &'static str, skipped: &[(&str, &str)]) -> KernelResult {
        KernelResult {
            label,
            release: String::new(),
            passed: true,
            check: Vec::new(),
            mark_victim_fields: String::new(),
            cgroup: String::new(),
            tests_passed: 0,
            tests_failed: 0,
            skipped: skipped.iter().map(|(t, r)| (t.to_string(), r.to_string())).collect(),
            exercised: BTreeSet::new(),
            required: BTreeSet::new(),
            elapsed: Duration::ZERO,
            failure_excerpt: String::new(),
        }
    }

    #[test]
    fn each_skip_reason_is_stated_once() {
        let results = [
            result("5.10", &[("a", "no containerd"), ("b", "no containerd"), ("c", "no kubectl")]),
            result("6.1", &[("a", "no containerd"), ("b", "no containerd"), ("d", "needs v1 | v2")]),
        ];
        let table = skipped_table(&results);
        assert_eq!(table.matches("no containerd").count(), 1, "{table}");
        assert!(table.contains("| no containerd | all | `a`, `b` |"), "{table}");
        assert!(table.contains("| no kubectl | 5.10 | `c` |"), "{table}");
        assert!(table.contains("| needs v1 \\| v2 | 6.1 | `d` |"), "{table}");
        assert_eq!(skipped_table(&[result("5.10", &[])]), "\nNo test was skipped.\n");
    }
}
