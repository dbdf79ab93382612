//! The whole report rendered from fixed figures, compared with the markdown
//! the renderer produced before it was split into sections
//! (xtask/testdata/bench-report-*.md), and each section alone compared with
//! its part of those files. Set `OOMTRACE_BLESS=1` to rewrite them.

use std::{path::PathBuf, time::Duration};

use super::render;
use crate::bench::figures::{
    Alternating, ClockCheck, CpuUse, DaemonFigures, EnrichmentFigures, EventRecord, Found, IdleWindow, KernelCost,
    KillRun, KlogFigures, ObjectProgram, Peer, ProgramCost, Report, RingFigures, Section, SyslogFigures, SyslogShape,
    Timed, ToolFigures, Verifier,
};
use oomtrace_testkit::{
    observability::OtlpCounts,
    procfs::{Clock, Machine, Memory},
};

fn memory(rss_kb: u64, hwm_kb: u64) -> Memory {
    Memory { rss_kb, hwm_kb, anon_kb: rss_kb / 8, file_kb: rss_kb - rss_kb / 8 }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}

fn clean_run(hogs: usize, base_ns: i64) -> KillRun {
    KillRun {
        hogs,
        latencies_ns: (0..hogs as i64).map(|i| base_ns + i * 13_007).collect(),
        kernel_oom_kills: hogs as u64,
        ..KillRun::default()
    }
}

fn troubled_run() -> KillRun {
    KillRun {
        hogs: 12,
        not_killed: 1,
        events_for_survivors: 1,
        missing: vec![4242, 4243],
        duplicates: 2,
        latencies_ns: vec![-20_000, 250_000, 310_000, 2_900_000, 120_000, 80_000, 95_000, 1_000_000, 4_000_000],
        kernel_oom_kills: 12,
    }
}

fn tool(name: &'static str, version: &str, scale: u64, seq: KillRun, storm: KillRun) -> ToolFigures {
    ToolFigures {
        name,
        version: version.to_owned(),
        attach: vec![ms(63 * scale), ms(70 * scale), ms(61 * scale), ms(66 * scale), ms(64 * scale)],
        probes_attached: if name == "bpftrace" { vec![ms(100), ms(101), ms(99)] } else { Vec::new() },
        idle: memory(8_400 * scale, 29_600),
        idle_cpu_percent: 0.1,
        after_kills: memory(8_420 * scale, 29_600 * scale),
        seq,
        storm,
        foreign_events: if name == "bpftrace" { 3 } else { 0 },
        kernel: Ok(kernel_cost(name)),
    }
}

fn program_cost(name: &str, program_type: &'static str, runs: u64, ns_per_run: u64, insns: u32) -> ProgramCost {
    ProgramCost {
        name: name.to_owned(),
        program_type,
        runs,
        run_time_ns: runs * ns_per_run + runs / 3,
        window_per_run: (0..runs.min(9)).map(|i| Duration::from_nanos(ns_per_run - 40 + i * 7 + i * i * 3)).collect(),
        xlated_insns: Some(insns),
        verified_insns: Some(insns * 3),
        jited_bytes: insns * 6,
    }
}

fn kernel_cost(tool: &str) -> KernelCost {
    if tool == "bpftrace" {
        return KernelCost {
            programs: vec![program_cost("mark_victim", "tracepoint", 216, 2_410, 14)],
            ringbuf_bytes: None,
        };
    }
    KernelCost {
        programs: vec![
            program_cost("mark_victim_btf", "tracing", 216, 3_480, 1_185),
            program_cost("signal_generate", "tracepoint", 9_817, 95, 59),
        ],
        ringbuf_bytes: Some(256 << 10),
    }
}

