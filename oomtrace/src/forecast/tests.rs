//! The forecast on made-up readings: what each memory behaviour of the
//! issue's list becomes (the real ones are in tests/warnings.rs).

use oomtrace_event::{NotWarnedReason, Unreclaimable, WarningState};

use super::*;
use crate::watch::{Reading, Watched};

const LIMIT: u64 = 256 * 1024 * 1024;

fn reading(t: f64, anon_mib: f64, hits: u64) -> Reading {
    Reading {
        watched: Watched::Cgroup("/test".to_owned()),
        at_ns: (t * NS) as u64,
        usage_bytes: (anon_mib * MIB) as u64,
        limit_bytes: LIMIT,
        unreclaimable: Unreclaimable { anon_bytes: (anon_mib * MIB) as u64, ..Unreclaimable::default() },
        limit_hits: hits,
        reclaim: None,
    }
}

/// Feeds `anon(t)` every 0.1 s for `seconds`; the changes with their times.
fn run(forecaster: &mut Forecaster, seconds: f64, anon: impl Fn(f64) -> f64) -> Vec<(f64, Change)> {
    let mut changes = Vec::new();
    for i in 0..(seconds * 10.0) as usize {
        let t = 100.0 + i as f64 * 0.1;
        if let Some(change) = forecaster.observe(&reading(t, anon(t), 0)) {
            changes.push((t, change));
        }
    }
    changes
}

#[test]
fn a_steady_leak_is_warned_with_the_time_it_has_left() {
    let mut forecaster = Forecaster::new(ForecastOptions::default());
    // 16 MiB/s from 20 MiB: the limit at t = 100 + 14.75.
    let changes = run(&mut forecaster, 14.0, |t| 20.0 + 16.0 * (t - 100.0));
    let (t, first) = changes.first().expect("a warning");
    assert_eq!(first.state, WarningState::Warning);
    let actual = 100.0 + (256.0 - 20.0) / 16.0 - t;
    let predicted = first.outlook.seconds_left.unwrap_or_default();
    assert!((predicted - actual).abs() <= actual * 0.1, "predicted {predicted}, actual {actual}");
    assert!(*t <= 102.2, "warned at {t}: the climb needs 2 s");
    assert!((first.outlook.slope_bytes_per_second / MIB - 16.0).abs() < 0.1);
}

#[test]
fn steady_memory_and_a_sawtooth_are_not_warned() {
    let mut forecaster = Forecaster::new(ForecastOptions::default());
    assert!(run(&mut forecaster, 30.0, |t| 230.0 + (t * 7.0).sin()).is_empty());
    let mut forecaster = Forecaster::new(ForecastOptions::default());
    // 1 s teeth from 40 to 200 MiB.
    assert!(run(&mut forecaster, 30.0, |t| 40.0 + 160.0 * (t - t.floor())).is_empty());
}

#[test]
fn a_burst_is_not_warnable_and_says_why() {
    let mut forecaster = Forecaster::new(ForecastOptions::default());
    assert!(run(&mut forecaster, 5.0, |t| if t < 104.5 { 20.0 } else { 250.0 }).is_empty());
    let watched = Watched::Cgroup("/test".to_owned());
    match forecaster.verdict_index().verdict(&watched, (104.9 * NS) as u64) {
        Verdict::NotWarned(not) => {
            assert_eq!(not.reason, NotWarnedReason::Burst);
            assert!(not.rise_seconds.is_some_and(|s| s < 1.0), "{not:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_warned_kill_says_how_long_before_and_the_episode_recovers_after_it() {
    let mut forecaster = Forecaster::new(ForecastOptions::default());
    let changes = run(&mut forecaster, 20.0, |t| if t < 114.0 { 20.0 + 16.0 * (t - 100.0) } else { 5.0 });
    let states: Vec<_> = changes.iter().map(|(_, c)| c.state).collect();
    assert_eq!(states, [WarningState::Warning, WarningState::Recovered]);
    let warned_at = changes[0].0;
    let watched = Watched::Cgroup("/test".to_owned());
    match forecaster.verdict_index().verdict(&watched, (114.0 * NS) as u64) {
        Verdict::Warned { seconds_before } => assert!((seconds_before - (114.0 - warned_at)).abs() < 0.01),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hitting_the_limit_while_warned_is_imminent() {
    let mut forecaster = Forecaster::new(ForecastOptions::default());
    let mut states = Vec::new();
    for i in 0..140u64 {
        let t = 100.0 + i as f64 * 0.1;
        let hits = i.saturating_sub(120);
        if let Some(change) = forecaster.observe(&reading(t, (20.0 + 16.0 * (t - 100.0)).min(250.0), hits)) {
            states.push(change.state);
        }
    }
    assert_eq!(states, [WarningState::Warning, WarningState::Imminent]);
}

#[test]
fn a_kill_is_measured_against_the_nearest_watched_ancestor() {
    let mut forecaster = Forecaster::new(ForecastOptions::default());
    run(&mut forecaster, 1.0, |_| 10.0);
    assert_eq!(
        forecaster.verdict_index().watched_for("/test/child/grandchild"),
        Some(Watched::Cgroup("/test".to_owned()))
    );
    assert_eq!(forecaster.verdict_index().watched_for("/other"), None);
}

#[test]
fn a_slow_leak_read_often_is_still_warned() {
    // 0.5 MiB/s read every 0.1 s: 51 KiB per reading, under "unchanged";
    // the drift since the last full computation is what counts.
    let options = ForecastOptions { threshold_seconds: 600.0, ..ForecastOptions::default() };
    let mut forecaster = Forecaster::new(options);
    let changes = run(&mut forecaster, 60.0, |t| 200.0 + 0.5 * (t - 100.0));
    assert_eq!(changes.first().map(|(_, c)| c.state), Some(WarningState::Warning), "{changes:?}");
}

#[test]
fn a_burst_read_again_after_its_kill_still_says_how_fast_it_rose() {
    let mut forecaster = Forecaster::new(ForecastOptions::default());
    // Calm at 20 MiB, then all at once; killed at 104.55; the memory is
    // freed and read twice before the kill's event asks.
    run(&mut forecaster, 4.6, |t| if t < 104.5 { 20.0 } else { 250.0 });
    for t in [104.7, 104.8] {
        forecaster.observe(&reading(t, 1.0, 0));
    }
    match forecaster.verdict_index().verdict(&Watched::Cgroup("/test".to_owned()), (104.55 * NS) as u64) {
        Verdict::NotWarned(not) => {
            assert_eq!(not.reason, NotWarnedReason::Burst);
            assert!(not.rise_seconds.is_some_and(|s| s < 0.2), "{not:?}");
        }
        other => panic!("{other:?}"),
    }
}
