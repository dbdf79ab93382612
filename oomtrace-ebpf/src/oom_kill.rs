//! `oom_kill_process(struct oom_control *oc, const char *message)`: the OOM
//! killer has chosen its victim. Stores the `oom_control` context under the
//! trigger's pid_tgid, where every `mark_victim` of this invocation (one per
//! killed task with `memory.oom.group`) finds it.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use aya_log_ebpf::{debug, warn};
use oomtrace_common::{ABSENT, RawOomContext, source};

use crate::{
    OOM_CONTEXTS,
    kernel::{Walk, read, read_ptr, walk_memcg_ancestors},
    layout,
};

#[fentry(function = "oom_kill_process")]
pub fn oom_kill_process_fentry(ctx: FEntryContext) -> u32 {
    let oc: u64 = ctx.arg(0);
    store_context(oc, source::FENTRY);
    0
}

/// For kernels without BPF trampolines; needs CONFIG_KPROBES.
#[kprobe]
pub fn oom_kill_process_kprobe(ctx: ProbeContext) -> u32 {
    let oc: u64 = ctx.arg(0).unwrap_or(0);
    store_context(oc, source::KPROBE);
    0
}

#[inline(always)]
fn store_context(oc: u64, source: u32) {
    if oc == 0 {
        return;
    }
    let chosen = read_ptr(oc, layout!(oc_chosen)).unwrap_or(0);
    if chosen == 0 {
        debug!(&(), "oom_kill_process: oc->chosen unreadable or NULL");
    }
    let oom_memcg = read_ptr(oc, layout!(oc_memcg)).unwrap_or(0);
    let context = RawOomContext {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        oom_memcg_ptr: oom_memcg,
        chosen_task_ptr: chosen,
        totalpages: read::<u64>(oc, layout!(oc_totalpages)).unwrap_or(0),
        chosen_points: read::<i64>(oc, layout!(oc_chosen_points)).unwrap_or(0),
        chosen_pid: read::<u32>(chosen, layout!(task_pid)).unwrap_or(0),
        constraint: read::<u32>(oc, layout!(oc_constraint)).unwrap_or(ABSENT),
        gfp_mask: read::<u32>(oc, layout!(oc_gfp_mask)).unwrap_or(0),
        order: read::<i32>(oc, layout!(oc_order)).unwrap_or(0),
        source,
        group_kill: group_kill(chosen, oom_memcg),
    };
    let trigger = bpf_get_current_pid_tgid();
    if let Err(error) = OOM_CONTEXTS.insert(trigger, context, 0) {
        warn!(&(), "oom_kill_process: context of trigger {} not stored (error {})", trigger as u32, error);
    }
}

/// Mirrors `mem_cgroup_get_oom_group()`: walks from the victim's memcg up to
/// the OOM domain (the OOMing memcg, or the root) and reports whether any
/// level has `memory.oom.group` set. `u32::MAX` when it cannot be read.
#[inline(always)]
fn group_kill(chosen: u64, oom_memcg: u64) -> u32 {
    let oom_group = layout!(memcg_oom_group);
    if oom_group == ABSENT || layout!(css_parent) == ABSENT {
        return u32::MAX;
    }
    let domain_css = if oom_memcg == 0 { 0 } else { oom_memcg + layout!(memcg_css) as u64 };
    let found = walk_memcg_ancestors(chosen, |css, memcg| {
        if read::<u8>(memcg, oom_group).unwrap_or(0) != 0 {
            Some(1)
        } else if css == domain_css {
            Some(0)
        } else {
            None
        }
    });
    match found {
        Walk::Found(group_kill) => group_kill,
        Walk::Root => 0,
        // The domain is further up than the walk goes: unknown, not "no".
        Walk::DepthLimit | Walk::Unreadable => u32::MAX,
    }
}
