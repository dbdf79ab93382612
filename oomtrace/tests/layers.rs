//! The `oomtrace` crate's layers (README, "Structure"), checked on its
//! source: a file imports only from its own layer or a lower one, and no
//! files import each other in a circle.
//!
//! Read from the text, not the compiler: every `.rs` under `oomtrace/src`,
//! its `use` items (`crate::`, `super::`, `self::`, a child module's name;
//! `oomtrace::` in main.rs) and the `crate::a::b` paths in its code are
//! resolved to the file that defines what they name. A re-export
//! (`pub use`) is followed to the file it re-exports, and is itself no
//! edge of the circle check; a `mod child;` declaration is no import.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Result, ensure};
use oomtrace_testkit::{
    harness::{self, Need},
    trial,
};

fn main() -> ExitCode {
    harness::main(vec![
        trial!(every_file_imports_only_its_own_layer_or_lower_ones, Need::SourceTree),
        trial!(no_files_import_each_other_in_a_circle, Need::SourceTree),
        trial!(the_reader_resolves_use_trees),
        trial!(the_reader_finds_real_imports, Need::SourceTree),
    ])
}

/// The one table of layers, bottom (0) to top; mirrored in the README's
/// "Structure" section. Keyed by the first module under `src/` (a file
/// `x.rs` or a folder `x/`).
const LAYERS: &[(usize, &[&str])] = &[
    (0, &["kernel", "host", "sched", "config", "escape"]),
    (1, &["probe", "enrich", "filter", "watch"]),
    (2, &["diagnosis", "forecast"]),
    (3, &["klog"]),
    (4, &["pipeline"]),
    (5, &["output", "export"]),
    (6, &["live", "daemon", "history", "diagnose", "check", "whois", "top"]),
    (7, &["cli", "main", "lib"]),
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().find(|(_, modules)| modules.contains(&top)).map(|(layer, _)| *layer)
}

/// One source file: its module path under the crate root and its text.
struct Source {
    /// Relative to `src/`, e.g. `probe/attach.rs`.
    rel: String,
    module: Vec<String>,
    lines: Vec<String>,
}

impl Source {
    fn top(&self) -> &str {
        match self.rel.as_str() {
            "lib.rs" => "lib",
            "main.rs" => "main",
            _ => self.module.first().map_or("lib", String::as_str),
        }
    }
}

/// A `use` leaf or a path in code, made absolute (from the crate root).
struct Import {
    line: usize,
    path: Vec<String>,
    /// Leaf of a `pub use`: a re-export.
    reexport: bool,
    /// The name it is known by in the importing file (for re-exports).
    name: String,
    text: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read_sources() -> Vec<Source> {
    let root = src_dir();
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).expect("under src").to_string_lossy().into_owned();
            let mut module: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                module.pop();
            }
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            Source { rel, module, lines: text.lines().map(str::to_owned).collect() }
        })
        .collect()
}

/// The file that defines module `path`, if any.
fn module_file(files: &BTreeMap<Vec<String>, usize>, path: &[String]) -> Option<usize> {
    files.get(path).copied()
}

