//! The prediction of issue "warn before the kill" (docs/warnings.md): from
//! the watcher's readings, per watched cgroup (and the node), the memory
//! reclaim cannot give back, its climb toward the limit, the time left, and
//! the episodes of warnings they make:
//!
//! - `warning` when a climb of at least `min_trend_seconds` puts the limit
//!   under `threshold_seconds` away;
//! - `imminent` when, warned, reclaim is already failing to keep it under
//!   the limit: where the kernel counts limit reclaim, it ran and freed
//!   little; otherwise the limit is being hit (`memory.events` max,
//!   `failcnt` rising);
//! - `recovered` when a warned cgroup has had no such climb for
//!   `recover_seconds` (the memory fell, the process stopped growing, or it
//!   was killed), or went away.
//!
//! Page cache is never a risk (reclaim frees it), dirty pages count in the
//! headroom but not in the trend (`series::Point::persistent`), and a
//! climb shorter than `min_trend_seconds` is a burst: not warnable.

pub mod level;
pub mod runner;
mod series;
mod slope;
pub mod words;

use std::collections::{HashMap, VecDeque};

use oomtrace_event::{Growth, LimitLevel, NotWarned, NotWarnedReason, Reclaim, Unreclaimable, WarningState};

use crate::watch::{Reading, Watched};
use series::{Point, Series};

const MIB: f64 = 1048576.0;
const NS: f64 = 1e9;
/// A reading this close to the last one (anon + shmem + kernel) is "unchanged".
const UNCHANGED_BYTES: f64 = 64.0 * 1024.0;
/// Readings remembered per cgroup for a kill's verdict (at 10 a second,
/// 1.6 s: a kill's event comes within milliseconds, or a few hundred under
/// emulation).
const RECENT_READINGS: usize = 16;
/// How long the last episode of a cgroup that went away is kept (a kill's
/// event comes within milliseconds; its kernel-log twin within seconds).
const KEEP_GONE_NS: u64 = 600_000_000_000;

/// How the forecast decides.
#[derive(Clone, Copy, Debug)]
pub struct ForecastOptions {
    /// Warn when the time left falls under this.
    pub threshold_seconds: f64,
    /// The readings kept per cgroup.
    pub window_seconds: f64,
    /// A climb shorter than this is not trusted (a burst, a sawtooth's tooth).
    pub min_trend_seconds: f64,
    /// A warned cgroup without a climb this long is `recovered`.
    pub recover_seconds: f64,
    /// A climb is extrapolated at most this many times its own length: the
    /// time left must be under `max_extrapolation` × how long it has climbed
    /// (a build that allocates 2 s is no 5-minute forecast for the node).
    pub max_extrapolation: f64,
    /// The kubelet's hard eviction threshold on `memory.available`
    /// (`--eviction-hard`; kubelet's default 100Mi, AKS 750Mi); `None`: the
    /// node is measured against its memory alone.
    pub eviction_hard_bytes: Option<u64>,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        Self {
            threshold_seconds: 300.0,
            window_seconds: 30.0,
            min_trend_seconds: 2.0,
            recover_seconds: 3.0,
            max_extrapolation: 10.0,
            eviction_hard_bytes: Some(100 * 1024 * 1024),
        }
    }
}

/// What the forecast says of one watched cgroup now (`oomtrace top`, the gauges).
#[derive(Clone, Debug, PartialEq)]
pub struct Outlook {
    pub watched: Watched,
    pub level: LimitLevel,
    pub at_ns: u64,
    pub usage_bytes: u64,
    /// anon + shmem + kernel + dirty.
    pub unreclaimable_bytes: u64,
    pub parts: Unreclaimable,
    pub limit_bytes: u64,
    /// Bytes per second over the climb; 0 without one.
    pub slope_bytes_per_second: f64,
    /// Time to the limit if the climb holds; `None` without a trusted climb.
    pub seconds_left: Option<f64>,
    pub limit_hits: u64,
    /// Limit reclaim during the window, where the kernel counts it.
    pub reclaim: Option<Reclaim>,
    pub growth: Option<Growth>,
    /// Where the episode stands (`None`: calm).
    pub state: Option<WarningState>,
    pub episode_seconds: f64,
}

