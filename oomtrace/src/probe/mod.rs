//! Loads the eBPF programs with this kernel's offsets and attaches them with a
//! fallback chain; each choice is made by trying, logged once, and only the
//! absence of every victim program is fatal.

pub mod attach;
pub mod decode;
pub mod ebpf_log;
pub mod error;
pub mod method;
pub mod reclaim;
pub mod ring;

pub use self::{
    ebpf_log::EbpfLog,
    error::AttachError,
    method::{AttachFailure, AttachPlan, Attached, ContextProbe, Method, Role, VictimProbe},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
};
use oomtrace_common::stat;

use crate::{host::log_startup_memory, kernel::KernelFacts};

/// The eBPF object built from `oomtrace-ebpf` by build.rs.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/oomtrace"));

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("loading the eBPF object failed: {cause}; {advice}")]
    Load { cause: Box<aya::EbpfError>, advice: String },
    #[error(
        "no OOM victim source could be attached (tried: {}); run `oomtrace check` to see \
         what this kernel allows",
        list(.failures)
    )]
    NoVictimSource { failures: Vec<AttachFailure> },
    #[error(
        "{} was requested but could not be attached: {}; run `oomtrace check`, or use --context-probe auto",
        .method.target(),
        .reason.as_ref().map_or_else(|| "unknown".to_owned(), ToString::to_string)
    )]
    RequestedContextProbe { method: Method, reason: Option<AttachError> },
    #[error("the eBPF object lacks map {0} (build mismatch between oomtrace and oomtrace-ebpf)")]
    MissingMap(&'static str),
    #[error("map {name} has an unexpected type: {cause}")]
    MapType { name: &'static str, cause: aya::maps::MapError },
}

fn list(failures: &[AttachFailure]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Default ring buffer size: about 650 OOM records with a typical Kubernetes
/// cgroup path (a record is 600 bytes plus its path's names, ~200 bytes).
pub const DEFAULT_RING_BYTES: u32 = 512 * 1024;

/// A ring buffer size the kernel would refuse.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingSizeError {
    #[error("{kib} KiB is too large; the ring buffer size must fit in 4 GiB")]
    TooLarge { kib: u32 },
    #[error("the ring buffer size must be a power of two of at least one page ({page_kib} KiB), got {kib} KiB")]
    NotPowerOfTwoPages { kib: u32, page_kib: u64 },
}

/// A valid ring buffer size (a power of two, at least one page) for `kib` KiB.
pub fn ring_bytes(kib: u32, page_size: u64) -> Result<u32, RingSizeError> {
    let bytes = kib.checked_mul(1024).ok_or(RingSizeError::TooLarge { kib })?;
    if !bytes.is_power_of_two() || (bytes as u64) < page_size {
        return Err(RingSizeError::NotPowerOfTwoPages { kib, page_kib: page_size / 1024 });
    }
    Ok(bytes)
}

/// Counters kept by the eBPF programs (summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Records lost because the ring buffer was full.
    pub ringbuf_full: u64,
}

/// The loader for the eBPF object with this kernel's layout table and the
/// eBPF log's level (every load goes through it: aya-log's default level
/// sends everything). The object reads kernel memory at offsets from that
/// table, never through CO-RE relocations, so the loader is handed no kernel
/// BTF and never parses one: aya 0.14's `EbpfLoader::new()` parses the whole
/// of it (aya-rs/aya#1172), the workspace's patched aya (third_party/aya)
/// only at `load` and only when `.btf(..)` was not called.
pub fn loader(facts: &KernelFacts, log: EbpfLog) -> EbpfLoader<'_> {
    let mut loader = EbpfLoader::new();
    loader.btf(None).override_global("LAYOUT", &facts.layout, true);
    ebpf_log::configure(&mut loader, log, facts.page_size);
    loader
}

/// Loaded and attached programs; dropping it detaches everything.
pub struct Tracer {
    ebpf: Ebpf,
    stats: PerCpuArray<MapData, u64>,
    pub attached: Attached,
    /// Forwards the kernel side's messages while `--ebpf-log` is on.
    _ebpf_log: Option<ebpf_log::Forwarder>,
}

