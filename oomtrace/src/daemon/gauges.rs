//! The gauges of every watched cgroup (its headroom and time to OOM) and the
//! watcher's counters, refreshed every [`REFRESH`] on a task of their own with
//! a pod resolver of their own: a kill event never waits for them, nor for
//! the runtime call that names a container seen for the first time.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use oomtrace_event::{Attribution, WorkloadInfo};
use tokio::{task::JoinHandle, time::MissedTickBehavior};

use super::Shared;
use crate::{enrich::pod::PodResolver, export::prometheus::Gauged, forecast::runner::ForesightView};

/// How often the gauges are refreshed: the watcher reads a cgroup at least
/// every 2 s (its slow interval), so a gauge is at most two readings old.
const REFRESH: Duration = Duration::from_secs(2);
/// A cgroup attributed only in part (the runtime down, or not knowing its
/// container yet) is attributed again after this long; one fully attributed
/// keeps its workload while it is watched (a cgroup's identity does not change).
const REATTRIBUTE: Duration = Duration::from_secs(30);

/// Refreshes `shared`'s gauges from `view` until aborted.
pub(super) fn spawn(view: ForesightView, mut pods: PodResolver, shared: Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(async move {
        pods.warm().await;
        let mut known: HashMap<String, (WorkloadInfo, Instant)> = HashMap::new();
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            shared.metrics.update_watch(view.stats());
            let outlooks = view.outlooks();
            {
                let watched: HashSet<&str> = outlooks.iter().filter_map(|o| o.watched.cgroup()).collect();
                known.retain(|path, _| watched.contains(path.as_str()));
            }
            let mut gauged = Vec::with_capacity(outlooks.len());
            for outlook in outlooks {
                let workload = match outlook.watched.cgroup() {
                    Some(path) => Some(workload_of(&mut known, &mut pods, path).await),
                    None => None,
                };
                gauged.push(Gauged { outlook, workload });
            }
            shared.metrics.update_outlooks(&gauged);
        }
    })
}

/// The workload of the cgroup at `path`, as remembered or attributed now.
async fn workload_of(
    known: &mut HashMap<String, (WorkloadInfo, Instant)>,
    pods: &mut PodResolver,
    path: &str,
) -> WorkloadInfo {
    let now = Instant::now();
    match known.get(path) {
        Some((workload, at))
            if workload.attribution != Attribution::Partial || now.duration_since(*at) < REATTRIBUTE =>
        {
            workload.clone()
        }
        _ => {
            let workload = pods.attribute(Some(path), None).await;
            known.insert(path.to_owned(), (workload.clone(), now));
            workload
        }
    }
}
