//! The task table of a report (`dump_tasks` in mm/oom_kill.c): one row per task of the OOMing
//! memcg (or of the whole machine), in pages. Its columns changed over the years, so rows are
//! read by the header's column names:
//! - 2.6.32: `[ pid ]   uid  tgid total_vm      rss cpu oom_adj oom_score_adj name`
//! - 3.10: `[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name`
//! - 4.1 – 4.18: `[ pid ]   uid  tgid total_vm      rss nr_ptes nr_pmds swapents oom_score_adj name`
//! - 4.19 – 6.x: `Tasks state (memory values in pages):` then
//!   `[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name`
//! - 6.9+: `… rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name`
//!
//! Rows: `"[%7d] %5d %5d %8lu %8lu %8lu %8lu %9lu %8lu %8ld %5hd %s\n"` and its older shapes.

use serde::Serialize;

use super::text;

/// One row of the task table. Sizes are in pages as the kernel prints them; a column the
/// kernel's table did not have is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TaskRow {
    /// Thread-group leader's pid as printed in `[ pid ]`.
    pub pid: u32,
    /// The task's uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Thread group id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgid: Option<u32>,
    /// Virtual size, pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_vm_pages: Option<u64>,
    /// Resident set size, pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_pages: Option<u64>,
    /// Anonymous resident pages (6.9+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_anon_pages: Option<u64>,
    /// File-backed resident pages (6.9+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_file_pages: Option<u64>,
    /// Shared-memory resident pages (6.9+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_shmem_pages: Option<u64>,
    /// Page-table bytes (4.19+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgtables_bytes: Option<u64>,
    /// Page-table pages (3.10 – 4.18).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nr_ptes: Option<u64>,
    /// Swap entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swapents: Option<u64>,
    /// The task's oom_score_adj.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The task's comm (may contain spaces).
    pub name: String,
}

/// The columns of a task table, from its header line, the last being `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskColumns {
    numeric: Vec<Column>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Uid,
    Tgid,
    TotalVm,
    Rss,
    RssAnon,
    RssFile,
    RssShmem,
    PgtablesBytes,
    NrPtes,
    Swapents,
    OomScoreAdj,
    /// A numeric column this parser does not keep (`nr_pmds`, `cpu`, `oom_adj`, a future one).
    Other,
}

/// The line 4.19+ print before the table header.
pub(crate) fn is_tasks_state(line: &str) -> bool {
    line.starts_with("Tasks state (memory values in pages)")
}

/// Parses the table header (`[  pid  ]   uid  tgid total_vm …  name`); `None` when it is not one.
pub(crate) fn parse_columns(line: &str) -> Option<TaskColumns> {
    let rest = line.strip_prefix('[')?;
    let (pid, rest) = rest.split_once(']')?;
    if pid.trim() != "pid" {
        return None;
    }
    let names: Vec<&str> = rest.split_whitespace().collect();
    let (last, numeric) = names.split_last()?;
    if *last != "name" {
        return None;
    }
    let numeric = numeric
        .iter()
        .map(|name| match *name {
            "uid" => Column::Uid,
            "tgid" => Column::Tgid,
            "total_vm" => Column::TotalVm,
            "rss" => Column::Rss,
            "rss_anon" => Column::RssAnon,
            "rss_file" => Column::RssFile,
            "rss_shmem" => Column::RssShmem,
            "pgtables_bytes" => Column::PgtablesBytes,
            "nr_ptes" => Column::NrPtes,
            "swapents" => Column::Swapents,
            "oom_score_adj" => Column::OomScoreAdj,
            _ => Column::Other,
        })
        .collect();
    Some(TaskColumns { numeric })
}

/// Whether the line looks like a task-table row (`[ 1234]` …).
pub(crate) fn is_row(line: &str) -> bool {
    line.strip_prefix('[').and_then(|rest| rest.split_once(']')).is_some_and(|(pid, _)| text::unsigned(pid).is_some())
}

