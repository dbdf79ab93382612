//! How lines become reports: interleaving, cut and rate-limited reports, odd comms, group kills,
//! and robustness against lines cut anywhere.

mod common;

use common::{fixture, log_line, msg, parse, reports, victim_pids};
use oomtrace_klog::report::NoKill;
use oomtrace_klog::{Caller, LogLine, Parsed, ReportParser};

/// A whole 6.x memcg report (this host's kernel), as bare messages.
const REPORT_6X: &[&str] = &[
    "dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
    "CPU: 1 UID: 0 PID: 12589 Comm: dd Not tainted 6.18.44-fc-v657 #1 PREEMPT(none) ",
    "Call Trace:",
    " <TASK>",
    " dump_stack_lvl+0x57/0x80",
    " </TASK>",
    "memory: usage 81920kB, limit 81920kB, failcnt 0",
    "memory+swap: usage 81920kB, limit 81920kB, failcnt 0",
    "kmem: usage 228kB, limit 9007199254740988kB, failcnt 0",
    "Memory cgroup stats for /oomtrace-test-series-12557/c1:",
    "cache 0",
    "rss 83652608",
    "Tasks state (memory values in pages):",
    "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name",
    "[  12589]     0 12589    66280    20840    20416      424         0   212992        0             0 dd",
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/oomtrace-test-series-12557/c1,task_memcg=/oomtrace-test-series-12557/c1,task=dd,pid=12589,uid=0",
    "Memory cgroup out of memory: Killed process 12589 (dd) total-vm:265120kB, anon-rss:81664kB, file-rss:1696kB, shmem-rss:0kB, UID:0 pgtables:208kB oom_score_adj:0",
];

fn lines(messages: &[&str]) -> Vec<LogLine> {
    messages.iter().map(|message| msg(message)).collect()
}

fn with_caller(message: &str, pid: u32) -> LogLine {
    LogLine { caller: Some(Caller::Task(pid)), ..msg(message) }
}

#[test]
fn a_report_is_yielded_at_its_kill_line() {
    let mut parser = ReportParser::new();
    let mut out = Vec::new();
    let all = lines(REPORT_6X);
    let (kill, before) = all.split_last().expect("lines");
    for line in before {
        parser.push(line, &mut out);
        assert!(out.is_empty(), "nothing before the kill line: {}", line.message);
    }
    parser.push(kill, &mut out);
    assert_eq!(out.len(), 1, "the report, at once");
    parser.finish(&mut out);
    assert_eq!(out.len(), 1, "and nothing more at the end");
    let report = &reports(&out)[0];
    assert_eq!((report.memcg_stat.as_ref().and_then(|s| s.get("rss")), report.tasks.len()), (Some(83652608), 1));
}

#[test]
fn unrelated_lines_in_between_change_nothing() {
    let clean = parse(&lines(REPORT_6X)).0;
    let noise = [
        "eth0: renamed from veth4b89c12",
        "audit: type=1400 audit(1700000000.000:1): apparmor=\"DENIED\"",
        " ? __schedule+0x1/0x2",
        "docker0: port 2(veth4cb51e1) entered blocking state",
    ];
    let mut noisy = Vec::new();
    for (index, message) in REPORT_6X.iter().enumerate() {
        noisy.push(msg(noise[index % noise.len()]));
        noisy.push(msg(message));
    }
    noisy.push(msg(noise[0]));
    let (parsed, parser) = parse(&noisy);
    assert_eq!(parsed, clean);
    assert_eq!(parser.stats().unparsed, 0);
}

