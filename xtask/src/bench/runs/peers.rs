//! The peers measured beside oomtrace: bpftrace (after checking which clock
//! its `nsecs` reads) and bcc's oomkill. A peer never fails the bench: what
//! went wrong becomes its outcome in the report.

use std::{
    ffi::OsString,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};

use crate::bench::{
    figures::{ClockCheck, Peer},
    host::{ensure_installed, progress, version_of},
    runs::tracers::{self, BPFTRACE_PROGRAM, Kills, Tool},
    settings::ATTACH_DEADLINE,
};
use oomtrace_testkit::{
    cgroup::Hierarchy,
    procfs::{self, Clock},
    tracer::{Spec, Tracer},
};

/// bpftrace, installed with apt-get when missing, and how it was run (for
/// the alternating turns) when it could be.
pub fn bpftrace(hierarchy: &Hierarchy, kills: Kills) -> (Peer, Option<ClockCheck>, Option<Spec>) {
    let (spec, clock_check) = match bpftrace_checked() {
        Ok(ready) => ready,
        Err((reason, clock_check)) => return (Peer::Unavailable(reason), clock_check, None),
    };
    let binary = spec.program.clone();
    let tool = Tool {
        name: "bpftrace",
        version: version_of(&binary, "--version"),
        attach_spec: spec.clone(),
        run_spec: spec.clone(),
    };
    let peer = match tracers::measure(&tool, hierarchy, kills) {
        Ok(figures) => Peer::Measured(Box::new(figures)),
        Err(error) => {
            progress(&format!("bpftrace: {error:#}"));
            Peer::Unavailable(format!("{error:#}"))
        }
    };
    (peer, Some(clock_check), Some(spec))
}

/// The bpftrace one-liner, ready to run: installed with apt-get when
/// missing, its clock checked; or why it cannot be measured (with the clock
/// check when one ran).
pub fn bpftrace_checked() -> Result<(Spec, ClockCheck), (String, Option<ClockCheck>)> {
    let binary = ensure_installed("bpftrace", "bpftrace").map_err(|reason| (reason, None))?;
    let (clock, evidence) = bpftrace_clock(&binary);
    progress(&format!("bpftrace: nsecs is {} ({evidence})", clock.name()));
    let clock_check = check_bpftrace_clock(&binary, clock, evidence)
        .map_err(|error| (format!("bpftrace's clock check failed: {error:#}"), None))?;
    if !clock_check.holds() {
        let reason = format!("bpftrace's nsecs is not {}: latencies would not be comparable", clock.name());
        return Err((reason, Some(clock_check)));
    }
    Ok((tracers::bpftrace_spec(&binary, clock), clock_check))
}

