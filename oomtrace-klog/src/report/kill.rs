//! The lines that say who was killed (mm/oom_kill.c `oom_kill_process`, `__oom_kill_process`,
//! `oom_reap_task_mm`) and the lines around them that carry no report data.

use serde::Serialize;

use super::text;

/// The prefix 4.x+ kernels put before `Kill process` (and 5.x+ before `Killed process`): the
/// `message` argument of `oom_kill_process`.
const MEMCG_PREFIX: &str = "Memory cgroup out of memory";

/// `"%s: Kill process %d (%s) score %u or sacrifice child\n"` (2.6.32 – 5.1; removed with the
/// "prefer children over parent" heuristic): the task the OOM killer chose. The task killed next
/// may be one of its children, so the `Killed process` pid can differ.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Selected {
    /// The chosen task's pid.
    pub pid: u32,
    /// The chosen task's comm.
    pub comm: String,
    /// Its badness score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<i64>,
    /// The line's prefix is `Memory cgroup out of memory` (a memcg OOM), not `Out of memory`.
    pub memcg_prefix: bool,
}

/// Whether the line is a `Kill process … or sacrifice child` selection line (parsable or not).
pub(crate) fn is_selected(line: &str) -> bool {
    line.contains("Kill process ") && line.contains(" score ")
}

/// Parses a selection line; `None` when it is not one.
pub(crate) fn parse_selected(line: &str) -> Option<Selected> {
    let (prefix, rest) = line.split_once("Kill process ")?;
    let (pid, rest) = text::leading_u32(rest)?;
    let (comm, rest) = text::parenthesized_comm(rest.strip_prefix(' ')?, &[") score "])?;
    let score = rest.strip_prefix(" score ").and_then(|rest| text::signed(rest.split(' ').next().unwrap_or("")));
    Some(Selected { pid, comm: comm.to_owned(), score, memcg_prefix: prefix.contains(MEMCG_PREFIX) })
}

/// The kill line: the victim and its memory when it was killed. Every wording:
/// - 2.6.32 (RHEL 6): `"Killed process %d, UID %d, (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB\n"`
/// - 3.10 – 4.5: `"Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB\n"`
/// - RHEL 7 (3.10 backports): `"Killed process %d (%s), UID %u, total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB\n"`
/// - 4.6 – 5.0: `"Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB\n"`
/// - 5.1+: `"%s: Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB oom_score_adj:%hd\n"`
///   (`UID`, `pgtables`, `oom_score_adj` added over 5.x; prefix `Out of memory` or `Memory cgroup out of memory`)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Killed {
    /// The victim's pid.
    pub pid: u32,
    /// The victim's comm (up to 15 bytes; may contain spaces and parentheses).
    pub comm: String,
    /// Virtual size, kB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_vm_kb: Option<u64>,
    /// Anonymous resident memory, kB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anon_rss_kb: Option<u64>,
    /// File-backed resident memory, kB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_rss_kb: Option<u64>,
    /// Shared-memory resident memory, kB (4.6+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shmem_rss_kb: Option<u64>,
    /// The victim's uid (5.x, RHEL 6/7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Page tables, kB (5.x+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgtables_kb: Option<u64>,
    /// The victim's oom_score_adj (5.x+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The line starts with `Memory cgroup out of memory:` (a memcg OOM). `false` for
    /// `Out of memory:` (global) and for kernels that printed no prefix (before 5.1).
    pub memcg_prefix: bool,
    /// The prefix as printed (`Memory cgroup out of memory`, `Out of memory`, …), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

const KILLED: &str = "Killed process ";

/// The `message` argument of `oom_kill_process` (mm/oom_kill.c `out_of_memory`,
/// mm/memcontrol.c `mem_cgroup_out_of_memory`).
const OOM_MESSAGES: [&str; 3] = ["Out of memory", MEMCG_PREFIX, "Out of memory (oom_kill_allocating_task)"];

/// Whether the line is a kill line (parsable or not).
pub(crate) fn is_killed(line: &str) -> bool {
    line.contains(KILLED)
}