/// With CONFIG_PRINTK_CALLER, another task's `dump_stack` (a CPU line, a `name value` line, a task
/// row) printed in the middle of a report does not end up in it.
#[test]
fn another_tasks_lines_are_kept_out_of_the_report() {
    let mut stream = Vec::new();
    for message in REPORT_6X {
        stream.push(with_caller(message, 12589));
        if message.starts_with("CPU:") || message.starts_with("cache ") || message.starts_with("[  12589]") {
            stream.push(with_caller("CPU: 0 UID: 0 PID: 77 Comm: kworker/0:1 Not tainted 6.18.44-fc-v657 #1", 77));
            stream.push(with_caller("pending 12", 77));
            stream.push(with_caller(
                "[   77]     0    77      100      10      10      0      0     4096      0      0 kworker",
                77,
            ));
        }
    }
    let (parsed, _) = parse(&stream);
    let report = reports(&parsed)[0];
    assert_eq!(report.cpu.as_ref().map(|cpu| cpu.pid), Some(12589));
    assert_eq!(report.memcg_stat.as_ref().map(|stat| stat.values.len()), Some(2));
    assert_eq!(report.tasks.len(), 1);
}

/// A kill line from another task than the report's header: not that report's kill (it is another
/// OOM's, whose header was rate-limited away). Two reports; the first still waits for its own.
#[test]
fn a_kill_line_from_another_task_is_another_report() {
    let mut stream: Vec<LogLine> = REPORT_6X[..REPORT_6X.len() - 1].iter().map(|m| with_caller(m, 12589)).collect();
    stream.push(with_caller(
        "Memory cgroup out of memory: Killed process 999 (other) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB",
        999,
    ));
    let (parsed, parser) = parse(&stream);
    assert_eq!(victim_pids(&parsed), [999, 12589], "the second from its summary line, at the end of input");
    assert!(reports(&parsed)[0].header.is_none() && reports(&parsed)[1].killed.is_none());
    assert_eq!(parser.stats().reports_without_kill, 1);
}

/// With CONFIG_PRINTK_CALLER, two reports printed at the same time, line by line interleaved, come
/// apart whole.
#[test]
fn concurrent_reports_come_apart_by_caller() {
    let other: Vec<String> = REPORT_6X.iter().map(|line| line.replace("12589", "4242").replace("/c1", "/c2")).collect();
    let mut stream = Vec::new();
    for (mine, theirs) in REPORT_6X.iter().zip(&other) {
        stream.push(with_caller(mine, 12589));
        stream.push(with_caller(theirs, 4242));
    }
    let (parsed, parser) = parse(&stream);
    assert_eq!(victim_pids(&parsed), [12589, 4242]);
    for report in reports(&parsed) {
        assert_eq!((report.memcg_counters.len(), report.tasks.len()), (3, 1));
        assert_eq!(report.memcg_stat.as_ref().map(|stat| stat.values.len()), Some(2));
        assert_eq!(report.cpu.as_ref().map(|cpu| cpu.pid), report.victim_pid());
        assert_eq!(report.tasks[0].pid, report.victim_pid().unwrap_or_default());
    }
    assert_eq!(reports(&parsed)[1].oom_memcg(), Some("/oomtrace-test-series-12557/c2"));
    assert_eq!((parser.stats().reports_without_kill, parser.stats().unparsed), (0, 0));
}

#[test]
fn several_reports_in_a_row_give_several() {
    let mut stream = lines(REPORT_6X);
    stream.extend(lines(REPORT_6X));
    stream.extend(lines(REPORT_6X));
    let (parsed, parser) = parse(&stream);
    assert_eq!(reports(&parsed).len(), 3);
    assert_eq!(parser.stats().reports, 3);
    assert!(reports(&parsed).iter().all(|report| report.tasks.len() == 1 && report.memcg_counters.len() == 3));
}

/// A storm: the kernel rate-limits the report (10 per 5 s) but not the kill line.
#[test]
fn rate_limited_reports_are_kill_lines_only() {
    let mut stream = lines(REPORT_6X);
    stream.push(msg("oom_kill_process: 3 callbacks suppressed"));
    for pid in [20, 21, 22] {
        stream.push(msg(&format!(
            "Memory cgroup out of memory: Killed process {pid} (dd) total-vm:265120kB, anon-rss:65280kB, file-rss:1544kB, shmem-rss:0kB, UID:0 pgtables:176kB oom_score_adj:0"
        )));
    }
    let (parsed, parser) = parse(&stream);
    assert_eq!(victim_pids(&parsed), [12589, 20, 21, 22]);
    let stats = parser.stats();
    assert_eq!((stats.reports_without_header, stats.headers_suppressed), (3, 3));
    assert!(reports(&parsed)[1..].iter().all(|report| report.header.is_none() && report.tasks.is_empty()));
}