/// Which kernel clock bpftrace's `nsecs` reads: the BPF helper it compiles to
/// (ids from include/uapi/linux/bpf.h), as `bpftrace -d` shows in its LLVM IR.
/// bpftrace documents `nsecs` as the boot clock on kernels since 5.7.
fn bpftrace_clock(binary: &Path) -> (Clock, String) {
    let output = Command::new(binary).args(["-d", "-e", BPFTRACE_PROGRAM]).stdin(Stdio::null()).output();
    let text = output
        .map(|out| format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        .unwrap_or_default();
    clock_from_ir(&text)
}

fn clock_from_ir(ir: &str) -> (Clock, String) {
    if ir.contains("inttoptr (i64 125 to") {
        (Clock::Boottime, "`bpftrace -d` shows `nsecs` compiled to BPF helper 125, bpf_ktime_get_boot_ns".to_owned())
    } else if ir.contains("inttoptr (i64 5 to") {
        (Clock::Monotonic, "`bpftrace -d` shows `nsecs` compiled to BPF helper 5, bpf_ktime_get_ns".to_owned())
    } else {
        let evidence = "bpftrace documents `nsecs` as the boot clock (bpf_ktime_get_boot_ns) on kernels since 5.7; \
                        `bpftrace -d` did not show the helper";
        (Clock::Boottime, evidence.to_owned())
    }
}

/// Checks `clock` against a BEGIN probe: its `nsecs` must fall between the
/// bench's reading of that clock before the start and when the line arrives.
fn check_bpftrace_clock(binary: &Path, clock: Clock, evidence: String) -> Result<ClockCheck> {
    fn parse_begin(line: &str) -> Option<(u32, u64)> {
        Some((0, line.trim().strip_prefix("nsecs=")?.parse().ok()?))
    }
    let spec = Spec {
        program: binary.to_owned(),
        args: vec![OsString::from("-e"), OsString::from(r#"BEGIN { printf("nsecs=%llu\n", nsecs); exit(); }"#)],
        env: Vec::new(),
        markers: Vec::new(),
        parse: parse_begin,
        clock,
    };
    let before_ns = clock.now_ns();
    let mut tracer = Tracer::spawn(&spec)?;
    let event = tracer.next_event(ATTACH_DEADLINE);
    let status = tracer.stop()?;
    let event =
        event.with_context(|| format!("no nsecs line from a BEGIN probe ({status}): {:?}", tracer.log_lines()))?;
    Ok(ClockCheck {
        clock,
        evidence,
        before_ns,
        nsecs: event.ktime_ns,
        received_ns: event.received_ns,
        boottime_minus_monotonic_ns: procfs::boottime_ns().saturating_sub(procfs::monotonic_ns()),
    })
}

/// bcc's oomkill uses a kprobe on oom_kill_process; on kernels without
/// kprobes it cannot attach, and the report says why.
pub fn bcc() -> Peer {
    let binary = match ensure_installed("oomkill-bpfcc", "bpfcc-tools") {
        Ok(binary) => binary,
        Err(reason) => return Peer::Unavailable(reason),
    };
    progress("bcc: starting oomkill-bpfcc");
    let spec = Spec {
        program: binary,
        args: Vec::new(),
        env: vec![("PYTHONUNBUFFERED", "1".to_owned())],
        markers: vec!["Tracing OOM kills"],
        parse: |_| None,
        clock: Clock::Monotonic,
    };
    let mut tracer = match Tracer::spawn(&spec) {
        Ok(tracer) => tracer,
        Err(error) => return Peer::Unavailable(format!("{error:#}")),
    };
    let outcome = match tracer.wait_marker(0, ATTACH_DEADLINE) {
        Ok(attached) => Peer::AttachedOnly {
            attach: attached,
            note: "it prints wall-clock seconds, not kernel ns, so latency cannot be measured the same way".to_owned(),
        },
        Err(_) => Peer::Unavailable(format!("{}{}", bcc_failure_reason(&tracer.log_lines()), kprobe_support())),
    };
    let _ = tracer.stop();
    progress(&format!("bcc: {}", outcome.summary()));
    outcome
}

/// The informative lines of bcc's output: its own diagnostics (kernel
/// headers, kprobe attach) and the exception, without the traceback.
fn bcc_failure_reason(lines: &[String]) -> String {
    let informative = |line: &&str| {
        !line.starts_with("File ")
            && !line.starts_with("raise ")
            && !line.starts_with("Traceback")
            && (line.contains("kprobe") || line.contains("kernel headers") || line.starts_with("Exception"))
    };
    let parts: Vec<&str> = lines.iter().map(|l| l.trim()).filter(informative).take(3).collect();
    match (parts.is_empty(), lines.iter().rev().map(|l| l.trim()).find(|l| !l.is_empty())) {
        (false, _) => parts.join(" / "),
        (true, Some(last)) => last.to_owned(),
        (true, None) => "it exited without output".to_owned(),
    }
}

/// Whether this kernel can run a kprobe at all (bcc's oomkill needs one).
fn kprobe_support() -> &'static str {
    let pmu = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let events = Path::new("/sys/kernel/tracing/kprobe_events").exists()
        || Path::new("/sys/kernel/debug/tracing/kprobe_events").exists();
    if pmu || events {
        ""
    } else {
        "; and this kernel has no kprobes at all (no /sys/bus/event_source/devices/kprobe, no tracefs kprobe_events), \
         so it could not attach even with headers"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_reason_names_the_exception() {
        let lines = [
            "Traceback (most recent call last):",
            "  File \"/usr/lib/python3/dist-packages/bcc/__init__.py\", line 479, in __init__",
            "    raise Exception(\"Failed to compile BPF module %s\" % (src_file or \"<text>\"))",
            "Exception: Failed to compile BPF module <text>",
        ]
        .map(String::from);
        assert_eq!(bcc_failure_reason(&lines), "Exception: Failed to compile BPF module <text>");
        assert_eq!(bcc_failure_reason(&["odd".to_owned(), "".to_owned()]), "odd");
    }

    #[test]
    fn the_clock_comes_from_the_helper_in_the_ir() {
        let boot = "  %get_ns = tail call i64 inttoptr (i64 125 to i64 ()*)()";
        assert_eq!(clock_from_ir(boot).0, Clock::Boottime);
        let mono = "  %get_ns = call i64 inttoptr (i64 5 to ptr)()";
        assert_eq!(clock_from_ir(mono).0, Clock::Monotonic);
        assert_eq!(clock_from_ir("  call i64 inttoptr (i64 25 to ptr)").0, Clock::Boottime);
    }
}
