//! Raw ring-buffer record -> [`OomEvent`]: a length-checked copy, then every
//! field whose present bit is set; the others stay `None` and are listed in
//! `unavailable`.

use std::time::{Duration, SystemTime};

use oomtrace_common::{COMM_LEN, RawCgroup, RawOomEvent, field, flag, source};

use super::{Cgroup, OomCgroup, OomEvent, Scope, ScopeSource, Trigger, Victim};
use crate::kernel::constraint::ConstraintValues;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than the {want} bytes of an OOM record")]
    Truncated { got: usize, want: usize },
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

/// CLOCK_MONOTONIC now (the clock `bpf_ktime_get_ns` uses).
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec; clock_gettime only writes it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn cgroup(raw: &RawCgroup) -> Cgroup {
    Cgroup { id: raw.id, path: None, parent_id: raw.parent_id, name: c_string(&raw.name) }
}

/// Copies a record out of the ring buffer, checking its length.
pub fn read_raw(bytes: &[u8]) -> Result<RawOomEvent, DecodeError> {
    let want = std::mem::size_of::<RawOomEvent>();
    if bytes.len() < want {
        return Err(DecodeError::Truncated { got: bytes.len(), want });
    }
    // SAFETY: the length was checked above; RawOomEvent is repr(C) plain old
    // data for which every bit pattern is valid; read_unaligned copes with any
    // alignment of the ring-buffer slice.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<RawOomEvent>()) })
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
    } else {
        (None, None)
    };
    let oom_cgroup = has(field::OOM_MEMCG).then(|| OomCgroup {
        cgroup: cgroup(&raw.oom_memcg),
        usage_bytes: present(raw.present, field::MEMCG_USAGE, raw.memcg_usage_pages.saturating_mul(cx.page_size)),
        limit_bytes: present(raw.present, field::MEMCG_LIMIT, raw.memcg_limit_pages.saturating_mul(cx.page_size)),
    });
    let killed = if raw.flags & flag::KILLED != 0 { Some(true) } else { cx.kill_signal_attached.then_some(false) };
    let wall = cx.boot_offset + Duration::from_nanos(raw.ktime_ns);
    Ok(OomEvent {
        time: humantime::format_rfc3339_micros(SystemTime::UNIX_EPOCH + wall).to_string(),
        ktime_ns: raw.ktime_ns,
        oom_id: has_context.then_some(raw.context_ktime_ns),
        killed,
        group_kill: has(field::GROUP_KILL_KNOWN).then_some(raw.flags & flag::GROUP_KILL != 0),
        scope,
        scope_source,
        victim,
        victim_cgroup: has(field::VICTIM_MEMCG).then(|| cgroup(&raw.victim_memcg)),
        oom_cgroup,
        oom_totalpages: has_context.then_some(raw.totalpages),
        chosen_points: has_context.then_some(raw.chosen_points),
        gfp_mask: has_context.then(|| format!("{:#x}", raw.gfp_mask)),
        order: has_context.then_some(raw.order),
        trigger: Trigger { pid: raw.trigger_pid, tgid: raw.trigger_tgid, comm: c_string(&raw.trigger_comm) },
        node: None,
        workload: None,
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

/// The documented fields whose present bit is missing.
fn unavailable_fields(bits: u64, kill_signal_attached: bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = [
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
    ]
    .into_iter()
    .filter(|&(bit, _)| bits & bit == 0)
    .map(|(_, name)| name)
    .collect();
    if !kill_signal_attached {
        out.push("killed");
    }
    out
}

fn source_names(bits: u32) -> Vec<&'static str> {
    const SOURCES: [(u32, &str); 6] = [
        (source::TP_BTF, "tp_btf:mark_victim"),
        (source::RAW_TP, "raw_tp:mark_victim"),
        (source::TRACEPOINT, "tracepoint:oom/mark_victim"),
        (source::FENTRY, "fentry:oom_kill_process"),
        (source::KPROBE, "kprobe:oom_kill_process"),
        (source::SIGNAL, "tracepoint:signal/signal_generate"),
    ];
    SOURCES.iter().filter(|&&(bit, _)| bits & bit != 0).map(|&(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_common::CGROUP_NAME_LEN;

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
        raw.victim_memcg = RawCgroup { id: 77, parent_id: 1, name: name("oomtest") };
        raw.oom_memcg = RawCgroup { id: 77, parent_id: 1, name: name("oomtest") };
        raw
    }

    #[test]
    fn decodes_a_complete_memcg_kill() {
        let event = decode(&bytes(&full_record()), &cx(true)).expect("decodes");
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
        assert_eq!(event.time, "2023-11-14T22:13:25.000000Z");
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
        let data = bytes(&full_record());
        let err = decode(&data[..data.len() - 1], &cx(true)).expect_err("too short");
        assert_eq!(err, DecodeError::Truncated { got: data.len() - 1, want: data.len() });
        assert!(decode(&[], &cx(true)).is_err());
    }

    #[test]
    fn a_record_without_victim_pid_is_an_error() {
        let mut raw = full_record();
        raw.present &= !field::VICTIM_PID;
        assert_eq!(decode(&bytes(&raw), &cx(true)), Err(DecodeError::NoVictim));
    }
}
