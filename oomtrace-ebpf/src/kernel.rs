//! Reads of kernel memory at offsets resolved in userspace from BTF.
//! Every reader returns `None` when the offset is absent on this kernel, the
//! base pointer is NULL or the read faults.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_buf, bpf_probe_read_kernel_str_bytes};
use oomtrace_common::{ABSENT, RawCgroup, RawOomEvent, field};

use crate::offset;

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

/// Reads a non-NULL pointer at `base + off`.
#[inline(always)]
pub fn read_ptr(base: u64, off: u32) -> Option<u64> {
    read::<u64>(base, off).filter(|p| *p != 0)
}

/// `struct cgroup *` -> id, parent id and directory name of its kernfs node.
#[inline(always)]
pub fn read_cgroup(cgroup: u64, out: &mut RawCgroup) -> bool {
    let Some(kn) = read_ptr(cgroup, offset!(cgroup_kn)) else {
        return false;
    };
    let Some(id) = read::<u64>(kn, offset!(kn_id)) else {
        return false;
    };
    out.id = id;
    out.parent_id =
        read_ptr(kn, offset!(kn_parent)).and_then(|parent| read::<u64>(parent, offset!(kn_id))).unwrap_or(0);
    out.name[0] = 0;
    if let Some(name) = read_ptr(kn, offset!(kn_name)) {
        // SAFETY: fault-safe string copy bounded by the destination length.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, &mut out.name) };
    }
    true
}

/// `struct mem_cgroup *` -> its cgroup.
#[inline(always)]
pub fn memcg_cgroup(memcg: u64) -> Option<u64> {
    let css_off = offset!(memcg_css);
    if css_off == ABSENT {
        return None;
    }
    read_ptr(memcg + css_off as u64, offset!(css_cgroup))
}

/// `struct cgroup_subsys_state *` of the memory controller -> `struct mem_cgroup *`.
#[inline(always)]
pub fn css_to_memcg(css: u64) -> Option<u64> {
    let css_off = offset!(memcg_css);
    if css_off == ABSENT || css == 0 {
        return None;
    }
    Some(css - css_off as u64)
}

/// Memory page counter of a memcg: (usage, max) in pages.
#[inline(always)]
pub fn memcg_usage_and_max(memcg: u64) -> Option<(u64, u64)> {
    let memory = offset!(memcg_memory);
    if memory == ABSENT {
        return None;
    }
    let counter = memcg + memory as u64;
    let usage = read::<u64>(counter, offset!(page_counter_usage))?;
    let max = read::<u64>(counter, offset!(page_counter_max))?;
    Some((usage, max))
}

/// The victim task's memory-controller css (`task->cgroups->subsys[memory_cgrp_id]`).
#[inline(always)]
pub fn task_memcg_css(task: u64) -> Option<u64> {
    let cgroups = read_ptr(task, offset!(task_cgroups))?;
    let subsys = offset!(css_set_subsys);
    let index = offset!(memory_cgrp_id);
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
    if ev.present & field::VICTIM_PID == 0 {
        if let Some(pid) = read::<u32>(task, offset!(task_pid)) {
            ev.victim_pid = pid;
            ev.present |= field::VICTIM_PID;
        }
    }
    if let Some(tgid) = read::<u32>(task, offset!(task_tgid)) {
        ev.victim_tgid = tgid;
        ev.present |= field::VICTIM_TGID;
    }
    if ev.present & field::VICTIM_COMM == 0 {
        let comm = offset!(task_comm);
        if comm != ABSENT {
            // SAFETY: fault-safe copy of exactly TASK_COMM_LEN bytes.
            let ok = unsafe { bpf_probe_read_kernel_buf((task + comm as u64) as *const u8, &mut ev.victim_comm) };
            if ok.is_ok() {
                ev.present |= field::VICTIM_COMM;
            }
        }
    }
    if ev.present & field::VICTIM_UID == 0 {
        if let Some(uid) = read_ptr(task, offset!(task_real_cred)).and_then(|cred| read::<u32>(cred, offset!(cred_uid)))
        {
            ev.victim_uid = uid;
            ev.present |= field::VICTIM_UID;
        }
    }
    if ev.present & field::OOM_SCORE_ADJ == 0 {
        if let Some(adj) =
            read_ptr(task, offset!(task_signal)).and_then(|signal| read::<i16>(signal, offset!(signal_oom_score_adj)))
        {
            ev.oom_score_adj = adj as i32;
            ev.present |= field::OOM_SCORE_ADJ;
        }
    }
    if let Some(mm) = read_ptr(task, offset!(task_mm)) {
        fill_mm(mm, ev);
    }
    if let Some(cgroups) = read_ptr(task, offset!(task_cgroups)) {
        if let Some(dfl) = read_ptr(cgroups, offset!(css_set_dfl_cgrp)) {
            if let Some(kn) = read_ptr(dfl, offset!(cgroup_kn)) {
                if let Some(id) = read::<u64>(kn, offset!(kn_id)) {
                    ev.victim_dfl_cgroup_id = id;
                    ev.present |= field::VICTIM_DFL_CGROUP;
                }
            }
        }
    }
    if let Some(css) = task_memcg_css(task) {
        if let Some(cgroup) = read_ptr(css, offset!(css_cgroup)) {
            if read_cgroup(cgroup, &mut ev.victim_memcg) {
                ev.present |= field::VICTIM_MEMCG;
            }
        }
    }
}

/// One rss counter of an mm, in pages, clamped at zero like `get_mm_counter`.
#[inline(always)]
fn rss_pages(mm: u64, index: u32) -> Option<u64> {
    let base = offset!(mm_rss_stat);
    let stride = offset!(rss_counter_stride);
    let value = offset!(rss_counter_value);
    if base == ABSENT || stride == ABSENT || value == ABSENT || index == ABSENT || index >= 8 {
        return None;
    }
    let pages = read::<i64>(mm, base + index * stride + value)?;
    Some(if pages < 0 { 0 } else { pages as u64 })
}

/// Sizes from the victim's `mm_struct`, in kB as the kernel log prints them.
#[inline(always)]
fn fill_mm(mm: u64, ev: &mut RawOomEvent) {
    let shift = offset!(page_shift);
    let to_kb = |pages: u64| pages << (shift.saturating_sub(10) & 31);
    if ev.present & field::TOTAL_VM == 0 {
        if let Some(pages) = read::<u64>(mm, offset!(mm_total_vm)) {
            ev.total_vm_kb = to_kb(pages);
            ev.present |= field::TOTAL_VM;
        }
    }
    if ev.present & field::ANON_RSS == 0 {
        if let Some(pages) = rss_pages(mm, offset!(rss_anon_index)) {
            ev.anon_rss_kb = to_kb(pages);
            ev.present |= field::ANON_RSS;
        }
    }
    if ev.present & field::FILE_RSS == 0 {
        if let Some(pages) = rss_pages(mm, offset!(rss_file_index)) {
            ev.file_rss_kb = to_kb(pages);
            ev.present |= field::FILE_RSS;
        }
    }
    if ev.present & field::SHMEM_RSS == 0 {
        if let Some(pages) = rss_pages(mm, offset!(rss_shmem_index)) {
            ev.shmem_rss_kb = to_kb(pages);
            ev.present |= field::SHMEM_RSS;
        }
    }
    if ev.present & field::PGTABLES == 0 {
        if let Some(bytes) = read::<i64>(mm, offset!(mm_pgtables_bytes)) {
            ev.pgtables_kb = if bytes < 0 { 0 } else { bytes as u64 >> 10 };
            ev.present |= field::PGTABLES;
        }
    }
}
