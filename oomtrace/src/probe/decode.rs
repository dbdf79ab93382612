//! Raw ring-buffer record -> [`OomEvent`]: a length-checked copy, then every
//! field whose present bit is set; the others stay `None` and are listed in
//! `unavailable`.

use std::time::{Duration, SystemTime};

use super::Method;
use crate::kernel::clock::monotonic_now;

use oomtrace_common::{COMM_LEN, RawCgroup, RawCgroupPath, RawOomEvent, field, flag, path};

use crate::kernel::constraint::ConstraintValues;
use oomtrace_event::{
    CapturedPath, Cgroup, EventSource, OomCgroup, OomEvent, RecordKind, SchemaVersion, Scope, ScopeSource,
    ScopeUnknownReason, Trigger, Victim, WallTime,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than the {want} bytes of an OOM record")]
    Truncated { got: usize, want: usize },
    #[error("record of {got} bytes is shorter than the {want} bytes its cgroup path needs")]
    PathTruncated { got: usize, want: usize },
    #[error("record has no victim pid")]
    NoVictim,
}

/// What decoding needs to know about the kernel and the attached probes.
#[derive(Clone, Copy, Debug)]
pub struct DecodeContext {
    pub constraints: ConstraintValues,
    pub page_size: u64,
    /// Wall-clock time minus CLOCK_MONOTONIC, to date kernel timestamps.
    pub boot_offset: Duration,
    /// `signal_generate` is attached, so a missing KILLED flag means "not killed".
    pub kill_signal_attached: bool,
}

