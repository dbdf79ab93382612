//! The title paragraph and the Machine section.

use std::fmt::Write as _;

use crate::bench::figures::{Peer, Report};

/// `# Benchmarks` and how the report was produced.
pub fn title(out: &mut String, report: &Report) {
    writeln!(out, "# Benchmarks").ok();
    writeln!(out).ok();
    writeln!(
        out,
        "Produced by `cargo xtask bench --kills {} --storm {} --burst {}` on {} (workspace commit {}), {}. The run took {} s.",
        report.kills,
        report.storm,
        report.burst,
        report.generated,
        report.commit,
        if report.built {
            "`dist` binary (the shipped profile: release with LTO) built by the bench"
        } else {
            "existing `dist` binary (--no-build)"
        },
        report.bench_seconds
    )
    .ok();
    writeln!(out).ok();
}

/// `## Machine`: the host, the tools' versions, the components.
pub fn machine(out: &mut String, report: &Report) {
    let m = &report.machine;
    writeln!(out, "## Machine").ok();
    writeln!(out).ok();
    writeln!(out, "| | |\n|---|---|").ok();
    writeln!(out, "| kernel (`uname -r`) | {} |", m.kernel).ok();
    writeln!(out, "| CPUs (`nproc`) | {} |", m.cpus).ok();
    writeln!(out, "| CPU model | {} |", m.cpu_model).ok();
    writeln!(out, "| memory (MemTotal) | {:.1} GiB |", m.mem_total_kb as f64 / (1024.0 * 1024.0)).ok();
    writeln!(out, "| memory cgroups | {} |", report.hierarchy).ok();
    writeln!(out, "| oomtrace | {} |", report.oomtrace.version).ok();
    if let Peer::Measured(peer) = &report.bpftrace {
        writeln!(out, "| bpftrace | {} |", peer.version).ok();
    }
    if let Some(e) = report.enrichment.measured() {
        writeln!(out, "| container runtime (CRI) | {} |", e.runtime).ok();
    }
    for (component, state) in &report.components {
        writeln!(out, "| {component} | {state} |").ok();
    }
    writeln!(out).ok();
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn title_as_before() {
        assert_section(None, super::title);
    }

    #[test]
    fn machine_as_before() {
        assert_section(Some("Machine"), super::machine);
    }
}
