//! Golden tests over whole real logs (oomtrace-klog/fixtures; each file notes its source).

mod common;

use common::{fixture, only_report, parse, reports, victim_pids};
use oomtrace_klog::Caller;
use oomtrace_klog::Parsed;
use oomtrace_klog::report::CounterKind;

#[test]
fn host_dmesg_6_18_cgroup_v1() {
    let lines = fixture("host-6.18-cgroup-v1-dmesg.txt");
    let (parsed, parser) = parse(&lines);
    let stats = parser.stats();
    let reports = reports(&parsed);
    let kill_lines = lines.iter().filter(|line| line.message.contains("Killed process")).count();
    assert_eq!(reports.len(), kill_lines, "one report per kill line");
    assert_eq!(reports.len(), 49);
    assert_eq!(reports.iter().filter(|report| report.header.is_some()).count(), 25);
    assert_eq!(stats.reports_without_header, 24);
    assert_eq!(stats.reports_without_kill, 0);
    assert_eq!(stats.unparsed, 0, "{:?}", stats.unparsed_examples);
    assert_eq!(stats.headers_suppressed, 19);
    assert_eq!(stats.fragments, 0);

    // The ring buffer starts mid-report: that report has its tail but no header.
    let first = reports[0];
    assert!(first.header.is_none());
    assert_eq!(first.victim_pid(), Some(12588));
    assert_eq!(first.oom_memcg(), Some("/oomtrace-test-series-12557/c0"));

    // The first whole report (dmesg line 79 on).
    let report = reports[1];
    let header = report.header.as_ref().expect("header");
    assert_eq!((header.trigger_comm.as_str(), header.gfp_mask, header.order), ("dd", Some(0xcc0), Some(0)));
    let cpu = report.cpu.as_ref().expect("cpu line");
    assert_eq!(
        (cpu.cpu, cpu.uid, cpu.pid, cpu.kernel_release.as_deref()),
        (Some(1), Some(0), 12589, Some("6.18.44-fc-v657"))
    );
    assert_eq!(report.memcg_counters.len(), 3);
    assert_eq!(report.memcg_counters[0].usage_kb, 81920);
    let stat = report.memcg_stat.as_ref().expect("memory.stat");
    assert_eq!(stat.memcg, "/oomtrace-test-series-12557/c1");
    assert_eq!(stat.get("rss"), Some(83652608));
    assert_eq!(stat.get("total_inactive_anon"), Some(83611648));
    assert_eq!(stat.get("hierarchical_memory_limit"), Some(83886080));
    assert_eq!(report.tasks.len(), 1);
    assert_eq!(
        (report.tasks[0].pid, report.tasks[0].rss_pages, report.tasks[0].name.as_str()),
        (12589, Some(20840), "dd")
    );
    let constraint = report.constraint.as_ref().expect("summary");
    assert_eq!(constraint.task_memcg.as_deref(), Some("/oomtrace-test-series-12557/c1"));
    let killed = report.killed.as_ref().expect("kill line");
    assert_eq!(
        (killed.pid, killed.comm.as_str(), killed.anon_rss_kb, killed.memcg_prefix),
        (12589, "dd", Some(81664), true)
    );
    assert_eq!(report.first.since_boot.map(|t| t.as_micros()), Some(20275607664));
    assert_eq!(report.last.since_boot.map(|t| t.as_micros()), Some(20275608014));

    // Every report with a header has its summary, and they agree with the kill line.
    for report in reports.iter().filter(|report| report.header.is_some()) {
        let constraint = report.constraint.as_ref().expect("summary");
        let killed = report.killed.as_ref().expect("kill");
        assert_eq!((constraint.pid, constraint.task.as_str()), (killed.pid, killed.comm.as_str()));
        assert_eq!(report.trigger_pid(), Some(killed.pid), "a memcg OOM kills its trigger here");
        assert!(!report.tasks.is_empty());
        assert!(report.memcg_stat.as_ref().is_some_and(|stat| stat.get("rss").is_some()));
    }
    // The kubepods reports (CRI containers).
    let pod_kills =
        reports.iter().filter(|report| report.task_memcg().is_some_and(|path| path.starts_with("/kubepods/"))).count();
    assert_eq!(pod_kills, 7);
}

