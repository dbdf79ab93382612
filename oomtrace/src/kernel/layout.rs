//! Fills the [`KernelLayout`] the eBPF programs read kernel memory with, from
//! the running kernel's BTF, tracepoint format files and page size, following
//! the lookup declared with each entry (`oomtrace_common::layout`). Nothing
//! here is a literal offset: what the kernel does not describe stays ABSENT,
//! and the programs then leave the matching event fields out.

use oomtrace_common::{ABSENT, KernelLayout, layout::Lookup};

use super::hooks::Tracepoint;

use super::{
    btf::{Btf, Kind},
    tracefs::TracepointField,
};

/// Fills every struct-member and enum-value entry, then the rss counter layout.
pub fn fill_from_btf(btf: &Btf, layout: &mut KernelLayout) {
    for entry in KernelLayout::ENTRIES {
        let value = match entry.lookup {
            Lookup::Member { strukt, members } => members.iter().find_map(|member| btf.member_offset(strukt, member)),
            Lookup::EnumValue { enumerator } => btf.enum_value(enumerator).map(|value| value as u32),
            Lookup::Tracepoint { .. } | Lookup::Computed { .. } => continue,
        };
        entry.set(layout, value.unwrap_or(ABSENT));
    }
    fill_rss_layout(btf, layout);
}

/// `mm->rss_stat` is `struct mm_rss_stat { atomic_long_t count[N]; }` before
/// 6.2 and `struct percpu_counter rss_stat[N]` since; `get_mm_counter()` reads
/// `count` in both, which is what the kernel log prints.
fn fill_rss_layout(btf: &Btf, o: &mut KernelLayout) {
    let Some(mm) = btf.find(Kind::Struct, "mm_struct") else { return };
    let Some(member) = btf.member(mm, "rss_stat") else { return };
    if member.bit_offset % 8 != 0 {
        return;
    }
    let rss_type = btf.resolve(member.type_id);
    match btf.kind(rss_type) {
        Some(Kind::Array) => {
            let Some(element) = btf.array_element(rss_type) else { return };
            let (Some(stride), Some(count)) = (btf.size_of(element), btf.member(element, "count")) else {
                return;
            };
            o.mm_rss_stat = member.bit_offset / 8;
            o.rss_counter_stride = stride;
            o.rss_counter_value = count.bit_offset / 8;
        }
        Some(Kind::Struct) => {
            let Some(count) = btf.member(rss_type, "count") else { return };
            o.mm_rss_stat = member.bit_offset / 8;
            o.rss_counter_stride = 8;
            o.rss_counter_value = count.bit_offset / 8;
        }
        _ => {}
    }
}

/// Fills the entries read from the `system/event` tracepoint's record;
/// returns the fields that exist with an unexpected size (and are therefore
/// not read).
pub fn fill_from_format(tracepoint: Tracepoint, fields: &[TracepointField], layout: &mut KernelLayout) -> Vec<String> {
    let mut rejected = Vec::new();
    for entry in KernelLayout::tracepoint_entries(tracepoint.category(), tracepoint.event()) {
        let Lookup::Tracepoint { field: name, size, data_loc, .. } = entry.lookup else { continue };
        let Some(field) = fields.iter().find(|f| f.name == name) else { continue };
        if field.size != size {
            rejected.push(format!("{name} (size {} instead of {size})", field.size));
            continue;
        }
        if data_loc && !field.declaration.starts_with("__data_loc") {
            continue;
        }
        entry.set(layout, field.offset);
    }
    rejected
}

/// Fields of the `system/event` tracepoint the programs would read but this
/// kernel's record does not offer (they are then read from the victim's mm).
pub fn unread_tracepoint_fields(layout: &KernelLayout, tracepoint: Tracepoint) -> Vec<&'static str> {
    KernelLayout::tracepoint_entries(tracepoint.category(), tracepoint.event())
        .filter(|entry| entry.is_absent(layout))
        .filter_map(|entry| match entry.lookup {
            Lookup::Tracepoint { field, .. } => Some(field),
            _ => None,
        })
        .collect()
}

