//! The watcher and the forecast on their own thread, so that reading
//! cgroupfs never delays a kill event: warnings come out of a channel, and a
//! kill asks whether it was warned (one map lookup under a lock the thread
//! holds only while it takes one reading).

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use oomtrace_event::{NotWarned, NotWarnedReason, OomEvent, Scope};
use tokio::sync::mpsc;

use super::{Change, ForecastOptions, Forecaster, Outlook, Verdict};
use crate::{
    enrich::cgroup::MemoryHierarchy,
    kernel::clock::monotonic_now,
    probe::reclaim::ReclaimCounts,
    watch::{WatchEvent, WatchOptions, WatchStats, Watched, Watcher},
};

/// Longest sleep between two looks at the stop flag (and so the longest a
/// stop waits for the thread).
const MAX_SLEEP: Duration = Duration::from_millis(250);

struct Shared {
    forecaster: Forecaster,
    stats: WatchStats,
}

/// The watcher's thread, its warnings and what it knows.
pub struct Foresight {
    view: ForesightView,
    changes: mpsc::UnboundedReceiver<Change>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Foresight {
    /// Starts watching `hierarchy` (and the node), with the kernel's limit
    /// reclaim counts where they are counted.
    pub fn start(
        hierarchy: &MemoryHierarchy,
        watch: WatchOptions,
        forecast: ForecastOptions,
        reclaim: Option<ReclaimCounts>,
    ) -> std::io::Result<Self> {
        let shared =
            Arc::new(Mutex::new(Shared { forecaster: Forecaster::new(forecast), stats: WatchStats::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, changes) = mpsc::unbounded_channel();
        let mut watcher = Watcher::new(hierarchy, watch);
        if let Some(counts) = reclaim {
            watcher.count_reclaim(counts);
        }
        let thread = std::thread::Builder::new().name("oomtrace-watch".to_owned()).spawn({
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            move || {
                // The kernel's default slice, not the event thread's short one
                // (a thread inherits it): the watcher's polls are not urgent.
                let _ = crate::sched::request_slice(0);
                watch_until_stopped(&mut watcher, &shared, &stop, &tx)
            }
        })?;
        Ok(Self { view: ForesightView { shared }, changes, stop, thread: Some(thread) })
    }

    /// A reader of what the watcher knows, for another task (the daemon's
    /// gauges); after the thread stops it reads what the thread last knew.
    pub fn view(&self) -> ForesightView {
        self.view.clone()
    }

    /// The next change of a cgroup's episode (cancellation safe).
    pub async fn next_change(&mut self) -> Option<Change> {
        self.changes.recv().await
    }

    /// Whether `event`'s kill was warned, and how long before.
    pub fn verdict(&self, event: &OomEvent) -> Verdict {
        let kill_ns = event.ktime_ns.unwrap_or_else(|| monotonic_now().as_nanos() as u64);
        let shared = lock(&self.view.shared);
        let forecaster = &shared.forecaster;
        let watched = match event.scope {
            Some(Scope::Global) => Some(Watched::Node),
            _ => event
                .oom_cgroup
                .as_ref()
                .and_then(|c| c.cgroup.path.as_deref())
                .or_else(|| event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref()))
                .and_then(|path| forecaster.watched_for(path)),
        };
        match watched {
            Some(watched) => forecaster.verdict(&watched, kill_ns),
            None => Verdict::NotWarned(NotWarned { reason: NotWarnedReason::NotWatched, rise_seconds: None }),
        }
    }

    /// Every watched cgroup's outlook, soonest limit first.
    pub fn outlooks(&self) -> Vec<Outlook> {
        self.view.outlooks()
    }

    pub fn stats(&self) -> WatchStats {
        self.view.stats()
    }
}

/// What the watcher knows, read from any thread: each read copies it under
/// the lock the watcher's thread holds only while it takes one reading.
#[derive(Clone)]
pub struct ForesightView {
    shared: Arc<Mutex<Shared>>,
}

impl ForesightView {
    /// Every watched cgroup's outlook, soonest limit first.
    pub fn outlooks(&self) -> Vec<Outlook> {
        lock(&self.shared).forecaster.outlooks()
    }

    pub fn stats(&self) -> WatchStats {
        lock(&self.shared).stats
    }
}

impl Drop for Foresight {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The lock, also after a panic elsewhere (the forecast's state stays usable).
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn watch_until_stopped(
    watcher: &mut Watcher,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
    tx: &mpsc::UnboundedSender<Change>,
) {
    let mut events = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        watcher.poll(Instant::now(), &mut events);
        for event in events.drain(..) {
            // The lock for one reading at a time, never a whole poll's: a
            // kill's verdict waits for this thread's work on one cgroup at
            // most, also when this thread loses its CPU mid-poll (a storm's
            // hundreds of runnable tasks: it waited 40 ms per run).
            let change = {
                let mut shared = lock(shared);
                match &event {
                    WatchEvent::Reading(reading) => shared.forecaster.observe(reading),
                    WatchEvent::Gone(watched) => shared.forecaster.forget(watched),
                }
            };
            if let Some(change) = change {
                // (A closed channel: the pipeline is stopping.)
                let _ = tx.send(change);
            }
        }
        lock(shared).stats = watcher.stats();
        let wait = watcher.next_due().saturating_duration_since(Instant::now()).min(MAX_SLEEP);
        std::thread::sleep(wait.max(Duration::from_millis(5)));
    }
}
