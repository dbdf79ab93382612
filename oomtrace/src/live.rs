//! `oomtrace live`: attach, then print every OOM victim as it happens.

use std::{io::Write, time::Duration};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    enrich::{
        cgroup::{CgroupResolver, detect_hierarchy},
        pod::{PodResolver, node_name},
    },
    event::{DecodeContext, OomEvent, decode},
    kernel::{self, privileges::Privileges},
    probe::{AttachPlan, Tracer, ring::EventReader},
    sink::{self, OutputFormat},
};

/// How often the kernel-side loss counters are checked.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub output: OutputFormat,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Only victims whose cgroup path starts with this.
    pub cgroup_prefix: Option<String>,
    /// Only victims with this command name.
    pub comm: Option<String>,
    /// Only victims in this namespace / pod / container (by name).
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    /// CRI socket (None: the default sockets) and the bound on each call.
    pub cri_socket: Option<std::path::PathBuf>,
    pub cri_timeout: Duration,
    pub plan: AttachPlan,
    /// Size of the kernel-to-user ring buffer, bytes.
    pub ring_bytes: u32,
}

/// What happened during a run; printed on exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveSummary {
    pub shown: u64,
    pub filtered_out: u64,
    pub lost_ringbuf_full: u64,
    pub undecodable: u64,
    pub cgroup_unresolved: u64,
    pub context_missing: u64,
    /// Events attributed from the cgroup path only (runtime unreachable or unaware).
    pub partially_attributed: u64,
    pub cri_failures: u64,
}

impl LiveOptions {
    fn matches(&self, event: &OomEvent) -> bool {
        if let Some(comm) = &self.comm
            && event.victim.comm.as_deref() != Some(comm.as_str())
        {
            return false;
        }
        let workload = event.workload.as_ref();
        let wanted = |want: &Option<String>, have: Option<&String>| want.as_ref().is_none_or(|w| have == Some(w));
        if !wanted(&self.namespace, workload.and_then(|w| w.namespace.as_ref()))
            || !wanted(&self.pod, workload.and_then(|w| w.pod.as_ref()))
            || !wanted(&self.container, workload.and_then(|w| w.container.as_ref()))
        {
            return false;
        }
        if let Some(prefix) = &self.cgroup_prefix {
            let path = event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref());
            if !path.is_some_and(|p| cgroup_has_prefix(p, prefix)) {
                return false;
            }
        }
        true
    }
}

/// `/a/b` has prefixes `/a/b`, `/a` and `/`, but `/ab` does not have `/a`.
fn cgroup_has_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

