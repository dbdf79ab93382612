//! `oom:mark_victim`: a task has been chosen as OOM victim. Builds one record
//! per victim from the tracepoint's fields and/or the victim's `task_struct`,
//! joins the `oom_kill_process` context and the SIGKILL of the same trigger,
//! and writes it to the ring buffer.
//!
//! Three attach types share this logic; userspace attaches exactly one:
//! tp_btf and raw_tp pass the victim's `task_struct *`, the classic tracepoint
//! passes the record whose fields (pid only before 6.9) the format file lists.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::{debug, warn};
use oomtrace_common::{ABSENT, CGROUP_PATH_NAMES_LEN, MAX_CGROUP_DEPTH, RawOomEvent, field, flag, source, stat};

use crate::{
    EVENT_SCRATCH, EVENTS, KILL_SIGNALS, OOM_CONTEXTS, count,
    kernel::{
        Walk, fill, fill_victim_from_task, fill_with, memcg_cgroup, memcg_usage_and_max, read_cgroup,
        walk_memcg_ancestors,
    },
    layout,
};

/// A context older than this belongs to an earlier OOM of the same task.
/// (`dump_header` printing to a slow console can take seconds.)
const CONTEXT_MAX_AGE_NS: u64 = 30_000_000_000;
/// The SIGKILL is sent microseconds before `mark_oom_victim`.
const SIGNAL_MAX_AGE_NS: u64 = 1_000_000_000;
/// A memcg whose usage is within this many pages of its limit is "at its
/// limit": a failed charge is at most a THP (512 pages of 4 KiB).
const AT_LIMIT_MARGIN_PAGES: u64 = 512;

#[btf_tracepoint(function = "mark_victim")]
pub fn mark_victim_btf(ctx: BtfTracePointContext) -> i32 {
    let task: u64 = ctx.arg(0);
    emit(task, None, source::TP_BTF);
    0
}

#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn mark_victim_raw(ctx: RawTracePointContext) -> i32 {
    let task: u64 = ctx.arg(0);
    emit(task, None, source::RAW_TP);
    0
}

#[tracepoint]
pub fn mark_victim_tp(ctx: TracePointContext) -> u32 {
    emit(0, Some(&ctx), source::TRACEPOINT);
    0
}

#[inline(always)]
fn emit(task: u64, tp: Option<&TracePointContext>, source: u32) {
    let Some(ev) = EVENT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the pointer comes from the map lookup and is this CPU's slot;
    // tracepoint programs do not nest on one CPU for the same tracepoint.
    let ev = unsafe { &mut *ev };
    let pid_tgid = bpf_get_current_pid_tgid();
    ev.present = 0;
    ev.sources = source;
    ev.flags = 0;
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    ev.ktime_ns = unsafe { bpf_ktime_get_ns() };
    ev.trigger_pid = pid_tgid as u32;
    ev.trigger_tgid = (pid_tgid >> 32) as u32;
    ev.trigger_comm = bpf_get_current_comm().unwrap_or([0; 16]);

    let mut task = task;
    if let Some(tp) = tp {
        read_tracepoint_fields(tp, ev);
        // Without a task pointer: when the victim is the trigger itself (the
        // common case), the current task is the victim.
        if ev.present & field::VICTIM_PID != 0 && ev.victim_pid == pid_tgid as u32 {
            // SAFETY: bpf_get_current_task has no preconditions.
            task = unsafe { bpf_get_current_task() };
        } else if ev.present & field::VICTIM_PID != 0 {
            // Another task was chosen: oom_kill_process saw its task_struct.
            task = chosen_task(pid_tgid, ev.victim_pid);
        }
    }
    fill_victim_from_task(task, ev);
    join_context(pid_tgid, task, ev);
    join_kill_signal(pid_tgid, ev);

    // The record without the unused tail of the path names. The length is
    // bounded by a mask (a no-op: it is below CGROUP_PATH_NAMES_LEN) on a
    // fresh load: verifiers before 6.11 lose a bound checked on one register
    // when the compiler computes the sum in another before the check.
    // SAFETY: reads a plain u32 of this CPU's scratch slot.
    let names_len = unsafe { core::ptr::read_volatile(&raw const ev.victim_memcg.names_len) } as usize;
    let names_len = if ev.present & field::VICTIM_MEMCG == 0 { 0 } else { names_len & (CGROUP_PATH_NAMES_LEN - 1) };
    let sent = RawOomEvent::sent_len(names_len);
    // SAFETY: `sent` is at most the size of `*ev` (names_len is masked to the
    // names buffer), so the slice stays inside this CPU's scratch slot.
    let bytes = unsafe { core::slice::from_raw_parts((ev as *const RawOomEvent).cast::<u8>(), sent) };
    if EVENTS.output::<[u8]>(bytes, 0).is_err() {
        count(stat::RINGBUF_FULL);
        warn!(&(), "ring buffer full: record of victim pid {} dropped", ev.victim_pid);
    }
}

