//! The memory cgroup part of a report (`mem_cgroup_print_oom_info`, later
//! `mem_cgroup_print_oom_meminfo` and `mem_cgroup_print_oom_context` in mm/memcontrol.c):
//! the OOMing memcg's page counters, its memory.stat, and (before 5.0) which memcg hit its limit.

use std::collections::BTreeMap;

use serde::Serialize;

use super::text;

/// Which page counter of the memcg a counter line reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    /// `memory:` (v1 and v2).
    Memory,
    /// `memory+swap:` (v1 memsw).
    MemoryAndSwap,
    /// `swap:` (v2).
    Swap,
    /// `kmem:` (v1 kernel memory).
    Kmem,
}

/// `"%s: usage %llukB, limit %llukB, failcnt %lu\n"` (3.10 – 7.x; the name is `memory`, `swap`,
/// `memory+swap` or `kmem`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemcgCounter {
    /// Which counter.
    pub kind: CounterKind,
    /// Its usage at the OOM, in kB.
    pub usage_kb: u64,
    /// Its limit, in kB (a huge number such as 9007199254740988 means no limit).
    pub limit_kb: u64,
    /// How many times the limit was hit.
    pub failcnt: u64,
}

/// Parses a counter line; `None` when it is not one.
pub(crate) fn parse_counter(line: &str) -> Option<MemcgCounter> {
    let (name, rest) = line.split_once(':')?;
    let rest = rest.strip_prefix(" usage ")?;
    let kind = match name {
        "memory" => CounterKind::Memory,
        "memory+swap" => CounterKind::MemoryAndSwap,
        "swap" => CounterKind::Swap,
        "kmem" => CounterKind::Kmem,
        _ => return None,
    };
    let (usage, rest) = rest.split_once(", limit ")?;
    let (limit, failcnt) = rest.split_once(", failcnt ")?;
    Some(MemcgCounter {
        kind,
        usage_kb: text::kilobytes(usage)?,
        limit_kb: text::kilobytes(limit)?,
        failcnt: text::unsigned(failcnt)?,
    })
}

/// How the kernel printed a memcg's statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatFormat {
    /// One `name value` line each after `Memory cgroup stats for <path>:` (memory.stat's own
    /// format: v2 since 4.19-ish, v1 since 6.x's `memcg1_stat_format`; sizes in bytes).
    Lines,
    /// Everything on the `Memory cgroup stats for <path>:` line as ` name:<n>KB` (v1 before 5.x).
    InlineKb,
}

/// `Memory cgroup stats for <path>:` and what follows it.
///
/// - 3.10 – 4.x (v1): `pr_info("Memory cgroup stats for "); pr_cont_cgroup_path(); pr_cont(":");`
///   then `pr_cont(" %s:%luKB", …)` per counter: one line per memcg of the OOMing subtree.
/// - 4.19 – 6.3: the same first line, then `pr_info("%s", memory_stat_format(memcg))`: one record
///   with embedded newlines, `anon 123\nfile 456\n…`.
/// - 6.4 – 7.x: the same, printed line by line (`seq_buf_do_printk`); on v1, `memcg1_stat_format`
///   (`cache 0`, `rss 83652608`, …, `total_rss …`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemcgStat {
    /// The memcg the statistics are for, as the kernel prints it (`/kubepods/burstable/pod…/…`).
    pub memcg: String,
    /// How they were printed.
    pub format: StatFormat,
    /// memory.stat entries by name: sizes in bytes (the inline format's `KB` converted), event
    /// counters (`pgfault`, `workingset_refault_anon`, `oom_kill`, …) as counts.
    pub values: BTreeMap<String, u64>,
}

impl MemcgStat {
    /// An entry by its memory.stat name (`anon`, `file`, `shmem`, `rss`, `slab`, `sock`, …).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values.get(name).copied()
    }
}

const STATS_FOR: &str = "Memory cgroup stats for ";

