#![no_std]
//! Fixed-layout records shared by the eBPF programs and userspace, and the
//! kernel layout table ([`layout`]) userspace fills for the programs.
//!
//! Everything here is `#[repr(C)]`, made of integers and byte arrays only, with
//! explicit padding, so both sides agree on the layout byte for byte. The owned,
//! documented event type lives in the `oomtrace` crate (`event.rs`).

#[cfg(feature = "user")]
extern crate std;

pub mod kubelet;
pub mod layout;

pub use layout::{ABSENT, KernelLayout};

/// Longest cgroup directory name captured in the kernel (kernfs names are
/// bounded by NAME_MAX; container scopes are ~90 bytes).
pub const CGROUP_NAME_LEN: usize = 128;
/// Deepest cgroup nesting the kernel side follows, both to capture a path and
/// to infer the OOMing memcg. Real layouts are at most ~12 levels deep (a kind
/// node inside docker-in-docker inside a pod); 32 leaves room to spare.
pub const MAX_CGROUP_DEPTH: usize = 32;
/// Bytes of names a captured path holds (the deepest kind-in-docker paths are
/// ~400 bytes). A power of two: the kernel side bounds lengths with a mask,
/// which every verifier follows.
pub const CGROUP_PATH_NAMES_LEN: usize = 2048;
/// One captured name at most: NAME_MAX plus its NUL. The capture is cut
/// ([`path::LENGTH_CUT`]) when less room than this is left.
pub const CGROUP_PATH_NAME_MAX: usize = 256;
/// `TASK_COMM_LEN` in the kernel.
pub const COMM_LEN: usize = 16;

/// Which program supplied data to a record (`RawOomEvent::sources`).
pub mod source {
    pub const TRACEPOINT: u32 = 1 << 0;
    pub const TP_BTF: u32 = 1 << 1;
    pub const RAW_TP: u32 = 1 << 2;
    pub const FENTRY: u32 = 1 << 3;
    pub const KPROBE: u32 = 1 << 4;
    /// `signal_generate` as a classic tracepoint.
    pub const SIGNAL: u32 = 1 << 5;
    pub const SIGNAL_TP_BTF: u32 = 1 << 6;
    pub const SIGNAL_RAW_TP: u32 = 1 << 7;
}

/// The memcg limit reclaim seen under one memory cgroup (keyed by its kernfs
/// id, the inode number of its directory): every run of
/// `try_to_free_mem_cgroup_pages` by a task in it or below, and what those
/// runs freed. Counts only grow; userspace takes differences.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawReclaim {
    pub runs: u64,
    pub reclaimed_pages: u64,
    /// CLOCK_MONOTONIC of the last run's end.
    pub last_ns: u64,
}

/// Bits of `RawOomEvent::present`: a field is meaningful only when its bit is set.
pub mod field {
    pub const VICTIM_PID: u64 = 1 << 0;
    pub const VICTIM_TGID: u64 = 1 << 1;
    pub const VICTIM_COMM: u64 = 1 << 2;
    pub const VICTIM_UID: u64 = 1 << 3;
    pub const OOM_SCORE_ADJ: u64 = 1 << 4;
    pub const TOTAL_VM: u64 = 1 << 5;
    pub const ANON_RSS: u64 = 1 << 6;
    pub const FILE_RSS: u64 = 1 << 7;
    pub const SHMEM_RSS: u64 = 1 << 8;
    pub const PGTABLES: u64 = 1 << 9;
    pub const VICTIM_MEMCG: u64 = 1 << 10;
    /// The `oom_kill_process` context was found (totalpages, points, gfp, order).
    pub const CONTEXT: u64 = 1 << 11;
    pub const CONSTRAINT: u64 = 1 << 12;
    /// `oom_memcg` names the OOMing memcg (from the context, or inferred).
    pub const OOM_MEMCG: u64 = 1 << 13;
    pub const MEMCG_USAGE: u64 = 1 << 14;
    pub const MEMCG_LIMIT: u64 = 1 << 15;
    /// `GROUP_KILL` in `flags` is meaningful (the context probe could read `oom_group`).
    pub const GROUP_KILL_KNOWN: u64 = 1 << 16;
}

/// Bits of `RawOomEvent::flags`.
pub mod flag {
    /// The kernel sent SIGKILL to the victim on this OOM path (meaningful only
    /// when the signal probe is attached; userspace knows whether it is).
    pub const KILLED: u32 = 1 << 0;
    /// `memory.oom.group`: the whole cgroup is being killed.
    pub const GROUP_KILL: u32 = 1 << 1;
    /// `oom_memcg` was inferred from page counters (no `oom_kill_process` probe).
    pub const OOM_MEMCG_INFERRED: u32 = 1 << 2;
    /// The walk reached the root and no memcg on the victim's path was at its
    /// limit: the OOM was not a memcg OOM.
    pub const NO_MEMCG_AT_LIMIT: u32 = 1 << 3;
    /// The walk stopped at `MAX_CGROUP_DEPTH` levels before the root without
    /// finding a memcg at its limit: the scope is unknown.
    pub const WALK_DEPTH_LIMIT: u32 = 1 << 4;
    /// The victim's memory cgroup or an ancestor could not be read (or the
    /// victim's task was not available): the scope is unknown.
    pub const WALK_UNREADABLE: u32 = 1 << 5;
}

/// How a captured path ([`RawCgroupPath::end`]) ended.
pub mod path {
    /// Reached the hierarchy root: the path is complete.
    pub const ROOT: u32 = 1;
    /// Stopped after `MAX_CGROUP_DEPTH` levels.
    pub const DEPTH_CUT: u32 = 2;
    /// Stopped when less than `CGROUP_PATH_NAME_MAX` of the `CGROUP_PATH_NAMES_LEN` bytes were left.
    pub const LENGTH_CUT: u32 = 3;
    /// An ancestor's kernfs node could not be read.
    pub const UNREADABLE: u32 = 4;
}

