//! The docs that show an event, checked against a real one: the JSON example
//! of a kill in README.md and docs/events.md (between marker comments), and
//! the field tables of docs/events.md.
//!
//! Values differ from run to run (pids, times, ids), so the example is
//! compared by its shape: the set of field paths and the kind of value at
//! each (string, number, bool, array, object). `OOMTRACE_BLESS_DOCS=1`
//! rewrites the example in full from the real event.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::PathBuf,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Set to 1 to write the real event into the docs instead of comparing.
pub const BLESS: &str = "OOMTRACE_BLESS_DOCS";
const BEGIN: &str = "<!-- example-event: begin";
const END: &str = "<!-- example-event: end -->";

/// The files that show the example, relative to the workspace, and the
/// top-level fields each leaves out (none: a live kill is short, its
/// kernel report follows it in a record of its own).
pub const EXAMPLE_FILES: [(&str, &[&str]); 2] = [("README.md", &[]), ("docs/events.md", &[])];

/// Objects whose keys are data, not fields (the kernel's names, which differ
/// between cgroup v1 and v2): their shape is "object".
const MAPS: [&str; 1] = ["kernel_report.memory_stat"];

pub fn workspace_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// Field path (arrays as `[]`) -> the kinds of value found there.
pub type Shape = BTreeMap<String, BTreeSet<&'static str>>;

pub fn shape(value: &Value) -> Shape {
    fn walk(value: &Value, path: &str, out: &mut Shape) {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(items) => {
                out.entry(path.to_owned()).or_default().insert("array");
                for item in items {
                    walk(item, &format!("{path}[]"), out);
                }
                return;
            }
            Value::Object(fields) => {
                if !path.is_empty() {
                    out.entry(path.to_owned()).or_default().insert("object");
                }
                if MAPS.contains(&path) {
                    return;
                }
                for (key, field) in fields {
                    let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    walk(field, &child, out);
                }
                return;
            }
        };
        out.entry(path.to_owned()).or_default().insert(kind);
    }
    let mut out = Shape::new();
    walk(value, "", &mut out);
    out
}

/// What differs between the example's shape and the real event's, one line
/// each; empty when they agree.
pub fn shape_differences(example: &Shape, real: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    for (path, kinds) in real {
        match example.get(path) {
            None => out.push(format!("`{path}` ({}) is in the real event, not in the example", join(kinds))),
            Some(documented) if documented != kinds => {
                out.push(format!("`{path}` is {} in the example, {} in the real event", join(documented), join(kinds)))
            }
            Some(_) => {}
        }
    }
    for (path, kinds) in example {
        if !real.contains_key(path) {
            out.push(format!("`{path}` ({}) is in the example, not in the real event", join(kinds)));
        }
    }
    out
}

fn join(kinds: &BTreeSet<&str>) -> String {
    kinds.iter().copied().collect::<Vec<_>>().join("|")
}

/// The JSON between the markers of `text`, and the byte range it spans (the
/// lines between the markers, fence included).
fn example_in(text: &str) -> Result<(Value, std::ops::Range<usize>)> {
    let begin = text.find(BEGIN).context("no `<!-- example-event: begin` marker")?;
    let start = begin + text[begin..].find('\n').context("the begin marker ends the file")? + 1;
    let end = start + text[start..].find(END).context("no `<!-- example-event: end -->` marker")?;
    let block = &text[start..end];
    let json = block
        .trim()
        .strip_prefix("```json")
        .and_then(|b| b.strip_suffix("```"))
        .context("the example is not one ```json block")?;
    let value = serde_json::from_str(json).context("the example is not valid JSON")?;
    Ok((value, start..end))
}

/// The example as committed in `relative`.
pub fn committed_example(relative: &str) -> Result<Value> {
    let path = workspace_file(relative);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    example_in(&text).map(|(value, _)| value).with_context(|| format!("the example event in {relative}"))
}

/// Writes `event` (a compact JSON line), pretty-printed, as the example in `relative`.
pub fn bless(relative: &str, event: &str) -> Result<()> {
    let path = workspace_file(relative);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (_, range) = example_in(&text).with_context(|| format!("the example event in {relative}"))?;
    let block = format!("```json\n{}\n```\n", pretty(event));
    let text = format!("{}{block}{}", &text[..range.start], &text[range.end..]);
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// The event line without the top-level fields in `left_out`, in the order
/// oomtrace wrote them (serde_json's `Value` would sort them).
fn without(line: &str, left_out: &[&str]) -> String {
    let kept: Vec<String> = members(line)
        .into_iter()
        .filter(|(key, _)| !left_out.contains(&key.as_str()))
        .map(|(key, value)| format!("{}:{value}", serde_json::Value::from(key)))
        .collect();
    format!("{{{}}}", kept.join(","))
}

/// The end (exclusive) of the JSON value or string starting at `start`.
fn value_end(text: &[u8], start: usize) -> usize {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, &byte) in text.iter().enumerate().skip(start) {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return at + 1;
                    }
                }
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            b',' | b'}' | b']' if depth == 0 => return at,
            _ => {}
        }
    }
    text.len()
}

/// The members of the compact JSON object `line`: (key, its value's text).
fn members(line: &str) -> Vec<(String, &str)> {
    let text = line.trim().as_bytes();
    let mut out = Vec::new();
    let mut at = 1;
    while at < text.len() && text[at] == b'"' {
        let key_end = value_end(text, at);
        let key: String = serde_json::from_str(&line.trim()[at..key_end]).unwrap_or_default();
        let value_start = key_end + 1;
        let end = value_end(text, value_start);
        out.push((key, &line.trim()[value_start..end]));
        at = end + 1;
    }
    out
}

