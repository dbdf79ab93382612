//! A report cut down the way people cut logs gives the same scope, trigger and victim as the whole
//! report: `grep -i oom` (keeps the header, the summary and the kill line of kernels that end it
//! with `oom_score_adj:`, 5.x after 5.3; drops the `CPU:` line, the call trace and most of the task table), and the
//! header with the kill line alone (and, before 5.1, the selection line before it: the kill line of
//! 3.x – 5.0 has no prefix, the selection line carries the wording).

mod common;

use common::{fixture, parse, reports};
use oomtrace_klog::LogLine;

/// What a cut must keep of each kill: scope (memcg or not), trigger comm, victim pid and comm.
#[derive(Debug, PartialEq, Eq)]
struct Kill {
    memcg: Option<bool>,
    trigger: Option<String>,
    victim: (u32, String),
}

fn kills(lines: &[LogLine]) -> Vec<Kill> {
    let (parsed, _) = parse(lines);
    reports(&parsed)
        .into_iter()
        .filter_map(|report| {
            let killed = report.killed.as_ref()?;
            Some(Kill {
                memcg: report.is_memcg_oom(),
                trigger: report.trigger_comm().map(str::to_owned),
                victim: (killed.pid, killed.comm.clone()),
            })
        })
        .collect()
}

fn grep_i_oom(line: &LogLine) -> bool {
    line.message.to_lowercase().contains("oom")
}

fn header_and_kill_lines(line: &LogLine) -> bool {
    let text = &line.message;
    text.contains(" invoked oom-killer:") || text.contains("Killed process ") || text.contains("Kill process ")
}

/// Fixtures with whole reports, from 3.2 to 6.18, memcg and global.
const WHOLE_REPORTS: [&str; 7] = [
    "host-6.18-cgroup-v1-dmesg.txt",
    "host-6.18-trigger-not-victim.txt",
    "ubuntu-6.8-aws-global-dmesg-T.txt",
    "aks-5.15-syslog.txt",
    "lore-5.3-printk-caller.txt",
    "cadvisor-4.8-gentoo-docker.txt",
    "linux-mm-3.2-allocating-task-syslog.txt",
];

#[test]
fn the_header_and_kill_line_alone_give_what_the_whole_report_gives() {
    for name in WHOLE_REPORTS {
        let lines = fixture(name);
        let whole = kills(&lines);
        assert!(!whole.is_empty(), "{name}");
        assert!(whole.iter().any(|kill| kill.trigger.is_some()), "{name}: a report with its header");
        let cut: Vec<LogLine> = lines.iter().filter(|line| header_and_kill_lines(line)).cloned().collect();
        assert_eq!(kills(&cut), whole, "{name}");
    }
}

/// `grep -i oom` keeps a kill line only where it ends with `oom_score_adj:` (5.x after 5.3; 5.3's has
/// no such field): the kills it keeps are the whole report's.
#[test]
fn grep_i_oom_keeps_what_the_whole_report_gives() {
    for name in WHOLE_REPORTS {
        let lines = fixture(name);
        let cut: Vec<LogLine> = lines.iter().filter(|line| grep_i_oom(line)).cloned().collect();
        let kept_victims: Vec<u32> = cut
            .iter()
            .filter(|line| line.message.contains("Killed process "))
            .filter_map(|line| line.message.split("Killed process ").nth(1)?.split(' ').next()?.parse().ok())
            .collect();
        let whole: Vec<Kill> = kills(&lines).into_iter().filter(|kill| kept_victims.contains(&kill.victim.0)).collect();
        assert_eq!(kills(&cut), whole, "{name}");
        let modern = ["6.18", "6.8", "5.15"].iter().any(|version| name.contains(&format!("-{version}-")));
        assert_eq!(whole.is_empty(), !modern, "{name}: only kill lines with oom_score_adj survive grep -i oom");
    }
}
