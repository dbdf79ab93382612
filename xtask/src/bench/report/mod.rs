//! The markdown report (docs/benchmarks.md): one function per section, each
//! reading only the figures and the settings. Writing to a `String` cannot
//! fail; the sections' `.ok()` keeps that visible without `unwrap`.

mod daemon;
mod enrichment;
mod format;
#[cfg(test)]
mod golden;
mod header;
mod kernel;
pub mod klog;
mod method;
mod notes;
mod peers;
mod results;
pub mod storm;
pub mod targets;

use crate::bench::figures::Report;

/// A section: appends its markdown (heading, body, blank line) to `out`.
type RenderSection = fn(&mut String, &Report);

/// The sections in the order the report shows them.
const SECTIONS: &[RenderSection] = &[
    header::title,
    header::machine,
    targets::targets,
    results::results,
    peers::peers,
    kernel::kernel,
    daemon::daemon,
    enrichment::enrichment,
    klog::klog,
    method::method,
    notes::notes,
];

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for section in SECTIONS {
        section(&mut out, report);
    }
    out
}