/// Page size and `PAGE_COUNTER_MAX` (LONG_MAX / PAGE_SIZE on 64-bit kernels).
pub fn set_page_geometry(o: &mut KernelLayout, page_size: u64) {
    o.page_shift = page_size.trailing_zeros();
    o.page_counter_unlimited = (i64::MAX as u64) / page_size;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{
        hooks::{MARK_VICTIM, SIGNAL_GENERATE},
        tracefs::parse_format,
    };

    fn mark_victim(format: &str, layout: &mut KernelLayout) -> Vec<String> {
        fill_from_format(MARK_VICTIM, &parse_format(format), layout)
    }

    #[test]
    fn a_pid_only_format_leaves_the_size_fields_absent() {
        let mut o = KernelLayout::absent();
        assert!(mark_victim("\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n", &mut o).is_empty());
        assert_eq!(o.tp_victim_pid, 8);
        assert_eq!(o.tp_victim_comm, ABSENT);
        assert_eq!(o.tp_anon_rss, ABSENT);
        assert_eq!(o.tp_oom_score_adj, ABSENT);
        let unread = unread_tracepoint_fields(&o, MARK_VICTIM);
        assert_eq!(
            unread,
            ["comm", "total_vm", "anon_rss", "file_rss", "shmem_rss", "uid", "pgtables", "oom_score_adj"]
        );
    }

    #[test]
    fn a_field_of_unexpected_size_is_rejected_not_misread() {
        let mut o = KernelLayout::absent();
        let rejected = mark_victim(
            "\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned int anon_rss;\toffset:16;\tsize:4;\tsigned:0;\n",
            &mut o,
        );
        assert_eq!(rejected, ["anon_rss (size 4 instead of 8)"]);
        assert_eq!(o.tp_anon_rss, ABSENT);
    }

    #[test]
    fn comm_is_read_only_as_a_data_loc_string() {
        let mut o = KernelLayout::absent();
        mark_victim("\tfield:char comm[4];\toffset:12;\tsize:4;\tsigned:0;\n", &mut o);
        assert_eq!(o.tp_victim_comm, ABSENT);
        mark_victim("\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;\n", &mut o);
        assert_eq!(o.tp_victim_comm, 12);
    }

    #[test]
    fn signal_generate_fields_fill_only_the_signal_entries() {
        let format = "\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int code;\toffset:16;\tsize:4;\tsigned:1;\n\tfield:pid_t pid;\toffset:36;\tsize:4;\tsigned:1;\n";
        let mut o = KernelLayout::absent();
        assert!(fill_from_format(SIGNAL_GENERATE, &parse_format(format), &mut o).is_empty());
        assert_eq!((o.tp_signal_sig, o.tp_signal_code, o.tp_signal_pid), (8, 16, 36));
        assert_eq!(o.tp_victim_pid, ABSENT, "the mark_victim pid is another tracepoint's field");
    }

    #[test]
    fn missing_names_every_required_entry_as_check_prints_it() {
        let o = KernelLayout::absent();
        assert_eq!(
            o.missing(),
            [
                "oom_control.memcg",
                "oom_control.totalpages",
                "oom_control.chosen",
                "oom_control.chosen_points",
                "oom_control.constraint",
                "oom_control.gfp_mask",
                "oom_control.order",
                "task_struct.pid",
                "task_struct.tgid",
                "task_struct.comm",
                "task_struct.cgroups",
                "task_struct.mm",
                "task_struct.signal",
                "task_struct.real_cred",
                "signal_struct.oom_score_adj",
                "cred.uid",
                "mm_struct.total_vm",
                "mm_struct.rss_stat",
                "mm_struct.pgtables_bytes",
                "rss counter layout",
                "MM_FILEPAGES",
                "MM_ANONPAGES",
                "MM_SHMEMPAGES",
                "css_set.subsys",
                "memory_cgrp_id",
                "cgroup_subsys_state.cgroup",
                "cgroup_subsys_state.parent",
                "cgroup.kn",
                "kernfs_node.id",
                "kernfs_node.name",
                "kernfs_node.parent",
                "mem_cgroup.css",
                "mem_cgroup.memory",
                "mem_cgroup.oom_group",
                "page_counter.usage",
                "page_counter.max",
                "signal_generate.sig",
            ]
        );
    }

    #[test]
    fn page_geometry_for_4k_pages() {
        let mut o = KernelLayout::absent();
        set_page_geometry(&mut o, 4096);
        assert_eq!(o.page_shift, 12);
        // PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE
        assert_eq!(o.page_counter_unlimited, 2_251_799_813_685_247);
    }
}