/// Parses a kill line; `None` when it is not one (or lacks the pid or comm).
pub(crate) fn parse_killed(line: &str) -> Option<Killed> {
    let (prefix, rest) = line.split_once(KILLED)?;
    // No prefix before 5.1; since then `oom_kill_process`'s message: `Out of memory`, `Memory
    // cgroup out of memory`, or `Out of memory (oom_kill_allocating_task)`. Any other text before
    // it (`systemd[1]: Killed process …`, node-problem-detector quoting a kill line) is not the
    // kernel's OOM killer.
    let prefix = prefix.trim_end().strip_suffix(':').map(str::trim).filter(|prefix| !prefix.is_empty());
    let is_oom_prefix = prefix.is_some_and(|prefix| OOM_MESSAGES.contains(&prefix));
    if !is_oom_prefix && !line.starts_with(KILLED) {
        return None;
    }
    let (pid, rest) = text::leading_u32(rest)?;
    let mut killed = Killed {
        pid,
        memcg_prefix: prefix.is_some_and(|prefix| prefix.contains(MEMCG_PREFIX)),
        prefix: prefix.map(str::to_owned),
        ..Killed::default()
    };
    // RHEL 6 puts `, UID n,` between the pid and the comm.
    let rest = match rest.strip_prefix(", UID ") {
        Some(after) => {
            let (uid, after) = text::leading_u32(after)?;
            killed.uid = Some(uid);
            after.strip_prefix(',')?
        }
        None => rest,
    };
    let rest = rest.strip_prefix(' ')?;
    let (comm, rest) = match text::parenthesized_comm(rest, &[") total-vm:", "),"]) {
        Some(split) => split,
        // 2.6.x ended the line with the comm (`Killed process 1234 (java).`), and a line cut
        // short by the log may too: a kill without sizes.
        None => {
            let inner = rest.strip_prefix('(')?;
            (inner.strip_suffix(").").or_else(|| inner.strip_suffix(')'))?, "")
        }
    };
    killed.comm = comm.to_owned();
    for (key, value) in text::fields(rest) {
        match key {
            "total-vm" => killed.total_vm_kb = text::kilobytes(value),
            "anon-rss" => killed.anon_rss_kb = text::kilobytes(value),
            "file-rss" => killed.file_rss_kb = text::kilobytes(value),
            "shmem-rss" => killed.shmem_rss_kb = text::kilobytes(value),
            "UID" => killed.uid = text::unsigned_u32(value),
            "pgtables" => killed.pgtables_kb = text::kilobytes(value),
            "oom_score_adj" => killed.oom_score_adj = text::signed_i32(value),
            _ => {}
        }
    }
    Some(killed)
}

/// A victim whose memory the OOM reaper freed (4.6+, `oom_reap_task_mm`):
/// `"oom_reaper: reaped process %d (%s), now anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB\n"`.
/// It belongs to its own pid, which may be an earlier report's victim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReapedTask {
    /// The reaped victim's pid.
    pub pid: u32,
    /// Its comm.
    pub comm: String,
    /// Anonymous memory left after reaping, kB.
    pub anon_rss_kb: u64,
    /// File-backed memory left, kB.
    pub file_rss_kb: u64,
    /// Shared memory left, kB.
    pub shmem_rss_kb: u64,
    /// Where the line was.
    pub line: super::LineMeta,
}

const REAPED: &str = "oom_reaper: reaped process ";

/// Whether the line is an `oom_reaper:` line (parsable or not).
pub(crate) fn is_reaper(line: &str) -> bool {
    line.starts_with("oom_reaper: ")
}

/// Parses a reaper line (without its position); `None` when it is not one.
pub(crate) fn parse_reaped(line: &str) -> Option<ReapedTask> {
    let rest = line.strip_prefix(REAPED)?;
    let (pid, rest) = text::leading_u32(rest)?;
    let (comm, rest) = text::parenthesized_comm(rest.strip_prefix(' ')?, &["), now "])?;
    let mut reaped = ReapedTask { pid, comm: comm.to_owned(), ..ReapedTask::default() };
    let mut seen = 0;
    for (key, value) in text::fields(rest) {
        let slot = match key {
            "anon-rss" => &mut reaped.anon_rss_kb,
            "file-rss" => &mut reaped.file_rss_kb,
            "shmem-rss" => &mut reaped.shmem_rss_kb,
            _ => continue,
        };
        *slot = text::kilobytes(value)?;
        seen += 1;
    }
    (seen > 0).then_some(reaped)
}

/// Why a report ended without a kill line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoKill {
    /// `"%s: OOM victim %d (%s) is already exiting. Skip killing the task\n"` (5.x+,
    /// `__oom_kill_process`): the chosen victim was already exiting; nothing was killed.
    VictimExiting {
        /// The victim's pid.
        pid: u32,
        /// Its comm.
        comm: String,
        /// The line opens with `Memory cgroup out of memory` (a memcg OOM), not `Out of memory`.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        memcg_prefix: bool,
    },
    /// `Out of memory and no killable processes...` (`out_of_memory`; a global OOM then panics,
    /// a memcg OOM fails the charge).
    NoKillableProcesses,
    /// `Out of memory: system-wide panic_on_oom is enabled` / `compulsory` (`check_panic_on_oom`):
    /// the kernel panicked instead of killing.
    PanicOnOom,
}

