//! `vmscan:mm_vmscan_memcg_reclaim_end(nr_reclaimed)`: a run of memcg limit
//! reclaim (`try_to_free_mem_cgroup_pages`, from a charge over `memory.max`
//! or `memory.high`, or a write to `memory.reclaim`) ended. The tracepoint
//! does not say which memcg was over its limit: it is the charging task's or
//! one of its ancestors, so the run is counted in each of them (the walk is
//! short, and reclaim itself costs far more). Userspace reads the counts of
//! the cgroups it watches from `RECLAIM`; nothing goes through the ring
//! buffer. Both attach methods need no perf_event_open.

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_ktime_get_ns},
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use oomtrace_common::{ABSENT, RawReclaim};

use crate::{
    RECLAIM,
    kernel::{read, read_ptr, walk_memcg_ancestors},
    layout,
};

#[btf_tracepoint(function = "mm_vmscan_memcg_reclaim_end")]
pub fn memcg_reclaim_end_btf(ctx: BtfTracePointContext) -> i32 {
    let nr_reclaimed: u64 = ctx.arg(0);
    count_reclaim(nr_reclaimed);
    0
}

#[raw_tracepoint(tracepoint = "mm_vmscan_memcg_reclaim_end")]
pub fn memcg_reclaim_end_raw(ctx: RawTracePointContext) -> i32 {
    let nr_reclaimed: u64 = ctx.arg(0);
    count_reclaim(nr_reclaimed);
    0
}

#[inline(always)]
fn count_reclaim(nr_reclaimed: u64) {
    if layout!(css_cgroup) == ABSENT || layout!(cgroup_kn) == ABSENT || layout!(kn_id) == ABSENT {
        return;
    }
    // SAFETY: both helpers have no preconditions.
    let (task, now) = unsafe { (bpf_get_current_task(), bpf_ktime_get_ns()) };
    let _ = walk_memcg_ancestors::<()>(task, |css, _memcg| {
        if let Some(id) = css_cgroup_id(css) {
            add(id, nr_reclaimed, now);
        }
        None
    });
}

/// The kernfs id of a css's cgroup: the inode number of its directory.
#[inline(always)]
fn css_cgroup_id(css: u64) -> Option<u64> {
    let cgroup = read_ptr(css, layout!(css_cgroup))?;
    let kn = read_ptr(cgroup, layout!(cgroup_kn))?;
    read::<u64>(kn, layout!(kn_id))
}

#[inline(always)]
fn add(id: u64, nr_reclaimed: u64, now: u64) {
    match RECLAIM.get_ptr_mut(&id) {
        Some(entry) => {
            // SAFETY: the pointer comes from the map lookup and stays valid
            // for this program's run; concurrent runs on other CPUs may lose
            // an increment, which only makes a count a little low.
            unsafe {
                (*entry).runs += 1;
                (*entry).reclaimed_pages += nr_reclaimed;
                (*entry).last_ns = now;
            }
        }
        None => {
            let first = RawReclaim { runs: 1, reclaimed_pages: nr_reclaimed, last_ns: now };
            // No eBPF log here: a log site inside this 32-level walk made
            // the verifier take over a minute to load it (log off or on).
            let _ = RECLAIM.insert(&id, &first, 0);
        }
    }
}