/// Splits a use tree (`a::{b, c::d as e}`) into its leaves: (segments, the name bound).
fn use_leaves(tree: &str) -> Vec<(Vec<String>, String)> {
    fn parse(tree: &str, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
        let tree = tree.trim();
        if tree.is_empty() {
            return;
        }
        if let Some(open) = tree.find('{') {
            let head: Vec<String> =
                tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
            let inner = &tree[open + 1..tree.rfind('}').expect("a closing brace")];
            let prefix: Vec<String> = prefix.iter().cloned().chain(head).collect();
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parse(&inner[start..i], &prefix, out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            parse(&inner[start..], &prefix, out);
            return;
        }
        let (path, alias) = match tree.split_once(" as ") {
            Some((path, alias)) => (path, Some(alias.trim())),
            None => (tree, None),
        };
        let mut segments: Vec<String> = prefix.to_vec();
        for segment in path.split("::").map(str::trim) {
            if segment == "self" && !segments.is_empty() {
                continue;
            }
            segments.push(segment.to_owned());
        }
        let name = alias.unwrap_or_else(|| segments.last().map_or("", String::as_str)).to_owned();
        out.push((segments, name));
    }
    let mut out = Vec::new();
    parse(tree, &[], &mut out);
    out
}

/// Makes `segments` absolute from module `module` (`crate`, `super`, `self`,
/// a child module); `None` for another crate.
fn absolute(
    segments: &[String],
    module: &[String],
    in_main: bool,
    files: &BTreeMap<Vec<String>, usize>,
) -> Option<Vec<String>> {
    let first = segments.first()?.as_str();
    match first {
        "crate" if !in_main => Some(segments[1..].to_vec()),
        "oomtrace" if in_main => Some(segments[1..].to_vec()),
        "self" | "super" => {
            let mut base = module.to_vec();
            let mut rest = segments;
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "self" => {}
                    "super" => {
                        base.pop()?;
                    }
                    _ => break,
                }
                rest = &rest[1..];
            }
            Some(base.into_iter().chain(rest.iter().cloned()).collect())
        }
        _ if !in_main => {
            // A child module named directly (`use words::MIB`).
            let child: Vec<String> = module.iter().cloned().chain([first.to_owned()]).collect();
            files.contains_key(&child).then(|| module.iter().cloned().chain(segments.iter().cloned()).collect())
        }
        _ => None,
    }
}

/// The module a line's code is in: the file's, plus the inline `mod x {`
/// blocks open at it (rustfmt closes them with `}` at the same indentation).
fn inline_modules(lines: &[String]) -> Vec<Vec<String>> {
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed == "}" && open.last().is_some_and(|(i, _)| *i == indent) {
            out.push(open.iter().map(|(_, m)| m.clone()).collect());
            open.pop();
            continue;
        }
        let declaration = trimmed.strip_prefix("pub ").unwrap_or(trimmed);
        if let Some(name) = declaration.strip_prefix("mod ").and_then(|rest| rest.strip_suffix(" {")) {
            open.push((indent, name.trim().to_owned()));
        }
        out.push(open.iter().map(|(_, m)| m.clone()).collect());
    }
    out
}