fn verifier() -> Verifier {
    let program = |name: &str, section: &str, insns, frame_bytes, stack_bytes, subprograms: &[&str]| ObjectProgram {
        name: name.to_owned(),
        section: section.to_owned(),
        insns,
        subprograms: subprograms.iter().map(|s| s.to_string()).collect(),
        frame_bytes,
        stack_bytes,
    };
    Verifier {
        event: EventRecord {
            fixed_bytes: 544,
            max_bytes: 2_848,
            bench_cgroup: "/oomtrace-bench-4143/seq".to_owned(),
            bench_bytes: 570,
        },
        prebuilt: Ok(vec![
            program("mark_victim_btf", "tp_btf/mark_victim", 1_196, 160, 192, &["memset"]),
            program("signal_generate", "tracepoint", 59, 16, 32, &[]),
        ]),
    }
}

fn machine() -> Machine {
    Machine {
        kernel: "6.18.44-fc-v669".to_owned(),
        cpus: 2,
        mem_total_kb: 24_641_536,
        cpu_model: "AMD EPYC".to_owned(),
    }
}

fn idle_window(metric_requests: usize, precise_ms: Option<f64>) -> IdleWindow {
    IdleWindow {
        memory_start: memory(10_240, 31_400),
        memory_end: memory(10_300, 31_400),
        cpu: CpuUse { seconds: 10.02, ticks_ms: 10.0, precise_ms },
        scrapes: Ok(10.0),
        otlp: OtlpCounts { log_requests: 0, log_records: 0, metric_requests },
    }
}

fn daemon(burst: KillRun, prometheus_kills: Result<f64, String>, foreign_events: usize) -> DaemonFigures {
    DaemonFigures {
        command: "OOMTRACE_LOG=info target/dist/oomtrace daemon --metrics-address 127.0.0.1:38607".to_owned(),
        cri: "/run/oomtrace-test/containerd/containerd.sock".to_owned(),
        attach: us(49_512),
        first_scrape: ms(4_012),
        idle: idle_window(0, Some(4.6)),
        burst,
        burst_cpu: CpuUse { seconds: 1.6, ticks_ms: 0.0, precise_ms: None },
        after_burst: memory(10_330, 31_400),
        prometheus_kills,
        otlp_burst: OtlpCounts { log_requests: 26, log_records: 29, metric_requests: 2 },
        idle_after: idle_window(10, Some(7.8)),
        foreign_events,
        exit: "exit status: 0".to_owned(),
    }
}

fn enrichment(hung: Vec<Duration>, after_warm: Vec<Duration>, exited: Vec<Duration>) -> EnrichmentFigures {
    EnrichmentFigures {
        optimized: true,
        runtime: "containerd 1.6.20~ds1".to_owned(),
        container_path: "/kubepods/burstable/pod49a3/876b".to_owned(),
        attribution: "full: oomtrace-bench/oomtrace-bench-5203/app, main_process=true".to_owned(),
        cold_connect: (1..=20).map(|i| us(270 + i * 17)).collect(),
        cold_connected: (1..=20).map(|i| us(220 + i * 11)).collect(),
        after_warm,
        cached: (1..=1000).map(|i| Duration::from_nanos(400 + i % 7 * 20)).collect(),
        exited,
        exited_attribution: "full: oomtrace-bench/oomtrace-bench-5203/oneshot".to_owned(),
        hung,
        hung_attribution: "partial: no pod name (the CRI runtime failed recently)".to_owned(),
        timeout: ms(250),
    }
}

fn clock_check(boottime_minus_monotonic_ns: u64, nsecs: u64) -> ClockCheck {
    ClockCheck {
        clock: Clock::Boottime,
        evidence: "`bpftrace -d` shows `nsecs` compiled to BPF helper 125, bpf_ktime_get_boot_ns".to_owned(),
        before_ns: 5_517_008_273_766,
        nsecs,
        received_ns: 5_517_049_303_121,
        boottime_minus_monotonic_ns,
    }
}

fn components() -> Vec<(&'static str, String)> {
    vec![
        (
            "containerd (`scripts/runtime.sh`)",
            "/run/oomtrace-test/containerd/containerd.sock: already running".to_owned(),
        ),
        (
            "Prometheus, OTLP receiver (`scripts/observability.sh`)",
            "127.0.0.1:19090, gRPC 127.0.0.1:14317: started".to_owned(),
        ),
    ]
}

