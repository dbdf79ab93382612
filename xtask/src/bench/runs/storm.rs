//! Kills in storms, with oomtrace and bpftrace tracing the same kills at
//! once (each stamps its lines on arrival, so the two are compared kill by
//! kill, under the same load):
//!
//! - rounds: `storm` hogs at once, `rounds` times, in the same cgroups;
//! - the wave: `wave` cgroups, each at its own limit, whose hogs are held
//!   stopped until all are ready and then released together;
//! - the time to know: `oomtrace daemon` with its defaults exporting to the
//!   real OTLP receiver, from each kill to its record's arrival there, beside
//!   the daemon's own stdout line and bpftrace's line, in one storm.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};

use crate::bench::{
    figures::{KillRun, KnowFigures, SharedKills, ThreadCost},
    host::progress,
    receiver::Receiver,
    runs::{
        daemon,
        kills::{Seen, kernel_oom_kills, kill_at_once},
        tracers,
    },
    settings::{
        DAEMON_SETTLE, DRAIN_QUIET, EVENT_DEADLINE, KNOW_DEADLINE, KNOW_RECEIVER_DIR, LIMIT_BYTES, READYZ_DEADLINE,
        WAVE_EVENT_DEADLINE, WAVE_LIMIT_BYTES,
    },
};
use oomtrace_testkit::{
    cgroup::{BenchCgroups, Hierarchy, Hog, MemCgroup},
    daemon::{free_port, wait_ready},
    http,
    live::{self, LiveSummary},
    observability::{OtlpReceived, parse_exposition, records},
    procfs::{self, ThreadSched},
    tracer::{Observed, STDOUT_THREAD_PREFIX, Spec, Tracer},
};

/// The daemon's counters of events it lost or could not export (its /metrics).
const DROP_COUNTERS: [&str; 3] =
    ["oomtrace_events_lost_total", "oomtrace_exporter_dropped_total", "oomtrace_exporter_failures_total"];
/// The event name of a kill's OTLP log record.
const KILL_EVENT_NAME: &str = "oomtrace.oom_kill";

/// A tracer running and what it printed, by victim pid.
struct Traced {
    tracer: Tracer,
    seen: Seen,
}

impl Traced {
    /// Starts `spec` and waits until it is attached (and, where it says so
    /// later, its probes are).
    fn start(spec: &Spec, name: &str) -> Result<Traced> {
        Ok(Traced { tracer: tracers::start_attached(spec, name)?, seen: Seen::default() })
    }

    fn wait_for(&mut self, pids: &[u32], timeout: Duration) {
        self.seen.wait_for(&self.tracer, pids, timeout);
    }

    fn drain(&mut self) {
        self.seen.drain(&self.tracer, DRAIN_QUIET);
    }
}

/// The peer, started when it can be, or why not.
fn start_peer(bpftrace: &Result<Spec, String>) -> Result<Traced, String> {
    let spec = bpftrace.as_ref().map_err(Clone::clone)?;
    Traced::start(spec, "bpftrace").map_err(|error| format!("{error:#}"))
}