impl Tracer {
    /// Loads the programs and attaches them following `plan`, with a ring
    /// buffer of `ring_bytes` (a power of two, at least one page), and
    /// forwards the kernel side's messages at `log` (needs a tokio runtime).
    pub fn start(facts: &KernelFacts, plan: &AttachPlan, ring_bytes: u32, log: EbpfLog) -> Result<Self, ProbeError> {
        let mut ebpf = loader(facts, log)
            .map_max_entries("EVENTS", ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|source| ProbeError::Load { advice: load_advice(&source), cause: Box::new(source) })?;
        log_startup_memory("eBPF object loaded");
        // Before attaching: no message is sent before someone reads them.
        let forwarder = match log {
            EbpfLog::Off => None,
            _ => match ebpf_log::forward(&mut ebpf) {
                Ok(forwarder) => Some(forwarder),
                Err(error) => {
                    tracing::warn!(%error, "--ebpf-log: the kernel side's messages cannot be shown; tracing goes on without them");
                    None
                }
            },
        };
        let attached = attach::attach_all(&mut ebpf, facts, plan);
        log_startup_memory("programs attached");
        if attached.method(Role::Victim).is_none() {
            return Err(ProbeError::NoVictimSource { failures: attached.failures });
        }
        if let Some(method) = plan.requested_context()
            && attached.method(Role::Context).is_none()
        {
            let reason = attached.failures.into_iter().find(|f| f.method == method).map(|f| f.error);
            return Err(ProbeError::RequestedContextProbe { method, reason });
        }
        let stats_map = ebpf.take_map("STATS").ok_or(ProbeError::MissingMap("STATS"))?;
        let stats =
            PerCpuArray::try_from(stats_map).map_err(|source| ProbeError::MapType { name: "STATS", cause: source })?;
        Ok(Self { ebpf, stats, attached, _ebpf_log: forwarder })
    }

    /// Takes the ring buffer the victim records arrive on (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        let map = self.ebpf.take_map("EVENTS").ok_or(ProbeError::MissingMap("EVENTS"))?;
        RingBuf::try_from(map).map_err(|source| ProbeError::MapType { name: "EVENTS", cause: source })
    }

    /// Takes the reclaim counts (once), when a reclaim program attached.
    pub fn take_reclaim(&mut self) -> Result<Option<reclaim::ReclaimCounts>, ProbeError> {
        if self.attached.method(Role::Reclaim).is_none() {
            return Ok(None);
        }
        let map = self.ebpf.take_map("RECLAIM").ok_or(ProbeError::MissingMap("RECLAIM"))?;
        let map = aya::maps::HashMap::try_from(map)
            .map_err(|source| ProbeError::MapType { name: "RECLAIM", cause: source })?;
        Ok(Some(reclaim::ReclaimCounts::new(map, crate::kernel::page_size())))
    }

    /// Reads the kernel-side counters.
    pub fn stats(&self) -> KernelStats {
        let sum = |index: u32| {
            self.stats.get(&index, 0).map(|values| values.iter().copied().fold(0u64, u64::wrapping_add)).unwrap_or(0)
        };
        KernelStats { ringbuf_full: sum(stat::RINGBUF_FULL) }
    }
}

fn load_advice(error: &aya::EbpfError) -> String {
    let privileges = crate::kernel::privileges::Privileges::current();
    if !privileges.can_trace() {
        return privileges.advice();
    }
    if error::refused_by_kernel(error) {
        "the kernel refused the BPF maps or programs (EPERM); check lockdown and \
         kernel.unprivileged_bpf_disabled, and run as root"
            .to_owned()
    } else {
        "run `oomtrace check` for what this kernel supports".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_loads_without_the_kernel_btf() {
        // `probe::loader` hands aya no kernel BTF: right only while the object
        // has no CO-RE relocations (its offsets come from the LAYOUT table).
        let object = aya_obj::Object::parse(EBPF_OBJECT).expect("the embedded eBPF object parses");
        assert!(!object.has_btf_relocations(), "the eBPF object has CO-RE relocations: `loader` must hand aya a BTF");
    }

    #[test]
    fn ring_sizes_are_powers_of_two_of_at_least_a_page() {
        assert_eq!(ring_bytes(256, 4096), Ok(256 * 1024));
        assert_eq!(ring_bytes(4, 4096), Ok(4096));
        assert!(ring_bytes(2, 4096).is_err());
        assert!(ring_bytes(100, 4096).is_err());
        assert!(ring_bytes(u32::MAX, 4096).is_err());
    }

    #[test]
    fn a_missing_victim_source_lists_every_attempt() {
        let unreadable = crate::kernel::btf::BtfError::Read {
            path: "/sys/kernel/btf/vmlinux".to_owned(),
            cause: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let no_btf = std::sync::Arc::new(unreadable);
        let failures = vec![
            AttachFailure { method: Method::TpBtf, error: AttachError::NoBtf(no_btf) },
            AttachFailure { method: Method::Tracepoint, error: AttachError::NoTracepointFormat("oom/mark_victim") },
        ];
        assert_eq!(
            ProbeError::NoVictimSource { failures }.to_string(),
            "no OOM victim source could be attached (tried: tp_btf:mark_victim: needs BTF: cannot read \
             /sys/kernel/btf/vmlinux: No such file or directory (os error 2) (is CONFIG_DEBUG_INFO_BTF enabled in \
             this kernel?); \
             tracepoint:oom/mark_victim: the oom/mark_victim format could not be read); run `oomtrace check` to see \
             what this kernel allows"
        );
    }
}
