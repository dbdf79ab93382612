//! Reads of kernel memory at offsets resolved in userspace from BTF.
//! Every reader returns `None` when the offset is absent on this kernel, the
//! base pointer is NULL or the read faults.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_buf, bpf_probe_read_kernel_str_bytes};
use aya_log_ebpf::{debug, warn};
use oomtrace_common::{
    ABSENT, CGROUP_PATH_NAME_MAX, CGROUP_PATH_NAMES_LEN, MAX_CGROUP_DEPTH, RawCgroup, RawCgroupPath, RawOomEvent,
    field, path,
};

use crate::layout;

/// Runs `read` (which fills a record field in place and says whether it
/// could) and marks `bit` in `present` when it did, unless the record already
/// has that field: the first source of a field wins (the tracepoint's own
/// values over what the victim's task gives). `read` must stay small: a large
/// closure is not inlined and becomes a BPF-to-BPF call.
#[inline(always)]
pub fn fill_with(present: &mut u64, bit: u64, read: impl FnOnce() -> bool) {
    if *present & bit == 0 && read() {
        *present |= bit;
    }
}

/// [`fill_with`] for a field read as a value: stores what `read` gives in `slot`.
#[inline(always)]
pub fn fill<T>(present: &mut u64, bit: u64, slot: &mut T, read: impl FnOnce() -> Option<T>) {
    fill_with(present, bit, || read().map(|value| *slot = value).is_some());
}

/// Reads a `T` at `base + off`.
#[inline(always)]
pub fn read<T>(base: u64, off: u32) -> Option<T> {
    if off == ABSENT || base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copies through a fault-safe helper; a bad
    // address gives an error, never a crash.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T).ok() }
}

/// Copies `out.len()` bytes at `base + off` into `out`; false if it cannot.
#[inline(always)]
pub fn read_bytes(base: u64, off: u32, out: &mut [u8]) -> bool {
    if off == ABSENT || base == 0 {
        return false;
    }
    // SAFETY: a fault-safe copy of exactly `out.len()` bytes.
    unsafe { bpf_probe_read_kernel_buf((base + off as u64) as *const u8, out) }.is_ok()
}

/// Reads a non-NULL pointer at `base + off`.
#[inline(always)]
pub fn read_ptr(base: u64, off: u32) -> Option<u64> {
    read::<u64>(base, off).filter(|p| *p != 0)
}

/// `struct cgroup *` -> id, parent id and directory name of its kernfs node.
#[inline(always)]
pub fn read_cgroup(cgroup: u64, out: &mut RawCgroup) -> bool {
    let Some(kn) = read_ptr(cgroup, layout!(cgroup_kn)) else {
        return false;
    };
    let Some(id) = read::<u64>(kn, layout!(kn_id)) else {
        return false;
    };
    out.id = id;
    out.parent_id =
        read_ptr(kn, layout!(kn_parent)).and_then(|parent| read::<u64>(parent, layout!(kn_id))).unwrap_or(0);
    out.name[0] = 0;
    if let Some(name) = read_ptr(kn, layout!(kn_name)) {
        // SAFETY: fault-safe string copy bounded by the destination length.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, &mut out.name) };
    }
    true
}

/// `struct mem_cgroup *` -> its cgroup.
#[inline(always)]
pub fn memcg_cgroup(memcg: u64) -> Option<u64> {
    let css_off = layout!(memcg_css);
    if css_off == ABSENT {
        return None;
    }
    read_ptr(memcg + css_off as u64, layout!(css_cgroup))
}

/// `struct cgroup_subsys_state *` of the memory controller -> `struct mem_cgroup *`.
#[inline(always)]
fn css_to_memcg(css: u64) -> Option<u64> {
    let css_off = layout!(memcg_css);
    if css_off == ABSENT || css == 0 {
        return None;
    }
    Some(css - css_off as u64)
}