/// Whether the line starts a stat block (parsable or not).
pub(crate) fn is_stat_start(line: &str) -> bool {
    line.starts_with(STATS_FOR)
}

/// Parses `Memory cgroup stats for <path>:[ name:<n>KB…]`; `None` when it is not one. With nothing
/// after the colon, the values follow on their own lines ([`parse_stat_entry`]).
pub(crate) fn parse_stat_start(line: &str) -> Option<MemcgStat> {
    let rest = line.strip_prefix(STATS_FOR)?;
    // The path may contain ':'; the inline values start at the first ": " followed by `name:`,
    // else the line ends with ':'.
    if let Some(memcg) = rest.trim_end().strip_suffix(':') {
        return Some(MemcgStat { memcg: memcg.to_owned(), format: StatFormat::Lines, values: BTreeMap::new() });
    }
    let (memcg, inline) = rest.split_once(": ")?;
    let mut values = BTreeMap::new();
    for field in inline.split_whitespace() {
        let (name, value) = field.split_once(':')?;
        let kb = text::kilobytes(value)?;
        values.insert(name.to_owned(), kb.saturating_mul(1024));
    }
    Some(MemcgStat { memcg: memcg.to_owned(), format: StatFormat::InlineKb, values })
}

/// One `name value` line of a stat block (`anon 83652608`); `None` when the line is not one.
pub(crate) fn parse_stat_entry(line: &str) -> Option<(&str, u64)> {
    let (name, value) = line.trim().split_once(' ')?;
    let name_ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if !name_ok {
        return None;
    }
    Some((name, text::unsigned(value)?))
}

/// `Task in <task memcg> killed as a result of limit of <oom memcg>` (before 5.0:
/// `mem_cgroup_print_oom_info`; 3.10 printed it with `printk(KERN_INFO "Task in %s killed", …)`
/// and `printk(KERN_CONT " as a result of limit of %s\n", …)`, 3.16+ with `pr_cont_cgroup_path`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskIn {
    /// The victim's memcg.
    pub task_memcg: String,
    /// The memcg whose limit was hit.
    pub oom_memcg: String,
}

const TASK_IN: &str = "Task in ";
const KILLED_AS: &str = " killed as a result of limit of ";

/// Whether the line is (part of) a `Task in … killed as a result of limit of …` line.
pub(crate) fn is_task_in(line: &str) -> bool {
    line.contains(KILLED_AS.trim_start()) || (line.starts_with(TASK_IN) && line.ends_with(" killed"))
}

/// Parses the `Task in` line; `None` when it is not one (or only a fragment of one).
pub(crate) fn parse_task_in(line: &str) -> Option<TaskIn> {
    let rest = line.strip_prefix(TASK_IN)?;
    let (task_memcg, oom_memcg) = rest.split_once(KILLED_AS)?;
    Some(TaskIn { task_memcg: task_memcg.to_owned(), oom_memcg: oom_memcg.trim_end().to_owned() })
}

/// `"Memory cgroup min protection %lukB -- low protection %lukB"` (6.19+,
/// `mem_cgroup_show_protected_memory`, printed by `dump_header` on cgroup v2): how much memory the
/// OOMing memcg's children (the root's, for a global OOM) protect with memory.min and memory.low.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Protection {
    /// Sum of the children's effective memory.min, kB.
    pub min_kb: u64,
    /// Sum of the children's effective memory.low, kB.
    pub low_kb: u64,
}

/// Parses the protection line; `None` when it is not one.
pub(crate) fn parse_protection(line: &str) -> Option<Protection> {
    let rest = line.strip_prefix("Memory cgroup min protection ")?;
    let (min, low) = rest.split_once(" -- low protection ")?;
    Some(Protection { min_kb: text::kilobytes(min)?, low_kb: text::kilobytes(low)? })
}

