//! Builds the [`KernelOffsets`] table the eBPF programs read kernel memory
//! with, from the running kernel's BTF and tracepoint format files. Nothing
//! here is a literal offset: what the kernel does not describe stays ABSENT,
//! and the programs then leave the matching event fields out.

use oomtrace_common::{ABSENT, KernelOffsets};

use super::{
    btf::{Btf, Kind},
    tracefs::TracepointField,
};

/// Values of `enum oom_constraint`, for decoding the event's scope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConstraintValues {
    pub none: Option<i64>,
    pub cpuset: Option<i64>,
    pub memory_policy: Option<i64>,
    pub memcg: Option<i64>,
}

impl ConstraintValues {
    pub fn from_btf(btf: &Btf) -> Self {
        Self {
            none: btf.enum_value("CONSTRAINT_NONE"),
            cpuset: btf.enum_value("CONSTRAINT_CPUSET"),
            memory_policy: btf.enum_value("CONSTRAINT_MEMORY_POLICY"),
            memcg: btf.enum_value("CONSTRAINT_MEMCG"),
        }
    }

    /// The values every kernel since 5.0 uses, for when BTF is missing.
    pub fn historical() -> Self {
        Self { none: Some(0), cpuset: Some(1), memory_policy: Some(2), memcg: Some(3) }
    }
}

/// Fills the BTF-derived part of the table.
pub fn from_btf(btf: &Btf, offsets: &mut KernelOffsets) {
    let m = |s: &str, f: &str| btf.member_offset(s, f).unwrap_or(ABSENT);
    let first = |s: &str, fields: &[&str]| fields.iter().map(|f| m(s, f)).find(|&o| o != ABSENT).unwrap_or(ABSENT);
    let o = offsets;
    o.oc_memcg = m("oom_control", "memcg");
    o.oc_totalpages = m("oom_control", "totalpages");
    o.oc_chosen = m("oom_control", "chosen");
    o.oc_chosen_points = m("oom_control", "chosen_points");
    o.oc_constraint = m("oom_control", "constraint");
    o.oc_gfp_mask = m("oom_control", "gfp_mask");
    o.oc_order = m("oom_control", "order");
    o.task_pid = m("task_struct", "pid");
    o.task_tgid = m("task_struct", "tgid");
    o.task_comm = m("task_struct", "comm");
    o.task_cgroups = m("task_struct", "cgroups");
    o.task_mm = m("task_struct", "mm");
    o.task_signal = m("task_struct", "signal");
    o.task_real_cred = m("task_struct", "real_cred");
    o.signal_oom_score_adj = m("signal_struct", "oom_score_adj");
    // kuid_t is `struct { uid_t val; }`.
    o.cred_uid = add(m("cred", "uid"), btf.member_offset("kuid_t", "val").unwrap_or(0));
    o.mm_total_vm = m("mm_struct", "total_vm");
    o.mm_pgtables_bytes = m("mm_struct", "pgtables_bytes");
    rss_layout(btf, o);
    o.css_set_dfl_cgrp = m("css_set", "dfl_cgrp");
    o.css_set_subsys = m("css_set", "subsys");
    o.memory_cgrp_id = btf.enum_value("memory_cgrp_id").map_or(ABSENT, |v| v as u32);
    o.css_cgroup = m("cgroup_subsys_state", "cgroup");
    o.css_parent = m("cgroup_subsys_state", "parent");
    o.cgroup_kn = m("cgroup", "kn");
    o.kn_id = m("kernfs_node", "id");
    o.kn_name = m("kernfs_node", "name");
    // Renamed to __parent in 6.15 when it became RCU-protected.
    o.kn_parent = first("kernfs_node", &["parent", "__parent"]);
    o.memcg_css = m("mem_cgroup", "css");
    o.memcg_memory = m("mem_cgroup", "memory");
    o.memcg_oom_group = m("mem_cgroup", "oom_group");
    // atomic_long_t usage: its `counter` is at offset 0.
    o.page_counter_usage = m("page_counter", "usage");
    o.page_counter_max = m("page_counter", "max");
}

fn add(base: u32, delta: u32) -> u32 {
    if base == ABSENT { ABSENT } else { base + delta }
}