/// Memory page counter of a memcg: (usage, max) in pages.
#[inline(always)]
pub fn memcg_usage_and_max(memcg: u64) -> Option<(u64, u64)> {
    let memory = layout!(memcg_memory);
    if memory == ABSENT {
        return None;
    }
    let counter = memcg + memory as u64;
    let usage = read::<u64>(counter, layout!(page_counter_usage))?;
    let max = read::<u64>(counter, layout!(page_counter_max))?;
    Some((usage, max))
}

/// The victim task's memory-controller css (`task->cgroups->subsys[memory_cgrp_id]`).
#[inline(always)]
fn task_memcg_css(task: u64) -> Option<u64> {
    let cgroups = read_ptr(task, layout!(task_cgroups))?;
    let subsys = layout!(css_set_subsys);
    let index = layout!(memory_cgrp_id);
    if subsys == ABSENT || index == ABSENT || index >= 32 {
        return None;
    }
    read_ptr(cgroups, subsys + index * 8)
}

/// Fills everything a `task_struct *` gives about the victim, without
/// overwriting fields already present (the tracepoint's own values win).
#[inline(always)]
pub fn fill_victim_from_task(task: u64, ev: &mut RawOomEvent) {
    if task == 0 {
        return;
    }
    let present = &mut ev.present;
    fill(present, field::VICTIM_PID, &mut ev.victim_pid, || read::<u32>(task, layout!(task_pid)));
    fill(present, field::VICTIM_TGID, &mut ev.victim_tgid, || read::<u32>(task, layout!(task_tgid)));
    fill_with(present, field::VICTIM_COMM, || read_bytes(task, layout!(task_comm), &mut ev.victim_comm));
    fill(present, field::VICTIM_UID, &mut ev.victim_uid, || {
        read_ptr(task, layout!(task_real_cred)).and_then(|cred| read::<u32>(cred, layout!(cred_uid)))
    });
    fill(present, field::OOM_SCORE_ADJ, &mut ev.oom_score_adj, || {
        read_ptr(task, layout!(task_signal))
            .and_then(|signal| read::<i16>(signal, layout!(signal_oom_score_adj)))
            .map(i32::from)
    });
    match read_ptr(task, layout!(task_mm)) {
        Some(mm) => fill_mm(mm, ev),
        // NULL for a victim whose mm is already gone (exiting), else a fault.
        None if layout!(task_mm) != ABSENT => debug!(&(), "victim pid {}: task->mm unreadable or NULL", ev.victim_pid),
        None => {}
    }
    ev.victim_memcg.levels = 0;
    ev.victim_memcg.names_len = 0;
    match task_memcg_css(task).and_then(|css| read_ptr(css, layout!(css_cgroup))) {
        Some(cgroup) => {
            capture_path(cgroup, &mut ev.victim_memcg);
            if ev.victim_memcg.levels > 0 {
                ev.present |= field::VICTIM_MEMCG;
            }
            if ev.victim_memcg.end == path::DEPTH_CUT {
                warn!(&(), "victim pid {}: memcg path cut short at {} levels", ev.victim_pid, MAX_CGROUP_DEPTH);
            }
        }
        None => debug!(&(), "victim pid {}: task->cgroups->subsys[memory]->cgroup unreadable", ev.victim_pid),
    }
}

/// Captures `struct cgroup *`'s kernfs id and name and those of each ancestor,
/// nearest first, up to the root or [`MAX_CGROUP_DEPTH`] levels or until
/// less than a whole name's room is left; `out.end` says which. So
/// `names_len` stays below [`CGROUP_PATH_NAMES_LEN`].
#[inline(always)]
fn capture_path(cgroup: u64, out: &mut RawCgroupPath) {
    out.end = path::UNREADABLE;
    out.uncaptured_id = 0;
    let Some(mut kn) = read_ptr(cgroup, layout!(cgroup_kn)) else {
        return;
    };
    let mut used: usize = 0;
    for level in 0..MAX_CGROUP_DEPTH {
        let Some(id) = read::<u64>(kn, layout!(kn_id)) else {
            return;
        };
        if used > CGROUP_PATH_NAMES_LEN - CGROUP_PATH_NAME_MAX {
            out.end = path::LENGTH_CUT;
            out.uncaptured_id = id;
            return;
        }
        let (Some(name), Some(slot), Some(id_slot)) = (
            read_ptr(kn, layout!(kn_name)),
            out.names.get_mut(used..used + CGROUP_PATH_NAME_MAX),
            out.ids.get_mut(level),
        ) else {
            out.uncaptured_id = id;
            return;
        };
        // SAFETY: fault-safe string copy bounded by the slot's length; it
        // always writes the terminating NUL.
        let Ok(copied) = (unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, slot) }) else {
            out.uncaptured_id = id;
            return;
        };
        used += copied.len() + 1;
        *id_slot = id;
        out.levels = level as u32 + 1;
        out.names_len = used as u32;
        match read_ptr(kn, layout!(kn_parent)) {
            Some(parent) => kn = parent,
            None => {
                out.end = path::ROOT;
                return;
            }
        }
    }
    out.end = path::DEPTH_CUT;
    out.uncaptured_id = read::<u64>(kn, layout!(kn_id)).unwrap_or(0);
}

