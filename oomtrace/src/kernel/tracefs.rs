//! tracefs: where it is mounted and what a tracepoint's `format` file says.

use std::path::{Path, PathBuf};

use super::hooks::Tracepoint;

/// Where tracefs is looked for, in order.
const TRACEFS_CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted (looked in {candidates}); mount it with \
         `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    NotMounted { candidates: String },
    #[error("tracepoint {category}/{name} does not exist on this kernel ({path} is missing)")]
    NoTracepoint { category: String, name: String, path: String },
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
}

/// One field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointField {
    pub name: String,
    /// The C declaration, e.g. `__data_loc char[] comm` or `unsigned long total_vm`.
    pub declaration: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// Finds the mounted tracefs.
pub fn locate() -> Result<PathBuf, TracefsError> {
    TRACEFS_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("events").is_dir())
        .ok_or_else(|| TracefsError::NotMounted { candidates: TRACEFS_CANDIDATES.join(", ") })
}

/// Reads and parses `<tracefs>/events/<category>/<name>/format`.
pub fn read_format(tracefs: &Path, tracepoint: Tracepoint) -> Result<Vec<TracepointField>, TracefsError> {
    let (category, name) = (tracepoint.category(), tracepoint.event());
    let dir = tracefs.join("events").join(category).join(name);
    if !dir.is_dir() {
        return Err(TracefsError::NoTracepoint {
            category: category.to_owned(),
            name: name.to_owned(),
            path: dir.display().to_string(),
        });
    }
    let path = dir.join("format");
    let text = std::fs::read_to_string(&path)
        .map_err(|source| TracefsError::Read { path: path.display().to_string(), cause: source })?;
    Ok(parse_format(&text))
}

/// Parses the body of a tracepoint `format` file. Lines that are not field
/// descriptions (name, ID, print fmt) are skipped, as are malformed fields.
pub fn parse_format(text: &str) -> Vec<TracepointField> {
    text.lines().filter_map(parse_field_line).collect()
}

fn parse_field_line(line: &str) -> Option<TracepointField> {
    let rest = line.trim().strip_prefix("field:")?;
    let mut parts = rest.split(';').map(str::trim);
    let declaration = parts.next()?.to_owned();
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in parts {
        if let Some(v) = part.strip_prefix("offset:") {
            offset = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = v == "1";
        }
    }
    let last = declaration.split_whitespace().last()?;
    let name = last.split('[').next()?.to_owned();
    if name.is_empty() {
        return None;
    }
    Some(TracepointField { name, declaration, offset: offset?, size: size?, signed })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of every `oom/mark_victim` format: name, id, the common
    /// fields and `pid`.
    macro_rules! mark_victim_head {
        ($id:literal) => {
            concat!(
                "name: mark_victim
ID: ",
                $id,
                "
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
"
            )
        };
    }

    /// `oom/mark_victim` before 6.9 (and on unpatched 5.10/5.15/6.1 point releases).
    const PID_ONLY: &str = concat!(
        mark_victim_head!("517"),
        "
print fmt: \"pid=%d\", REC->pid
"
    );

    /// `oom/mark_victim` since 6.9, as this machine's 6.18 kernel prints it.
    const FULL: &str = concat!(
        mark_victim_head!("565"),
        "\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long file_rss;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long shmem_rss;\toffset:40;\tsize:8;\tsigned:0;
\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;
\tfield:unsigned long pgtables;\toffset:56;\tsize:8;\tsigned:0;
\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;

print fmt: \"pid=%d comm=%s\", REC->pid, __get_str(comm)
"
    );

    fn names(fields: &[TracepointField]) -> Vec<&str> {
        fields.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn parses_the_pid_only_format() {
        let fields = parse_format(PID_ONLY);
        assert_eq!(names(&fields), ["common_type", "common_flags", "common_preempt_count", "common_pid", "pid"]);
        let pid = &fields[4];
        assert_eq!((pid.offset, pid.size, pid.signed), (8, 4, true));
    }

    #[test]
    fn parses_the_full_format() {
        let fields = parse_format(FULL);
        let find = |n: &str| fields.iter().find(|f| f.name == n).expect(n);
        assert_eq!(find("comm").declaration, "__data_loc char[] comm");
        assert_eq!((find("comm").offset, find("comm").size), (12, 4));
        assert_eq!((find("pgtables").offset, find("pgtables").size), (56, 8));
        assert_eq!((find("oom_score_adj").offset, find("oom_score_adj").size), (64, 2));
        assert!(find("oom_score_adj").signed);
    }

    #[test]
    fn skips_malformed_lines() {
        let fields = parse_format("\tfield:int pid;\toffset:x;\tsize:4;\n\tfield:;\toffset:1;\tsize:1;\n");
        assert!(fields.is_empty());
    }
}