/// The beginning of a report lost (ring buffer wrapped): the tail is still one report.
#[test]
fn a_report_without_its_beginning() {
    let (parsed, parser) = parse(&lines(&REPORT_6X[10..]));
    let report = reports(&parsed)[0];
    assert!(report.header.is_none() && report.memcg_stat.is_none());
    assert_eq!((report.tasks.len(), report.victim_pid()), (1, Some(12589)));
    assert_eq!(parser.stats().reports, 1);
}

/// A report cut short (the log ends, or the next header comes) before its kill line.
#[test]
fn a_report_without_its_end() {
    let mut stream = lines(&REPORT_6X[..8]);
    stream.extend(lines(REPORT_6X));
    stream.extend(lines(&REPORT_6X[..3]));
    let (parsed, parser) = parse(&stream);
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 3);
    assert!(reports[0].killed.is_none() && reports[0].memcg_counters.len() == 2);
    assert!(reports[1].killed.is_some());
    assert!(reports[2].killed.is_none() && reports[2].cpu.is_some());
    assert_eq!(parser.stats().reports_without_kill, 2);
}

#[test]
fn comms_with_spaces_and_parentheses() {
    let comm = "a (b) c";
    let stream = lines(&[
        &format!("{comm} invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"),
        &format!("CPU: 0 PID: 5 Comm: {comm} Not tainted 6.1.0-47-cloud-amd64 #1 Debian 6.1.123-1"),
        "Tasks state (memory values in pages):",
        "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
        &format!("[      5]     0     5     1000      900    45056        0             0 {comm}"),
        &format!(
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task={comm},pid=5,uid=0"
        ),
        &format!(
            "Memory cgroup out of memory: Killed process 5 ({comm}) total-vm:4000kB, anon-rss:3600kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:44kB oom_score_adj:0"
        ),
        &format!("oom_reaper: reaped process 5 ({comm}), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"),
    ]);
    let (parsed, parser) = parse(&stream);
    assert_eq!(parser.stats().unparsed, 0);
    let report = reports(&parsed)[0];
    assert_eq!(report.header.as_ref().map(|h| h.trigger_comm.as_str()), Some(comm));
    assert_eq!(report.cpu.as_ref().map(|c| c.comm.as_str()), Some(comm));
    assert_eq!(report.tasks[0].name, comm);
    assert_eq!(report.constraint.as_ref().map(|c| c.task.as_str()), Some(comm));
    assert_eq!(report.killed.as_ref().map(|k| k.comm.as_str()), Some(comm));
    let Some(Parsed::Reaped(reaped)) = parsed.last() else { panic!("reaper line") };
    assert_eq!((reaped.pid, reaped.comm.as_str()), (5, comm));
}

/// The reaper may report an earlier victim after the next report began: it is its own item and
/// does not disturb the report in progress.
#[test]
fn a_reaper_line_inside_the_next_report() {
    let mut stream = lines(REPORT_6X);
    let mut second = lines(REPORT_6X);
    second.insert(3, msg("oom_reaper: reaped process 12589 (dd), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"));
    stream.extend(second);
    let (parsed, parser) = parse(&stream);
    assert_eq!(reports(&parsed).len(), 2);
    assert!(matches!(parsed[1], Parsed::Reaped(ref reaped) if reaped.pid == 12589));
    assert_eq!((parser.stats().reaped, parser.stats().reports_without_kill), (1, 0));
}