/// The VM kernels' consoles carry only the kill lines (console loglevel): one report each.
#[test]
fn vm_consoles_kill_lines_only() {
    for (name, kills, global_kills, first_pid) in [
        ("vm-5.10.0-console.txt", 54, 1, 119),
        ("vm-6.1.0-console.txt", 54, 1, 124),
        ("vm-7.3.4-console.txt", 42, 1, 138),
    ] {
        let (parsed, parser) = parse(&fixture(name));
        let reports = reports(&parsed);
        assert_eq!(reports.len(), kills, "{name}");
        assert_eq!(parser.stats().reports_without_header, kills as u64, "{name}");
        assert_eq!(parser.stats().unparsed, 0, "{name}");
        let killed = reports[0].killed.as_ref().expect("kill");
        assert_eq!(killed.pid, first_pid, "{name}");
        assert_eq!(
            (killed.comm.as_str(), killed.shmem_rss_kb, killed.oom_score_adj),
            ("dd", Some(1580), Some(0)),
            "{name}"
        );
        let global = reports.iter().filter(|report| report.is_memcg_oom() == Some(false)).count();
        assert_eq!(global, global_kills, "{name}: `Out of memory:` kill lines (the VM test's machine-wide OOM)");
        assert_eq!(reports.len() - global, kills - global_kills, "{name}: the rest are memcg kills");
    }
}

/// 3.13: `Task in`, inline KB stats, the 3.10 task table, `Kill process … or sacrifice child`, and a
/// global OOM with Mem-Info and a 28-row table.
#[test]
fn cadvisor_3_13_memcg_and_global() {
    let (parsed, parser) = parse(&fixture("cadvisor-3.13-ubuntu.txt"));
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 2);
    assert_eq!(parser.stats().unparsed, 0, "{:?}", parser.stats().unparsed_examples);

    let memcg = reports[0];
    assert_eq!(
        memcg.header.as_ref().map(|h| (h.trigger_comm.as_str(), h.gfp_mask, h.gfp_flags.as_deref())),
        Some(("memorymonster", Some(0xd0), None))
    );
    assert_eq!(memcg.cpu.as_ref().and_then(|cpu| cpu.kernel_release.as_deref()), Some("3.13.0-43-generic"));
    assert_eq!((memcg.task_memcg(), memcg.oom_memcg()), (Some("/mem2"), Some("/mem2")));
    assert_eq!(memcg.memcg_counters.len(), 3);
    let stat = memcg.memcg_stat.as_ref().expect("inline stats");
    assert_eq!(
        (stat.memcg.as_str(), stat.get("rss"), stat.get("writeback")),
        ("/mem2", Some(980 * 1024), Some(20 * 1024))
    );
    assert_eq!(memcg.tasks.len(), 1);
    assert_eq!(
        (memcg.tasks[0].uid, memcg.tasks[0].nr_ptes, memcg.tasks[0].swapents),
        (Some(275858), Some(16267), Some(8324326))
    );
    let selected = memcg.selected.as_ref().expect("selection line");
    assert_eq!((selected.pid, selected.score, selected.memcg_prefix), (13536, Some(996), true));
    let killed = memcg.killed.as_ref().expect("kill line");
    assert_eq!(
        (killed.pid, killed.anon_rss_kb, killed.shmem_rss_kb, killed.prefix.as_deref()),
        (13536, Some(920), None, None)
    );
    assert_eq!(memcg.is_memcg_oom(), Some(true));

    let global = reports[1];
    assert_eq!(global.tasks.len(), 28);
    assert_eq!(global.tasks[1].oom_score_adj, Some(-1000));
    assert_eq!(global.tasks[6].name, "upstart-socket-", "a comm cut at 15 bytes");
    assert_eq!(global.victim_pid(), Some(1532));
    assert_eq!((global.oom_memcg(), global.is_memcg_oom()), (None, Some(false)));
    assert!(global.memcg_stat.is_none());
}

