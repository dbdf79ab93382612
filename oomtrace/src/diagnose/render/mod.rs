//! The report for a person (`table`: a terminal at 3 a.m., 100 columns), an
//! incident ticket (`markdown`) or a pipeline (`json`), and the phrases the
//! first two share.

pub mod json;
pub mod markdown;
pub mod table;

use std::time::Duration;

use super::{
    evictions::{KubeletLog, NoKillNote},
    group::{GroupFinding, KillGroup, VictimKill},
    node_memory::NodeMemory,
    report::Report,
};
use crate::{
    escape::{escape, escape_controls},
    output::table::bytes,
};
use oomtrace_event::Advice;

/// An output format of `oomtrace diagnose`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Readable in a 100-column terminal.
    #[default]
    Table,
    /// One JSON document (docs/diagnose.md).
    Json,
    /// For an incident ticket: headings, a table of workloads, commands in code blocks.
    Markdown,
}

/// The whole report in `format`, ending with a newline. The table and the
/// markdown show its names escaped (`escape`); the JSON holds them raw.
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Table => table::render(&for_people(report)),
        ReportFormat::Json => json::render(report),
        ReportFormat::Markdown => markdown::render(&for_people(report)),
    }
}

/// The report with every text from outside escaped: names with [`escape`],
/// oomtrace's sentences that hold names with [`escape_controls`]. The report,
/// each group and the eviction note are taken apart field by field, so that a
/// new field of theirs must be placed here.
fn for_people(report: &Report) -> Report {
    let name = |text: &String| escape(text).into_owned();
    let names = |texts: &Vec<String>| texts.iter().map(name).collect();
    let sentence = |text: &String| escape_controls(text).into_owned();
    let advice = |steps: &Vec<Advice>| -> Vec<Advice> {
        steps
            .iter()
            .map(|step| Advice {
                action: step.action,
                text: sentence(&step.text),
                command: step.command.as_ref().map(sentence),
            })
            .collect()
    };
    let Report { version, generated_at, node, since, kernel_log, kills, groups, groups_left_out, node_memory, no_kill } =
        report;
    let groups = groups
        .iter()
        .map(|group| {
            let KillGroup {
                key,
                kind,
                namespace,
                pod,
                container,
                unit,
                cgroup,
                kills,
                first_kill,
                last_kill,
                causes,
                victims,
                victims_left_out,
                findings,
                summary,
                advice: steps,
            } = group;
            let victims = victims
                .iter()
                .map(|victim| VictimKill {
                    comm: victim.comm.as_ref().map(name),
                    oom_cgroup: victim.oom_cgroup.as_ref().map(name),
                    ..victim.clone()
                })
                .collect();
            KillGroup {
                key: name(key),
                kind: *kind,
                namespace: namespace.as_ref().map(name),
                pod: pod.as_ref().map(name),
                container: container.as_ref().map(name),
                unit: unit.as_ref().map(name),
                cgroup: cgroup.as_ref().map(name),
                kills: *kills,
                first_kill: first_kill.clone(),
                last_kill: last_kill.clone(),
                causes: causes.clone(),
                victims,
                victims_left_out: *victims_left_out,
                findings: findings.clone(),
                summary: sentence(summary),
                advice: advice(steps),
            }
        })
        .collect();
    let mut node_memory = node_memory.clone();
    if let Some(kubepods) = &mut node_memory.kubepods {
        kubepods.cgroup = name(&kubepods.cgroup);
    }
    node_memory.notes = node_memory.notes.iter().map(sentence).collect();
    let no_kill = no_kill.as_ref().map(|note| {
        let NoKillNote { note, commands, kubelet_log } = note;
        let KubeletLog { status, detail, evicted_pods, lines } = kubelet_log;
        NoKillNote {
            note: sentence(note),
            commands: advice(commands),
            kubelet_log: KubeletLog {
                status,
                detail: sentence(detail),
                evicted_pods: names(evicted_pods),
                lines: names(lines),
            },
        }
    });
    Report {
        version: *version,
        generated_at: generated_at.clone(),
        node: name(node),
        since: since.clone(),
        kernel_log: super::report::KernelLogSummary {
            reconciliation: sentence(&kernel_log.reconciliation),
            ..kernel_log.clone()
        },
        kills: *kills,
        groups,
        groups_left_out: groups_left_out.clone(),
        node_memory,
        no_kill,
    }
}