/// `memory.oom.group` (4.19+): one report, then the group line, then every other member's kill line.
#[test]
fn group_kill_members() {
    let mut stream = lines(REPORT_6X);
    stream.push(msg("Tasks in /oomtrace-test-series-12557/c1 are going to be killed due to memory.oom.group set"));
    for pid in [12590, 12591] {
        stream.push(msg(&format!(
            "Memory cgroup out of memory: Killed process {pid} (sh) total-vm:1000kB, anon-rss:10kB, file-rss:100kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0"
        )));
    }
    stream.extend(lines(REPORT_6X));
    let (parsed, parser) = parse(&stream);
    let reports = reports(&parsed);
    assert_eq!(victim_pids(&parsed), [12589, 12590, 12591, 12589]);
    assert_eq!(reports[0].oom_group, None, "the group line comes after the first victim's kill line");
    assert_eq!(reports[1].oom_group.as_deref(), Some("/oomtrace-test-series-12557/c1"));
    assert_eq!(reports[2].oom_group.as_deref(), Some("/oomtrace-test-series-12557/c1"));
    assert_eq!(reports[3].oom_group, None, "a new header ends the group");
    assert_eq!(parser.stats().unparsed, 0);
}

/// 4.19 – 6.3 printed memory.stat as one record with embedded newlines.
#[test]
fn memory_stat_as_one_record() {
    let stream = lines(&[
        REPORT_6X[0],
        "memory: usage 102400kB, limit 102400kB, failcnt 6402",
        "Memory cgroup stats for /kubepods/pod1/ctr:",
        "anon 98742272\nfile 2469888\nkernel_stack 131072\nshmem 2297856\n",
        REPORT_6X[16],
    ]);
    let (parsed, _) = parse(&stream);
    let stat = reports(&parsed)[0].memcg_stat.clone().expect("stat");
    assert_eq!((stat.get("anon"), stat.get("shmem"), stat.values.len()), (Some(98742272), Some(2297856), 4));
}

#[test]
fn lines_that_look_like_the_oom_killer_but_do_not_parse_are_counted() {
    let stream = lines(&[
        " invoked oom-killer: gfp_mask=0xcc0",
        "Killed process one (x)",
        "oom-kill:constraint=CONSTRAINT_MEMCG",
        "oom_reaper: reaped process 1 (x), now",
        "Memory cgroup stats for /a",
        "Memory cgroup out of memory",
    ]);
    let (parsed, parser) = parse(&stream);
    assert!(parsed.is_empty());
    assert_eq!(parser.stats().unparsed, 6);
    assert_eq!(parser.stats().unparsed_examples.len(), 6);
}

/// Every fixture line cut at every character, the two halves fed as two lines in the middle of
/// the real stream: no panic, and the parser's counts stay consistent with what it yields.
#[test]
fn every_line_split_anywhere() {
    for name in [
        "cadvisor-3.13-ubuntu.txt",
        "cadvisor-4.8-gentoo-docker.txt",
        "lore-5.3-printk-caller.txt",
        "aks-5.15-syslog.txt",
        "centos7-3.10-dmesg-grep-kill.txt",
        "published-kill-lines.txt",
        "ubuntu-6.8-aws-global-dmesg-T.txt",
        "host-6.18-trigger-not-victim.txt",
        "host-6.18-cgroup-v1-dmesg.txt",
    ] {
        let stream = fixture(name);
        let mut before = ReportParser::new();
        let mut sink = Vec::new();
        for (index, line) in stream.iter().enumerate() {
            let after = stream.get(index + 1..(index + 4).min(stream.len())).unwrap_or_default();
            for (cut, _) in line.message.char_indices().skip(1) {
                let mut parser = before.clone();
                let mut out = Vec::new();
                let (head, tail) = line.message.split_at(cut);
                parser.push(&LogLine { message: head.to_owned(), ..line.clone() }, &mut out);
                parser.push(&LogLine { message: tail.to_owned(), ..line.clone() }, &mut out);
                for next in after {
                    parser.push(next, &mut out);
                }
                parser.finish(&mut out);
                let yielded = out.iter().filter(|item| matches!(item, Parsed::Report(_))).count() as u64;
                assert_eq!(parser.stats().reports - before.stats().reports, yielded, "{name}:{index}:{cut}");
            }
            before.push(line, &mut sink);
        }
    }
}

