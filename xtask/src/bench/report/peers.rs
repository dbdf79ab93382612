//! The Peers section: how bpftrace ran and which clock it reads, and bcc.

use std::fmt::Write as _;

use crate::bench::figures::{ClockCheck, Peer, Report, median_ms};

/// `## Peers`.
pub fn peers(out: &mut String, report: &Report) {
    writeln!(out, "## Peers").ok();
    writeln!(out).ok();
    match &report.bpftrace {
        Peer::Measured(peer) => {
            writeln!(out, "- **bpftrace** ({}): measured above, running", peer.version).ok();
            writeln!(
                out,
                "  `bpftrace -e 'tracepoint:oom:mark_victim {{ printf(\"%llu %d\\n\", nsecs, args->pid); }}'`."
            )
            .ok();
            writeln!(
                out,
                "  Its start-to-attached is timed to its `Attaching 1 probe...` line, which bpftrace prints *before* it attaches."
            )
            .ok();
            if let Some(median) = median_ms(&peer.probes_attached) {
                writeln!(
                    out,
                    "  Timed instead to its `__BPFTRACE_NOTIFY_PROBES_ATTACHED` line (printed once the probe is attached \
                     when that environment variable is set), the median of {} starts is {median:.1} ms.",
                    peer.probes_attached.len()
                )
                .ok();
            }
        }
        other => {
            writeln!(out, "- **bpftrace**: {}", other.summary()).ok();
        }
    }
    if let Some(check) = &report.clock_check {
        clock(out, check);
    }
    writeln!(out, "- **bcc oomkill** (`oomkill-bpfcc`, kprobe on `oom_kill_process`): {}", report.bcc.summary()).ok();
    writeln!(out).ok();
}

/// Which clock bpftrace's `nsecs` is, and whether a BEGIN probe agreed.
fn clock(out: &mut String, check: &ClockCheck) {
    let apart_ms = check.boottime_minus_monotonic_ns as f64 / 1e6;
    writeln!(
        out,
        "- bpftrace's clock: `nsecs` is {} ({}), so its latencies are taken against {}; oomtrace's `ktime_ns` is \
         `bpf_ktime_get_ns()`, CLOCK_MONOTONIC. A `BEGIN` probe's `nsecs` ({}) fell {} the bench's {} readings \
         before bpftrace started ({}) and on receiving the line ({}). {}",
        check.clock.name(),
        check.evidence,
        check.clock.name(),
        check.nsecs,
        if check.holds() { "between" } else { "**outside**" },
        check.clock.name(),
        check.before_ns,
        check.received_ns,
        if apart_ms < 1.0 {
            format!(
                "On this host CLOCK_BOOTTIME is {apart_ms:.3} ms ahead of CLOCK_MONOTONIC (no suspend since boot), \
                 so the two clocks agree here either way."
            )
        } else {
            format!("CLOCK_BOOTTIME is {apart_ms:.1} ms ahead of CLOCK_MONOTONIC on this host (time suspended).")
        }
    )
    .ok();
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn peers_as_before() {
        assert_section(Some("Peers"), super::peers);
    }
}
