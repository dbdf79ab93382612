//! The containers (and their pods' labels) the runtime described, kept
//! for events whose container is gone by the time they are attributed.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use crate::enrich::cri::{ContainerInfo, PodLabels};

/// Containers remembered (each a few hundred bytes).
pub(super) const CACHE_CAPACITY: usize = 4096;

/// The cache one resolver and its background refresh share.
#[derive(Clone)]
pub(super) struct SharedCache(Arc<Mutex<BoundedCache>>);

impl SharedCache {
    pub(super) fn new() -> Self {
        Self(Arc::new(Mutex::new(BoundedCache::new())))
    }

    /// The cache, locked for one short look or change (never across an await).
    pub(super) fn lock(&self) -> MutexGuard<'_, BoundedCache> {
        // A panic while it was held left at worst one entry half-written:
        // the entries are plain data, still usable.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A small insertion-ordered cache with a hard bound. An entry is `checked`
/// once ContainerStatus described it (ListContainers gives no main pid).
pub(super) struct BoundedCache {
    entries: HashMap<String, (ContainerInfo, bool)>,
    order: VecDeque<String>,
}

impl BoundedCache {
    pub(super) fn new() -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new() }
    }

    pub(super) fn get(&self, id: &str) -> Option<&ContainerInfo> {
        self.entries.get(id).map(|(info, _)| info)
    }

    /// An entry ContainerStatus has described.
    pub(super) fn checked(&self, id: &str) -> Option<&ContainerInfo> {
        self.entries.get(id).filter(|(_, checked)| *checked).map(|(info, _)| info)
    }

    pub(super) fn insert(&mut self, info: ContainerInfo, checked: bool) {
        if self.entries.insert(info.id.clone(), (info.clone(), checked)).is_none() {
            self.order.push_back(info.id);
            while self.order.len() > CACHE_CAPACITY {
                if let Some(oldest) = self.order.pop_front() {
                    self.entries.remove(&oldest);
                }
            }
        }
    }

    /// Whether container `id` is remembered.
    pub(super) fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// `info` as ContainerStatus described it, in place of what was known.
    pub(super) fn replace_checked(&mut self, info: ContainerInfo) {
        if self.entries.remove(&info.id).is_some() {
            self.order.retain(|k| *k != info.id);
        }
        self.insert(info, true);
    }

    pub(super) fn pod(&self, uid: &str) -> Option<&ContainerInfo> {
        self.entries.values().map(|(info, _)| info).find(|c| c.pod_uid.as_deref() == Some(uid))
    }

    /// The labels of pod `uid`, remembered with any of its containers.
    pub(super) fn pod_labels(&self, uid: &str) -> Option<&PodLabels> {
        self.entries
            .values()
            .map(|(info, _)| info)
            .filter(|c| c.pod_uid.as_deref() == Some(uid))
            .find_map(|c| c.pod_labels.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = BoundedCache::new();
        for i in 0..CACHE_CAPACITY + 10 {
            cache.insert(ContainerInfo { id: format!("c{i}"), ..ContainerInfo::default() }, false);
        }
        assert_eq!(cache.entries.len(), CACHE_CAPACITY);
        assert!(cache.get("c0").is_none());
        assert!(cache.get(&format!("c{}", CACHE_CAPACITY + 9)).is_some());
    }
}
