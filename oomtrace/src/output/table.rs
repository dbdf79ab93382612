//! The human table of `oomtrace live`.

use std::io::Write;

use super::EventWriter;
use crate::event::{OomEvent, ScopeSource};

pub struct TableWriter;

const HEADER: &str = "TIME (UTC)    PID      COMM             WORKLOAD (NAMESPACE/POD/CONTAINER or CGROUP)             USAGE/LIMIT      RSS      SCOPE      KILLED TRIGGER";

impl EventWriter for TableWriter {
    fn start(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{HEADER}")?;
        out.flush()
    }

    fn event(&mut self, out: &mut dyn Write, event: &OomEvent) -> std::io::Result<()> {
        writeln!(out, "{}", row(event))?;
        out.flush()
    }
}

/// One table row.
pub fn row(event: &OomEvent) -> String {
    // "2026-11-25T22:41:07.123456Z" -> "22:41:07.123"
    let time = event.time.get(11..23).unwrap_or(&event.time);
    let comm = event.victim.comm.as_deref().unwrap_or("?");
    let cgroup = event
        .victim_cgroup
        .as_ref()
        .and_then(|c| c.path.clone().or_else(|| Some(format!("id:{}", c.id))))
        .unwrap_or_else(|| "?".to_owned());
    let workload = match event.workload.as_ref() {
        Some(w) => {
            let name = w.kubernetes_name().unwrap_or(cgroup);
            if w.main_process == Some(false) { format!("{name} (not main)") } else { name }
        }
        None => cgroup,
    };
    let usage_limit = event.oom_cgroup.as_ref().map_or_else(
        || match event.oom_totalpages {
            Some(_) => "-".to_owned(),
            None => "?".to_owned(),
        },
        |oom| format!("{}/{}", bytes(oom.usage_bytes), bytes(oom.limit_bytes)),
    );
    let rss = event.victim.rss_kb().map_or_else(|| "?".to_owned(), |kb| bytes(Some(kb * 1024)));
    let scope = match (event.scope, event.scope_source) {
        (Some(scope), Some(ScopeSource::Inferred)) => format!("{}*", scope.as_str()),
        (Some(scope), _) => scope.as_str().to_owned(),
        (None, _) => "?".to_owned(),
    };
    let killed = match event.killed {
        Some(true) if event.group_kill == Some(true) => "group",
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    };
    format!(
        "{time:<13} {pid:<8} {comm:<16} {workload:<56} {usage_limit:<16} {rss:<8} {scope:<10} {killed:<6} {tpid} {tcomm}",
        pid = event.victim.pid,
        tpid = event.trigger.pid,
        tcomm = event.trigger.comm,
    )
}

/// 1536 -> "1.5K", 67108864 -> "64.0M".
pub fn bytes(value: Option<u64>) -> String {
    let Some(value) = value else { return "?".to_owned() };
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value}B") } else { format!("{scaled:.1}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_units() {
        assert_eq!(bytes(Some(512)), "512B");
        assert_eq!(bytes(Some(1536)), "1.5K");
        assert_eq!(bytes(Some(64 << 20)), "64.0M");
        assert_eq!(bytes(None), "?");
    }
}
