//! The Prometheus text exposition format (the daemon's /metrics), read back.

use std::collections::BTreeMap;

/// Samples of a Prometheus text exposition (e.g. the daemon's /metrics):
/// `(name, labels, value)`, comments skipped.
pub fn parse_exposition(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut key = String::new();
            let mut end = inner.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        // a quoted value with \\, \" and \n escapes
                        let mut value = String::new();
                        chars.next(); // opening quote
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(other) => value.push(other),
                                    None => {}
                                },
                                '"' => break,
                                _ => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    _ => key.push(c),
                }
            }
            rest = &inner[end.min(inner.len())..];
        }
        let Some(value) = rest.split_whitespace().next() else { continue };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        out.push((name, labels, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_and_values() {
        let text = "# HELP x y\nfoo_total{a=\"b\\\"c\",d=\"e\"} 3\nbar 1.5\n# EOF\n";
        let samples = parse_exposition(text);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].1["a"], "b\"c");
        assert_eq!(samples[0].2, 3.0);
    }
}