/// `rounds` storms of one hog in each of `cgroups` cgroups limited to
/// `limit_bytes` (the wave: one round), traced by both at once.
pub fn shared(
    oomtrace: &Path,
    bpftrace: &Result<Spec, String>,
    hierarchy: &Hierarchy,
    name: &str,
    (cgroups, rounds, limit_bytes): (usize, usize, u64),
) -> Result<SharedKills> {
    let bench = BenchCgroups::create(hierarchy, name, limit_bytes, cgroups)?;
    let mut ours = Traced::start(&tracers::oomtrace_spec(oomtrace, Some(&bench.parent.path)), "oomtrace")?;
    let mut peer = start_peer(bpftrace);
    let deadline = if cgroups > 64 { WAVE_EVENT_DEADLINE } else { EVENT_DEADLINE };
    let Storms { hogs, span_ms, threads, .. } =
        storms(&bench.storm, &mut ours, &mut peer, &[], (rounds, deadline), name)?;
    ours.drain();
    let kernel = kernel_oom_kills(&bench.storm)?;
    ours.tracer.stop().context("stopping oomtrace")?;
    let drops = LiveSummary::from_log(&ours.tracer.log_text()).map_err(|error| format!("{error:#}"));
    let bpftrace = finish_peer(peer, &hogs, kernel);
    let run = ours.seen.tally(&hogs, kernel);
    progress(&format!(
        "storm: {name}: oomtrace {}/{} events, bpftrace {}",
        run.events_matched(),
        run.oom_killed(),
        bpftrace.as_ref().map_or_else(Clone::clone, |b| format!("{}/{}", b.events_matched(), b.oom_killed()))
    ));
    Ok(SharedKills { cgroups, rounds, limit_bytes, oomtrace: run, drops, bpftrace, span_ms, threads })
}

/// Each running tracer's pid, under its name.
fn tracer_pids(ours: &Traced, peer: &Result<Traced, String>) -> Vec<(&'static str, u32)> {
    let mut pids = vec![("oomtrace", ours.tracer.pid())];
    if let Ok(peer) = peer {
        pids.push(("bpftrace", peer.tracer.pid()));
    }
    pids
}