/// Reads one field of the classic tracepoint's record.
#[inline(always)]
fn tp_field<T>(tp: &TracePointContext, off: u32) -> Option<T> {
    if off == ABSENT {
        return None;
    }
    // SAFETY: the offset comes from this tracepoint's format file; read_at is
    // a fault-safe probe read of the record.
    unsafe { tp.read_at::<T>(off as usize) }.ok()
}

/// Copies the `__data_loc char[]` string at `off` in the tracepoint's record
/// into `out`; false if it cannot.
#[inline(always)]
fn tp_string(tp: &TracePointContext, off: u32, out: &mut [u8]) -> bool {
    let Some(loc) = tp_field::<u32>(tp, off) else {
        return false;
    };
    // __data_loc: low 16 bits = offset from the record start.
    let src = (tp.as_ptr() as u64 + (loc & 0xffff) as u64) as *const u8;
    // SAFETY: fault-safe string copy bounded by the destination length.
    unsafe { bpf_probe_read_kernel_str_bytes(src, out) }.is_ok()
}

/// Reads the classic tracepoint's fields at the offsets from its format file.
#[inline(always)]
fn read_tracepoint_fields(tp: &TracePointContext, ev: &mut RawOomEvent) {
    let present = &mut ev.present;
    fill(present, field::VICTIM_PID, &mut ev.victim_pid, || tp_field(tp, layout!(tp_victim_pid)));
    fill_with(present, field::VICTIM_COMM, || tp_string(tp, layout!(tp_victim_comm), &mut ev.victim_comm));
    fill(present, field::TOTAL_VM, &mut ev.total_vm_kb, || tp_field(tp, layout!(tp_total_vm)));
    fill(present, field::ANON_RSS, &mut ev.anon_rss_kb, || tp_field(tp, layout!(tp_anon_rss)));
    fill(present, field::FILE_RSS, &mut ev.file_rss_kb, || tp_field(tp, layout!(tp_file_rss)));
    fill(present, field::SHMEM_RSS, &mut ev.shmem_rss_kb, || tp_field(tp, layout!(tp_shmem_rss)));
    fill(present, field::VICTIM_UID, &mut ev.victim_uid, || tp_field(tp, layout!(tp_uid)));
    fill(present, field::PGTABLES, &mut ev.pgtables_kb, || tp_field(tp, layout!(tp_pgtables)));
    fill(present, field::OOM_SCORE_ADJ, &mut ev.oom_score_adj, || {
        tp_field::<i16>(tp, layout!(tp_oom_score_adj)).map(i32::from)
    });
    if ev.present & field::VICTIM_PID == 0 && layout!(tp_victim_pid) != ABSENT {
        warn!(&(), "oom/mark_victim record: field pid unreadable");
    }
}

/// The chosen victim's `task_struct *` from this trigger's context, when its
/// pid is `victim_pid` (0 otherwise, e.g. for the other members of a group kill).
#[inline(always)]
fn chosen_task(pid_tgid: u64, victim_pid: u32) -> u64 {
    // SAFETY: read-only access to a value only this task writes.
    match unsafe { OOM_CONTEXTS.get(pid_tgid) } {
        Some(context) if context.chosen_pid == victim_pid => context.chosen_task_ptr,
        _ => 0,
    }
}

