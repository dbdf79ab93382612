//! The Kernel log parsing section: `oomtrace history` on a 100 MB syslog file
//! beside grep and cat, and on the whole ring buffer beside dmesg. Its body
//! sits between markers, so `cargo xtask bench --only klog` can rewrite it
//! alone in docs/benchmarks.md (bench/splice.rs).

use std::fmt::Write as _;

use crate::bench::{
    figures::{Found, KlogFigures, Report, RingFigures, Section, SyslogFigures, Timed},
    report::format::{cell, mib, not_measured, ratio},
    settings::{KLOG_RUNS, REPETITION_GAP_S, SYSLOG_FIXTURE, UNRELATED_EVERY},
};

pub const HEADING: &str = "## Kernel log parsing";
pub const BLOCK_BEGIN: &str = "<!-- kernel log parsing figures: begin -->";
pub const BLOCK_END: &str = "<!-- kernel log parsing figures: end -->";

/// `## Kernel log parsing` of a whole report.
pub fn klog(out: &mut String, report: &Report) {
    section(out, &report.klog);
}

/// The heading, then the marked body.
pub fn section(out: &mut String, klog: &Section<KlogFigures>) {
    writeln!(out, "{HEADING}\n\n{BLOCK_BEGIN}").ok();
    match klog.measured() {
        Some(figures) => {
            writeln!(
                out,
                "Measured {} at commit {} with the `dist` binary (`cargo xtask bench`, or this section alone: \
                 `cargo xtask bench --only klog`). Issue 11 asks that the whole 1 MiB kmsg buffer or a 100 MB \
                 syslog file parse in ≤ 2 s. Each command ran once per round, {KLOG_RUNS} rounds, so that load \
                 from elsewhere on the host falls on all of them alike. CPU (user + system) is each process's own, \
                 from `wait4`.",
                figures.generated, figures.commit
            )
            .ok();
            writeln!(out).ok();
            match &figures.syslog {
                Ok(syslog) => syslog_part(out, syslog),
                Err(reason) => {
                    writeln!(out, "**A 100 MB syslog file**: not measured: {reason}.\n").ok();
                }
            }
            match &figures.ring {
                Ok(ring) => ring_part(out, ring),
                Err(reason) => {
                    writeln!(out, "**The whole kernel ring buffer**: not measured: {reason}.\n").ok();
                }
            }
        }
        None => not_measured(out, klog),
    }
    writeln!(out, "{BLOCK_END}\n").ok();
}

fn syslog_part(out: &mut String, s: &SyslogFigures) {
    let shape = &s.shape;
    writeln!(
        out,
        "**A 100 MB syslog file.** `{}`: {:.1} MB, {} kernel lines and {} others. The kernel lines are this host's \
         own `dmesg` (`{SYSLOG_FIXTURE}`: 49 memcg OOM kills, 25 of them with the full report, the others \
         rate-limited to the kill line) in /var/log/syslog's traditional form (`Nov 29 11:14:00 host kernel: \
         [20275.552083] message`), repeated {} times, each copy {REPETITION_GAP_S} s after the one before in both its \
         wall-clock and its kernel timestamps; after every {UNRELATED_EVERY}th kernel line a systemd, containerd, \
         kubelet, cron or rsyslogd line, as on a node. {} kernel `Killed process` lines in all: the kills a parser \
         must find. Written in {:.1} s before the runs (and removed after them), then read once with `cat` so that \
         every command finds it in the page cache.",
        s.path,
        shape.bytes as f64 / 1e6,
        shape.kernel_lines,
        shape.unrelated_lines,
        shape.repetitions,
        shape.kill_lines,
        shape.written_in.as_secs_f64()
    )
    .ok();
    writeln!(out).ok();
    table_head(out, "grep");
    let grep_median = s.grep.median_s();
    let found = match &s.found {
        Ok(found) => format!("{} events (of {} kill lines)", found.events, shape.kill_lines),
        Err(reason) => format!("not counted: {reason}"),
    };
    let grouped = match &s.diagnose_found {
        Ok(found) => format!("{} kills grouped", found.events),
        Err(reason) => format!("not counted: {reason}"),
    };
    let counted = s.grep_count.map_or_else(|| "no count".to_owned(), |n| format!("{n} lines"));
    for (timed, what) in [(&s.oomtrace, found), (&s.diagnose, grouped), (&s.grep, counted), (&s.cat, String::new())] {
        row(out, timed, shape.bytes, &what, grep_median);
    }
    writeln!(out).ok();
    closing(out, &s.found);
    if let Ok(found) = &s.diagnose_found {
        let peak = found.peak_rss_kb.map_or_else(String::new, |kb| format!(", peaking at {:.1} MiB", mib(kb)));
        writeln!(
            out,
            "`oomtrace diagnose` was run once more the same way{peak}; its report counts {} kills.\n",
            found.events
        )
        .ok();
    }
}