/// `mm->rss_stat` is `struct mm_rss_stat { atomic_long_t count[N]; }` before
/// 6.2 and `struct percpu_counter rss_stat[N]` since; `get_mm_counter()` reads
/// `count` in both, which is what the kernel log prints.
fn rss_layout(btf: &Btf, o: &mut KernelOffsets) {
    let index = |name: &str| btf.enum_value(name).map_or(ABSENT, |v| v as u32);
    o.rss_file_index = index("MM_FILEPAGES");
    o.rss_anon_index = index("MM_ANONPAGES");
    o.rss_shmem_index = index("MM_SHMEMPAGES");
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

/// Expected size of each `oom/mark_victim` field oomtrace reads.
const MARK_VICTIM_FIELDS: [(&str, u32); 9] = [
    ("pid", 4),
    ("comm", 4),
    ("total_vm", 8),
    ("anon_rss", 8),
    ("file_rss", 8),
    ("shmem_rss", 8),
    ("uid", 4),
    ("pgtables", 8),
    ("oom_score_adj", 2),
];

/// Fills the `oom/mark_victim` field offsets; returns the names of fields
/// that exist with an unexpected size (and are therefore not read).
pub fn from_mark_victim_format(fields: &[TracepointField], o: &mut KernelOffsets) -> Vec<String> {
    let mut rejected = Vec::new();
    for (name, size) in MARK_VICTIM_FIELDS {
        let Some(field) = fields.iter().find(|f| f.name == name) else { continue };
        if field.size != size {
            rejected.push(format!("{name} (size {} instead of {size})", field.size));
            continue;
        }
        let slot = match name {
            "pid" => &mut o.tp_victim_pid,
            "comm" if field.declaration.starts_with("__data_loc") => &mut o.tp_victim_comm,
            "comm" => continue,
            "total_vm" => &mut o.tp_total_vm,
            "anon_rss" => &mut o.tp_anon_rss,
            "file_rss" => &mut o.tp_file_rss,
            "shmem_rss" => &mut o.tp_shmem_rss,
            "uid" => &mut o.tp_uid,
            "pgtables" => &mut o.tp_pgtables,
            _ => &mut o.tp_oom_score_adj,
        };
        *slot = field.offset;
    }
    rejected
}

/// Fills the `signal/signal_generate` field offsets (all 4-byte ints).
pub fn from_signal_generate_format(fields: &[TracepointField], o: &mut KernelOffsets) {
    let at = |name: &str| fields.iter().find(|f| f.name == name && f.size == 4).map_or(ABSENT, |f| f.offset);
    o.tp_signal_sig = at("sig");
    o.tp_signal_code = at("code");
    o.tp_signal_pid = at("pid");
    o.tp_signal_result = at("result");
}

/// Page size and `PAGE_COUNTER_MAX` (LONG_MAX / PAGE_SIZE on 64-bit kernels).
pub fn set_page_geometry(o: &mut KernelOffsets, page_size: u64) {
    o.page_shift = page_size.trailing_zeros();
    o.page_counter_unlimited = (i64::MAX as u64) / page_size;
}

/// Names of the offsets the programs need that this kernel lacks, for `check`
/// and the startup log.
pub fn missing(o: &KernelOffsets) -> Vec<&'static str> {
    let all: [(&str, u32); 38] = [
        ("oom_control.memcg", o.oc_memcg),
        ("oom_control.totalpages", o.oc_totalpages),
        ("oom_control.chosen", o.oc_chosen),
        ("oom_control.chosen_points", o.oc_chosen_points),
        ("oom_control.constraint", o.oc_constraint),
        ("oom_control.gfp_mask", o.oc_gfp_mask),
        ("oom_control.order", o.oc_order),
        ("task_struct.pid", o.task_pid),
        ("task_struct.tgid", o.task_tgid),
        ("task_struct.comm", o.task_comm),
        ("task_struct.cgroups", o.task_cgroups),
        ("task_struct.mm", o.task_mm),
        ("task_struct.signal", o.task_signal),
        ("task_struct.real_cred", o.task_real_cred),
        ("signal_struct.oom_score_adj", o.signal_oom_score_adj),
        ("cred.uid", o.cred_uid),
        ("mm_struct.total_vm", o.mm_total_vm),
        ("mm_struct.rss_stat", o.mm_rss_stat),
        ("mm_struct.pgtables_bytes", o.mm_pgtables_bytes),
        ("rss counter layout", o.rss_counter_value),
        ("MM_FILEPAGES", o.rss_file_index),
        ("MM_ANONPAGES", o.rss_anon_index),
        ("MM_SHMEMPAGES", o.rss_shmem_index),
        ("css_set.dfl_cgrp", o.css_set_dfl_cgrp),
        ("css_set.subsys", o.css_set_subsys),
        ("memory_cgrp_id", o.memory_cgrp_id),
        ("cgroup_subsys_state.cgroup", o.css_cgroup),
        ("cgroup_subsys_state.parent", o.css_parent),
        ("cgroup.kn", o.cgroup_kn),
        ("kernfs_node.id", o.kn_id),
        ("kernfs_node.name", o.kn_name),
        ("kernfs_node.parent", o.kn_parent),
        ("mem_cgroup.css", o.memcg_css),
        ("mem_cgroup.memory", o.memcg_memory),
        ("mem_cgroup.oom_group", o.memcg_oom_group),
        ("page_counter.usage", o.page_counter_usage),
        ("page_counter.max", o.page_counter_max),
        ("signal_generate.sig", o.tp_signal_sig),
    ];
    all.iter().filter(|(_, v)| *v == ABSENT).map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tracefs::parse_format;

    #[test]
    fn a_pid_only_format_leaves_the_size_fields_absent() {
        let fields = parse_format("\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n");
        let mut o = KernelOffsets::absent();
        assert!(from_mark_victim_format(&fields, &mut o).is_empty());
        assert_eq!(o.tp_victim_pid, 8);
        assert_eq!(o.tp_victim_comm, ABSENT);
        assert_eq!(o.tp_anon_rss, ABSENT);
        assert_eq!(o.tp_oom_score_adj, ABSENT);
    }

    #[test]
    fn a_field_of_unexpected_size_is_rejected_not_misread() {
        let fields = parse_format(
            "\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned int anon_rss;\toffset:16;\tsize:4;\tsigned:0;\n",
        );
        let mut o = KernelOffsets::absent();
        let rejected = from_mark_victim_format(&fields, &mut o);
        assert_eq!(rejected, ["anon_rss (size 4 instead of 8)"]);
        assert_eq!(o.tp_anon_rss, ABSENT);
    }

    #[test]
    fn page_geometry_for_4k_pages() {
        let mut o = KernelOffsets::absent();
        set_page_geometry(&mut o, 4096);
        assert_eq!(o.page_shift, 12);
        // PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE
        assert_eq!(o.page_counter_unlimited, 2_251_799_813_685_247);
    }
}
