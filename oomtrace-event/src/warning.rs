//! A warning before the kill (docs/warnings.md): a memory cgroup (or the node)
//! whose memory that reclaim cannot give back is growing toward a limit, with
//! the time left, the limit it will hit and what to change; and, on every kill,
//! whether it was warned and how long before.

use schemars::JsonSchema;
use serde::Serialize;
use strum::{EnumString, IntoStaticStr, VariantArray};

use crate::{Advice, SchemaVersion, WallTime, WorkloadInfo, oom::RecordKind};

/// Where a cgroup's episode stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WarningState {
    /// The time to the limit fell under the threshold.
    Warning,
    /// The limit is being hit (`memory.events` `max` or `failcnt` rising) and
    /// reclaim has little left to free.
    Imminent,
    /// A warned cgroup no longer heads for its limit (or it went away, or it
    /// was killed: the kill event says how long before it was warned).
    Recovered,
}

/// Which limit the memory heads for (the cause the kill would have).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum LimitLevel {
    /// A container's own `resources.limits.memory`.
    Container,
    /// A pod's cgroup (the sum of its containers' limits).
    Pod,
    /// The kubepods cgroup: the node's allocatable memory.
    NodeAllocatable,
    /// Another cgroup with a limit (a systemd unit, a cgroup made by hand).
    Cgroup,
    /// The kubelet's hard eviction threshold on `memory.available`: pods are
    /// evicted before the kernel's OOM killer would act.
    NodeEviction,
    /// The node's memory itself (a global OOM).
    NodeMemory,
}

/// What grows: the part of the unreclaimable memory that rose most over the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Growth {
    /// Anonymous memory (heap): a leak or a growing working set.
    Anon,
    /// shmem: tmpfs or emptyDir `medium: Memory` files, shared memory.
    Shmem,
    /// Kernel memory: slab, page tables, sockets, stacks.
    Kernel,
    /// Dirty or under-writeback page cache.
    Dirty,
}

/// The memory reclaim cannot give back without swap, by part (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Unreclaimable {
    pub anon_bytes: u64,
    pub shmem_bytes: u64,
    pub kernel_bytes: u64,
    /// Dirty and under-writeback page cache.
    pub dirty_bytes: u64,
}

impl Unreclaimable {
    pub fn total(&self) -> u64 {
        self.anon_bytes
            .saturating_add(self.shmem_bytes)
            .saturating_add(self.kernel_bytes)
            .saturating_add(self.dirty_bytes)
    }
}

/// Memcg limit reclaim in a cgroup or below, counted by the kernel side
/// (`tp_btf`/`raw_tp` on `vmscan:mm_vmscan_memcg_reclaim_end`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Reclaim {
    /// Runs of limit reclaim (`try_to_free_mem_cgroup_pages`).
    pub runs: u64,
    /// What they freed.
    pub reclaimed_bytes: u64,
}

impl Reclaim {
    /// What happened between `earlier` and `self` (counts only grow; a
    /// count that went back, as after the LRU let it go, restarts from 0).
    pub fn since(&self, earlier: &Reclaim) -> Reclaim {
        if self.runs < earlier.runs {
            return *self;
        }
        Reclaim {
            runs: self.runs - earlier.runs,
            reclaimed_bytes: self.reclaimed_bytes.saturating_sub(earlier.reclaimed_bytes),
        }
    }
}

/// One warning record (`kind` = `warning`, docs/events.md).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Warning {
    pub schema_version: SchemaVersion,
    pub kind: RecordKind,
    /// When the watcher decided (RFC 3339, UTC).
    pub time: WallTime,
    pub state: WarningState,
    /// The limit the memory heads for.
    pub limit_level: LimitLevel,
    /// The memory cgroup whose limit that is (its path from the hierarchy's
    /// root); absent at node level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Charged memory now (`memory.current`, `memory.usage_in_bytes`; at node
    /// level MemTotal − MemAvailable).
    pub usage_bytes: u64,
    /// What reclaim cannot give back without swap: anon + shmem + kernel + dirty/writeback.
    pub unreclaimable_bytes: u64,
    /// Its parts, where `memory.stat` was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreclaimable: Option<Unreclaimable>,
    /// The limit (at node level: MemTotal, less the eviction threshold for `node_eviction`).
    pub limit_bytes: u64,
    /// The unreclaimable memory's trend: a robust slope (Theil–Sen) over the window.
    pub slope_bytes_per_second: f64,
    /// (limit − unreclaimable) / slope: the time to the OOM kill (or the
    /// eviction) if the trend holds; absent when it does not head for the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<f64>,
    /// Times the limit was hit during the window (`memory.events` `max`, v1 `failcnt`).
    pub limit_hits: u64,
    /// Limit reclaim during the window; absent when the reclaim counter is
    /// not attached (`oomtrace check`) and at node level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reclaim: Option<Reclaim>,
    /// The part that rose most over the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
    /// Seconds since this cgroup's episode began (its first `warning`).
    pub episode_seconds: f64,
    /// The node (Kubernetes node name or hostname).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The cgroup's container, pod or service, named as kills name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadInfo>,
    /// One sentence for a person.
    pub summary: String,
    /// What to change, with the exact command (the diagnosis' advice names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<Advice>,
}

/// Why a kill was not warned before (`not_warned` on a kill event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum NotWarnedReason {
    /// From the memory's first movement to the kill took less than the
    /// trend the watcher needs (`rise_seconds`): too fast to see coming.
    Burst,
    /// The trend was there but the time left never fell under the threshold.
    BelowThreshold,
    /// The watcher did not watch the cgroup that hit its limit (made and
    /// killed between two scans, or no limit read).
    NotWatched,
    /// No watcher ran (`--no-warnings`, or no memory cgroup hierarchy).
    WatcherOff,
}

/// Why a kill was not warned before, with the evidence.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct NotWarned {
    pub reason: NotWarnedReason,
    /// From the first movement the watcher saw to the kill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rise_seconds: Option<f64>,
}