/// `Tasks in <memcg> are going to be killed due to memory.oom.group set` (4.19+,
/// `mem_cgroup_print_oom_group`): the kill lines that follow are the group's other members.
pub(crate) fn parse_oom_group(line: &str) -> Option<&str> {
    line.strip_prefix("Tasks in ")?.strip_suffix(" are going to be killed due to memory.oom.group set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        let cases = [
            ("memory: usage 81920kB, limit 81920kB, failcnt 0", CounterKind::Memory, 81920, 81920, 0),
            (
                "memory+swap: usage 81920kB, limit 9007199254740988kB, failcnt 3",
                CounterKind::MemoryAndSwap,
                81920,
                9007199254740988,
                3,
            ),
            ("swap: usage 0kB, limit 0kB, failcnt 0", CounterKind::Swap, 0, 0, 0),
            ("kmem: usage 228kB, limit 9007199254740988kB, failcnt 0", CounterKind::Kmem, 228, 9007199254740988, 0),
        ];
        for (line, kind, usage_kb, limit_kb, failcnt) in cases {
            assert_eq!(parse_counter(line), Some(MemcgCounter { kind, usage_kb, limit_kb, failcnt }), "{line}");
        }
        assert_eq!(parse_counter("tcp: usage 1kB, limit 2kB, failcnt 0"), None);
        assert_eq!(parse_counter("memory: usage 1kB, limit 2kB"), None);
        assert_eq!(parse_counter("memory: usage xkB, limit 2kB, failcnt 0"), None);
    }

    #[test]
    fn stat_block_per_line() {
        let stat = parse_stat_start("Memory cgroup stats for /kubepods/pod1/abc:").expect("start");
        assert_eq!((stat.memcg.as_str(), stat.format, stat.values.len()), ("/kubepods/pod1/abc", StatFormat::Lines, 0));
        assert_eq!(parse_stat_entry("anon 83652608"), Some(("anon", 83652608)));
        assert_eq!(parse_stat_entry("workingset_refault_anon 0"), Some(("workingset_refault_anon", 0)));
        assert_eq!(parse_stat_entry(" dump_stack+0x1/0x2"), None);
        assert_eq!(parse_stat_entry("Tasks state (memory values in pages):"), None);
        assert_eq!(parse_stat_entry("anon -1"), None);
        assert_eq!(parse_stat_entry("2anon 1"), None);
    }

    #[test]
    fn stat_inline_kb() {
        let stat = parse_stat_start(
            "Memory cgroup stats for /docker/0123: cache:8KB rss:524280KB rss_huge:0KB mapped_file:4KB swap:0KB inactive_anon:0KB active_anon:524280KB",
        )
        .expect("inline");
        assert_eq!(stat.memcg, "/docker/0123");
        assert_eq!(stat.format, StatFormat::InlineKb);
        assert_eq!(stat.get("rss"), Some(524280 * 1024));
        assert_eq!(stat.get("cache"), Some(8 * 1024));
        assert_eq!(stat.values.len(), 7);
        assert_eq!(parse_stat_start("Memory cgroup stats for /a: cache:xKB"), None);
        assert_eq!(parse_stat_start("Memory cgroup stats for /a"), None);
    }

    #[test]
    fn task_in_and_group() {
        assert_eq!(
            parse_task_in("Task in /docker/abc killed as a result of limit of /docker"),
            Some(TaskIn { task_memcg: "/docker/abc".into(), oom_memcg: "/docker".into() })
        );
        assert!(is_task_in("Task in /a killed"));
        assert_eq!(parse_task_in("Task in /a killed"), None);
        assert_eq!(parse_oom_group("Tasks in /a/b are going to be killed due to memory.oom.group set"), Some("/a/b"));
        assert_eq!(
            parse_protection("Memory cgroup min protection 1024kB -- low protection 0kB"),
            Some(Protection { min_kb: 1024, low_kb: 0 })
        );
        assert_eq!(parse_protection("Memory cgroup min protection xkB -- low protection 0kB"), None);
    }
}
