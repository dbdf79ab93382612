//! `cargo xtask bench --only klog`: one section's figures put into an existing
//! docs/benchmarks.md, the rest left as the last full run wrote it: the
//! section's marked body, and its rows of the Targets table.

use crate::bench::{
    figures::{KlogFigures, Section},
    report::{
        klog::{self, BLOCK_BEGIN, BLOCK_END},
        targets::{self, KLOG_TARGET},
    },
};
use crate::node::report::BENCH_BLOCK_BEGIN as NODE_BLOCK_BEGIN;

/// `text` (the report) with the kernel log section and target rows of `figures`.
pub fn klog_into(text: &str, figures: &Section<KlogFigures>) -> String {
    let mut section = String::new();
    klog::section(&mut section, figures);
    let mut rows = String::new();
    targets::klog_rows(&mut rows, figures);
    let text = with_block(text, &section, ["## Method", NODE_BLOCK_BEGIN]);
    with_rows(&text, "## Targets", &format!("| {KLOG_TARGET} "), &rows)
}

/// The section's marked block in place of the one in `text`; where `text` has
/// none, the whole section goes before the first line that begins with one of
/// `before`, or at the end.
fn with_block(text: &str, section: &str, before: [&str; 2]) -> String {
    if let (Some((start, stop)), Some((new_start, new_stop))) = (marked(text), marked(section)) {
        return format!("{}{}{}", &text[..start], &section[new_start..new_stop], &text[stop..]);
    }
    match before.iter().filter_map(|line| line_starting(text, line)).min() {
        Some(at) => format!("{}{section}{}", &text[..at], &text[at..]),
        None if text.is_empty() => section.to_owned(),
        None => format!("{}\n\n{section}", text.trim_end_matches('\n')),
    }
}

/// Where the block between the markers (both included) is.
fn marked(text: &str) -> Option<(usize, usize)> {
    crate::marked::find(text, BLOCK_BEGIN, BLOCK_END)
}

/// The offset of the first line that begins with `prefix`.
fn line_starting(text: &str, prefix: &str) -> Option<usize> {
    if text.starts_with(prefix) {
        return Some(0);
    }
    text.find(&format!("\n{prefix}")).map(|at| at + 1)
}

/// In the table of the `heading` section, the rows that begin with `prefix`
/// replaced by `rows` (after the table's last row where there were none).
/// `text` without such a section or table is returned as it is.
fn with_rows(text: &str, heading: &str, prefix: &str, rows: &str) -> String {
    let Some(start) = line_starting(text, &format!("{heading}\n")) else { return text.to_owned() };
    let stop = text[start + 1..].find("\n## ").map_or(text.len(), |at| start + 1 + at + 1);
    let lines: Vec<&str> = text[start..stop].split_inclusive('\n').filter(|line| !line.starts_with(prefix)).collect();
    let Some(last_row) = lines.iter().rposition(|line| line.starts_with('|')) else { return text.to_owned() };
    let mut section: String = lines[..=last_row].concat();
    section.push_str(rows);
    section.extend(lines[last_row + 1..].iter().copied());
    format!("{}{section}{}", &text[..start], &text[stop..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Benchmarks\n\n## Targets\n\n| target | oomtrace | result |\n|---|---|---|\n| RSS | 8 MiB | PASS \
                       |\n\nThe latency target.\n\n## Enrichment cost\n\nText.\n\n## Method\n\n- how\n\n\
                       <!-- node-test figures: begin -->\n## On the node\n<!-- node-test figures: end -->\n";

    fn skipped() -> Section<KlogFigures> {
        Section::Skipped("--no-klog")
    }

    #[test]
    fn a_report_without_the_section_gets_it_before_method() {
        let text = klog_into(DOC, &skipped());
        let section_at = text.find("## Kernel log parsing\n\n<!-- kernel log parsing figures: begin -->").unwrap();
        assert!(text.find("Text.\n\n").unwrap() < section_at && section_at < text.find("## Method").unwrap());
        assert!(text.contains("figures: end -->\n\n## Method\n"), "{text}");
        let rss = text.find("| RSS | 8 MiB | PASS |\n").unwrap();
        let row = text.find("| kernel log: a 100 MB syslog file").unwrap();
        assert!(rss < row && row < text.find("\nThe latency target.").unwrap(), "{text}");
        assert_eq!(text.matches("| kernel log: ").count(), 3);
        assert!(text.ends_with("<!-- node-test figures: end -->\n"));
    }

    #[test]
    fn a_second_run_replaces_what_the_first_wrote() {
        let first = klog_into(DOC, &skipped());
        let second = klog_into(&first, &Section::Unavailable("no /dev/kmsg".to_owned()));
        assert_eq!(second.matches("## Kernel log parsing").count(), 1);
        assert_eq!(second.matches(BLOCK_BEGIN).count(), 1);
        assert!(second.contains("Unavailable: no /dev/kmsg.") && !second.contains("Skipped (--no-klog)"), "{second}");
        assert_eq!(second.matches("| kernel log: ").count(), 3);
        assert!(second.contains("| unavailable (see Kernel log parsing) | n/a |"));
        assert_eq!(klog_into(&second, &Section::Unavailable("no /dev/kmsg".to_owned())), second);
    }

    #[test]
    fn without_method_or_targets_the_section_is_appended() {
        assert_eq!(with_block("", "## S\n", ["## Method", "<!--"]), "## S\n");
        assert_eq!(with_block("# B\n\nText.\n", "## S\n", ["## Method", "<!--"]), "# B\n\nText.\n\n## S\n");
        assert_eq!(with_rows("# B\n\nText.\n", "## Targets", "| k", "| k | 1 |\n"), "# B\n\nText.\n");
        assert_eq!(with_rows("## Targets\n\nNo table.\n", "## Targets", "| k", "| k |\n"), "## Targets\n\nNo table.\n");
    }

    #[test]
    fn rows_go_to_the_end_of_the_targets_table_only() {
        let text = "## Targets\n\n| a |\n| k old |\n| b |\n\nNote.\n\n## Results\n\n| k other |\n";
        assert_eq!(
            with_rows(text, "## Targets", "| k", "| k new |\n"),
            "## Targets\n\n| a |\n| b |\n| k new |\n\nNote.\n\n## Results\n\n| k other |\n"
        );
    }
}