/// Messages with a syslog or dmesg prefix the source did not strip are not mistaken for report lines
/// that parse wrongly: they are counted as not understood, never a wrong kill.
#[test]
fn unstripped_prefixes_do_not_make_wrong_kills() {
    let stream = vec![msg(
        "<4>[ 1.0] Memory cgroup out of memory: Killed process 5 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB",
    )];
    let (parsed, parser) = parse(&stream);
    assert!(parsed.is_empty());
    assert_eq!(parser.stats().unparsed, 1);
    assert_eq!(log_line("[  1.5] x").since_boot.map(|t| t.as_millis()), Some(1500), "the test loader itself");
}

/// Reports that end without a kill: the victim was already exiting (5.x+), no killable process
/// (the first line below from https://github.com/systemd/systemd/issues/40208, 6.17), or
/// panic_on_oom.
#[test]
fn reports_that_kill_nothing() {
    let mut stream = lines(&REPORT_6X[..15]);
    stream.push(msg("Memory cgroup out of memory: OOM victim 12589 (dd) is already exiting. Skip killing the task"));
    stream.extend(lines(&[
        "systemd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=100",
        "CPU: 10 UID: 1000 PID: 20957 Comm: systemd Not tainted 6.17.3-arch2-1-lily #1 PREEMPT(full)  5546952e0558be8ad192ae6bf444bb1ecb351d96",
        "Out of memory and no killable processes...",
        "Kernel panic - not syncing: Out of memory and no killable processes...",
    ]));
    stream.push(msg("Memory cgroup out of memory: OOM victim 7 (x) is already exiting. Skip killing the task"));
    let (parsed, parser) = parse(&stream);
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 3, "the panic line after a finished report adds nothing");
    assert_eq!(reports[0].no_kill, Some(NoKill::VictimExiting { pid: 12589, comm: "dd".into(), memcg_prefix: true }));
    assert_eq!(reports[0].tasks.len(), 1);
    assert_eq!(reports[1].no_kill, Some(NoKill::NoKillableProcesses));
    assert_eq!(reports[1].cpu.as_ref().and_then(|cpu| cpu.uid), Some(1000));
    assert!(reports[2].header.is_none() && reports[2].no_kill.is_some(), "a rate-limited report's last line");
    assert!(reports.iter().all(|report| report.killed.is_none()));
    assert_eq!((parser.stats().reports_without_kill, parser.stats().unparsed), (3, 0));
}

/// 6.19+ print the memcg protection inside the report; a page allocation failure prints it too.
#[test]
fn memory_protection_line() {
    let mut stream = lines(&["Memory cgroup min protection 0kB -- low protection 0kB"]);
    let mut report = lines(REPORT_6X);
    report.insert(9, msg("Memory cgroup min protection 2048kB -- low protection 1024kB"));
    stream.extend(report);
    let (parsed, parser) = parse(&stream);
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].protection.map(|p| (p.min_kb, p.low_kb)), Some((2048, 1024)));
    assert_eq!(parser.stats().fragments, 0);
}

