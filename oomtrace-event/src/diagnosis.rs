//! The diagnosis an event carries (docs/diagnosis.md): the cause, the
//! findings with their evidence, one sentence and the advice. The data only;
//! `oomtrace`'s `diagnosis` module decides them.

use schemars::JsonSchema;
use serde::Serialize;
use strum::{EnumDiscriminants, EnumString, IntoStaticStr, VariantArray};

/// Why the kill happened and what to change, on every event (`diagnosis` in
/// docs/events.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Diagnosis {
    pub cause: Cause,
    /// With `cause` = `unknown`: the facts that were missing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingFact>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// One sentence for a person.
    pub summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<Advice>,
}

/// Stable names: Prometheus label values and docs/events.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Cause {
    /// The OOMing memcg is the victim's container.
    ContainerLimit,
    /// The OOMing memcg is the victim's pod (the pod-level limit).
    PodLimit,
    /// `kubepods` or a QoS-class cgroup: the pods together exceeded what the
    /// kubelet reserved for them (node allocatable).
    NodeAllocatable,
    /// Scope global: the node itself ran out of memory.
    NodeMemory,
    /// A cpuset or mempolicy OOM.
    Constrained,
    /// A memory cgroup outside Kubernetes (a system service, a user slice).
    CgroupLimit,
    /// Not enough facts; `missing` says which.
    Unknown,
}

/// A fact the cause needed and the event did not have (`missing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
pub enum MissingFact {
    /// The event's `scope`.
    #[serde(rename = "scope")]
    #[strum(serialize = "scope")]
    Scope,
    /// The path of the memcg that hit its limit.
    #[serde(rename = "oom_cgroup.path")]
    #[strum(serialize = "oom_cgroup.path")]
    OomCgroupPath,
}

/// What the diagnosis found besides the cause; `kind` in the JSON is its
/// [`FindingKind`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema, EnumDiscriminants)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[strum_discriminants(
    name(FindingKind),
    derive(Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray, Hash),
    serde(rename_all = "snake_case"),
    strum(serialize_all = "snake_case")
)]
pub enum Finding {
    /// memory.oom.group: every process of the container died with it.
    GroupKill,
    /// A child process was killed; the container lives on (Kubernetes shows
    /// no OOMKilled now).
    NotMainProcess,
    /// The container had no memory limit (BestEffort).
    NoLimit,
    /// The pod is in kube-system.
    SystemPod { namespace: String },
    /// shmem holds a large share of the charged memory.
    Tmpfs { shmem_bytes: u64, share_percent: u64 },
    /// The page cache does.
    PageCache { file_bytes: u64, share_percent: u64 },
    /// Kernel and socket memory does.
    KernelMemory { kernel_bytes: u64, share_percent: u64 },
    /// The same workload was killed before within the repeat window
    /// (24 h, the diagnosis' `REPEAT_WINDOW`); `restart_count` is the runtime's count at
    /// this kill.
    Repeated {
        #[serde(flatten)]
        repeat: Repeat,
        #[serde(skip_serializing_if = "Option::is_none")]
        restart_count: Option<u32>,
    },
    /// Killed within 60 s (the diagnosis' `EARLY_SECONDS`) of the container's start.
    Early { running_seconds: u64 },
}

impl Finding {
    /// The stable name (`kind` in the JSON, docs/events.md).
    pub fn kind(&self) -> FindingKind {
        self.into()
    }
}

/// The evidence of a repeated kill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Repeat {
    /// Kills of this workload within `REPEAT_WINDOW`, this one included.
    pub kills: u32,
    /// From the first of them to this one.
    pub over_seconds: u64,
    /// Mean time between them.
    pub mean_interval_seconds: u64,
}

/// One step of the advice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Advice {
    /// Stable name of the step (the list in this module's doc; docs/diagnosis.md).
    pub action: AdviceAction,
    /// What to do and why, for a person.
    pub text: String,
    /// The exact command, filled in; absent when the step is not one command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl Advice {
    pub fn new(action: AdviceAction, text: String, command: Option<String>) -> Self {
        Self { action, text, command }
    }
}

/// The stable name of an advice step (docs/diagnosis.md; what each one means
/// is in `oomtrace`'s `diagnosis::advice`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AdviceAction {
    RaiseLimit,
    SetLimit,
    LimitBelowStartup,
    InvestigateLeak,
    InvestigateSpike,
    MetricsServerVpa,
    CorednsAutoscaling,
    SystemNodePool,
    ListPodsWithoutLimits,
    MatchRequestsToUsage,
    ReserveSystemMemory,
    SystemdMemoryLimit,
    CgroupMemoryLimit,
    MemoryPolicy,
    FindMissingFacts,
    LimitTmpfs,
    PageCache,
    KernelMemory,
    LostWorker,
    /// `oomtrace diagnose`: the pods the kubelet evicted.
    ListEvictedPods,
    /// `oomtrace diagnose`: the kubelet's Evicted events.
    ListEvictionEvents,
}
