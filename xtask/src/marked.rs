//! Blocks of a generated document that another command owns, between two
//! HTML comment markers (docs/benchmarks.md holds the node test's figures and
//! the kernel log section this way).

/// Where the block between `begin` and `end` is in `text`, both markers included.
pub fn find(text: &str, begin: &str, end: &str) -> Option<(usize, usize)> {
    let start = text.find(begin)?;
    let stop = text[start..].find(end)? + start + end.len();
    Some((start, stop))
}

/// The block between `begin` and `end` in `text`, both markers included.
pub fn block<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    find(text, begin, end).map(|(start, stop)| &text[start..stop])
}

/// `text` with `block` (markers included) in place of its block between
/// `begin` and `end`; where it has none, before `before`, or at the end.
pub fn with_block(text: &str, begin: &str, end: &str, block: &str, before: &str) -> String {
    if let Some((start, stop)) = find(text, begin, end) {
        return format!("{}{}{}", &text[..start], block.trim_end_matches('\n'), &text[stop..]);
    }
    match text.find(before) {
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
}
