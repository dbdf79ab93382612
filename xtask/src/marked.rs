//! Blocks of a generated document that another command owns, between two
//! HTML comment markers (docs/benchmarks.md holds the node test's figures and
//! the kernel log section this way).

/// Where the block between `begin` and `end` is in `text`, both markers included.
pub fn find(text: &str, begin: &str, end: &str) -> Option<(usize, usize)> {
    let start = text.find(begin)?;
    let stop = text[start..].find(end)? + start + end.len();
    Some((start, stop))
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
}