pub async fn run(options: LiveOptions) -> anyhow::Result<LiveSummary> {
    let privileges = Privileges::current();
    if !privileges.can_trace() {
        anyhow::bail!("{}", privileges.advice());
    }
    let facts = kernel::discover();
    for warning in &facts.warnings {
        tracing::warn!("{warning}");
    }
    let hierarchy = match detect_hierarchy() {
        Ok(h) => Some(h),
        Err(error) => {
            tracing::warn!(%error, "cgroup paths unavailable");
            None
        }
    };
    let mut tracer = Tracer::start(&facts, &options.plan, options.ring_bytes).context("starting the OOM probes")?;
    let attached = tracer.attached.clone();
    for failure in &attached.failures {
        tracing::info!(program = failure.program, reason = %failure.error, "not attached");
    }
    if attached.context.is_none() {
        tracing::info!("no oom_kill_process probe: scope and OOMing memcg are inferred from page counters");
    }
    let mut reader = EventReader::new(tracer.take_events()?).context("registering the ring buffer")?;
    let mut resolver = CgroupResolver::new(hierarchy);
    let mut pods = PodResolver::new(options.cri_socket.clone(), options.cri_timeout);
    pods.warm().await;
    let node = node_name();
    release_startup_memory();
    let decode_cx = DecodeContext::new(facts.constraints, facts.page_size, attached.kill_signal);
    tracing::info!(
        attached = %attached.summary(),
        cgroup = resolver.hierarchy().map_or("none".to_owned(), |h| format!("v{} {}", h.version(), h.root().display())),
        "waiting for OOM kills"
    );

    let mut sink = sink::for_format(options.output);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    sink.start(&mut out).context("writing to stdout")?;

    let mut summary = LiveSummary::default();
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let deadline = tokio::time::sleep(options.duration.unwrap_or(Duration::from_secs(u32::MAX as u64)));
    tokio::pin!(deadline);
    let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
    let mut reported_lost = 0u64;
    let mut events = Vec::new();

    'run: loop {
        tokio::select! {
            batch = reader.read_batch(|bytes| events.push(decode(bytes, &decode_cx))) => {
                batch.context("reading the ring buffer")?;
                for decoded in events.drain(..) {
                    let mut event = match decoded {
                        Ok(event) => event,
                        Err(error) => {
                            summary.undecodable += 1;
                            tracing::warn!(%error, "undecodable record");
                            continue;
                        }
                    };
                    if attached.context.is_some() && event.oom_id.is_none() {
                        summary.context_missing += 1;
                        tracing::debug!(pid = event.victim.pid, "victim without oom_kill_process context");
                    }
                    if let Some(cgroup) = event.victim_cgroup.as_mut() {
                        resolver.resolve(cgroup);
                    }
                    if let Some(oom) = event.oom_cgroup.as_mut() {
                        resolver.resolve(&mut oom.cgroup);
                    }
                    let path = event.victim_cgroup.as_ref().and_then(|c| c.path.clone());
                    let tgid = event.victim.tgid.or(Some(event.victim.pid));
                    event.workload = Some(pods.attribute(path.as_deref(), tgid).await);
                    event.node = Some(node.clone());
                    if !options.matches(&event) {
                        summary.filtered_out += 1;
                        continue;
                    }
                    if let Err(error) = sink.event(&mut out, &event) {
                        if error.kind() == std::io::ErrorKind::BrokenPipe {
                            break 'run;
                        }
                        return Err(error).context("writing an event to stdout");
                    }
                    summary.shown += 1;
                    if options.count.is_some_and(|n| summary.shown >= n) {
                        break 'run;
                    }
                }
            }
            _ = stats_tick.tick() => {
                let lost = tracer.stats().ringbuf_full;
                if lost > reported_lost {
                    tracing::warn!(lost_total = lost, new = lost - reported_lost, "ring buffer full: OOM events lost");
                    reported_lost = lost;
                }
            }
            _ = &mut deadline => break,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    summary.lost_ringbuf_full = tracer.stats().ringbuf_full;
    summary.cgroup_unresolved = resolver.unresolved;
    summary.partially_attributed = pods.stats.partial;
    summary.cri_failures = pods.stats.cri_failures;
    drop(tracer);
    let _ = out.flush();
    tracing::info!(
        shown = summary.shown,
        filtered_out = summary.filtered_out,
        lost_ringbuf_full = summary.lost_ringbuf_full,
        undecodable = summary.undecodable,
        cgroup_unresolved = summary.cgroup_unresolved,
        context_missing = summary.context_missing,
        partially_attributed = summary.partially_attributed,
        cri_failures = summary.cri_failures,
        "detached"
    );
    Ok(summary)
}

/// Parsing BTF at startup (ours and aya's) allocates tens of MiB that are
/// freed once the programs are loaded; hand that heap back to the system so
/// the resident size reflects what the tracer keeps.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_prefixes_match_whole_components() {
        assert!(cgroup_has_prefix("/a/b", "/a"));
        assert!(cgroup_has_prefix("/a/b", "/a/"));
        assert!(cgroup_has_prefix("/a", "/a"));
        assert!(cgroup_has_prefix("/a", "/"));
        assert!(!cgroup_has_prefix("/ab", "/a"));
    }
}
