//! The AKS guide's other answer, for a window without a kernel OOM kill: a
//! pod reported `Evicted` was removed by the kubelet under node memory
//! pressure (node-pressure eviction), which is not a kernel OOM kill. The
//! commands that list such pods, and the kubelet's eviction manager lines in
//! the journal where there is one.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::SystemTime,
};

use serde::Serialize;

use oomtrace_event::{Advice, AdviceAction};

/// What the report says when the window has no kernel OOM kill.
pub const NOTE: &str = "No kernel OOM kill in this window. A pod reported `Evicted` was removed by the kubelet \
                        under node memory pressure (node-pressure eviction): that is not a kernel OOM kill, \
                        and the kernel log does not show it.";
/// The kubelet's eviction manager prefixes its messages with this
/// ("Eviction manager: attempting to reclaim", "Eviction manager: pod is
/// evicted successfully"; before structured logging, lower case):
/// kubernetes `pkg/kubelet/eviction/eviction_manager.go`.
const EVICTION_MANAGER: &str = "eviction manager:";
/// What journalctl says (on stderr) where the journal holds no files.
const NO_JOURNAL_FILES: &str = "No journal files were found";
/// The newest eviction manager lines kept for the report.
const KEPT_LINES: usize = 20;

/// `no_kill` in docs/diagnose.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoKillNote {
    pub note: String,
    /// Where to look instead: the evicted pods and their events.
    pub commands: Vec<Advice>,
    pub kubelet_log: KubeletLog,
}

/// What `journalctl -u kubelet` says about evictions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KubeletLog {
    /// `found` (eviction manager lines), `none` (the kubelet's journal has
    /// none), `unavailable` (no journal to ask), `not_checked` (a saved log
    /// was diagnosed: this node's journal is not about it).
    pub status: &'static str,
    /// For a person: what was asked and what it said.
    pub detail: String,
    /// `namespace/name` of each pod the eviction manager evicted.
    pub evicted_pods: Vec<String>,
    /// The newest eviction manager lines (at most `KEPT_LINES`).
    pub lines: Vec<String>,
}

/// The note, with the kubelet's journal looked at when `check_journal`
/// (a log of this boot: the node is this machine).
pub fn note(since: Option<SystemTime>, check_journal: bool) -> NoKillNote {
    let kubelet_log = if check_journal {
        kubelet_journal(since)
    } else {
        KubeletLog {
            status: "not_checked",
            detail: "a saved log was read: this node's kubelet journal is not about it".to_owned(),
            evicted_pods: Vec::new(),
            lines: Vec::new(),
        }
    };
    NoKillNote { note: NOTE.to_owned(), commands: commands(), kubelet_log }
}

/// kubectl lists evicted pods as phase `Failed` with STATUS (the reason)
/// `Evicted`; the kubelet records an `Evicted` event on each. Both field
/// selectors are among those the API server supports for pods and events.
pub fn commands() -> Vec<Advice> {
    vec![
        Advice {
            action: AdviceAction::ListEvictedPods,
            text: "Pods the kubelet evicted are Failed with STATUS Evicted (the message names the resource)".to_owned(),
            command: Some("kubectl get pods -A --field-selector=status.phase=Failed".to_owned()),
        },
        Advice {
            action: AdviceAction::ListEvictionEvents,
            text: "The kubelet's Evicted events say which resource ran low and what each container used".to_owned(),
            command: Some("kubectl get events -A --field-selector=reason=Evicted".to_owned()),
        },
    ]
}

/// Runs `journalctl -u kubelet` over the window (this boot without one).
fn kubelet_journal(since: Option<SystemTime>) -> KubeletLog {
    let mut args =
        vec!["-u".to_owned(), "kubelet".to_owned(), "--no-pager".to_owned(), "-o".to_owned(), "short-iso".to_owned()];
    match since.and_then(|s| s.duration_since(SystemTime::UNIX_EPOCH).ok()) {
        Some(epoch) => args.extend(["--since".to_owned(), format!("@{}", epoch.as_secs())]),
        None => args.push("-b".to_owned()),
    }
    let asked = format!("journalctl {}", args.join(" "));
    let unavailable = |why: String| KubeletLog {
        status: "unavailable",
        detail: format!("{asked}: {why}"),
        evicted_pods: Vec::new(),
        lines: Vec::new(),
    };
    let mut child = match Command::new("journalctl")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return unavailable("journalctl is not installed (no systemd journal here)".to_owned());
        }
        Err(error) => return unavailable(error.to_string()),
    };
    let scan = child.stdout.take().map(|out| scan(BufReader::new(out))).unwrap_or_default();
    let stderr = child.stderr.take().map(|err| std::io::read_to_string(err).unwrap_or_default()).unwrap_or_default();
    let status = child.wait();
    let failed = !status.as_ref().is_ok_and(|s| s.success());
    // journalctl exits 0 with "No journal files were found." where journald
    // keeps nothing: there is no journal to ask, not an empty one.
    if scan.journal_lines == 0 && (failed || stderr.contains(NO_JOURNAL_FILES)) {
        let why = stderr.lines().next().map_or_else(|| format!("{status:?}"), str::to_owned);
        return unavailable(why);
    }
    if scan.lines.is_empty() {
        let detail = if scan.journal_lines == 0 || scan.no_entries {
            format!("{asked}: the journal has no kubelet entries")
        } else {
            let lines = scan.journal_lines;
            format!("{asked}: no eviction manager line among {lines} kubelet line{}", if lines == 1 { "" } else { "s" })
        };
        return KubeletLog { status: "none", detail, evicted_pods: Vec::new(), lines: Vec::new() };
    }
    KubeletLog {
        status: "found",
        detail: format!("{asked}: {} eviction manager lines, the newest below", scan.matched),
        evicted_pods: scan.evicted_pods,
        lines: scan.lines.into(),
    }
}

