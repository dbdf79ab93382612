//! The event oomtrace reports, as users read it (docs/events.md): one OOM
//! victim ([`OomEvent`]), the workload it belonged to, what the kernel's
//! report in its log added, and the diagnosis. Data types only: every
//! producer (the eBPF decoder, the kernel log, enrichment, the diagnosis)
//! depends on this crate, and it depends on none of them.

pub mod diagnosis;
pub mod oom;
pub mod report;
pub mod workload;

pub use self::{
    diagnosis::{Advice, Cause, Diagnosis, Finding, Repeat},
    oom::{
        CapturedPath, Cgroup, EventSource, OomCgroup, OomEvent, Scope, ScopeSource, ScopeUnknownReason, Trigger, Victim,
    },
    report::{KernelLog, KernelReport, LogOrigin, ReportTask},
    workload::{
        Attribution, MonitoredContainer, NullUnknown, OmitUnknown, Owner, Qos, Runtime, UnknownKeys, WorkloadIdentity,
        WorkloadInfo, WorkloadKind,
    },
};