/// 4.8 with Docker: unrelated network lines around two reports, `nr_pmds` in the table, the reaper.
#[test]
fn cadvisor_4_8_docker_with_reaper() {
    let (parsed, parser) = parse(&fixture("cadvisor-4.8-gentoo-docker.txt"));
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 2);
    assert_eq!(parser.stats().reaped, 2);
    assert_eq!(parser.stats().unparsed, 0);
    for (report, pid) in reports.iter().zip([1381, 1667]) {
        assert_eq!(report.victim_pid(), Some(pid));
        assert_eq!(report.trigger_pid(), Some(pid));
        assert!(report.task_memcg().is_some_and(|path| path.starts_with("/docker/")));
        assert_eq!(report.tasks.len(), 1);
        assert_eq!(report.header.as_ref().and_then(|h| h.gfp_flags.as_deref()), Some("GFP_KERNEL"));
        assert_eq!(report.killed.as_ref().and_then(|k| k.shmem_rss_kb), Some(0));
    }
    assert_eq!(reports[1].memcg_stat.as_ref().and_then(|s| s.get("swap")), Some(307288 * 1024));
    let order: Vec<&str> = parsed
        .iter()
        .map(|item| match item {
            Parsed::Report(_) => "report",
            Parsed::Reaped(_) => "reaped",
        })
        .collect();
    assert_eq!(order, ["report", "reaped", "report", "reaped"]);
    let Parsed::Reaped(reaped) = &parsed[1] else { panic!("reaper") };
    assert_eq!((reaped.pid, reaped.comm.as_str(), reaped.anon_rss_kb), (1381, "gunpowder-memho", 0));
}

/// 5.3 with CONFIG_PRINTK_CALLER: memory.stat as one record, no cpuset, no task table.
#[test]
fn lore_5_3_printk_caller() {
    let lines = fixture("lore-5.3-printk-caller.txt");
    assert_eq!(lines[0].caller, Some(Caller::Task(6736)), "the fixture loader read the caller");
    let (parsed, parser) = parse(&lines);
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 1);
    assert_eq!(parser.stats().reaped, 1);
    let report = reports[0];
    let cpu = report.cpu.as_ref().expect("cpu");
    assert_eq!((cpu.pid, cpu.kernel_release.as_deref()), (6736, Some("5.3.0-rc3+")));
    let stat = report.memcg_stat.as_ref().expect("stat");
    assert_eq!((stat.get("anon"), stat.get("slab"), stat.values.len()), (Some(534147072), Some(933888), 25));
    let constraint = report.constraint.as_ref().expect("summary");
    assert_eq!((constraint.cpuset.as_deref(), constraint.oom_memcg.as_deref()), (None, Some("/leaker")));
    assert!(report.tasks.is_empty());
    assert_eq!(report.first.caller, Some(Caller::Task(6736)));
}