impl Outlook {
    /// The limit minus the memory reclaim cannot give back.
    pub fn headroom_bytes(&self) -> u64 {
        self.limit_bytes.saturating_sub(self.unreclaimable_bytes)
    }
}

/// A change of a cgroup's episode: one warning record.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub outlook: Outlook,
    pub state: WarningState,
}

/// Whether a kill was warned, and how long before.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Warned { seconds_before: f64 },
    NotWarned(NotWarned),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Episode {
    start_ns: u64,
    state: WarningState,
    /// The last reading with a trusted climb under the threshold.
    last_valid_ns: u64,
}

#[derive(Debug, Default)]
struct Tracked {
    /// Which limit this is (from the path, once).
    level: Option<LimitLevel>,
    /// anon + shmem + kernel and limit hits of the last reading computed in full.
    computed: Option<(f64, u64)>,
    series: Series,
    episode: Option<Episode>,
    /// The last episode that ended: (start, end).
    ended: Option<(u64, u64)>,
    /// The last readings: (when, where the climb then started). A kill's
    /// `rise_seconds` is measured from the last reading before it: from its
    /// climb's start, or from that reading itself when it saw none. Kept
    /// because readings after the kill (the memory freed) may come before the
    /// kill's event asks.
    recent: VecDeque<(u64, Option<u64>)>,
    outlook: Option<Outlook>,
}

impl Tracked {
    /// Where the climb started, as of the last reading.
    fn climb_start_ns(&self) -> Option<u64> {
        self.recent.back().and_then(|(_, start)| *start)
    }

    fn remember(&mut self, at_ns: u64, climb_start_ns: Option<u64>) {
        if self.recent.len() == RECENT_READINGS {
            self.recent.pop_front();
        }
        self.recent.push_back((at_ns, climb_start_ns));
    }
}

#[derive(Debug, Default)]
pub struct Forecaster {
    options: ForecastOptions,
    tracked: HashMap<Watched, Tracked>,
}

impl Forecaster {
    pub fn new(options: ForecastOptions) -> Self {
        Self { options, tracked: HashMap::new() }
    }