fn timed(command: &str, wall_ms: [u64; 5]) -> Timed {
    let cpu = wall_ms.map(|v| ms(v * 9 / 10)).to_vec();
    Timed { command: command.to_owned(), wall: wall_ms.map(ms).to_vec(), cpu }
}

fn syslog(events: u64, grep_count: Option<u64>) -> SyslogFigures {
    let path = "target/bench/syslog-100MB";
    SyslogFigures {
        path: path.to_owned(),
        shape: SyslogShape {
            bytes: 100_093_517,
            kernel_lines: 1_098_255,
            unrelated_lines: 274_275,
            repetitions: 451,
            kill_lines: 22_099,
            written_in: ms(1_270),
        },
        oomtrace: timed(
            &format!("oomtrace history --file {path} -o json >/dev/null"),
            [1_310, 1_250, 1_290, 1_400, 1_262],
        ),
        grep: timed(&format!("grep -c \"Killed process\" {path}"), [61, 58, 60, 75, 59]),
        cat: timed(&format!("cat {path} >/dev/null"), [12, 11, 13, 11, 12]),
        grep_count,
        found: Ok(Found {
            events,
            closing: format!(
                "{events} OOM kills found in the log (11275 reports with only the kill line (rate-limited))"
            ),
            peak_rss_kb: grep_count.map(|_| 56_012),
        }),
        diagnose: timed(
            &format!("oomtrace diagnose --file {path} -o json >/dev/null"),
            [1_330, 1_270, 1_300, 1_420, 1_280],
        ),
        diagnose_found: Ok(Found {
            events,
            closing: format!(
                "{events} OOM kills found in the log (11275 reports with only the kill line (rate-limited))"
            ),
            peak_rss_kb: grep_count.map(|_| 9_800),
        }),
    }
}

fn ring(found: Result<Found, String>) -> RingFigures {
    RingFigures {
        capacity_bytes: Some(131_072),
        records: 1_402,
        record_bytes: 140_118,
        rotated: 96_311,
        dmesg_bytes: 133_517,
        dmesg_kill_lines: 36,
        kernel_kill_lines: 33,
        oomtrace: timed("oomtrace history -o json >/dev/null", [21, 19, 20, 25, 20]),
        dmesg: timed("dmesg >/dev/null", [4, 3, 3, 5, 4]),
        found,
    }
}

fn klog(syslog: Result<SyslogFigures, String>, ring: Result<RingFigures, String>) -> Section<KlogFigures> {
    Section::Measured(Box::new(KlogFigures {
        generated: "2026-11-29T12:40:00Z".to_owned(),
        commit: "454ee2e".to_owned(),
        syslog,
        ring,
    }))
}

/// Everything measured, with every kind of trouble a note reports.
fn troubled() -> Report {
    let burst = KillRun { missing: vec![777], duplicates: 1, not_killed: 1, ..clean_run(30, 2_700_000) };
    let mut report = Report {
        generated: "2026-11-25T23:51:42Z".to_owned(),
        commit: "6a81845 + uncommitted changes".to_owned(),
        machine: machine(),
        hierarchy: "v1 (/sys/fs/cgroup/memory)".to_owned(),
        kills: 12,
        storm: 16,
        built: true,
        oomtrace: tool("oomtrace", "oomtrace 0.1.0", 1, troubled_run(), clean_run(16, 2_000_000)),
        bpftrace: Peer::Measured(Box::new(tool(
            "bpftrace",
            "bpftrace v0.17.0",
            2,
            clean_run(12, 1_900_000),
            KillRun { kernel_oom_kills: 15, ..clean_run(16, 1_980_000) },
        ))),
        bcc: Peer::Unavailable("Exception: Failed to compile BPF module <text>".to_owned()),
        clock_check: Some(clock_check(0, 5_517_049_205_195)),
        verifier: verifier(),
        components: components(),
        burst: 30,
        daemon: Section::Measured(Box::new(daemon(burst, Err("no series after 20 s".to_owned()), 2))),
        enrichment: Section::Measured(Box::new(enrichment(
            vec![ms(251), ms(252), ms(251), ms(253), ms(251)],
            (1..=20).map(|i| us(40 + i * 9)).collect(),
            (1..=20).map(|i| us(300 + i)).collect(),
        ))),
        klog: klog(
            Ok(syslog(22_050, None)),
            Err("reading /dev/kmsg: opening it: Operation not permitted (os error 1)".to_owned()),
        ),
        alternating: Section::Unavailable("bpftrace did not attach".to_owned()),
        bench_seconds: 79,
    };
    if let Ok(cost) = &mut report.oomtrace.kernel {
        cost.programs.push(program_cost("oom_kill_proces", "kprobe", 27, 2_020, 210));
        cost.programs[0].verified_insns = None;
    }
    if let Peer::Measured(peer) = &mut report.bpftrace {
        peer.kernel = Err("BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): Invalid argument (os error 22)".to_owned());
    }
    report.verifier.prebuilt = Err("reading oomtrace-ebpf/prebuilt/oomtrace.bpf.o: No such file".to_owned());
    report
}