/// AKS (5.15, cgroup v2, systemd driver) from syslog, with a node-problem-detector line quoting the
/// kill line (not a kernel line: not a second kill) and the file ending inside the next report.
#[test]
fn aks_5_15_syslog() {
    let (parsed, parser) = parse(&fixture("aks-5.15-syslog.txt"));
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 2, "the kill, then the cut-off next header");
    let stats = parser.stats();
    assert_eq!((stats.reports_without_kill, stats.unparsed), (1, 1));
    assert!(stats.unparsed_examples[0].contains("node-problem-detector"));
    let report = reports[0];
    assert_eq!(
        report.oom_memcg(),
        Some(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5931aa75_4603_4e65_b552_7c71cf55cfb5.slice"
        )
    );
    assert!(report.task_memcg().is_some_and(|path| {
        path.ends_with("/cri-containerd-25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca.scope")
    }));
    assert_eq!(
        report.memcg_counters.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [CounterKind::Memory, CounterKind::Swap]
    );
    let stat = report.memcg_stat.as_ref().expect("stat");
    assert_eq!(
        (stat.get("anon"), stat.get("file"), stat.get("shmem"), stat.get("sock")),
        (Some(98742272), Some(2469888), Some(2297856), Some(0))
    );
    assert_eq!(report.tasks.len(), 9);
    let largest = report.tasks.iter().max_by_key(|task| task.rss_pages).expect("tasks");
    assert_eq!((largest.pid, largest.rss_pages, largest.pgtables_bytes), (183960, Some(23376), Some(487424)));
    let killed = report.killed.as_ref().expect("kill");
    assert_eq!(
        (killed.pid, killed.shmem_rss_kb, killed.pgtables_kb, killed.oom_score_adj),
        (183960, Some(12), Some(476), Some(1000))
    );
    assert!(reports[1].killed.is_none() && reports[1].header.is_some());
}

/// Ubuntu 6.8 (`dmesg -T`): a global OOM with Mem-Info and no task table.
#[test]
fn ubuntu_6_8_global() {
    let report = &only_report("ubuntu-6.8-aws-global-dmesg-T.txt");
    assert_eq!(report.header.as_ref().and_then(|h| h.gfp_flags.as_deref()), Some("GFP_HIGHUSER_MOVABLE|__GFP_COMP"));
    let constraint = report.constraint.as_ref().expect("summary");
    assert!(constraint.global_oom);
    assert_eq!((constraint.constraint.as_str(), constraint.cpuset.as_deref()), ("CONSTRAINT_NONE", Some("user.slice")));
    assert_eq!(report.is_memcg_oom(), Some(false));
    assert_eq!(report.oom_memcg(), None);
    assert!(report.task_memcg().is_some_and(|path| path.starts_with("/system.slice/docker-")));
    let killed = report.killed.as_ref().expect("kill");
    assert_eq!((killed.comm.as_str(), killed.uid, killed.anon_rss_kb), ("redis-server", Some(999), Some(14230956)));
    assert_eq!((report.trigger_pid(), report.victim_pid()), (Some(4282), Some(60540)));
}

/// CentOS 7, `dmesg | grep -i kill`: four reports of header + selection + RHEL 7 kill line.
#[test]
fn centos7_grep_excerpt() {
    let (parsed, parser) = parse(&fixture("centos7-3.10-dmesg-grep-kill.txt"));
    let reports = reports(&parsed);
    assert_eq!(victim_pids(&parsed), [1705, 1727, 6691, 16512]);
    assert_eq!((parser.stats().unparsed, parser.stats().reports_without_header), (0, 0));
    for report in &reports {
        assert_eq!(report.header.as_ref().map(|h| h.gfp_mask), Some(Some(0x201da)));
        let (selected, killed) = (report.selected.as_ref().expect("sel"), report.killed.as_ref().expect("kill"));
        assert_eq!(selected.pid, killed.pid);
        assert_eq!((killed.uid, killed.comm.as_str(), killed.shmem_rss_kb), (Some(0), "freeswitch", Some(0)));
    }
    assert_eq!(reports[0].header.as_ref().map(|h| h.trigger_comm.as_str()), Some("in:imjournal"));
}