/// The tracers' threads now, and the bench's own threads that read and
/// stamp their lines (under a fair scheduler each waits for a CPU like the
/// tracer it reads: a late reader would make a late line).
fn scheds(pids: &[(&'static str, u32)]) -> Result<Vec<(&'static str, ThreadSched)>, String> {
    let mut all = Vec::new();
    for &(tracer, pid) in pids {
        let threads = procfs::thread_scheds(pid).map_err(|error| format!("{tracer}: {error:#}"))?;
        all.extend(threads.into_iter().map(|thread| (tracer, thread)));
    }
    let bench = procfs::thread_scheds(std::process::id()).map_err(|error| format!("the bench: {error:#}"))?;
    all.extend(
        bench
            .into_iter()
            .filter(|thread| thread.name.starts_with(STDOUT_THREAD_PREFIX))
            .map(|thread| ("bench", thread)),
    );
    Ok(all)
}

/// What each thread present at both readings cost between them.
fn thread_costs(before: &[(&'static str, ThreadSched)], after: &[(&'static str, ThreadSched)]) -> Vec<ThreadCost> {
    after
        .iter()
        .filter_map(|(tracer, now)| {
            let (_, then) = before.iter().find(|(t, then)| t == tracer && then.tid == now.tid)?;
            Some(ThreadCost {
                tracer,
                thread: now.name.clone(),
                run_ms: now.run_ns.saturating_sub(then.run_ns) as f64 / 1e6,
                wait_ms: now.wait_ns.saturating_sub(then.wait_ns) as f64 / 1e6,
                runs: now.timeslices.saturating_sub(then.timeslices),
            })
        })
        .collect()
}

/// The wave's settings: every cgroup at once, at its own limit, `rounds` times.
pub fn wave(
    oomtrace: &Path,
    bpftrace: &Result<Spec, String>,
    hierarchy: &Hierarchy,
    name: &str,
    (cgroups, rounds): (usize, usize),
) -> Result<SharedKills> {
    shared(oomtrace, bpftrace, hierarchy, name, (cgroups, rounds, WAVE_LIMIT_BYTES))
}

/// The time to know in `rounds` storms of `kills`: `oomtrace daemon` with
/// its defaults, OTLP over gRPC to the receiver (its own service name, to
/// find its records), bpftrace beside it.
pub fn time_to_know(
    oomtrace: &Path,
    receiver_exe: &Path,
    bpftrace: &Result<Spec, String>,
    hierarchy: &Hierarchy,
    name: &str,
    (kills, rounds): (usize, usize),
    cri_socket: Option<&str>,
) -> Result<KnowFigures> {
    let receiver = know_receiver(receiver_exe)?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let service = format!("{name}-know");
    let mut args = vec!["daemon", "--metrics-address", address.as_str()];
    if let Some(socket) = cri_socket {
        args.extend(["--cri-socket", socket]);
    }
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", receiver.grpc)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_SERVICE_NAME", service.clone()),
    ];
    let spec = live::spec(oomtrace, &args, env);
    let command = daemon::shown(&spec, &args);
    progress(&format!("storm: time to know: {command}"));
    let mut daemon = Traced::start(&spec, "oomtrace daemon")?;
    wait_ready(&address, READYZ_DEADLINE)
        .with_context(|| format!("the daemon's /readyz; its log ends with {:?}", daemon.tracer.log_lines()))?;
    let bench = BenchCgroups::create(hierarchy, &format!("{name}-know"), LIMIT_BYTES, kills)?;
    let mut peer = start_peer(bpftrace);
    // What the daemon reports at startup (kills of this boot not reported
    // before) goes out before the storm.
    thread::sleep(DAEMON_SETTLE);
    daemon.drain();
    let mark = receiver.mark();
    let clock = WallClock::read();

    // The receiver's threads wait for the CPUs like the daemon's: their
    // share of the time to know shows in the threads table.
    let receiver_threads: Vec<(&'static str, u32)> = receiver.pid().map(|pid| ("receiver", pid)).into_iter().collect();
    let Storms { hogs, killed, span_ms, threads } =
        storms(&bench.storm, &mut daemon, &mut peer, &receiver_threads, (rounds, EVENT_DEADLINE), "time to know")?;
    let received = wait_for_records(&receiver.out, mark, &service, &killed)?;
    daemon.drain();
    let kernel = kernel_oom_kills(&bench.storm)?;
    let drops = daemon_drops(&address);
    daemon.tracer.stop().context("stopping oomtrace daemon")?;
    let bpftrace = finish_peer(peer, &hogs, kernel);

    let mut otlp = Seen::default();
    let (mut emitted_ns, mut delivered_ns) = (Vec::new(), Vec::new());
    let mut disagreement: Option<u64> = None;
    let mut log_requests = 0;
    for request in received.requests_of("logs") {
        let Some(arrived_ns) = request["received_unix_nano"].as_u64() else { continue };
        let mut ours = false;
        for record in records::log_records([request]) {
            let Some(pid) = kill_pid(&record) else { continue };
            let Some(&ktime_ns) = daemon.seen.ktimes(&[pid]).first() else { continue };
            ours = true;
            let kill_ns = clock.wall_ns(ktime_ns);
            if let Some(stamped) = record.time_unix_nano {
                disagreement = disagreement.max(Some(stamped.abs_diff(kill_ns)));
            }
            if let Some(emitted) = record.observed_time_unix_nano {
                let leg = |from, to| Observed { victim_pid: pid, ktime_ns: from, received_ns: to }.latency_ns();
                emitted_ns.push(leg(kill_ns, emitted));
                delivered_ns.push(leg(emitted, arrived_ns));
            }
            otlp.record(Observed { victim_pid: pid, ktime_ns: kill_ns, received_ns: arrived_ns });
        }
        log_requests += usize::from(ours);
    }
    let otlp = otlp.tally(&hogs, kernel);
    let stdout = daemon.seen.tally(&hogs, kernel);
    progress(&format!(
        "storm: time to know: {}/{} records in the receiver in {log_requests} requests, {}/{} on stdout",
        otlp.events_matched(),
        otlp.oom_killed(),
        stdout.events_matched(),
        stdout.oom_killed()
    ));
    Ok(KnowFigures {
        command,
        kills,
        rounds,
        limit_bytes: LIMIT_BYTES,
        span_ms,
        otlp,
        stdout,
        emitted_ns,
        delivered_ns,
        bpftrace,
        log_requests,
        clock_disagreement_ns: disagreement,
        clock_offset_uncertainty_ns: clock.uncertainty_ns,
        drops,
        threads,
    })
}

/// The hogs of every storm, the pids the kernel killed, the widest
/// storm's span (first to last kill, ms), and what the tracers' threads (and
/// the bench's readers) cost over the storms.
struct Storms {
    hogs: Vec<Hog>,
    killed: Vec<u32>,
    span_ms: Option<f64>,
    threads: Result<Vec<ThreadCost>, String>,
}

/// `rounds` storms in `cgroups`, one after another, each waited for (see
/// [`storm_once`]); the threads of `also` are read with the tracers'.
fn storms(
    cgroups: &[MemCgroup],
    ours: &mut Traced,
    peer: &mut Result<Traced, String>,
    also: &[(&'static str, u32)],
    (rounds, deadline): (usize, Duration),
    name: &str,
) -> Result<Storms> {
    let mut pids = tracer_pids(ours, peer);
    pids.extend_from_slice(also);
    let before = scheds(&pids);
    let (mut all_hogs, mut all_killed, mut widest) = (Vec::new(), Vec::new(), None::<f64>);
    for round in 1..=rounds {
        progress(&format!("storm: {name}: round {round} of {rounds}, {} hogs released at once", cgroups.len()));
        let (hogs, killed) = storm_once(cgroups, ours, peer, deadline)?;
        if let Some(round_span) = span(&ours.seen.ktimes(&killed)) {
            widest = Some(widest.map_or(round_span, |widest| widest.max(round_span)));
        }
        all_hogs.extend(hogs);
        all_killed.extend(killed);
    }
    let threads = before.and_then(|before| Ok(thread_costs(&before, &scheds(&pids)?)));
    Ok(Storms { hogs: all_hogs, killed: all_killed, span_ms: widest, threads })
}

/// One hog per cgroup released at once; waits for both tracers' events of
/// the kills. The hogs, and the pids the kernel killed.
fn storm_once(
    cgroups: &[MemCgroup],
    ours: &mut Traced,
    peer: &mut Result<Traced, String>,
    deadline: Duration,
) -> Result<(Vec<Hog>, Vec<u32>)> {
    let hogs = kill_at_once(cgroups)?;
    let killed: Vec<u32> = hogs.iter().filter(|hog| hog.oom_killed).map(|hog| hog.pid).collect();
    ours.wait_for(&killed, deadline);
    if let Ok(peer) = peer {
        peer.wait_for(&killed, deadline);
    }
    Ok((hogs, killed))
}

/// Stops the peer once its late events are in; its events matched to `hogs`.
fn finish_peer(peer: Result<Traced, String>, hogs: &[Hog], kernel_oom_kills: u64) -> Result<KillRun, String> {
    let mut peer = peer?;
    peer.drain();
    let _ = peer.tracer.stop();
    Ok(peer.seen.tally(hogs, kernel_oom_kills))
}

/// First to last of kernel timestamps, in ms.
fn span(ktimes: &[u64]) -> Option<f64> {
    let (first, last) = (ktimes.iter().min()?, ktimes.iter().max()?);
    Some((last - first) as f64 / 1e6)
}

/// The victim (`thread.id`, the killed task) of a kill's log record.
fn kill_pid(record: &records::LogRecord) -> Option<u32> {
    if record.event_name.as_deref() != Some(KILL_EVENT_NAME) {
        return None;
    }
    u32::try_from(record.attr_i64("thread.id")?).ok()
}

/// The time to know's own OTLP receiver ([`Receiver`], `exe otlp-receiver`
/// on a port of its own): it stamps each request as it arrives and answers
/// at once.
fn know_receiver(exe: &Path) -> Result<Receiver> {
    let dir = Path::new(KNOW_RECEIVER_DIR);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let grpc = format!("127.0.0.1:{}", free_port()?);
    Receiver::start(exe, dir, &grpc).context("starting the time to know's OTLP receiver")
}

/// What `receiver` (its JSON lines at `out`) got from `service` after `mark`,
/// once it holds a kill record for every one of `pids` (or at the deadline).
fn wait_for_records(out: &Path, mark: u64, service: &str, pids: &[u32]) -> Result<OtlpReceived> {
    let deadline = Instant::now() + KNOW_DEADLINE;
    loop {
        let received = OtlpReceived::read_file_since(out, mark)?.for_service(service);
        let records = received.log_records();
        let has = |pid: &u32| records.iter().any(|record| kill_pid(record) == Some(*pid));
        if pids.iter().all(has) || Instant::now() >= deadline {
            return Ok(received);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon's loss and export counters, every series of them.
fn daemon_drops(address: &str) -> Result<Vec<(String, f64)>, String> {
    let (status, body) = http::get(address, "/metrics").map_err(|error| format!("{error:#}"))?;
    if status != 200 {
        return Err(format!("/metrics answered HTTP {status}"));
    }
    Ok(parse_exposition(&body)
        .into_iter()
        .filter(|(name, _, _)| DROP_COUNTERS.contains(&name.as_str()))
        .map(|(name, labels, value)| {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            (format!("{name}{{{}}}", labels.join(",")), value)
        })
        .collect())
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC, to put `ktime_ns` on the wall clock the
/// receiver stamps arrivals with: the tightest of several bracketed readings.
#[derive(Clone, Copy, Debug)]
struct WallClock {
    offset_ns: i128,
    uncertainty_ns: u64,
}

impl WallClock {
    fn read() -> WallClock {
        let mut best = WallClock { offset_ns: 0, uncertainty_ns: u64::MAX };
        for _ in 0..50 {
            let before = procfs::monotonic_ns();
            let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let after = procfs::monotonic_ns();
            let width = after.saturating_sub(before);
            if width < best.uncertainty_ns {
                let middle = i128::from(before) + i128::from(width / 2);
                best = WallClock { offset_ns: wall as i128 - middle, uncertainty_ns: width };
            }
        }
        best
    }

    fn wall_ns(self, monotonic_ns: u64) -> u64 {
        u64::try_from(i128::from(monotonic_ns) + self.offset_ns).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_offset_puts_now_on_now() {
        let clock = WallClock::read();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        let converted = clock.wall_ns(procfs::monotonic_ns());
        // Units and sign: the two readings are apart by the test's own run time.
        assert!(converted.abs_diff(wall) < 1_000_000_000, "{converted} vs {wall}");
    }

    #[test]
    fn a_threads_cost_is_the_difference_of_its_two_readings() {
        let sched = |tid, run_ns, wait_ns, timeslices| ThreadSched {
            tid,
            name: format!("t{tid}"),
            run_ns,
            wait_ns,
            timeslices,
        };
        let before = [("oomtrace", sched(1, 1_000_000, 0, 1)), ("bpftrace", sched(1, 0, 0, 0))];
        let after = [
            ("oomtrace", sched(1, 3_000_000, 5_000_000, 4)),
            ("oomtrace", sched(2, 9_000_000, 0, 9)),
            ("bpftrace", sched(1, 500_000, 1_000_000, 2)),
        ];
        let costs = thread_costs(&before, &after);
        assert_eq!(
            costs,
            vec![
                ThreadCost { tracer: "oomtrace", thread: "t1".to_owned(), run_ms: 2.0, wait_ms: 5.0, runs: 3 },
                ThreadCost { tracer: "bpftrace", thread: "t1".to_owned(), run_ms: 0.5, wait_ms: 1.0, runs: 2 },
            ],
            "a thread started between the readings (tid 2) is left out; the same tid of another tracer is its own"
        );
    }

    #[test]
    fn span_of_kernel_times() {
        assert_eq!(span(&[3_000_000, 1_000_000, 2_000_000]), Some(2.0));
        assert_eq!(span(&[]), None);
    }
}
