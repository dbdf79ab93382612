//! What the running kernel offers: BTF, tracefs, tracepoint formats, the
//! layout table for the eBPF programs, and the caller's privileges.

pub mod btf;
pub mod clock;
pub mod constraint;
pub mod hooks;
pub mod layout;
pub mod oom_count;
pub mod privileges;
pub mod syslog;
pub mod tracefs;

use std::{path::PathBuf, sync::Arc};

use oomtrace_common::KernelLayout;

use self::{
    btf::{AttachTarget, Btf, BtfError},
    constraint::ConstraintValues,
    hooks::Tracepoint,
    tracefs::TracefsError,
};

/// Everything discovered about the kernel at startup.
#[derive(Debug)]
pub struct KernelFacts {
    pub layout: KernelLayout,
    /// `Err` says why BTF could not be read (shared: each attach that needs
    /// BTF reports it).
    pub btf: Result<BtfFacts, Arc<BtfError>>,
    /// `Err` says why tracefs is unusable.
    pub tracefs: Result<PathBuf, TracefsError>,
    /// Fields of `oom/mark_victim` (empty when the format could not be read).
    pub mark_victim_fields: Vec<String>,
    pub signal_generate_available: bool,
    pub constraints: ConstraintValues,
    pub page_size: u64,
    /// Things that degrade the events, one sentence each.
    pub warnings: Vec<String>,
}

/// What BTF says about attach points: the ids of those it describes (tp_btf
/// and fentry programs are loaded on them). Only these outlive the BTF
/// itself, which is freed before the eBPF object is loaded.
#[derive(Clone, Debug, Default)]
pub struct BtfFacts {
    pub targets: Vec<AttachTarget>,
}

impl BtfFacts {
    /// The target of a tp_btf program on `tracepoint` (`btf_trace_<event>`).
    pub fn tracepoint(&self, tracepoint: Tracepoint) -> Option<AttachTarget> {
        self.target(btf::Kind::Typedef, &tracepoint_typedef(tracepoint))
    }

    /// The target of an fentry program on kernel function `name`.
    pub fn function(&self, name: &str) -> Option<AttachTarget> {
        self.target(btf::Kind::Func, name)
    }

    fn target(&self, kind: btf::Kind, name: &str) -> Option<AttachTarget> {
        self.targets.iter().find(|t| t.kind == kind && t.name == name).cloned()
    }
}

/// The typedef BTF describes a tracepoint's raw arguments with (what tp_btf attaches to).
fn tracepoint_typedef(tracepoint: Tracepoint) -> String {
    format!("btf_trace_{}", tracepoint.event())
}

/// Finds oomtrace's attach points in `btf`.
fn attach_targets(btf: &Btf) -> Vec<AttachTarget> {
    [hooks::MARK_VICTIM, hooks::SIGNAL_GENERATE, hooks::MEMCG_RECLAIM_END]
        .map(|tracepoint| (btf::Kind::Typedef, tracepoint_typedef(tracepoint)))
        .into_iter()
        .chain([(btf::Kind::Func, hooks::OOM_KILL_PROCESS.to_owned())])
        .filter_map(|(kind, name)| btf.find(kind, &name).map(|id| AttachTarget { kind, name, id }))
        .collect()
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// Probes BTF and tracefs and builds the layout table. Never fails: what is
/// missing is recorded in `warnings` and the matching entries stay absent.
pub fn discover() -> KernelFacts {
    let mut layout = KernelLayout::absent();
    let page_size = page_size();
    layout::set_page_geometry(&mut layout, page_size);
    let mut warnings = Vec::new();

    let (btf, constraints) = match Btf::from_sys_fs() {
        Ok(btf) => {
            layout::fill_from_btf(&btf, &mut layout);
            let facts = BtfFacts { targets: attach_targets(&btf) };
            (Ok(facts), ConstraintValues::from_btf(&btf))
        }
        Err(error) => {
            warnings.push(format!(
                "no kernel BTF ({error}): the victim's cgroup, tgid, the OOM context and the memcg \
                 usage/limit cannot be read; only the mark_victim tracepoint fields remain"
            ));
            (Err(Arc::new(error)), ConstraintValues::historical())
        }
    };

    let mut mark_victim_fields = Vec::new();
    let mut signal_generate_available = false;
    let tracefs = match tracefs::locate() {
        Ok(dir) => {
            match tracefs::read_format(&dir, hooks::MARK_VICTIM) {
                Ok(fields) => {
                    for rejected in layout::fill_from_format(hooks::MARK_VICTIM, &fields, &mut layout) {
                        warnings.push(format!("oom/mark_victim field {rejected} is not read"));
                    }
                    mark_victim_fields =
                        fields.iter().map(|f| f.name.clone()).filter(|n| !n.starts_with("common_")).collect();
                    let missing = layout::unread_tracepoint_fields(&layout, hooks::MARK_VICTIM);
                    if !missing.is_empty() {
                        tracing::debug!(?missing, "oom/mark_victim lacks fields; reading them from the victim's mm");
                    }
                }
                Err(error) => warnings.push(format!("cannot use oom/mark_victim: {error}")),
            }
            match tracefs::read_format(&dir, hooks::SIGNAL_GENERATE) {
                Ok(fields) => {
                    for rejected in layout::fill_from_format(hooks::SIGNAL_GENERATE, &fields, &mut layout) {
                        warnings.push(format!("signal/signal_generate field {rejected} is not read"));
                    }
                    signal_generate_available = layout.tp_signal_sig != oomtrace_common::ABSENT;
                }
                Err(error) => warnings
                    .push(format!("cannot use signal/signal_generate ({error}): events cannot confirm the kill")),
            }
            Ok(dir)
        }
        Err(error) => {
            warnings.push(error.to_string());
            Err(error)
        }
    };

    KernelFacts {
        layout,
        btf,
        tracefs,
        mark_victim_fields,
        signal_generate_available,
        constraints,
        page_size,
        warnings,
    }
}