/// "2026-11-29T10:00:00.123456Z" -> "2026-11-29 10:00:00" (UTC).
pub fn short_time(time: &str) -> String {
    match (time.get(..10), time.get(11..19)) {
        (Some(day), Some(clock)) => format!("{day} {clock}"),
        _ => time.to_owned(),
    }
}

/// "since boot" or "since 2026-11-29 10:00:00 UTC".
pub fn window(report: &Report) -> String {
    match &report.since {
        Some(since) => format!("since {} UTC", short_time(since)),
        None => "since boot (the whole log)".to_owned(),
    }
}

/// "cgroup_limit", or "container_limit, pod_limit".
pub fn causes(group: &KillGroup) -> String {
    match group.causes.as_slice() {
        [] => "unknown".to_owned(),
        causes => causes.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
    }
}

/// "first … last" of a group's kills.
pub fn kill_span(group: &KillGroup) -> String {
    match (&group.first_kill, &group.last_kill) {
        (Some(first), Some(last)) if first == last => format!("at {} UTC", short_time(first)),
        (Some(first), Some(last)) => format!("{} .. {} UTC", short_time(first), short_time(last)),
        _ => "time unknown (the log has no wall-clock times)".to_owned(),
    }
}

/// The victims, the newest last: "dd (pid 10), dd (pid 11)"; at most
/// `SHOWN_VICTIMS`, with the count of those left out (here or when grouping).
pub fn victims(group: &KillGroup) -> String {
    const SHOWN_VICTIMS: usize = 6;
    let name = |v: &super::group::VictimKill| format!("{} (pid {})", v.comm.as_deref().unwrap_or("?"), v.pid);
    let all = &group.victims;
    if all.len() <= SHOWN_VICTIMS && group.victims_left_out == 0 {
        return all.iter().map(name).collect::<Vec<_>>().join(", ");
    }
    let head = all.len().min(3);
    let tail = all.len().saturating_sub(head).min(3);
    let skipped = (all.len() - head - tail) as u64 + u64::from(group.victims_left_out);
    let shown_head = all[..head].iter().map(name);
    let shown_tail = all[all.len() - tail..].iter().map(name);
    shown_head.chain(std::iter::once(format!("… {skipped} more …"))).chain(shown_tail).collect::<Vec<_>>().join(", ")
}

/// "… and 3 more workloads (12 kills), not grouped" when the report kept
/// only the first [`GROUPS_KEPT`](super::group::GROUPS_KEPT); `None` otherwise.
pub fn left_out(report: &Report) -> Option<String> {
    let left = &report.groups_left_out;
    (left.kills > 0).then(|| {
        format!(
            "and {}{} more workload{} ({} kill{}), counted but not grouped: only the first {} workloads are",
            if left.workloads_exact { "" } else { "at least " },
            left.workloads,
            if left.workloads == 1 { "" } else { "s" },
            left.kills,
            if left.kills == 1 { "" } else { "s" },
            super::group::GROUPS_KEPT
        )
    })
}

/// "64.0M at /a (usage 64.0M …)" at the latest kill, without the path when
/// the limit is the victim's own cgroup's; `None` without a limit.
pub fn limit(group: &KillGroup) -> Option<String> {
    let latest = group.victims.last()?;
    let limit = latest.limit_bytes?;
    let at = latest
        .oom_cgroup
        .as_deref()
        .filter(|c| Some(*c) != group.cgroup.as_deref())
        .map_or_else(String::new, |c| format!(" at {c}"));
    Some(format!("{}{at} (usage {} at the latest kill)", bytes(Some(limit)), bytes(latest.usage_bytes)))
}