fn ring_part(out: &mut String, r: &RingFigures) {
    let capacity = r.capacity_bytes.map_or_else(
        || "Its size could not be read".to_owned(),
        |bytes| {
            format!(
                "Its size is {} KiB here (syslog(2) `SYSLOG_ACTION_SIZE_BUFFER`, the kernel's `log_buf_len`; issue \
                 11 names 1 MiB, and the 100 MB file above is the larger case)",
                bytes / 1024
            )
        },
    );
    let wrapped = if r.rotated > 0 {
        format!("; it had wrapped: the {} records logged before the oldest one held were gone", r.rotated)
    } else {
        String::new()
    };
    writeln!(
        out,
        "**The whole kernel ring buffer.** {capacity}. When read before the runs it held {} records, \
         {:.1} KB as /dev/kmsg returns them (`dmesg` prints {:.1} KB){wrapped}. {}{} \
         Both read /dev/kmsg (util-linux `dmesg` does, falling back to syslog(2)), as root; MB/s counts its \
         records' bytes. Other sessions on this host may log kills while the bench runs, so the contents can move \
         between runs.",
        r.records,
        r.record_bytes as f64 / 1e3,
        r.dmesg_bytes as f64 / 1e3,
        format_args!("`dmesg --kernel` (kernel messages only) shows {} `Killed process` lines", r.kernel_kill_lines),
        if r.dmesg_kill_lines > r.kernel_kill_lines {
            format!(
                "; plain `dmesg` has {} more, which programs wrote to /dev/kmsg (the kernel files those under \
                 the user facility): a grep of `dmesg` counts them as kills.",
                r.dmesg_kill_lines - r.kernel_kill_lines
            )
        } else {
            ".".to_owned()
        }
    )
    .ok();
    writeln!(out).ok();
    table_head(out, "dmesg");
    let found = match &r.found {
        Ok(found) => format!("{} events", found.events),
        Err(reason) => format!("not counted: {reason}"),
    };
    let dmesg_median = r.dmesg.median_s();
    row(out, &r.oomtrace, r.record_bytes, &found, dmesg_median);
    let dmesg_found = format!("{} kill lines ({} from the kernel)", r.dmesg_kill_lines, r.kernel_kill_lines);
    row(out, &r.dmesg, r.record_bytes, &dmesg_found, dmesg_median);
    writeln!(out).ok();
    closing(out, &r.found);
}

fn table_head(out: &mut String, peer: &str) {
    writeln!(
        out,
        "| command | best of {KLOG_RUNS} | median | CPU, median | MB/s at the median | found | median / {peer}'s \
         |\n|---|---|---|---|---|---|---|"
    )
    .ok();
}

/// One command's row, with its throughput over `bytes`.
fn row(out: &mut String, timed: &Timed, bytes: u64, found: &str, peer_median_s: Option<f64>) {
    writeln!(
        out,
        "| `{}` | {} | {} | {} | {} | {found} | {} |",
        timed.command,
        cell(timed.best_s(), "s", 3),
        cell(timed.median_s(), "s", 3),
        cell(timed.median_cpu_s(), "s", 3),
        cell(timed.mb_per_s(bytes), "", 0),
        ratio(timed.median_s(), peer_median_s)
    )
    .ok();
}

/// The untimed run that counted the events: oomtrace's own account of what
/// it read, and its peak RSS.
fn closing(out: &mut String, found: &Result<Found, String>) {
    let Ok(found) = found else { return };
    let mut text = "The events were counted in one more run, untimed, with stdout kept".to_owned();
    if !found.closing.is_empty() {
        write!(text, "; oomtrace's closing line: \"{}\"", found.closing.replace('`', "'")).ok();
    }
    if let Some(kb) = found.peak_rss_kb {
        write!(text, "; its peak RSS (GNU time's `%M`): {:.1} MiB", mib(kb)).ok();
    }
    writeln!(out, "{text}.\n").ok();
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn kernel_log_parsing_as_before() {
        assert_section(Some("Kernel log parsing"), super::klog);
    }
}
