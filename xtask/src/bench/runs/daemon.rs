//! The daemon's footprint with both exporters on: `oomtrace daemon` scraped
//! by the real Prometheus every second and exporting OTLP every second to the
//! real receiver, idle and through a burst of real memcg OOM kills.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::bench::{
    figures::{CpuUse, DaemonFigures, IdleWindow, KillRun},
    host,
    runs::kills::{Seen, kernel_oom_kills, kill_storm},
    settings::{
        DAEMON_IDLE_WINDOW, DAEMON_READY_DEADLINE, DAEMON_SETTLE, DRAIN_QUIET, EXPORT_DEADLINE, FIRST_SCRAPE_DEADLINE,
        LIMIT_BYTES, OTLP_METRIC_INTERVAL_MS, READYZ_DEADLINE,
    },
};
use oomtrace_testkit::{
    cgroup::{BenchCgroups, Hierarchy},
    daemon::{free_port, wait_ready},
    live,
    observability::{self, OtlpCounts, ScrapeTarget},
    procfs::{self, ThreadTimes},
    tracer::{Spec, Tracer},
};

/// Runs the daemon, measures it, stops it. `cgroup_name`: the bench's cgroup
/// name, suffixed here so the burst gets fresh cgroups.
pub fn measure(
    oomtrace: &Path,
    hierarchy: &Hierarchy,
    cgroup_name: &str,
    burst: usize,
    cri_socket: &str,
) -> Result<DaemonFigures> {
    let port = free_port()?;
    let address = format!("127.0.0.1:{port}");
    let service = format!("oomtrace-bench-{}", std::process::id());
    let args = ["daemon", "--metrics-address", &address, "--cri-socket", cri_socket, "--events-stdout", "true"];
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", observability::otlp_grpc_address())),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", OTLP_METRIC_INTERVAL_MS.to_string()),
        ("OTEL_SERVICE_NAME", service.clone()),
    ];
    let spec = live::spec(oomtrace, &args, env);
    let command = shown(&spec, &args);

    progress(&format!("starting the daemon on {address} (OTLP gRPC to {})", observability::otlp_grpc_address()));
    let mut daemon = Tracer::spawn(&spec).context("starting oomtrace daemon")?;
    let attached = daemon.wait_marker(0, DAEMON_READY_DEADLINE).context("oomtrace daemon did not attach")?;
    wait_ready(&address, READYZ_DEADLINE)
        .with_context(|| format!("the daemon's /readyz; its log ends with {:?}", daemon.log_lines()))?;
    let cri = daemon
        .log_lines()
        .iter()
        .find(|line| line.contains(live::READY))
        .and_then(|line| cri_field(line))
        .unwrap_or_else(|| "not in its log".to_owned());

    let target = ScrapeTarget::add(&address).context("pointing Prometheus at the daemon")?;
    let up = format!(r#"up{{job="oomtrace",instance="{address}"}}"#);
    let first_scrape = observability::wait_for_value(&up, |v| v == 1.0, FIRST_SCRAPE_DEADLINE)
        .context("Prometheus did not scrape the daemon")?;
    progress(&format!("Prometheus scrapes it ({:.1} s after the target was written)", first_scrape.as_secs_f64()));

    thread::sleep(DAEMON_SETTLE);
    let pid = daemon.pid();
    progress(&format!("idle before any kill: CPU over {} s", DAEMON_IDLE_WINDOW.as_secs()));
    let idle = idle_window(pid, &address, &service)?;

    let cgroups = BenchCgroups::create(hierarchy, &format!("{cgroup_name}-daemon"), LIMIT_BYTES, burst)?;
    progress(&format!("burst of {burst} parallel OOM kills in {}/storm-NN", cgroups.parent.path));
    let mut seen = Seen::default();
    let otlp_before_burst = observability::otlp_mark();
    let meter = CpuMeter::start(pid)?;
    let hogs = kill_storm(&daemon, &cgroups.storm, &mut seen)?;
    seen.drain(&daemon, DRAIN_QUIET);
    let burst_cpu = meter.stop()?;
    let after_burst = procfs::memory(pid).context("reading the daemon's memory after the burst")?;
    let kernel_kills = kernel_oom_kills(&cgroups.storm)?;
    let run: KillRun = seen.tally(&hogs, kernel_kills);
    let ours = hogs.iter().map(|hog| hog.pid).collect();
    let foreign_events = seen.foreign(&ours);
    drop(cgroups);

    let killed = run.oom_killed() as f64;
    let kills_query = format!(r#"sum(oomtrace_oom_kills_total{{job="oomtrace",instance="{address}"}})"#);
    let prometheus_kills = observability::wait_for_value(&kills_query, |v| v >= killed, EXPORT_DEADLINE)
        .and_then(|_| observability::query_value(&kills_query))
        .map(|v| v.unwrap_or(0.0))
        .map_err(|error| format!("{error:#}"));
    let otlp_burst = wait_for_otlp(otlp_before_burst, &service, run.oom_killed())?;
    // Once a kill was counted, the OTLP counter has a data point and is
    // exported every interval from then on: the steady state of a node.
    progress(&format!("idle after the burst: CPU over {} s", DAEMON_IDLE_WINDOW.as_secs()));
    let idle_after = idle_window(pid, &address, &service)?;

    drop(target);
    let exit = daemon.stop().context("stopping oomtrace daemon")?;
    progress(&format!(
        "burst: {}/{} events, Prometheus counted {}, OTLP got {} log records; exit {exit}",
        run.events_matched(),
        run.oom_killed(),
        prometheus_kills.as_ref().map_or_else(|e| e.clone(), |v| v.to_string()),
        otlp_burst.log_records
    ));
    Ok(DaemonFigures {
        command,
        cri,
        attach: attached,
        first_scrape,
        idle,
        burst: run,
        burst_cpu,
        after_burst,
        prometheus_kills,
        otlp_burst,
        idle_after,
        foreign_events,
        exit: exit.to_string(),
    })
}

/// How the report shows a run of the daemon: its environment, the binary as
/// the bench builds it, its arguments.
pub fn shown(spec: &Spec, args: &[&str]) -> String {
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} target/dist/oomtrace {}", env.join(" "), args.join(" "))
}