/// How an ancestor walk ([`walk_memcg_ancestors`]) ended.
pub enum Walk<R> {
    /// The visitor returned this value.
    Found(R),
    /// The root came first: no memcg on the path had what was looked for.
    Root,
    /// [`MAX_CGROUP_DEPTH`] levels were visited and the root was not reached.
    DepthLimit,
    /// The task's memory cgroup (or a `mem_cgroup` on the way) cannot be read.
    Unreadable,
}

/// Visits the task's memory cgroup, then its ancestors, nearest first and at
/// most [`MAX_CGROUP_DEPTH`] levels, until `visit(css, memcg)` returns a value.
#[inline(always)]
pub fn walk_memcg_ancestors<R>(task: u64, mut visit: impl FnMut(u64, u64) -> Option<R>) -> Walk<R> {
    let Some(mut css) = task_memcg_css(task) else {
        return Walk::Unreadable;
    };
    let parent = layout!(css_parent);
    for _ in 0..MAX_CGROUP_DEPTH {
        let Some(memcg) = css_to_memcg(css) else {
            return Walk::Unreadable;
        };
        if let Some(found) = visit(css, memcg) {
            return Walk::Found(found);
        }
        match read_ptr(css, parent) {
            Some(next) => css = next,
            None => return Walk::Root,
        }
    }
    Walk::DepthLimit
}

/// One rss counter of an mm, in pages, clamped at zero like `get_mm_counter`.
#[inline(always)]
fn rss_pages(mm: u64, index: u32) -> Option<u64> {
    let base = layout!(mm_rss_stat);
    let stride = layout!(rss_counter_stride);
    let value = layout!(rss_counter_value);
    if base == ABSENT || stride == ABSENT || value == ABSENT || index == ABSENT || index >= 8 {
        return None;
    }
    let pages = read::<i64>(mm, base + index * stride + value)?;
    Some(if pages < 0 { 0 } else { pages as u64 })
}

/// Sizes from the victim's `mm_struct`, in kB as the kernel log prints them.
#[inline(always)]
fn fill_mm(mm: u64, ev: &mut RawOomEvent) {
    let shift = layout!(page_shift);
    let to_kb = |pages: u64| pages << (shift.saturating_sub(10) & 31);
    let present = &mut ev.present;
    fill(present, field::TOTAL_VM, &mut ev.total_vm_kb, || read::<u64>(mm, layout!(mm_total_vm)).map(to_kb));
    fill(present, field::ANON_RSS, &mut ev.anon_rss_kb, || rss_pages(mm, layout!(rss_anon_index)).map(to_kb));
    fill(present, field::FILE_RSS, &mut ev.file_rss_kb, || rss_pages(mm, layout!(rss_file_index)).map(to_kb));
    fill(present, field::SHMEM_RSS, &mut ev.shmem_rss_kb, || rss_pages(mm, layout!(rss_shmem_index)).map(to_kb));
    fill(present, field::PGTABLES, &mut ev.pgtables_kb, || {
        read::<i64>(mm, layout!(mm_pgtables_bytes)).map(|bytes| if bytes < 0 { 0 } else { bytes as u64 >> 10 })
    });
}