/// Kill lines from bug reports: RHEL 6 and 7 wordings, a selection whose kill hit another pid,
/// reaper lines, `((resolved))`, and a stats fragment with neither header nor kill.
#[test]
fn published_kill_lines() {
    let (parsed, parser) = parse(&fixture("published-kill-lines.txt"));
    assert_eq!(victim_pids(&parsed), [11726, 18177, 27438, 15784, 15925, 15783, 15934]);
    let reports = reports(&parsed);
    let doris = reports[1];
    assert_eq!(
        (doris.selected.as_ref().map(|s| s.pid), doris.killed.as_ref().map(|k| k.pid)),
        (Some(24984), Some(18177))
    );
    assert_eq!(reports[0].killed.as_ref().and_then(|k| k.uid), Some(498));
    assert_eq!(reports[4].victim_comm(), Some("(resolved)"));
    let stats = parser.stats();
    assert_eq!((stats.reaped, stats.fragments, stats.unparsed, stats.reports_without_header), (3, 1, 0, 7));
}

/// A report made on this host for the fixture: the task that allocates (the trigger) is not the one
/// killed (the largest in the memcg).
#[test]
fn host_trigger_is_not_the_victim() {
    let report = &only_report("host-6.18-trigger-not-victim.txt");
    assert_eq!((report.trigger_pid(), report.victim_pid()), (Some(18690), Some(18648)));
    assert_eq!(report.tasks.iter().map(|task| task.pid).collect::<Vec<_>>(), [18648, 18690]);
    let victim_row = report.tasks.iter().find(|task| Some(task.pid) == report.victim_pid()).expect("victim row");
    assert_eq!((victim_row.rss_pages, victim_row.rss_anon_pages), (Some(15682), Some(13984)));
    assert_eq!(report.memcg_stat.as_ref().and_then(|stat| stat.get("hierarchical_memory_limit")), Some(64 << 20));
    assert_eq!(report.memcg_counters[0].limit_kb, 65536);
}

/// 3.2, vm.oom_kill_allocating_task: the wording is on the selection line only (the kill line of
/// 3.x – 5.0 has no prefix), the trigger on the 2.6-style `Pid:` line, the victim a child.
#[test]
fn linux_mm_3_2_allocating_task() {
    let report = &only_report("linux-mm-3.2-allocating-task-syslog.txt");
    assert_eq!(report.is_memcg_oom(), Some(false), "Out of memory (oom_kill_allocating_task): global");
    assert_eq!((report.trigger_pid(), report.trigger_comm()), (Some(6344), Some("sh")));
    assert_eq!(report.header.as_ref().map(|h| (h.gfp_mask, h.order, h.oom_adj)), Some((Some(0xd0), Some(1), Some(0))));
    assert_eq!(report.selected.as_ref().map(|s| (s.pid, s.score)), Some((6344, Some(0))));
    let killed = report.killed.as_ref().expect("kill");
    assert_eq!((killed.pid, killed.comm.as_str(), killed.prefix.as_deref()), (6345, "sleep", None));
    assert_eq!((killed.total_vm_kb, killed.anon_rss_kb, killed.file_rss_kb), (Some(1736), Some(44), Some(200)));
}

/// Lines made from printk format strings (no real log at hand, see the file): the allocating-task
/// kill line of 5.x+, a reaper that could not reap, a global OOM whose victim was already exiting.
#[test]
fn printk_formats_5_x_to_7_x() {
    let (parsed, parser) = parse(&fixture("printk-formats-5.x-7.x.txt"));
    let reports = reports(&parsed);
    assert_eq!(reports.len(), 2);
    let kill = reports[0];
    assert_eq!(
        (kill.is_memcg_oom(), kill.trigger_comm(), kill.victim_pid()),
        (Some(false), Some("stress"), Some(4242))
    );
    let killed = kill.killed.as_ref().expect("kill");
    assert_eq!(killed.prefix.as_deref(), Some("Out of memory (oom_kill_allocating_task)"));
    assert_eq!((killed.uid, killed.pgtables_kb, killed.oom_score_adj), (Some(1000), Some(7780), Some(0)));
    let skipped = reports[1];
    assert_eq!((skipped.is_memcg_oom(), skipped.killed.is_none()), (Some(false), true));
    let stats = parser.stats();
    assert_eq!((stats.reap_failed, stats.unparsed, stats.reports_without_kill), (1, 0, 1));
}
