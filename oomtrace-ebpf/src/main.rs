//! eBPF programs on the kernel's OOM path.
//!
//! - `oom_kill.rs`: `oom_kill_process` (fentry or kprobe) stores the
//!   `oom_control` context, keyed by the allocating ("trigger") task.
//! - `signal.rs`: `signal:signal_generate` remembers the SIGKILL the trigger sends.
//! - `mark_victim.rs`: `oom:mark_victim` (tracepoint, tp_btf or raw_tp) builds
//!   one record per victim, joins both of the above, and writes it to `EVENTS`.
//! - `reclaim.rs`: `vmscan:mm_vmscan_memcg_reclaim_end` counts memcg limit
//!   reclaim per memory cgroup in `RECLAIM` (for the warnings before a kill).
//! - `kernel.rs`: reads of kernel memory at offsets resolved from BTF, the
//!   memcg ancestor walk, and filling a record field once.
//!
//! Failure paths (a record dropped, a kernel read that failed, a walk cut
//! short, a map insert refused) say so through aya-log (`warn!`/`debug!`).
//! Its `AYA_LOG_LEVEL` global lives in `.rodata` beside [`LAYOUT`]: userspace
//! writes 0 there unless `--ebpf-log` asks for messages, and the verifier,
//! seeing the constant, drops every log site as dead code: off costs nothing.
#![no_std]
#![no_main]

mod kernel;
mod mark_victim;
mod oom_kill;
mod reclaim;
mod signal;

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use oomtrace_common::{KernelLayout, RawKillSignal, RawOomContext, RawOomEvent, RawReclaim, stat};

/// Kernel layout of the running kernel, written by userspace with
/// `EbpfLoader::override_global` before load. It lives in `.rodata`, which
/// the loader freezes, so the verifier sees constants.
#[unsafe(no_mangle)]
static LAYOUT: KernelLayout = KernelLayout::absent();

/// One record per OOM victim.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(512 * 1024, 0);

/// `oom_kill_process` contexts by trigger pid_tgid. Bounded; LRU evicts the oldest.
#[map]
static OOM_CONTEXTS: LruHashMap<u64, RawOomContext> = LruHashMap::with_max_entries(1024, 0);

/// The last OOM SIGKILL each trigger sent, by trigger pid_tgid.
#[map]
static KILL_SIGNALS: LruHashMap<u64, RawKillSignal> = LruHashMap::with_max_entries(1024, 0);

/// Memcg limit reclaim by memory cgroup kernfs id (`reclaim.rs`). LRU: a
/// cgroup not reclaimed in a long while makes room.
#[map]
static RECLAIM: LruHashMap<u64, RawReclaim> = LruHashMap::with_max_entries(16384, 0);

/// Where a record is assembled (it is larger than the 512-byte BPF stack).
#[map]
static EVENT_SCRATCH: PerCpuArray<RawOomEvent> = PerCpuArray::with_max_entries(1, 0);

/// Counters userspace sums over CPUs and reports (`stat::*`).
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Reads one member of [`LAYOUT`] without letting the compiler fold the
/// build-time default into the code.
macro_rules! layout {
    ($field:ident) => {
        // SAFETY: LAYOUT is a plain static that is never written by the
        // program; the volatile read only prevents constant folding.
        unsafe { core::ptr::read_volatile(&raw const crate::LAYOUT.$field) }
    };
}
pub(crate) use layout;

fn count(index: u32) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // SAFETY: the pointer comes from the map lookup and points at this
        // CPU's slot, which no other program touches concurrently.
        unsafe { *counter += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible: bpf_probe_read_kernel and friends require it.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
