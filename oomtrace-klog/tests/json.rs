//! The report types as JSON (the lead's events embed some of them): absent fields are absent, not
//! zero, and the shape is stable.

mod common;

use common::{fixture, parse, reports};
use serde_json::json;

#[test]
fn a_report_as_json() {
    let (parsed, _) = parse(&fixture("lore-5.3-printk-caller.txt"));
    let report = reports(&parsed)[0];
    let value = serde_json::to_value(report).expect("serializes");
    assert_eq!(
        value["killed"],
        json!({
            "pid": 6736, "comm": "leaker", "total_vm_kb": 536700, "anon_rss_kb": 521704,
            "file_rss_kb": 1180, "shmem_rss_kb": 0, "memcg_prefix": true,
            "prefix": "Memory cgroup out of memory"
        })
    );
    assert_eq!(
        value["constraint"],
        json!({
            "constraint": "CONSTRAINT_MEMCG", "nodemask": "(null)", "oom_memcg": "/leaker",
            "global_oom": false, "task_memcg": "/leaker", "task": "leaker", "pid": 6736, "uid": 0
        })
    );
    assert_eq!(value["memcg_stat"]["values"]["anon"], json!(534147072));
    assert_eq!(value["memcg_stat"]["format"], json!("lines"));
    assert_eq!(
        value["memcg_counters"][1],
        json!({"kind": "memory_and_swap", "usage_kb": 0, "limit_kb": 9007199254740988u64, "failcnt": 0})
    );
    assert_eq!(value["first"]["caller"], json!("T6736"));
    assert_eq!(value["first"]["since_boot"], json!({"secs": 49, "nanos": 921978000}));
    assert!(value.get("tasks").is_none(), "an empty table is left out");
    assert!(value.get("selected").is_none() && value.get("task_in").is_none());
    let Some(oomtrace_klog::Parsed::Reaped(reaped)) = parsed.last() else { panic!("reaper") };
    let value = serde_json::to_value(reaped).expect("serializes");
    assert_eq!(value["line"]["caller"], json!("T55"));
    let tagged = serde_json::to_value(parsed.last()).expect("serializes");
    assert_eq!(tagged["kind"], json!("reaped"));
}
