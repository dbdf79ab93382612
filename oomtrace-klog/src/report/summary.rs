//! The one-line summary of an OOM kill (5.0+, `dump_oom_summary` in mm/oom_kill.c; also in
//! RHEL 8's 4.18):
//! `pr_info("oom-kill:constraint=%s,nodemask=%*pbl", …)`, then `cpuset_print_current_mems_allowed`
//! (`,cpuset=%s,mems_allowed=%*pbl`, absent without CONFIG_CPUSETS), then
//! `mem_cgroup_print_oom_context` (`,oom_memcg=<path>` or `,global_oom`, then `,task_memcg=<path>`),
//! then `",task=%s,pid=%d,uid=%d\n"`.

use serde::Serialize;

use super::text;

/// The parsed `oom-kill:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Constraint {
    /// `CONSTRAINT_NONE` (global), `CONSTRAINT_CPUSET`, `CONSTRAINT_MEMORY_POLICY`, `CONSTRAINT_MEMCG`.
    pub constraint: String,
    /// The allocation's nodemask (`(null)` for none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodemask: Option<String>,
    /// The trigger's cpuset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// The trigger's allowed memory nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mems_allowed: Option<String>,
    /// The memcg whose limit was hit; `None` for a global OOM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_memcg: Option<String>,
    /// `,global_oom`: the whole machine (or a cpuset/mempolicy) ran out, not a memcg.
    pub global_oom: bool,
    /// The victim's memcg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_memcg: Option<String>,
    /// The victim's comm.
    pub task: String,
    /// The victim's pid.
    pub pid: u32,
    /// The victim's uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

const PREFIX: &str = "oom-kill:";

/// Whether the line is an `oom-kill:` summary (parsable or not).
pub(crate) fn is_summary(line: &str) -> bool {
    line.starts_with(PREFIX)
}

/// Parses the summary line; `None` when it is not one or lacks the victim's task and pid.
///
/// Values may contain commas (`nodemask=0-1,3`), so each value runs to the next *known* key.
/// Paths come before `,task=`; the comm after the last `,task=` up to the last `,pid=`.
pub(crate) fn parse_summary(line: &str) -> Option<Constraint> {
    let rest = line.strip_prefix(PREFIX)?;
    let (head, uid) = match rest.rsplit_once(",uid=") {
        Some((head, uid)) => (head, text::unsigned_u32(uid)),
        None => (rest, None),
    };
    let (head, pid) = head.rsplit_once(",pid=")?;
    let pid = text::unsigned_u32(pid)?;
    let (head, task) = head.rsplit_once(",task=")?;
    let (head, task_memcg) = match head.split_once(",task_memcg=") {
        Some((head, path)) => (head, Some(path.to_owned())),
        None => (head, None),
    };
    let (head, oom_memcg, global_oom) = if let Some((head, path)) = head.split_once(",oom_memcg=") {
        (head, Some(path.to_owned()), false)
    } else if let Some(head) = head.strip_suffix(",global_oom") {
        (head, None, true)
    } else {
        (head, None, false)
    };
    let (head, mems_allowed) = split_key(head, ",mems_allowed=");
    let (head, cpuset) = split_key(head, ",cpuset=");
    let (head, nodemask) = split_key(head, ",nodemask=");
    let constraint = head.strip_prefix("constraint=")?.to_owned();
    Some(Constraint {
        constraint,
        nodemask,
        cpuset,
        mems_allowed,
        oom_memcg,
        global_oom,
        task_memcg,
        task: task.to_owned(),
        pid,
        uid,
    })
}

/// Splits `head` at the first `key`: what comes before it, and its value.
fn split_key<'a>(head: &'a str, key: &str) -> (&'a str, Option<String>) {
    match head.split_once(key) {
        Some((before, value)) => (before, Some(value.to_owned())),
        None => (head, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcg_summary() {
        let got = parse_summary(
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/oomtrace-test-held-13553/pod3,task_memcg=/oomtrace-test-held-13553/pod3/ctr,task=dd,pid=13570,uid=0",
        );
        assert_eq!(
            got,
            Some(Constraint {
                constraint: "CONSTRAINT_MEMCG".into(),
                nodemask: Some("(null)".into()),
                cpuset: Some("/".into()),
                mems_allowed: Some("0".into()),
                oom_memcg: Some("/oomtrace-test-held-13553/pod3".into()),
                global_oom: false,
                task_memcg: Some("/oomtrace-test-held-13553/pod3/ctr".into()),
                task: "dd".into(),
                pid: 13570,
                uid: Some(0),
            })
        );
    }

    #[test]
    fn global_summary_with_commas_and_odd_comm() {
        let got = parse_summary(
            "oom-kill:constraint=CONSTRAINT_NONE,nodemask=0-1,3,cpuset=/,mems_allowed=0-1,3,global_oom,task_memcg=/user.slice/user-1000.slice/session-2.scope,task=a,task=b (c),pid=4242,uid=1000",
        )
        .expect("global");
        assert!(got.global_oom);
        assert_eq!(got.oom_memcg, None);
        assert_eq!(got.nodemask.as_deref(), Some("0-1,3"));
        assert_eq!(got.mems_allowed.as_deref(), Some("0-1,3"));
        assert_eq!(got.task_memcg.as_deref(), Some("/user.slice/user-1000.slice/session-2.scope,task=a"));
        assert_eq!((got.task.as_str(), got.pid, got.uid), ("b (c)", 4242, Some(1000)));
    }

    #[test]
    fn without_cpusets_and_broken() {
        let got = parse_summary(
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),oom_memcg=/a,task_memcg=/a/b,task=x,pid=1,uid=0",
        )
        .expect("no cpuset");
        assert_eq!((got.cpuset, got.oom_memcg.as_deref()), (None, Some("/a")));
        assert_eq!(parse_summary("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/"), None);
        assert_eq!(parse_summary("oom-kill:task=x,pid=y"), None);
        assert_eq!(parse_summary("oom-kill:"), None);
    }
}
