//! The kernel's counts of memcg limit reclaim per memory cgroup (the
//! `RECLAIM` map `oomtrace-ebpf/src/reclaim.rs` fills), read by the watcher.

use aya::maps::{HashMap, MapData};
use oomtrace_common::RawReclaim;
use oomtrace_event::Reclaim;

/// The map, read by cgroup id (the inode number of the cgroup's directory).
pub struct ReclaimCounts {
    map: HashMap<MapData, u64, RawReclaim>,
    page_size: u64,
}

impl ReclaimCounts {
    pub(super) fn new(map: HashMap<MapData, u64, RawReclaim>, page_size: u64) -> Self {
        Self { map, page_size }
    }

    /// Limit reclaim in cgroup `id` or below since the counter attached:
    /// zero when none ran there yet (or the LRU let it go, after 16384 other
    /// cgroups reclaimed); an error when the map cannot be read.
    pub fn get(&self, id: u64) -> Result<Reclaim, aya::maps::MapError> {
        match self.map.get(&id, 0) {
            Ok(raw) => {
                Ok(Reclaim { runs: raw.runs, reclaimed_bytes: raw.reclaimed_pages.saturating_mul(self.page_size) })
            }
            Err(aya::maps::MapError::KeyNotFound) => Ok(Reclaim::default()),
            Err(error) => Err(error),
        }
    }
}
