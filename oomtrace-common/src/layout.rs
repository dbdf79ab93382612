//! The kernel layout table: every kernel fact the eBPF programs need that
//! userspace resolves before load (member offsets, enum values, tracepoint
//! field offsets, the page geometry), declared once.
//!
//! [`kernel_layout!`] turns the single list at the bottom of this file into the
//! `#[repr(C)]` [`KernelLayout`] struct and its all-absent default (all the
//! `no_std` eBPF side sees) and, with the "user" feature, into
//! [`KernelLayout::ENTRIES`]: how userspace finds each member and which of them
//! `missing()` reports.

/// Marks a kernel offset (or tracepoint field, or enum value) the running
/// kernel does not have.
pub const ABSENT: u32 = u32::MAX;

/// How userspace finds one entry of [`KernelLayout`].
#[cfg(feature = "user")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Byte offset of a member in a BTF struct; the first of `members` the
    /// kernel has (members get renamed across versions).
    Member { strukt: &'static str, members: &'static [&'static str] },
    /// Value of a BTF enumerator (an index, not an offset).
    EnumValue { enumerator: &'static str },
    /// Offset of a field in a tracepoint record, from its `format` file; read
    /// only when its size is `size` (and, with `data_loc`, when it is a
    /// `__data_loc` string).
    Tracepoint { system: &'static str, event: &'static str, field: &'static str, size: u32, data_loc: bool },
    /// Worked out by code in userspace (`oomtrace::kernel::layout`) from
    /// several BTF types or from the system; `what` names it in reports.
    Computed { what: &'static str },
}

/// One entry of [`KernelLayout`], as userspace sees it.
#[cfg(feature = "user")]
#[derive(Clone, Copy, Debug)]
pub struct LayoutEntry {
    /// What `missing()` calls it: `oom_control.memcg`, `MM_ANONPAGES`,
    /// `signal_generate.sig`, `rss counter layout`.
    pub name: &'static str,
    pub lookup: Lookup,
    /// `missing()` reports this entry when it is [`ABSENT`]: the programs lose
    /// data without it. (Optional entries have a fallback, e.g. the tracepoint
    /// fields that only 6.9+ kernels have.)
    pub required: bool,
    get: fn(&KernelLayout) -> u64,
    set: fn(&mut KernelLayout, u32),
}

#[cfg(feature = "user")]
impl LayoutEntry {
    pub fn set(&self, layout: &mut KernelLayout, value: u32) {
        (self.set)(layout, value)
    }

    pub fn is_absent(&self, layout: &KernelLayout) -> bool {
        (self.get)(layout) == ABSENT as u64
    }
}

/// Declares [`KernelLayout`] from one list of entries:
///
/// ```text
/// /// doc
/// field: u32 = [optional] member(strukt.member | other_name);
/// field: u32 = [optional] enum_value(ENUMERATOR);
/// field: u32 = [optional] tracepoint(system/event.field, size N [, data_loc]);
/// field: u32 = [optional] computed("what it stands for") [, default EXPR];
/// ```
///
/// Every entry defaults to [`ABSENT`] unless it names a `default`.
macro_rules! kernel_layout {
    (
        $(
            $(#[doc = $doc:literal])*
            $field:ident : $ty:ty = $($kind:ident)+ ( $($spec:tt)* ) $(, default $default:expr)? ;
        )*
    ) => {
        /// Kernel layout facts resolved in userspace from BTF, the tracepoint
        /// format files and the system, handed to the programs through a
        /// `.rodata` global before load. Each member is a byte offset, an enum
        /// value or a page-size fact; [`ABSENT`] when the kernel lacks it.
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct KernelLayout {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl KernelLayout {
            /// Every entry absent: the programs then read nothing but what helpers give.
            pub const fn absent() -> Self {
                Self { $( $field: kernel_layout!(@default $($default)?), )* }
            }

            /// Number of `u32` and of `u64` members (the layout-size test's input).
            #[cfg(test)]
            const WIDTHS: (usize, usize) = {
                let (mut u32s, mut u64s) = (0, 0);
                $(
                    match core::mem::size_of::<$ty>() {
                        4 => u32s += 1,
                        8 => u64s += 1,
                        _ => panic!("KernelLayout members are u32 or u64"),
                    }
                )*
                (u32s, u64s)
            };

            /// How userspace finds each member, in declaration order.
            #[cfg(feature = "user")]
            pub const ENTRIES: &'static [LayoutEntry] = &[
                $(
                    LayoutEntry {
                        name: kernel_layout!(@name $($kind)+ ( $($spec)* )),
                        lookup: kernel_layout!(@lookup $($kind)+ ( $($spec)* )),
                        required: kernel_layout!(@required $($kind)+),
                        get: |layout| layout.$field as u64,
                        set: |layout, value| layout.$field = value as $ty,
                    },
                )*
            ];
        }
    };

    (@default) => { ABSENT };
    (@default $default:expr) => { $default };

    (@required optional $kind:ident) => { false };
    (@required $kind:ident) => { true };

    (@lookup optional $kind:ident ( $($spec:tt)* )) => { kernel_layout!(@lookup $kind ( $($spec)* )) };
    (@lookup member ( $strukt:ident . $($member:ident)|+ )) => {
        Lookup::Member { strukt: stringify!($strukt), members: &[$(stringify!($member)),+] }
    };
    (@name optional $kind:ident ( $($spec:tt)* )) => { kernel_layout!(@name $kind ( $($spec)* )) };
    (@name member ( $strukt:ident . $member:ident $(| $other:ident)* )) => {
        concat!(stringify!($strukt), ".", stringify!($member))
    };
    (@name enum_value ( $enumerator:ident )) => { stringify!($enumerator) };
    (@name tracepoint ( $system:ident / $event:ident . $tp_field:ident $($rest:tt)* )) => {
        concat!(stringify!($event), ".", stringify!($tp_field))
    };
    (@name computed ( $what:literal )) => { $what };
    (@lookup enum_value ( $enumerator:ident )) => {
        Lookup::EnumValue { enumerator: stringify!($enumerator) }
    };
    (@lookup tracepoint ( $system:ident / $event:ident . $tp_field:ident, size $size:literal $(, $data_loc:ident)? )) => {
        Lookup::Tracepoint {
            system: stringify!($system),
            event: stringify!($event),
            field: stringify!($tp_field),
            size: $size,
            data_loc: kernel_layout!(@data_loc $($data_loc)?),
        }
    };
    (@lookup computed ( $what:literal )) => { Lookup::Computed { what: $what } };

    (@data_loc) => { false };
    (@data_loc data_loc) => { true };
}

kernel_layout! {
    // struct oom_control
    oc_memcg: u32 = member(oom_control.memcg);
    oc_totalpages: u32 = member(oom_control.totalpages);
    oc_chosen: u32 = member(oom_control.chosen);
    oc_chosen_points: u32 = member(oom_control.chosen_points);
    oc_constraint: u32 = member(oom_control.constraint);
    oc_gfp_mask: u32 = member(oom_control.gfp_mask);
    oc_order: u32 = member(oom_control.order);
    // struct task_struct
    task_pid: u32 = member(task_struct.pid);
    task_tgid: u32 = member(task_struct.tgid);
    task_comm: u32 = member(task_struct.comm);
    task_cgroups: u32 = member(task_struct.cgroups);
    task_mm: u32 = member(task_struct.mm);
    task_signal: u32 = member(task_struct.signal);
    task_real_cred: u32 = member(task_struct.real_cred);
    // struct signal_struct / struct cred
    signal_oom_score_adj: u32 = member(signal_struct.oom_score_adj);
    /// `kuid_t` is `struct { uid_t val; }`: the uid is at the member's offset.
    cred_uid: u32 = member(cred.uid);
    // struct mm_struct
    mm_total_vm: u32 = member(mm_struct.total_vm);
    /// `mm_struct.rss_stat`, set only when its type is one oomtrace knows.
    mm_rss_stat: u32 = computed("mm_struct.rss_stat");
    mm_pgtables_bytes: u32 = member(mm_struct.pgtables_bytes);
    /// Distance between two rss counters (8 for `atomic_long_t count[]`,
    /// `sizeof(struct percpu_counter)` since 6.2).
    rss_counter_stride: u32 = optional computed("rss counter stride");
    /// Offset of the value inside one rss counter (`percpu_counter.count`).
    rss_counter_value: u32 = computed("rss counter layout");
    /// `enum { MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES }` values.
    rss_file_index: u32 = enum_value(MM_FILEPAGES);
    rss_anon_index: u32 = enum_value(MM_ANONPAGES);
    rss_shmem_index: u32 = enum_value(MM_SHMEMPAGES);
    // struct css_set
    css_set_subsys: u32 = member(css_set.subsys);
    /// `enum cgroup_subsys_id` value of `memory_cgrp_id` (an index, not an offset).
    memory_cgrp_id: u32 = enum_value(memory_cgrp_id);
    // struct cgroup_subsys_state
    css_cgroup: u32 = member(cgroup_subsys_state.cgroup);
    css_parent: u32 = member(cgroup_subsys_state.parent);
    // struct cgroup / struct kernfs_node
    cgroup_kn: u32 = member(cgroup.kn);
    kn_id: u32 = member(kernfs_node.id);
    kn_name: u32 = member(kernfs_node.name);
    /// Renamed `__parent` in 6.15 when it became RCU-protected.
    kn_parent: u32 = member(kernfs_node.parent | __parent);
    // struct mem_cgroup / struct page_counter
    memcg_css: u32 = member(mem_cgroup.css);
    memcg_memory: u32 = member(mem_cgroup.memory);
    memcg_oom_group: u32 = member(mem_cgroup.oom_group);
    /// `atomic_long_t usage`: its `counter` is at offset 0.
    page_counter_usage: u32 = member(page_counter.usage);
    page_counter_max: u32 = member(page_counter.max);
    // tracepoint oom/mark_victim record (pid only before 6.9)
    tp_victim_pid: u32 = optional tracepoint(oom/mark_victim.pid, size 4);
    tp_victim_comm: u32 = optional tracepoint(oom/mark_victim.comm, size 4, data_loc);
    tp_total_vm: u32 = optional tracepoint(oom/mark_victim.total_vm, size 8);
    tp_anon_rss: u32 = optional tracepoint(oom/mark_victim.anon_rss, size 8);
    tp_file_rss: u32 = optional tracepoint(oom/mark_victim.file_rss, size 8);
    tp_shmem_rss: u32 = optional tracepoint(oom/mark_victim.shmem_rss, size 8);
    tp_uid: u32 = optional tracepoint(oom/mark_victim.uid, size 4);
    tp_pgtables: u32 = optional tracepoint(oom/mark_victim.pgtables, size 8);
    tp_oom_score_adj: u32 = optional tracepoint(oom/mark_victim.oom_score_adj, size 2);
    // tracepoint signal/signal_generate record
    tp_signal_sig: u32 = tracepoint(signal/signal_generate.sig, size 4);
    tp_signal_code: u32 = optional tracepoint(signal/signal_generate.code, size 4);
    tp_signal_pid: u32 = optional tracepoint(signal/signal_generate.pid, size 4);
    /// log2 of the page size.
    page_shift: u32 = optional computed("page shift"), default 12;
    /// `PAGE_COUNTER_MAX`: a page counter `max` at or above this has no limit.
    page_counter_unlimited: u64 = optional computed("PAGE_COUNTER_MAX"), default u64::MAX;
}

#[cfg(feature = "user")]
impl KernelLayout {
    /// Names of the required entries this kernel lacks, for `check` and the
    /// startup log.
    pub fn missing(&self) -> std::vec::Vec<&'static str> {
        Self::ENTRIES.iter().filter(|e| e.required && e.is_absent(self)).map(|e| e.name).collect()
    }

    /// The entries read from one tracepoint's record.
    pub fn tracepoint_entries(system: &str, event: &str) -> impl Iterator<Item = &'static LayoutEntry> {
        Self::ENTRIES.iter().filter(
            move |e| matches!(e.lookup, Lookup::Tracepoint { system: s, event: ev, .. } if s == system && ev == event),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_has_no_implicit_padding() {
        let (u32s, u64s) = KernelLayout::WIDTHS;
        // The u64s follow an even number of u32s: nothing is padded.
        assert_eq!(u32s % 2, 0, "an odd number of u32 members leaves a hole before the u64s");
        assert_eq!(core::mem::size_of::<KernelLayout>(), 4 * u32s + 8 * u64s);
        // Pinned, so that adding or removing an entry is a visible change of
        // the ABI between the programs and userspace.
        assert_eq!((u32s, u64s), (50, 1));
    }

    #[test]
    fn absent_is_absent_except_the_page_geometry() {
        let layout = KernelLayout::absent();
        assert_eq!(layout.oc_memcg, ABSENT);
        assert_eq!(layout.tp_signal_pid, ABSENT);
        assert_eq!(layout.page_shift, 12);
        assert_eq!(layout.page_counter_unlimited, u64::MAX);
    }
}