/// CPU a process uses from `start` to `stop`.
struct CpuMeter {
    pid: u32,
    ticks: u64,
    threads: ThreadTimes,
    from: Instant,
}

impl CpuMeter {
    fn start(pid: u32) -> Result<Self> {
        let threads = procfs::thread_times(pid)?;
        let ticks = procfs::cpu_ticks(pid)?;
        Ok(CpuMeter { pid, ticks, threads, from: Instant::now() })
    }

    fn stop(self) -> Result<CpuUse> {
        let ticks = procfs::cpu_ticks(self.pid)?;
        let threads = procfs::thread_times(self.pid)?;
        let seconds = self.from.elapsed().as_secs_f64();
        let ticks_per_sec = procfs::clock_ticks_per_sec()?;
        let precise_ms = (threads.tids == self.threads.tids)
            .then(|| threads.run_ns.saturating_sub(self.threads.run_ns) as f64 / 1e6);
        Ok(CpuUse {
            seconds,
            ticks_ms: ticks.saturating_sub(self.ticks) as f64 * 1000.0 / ticks_per_sec as f64,
            precise_ms,
        })
    }
}

/// Memory, CPU, scrapes and OTLP exports over DAEMON_IDLE_WINDOW without kills.
fn idle_window(pid: u32, address: &str, service: &str) -> Result<IdleWindow> {
    let memory_start = procfs::memory(pid).context("reading the daemon's memory")?;
    let otlp_mark = observability::otlp_mark();
    let meter = CpuMeter::start(pid)?;
    thread::sleep(DAEMON_IDLE_WINDOW);
    let cpu = meter.stop()?;
    let memory_end = procfs::memory(pid).context("reading the daemon's memory")?;
    let scrapes = observability::query_value(&format!(
        r#"count_over_time(up{{job="oomtrace",instance="{address}"}}[{}s])"#,
        DAEMON_IDLE_WINDOW.as_secs()
    ))
    .map_err(|error| format!("{error:#}"))
    .and_then(|count| count.ok_or_else(|| "no samples".to_owned()));
    let otlp = observability::otlp_counts_since(otlp_mark, service)?;
    Ok(IdleWindow { memory_start, memory_end, cpu, scrapes, otlp })
}

fn progress(message: &str) {
    host::progress(&format!("daemon: {message}"));
}

/// Waits until the receiver has a log record for every kill (or the deadline).
fn wait_for_otlp(offset: u64, service: &str, kills: usize) -> Result<OtlpCounts> {
    let deadline = Instant::now() + EXPORT_DEADLINE;
    loop {
        let counts = observability::otlp_counts_since(offset, service)?;
        if counts.log_records >= kills || Instant::now() >= deadline {
            return Ok(counts);
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// `cri=<value>` from the daemon's "waiting for OOM kills" log line.
fn cri_field(line: &str) -> Option<String> {
    let rest = &line[line.find("cri=")? + 4..];
    let end = rest.find(" node=").unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cri_field_of_the_ready_line() {
        let line = "2026-11-25T23:00:00Z  INFO oomtrace::pipeline: waiting for OOM kills \
                    attached=victim=tp_btf context=none kill_confirmation=signal_generate cgroup=v1 /sys/fs/cgroup/memory \
                    cri=/run/oomtrace-test/containerd/containerd.sock node=host";
        assert_eq!(cri_field(line).as_deref(), Some("/run/oomtrace-test/containerd/containerd.sock"));
        assert_eq!(cri_field("no field"), None);
    }
}