/// Parses one row by the table's columns; `None` when the line is not a row of this table.
pub(crate) fn parse_row(line: &str, columns: &TaskColumns) -> Option<TaskRow> {
    let rest = line.strip_prefix('[')?;
    let (pid, mut rest) = rest.split_once(']')?;
    let mut row = TaskRow { pid: text::unsigned_u32(pid)?, ..TaskRow::default() };
    for column in &columns.numeric {
        let trimmed = rest.trim_start();
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (token, after) = trimmed.split_at(end);
        let value = text::signed(token)?;
        let unsigned = u64::try_from(value).ok();
        match column {
            Column::Uid => row.uid = u32::try_from(value).ok(),
            Column::Tgid => row.tgid = u32::try_from(value).ok(),
            Column::TotalVm => row.total_vm_pages = unsigned,
            Column::Rss => row.rss_pages = unsigned,
            Column::RssAnon => row.rss_anon_pages = unsigned,
            Column::RssFile => row.rss_file_pages = unsigned,
            Column::RssShmem => row.rss_shmem_pages = unsigned,
            Column::PgtablesBytes => row.pgtables_bytes = unsigned,
            Column::NrPtes => row.nr_ptes = unsigned,
            Column::Swapents => row.swapents = unsigned,
            Column::OomScoreAdj => row.oom_score_adj = i32::try_from(value).ok(),
            Column::Other => {}
        }
        rest = after;
    }
    // `%s` after one space: a comm may itself start with or contain spaces.
    row.name = rest.strip_prefix(' ').unwrap_or(rest).trim_end().to_owned();
    if row.name.is_empty() {
        return None;
    }
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(header: &str, line: &str) -> Option<TaskRow> {
        parse_row(line, &parse_columns(header).expect("header"))
    }

    #[test]
    fn rows_of_every_layout() {
        let six_nine = "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name";
        let got = row(
            six_nine,
            "[  12589]     0 12589    66280    20840    20416      424         0   212992        0             0 dd",
        );
        assert_eq!(
            got,
            Some(TaskRow {
                pid: 12589,
                uid: Some(0),
                tgid: Some(12589),
                total_vm_pages: Some(66280),
                rss_pages: Some(20840),
                rss_anon_pages: Some(20416),
                rss_file_pages: Some(424),
                rss_shmem_pages: Some(0),
                pgtables_bytes: Some(212992),
                nr_ptes: None,
                swapents: Some(0),
                oom_score_adj: Some(0),
                name: "dd".into(),
            })
        );
        let four_nineteen = "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name";
        let got =
            row(four_nineteen, "[   1234]  1000  1234   123456    65432   520192        0          -998 Web Content")
                .expect("4.19 row");
        assert_eq!((got.rss_pages, got.oom_score_adj, got.name.as_str()), (Some(65432), Some(-998), "Web Content"));
        let three_ten = "[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name";
        let got =
            row(three_ten, "[  715]     0   715     9204      602      21        0             0 systemd-journal")
                .expect("3.10 row");
        assert_eq!((got.nr_ptes, got.pgtables_bytes, got.name.as_str()), (Some(21), None, "systemd-journal"));
        let four_x = "[ pid ]   uid  tgid total_vm      rss nr_ptes nr_pmds swapents oom_score_adj name";
        let got =
            row(four_x, "[28600]   995 28600     2426      295      10       3        0          1000 apps.plugin")
                .expect("4.x row");
        assert_eq!((got.pid, got.swapents, got.oom_score_adj), (28600, Some(0), Some(1000)));
        let rhel6 = "[ pid ]   uid  tgid total_vm      rss cpu oom_adj oom_score_adj name";
        let got = row(rhel6, "[ 2592]    27  2592  1955933   634817   1       0             0 mysqld").expect("2.6.32");
        assert_eq!((got.rss_pages, got.name.as_str()), (Some(634817), "mysqld"));
    }

    #[test]
    fn not_rows() {
        let header = "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name";
        assert_eq!(row(header, "[  123]     0   123"), None);
        assert_eq!(row(header, "[  123]     0   123 x 1 2 3 4 name"), None);
        assert_eq!(row(header, "[ 20275.607951] dd"), None);
        assert_eq!(parse_columns("[  pid  ]   uid  tgid"), None);
        assert_eq!(parse_columns("[ 1.2 ] name"), None);
        assert!(is_row("[  123]     0"));
        assert!(!is_row("[  pid  ]"));
    }
}