    /// Takes one reading; the episode's change, if it changed.
    pub fn observe(&mut self, reading: &Reading) -> Option<Change> {
        let options = self.options;
        let limit_bytes = match (&reading.watched, options.eviction_hard_bytes) {
            (Watched::Node, Some(eviction)) => reading.limit_bytes.saturating_sub(eviction),
            _ => reading.limit_bytes,
        };
        if !self.tracked.contains_key(&reading.watched) {
            let level = level::of(&reading.watched, options.eviction_hard_bytes.is_some());
            self.tracked.insert(reading.watched.clone(), Tracked { level: Some(level), ..Tracked::default() });
        }
        let tracked = self.tracked.get_mut(&reading.watched)?;
        let level = tracked.level.unwrap_or(LimitLevel::Cgroup);
        let t = reading.at_ns as f64 / NS;
        let point = Point { t, parts: reading.unreclaimable, limit_hits: reading.limit_hits, reclaim: reading.reclaim };
        // Calm and unchanged (most cgroups, most of the time): nothing to
        // compute, the climb stays none.
        // (Against the last reading computed in full: a slow leak drifts.)
        let unchanged = tracked.computed.is_some_and(|(persistent, hits)| {
            (persistent - point.persistent()).abs() < UNCHANGED_BYTES && hits == point.limit_hits
        });
        tracked.series.push(point, options.window_seconds);
        if !unchanged {
            tracked.computed = Some((point.persistent(), point.limit_hits));
        }
        if unchanged && tracked.episode.is_none() && tracked.climb_start_ns().is_none() && tracked.outlook.is_some() {
            tracked.remember(reading.at_ns, None);
            let outlook = tracked.outlook.as_mut()?;
            outlook.at_ns = reading.at_ns;
            outlook.usage_bytes = reading.usage_bytes;
            outlook.parts = reading.unreclaimable;
            outlook.unreclaimable_bytes = reading.unreclaimable.total();
            outlook.limit_bytes = limit_bytes;
            return None;
        }
        // Noise: 1 % of the limit, at least 1 MiB.
        let noise = (limit_bytes as f64 * 0.01).max(MIB);
        let climb = tracked.series.climb(noise);
        let start_ns = climb.map(|c| (c.start * NS) as u64);
        tracked.remember(reading.at_ns, start_ns);
        let unreclaimable = reading.unreclaimable.total();
        let trusted =
            climb.filter(|c| c.seconds >= options.min_trend_seconds && c.slope > 0.0 && c.rise_bytes > 2.0 * noise);
        // The time left is the climb of anon + shmem + kernel to the limit:
        // dirty pages are unreclaimable now, but the kernel writes them back
        // (and waits for that) before it declares an OOM.
        let persistent = unreclaimable.saturating_sub(reading.unreclaimable.dirty_bytes);
        let seconds_left = trusted.map(|c| (limit_bytes.saturating_sub(persistent) as f64 / c.slope).max(0.0));
        let climbed = trusted.map_or(0.0, |c| c.seconds);
        let heading =
            seconds_left.is_some_and(|s| s <= options.threshold_seconds && s <= options.max_extrapolation * climbed);
        let episode_before = tracked.episode;
        let change = step(tracked, reading.at_ns, heading, &options);
        // (A recovered episode reports how long it lasted.)
        let episode = tracked.episode.or(episode_before);
        tracked.outlook = Some(Outlook {
            watched: reading.watched.clone(),
            level,
            at_ns: reading.at_ns,
            usage_bytes: reading.usage_bytes,
            unreclaimable_bytes: unreclaimable,
            parts: reading.unreclaimable,
            limit_bytes,
            slope_bytes_per_second: trusted.map_or(0.0, |c| c.slope),
            seconds_left,
            limit_hits: tracked.series.hits_in_window(),
            reclaim: tracked.series.reclaim_in_window(),
            growth: climb.and_then(|c| c.growth),
            state: tracked.episode.map(|e| e.state),
            episode_seconds: episode.map_or(0.0, |e| reading.at_ns.saturating_sub(e.start_ns) as f64 / NS),
        });
        let outlook = tracked.outlook.clone()?;
        change.map(|state| Change { outlook: Outlook { state: Some(state), ..outlook }, state })
    }

    /// The cgroup went away: its episode, if any, ends `recovered`.
    pub fn forget(&mut self, watched: &Watched) -> Option<Change> {
        let tracked = self.tracked.remove(watched)?;
        let episode = tracked.episode?;
        let outlook = tracked.outlook?;
        // Its last episode stays known for a kill that arrives after the
        // cgroup went, for `KEEP_GONE_NS`; older ones are let go.
        let end = outlook.at_ns;
        self.tracked.retain(|_, t| t.outlook.is_some() || t.ended.is_some_and(|(_, e)| e + KEEP_GONE_NS >= end));
        self.tracked.entry(watched.clone()).or_default().ended = Some((episode.start_ns, end));
        Some(Change {
            outlook: Outlook { state: Some(WarningState::Recovered), ..outlook },
            state: WarningState::Recovered,
        })
    }

    /// Every watched cgroup's outlook, soonest limit first.
    pub fn outlooks(&self) -> Vec<Outlook> {
        let mut all: Vec<Outlook> = self.tracked.values().filter_map(|t| t.outlook.clone()).collect();
        all.sort_by(|a, b| {
            let key = |o: &Outlook| o.seconds_left.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b)).then_with(|| {
                let share = |o: &Outlook| o.unreclaimable_bytes as f64 / o.limit_bytes.max(1) as f64;
                share(b).total_cmp(&share(a))
            })
        });
        all
    }

    /// What a kill's verdict needs of the forecast now: a copy, for another
    /// thread (see [`VerdictIndex`]).
    pub fn verdict_index(&self) -> VerdictIndex {
        let facts = self
            .tracked
            .iter()
            .map(|(watched, tracked)| {
                let episode = tracked.episode.map(|e| (e.start_ns, u64::MAX)).or(tracked.ended);
                (watched.clone(), KillFacts { episode, recent: tracked.recent.clone() })
            })
            .collect();
        VerdictIndex { options: self.options, facts }
    }
}