impl DecodeContext {
    pub fn new(constraints: ConstraintValues, page_size: u64, kill_signal_attached: bool) -> Self {
        let monotonic = monotonic_now();
        let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Self { constraints, page_size, boot_offset: wall.saturating_sub(monotonic), kill_signal_attached }
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn cgroup(raw: &RawCgroup) -> Cgroup {
    Cgroup { id: raw.id, parent_id: raw.parent_id, name: c_string(&raw.name), ..Cgroup::default() }
}

/// The victim's cgroup from its captured path: `None` when no level was captured.
fn captured_cgroup(raw: &RawCgroupPath) -> Option<Cgroup> {
    let names_len = (raw.names_len as usize).min(raw.names.len());
    let names = raw.names[..names_len].split(|&b| b == 0).map(|name| String::from_utf8_lossy(name).into_owned());
    let levels: Vec<(u64, String)> = raw.ids.iter().take(raw.levels as usize).copied().zip(names).collect();
    let (id, name) = levels.first().cloned()?;
    let complete = raw.end == path::ROOT && levels.len() == raw.levels as usize;
    // A level without its name ends the capture early: name the rest from its id.
    let uncaptured_id = match (complete, raw.levels as usize > levels.len()) {
        (true, _) => None,
        (false, true) => raw.ids.get(levels.len()).copied(),
        (false, false) => Some(raw.uncaptured_id),
    };
    let parent_id = levels.get(1).map(|&(id, _)| id).or(uncaptured_id).unwrap_or(0);
    Some(Cgroup { id, parent_id, name, captured: Some(CapturedPath { levels, uncaptured_id }), ..Cgroup::default() })
}

/// Copies a record out of the ring buffer, checking its length: the kernel
/// sends only the used part of the path names, the rest is zero.
pub fn read_raw(bytes: &[u8]) -> Result<RawOomEvent, DecodeError> {
    let want = RawOomEvent::sent_len(0);
    if bytes.len() < want {
        return Err(DecodeError::Truncated { got: bytes.len(), want });
    }
    // SAFETY: RawOomEvent is repr(C) plain old data for which every bit
    // pattern (all zeros included) is a valid value.
    let mut raw: RawOomEvent = unsafe { std::mem::zeroed() };
    let len = bytes.len().min(std::mem::size_of::<RawOomEvent>());
    // SAFETY: `len` bytes fit both the source slice and the destination
    // struct, which do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut raw).cast::<u8>(), len) };
    let names_need = RawOomEvent::sent_len(raw.victim_memcg.names_len as usize);
    if raw.present & field::VICTIM_MEMCG != 0 && bytes.len() < names_need {
        return Err(DecodeError::PathTruncated { got: bytes.len(), want: names_need });
    }
    Ok(raw)
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8], cx: &DecodeContext) -> Result<OomEvent, DecodeError> {
    let raw = read_raw(bytes)?;
    from_raw(&raw, cx)
}

pub fn from_raw(raw: &RawOomEvent, cx: &DecodeContext) -> Result<OomEvent, DecodeError> {
    let has = |bit: u64| raw.present & bit != 0;
    if !has(field::VICTIM_PID) {
        return Err(DecodeError::NoVictim);
    }
    let comm = c_string(&raw.victim_comm[..COMM_LEN]);
    let victim = Victim {
        pid: raw.victim_pid,
        tgid: present(raw.present, field::VICTIM_TGID, raw.victim_tgid),
        comm: present(raw.present, field::VICTIM_COMM, comm),
        uid: present(raw.present, field::VICTIM_UID, raw.victim_uid),
        oom_score_adj: present(raw.present, field::OOM_SCORE_ADJ, raw.oom_score_adj),
        total_vm_kb: present(raw.present, field::TOTAL_VM, raw.total_vm_kb),
        anon_rss_kb: present(raw.present, field::ANON_RSS, raw.anon_rss_kb),
        file_rss_kb: present(raw.present, field::FILE_RSS, raw.file_rss_kb),
        shmem_rss_kb: present(raw.present, field::SHMEM_RSS, raw.shmem_rss_kb),
        pgtables_kb: present(raw.present, field::PGTABLES, raw.pgtables_kb),
    };
    let has_context = has(field::CONTEXT);
    let inferred_memcg = raw.flags & flag::OOM_MEMCG_INFERRED != 0;
    let (scope, scope_source) = if has_context {
        let scope = if has(field::CONSTRAINT) {
            scope_of(raw.constraint as i64, &cx.constraints)
        } else if has(field::OOM_MEMCG) {
            Some(Scope::Memcg)
        } else {
            None
        };
        (scope, Some(ScopeSource::OomControl))
    } else if inferred_memcg {
        (Some(Scope::Memcg), Some(ScopeSource::Inferred))
    } else if raw.flags & flag::NO_MEMCG_AT_LIMIT != 0 {
        (Some(Scope::Global), Some(ScopeSource::Inferred))
    } else if raw.flags & (flag::WALK_DEPTH_LIMIT | flag::WALK_UNREADABLE) != 0 {
        (Some(Scope::Unknown), Some(ScopeSource::Inferred))
    } else {
        (None, None)
    };
    let walk_reason = if raw.flags & flag::WALK_DEPTH_LIMIT != 0 {
        ScopeUnknownReason::WalkDepthLimit
    } else {
        ScopeUnknownReason::MemcgUnreadable
    };
    let scope_unknown_reason = (scope == Some(Scope::Unknown)).then_some(walk_reason);
    let oom_cgroup = has(field::OOM_MEMCG).then(|| OomCgroup {
        cgroup: cgroup(&raw.oom_memcg),
        usage_bytes: present(raw.present, field::MEMCG_USAGE, raw.memcg_usage_pages.saturating_mul(cx.page_size)),
        limit_bytes: present(raw.present, field::MEMCG_LIMIT, raw.memcg_limit_pages.saturating_mul(cx.page_size)),
    });
    let killed = if raw.flags & flag::KILLED != 0 { Some(true) } else { cx.kill_signal_attached.then_some(false) };
    let wall = cx.boot_offset + Duration::from_nanos(raw.ktime_ns);
    Ok(OomEvent {
        schema_version: SchemaVersion,
        kind: RecordKind::OomKill,
        time: WallTime::from_system_time(SystemTime::UNIX_EPOCH + wall),
        source: EventSource::Ebpf,
        kernel_log: None,
        ktime_ns: Some(raw.ktime_ns),
        oom_id: has_context.then_some(raw.context_ktime_ns),
        killed,
        group_kill: has(field::GROUP_KILL_KNOWN).then_some(raw.flags & flag::GROUP_KILL != 0),
        scope,
        scope_source,
        scope_unknown_reason,
        victim,
        victim_cgroup: if has(field::VICTIM_MEMCG) { captured_cgroup(&raw.victim_memcg) } else { None },
        oom_cgroup,
        oom_totalpages: has_context.then_some(raw.totalpages),
        chosen_points: has_context.then_some(raw.chosen_points),
        gfp_mask: has_context.then(|| format!("{:#x}", raw.gfp_mask)),
        order: has_context.then_some(raw.order),
        trigger: Some(Trigger {
            pid: Some(raw.trigger_pid),
            tgid: Some(raw.trigger_tgid),
            comm: c_string(&raw.trigger_comm),
        }),
        kernel_report: None,
        diagnosis: None,
        node: None,
        workload: None,
        warned_seconds_before: None,
        not_warned: None,
        sources: source_names(raw.sources),
        unavailable: unavailable_fields(raw.present, cx.kill_signal_attached),
    })
}

/// `value` if the record marks `bit` present.
fn present<T>(bits: u64, bit: u64, value: T) -> Option<T> {
    (bits & bit != 0).then_some(value)
}

fn scope_of(value: i64, values: &ConstraintValues) -> Option<Scope> {
    let is = |v: Option<i64>| v == Some(value);
    if is(values.memcg) {
        Some(Scope::Memcg)
    } else if is(values.none) {
        Some(Scope::Global)
    } else if is(values.cpuset) {
        Some(Scope::Cpuset)
    } else if is(values.memory_policy) {
        Some(Scope::Mempolicy)
    } else {
        None
    }
}

/// The documented fields and the present bit each needs.
const DOCUMENTED: [(u64, &str); 16] = [
    (field::VICTIM_TGID, "victim.tgid"),
    (field::VICTIM_COMM, "victim.comm"),
    (field::VICTIM_UID, "victim.uid"),
    (field::OOM_SCORE_ADJ, "victim.oom_score_adj"),
    (field::TOTAL_VM, "victim.total_vm_kb"),
    (field::ANON_RSS, "victim.anon_rss_kb"),
    (field::FILE_RSS, "victim.file_rss_kb"),
    (field::SHMEM_RSS, "victim.shmem_rss_kb"),
    (field::PGTABLES, "victim.pgtables_kb"),
    (field::VICTIM_MEMCG, "victim_cgroup"),
    (field::CONTEXT, "oom_id"),
    (field::CONTEXT, "oom_totalpages"),
    (field::CONTEXT, "chosen_points"),
    (field::CONTEXT, "gfp_mask"),
    (field::CONTEXT, "order"),
    (field::GROUP_KILL_KNOWN, "group_kill"),
];

/// Every present bit of [`DOCUMENTED`].
const DOCUMENTED_BITS: u64 = {
    let mut bits = 0;
    let mut i = 0;
    while i < DOCUMENTED.len() {
        bits |= DOCUMENTED[i].0;
        i += 1;
    }
    bits
};

/// The documented fields whose present bit is missing (none, without a
/// look at each, on a kernel that gives them all).
fn unavailable_fields(bits: u64, kill_signal_attached: bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = if bits & DOCUMENTED_BITS == DOCUMENTED_BITS {
        Vec::new()
    } else {
        DOCUMENTED.into_iter().filter(|&(bit, _)| bits & bit == 0).map(|(_, name)| name).collect()
    };
    if !kill_signal_attached {
        out.push("killed");
    }
    out
}

fn source_names(bits: u32) -> Vec<&'static str> {
    Method::ALL.iter().filter(|m| bits & m.source_bit() != 0).map(|m| m.target()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_common::{CGROUP_NAME_LEN, source};

    fn zeroed() -> RawOomEvent {
        // SAFETY: RawOomEvent is plain old data; all-zero bytes are a valid value.
        unsafe { std::mem::zeroed() }
    }

    fn name(text: &str) -> [u8; CGROUP_NAME_LEN] {
        let mut out = [0u8; CGROUP_NAME_LEN];
        out[..text.len()].copy_from_slice(text.as_bytes());
        out
    }

    fn comm(text: &str) -> [u8; COMM_LEN] {
        let mut out = [0u8; COMM_LEN];
        out[..text.len()].copy_from_slice(text.as_bytes());
        out
    }

    /// Writes a captured path as the kernel does: ids, then NUL-terminated names.
    fn set_path(out: &mut RawCgroupPath, levels: &[(u64, &str)], end: u32) {
        let mut used = 0;
        for (level, (id, name)) in levels.iter().enumerate() {
            out.ids[level] = *id;
            out.names[used..used + name.len()].copy_from_slice(name.as_bytes());
            out.names[used + name.len()] = 0;
            used += name.len() + 1;
        }
        out.levels = levels.len() as u32;
        out.names_len = used as u32;
        out.end = end;
    }

    /// The bytes the kernel sends: the record without the unused names.
    fn sent(raw: &RawOomEvent) -> Vec<u8> {
        let mut data = bytes(raw);
        data.truncate(RawOomEvent::sent_len(raw.victim_memcg.names_len as usize));
        data
    }

    fn cx(kill_signal_attached: bool) -> DecodeContext {
        DecodeContext {
            constraints: ConstraintValues::historical(),
            page_size: 4096,
            boot_offset: Duration::from_secs(1_700_000_000),
            kill_signal_attached,
        }
    }

    fn bytes(raw: &RawOomEvent) -> Vec<u8> {
        // SAFETY: viewing a plain-old-data struct as its bytes.
        unsafe {
            std::slice::from_raw_parts((raw as *const RawOomEvent).cast::<u8>(), std::mem::size_of::<RawOomEvent>())
        }
        .to_vec()
    }

    /// A record as tp_btf + fentry + signal_generate produce it for a memcg kill.
    fn full_record() -> RawOomEvent {
        let mut raw = zeroed();
        raw.present = field::VICTIM_PID
            | field::VICTIM_TGID
            | field::VICTIM_COMM
            | field::VICTIM_UID
            | field::OOM_SCORE_ADJ
            | field::TOTAL_VM
            | field::ANON_RSS
            | field::FILE_RSS
            | field::SHMEM_RSS
            | field::PGTABLES
            | field::VICTIM_MEMCG
            | field::CONTEXT
            | field::CONSTRAINT
            | field::OOM_MEMCG
            | field::MEMCG_USAGE
            | field::MEMCG_LIMIT
            | field::GROUP_KILL_KNOWN;
        raw.sources = source::TP_BTF | source::FENTRY | source::SIGNAL;
        raw.flags = flag::KILLED;
        raw.ktime_ns = 5_000_000_000;
        raw.context_ktime_ns = 4_999_000_000;
        raw.victim_pid = 4242;
        raw.victim_tgid = 4242;
        raw.victim_comm = comm("python3");
        raw.trigger_pid = 4242;
        raw.trigger_tgid = 4242;
        raw.trigger_comm = comm("python3");
        raw.total_vm_kb = 280_000;
        raw.anon_rss_kb = 64_000;
        raw.file_rss_kb = 1_200;
        raw.shmem_rss_kb = 0;
        raw.pgtables_kb = 200;
        raw.oom_score_adj = 0;
        raw.constraint = 3;
        raw.totalpages = 16_384;
        raw.chosen_points = 16_000;
        raw.gfp_mask = 0xcc0;
        raw.memcg_usage_pages = 16_384;
        raw.memcg_limit_pages = 16_384;
        set_path(&mut raw.victim_memcg, &[(77, "oomtest"), (1, "")], path::ROOT);
        raw.oom_memcg = RawCgroup { id: 77, parent_id: 1, name: name("oomtest") };
        raw
    }

    #[test]
    fn decodes_a_complete_memcg_kill() {
        let event = decode(&sent(&full_record()), &cx(true)).expect("decodes");
        assert_eq!(event.victim.pid, 4242);
        assert_eq!(event.victim.comm.as_deref(), Some("python3"));
        assert_eq!(event.victim.rss_kb(), Some(65_200));
        assert_eq!(event.scope, Some(Scope::Memcg));
        assert_eq!(event.scope_source, Some(ScopeSource::OomControl));
        assert_eq!(event.killed, Some(true));
        assert_eq!(event.group_kill, Some(false));
        assert_eq!(event.oom_id, Some(4_999_000_000));
        let oom = event.oom_cgroup.expect("oom cgroup");
        assert_eq!(oom.limit_bytes, Some(64 << 20));
        assert_eq!(oom.cgroup.name, "oomtest");
        assert_eq!(event.gfp_mask.as_deref(), Some("0xcc0"));
        assert_eq!(
            event.sources,
            ["tp_btf:mark_victim", "fentry:oom_kill_process", "tracepoint:signal/signal_generate"]
        );
        assert_eq!(event.time.map(|t| t.to_string()).as_deref(), Some("2023-11-14T22:13:25.000000Z"));
        assert!(event.unavailable.is_empty(), "{:?}", event.unavailable);
    }

    #[test]
    fn absent_fields_are_none_and_left_out_of_the_json() {
        let mut raw = zeroed();
        raw.present = field::VICTIM_PID;
        raw.sources = source::TRACEPOINT;
        raw.victim_pid = 99;
        // garbage in fields whose bits are not set must not leak through
        raw.anon_rss_kb = 123;
        raw.totalpages = 456;
        let event = decode(&bytes(&raw), &cx(false)).expect("decodes");
        assert_eq!(event.victim, Victim { pid: 99, ..Victim::default() });
        assert_eq!(event.killed, None);
        assert_eq!(event.scope, None);
        assert_eq!(event.oom_totalpages, None);
        let json = serde_json::to_value(&event).expect("serializes");
        let victim = json["victim"].as_object().expect("victim object");
        assert_eq!(victim.keys().collect::<Vec<_>>(), ["pid"]);
        for key in ["killed", "scope", "oom_cgroup", "victim_cgroup", "oom_totalpages", "gfp_mask", "group_kill"] {
            assert!(json.get(key).is_none(), "{key} should be absent");
        }
        // ... and the event says so.
        for name in ["victim.comm", "victim.anon_rss_kb", "victim_cgroup", "oom_totalpages", "killed"] {
            assert!(event.unavailable.contains(&name), "{name} not listed in {:?}", event.unavailable);
        }
    }

    #[test]
    fn a_missing_signal_means_not_killed_only_when_the_probe_runs() {
        let mut raw = full_record();
        raw.flags = 0;
        assert_eq!(decode(&bytes(&raw), &cx(true)).expect("decodes").killed, Some(false));
        assert_eq!(decode(&bytes(&raw), &cx(false)).expect("decodes").killed, None);
    }

    #[test]
    fn inferred_scope_without_the_context_probe() {
        let mut raw = full_record();
        raw.present &= !(field::CONTEXT | field::CONSTRAINT);
        raw.flags |= flag::OOM_MEMCG_INFERRED;
        let event = decode(&bytes(&raw), &cx(true)).expect("decodes");
        assert_eq!((event.scope, event.scope_source), (Some(Scope::Memcg), Some(ScopeSource::Inferred)));
        assert_eq!(event.oom_totalpages, None);
        raw.present &= !(field::OOM_MEMCG | field::MEMCG_USAGE | field::MEMCG_LIMIT);
        raw.flags = flag::NO_MEMCG_AT_LIMIT;
        let event = decode(&bytes(&raw), &cx(true)).expect("decodes");
        assert_eq!((event.scope, event.oom_cgroup), (Some(Scope::Global), None));
    }

    #[test]
    fn truncated_records_are_rejected() {
        let data = sent(&full_record());
        let err = decode(&data[..data.len() - 1], &cx(true)).expect_err("too short for its names");
        assert_eq!(err, DecodeError::PathTruncated { got: data.len() - 1, want: data.len() });
        let fixed = RawOomEvent::sent_len(0);
        let err = decode(&data[..fixed - 1], &cx(true)).expect_err("too short");
        assert_eq!(err, DecodeError::Truncated { got: fixed - 1, want: fixed });
        assert!(decode(&[], &cx(true)).is_err());
    }

    #[test]
    fn the_captured_path_comes_back_level_by_level() {
        let mut raw = full_record();
        let levels = [(30, "cri-containerd-abc.scope"), (20, "kubepods-pod1.slice"), (10, "kubepods.slice"), (1, "")];
        set_path(&mut raw.victim_memcg, &levels, path::ROOT);
        let event = decode(&sent(&raw), &cx(true)).expect("decodes");
        let cgroup = event.victim_cgroup.expect("victim cgroup");
        assert_eq!((cgroup.id, cgroup.parent_id, cgroup.name.as_str()), (30, 20, "cri-containerd-abc.scope"));
        let captured = cgroup.captured.expect("captured");
        assert_eq!(captured.levels.len(), 4);
        assert_eq!(captured.levels[2], (10, "kubepods.slice".to_owned()));
        assert_eq!(captured.uncaptured_id, None);
        // Cut at the depth bound: the nearest ancestor not captured is named by id.
        set_path(&mut raw.victim_memcg, &levels[..2], path::DEPTH_CUT);
        raw.victim_memcg.uncaptured_id = 10;
        let captured = decode(&sent(&raw), &cx(true)).expect("decodes").victim_cgroup.expect("cgroup").captured;
        assert_eq!(captured.expect("captured").uncaptured_id, Some(10));
    }

    #[test]
    fn a_cut_walk_makes_the_scope_unknown_never_global() {
        let mut raw = full_record();
        raw.present &=
            !(field::CONTEXT | field::CONSTRAINT | field::OOM_MEMCG | field::MEMCG_USAGE | field::MEMCG_LIMIT);
        for (flag, reason) in [
            (flag::WALK_DEPTH_LIMIT, ScopeUnknownReason::WalkDepthLimit),
            (flag::WALK_UNREADABLE, ScopeUnknownReason::MemcgUnreadable),
        ] {
            raw.flags = flag;
            let event = decode(&sent(&raw), &cx(true)).expect("decodes");
            assert_eq!((event.scope, event.scope_unknown_reason), (Some(Scope::Unknown), Some(reason)));
            let json = serde_json::to_value(&event).expect("serializes");
            assert_eq!(json["scope"], "unknown");
        }
    }

    #[test]
    fn a_record_without_victim_pid_is_an_error() {
        let mut raw = full_record();
        raw.present &= !field::VICTIM_PID;
        assert_eq!(decode(&bytes(&raw), &cx(true)), Err(DecodeError::NoVictim));
    }
}