/// Parses the line that ends a report without a kill; `None` when it is not one.
pub(crate) fn parse_no_kill(line: &str) -> Option<NoKill> {
    if line.contains("Out of memory and no killable processes") {
        return Some(NoKill::NoKillableProcesses);
    }
    if line.contains("panic_on_oom is enabled") {
        return Some(NoKill::PanicOnOom);
    }
    let (prefix, rest) = line.split_once(": OOM victim ")?;
    if !OOM_MESSAGES.contains(&prefix.trim()) {
        return None;
    }
    let (pid, rest) = text::leading_u32(rest)?;
    let (comm, _) = text::parenthesized_comm(rest.strip_prefix(' ')?, &[") is already exiting"])?;
    Some(NoKill::VictimExiting { pid, comm: comm.to_owned(), memcg_prefix: prefix.trim() == MEMCG_PREFIX })
}

/// OOM-killer lines that carry nothing a report keeps, recognised so that they are not counted
/// as not understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Aside {
    /// `oom_reaper: unable to reap pid:%d (%s)` (4.6+).
    ReaperFailed,
    /// `oom_kill_process: N callbacks suppressed`: N reports were rate-limited away (10 per 5 s).
    HeadersSuppressed(u64),
    /// `Kill process %d (%s) sharing same memory` (3.x – 4.x), `oom killer %d (%s) has mm pinned
    /// by %d (%s)` (4.x): other users of the victim's mm.
    SharedMemory,
}