/// Everything measured, nothing wrong: the shape of docs/benchmarks.md.
fn clean() -> Report {
    Report {
        generated: "2026-11-26T10:00:00Z".to_owned(),
        commit: "5d0e74d".to_owned(),
        machine: machine(),
        hierarchy: "v2 (/sys/fs/cgroup)".to_owned(),
        kills: 200,
        storm: 16,
        built: false,
        oomtrace: tool("oomtrace", "oomtrace 0.1.0", 1, clean_run(200, 260_000), clean_run(16, 2_064_000)),
        bpftrace: Peer::Measured(Box::new(tool(
            "bpftrace",
            "bpftrace v0.17.0",
            3,
            clean_run(200, 1_917_000),
            clean_run(16, 1_981_000),
        ))),
        bcc: Peer::AttachedOnly { attach: ms(812), note: "it prints wall-clock seconds".to_owned() },
        clock_check: Some(clock_check(3_600_000, 5_517_049_205_195)),
        verifier: verifier(),
        components: components(),
        burst: 30,
        daemon: Section::Measured(Box::new(daemon(clean_run(30, 2_717_000), Ok(30.0), 0))),
        enrichment: Section::Measured(Box::new(enrichment(
            [ms(251)].into_iter().chain([us(1), us(2), Duration::from_nanos(9_900), us(1)]).collect(),
            (1..=20).map(|i| us(222 + i * 12)).collect(),
            (1..=20).map(|i| Duration::from_nanos(400 + i * 19_000)).collect(),
        ))),
        klog: klog(
            Ok(syslog(22_099, Some(22_099))),
            Ok(ring(Ok(Found {
                events: 33,
                closing: "kernel counted 40 OOM kills since boot; 33 found in the log (96311 \
                earlier records rotated out of the ring buffer); 7 not in this log: try --journal, which keeps more"
                    .to_owned(),
                peak_rss_kb: Some(13_900),
            }))),
        ),
        alternating: Section::Measured(Box::new(Alternating {
            turns: 4,
            kills_per_turn: 3,
            oomtrace: clean_run(12, 310_000),
            peer: clean_run(12, 290_000),
        })),
        bench_seconds: 612,
    }
}

/// oomtrace alone: no peer measured, the daemon skipped, containerd missing.
fn alone() -> Report {
    Report {
        generated: "2026-11-26T11:00:00Z".to_owned(),
        commit: "unknown".to_owned(),
        machine: machine(),
        hierarchy: "v1 (/sys/fs/cgroup/memory)".to_owned(),
        kills: 5,
        storm: 4,
        built: false,
        oomtrace: tool("oomtrace", "oomtrace 0.1.0", 1, clean_run(5, 300_000), clean_run(4, 1_000_000)),
        bpftrace: Peer::Skipped,
        bcc: Peer::Skipped,
        clock_check: None,
        verifier: verifier(),
        components: Vec::new(),
        burst: 30,
        daemon: Section::Skipped("--no-daemon"),
        enrichment: Section::Unavailable("containerd is not running (scripts/runtime.sh up)".to_owned()),
        klog: Section::Skipped("--no-klog"),
        alternating: Section::Unavailable("bpftrace skipped (--no-peer)".to_owned()),
        bench_seconds: 40,
    }
}