/// What a kill's verdict needs of one watched cgroup.
#[derive(Clone, Debug, Default)]
struct KillFacts {
    /// The episode going on (start, `u64::MAX`), else the last that ended (start, end).
    episode: Option<(u64, u64)>,
    /// [`Tracked::recent`].
    recent: VecDeque<(u64, Option<u64>)>,
}

/// The forecast as far as kills' verdicts need it, copied out of the
/// [`Forecaster`]: the watcher's thread publishes one after each poll, and
/// the event thread reads it without waiting for that thread (which holds
/// nothing the event thread needs while it reads cgroupfs, or loses its CPU).
#[derive(Clone, Debug, Default)]
pub struct VerdictIndex {
    options: ForecastOptions,
    facts: HashMap<Watched, KillFacts>,
}

impl VerdictIndex {
    /// Whether a kill at `kill_ns` (CLOCK_MONOTONIC) of the cgroup `watched`
    /// was warned. `None` when the watcher never read it.
    pub fn verdict(&self, watched: &Watched, kill_ns: u64) -> Verdict {
        let Some(facts) = self.facts.get(watched) else {
            return Verdict::NotWarned(NotWarned { reason: NotWarnedReason::NotWatched, rise_seconds: None });
        };
        // An episode counts if it began before the kill and lasted until
        // shortly before it (the readings after a kill end it).
        let slack = (self.options.recover_seconds * NS) as u64 + 1_000_000_000;
        if let Some((start, end)) = facts.episode
            && start <= kill_ns
            && end.saturating_add(slack) >= kill_ns
        {
            return Verdict::Warned { seconds_before: (kill_ns - start) as f64 / NS };
        }
        let climb_start = facts
            .recent
            .iter()
            .rev()
            .find(|(at, _)| *at <= kill_ns)
            .map(|(at, climb_start)| climb_start.unwrap_or(*at));
        let rise_seconds = climb_start.map(|start| kill_ns.saturating_sub(start) as f64 / NS);
        let reason = if rise_seconds.is_none_or(|s| s < self.options.min_trend_seconds) {
            NotWarnedReason::Burst
        } else {
            NotWarnedReason::BelowThreshold
        };
        Verdict::NotWarned(NotWarned { reason, rise_seconds })
    }

    /// The watched cgroup a kill is measured against: the OOMing memcg if
    /// watched, else its nearest watched ancestor (`path` from the root).
    pub fn watched_for(&self, path: &str) -> Option<Watched> {
        let mut candidate = path.trim_end_matches('/');
        while !candidate.is_empty() {
            let watched = Watched::Cgroup(candidate.to_owned());
            if self.facts.contains_key(&watched) {
                return Some(watched);
            }
            candidate = &candidate[..candidate.rfind('/')?];
        }
        None
    }
}

/// Advances the episode; the new state if it changed.
fn step(tracked: &mut Tracked, at_ns: u64, heading: bool, options: &ForecastOptions) -> Option<WarningState> {
    match (tracked.episode.as_mut(), heading) {
        (None, false) => None,
        (None, true) => {
            let state = if tracked.series.failing_just_now() { WarningState::Imminent } else { WarningState::Warning };
            tracked.episode = Some(Episode { start_ns: at_ns, state, last_valid_ns: at_ns });
            Some(state)
        }
        (Some(episode), true) => {
            episode.last_valid_ns = at_ns;
            if episode.state == WarningState::Warning && tracked.series.failing_just_now() {
                episode.state = WarningState::Imminent;
                return Some(WarningState::Imminent);
            }
            None
        }
        (Some(episode), false) => {
            if (at_ns.saturating_sub(episode.last_valid_ns) as f64) < options.recover_seconds * NS {
                return None;
            }
            tracked.ended = Some((episode.start_ns, at_ns));
            tracked.episode = None;
            Some(WarningState::Recovered)
        }
    }
}

#[cfg(test)]
mod tests;