/// Index of the counters in the `STATS` per-CPU array.
pub mod stat {
    /// A record could not be written: the ring buffer was full.
    pub const RINGBUF_FULL: u32 = 0;
    pub const COUNT: u32 = 1;
}

/// A cgroup as captured in the kernel at event time: its kernfs id, its
/// parent's id and its directory name, so userspace can name it even after the
/// directory was removed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawCgroup {
    pub id: u64,
    pub parent_id: u64,
    pub name: [u8; CGROUP_NAME_LEN],
}

/// The victim's memory cgroup and its ancestors as the kernel saw them at the
/// kill, nearest first, so userspace can name the cgroup without the live
/// hierarchy (it is usually gone by the time the record is read).
///
/// Only the first `names_len` bytes of `names` are sent: it is the last field
/// of the record, whose tail is left out of the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawCgroupPath {
    /// kernfs ids: `ids[0]` is the victim's cgroup, then each parent; `levels` are set.
    pub ids: [u64; MAX_CGROUP_DEPTH],
    /// kernfs id of the nearest ancestor not captured (when `end` is not `path::ROOT`; 0 if unknown).
    pub uncaptured_id: u64,
    pub levels: u32,
    /// `path::*`.
    pub end: u32,
    /// Bytes of `names` used.
    pub names_len: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// The levels' names, each NUL-terminated, the victim's first; the root's
    /// name is empty.
    pub names: [u8; CGROUP_PATH_NAMES_LEN],
}

/// The `oom_kill_process` context, keyed by the trigger's pid_tgid, waiting for
/// the `mark_victim` records of the same invocation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawOomContext {
    pub ktime_ns: u64,
    /// `struct mem_cgroup *` that hit its limit; 0 for a global OOM.
    pub oom_memcg_ptr: u64,
    /// `oc->chosen` (`struct task_struct *`): lets the classic tracepoint,
    /// which passes only a pid, read the chosen victim's task.
    pub chosen_task_ptr: u64,
    pub totalpages: u64,
    pub chosen_points: i64,
    pub chosen_pid: u32,
    pub constraint: u32,
    pub gfp_mask: u32,
    pub order: i32,
    /// `SOURCE_FENTRY` or `SOURCE_KPROBE`.
    pub source: u32,
    /// 1 if `memory.oom.group` applies, 0 if not, `u32::MAX` if unknown.
    pub group_kill: u32,
}

/// One OOM victim, as written to the ring buffer by the `mark_victim` program.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawOomEvent {
    /// `field::*` bits.
    pub present: u64,
    /// `source::*` bits.
    pub sources: u32,
    /// `flag::*` bits.
    pub flags: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) at `mark_victim`.
    pub ktime_ns: u64,
    /// `bpf_ktime_get_ns()` at `oom_kill_process`: identifies the OOM invocation.
    pub context_ktime_ns: u64,
    pub trigger_pid: u32,
    pub trigger_tgid: u32,
    pub victim_pid: u32,
    pub victim_tgid: u32,
    pub victim_uid: u32,
    pub oom_score_adj: i32,
    pub order: i32,
    pub gfp_mask: u32,
    pub constraint: u32,
    /// Explicit padding: keeps the u64s below 8-byte aligned.
    pub _pad: u32,
    pub trigger_comm: [u8; COMM_LEN],
    pub victim_comm: [u8; COMM_LEN],
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub totalpages: u64,
    pub chosen_points: i64,
    pub memcg_usage_pages: u64,
    pub memcg_limit_pages: u64,
    pub oom_memcg: RawCgroup,
    /// The victim's memory cgroup (`field::VICTIM_MEMCG`). Last: its tail is not sent.
    pub victim_memcg: RawCgroupPath,
}

impl RawOomEvent {
    /// Bytes of a record carrying `names_len` bytes of path names.
    pub const fn sent_len(names_len: usize) -> usize {
        core::mem::size_of::<Self>() - CGROUP_PATH_NAMES_LEN + names_len
    }
}

/// A SIGKILL seen on `signal:signal_generate`, keyed by the sender's pid_tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawKillSignal {
    pub ktime_ns: u64,
    pub target_pid: u32,
    /// The program that saw it (`source::SIGNAL*`).
    pub source: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all these types are #[repr(C)], made only of integers and byte
    // arrays with no implicit padding, so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::KernelLayout {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RawOomEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RawOomContext {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RawKillSignal {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RawReclaim {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn records_have_no_implicit_padding() {
        assert_eq!(size_of::<RawCgroup>(), 16 + CGROUP_NAME_LEN);
        assert_eq!(size_of::<RawCgroupPath>(), 8 * MAX_CGROUP_DEPTH + 8 + 4 * 4 + CGROUP_PATH_NAMES_LEN);
        assert_eq!(size_of::<RawOomContext>(), 8 * 5 + 4 * 6);
        assert_eq!(size_of::<RawKillSignal>(), 16);
        // (KernelLayout has its own test in layout.rs.)
        let fixed = 8 + 4 + 4 + 8 + 8 + 4 * 10 + 2 * COMM_LEN + 8 * 9;
        assert_eq!(size_of::<RawOomEvent>(), fixed + size_of::<RawCgroup>() + size_of::<RawCgroupPath>());
        assert_eq!(RawOomEvent::sent_len(0), fixed + size_of::<RawCgroup>() + 8 * MAX_CGROUP_DEPTH + 8 + 4 * 4);
    }
}