/// A measured section that came out empty: no calls, no latencies.
fn empty() -> Report {
    let mut report = alone();
    report.oomtrace.attach.clear();
    report.oomtrace.seq = KillRun { hogs: 3, missing: vec![1, 2, 3], kernel_oom_kills: 3, ..KillRun::default() };
    report.bpftrace = Peer::Unavailable("apt-get install -y bpftrace failed".to_owned());
    report.oomtrace.kernel = Ok(KernelCost::default());
    report.daemon = Section::Unavailable("Prometheus is not running".to_owned());
    report.enrichment = Section::Measured(Box::new(enrichment(Vec::new(), Vec::new(), Vec::new())));
    let mut silent_ring = ring(Err("failed (exit status: 1): /dev/kmsg: no such device".to_owned()));
    (silent_ring.oomtrace, silent_ring.dmesg, silent_ring.capacity_bytes) =
        (Timed::new("oomtrace history -o json >/dev/null"), Timed::new("dmesg >/dev/null"), None);
    report.klog = klog(
        Err("reading oomtrace-klog/fixtures/host-6.18-cgroup-v1-dmesg.txt: No such file".to_owned()),
        Ok(silent_ring),
    );
    if let Section::Measured(e) = &mut report.enrichment {
        e.cached.clear();
        e.optimized = false;
    }
    report
}

fn fixtures() -> [(&'static str, Report); 4] {
    [("troubled", troubled()), ("clean", clean()), ("alone", alone()), ("empty", empty())]
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/bench-report-{name}.md"))
}

fn golden(name: &str) -> String {
    let path = golden_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn assert_same(name: &str, rendered: &str, expected: &str) {
    for (line, (got, want)) in rendered.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "{name}: line {} differs", line + 1);
    }
    assert_eq!(rendered, expected, "{name}: line counts differ");
}

/// The part of a golden report from `## heading` (None: from the top) to
/// the next heading; empty when the report has no such section.
fn section_of(markdown: &str, heading: Option<&str>) -> String {
    let start = match heading {
        None => 0,
        Some(heading) => match markdown.find(&format!("\n## {heading}\n")) {
            Some(at) => at + 1,
            None => return String::new(),
        },
    };
    let end = markdown[start + 1..].find("\n## ").map_or(markdown.len(), |at| start + 1 + at + 1);
    markdown[start..end].to_owned()
}

/// Renders one section from every fixture and compares it with its part of
/// the golden reports.
pub fn assert_section(heading: Option<&str>, section: super::RenderSection) {
    for (name, report) in fixtures() {
        let mut rendered = String::new();
        section(&mut rendered, &report);
        assert_same(&format!("{name}, section {heading:?}"), &rendered, &section_of(&golden(name), heading));
    }
}

#[test]
fn renders_every_fixture_as_before() {
    for (name, report) in fixtures() {
        let rendered = render(&report);
        if std::env::var_os("OOMTRACE_BLESS").is_some() {
            std::fs::write(golden_path(name), &rendered).unwrap();
        }
        assert_same(name, &rendered, &golden(name));
    }
}

#[test]
fn every_section_is_found_in_the_golden_reports() {
    let clean = golden("clean");
    let headings = [
        "Machine",
        "Targets",
        "Results",
        "Peers",
        "Kernel cost",
        "Daemon footprint",
        "Enrichment cost",
        "Kernel log parsing",
        "Method",
        "Notes",
    ];
    let parts: String =
        std::iter::once(section_of(&clean, None)).chain(headings.iter().map(|h| section_of(&clean, Some(h)))).collect();
    assert!(parts == clean, "the sections do not add up to the whole report");
    assert_eq!(section_of(&golden("alone"), Some("Notes")), "");
}
