//! Blocks of a generated document that another command owns, between two
//! HTML comment markers (docs/benchmarks.md holds the node test's figures and
//! the kernel log section this way).

/// Where the block between `begin` and `end` is in `text`, both markers included.
pub fn find(text: &str, begin: &str, end: &str) -> Option<(usize, usize)> {
    let start = text.find(begin)?;
    let stop = text[start..].find(end)? + start + end.len();
    Some((start, stop))
}

/// `text` with `block` (its markers `begin`/`end` included) in place of the
/// one already there; where there is none, `block` goes before the first of
/// the `before` markers that `text` holds, or at the end.
pub fn replace_or_insert(text: &str, block: &str, (begin, end): (&str, &str), before: &[&str]) -> String {
    if let Some((start, stop)) = find(text, begin, end) {
        return format!("{}{}{}", &text[..start], block.trim_end_matches('\n'), &text[stop..]);
    }
    match before.iter().filter_map(|marker| text.find(marker)).min() {
        Some(at) => format!("{}{block}\n{}", &text[..at], &text[at..]),
        None => format!("{}\n\n{block}", text.trim_end_matches('\n')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_block_with_its_markers_and_nothing_without_both() {
        let text = "a <!-- b --> x <!-- e --> z";
        assert_eq!(find(text, "<!-- b -->", "<!-- e -->").map(|(s, e)| &text[s..e]), Some("<!-- b --> x <!-- e -->"));
        assert_eq!(find("<!-- e --> <!-- b -->", "<!-- b -->", "<!-- e -->"), None);
        assert_eq!(find("no markers", "<!-- b -->", "<!-- e -->"), None);
    }

    #[test]
    fn a_block_replaces_its_old_self_or_goes_before_the_first_marker_named() {
        let markers = ("<!-- b -->", "<!-- e -->");
        let block = "<!-- b -->\nnew\n<!-- e -->\n";
        let text = "a\n<!-- b -->\nold\n<!-- e -->\nz\n";
        assert_eq!(replace_or_insert(text, block, markers, &[]), "a\n<!-- b -->\nnew\n<!-- e -->\nz\n");
        let text = "a\n<!-- y -->\n<!-- x -->\n";
        assert_eq!(
            replace_or_insert(text, block, markers, &["<!-- x -->", "<!-- y -->"]),
            "a\n<!-- b -->\nnew\n<!-- e -->\n\n<!-- y -->\n<!-- x -->\n"
        );
        assert_eq!(replace_or_insert("a\n", block, markers, &["<!-- x -->"]), "a\n\n<!-- b -->\nnew\n<!-- e -->\n");
    }
}