/// Recognises an [`Aside`] line.
pub(crate) fn parse_aside(line: &str) -> Option<Aside> {
    if line.starts_with("oom_reaper: unable to reap") {
        return Some(Aside::ReaperFailed);
    }
    if let Some(head) = line.strip_suffix(" callbacks suppressed") {
        let (function, count) = head.rsplit_once(": ")?;
        return function.contains("oom").then(|| text::unsigned(count).map(Aside::HeadersSuppressed)).flatten();
    }
    if line.ends_with(" sharing same memory") || line.contains(") has mm pinned by ") {
        return Some(Aside::SharedMemory);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_lines_of_every_wording() {
        let got = parse_killed(
            "Memory cgroup out of memory: Killed process 12589 (dd) total-vm:265120kB, anon-rss:81664kB, file-rss:1696kB, shmem-rss:0kB, UID:0 pgtables:208kB oom_score_adj:0",
        );
        assert_eq!(
            got,
            Some(Killed {
                pid: 12589,
                comm: "dd".into(),
                total_vm_kb: Some(265120),
                anon_rss_kb: Some(81664),
                file_rss_kb: Some(1696),
                shmem_rss_kb: Some(0),
                uid: Some(0),
                pgtables_kb: Some(208),
                oom_score_adj: Some(0),
                memcg_prefix: true,
                prefix: Some("Memory cgroup out of memory".into()),
            })
        );
        let got = parse_killed(
            "Out of memory: Killed process 15925 ((resolved)) total-vm:168424kB, anon-rss:4064kB, file-rss:3584kB, shmem-rss:0kB",
        )
        .expect("global");
        assert_eq!((got.pid, got.comm.as_str(), got.memcg_prefix, got.uid), (15925, "(resolved)", false, None));
        let got = parse_killed(
            "Killed process 2592, UID 498, (mysqld) total-vm:7823732kB, anon-rss:2539268kB, file-rss:768kB",
        )
        .expect("RHEL 6");
        assert_eq!((got.pid, got.uid, got.comm.as_str(), got.anon_rss_kb), (2592, Some(498), "mysqld", Some(2539268)));
        let got = parse_killed(
            "Killed process 14466 (java), UID 1000, total-vm:9823128kB, anon-rss:6543216kB, file-rss:0kB, shmem-rss:0kB",
        )
        .expect("RHEL 7");
        assert_eq!((got.pid, got.uid, got.comm.as_str(), got.total_vm_kb), (14466, Some(1000), "java", Some(9823128)));
        let got = parse_killed("Killed process 27438 (R) total-vm:38349780kB, anon-rss:1041924kB, file-rss:4kB")
            .expect("3.10");
        assert_eq!((got.comm.as_str(), got.shmem_rss_kb, got.prefix), ("R", None, None));
        let got = parse_killed(
            "Memory cgroup out of memory: Killed process 5 (a (b) c) total-vm:1kB, anon-rss:2kB, file-rss:3kB",
        )
        .expect("parens");
        assert_eq!(got.comm, "a (b) c");
        let got =
            parse_killed("Out of memory: Killed process 7 (x), y) total-vm:1kB, anon-rss:2kB").expect("comma paren");
        assert_eq!(got.comm, "x), y");
    }

    #[test]
    fn not_kill_lines() {
        assert_eq!(parse_killed("Killed process abc (x) total-vm:1kB"), None);
        assert_eq!(parse_killed("Killed process 1"), None);
        assert_eq!(parse_killed("Killed process 1 x total-vm:1kB"), None);
        assert_eq!(parse_killed("Killed process 1 (x total-vm:1kB"), None);
        let bare = parse_killed("Out of memory: Killed process 8765 (httpd).").expect("2.6 form");
        assert_eq!((bare.pid, bare.comm.as_str(), bare.total_vm_kb), (8765, "httpd", None));
        assert_eq!(parse_killed("Killed process 1 (a b)").map(|k| k.comm), Some("a b".to_owned()));
        assert_eq!(parse_killed("systemd[1]: Killed process 1 (x) total-vm:1kB"), None);
        assert_eq!(parse_killed("sshd: Killed process group"), None);
    }

    #[test]
    fn selection_lines() {
        assert_eq!(
            parse_selected("Memory cgroup out of memory: Kill process 123 (java) score 999 or sacrifice child"),
            Some(Selected { pid: 123, comm: "java".into(), score: Some(999), memcg_prefix: true })
        );
        let got = parse_selected(
            "Out of memory (oom_kill_allocating_task): Kill process 9 (a) score b) score 0 or sacrifice child",
        )
        .expect("allocating task, odd comm");
        assert_eq!((got.comm.as_str(), got.score, got.memcg_prefix), ("a) score b", Some(0), false));
        assert_eq!(parse_selected("Out of memory: Kill process x (a) score 1 or sacrifice child"), None);
    }

    #[test]
    fn reaper_lines() {
        let got = parse_reaped(
            "oom_reaper: reaped process 15925 ((resolved)), now anon-rss:0kB, file-rss:0kB, shmem-rss:12kB",
        )
        .expect("reaped");
        assert_eq!((got.pid, got.comm.as_str(), got.shmem_rss_kb), (15925, "(resolved)", 12));
        assert_eq!(parse_reaped("oom_reaper: reaped process 1 (x), now anon-rss:xkB"), None);
        assert_eq!(parse_reaped("oom_reaper: reaped process 1 (x), now"), None);
        assert_eq!(parse_aside("oom_reaper: unable to reap pid:1 (x)"), Some(Aside::ReaperFailed));
    }

    #[test]
    fn reports_that_kill_nothing() {
        assert_eq!(
            parse_no_kill(
                "Memory cgroup out of memory: OOM victim 42 (a (b)) is already exiting. Skip killing the task"
            ),
            Some(NoKill::VictimExiting { pid: 42, comm: "a (b)".into(), memcg_prefix: true })
        );
        assert_eq!(parse_no_kill("Out of memory and no killable processes..."), Some(NoKill::NoKillableProcesses));
        assert_eq!(
            parse_no_kill("Kernel panic - not syncing: Out of memory and no killable processes..."),
            Some(NoKill::NoKillableProcesses)
        );
        assert_eq!(
            parse_no_kill("Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled"),
            Some(NoKill::PanicOnOom)
        );
        assert_eq!(parse_no_kill("foo: OOM victim 42 (x) is already exiting. Skip killing the task"), None);
        assert_eq!(parse_no_kill("Out of memory: OOM victim x (y) is already exiting"), None);
    }

    #[test]
    fn asides() {
        assert_eq!(parse_aside("oom_kill_process: 19 callbacks suppressed"), Some(Aside::HeadersSuppressed(19)));
        assert_eq!(parse_aside("net_ratelimit: 19 callbacks suppressed"), None);
        assert_eq!(parse_aside("Kill process 124 (java) sharing same memory"), Some(Aside::SharedMemory));
        assert_eq!(parse_aside("oom killer 1 (a) has mm pinned by 2 (b)"), Some(Aside::SharedMemory));
        assert_eq!(parse_aside("Out of memory and no killable processes..."), None);
    }
}