/// Copies the `oom_kill_process` context of this trigger into the record; or,
/// without one, infers the OOMing memcg from the page counters.
#[inline(always)]
fn join_context(pid_tgid: u64, task: u64, ev: &mut RawOomEvent) {
    // SAFETY: the map value is only read here; a concurrent update by the same
    // trigger is impossible (the trigger is this task, running this program).
    let context = unsafe { OOM_CONTEXTS.get(pid_tgid) };
    if let Some(context) = context
        && ev.ktime_ns.wrapping_sub(context.ktime_ns) < CONTEXT_MAX_AGE_NS
    {
        ev.present |= field::CONTEXT;
        ev.sources |= context.source;
        ev.context_ktime_ns = context.ktime_ns;
        ev.totalpages = context.totalpages;
        ev.chosen_points = context.chosen_points;
        ev.gfp_mask = context.gfp_mask;
        ev.order = context.order;
        if context.constraint != ABSENT {
            ev.constraint = context.constraint;
            ev.present |= field::CONSTRAINT;
        }
        if context.group_kill != u32::MAX {
            ev.present |= field::GROUP_KILL_KNOWN;
            if context.group_kill == 1 {
                ev.flags |= flag::GROUP_KILL;
            }
        }
        if context.oom_memcg_ptr != 0 {
            describe_oom_memcg(context.oom_memcg_ptr, ev);
        }
        return;
    }
    infer_oom_memcg(task, ev);
}

/// Names the OOMing memcg and reads its usage and limit now, at the kill.
#[inline(always)]
fn describe_oom_memcg(memcg: u64, ev: &mut RawOomEvent) {
    if let Some(cgroup) = memcg_cgroup(memcg)
        && read_cgroup(cgroup, &mut ev.oom_memcg)
    {
        ev.present |= field::OOM_MEMCG;
    } else {
        debug!(&(), "victim pid {}: OOMing memcg's mem_cgroup->css.cgroup->kn unreadable", ev.victim_pid);
    }
    if let Some((usage, max)) = memcg_usage_and_max(memcg) {
        ev.memcg_usage_pages = usage;
        ev.memcg_limit_pages = max;
        ev.present |= field::MEMCG_USAGE | field::MEMCG_LIMIT;
    } else {
        debug!(&(), "victim pid {}: OOMing memcg's mem_cgroup->memory usage/max unreadable", ev.victim_pid);
    }
}

/// Without `oom_kill_process`: the OOMing memcg is the nearest one, from the
/// victim's memcg upwards, whose usage sits at its limit.
#[inline(always)]
fn infer_oom_memcg(task: u64, ev: &mut RawOomEvent) {
    let unlimited = layout!(page_counter_unlimited);
    let at_limit = walk_memcg_ancestors(task, |_css, memcg| {
        let (usage, max) = memcg_usage_and_max(memcg)?;
        (max < unlimited && usage + AT_LIMIT_MARGIN_PAGES >= max).then_some(memcg)
    });
    match at_limit {
        Walk::Found(memcg) => {
            ev.flags |= flag::OOM_MEMCG_INFERRED;
            describe_oom_memcg(memcg, ev);
        }
        Walk::Root => ev.flags |= flag::NO_MEMCG_AT_LIMIT,
        Walk::DepthLimit => {
            ev.flags |= flag::WALK_DEPTH_LIMIT;
            warn!(&(), "victim pid {}: memcg ancestor walk cut short at {} levels", ev.victim_pid, MAX_CGROUP_DEPTH);
        }
        Walk::Unreadable => {
            ev.flags |= flag::WALK_UNREADABLE;
            debug!(&(), "victim pid {}: memcg ancestor walk: task->cgroups or css->parent unreadable", ev.victim_pid);
        }
    }
}

/// Marks the record as killed if this trigger just sent SIGKILL to the victim.
#[inline(always)]
fn join_kill_signal(pid_tgid: u64, ev: &mut RawOomEvent) {
    if ev.present & field::VICTIM_PID == 0 {
        return;
    }
    // SAFETY: read-only access to a value only this task writes.
    let Some(signal) = (unsafe { KILL_SIGNALS.get(pid_tgid) }) else {
        return;
    };
    if signal.target_pid == ev.victim_pid && ev.ktime_ns.wrapping_sub(signal.ktime_ns) < SIGNAL_MAX_AGE_NS {
        ev.flags |= flag::KILLED;
        ev.sources |= signal.source;
        let _ = KILL_SIGNALS.remove(pid_tgid);
    }
}
