//! The watcher and the forecast on their own thread, so that reading
//! cgroupfs never delays a kill event: warnings come out of a channel, and a
//! kill asks whether it was warned of a copy of the forecast the thread
//! publishes after each poll. The lock shared with the event thread is held
//! only to swap or clone that copy's `Arc`: a thread that loses its CPU
//! while holding it (a storm's hundreds of runnable tasks made the watcher
//! wait ~100 ms per run) holds nothing the event thread would wait for.

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

use super::{Change, ForecastOptions, Forecaster, Outlook, Verdict, VerdictIndex};
use crate::{
    enrich::cgroup::MemoryHierarchy,
    kernel::clock::monotonic_now,
    probe::reclaim::ReclaimCounts,
    watch::{WatchEvent, WatchOptions, WatchStats, Watched, Watcher},
};

/// Longest sleep between two looks at the stop flag (and so the longest a
/// stop waits for the thread).
const MAX_SLEEP: Duration = Duration::from_millis(250);

/// How often the outlooks (`oomtrace top`, the daemon's gauges, read every
/// second or two) are copied into what the thread publishes; the verdicts'
/// index is copied after every poll that read something.
const OUTLOOKS_EVERY: Duration = Duration::from_millis(250);

/// What the thread publishes.
#[derive(Default)]
struct Published {
    index: Arc<VerdictIndex>,
    /// Soonest limit first.
    outlooks: Arc<Vec<Outlook>>,
    stats: WatchStats,
}

type Shared = Mutex<Arc<Published>>;

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
        let shared: Arc<Shared> = Arc::default();
        let mut forecaster = Forecaster::new(forecast);
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
                watch_until_stopped(&mut watcher, &mut forecaster, &shared, &stop, &tx)
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
        let published = self.view.published();
        let index = &published.index;
        let watched = match event.scope {
            Some(Scope::Global) => Some(Watched::Node),
            _ => event
                .oom_cgroup
                .as_ref()
                .and_then(|c| c.cgroup.path.as_deref())
                .or_else(|| event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref()))
                .and_then(|path| index.watched_for(path)),
        };
        match watched {
            Some(watched) => index.verdict(&watched, kill_ns),
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

/// What the watcher knows, read from any thread: what its thread last published.
#[derive(Clone)]
pub struct ForesightView {
    shared: Arc<Shared>,
}

impl ForesightView {
    /// Every watched cgroup's outlook, soonest limit first.
    pub fn outlooks(&self) -> Vec<Outlook> {
        Vec::clone(&self.published().outlooks)
    }

    pub fn stats(&self) -> WatchStats {
        self.published().stats
    }

    fn published(&self) -> Arc<Published> {
        Arc::clone(&lock(&self.shared))
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

/// The lock, also after a panic elsewhere (what it guards stays usable).
fn lock(shared: &Shared) -> MutexGuard<'_, Arc<Published>> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn watch_until_stopped(
    watcher: &mut Watcher,
    forecaster: &mut Forecaster,
    shared: &Shared,
    stop: &AtomicBool,
    tx: &mpsc::UnboundedSender<Change>,
) {
    let mut events = Vec::new();
    let mut changes = Vec::new();
    // What this thread (the only writer) published last.
    let mut last = Arc::clone(&lock(shared));
    // The outlooks changed since they were last copied, and when that was.
    let mut outlooks_changed = true;
    let mut outlooks_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        watcher.poll(Instant::now(), &mut events);
        let read = !events.is_empty();
        for event in events.drain(..) {
            let change = match &event {
                WatchEvent::Reading(reading) => forecaster.observe(reading),
                WatchEvent::Gone(watched) => forecaster.forget(watched),
            };
            changes.extend(change);
        }
        outlooks_changed |= read;
        let now = Instant::now();
        let outlooks_due = outlooks_changed && outlooks_at.is_none_or(|at| now.duration_since(at) >= OUTLOOKS_EVERY);
        let stats = watcher.stats();
        // Idle (nothing read, nothing due), nothing is copied.
        if read || outlooks_due || stats != last.stats {
            let outlooks = if outlooks_due {
                outlooks_at = Some(now);
                outlooks_changed = false;
                Arc::new(forecaster.outlooks())
            } else {
                Arc::clone(&last.outlooks)
            };
            let index = if read { Arc::new(forecaster.verdict_index()) } else { Arc::clone(&last.index) };
            last = Arc::new(Published { index, outlooks, stats });
            // The copy it replaces is freed after the lock is let go.
            let replaced = std::mem::replace(&mut *lock(shared), Arc::clone(&last));
            drop(replaced);
        }
        // Sent once published: a kill after a warning is judged knowing it.
        for change in changes.drain(..) {
            // (A closed channel: the pipeline is stopping.)
            let _ = tx.send(change);
        }
        let wait = watcher.next_due().saturating_duration_since(Instant::now()).min(MAX_SLEEP);
        std::thread::sleep(wait.max(Duration::from_millis(5)));
    }
}