fn imports(source: &Source, files: &BTreeMap<Vec<String>, usize>) -> Vec<Import> {
    let in_main = source.rel == "main.rs";
    let inline = inline_modules(&source.lines);
    let mut out = Vec::new();
    let mut i = 0;
    while i < source.lines.len() {
        let trimmed = source.lines[i].trim();
        let module: Vec<String> = source.module.iter().cloned().chain(inline[i].iter().cloned()).collect();
        if trimmed.starts_with("//") {
            i += 1;
            continue;
        }
        let (reexport, rest) = if let Some(rest) = trimmed.strip_prefix("use ") {
            (false, Some(rest))
        } else if let Some(rest) = trimmed
            .strip_prefix("pub use ")
            .or_else(|| trimmed.strip_prefix("pub(crate) use ").or_else(|| trimmed.strip_prefix("pub(super) use ")))
        {
            (true, Some(rest))
        } else {
            (false, None)
        };
        if let Some(rest) = rest {
            let start = i;
            let mut statement = rest.to_owned();
            while !statement.trim_end().ends_with(';') && i + 1 < source.lines.len() {
                i += 1;
                statement.push(' ');
                statement.push_str(source.lines[i].trim());
            }
            let tree = statement.trim_end().trim_end_matches(';');
            for (segments, name) in use_leaves(tree) {
                if let Some(path) = absolute(&segments, &module, in_main, files) {
                    out.push(Import { line: start + 1, path, reexport, name, text: segments.join("::") });
                }
            }
        } else {
            // `crate::a::b` (or `oomtrace::a::b` in main.rs) in code.
            let prefix = if in_main { "oomtrace::" } else { "crate::" };
            let code = trimmed.split("//").next().unwrap_or_default();
            let mut from = 0;
            while let Some(at) = code[from..].find(prefix).map(|at| from + at) {
                let boundary = at == 0 || !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
                let path: String = code[at..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect::<String>()
                    .trim_end_matches(':')
                    .to_owned();
                from = at + prefix.len();
                if boundary {
                    let segments: Vec<String> = path.split("::").map(str::to_owned).collect();
                    out.push(Import {
                        line: i + 1,
                        path: segments[1..].to_vec(),
                        reexport: false,
                        name: String::new(),
                        text: path.clone(),
                    });
                }
            }
        }
        i += 1;
    }
    out
}

/// The file that defines what `path` names, following re-exports.
fn resolve(
    path: &[String],
    files: &BTreeMap<Vec<String>, usize>,
    reexports: &[BTreeMap<String, Vec<String>>],
) -> usize {
    let mut path = path.to_vec();
    for _ in 0..16 {
        let (file, used) = (0..=path.len())
            .rev()
            .find_map(|n| module_file(files, &path[..n]).map(|file| (file, n)))
            .expect("the crate root always resolves");
        match path.get(used).and_then(|name| reexports[file].get(name)) {
            Some(target) if *target != path => {
                path = target.iter().cloned().chain(path[used + 1..].iter().cloned()).collect();
            }
            _ => return file,
        }
    }
    panic!("re-exports of {} loop", path.join("::"))
}

struct Edge {
    from: usize,
    to: usize,
    line: usize,
    text: String,
    reexport: bool,
}

fn edges(sources: &[Source]) -> Vec<Edge> {
    // Main's modules are the library's (it has none of its own).
    let files: BTreeMap<Vec<String>, usize> = sources
        .iter()
        .enumerate()
        .filter(|(_, s)| s.rel != "main.rs")
        .map(|(index, s)| (s.module.clone(), index))
        .collect();
    let all: Vec<Vec<Import>> = sources.iter().map(|s| imports(s, &files)).collect();
    let reexports: Vec<BTreeMap<String, Vec<String>>> = all
        .iter()
        .map(|imports| {
            imports.iter().filter(|i| i.reexport && i.name != "*").map(|i| (i.name.clone(), i.path.clone())).collect()
        })
        .collect();
    let mut out = Vec::new();
    for (from, imports) in all.iter().enumerate() {
        for import in imports {
            let to = resolve(&import.path, &files, &reexports);
            if to != from {
                out.push(Edge { from, to, line: import.line, text: import.text.clone(), reexport: import.reexport });
            }
        }
    }
    out
}

fn every_file_imports_only_its_own_layer_or_lower_ones() -> Result<()> {
    let sources = read_sources();
    let mut problems = Vec::new();
    for source in &sources {
        if layer_of(source.top()).is_none() {
            problems.push(format!(
                "src/{}: module `{}` has no layer: add it to LAYERS in oomtrace/tests/layers.rs and to the \
                 README's \"Structure\"",
                source.rel,
                source.top()
            ));
        }
    }
    for edge in edges(&sources) {
        let (from, to) = (&sources[edge.from], &sources[edge.to]);
        let (Some(from_layer), Some(to_layer)) = (layer_of(from.top()), layer_of(to.top())) else { continue };
        if to_layer > from_layer {
            problems.push(format!(
                "src/{}:{}: `{}` (layer {from_layer}, {}) imports `{}` from src/{} (layer {to_layer}, {})",
                from.rel,
                edge.line,
                from.top(),
                LAYERS[from_layer].1.join(" "),
                edge.text,
                to.rel,
                LAYERS[to_layer].1.join(" "),
            ));
        }
    }
    ensure!(
        problems.is_empty(),
        "{} import(s) against the layers (a file imports only from its own layer or a lower one; move the \
         shared code down, or the importing code up):\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

fn no_files_import_each_other_in_a_circle() -> Result<()> {
    let sources = read_sources();
    let mut graph: BTreeMap<usize, BTreeMap<usize, (usize, String)>> = BTreeMap::new();
    for edge in edges(&sources).into_iter().filter(|e| !e.reexport) {
        graph.entry(edge.from).or_default().entry(edge.to).or_insert((edge.line, edge.text));
    }
    let circles = circles(sources.len(), &graph);
    let described: Vec<String> = circles
        .iter()
        .map(|(circle, tangle)| {
            let mut text = format!("src/{}", sources[circle[0]].rel);
            for pair in circle.windows(2) {
                let (line, what) = &graph[&pair[0]][&pair[1]];
                text.push_str(&format!(" -(line {line}: {what})-> src/{}", sources[pair[1]].rel));
            }
            if tangle.len() > circle.len() - 1 {
                let files: Vec<String> = tangle.iter().map(|&f| format!("src/{}", sources[f].rel)).collect();
                text.push_str(&format!("\n  (one of the circles among {})", files.join(", ")));
            }
            text
        })
        .collect();
    ensure!(
        circles.is_empty(),
        "{} circle(s) of imports between files (a file cannot be read before the ones it imports; move what \
         both need into one of them or below both):\n{}",
        circles.len(),
        described.join("\n")
    );
    Ok(())
}

/// One circle (first file repeated at the end) per strongly connected
/// component of more than one file (Tarjan), with the component's files.
fn circles(n: usize, graph: &BTreeMap<usize, BTreeMap<usize, (usize, String)>>) -> Vec<(Vec<usize>, BTreeSet<usize>)> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<usize, BTreeMap<usize, (usize, String)>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        components: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            let targets: Vec<usize> = self.graph.get(&v).map(|t| t.keys().copied().collect()).unwrap_or_default();
            for w in targets {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.components.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in 0..n {
        if tarjan.index[v].is_none() {
            tarjan.visit(v);
        }
    }
    tarjan
        .components
        .iter()
        .map(|component| {
            // The shortest way back to the component's first file (breadth first inside it).
            let members: BTreeSet<usize> = component.iter().copied().collect();
            let start = *members.iter().next().expect("a member");
            let mut previous: BTreeMap<usize, usize> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            while let Some(v) = queue.pop_front() {
                for &w in graph.get(&v).map(|t| t.keys().collect::<Vec<_>>()).unwrap_or_default() {
                    if !members.contains(&w) || previous.contains_key(&w) {
                        continue;
                    }
                    previous.insert(w, v);
                    if w == start {
                        queue.clear();
                        break;
                    }
                    queue.push_back(w);
                }
            }
            let mut circle = vec![start];
            let mut at = previous[&start];
            while at != start {
                circle.push(at);
                at = previous[&at];
            }
            circle.push(start);
            let last = circle.len() - 1;
            circle[1..last].reverse();
            (circle, members)
        })
        .collect()
}

fn the_reader_resolves_use_trees() -> Result<()> {
    let leaves = use_leaves("super::{self, a::{b, c as d}, e::*}");
    let paths: Vec<(String, String)> = leaves.into_iter().map(|(p, n)| (p.join("::"), n)).collect();
    assert_eq!(
        paths,
        [
            ("super".to_owned(), "super".to_owned()),
            ("super::a::b".to_owned(), "b".to_owned()),
            ("super::a::c".to_owned(), "d".to_owned()),
            ("super::e::*".to_owned(), "*".to_owned()),
        ]
    );
    Ok(())
}

fn the_reader_finds_real_imports() -> Result<()> {
    let sources = read_sources();
    let file = |rel: &str| sources.iter().position(|s| s.rel == rel).unwrap_or_else(|| panic!("no src/{rel}"));
    let edges = edges(&sources);
    let has = |from: &str, to: &str| edges.iter().any(|e| e.from == file(from) && e.to == file(to));
    // `use crate::kernel::KernelFacts`.
    assert!(has("probe/attach.rs", "kernel/mod.rs"));
    // `use super::{Attached, ...}`, re-exported by probe/mod.rs from method.rs.
    assert!(has("probe/attach.rs", "probe/method.rs"));
    assert!(!has("probe/attach.rs", "probe/mod.rs"));
    // `oomtrace::` paths in the binary.
    assert!(has("main.rs", "cli.rs"));
    Ok(())
}