/// Compact JSON pretty-printed as serde_json does (two spaces), keeping the
/// order of the fields.
fn pretty(compact: &str) -> String {
    let mut out = String::new();
    let (mut indent, mut in_string, mut escaped) = (0usize, false, false);
    let bytes = compact.as_bytes();
    let newline = |out: &mut String, indent: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(indent));
    };
    for (at, c) in compact.char_indices() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' if matches!(bytes.get(at + 1), Some(b'}' | b']')) => out.push(c),
            '{' | '[' => {
                out.push(c);
                indent += 1;
                newline(&mut out, indent);
            }
            '}' | ']' if matches!(bytes.get(at.wrapping_sub(1)), Some(b'{' | b'[')) => out.push(c),
            '}' | ']' => {
                indent -= 1;
                newline(&mut out, indent);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, indent);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

/// The formatting helpers agree with serde_json (checked without root).
pub fn check_formatting() -> Result<()> {
    let line = r#"{"a":1,"b":{"c":"x,\"}{","d":[]},"e":[{"f":true},2],"g":{}}"#;
    let value: Value = serde_json::from_str(line)?;
    anyhow::ensure!(pretty(line) == serde_json::to_string_pretty(&value)?, "pretty:\n{}", pretty(line));
    anyhow::ensure!(without(line, &["b", "g"]) == r#"{"a":1,"e":[{"f":true},2]}"#, "{}", without(line, &["b", "g"]));
    Ok(())
}

/// Compares (or with [`BLESS`], rewrites) every example with the event
/// `line` (as oomtrace printed it).
pub fn check_examples(line: &str) -> Result<()> {
    let event: Value = serde_json::from_str(line).context("the event line")?;
    if std::env::var(BLESS).is_ok_and(|v| v == "1") {
        for (file, left_out) in EXAMPLE_FILES {
            bless(file, &without(line, left_out))?;
            eprintln!("{BLESS}=1: wrote the example event into {file}");
        }
        return Ok(());
    }
    let mut problems = Vec::new();
    for (file, left_out) in EXAMPLE_FILES {
        let example = shape(&committed_example(file)?);
        let real: Value = serde_json::from_str(&without(line, left_out)).context("the event without some fields")?;
        let real = shape(&real);
        problems.extend(shape_differences(&example, &real).into_iter().map(|d| format!("{file}: {d}")));
    }
    if !problems.is_empty() {
        bail!(
            "the example event in the docs no longer has the shape of a real one:\n{}\nIf the change is \
             intended, rewrite the examples from a real kill: {BLESS}=1 cargo test -p oomtrace --test live_oom \
             -- docs_show_a_real_kill (as root), and review the diff.\nThe real event:\n{}",
            problems.join("\n"),
            serde_json::to_string_pretty(&event)?
        );
    }
    Ok(())
}

/// The fields the tables of docs/events.md's "Fields" section document, as
/// paths without `[]`: `victim.anon_rss_kb`, `file_rss_kb` documents
/// `victim.file_rss_kb`; `oom_cgroup.id`, `.path` documents `oom_cgroup.path`.
pub fn documented_fields(events_md: &str) -> BTreeSet<String> {
    documented_fields_in(events_md, "Fields")
}

/// [`documented_fields`] of the section headed `heading` (`Warning records`).
pub fn documented_fields_in(events_md: &str, heading: &str) -> BTreeSet<String> {
    let section = events_md.split("\n## ").find(|s| s.starts_with(heading)).unwrap_or_default();
    let mut out = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.trim_start_matches('|').split(" | ").next().unwrap_or_default();
        let mut parent = String::new();
        for (i, name) in cell.split(',').map(|n| n.trim().trim_matches('`').replace("[]", "")).enumerate() {
            let full = if i == 0 {
                name.clone()
            } else if let Some(sibling) = name.strip_prefix('.') {
                format!("{parent}.{sibling}")
            } else if name.contains('.') || parent.is_empty() {
                name.clone()
            } else {
                format!("{parent}.{name}")
            };
            parent = full.rsplit_once('.').map(|(p, _)| p.to_owned()).unwrap_or_default();
            out.insert(full);
        }
    }
    out
}

/// The fields of `event` that docs/events.md does not document: a field is
/// documented when its path, or the path of an object or array it is in,
/// has a row (`diagnosis.findings[]` documents every finding's fields).
pub fn undocumented_fields(event: &Value, documented: &BTreeSet<String>) -> Vec<String> {
    shape(event)
        .into_iter()
        // An object is documented by its fields.
        .filter(|(_, kinds)| !kinds.iter().all(|k| *k == "object"))
        .map(|(path, _)| path.replace("[]", ""))
        .filter(|path| {
            let mut at = path.as_str();
            loop {
                if documented.contains(at) {
                    return false;
                }
                match at.rsplit_once('.') {
                    Some((parent, _)) => at = parent,
                    None => return true,
                }
            }
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Every field of `event` has a row in docs/events.md.
pub fn check_fields_documented(event: &Value) -> Result<()> {
    check_fields_documented_in(event, "Fields")
}

/// Every field of `record` has a row in docs/events.md's section `heading`.
pub fn check_fields_documented_in(record: &Value, heading: &str) -> Result<()> {
    let event = record;
    let path = workspace_file("docs/events.md");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let missing = undocumented_fields(event, &documented_fields_in(&text, heading));
    if !missing.is_empty() {
        bail!(
            "docs/events.md's \"{heading}\" table lacks {} field(s) a real record has: {}; add a row for each \
             (what it means, when it is present).\nThe real record:\n{}",
            missing.len(),
            missing.join(", "),
            serde_json::to_string_pretty(event)?
        );
    }
    Ok(())
}