/// Real lines with unusual comms: a QEMU vCPU thread (https://github.com/shakenfist/shakenfist/issues/177,
/// 4.15, with the 4.x `cpuset=` line) and runc's child (https://github.com/nestybox/sysbox/issues/30, 5.3).
#[test]
fn real_unusual_comms() {
    let (parsed, _) = parse(&[
        log_line(
            "Jul 16 11:53:24 sau-3f41e-or kernel: [1310061.327439] CPU 0/KVM invoked oom-killer: gfp_mask=0x15000c0(GFP_KERNEL_ACCOUNT), nodemask=(null), order=0, oom_score_adj=0",
        ),
        log_line("Jul 16 11:53:25 sau-3f41e-or kernel: [1310061.327442] CPU 0/KVM cpuset=vcpu0 mems_allowed=0-1"),
        log_line(
            "Jul 16 11:53:25 sau-3f41e-or kernel: [1310061.327447] CPU: 44 PID: 24430 Comm: CPU 0/KVM Not tainted 4.15.0-108-generic #109-Ubuntu",
        ),
        log_line(
            "Aug 13 07:00:11 gcp-ubuntu-bionic kernel: runc:[1:CHILD] invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=-999",
        ),
        log_line(
            "Aug 13 07:00:11 gcp-ubuntu-bionic kernel: CPU: 0 PID: 7148 Comm: runc:[1:CHILD] Not tainted 5.3.0-1032-gcp #34~18.04.1-Ubuntu",
        ),
    ]);
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 2);
    let kvm = reports[0];
    assert_eq!(
        kvm.header.as_ref().map(|h| (h.trigger_comm.as_str(), h.nodemask.as_deref())),
        Some(("CPU 0/KVM", Some("(null)")))
    );
    assert_eq!(kvm.cpu.as_ref().map(|c| (c.cpu, c.pid, c.comm.as_str())), Some((Some(44), 24430, "CPU 0/KVM")));
    assert_eq!(reports[1].cpu.as_ref().map(|c| c.comm.as_str()), Some("runc:[1:CHILD]"));
    assert_eq!(reports[1].header.as_ref().and_then(|h| h.oom_score_adj), Some(-999));
}

/// RHEL 7 picked a child of the selected task (https://github.com/kubernetes/kubernetes/issues/56891,
/// 3.10.0-327.4.5.el7, `dmesg -T`): one report, two pids.
#[test]
fn rhel7_selected_and_killed_differ() {
    let (parsed, _) = parse(&[
        log_line(
            "[Thu Dec  7 00:05:15 2017] [ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name",
        ),
        log_line(
            "[Thu Dec  7 00:05:15 2017] [28438]     0 28438  5063909   119961    1661   136409          -998 java",
        ),
        log_line(
            "[Thu Dec  7 00:05:15 2017] Memory cgroup out of memory: Kill process 24572 (java) score 0 or sacrifice child",
        ),
        log_line(
            "[Thu Dec  7 00:05:15 2017] Killed process 28438 (java) total-vm:20255636kB, anon-rss:466160kB, file-rss:13684kB",
        ),
    ]);
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].selected.as_ref().map(|s| s.pid), reports[0].victim_pid()), (Some(24572), Some(28438)));
    assert_eq!(reports[0].tasks.first().map(|t| (t.pid, t.swapents)), Some((28438, Some(136409))));
}

/// Reports in progress are bounded: a ninth printing task's header gives up the oldest as it is.
#[test]
fn reports_in_progress_are_bounded() {
    let stream: Vec<LogLine> = (1..=9).map(|pid| with_caller(REPORT_6X[0], pid)).collect();
    let mut parser = ReportParser::new();
    let mut out = Vec::new();
    for line in &stream {
        parser.push(line, &mut out);
    }
    assert_eq!(out.len(), 1, "the oldest, given up");
    assert_eq!(reports(&out)[0].first.caller, Some(Caller::Task(1)));
    parser.finish(&mut out);
    assert_eq!(out.len(), 9);
}

/// One report cannot grow without bound: rows past the limit are counted, not kept.
#[test]
fn a_report_is_bounded() {
    let mut stream = lines(&REPORT_6X[..14]);
    for pid in 0..100_005u32 {
        stream.push(msg(&format!(
            "[{pid:7}]     0 {pid:5}    66280    20840    20416      424         0   212992        0             0 dd"
        )));
    }
    stream.push(msg(REPORT_6X[16]));
    let (parsed, parser) = parse(&stream);
    assert_eq!(reports(&parsed)[0].tasks.len(), 100_000);
    assert_eq!(parser.stats().dropped_lines, 5);
}