/// A finding with its evidence, from its JSON (so that a new finding's
/// numbers show without a change here): "repeated: kills 3, over 1m 30s,
/// mean interval 45s (in 2 of 3 kills)". `_bytes` values print as sizes,
/// `_seconds` as durations, `_percent` with a `%`.
pub fn finding(found: &GroupFinding, kills: u32) -> String {
    let fields = serde_json::to_string(&found.finding)
        .ok()
        .and_then(|json| serde_json::from_str::<Fields>(&json).ok())
        .map(|f| f.0)
        .unwrap_or_default();
    let kind = fields.iter().find(|(key, _)| key == "kind").and_then(|(_, v)| v.as_str()).unwrap_or("?");
    let evidence: Vec<String> =
        fields.iter().filter(|(key, _)| key != "kind").map(|(key, value)| evidence(key, value)).collect();
    let mut text = kind.to_owned();
    if !evidence.is_empty() {
        text.push_str(": ");
        text.push_str(&evidence.join(", "));
    }
    if kills > 1 {
        text.push_str(&format!(" (in {} of {kills} kills)", found.in_kills));
    }
    text
}

/// A JSON object's fields in their written order (`serde_json::Value`'s map
/// sorts them): the finding's evidence reads in the order its type declares.
#[derive(Default)]
struct Fields(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn evidence(key: &str, value: &serde_json::Value) -> String {
    let number = value.as_u64();
    let (name, shown) = if let (Some(name), Some(n)) = (key.strip_suffix("_bytes"), number) {
        (name, bytes(Some(n)))
    } else if let (Some(name), Some(n)) = (key.strip_suffix("_seconds"), number) {
        (name, humantime::format_duration(Duration::from_secs(n)).to_string())
    } else if let (Some(name), Some(n)) = (key.strip_suffix("_percent"), number) {
        (name, format!("{n}%"))
    } else {
        (key, value.as_str().map_or_else(|| value.to_string(), |text| escape(text).into_owned()))
    };
    format!("{} {shown}", name.replace('_', " "))
}

/// The node's memory as (label, value) rows.
pub fn memory_rows(memory: &NodeMemory) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if let Some(total) = memory.mem_total_bytes {
        rows.push(("MemTotal", bytes(Some(total))));
    }
    if let Some(available) = memory.mem_available_bytes {
        let share = memory
            .mem_total_bytes
            .filter(|t| *t > 0)
            .map_or_else(String::new, |total| format!(" ({}% of MemTotal)", available.saturating_mul(100) / total));
        rows.push(("MemAvailable", format!("{}{share}", bytes(Some(available)))));
    }
    if let Some(kubepods) = &memory.kubepods {
        let limit = kubepods.limit_bytes.map_or_else(|| "no limit".to_owned(), |l| format!("limit {}", bytes(Some(l))));
        rows.push((
            "kubepods",
            format!(
                "{} used, {limit} ({}, cgroup v{})",
                bytes(kubepods.usage_bytes),
                kubepods.cgroup,
                kubepods.cgroup_version
            ),
        ));
    }
    if let Some(psi) = &memory.psi {
        let line = |l: &super::node_memory::PsiLine| format!("{:.2}/{:.2}/{:.2}", l.avg10, l.avg60, l.avg300);
        let full = psi.full.as_ref().map_or_else(String::new, |f| format!(", full {}", line(f)));
        rows.push(("PSI memory", format!("some {}{full} (% of time stalled, avg10/avg60/avg300)", line(&psi.some))));
    }
    if let Some(count) = memory.kernel_oom_kills {
        rows.push(("OOM kills", format!("{count} since boot (/proc/vmstat oom_kill)")));
    }
    rows.extend(memory.notes.iter().map(|note| ("note", note.clone())));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::report::sample;

    #[test]
    fn findings_show_their_evidence_numbers() {
        let report = sample::with_kills();
        let [a, api] = &report.groups[..] else { panic!("two groups") };
        assert_eq!(
            finding(&a.findings[0], a.kills),
            "repeated: kills 3, over 1m 30s, mean interval 45s (in 2 of 3 kills)"
        );
        assert_eq!(finding(&api.findings[0], api.kills), "tmpfs: shmem 40.0M, share 62%");
    }

    #[test]
    fn memory_rows_say_what_is_there_and_what_is_not() {
        let rows = memory_rows(&sample::with_kills().node_memory);
        let row = |label: &str| rows.iter().find(|(l, _)| *l == label).map(|(_, v)| v.clone());
        assert_eq!(row("MemTotal").as_deref(), Some("24.0G"));
        assert_eq!(row("MemAvailable").as_deref(), Some("12.0G (50% of MemTotal)"));
        assert_eq!(row("kubepods").as_deref(), Some("512.0M used, no limit (/kubepods, cgroup v1)"));
        assert!(row("PSI memory").is_some_and(|v| v.starts_with("some 1.25/0.50/0.00, full 0.75/0.50/0.00")));
        let bare = memory_rows(&sample::without_kills().node_memory);
        assert!(bare.iter().all(|(l, _)| *l != "kubepods" && *l != "PSI memory"));
        assert_eq!(bare.iter().filter(|(l, _)| *l == "note").count(), 2);
    }

    #[test]
    fn spans_times_and_victims() {
        let report = sample::with_kills();
        assert_eq!(kill_span(&report.groups[0]), "2026-11-29 10:00:00 .. 2026-11-29 10:01:30 UTC");
        assert_eq!(kill_span(&report.groups[1]), "at 2026-11-29 10:00:10 UTC");
        assert_eq!(victims(&report.groups[0]), "dd (pid 10), dd (pid 11), dd (pid 12)");
        let mut many = report.groups[0].clone();
        many.victims = (0..10).map(|i| sample_victim(&report, i)).collect();
        assert_eq!(
            victims(&many),
            "dd (pid 0), dd (pid 1), dd (pid 2), … 4 more …, dd (pid 7), dd (pid 8), dd (pid 9)"
        );
        assert_eq!(limit(&report.groups[0]).as_deref(), Some("64.0M (usage 64.0M at the latest kill)"));
        assert_eq!(limit(&report.groups[1]).as_deref(), Some("64.0M at /test/a (usage 64.0M at the latest kill)"));
    }

    /// The table and the markdown show names escaped, and keep oomtrace's
    /// own backslashes (a shell quote) in advice; the JSON keeps the names raw.
    #[test]
    fn people_read_names_escaped_and_json_keeps_them() {
        let mut report = sample::with_kills();
        let group = &mut report.groups[0];
        group.key = "/test/a\u{1b}]0;pwn\u{7}|b".to_owned();
        group.cgroup = Some(group.key.clone());
        group.victims[0].comm = Some("\u{1b}[2J\u{202e}".to_owned());
        group.advice[0].text = "Raise `/test/a\u{1b}` ('\\'') now".to_owned();
        for format in [ReportFormat::Table, ReportFormat::Markdown] {
            let text = render(&report, format);
            assert!(!text.contains(['\u{1b}', '\u{7}', '\u{202e}']), "{format:?}: {text:?}");
            assert!(text.contains(r"/test/a\x1b]0;pwn\x07"), "{format:?}: {text}");
            assert!(text.contains(r"\x1b[2J\u{202e} (pid 10)"), "{format:?}: {text}");
            assert!(text.contains(r"Raise `/test/a\x1b` ('\'') now"), "{format:?}: {text}");
        }
        let markdown = render(&report, ReportFormat::Markdown);
        assert!(markdown.contains(r"| `/test/a\x1b]0;pwn\x07\|b` |"), "{markdown}");
        let json = render(&report, ReportFormat::Json);
        assert!(json.contains(r#""key": "/test/a\u001b]0;pwn\u0007|b""#), "{json}");
    }

    fn sample_victim(report: &Report, pid: u32) -> crate::diagnose::group::VictimKill {
        let mut victim = report.groups[0].victims[0].clone();
        victim.pid = pid;
        victim
    }
}