/// What the kubelet's journal held.
#[derive(Debug, Default)]
struct Scan {
    journal_lines: u64,
    /// journalctl's "-- No entries --".
    no_entries: bool,
    matched: u64,
    lines: VecDeque<String>,
    evicted_pods: Vec<String>,
}

fn scan(input: impl BufRead) -> Scan {
    let mut found = Scan::default();
    for line in input.lines() {
        let Ok(line) = line else { break };
        if line.starts_with("-- ") {
            found.no_entries |= line.contains("No entries");
            continue;
        }
        found.journal_lines += 1;
        if !line.to_ascii_lowercase().contains(EVICTION_MANAGER) {
            continue;
        }
        found.matched += 1;
        if let Some(pod) = evicted_pod(&line)
            && !found.evicted_pods.contains(&pod)
        {
            found.evicted_pods.push(pod);
        }
        found.lines.push_back(line);
        if found.lines.len() > KEPT_LINES {
            found.lines.pop_front();
        }
    }
    found
}

/// The pod of an "evicted successfully" line: `pod="ns/name"` (structured
/// logging), or `pod name_ns(uid) is evicted successfully` (klog before it:
/// `format.Pod`).
fn evicted_pod(line: &str) -> Option<String> {
    if !line.contains("evicted successfully") {
        return None;
    }
    if let Some(start) = line.find("pod=\"") {
        let rest = &line[start + 5..];
        return rest.split_once('"').map(|(pod, _)| pod.to_owned());
    }
    let lower = line.to_ascii_lowercase();
    let start = lower.find("eviction manager: pod ")? + "eviction manager: pod ".len();
    let name = line[start..].split_whitespace().next()?;
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as kubelet ≥ 1.2x (structured) and older kubelets (klog) write them.
    const JOURNAL: &str = "\
2026-11-29T10:00:00+0000 node kubelet[812]: I1129 10:00:00.1 812 kubelet.go:2400] \"SyncLoop ADD\" source=\"api\"
2026-11-29T10:00:01+0000 node kubelet[812]: I1129 10:00:01.1 812 eviction_manager.go:366] \"Eviction manager: attempting to reclaim\" resourceName=\"memory\"
2026-11-29T10:00:01+0000 node kubelet[812]: I1129 10:00:01.2 812 eviction_manager.go:377] \"Eviction manager: must evict pod(s) to reclaim\" resourceName=\"memory\"
2026-11-29T10:00:02+0000 node kubelet[812]: I1129 10:00:02.3 812 eviction_manager.go:616] \"Eviction manager: pod is evicted successfully\" pod=\"shop/api-7d9f8c6b5d-x2x4q\"
2026-11-29T10:00:03+0000 node kubelet[812]: I1129 10:00:03.0 812 eviction_manager.go:589] eviction manager: pod web-1_shop(3f1c) is evicted successfully
";

    #[test]
    fn eviction_manager_lines_and_evicted_pods_are_found() {
        let found = scan(JOURNAL.as_bytes());
        assert_eq!((found.journal_lines, found.matched, found.no_entries), (5, 4, false));
        assert_eq!(found.evicted_pods, ["shop/api-7d9f8c6b5d-x2x4q", "web-1_shop(3f1c)"]);
        assert!(found.lines[0].contains("attempting to reclaim"));
    }

    #[test]
    fn only_the_newest_lines_are_kept() {
        let many: String =
            (0..30).map(|i| format!("x kubelet: \"Eviction manager: attempting to reclaim\" n={i}\n")).collect();
        let found = scan(many.as_bytes());
        assert_eq!((found.matched, found.lines.len()), (30, KEPT_LINES));
        assert!(found.lines.back().is_some_and(|l| l.ends_with("n=29")));
    }

    #[test]
    fn an_empty_journal_says_no_entries() {
        let found = scan("-- No entries --\n".as_bytes());
        assert_eq!((found.journal_lines, found.no_entries), (0, true));
    }

    #[test]
    fn a_saved_log_does_not_ask_this_nodes_journal() {
        let note = note(None, false);
        assert_eq!(note.kubelet_log.status, "not_checked");
        assert!(note.note.contains("Evicted"));
        let commands: Vec<_> = note.commands.iter().filter_map(|c| c.command.as_deref()).collect();
        assert_eq!(
            commands,
            [
                "kubectl get pods -A --field-selector=status.phase=Failed",
                "kubectl get events -A --field-selector=reason=Evicted"
            ]
        );
    }
}
