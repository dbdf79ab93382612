//! Golden tests over whole real logs (oomtrace-klog/fixtures; each file notes its source).

mod common;

use common::{fixture, parse, reports};

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
