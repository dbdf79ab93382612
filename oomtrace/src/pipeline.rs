//! The event path shared by `live` and `daemon`: attach the probes, read the
//! ring buffer, decode, resolve cgroup paths and attribute pods; and the loop
//! both run until a signal: events to a handler, counters every second.

use std::{
    collections::VecDeque,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::MissedTickBehavior,
};

use crate::{
    config::WarnSettings,
    diagnosis::Diagnoser,
    enrich::{
        cgroup::{CgroupResolver, MemoryHierarchy, detect_hierarchy},
        pod::{LEARN_INTERVAL, PodResolver, refresh::Learner},
    },
    forecast::{Change, ForecastOptions, Verdict, runner::Foresight, words::describe},
    host::{log_startup_memory, node_name},
    kernel::{self, privileges::Privileges},
    klog::{
        attribute::attribute_kill,
        join::{
            Joined, LogPosition,
            side::{KernelLogMode, LogSide},
        },
    },
    probe::{AttachPlan, Attached, EbpfLog, Role, Tracer, reclaim::ReclaimCounts, ring::EventReader},
    watch::{WatchOptions, Watched},
};
use oomtrace_event::{
    EventSource, KernelReportRecord, NotWarned, NotWarnedReason, OomEvent, RecordKind, SchemaVersion, WallTime, Warning,
};

use crate::probe::decode::{DecodeContext, DecodeError, decode};

/// How often the counters are polled: ring-buffer losses are warned about,
/// the daemon's metrics refreshed.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Stopping, how long the reports of events already out are waited for: their
/// kill lines follow them within microseconds, unless the log lost them.
const REPORT_WAIT: Duration = Duration::from_secs(1);
/// How often the log is read meanwhile.
const REPORT_POLL: Duration = Duration::from_millis(5);

/// How the pipeline is set up.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub plan: AttachPlan,
    /// Size of the kernel-to-user ring buffer, bytes.
    pub ring_bytes: u32,
    /// Which of the eBPF programs' own messages are forwarded to the log.
    pub ebpf_log: EbpfLog,
    /// CRI socket (None: the default sockets) and the bound on each call.
    pub cri_socket: Option<PathBuf>,
    pub cri_timeout: Duration,
    /// Node name for events (None: NODE_NAME or the hostname).
    pub node_name: Option<String>,
    /// Whether the kernel log is read: joined to live events, and past kills.
    pub kernel_log: KernelLogMode,
    /// Watch memory cgroups and warn before kills (None: no watcher).
    pub warnings: Option<WarnOptions>,
}

/// How the watcher polls and the forecast decides.
#[derive(Clone, Copy, Debug, Default)]
pub struct WarnOptions {
    pub watch: WatchOptions,
    pub forecast: ForecastOptions,
}

impl WarnOptions {
    /// The watcher's and the forecast's options from the user's settings.
    pub fn from_settings(settings: WarnSettings) -> Self {
        Self {
            watch: WatchOptions::default(),
            forecast: ForecastOptions {
                threshold_seconds: settings.within.as_secs_f64(),
                eviction_hard_bytes: (settings.eviction_hard_bytes > 0).then_some(settings.eviction_hard_bytes),
                ..ForecastOptions::default()
            },
        }
    }
}

/// Counters of everything that did not become a complete event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub events: u64,
    pub lost_ringbuf_full: u64,
    pub undecodable: u64,
    pub cgroup_unresolved: u64,
    pub context_missing: u64,
    pub partially_attributed: u64,
    pub cri_failures: u64,
    /// Events read from the kernel log alone (past kills, or kills the probes missed).
    pub kernel_log_events: u64,
    /// Where the kernel log is accounted for (None: not read).
    pub log_position: Option<LogPosition>,
    /// Kernel log lines that looked like part of an OOM report but were not understood.
    pub kernel_log_unparsed: u64,
    /// Kill lines that repeated a `memory.oom.group` kill's first victim: the
    /// kernel kills (and counts) it twice; one event.
    pub kernel_log_repeated: u64,
    /// Warning records delivered.
    pub warnings: u64,
}

/// Whether [`Pipeline::run`] goes on after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// What a command does with what [`Pipeline::run`] delivers.
pub trait EventHandler {
    /// One complete, attributed event.
    fn event(&mut self, event: &OomEvent) -> anyhow::Result<Flow>;

    /// The kernel's report of a live event that went out before it.
    fn kernel_report(&mut self, _record: &KernelReportRecord) -> anyhow::Result<Flow> {
        Ok(Flow::Continue)
    }

    /// One warning record (a cgroup heading for its limit, or recovered).
    fn warning(&mut self, _warning: Warning) -> anyhow::Result<Flow> {
        Ok(Flow::Continue)
    }

    /// The counters, every second.
    fn stats(&mut self, _stats: PipelineStats) {}

    /// The counters right after events went out or the kernel log was read
    /// further (their ring-buffer loss count as of the last second): on the
    /// event path, so only for what cannot wait for [`Self::stats`].
    fn delivered(&mut self, _counts: PipelineStats) {}
}

/// Logs the pipeline's counters at info level after any extra `field = value`s: the
/// summary `live` and the daemon write when they stop.
macro_rules! log_stats {
    ($message:literal, $stats:expr $(, $field:ident = $value:expr)* $(,)?) => {{
        let stats: &$crate::pipeline::PipelineStats = &$stats;
        tracing::info!(
            $($field = $value,)*
            lost_ringbuf_full = stats.lost_ringbuf_full,
            undecodable = stats.undecodable,
            cgroup_unresolved = stats.cgroup_unresolved,
            context_missing = stats.context_missing,
            partially_attributed = stats.partially_attributed,
            cri_failures = stats.cri_failures,
            kernel_log_events = stats.kernel_log_events,
            kernel_log_unparsed = stats.kernel_log_unparsed,
            $message
        )
    }};
}
pub(crate) use log_stats;

pub struct Pipeline {
    tracer: Tracer,
    reader: EventReader,
    cgroups: CgroupResolver,
    pods: PodResolver,
    /// Learns the containers the runtime starts, off the event path.
    _learner: Option<Learner>,
    node: String,
    decode_cx: DecodeContext,
    undecodable: u64,
    context_missing: u64,
    events: u64,
    /// Ring-buffer losses already warned about (the kernel's count as last
    /// read, once per tick: the counters handed over after each delivery do
    /// not read the map each time).
    reported_lost: u64,
    /// Decoded records waiting to be attributed.
    pending: VecDeque<Result<OomEvent, DecodeError>>,
    /// The kernel log, where readable.
    log: Option<LogSide>,
    kernel_log_events: u64,
    /// Remembers each workload's kills (the `repeated` finding).
    diagnoser: Diagnoser,
    /// The watcher and its forecast, where warnings are on.
    foresight: Option<Foresight>,
    warnings: u64,
}

impl Pipeline {
    /// Checks privileges, discovers the kernel, attaches, and warms the caches.
    pub async fn start(options: &PipelineOptions) -> anyhow::Result<Self> {
        let privileges = Privileges::current();
        if !privileges.can_trace() {
            anyhow::bail!("{}", privileges.advice());
        }
        map_large_allocations();
        // This thread reads the ring buffer (the runtime is single-threaded);
        // the watcher's thread goes back to the default slice.
        crate::sched::serve_events_promptly();
        log_startup_memory("before the kernel discovery");
        let facts = kernel::discover();
        log_startup_memory("kernel discovered (BTF layout, tracepoint formats)");
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
        // Limit reclaim is counted for the warnings, only when they are made.
        let plan = AttachPlan { count_reclaim: options.warnings.is_some(), ..options.plan };
        let mut tracer =
            Tracer::start(&facts, &plan, options.ring_bytes, options.ebpf_log).context("starting the OOM probes")?;
        for failure in &tracer.attached.failures {
            tracing::info!(program = failure.method.target(), reason = %failure.error, "not attached");
        }
        if tracer.attached.method(Role::Context).is_none() {
            tracing::info!("no oom_kill_process probe: scope and OOMing memcg are inferred from page counters");
        }
        let reader = EventReader::new(tracer.take_events()?).context("registering the ring buffer")?;
        let cgroups = CgroupResolver::new(hierarchy);
        let mut pods = PodResolver::new(options.cri_socket.clone(), options.cri_timeout);
        pods.warm().await;
        let learner = pods.keep_learning(LEARN_INTERVAL);
        log_startup_memory("container runtime warmed");
        let node = options.node_name.clone().unwrap_or_else(node_name);
        release_startup_memory();
        log_startup_memory("startup heap released");
        let kill_confirmed = tracer.attached.method(Role::KillConfirmation).is_some();
        let decode_cx = DecodeContext::new(facts.constraints, facts.page_size, kill_confirmed);
        let log = LogSide::open(&options.kernel_log);
        let reclaim = tracer.take_reclaim()?;
        let warnings = match (&reclaim, tracer.attached.method(Role::Reclaim)) {
            (Some(_), Some(method)) => format!("on (polling cgroupfs; limit reclaim counted by {})", method.target()),
            _ => "on (polling cgroupfs)".to_owned(),
        };
        let foresight = start_foresight(options.warnings.as_ref(), cgroups.hierarchy(), reclaim);
        log_startup_memory("kernel log and watcher started");
        tracing::info!(
            attached = %tracer.attached.summary(),
            cgroup = cgroups.hierarchy().map_or("none".to_owned(), |h| format!("v{} {}", h.version(), h.root().display())),
            cri = %pods.cri_status().unwrap_or_else(|why| format!("unavailable: {why}")),
            warnings = if foresight.is_some() { warnings.as_str() } else { "off" },
            ebpf_log = %options.ebpf_log,
            node,
            "waiting for OOM kills"
        );
        Ok(Self {
            tracer,
            reader,
            cgroups,
            pods,
            _learner: learner,
            node,
            decode_cx,
            undecodable: 0,
            context_missing: 0,
            events: 0,
            reported_lost: 0,
            pending: VecDeque::new(),
            log,
            kernel_log_events: 0,
            diagnoser: Diagnoser::default(),
            foresight,
            warnings: 0,
        })
    }

    pub fn attached(&self) -> &Attached {
        &self.tracer.attached
    }

    /// The counters, warning once about every ring-buffer loss since the last
    /// call (commands call this periodically).
    pub fn poll_stats(&mut self) -> PipelineStats {
        let stats = self.stats();
        let lost = stats.lost_ringbuf_full;
        if lost > self.reported_lost {
            tracing::warn!(lost_total = lost, new = lost - self.reported_lost, "ring buffer full: OOM events lost");
            self.reported_lost = lost;
        }
        stats
    }

    /// Resolves and attributes every pending record, appending the complete
    /// events to `out`. Awaits the runtime (CRI): run it to completion, never
    /// as a `select!` branch, or the records it holds would be lost.
    async fn attribute_pending(&mut self, out: &mut Vec<OomEvent>) {
        let has_context_probe = self.tracer.attached.method(Role::Context).is_some();
        while let Some(decoded) = self.pending.pop_front() {
            let mut event = match decoded {
                Ok(event) => event,
                Err(error) => {
                    self.undecodable += 1;
                    tracing::warn!(%error, "undecodable record");
                    continue;
                }
            };
            if has_context_probe && event.oom_id.is_none() {
                self.context_missing += 1;
                tracing::debug!(pid = event.victim.pid, "victim without oom_kill_process context");
            }
            // (No procfs fallback when the kernel side could not read the
            // victim's task: a task being killed already shows "/" there.)
            if let Some(cgroup) = event.victim_cgroup.as_mut() {
                self.cgroups.resolve(cgroup);
            }
            if let Some(oom) = event.oom_cgroup.as_mut() {
                self.cgroups.resolve(&mut oom.cgroup);
            }
            let path = event.victim_cgroup.as_ref().and_then(|c| c.path.clone());
            let tgid = event.victim.tgid.or(Some(event.victim.pid));
            event.workload = Some(self.pods.attribute(path.as_deref(), tgid).await);
            event.node = Some(self.node.clone());
            self.events += 1;
            out.push(event);
        }
    }

    /// What the kernel-log side has ready: the reports of live events gone
    /// out, and kills read from the log alone, attributed here (their cgroups
    /// may be gone: the CRI still lists an exited container until it is removed).
    async fn take_log_ready(&mut self, events: &mut Vec<OomEvent>, reports: &mut Vec<KernelReportRecord>) {
        let Some(log) = self.log.as_mut() else { return };
        for joined in log.ready() {
            match joined {
                Joined::Kill(mut event) => {
                    self.kernel_log_events += 1;
                    let root = self.cgroups.hierarchy().map(|h| h.root());
                    attribute_kill(&mut event, root, &mut self.pods, Some(&self.node)).await;
                    events.push(*event);
                }
                Joined::Report(record) => reports.push(*record),
            }
        }
    }

    /// Where the kernel log has been accounted for (the daemon's state).
    pub fn log_position(&self) -> Option<LogPosition> {
        self.log.as_ref().map(LogSide::position)
    }

    /// Hands every event to `handler` until SIGTERM or SIGINT, until
    /// `duration` has passed, or until the handler says stop; polls the
    /// counters every second meanwhile. Only the wait for records races the
    /// timers and signals: records already read are always attributed and
    /// handed over (a CRI call is bounded by its timeout), never dropped.
    pub async fn run(&mut self, duration: Option<Duration>, handler: &mut impl EventHandler) -> anyhow::Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u32::MAX as u64)));
        tokio::pin!(deadline);
        let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
        stats_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut events = Vec::new();
        let mut reports = Vec::new();
        let mut last_position = self.log_position();
        loop {
            let log_deadline = self.log.as_ref().and_then(LogSide::until_deadline).unwrap_or(Duration::MAX);
            let has_log = self.log.is_some();
            let has_foresight = self.foresight.is_some();
            tokio::select! {
                // The kernel's records first: a kill waiting in the ring buffer
                // goes before a warning, the log's lines or the counters.
                biased;
                read = read_records(&mut self.reader, &mut self.pending, self.decode_cx) => read?,
                () = read_log(self.log.as_mut()), if has_log => {}
                Some(change) = next_change(self.foresight.as_mut()), if has_foresight => {
                    let warning = self.warning_of(change).await;
                    self.warnings += 1;
                    if handler.warning(warning)? == Flow::Stop {
                        return Ok(());
                    }
                    continue;
                }
                () = tokio::time::sleep(log_deadline), if log_deadline != Duration::MAX => {}
                _ = stats_tick.tick() => {
                    handler.stats(self.poll_stats());
                    continue;
                }
                _ = &mut deadline => break,
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
            // Live events go out before the log is read at all; their reports
            // follow as the log's branch reads their kill lines (the log's
            // thread reads them off this one, after the kill: see klog::kmsg::follow).
            self.attribute_pending(&mut events).await;
            let live = !events.is_empty();
            if self.deliver(&mut events, handler)? == Flow::Stop {
                return self.finish_reports(handler).await;
            }
            self.take_log_ready(&mut events, &mut reports).await;
            let delivered = live || !events.is_empty() || !reports.is_empty();
            if self.deliver(&mut events, handler)? == Flow::Stop
                || deliver_reports(&mut reports, handler)? == Flow::Stop
            {
                return self.finish_reports(handler).await;
            }
            let position = self.log_position();
            if delivered || position != last_position {
                // At once, not at the next tick: the daemon keeps its position
                // in the kernel log, which a SIGKILL must not set back.
                last_position = position;
                handler.delivered(self.counts());
            }
        }
        // Stopping: the reports of the events out, and what waits for a live
        // event goes out now.
        self.finish_reports(handler).await?;
        if let Some(log) = self.log.as_mut() {
            log.flush();
        }
        self.take_log_ready(&mut events, &mut reports).await;
        self.deliver(&mut events, handler)?;
        deliver_reports(&mut reports, handler)?;
        Ok(())
    }

    /// Stopping: the reports of the live events already out, read for up to
    /// [`REPORT_WAIT`] (kills read from the log alone stay ready: at a signal
    /// they go out after these, see [`Self::run`]).
    async fn finish_reports(&mut self, handler: &mut impl EventHandler) -> anyhow::Result<()> {
        let deadline = Instant::now() + REPORT_WAIT;
        let mut reports = Vec::new();
        while let Some(log) = self.log.as_mut() {
            log.read_now();
            let waiting = log.awaits_reports();
            reports.extend(log.reports());
            if deliver_reports(&mut reports, handler)? == Flow::Stop || !waiting || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(REPORT_POLL).await;
        }
        Ok(())
    }

    /// Diagnoses the events in order (so that `repeated` counts the
    /// workload's earlier kills) and hands them to `handler` until it says stop.
    fn deliver(&mut self, events: &mut Vec<OomEvent>, handler: &mut impl EventHandler) -> anyhow::Result<Flow> {
        for mut event in events.drain(..) {
            match self.foresight.as_ref().map(|f| f.verdict(&event)) {
                Some(Verdict::Warned { seconds_before }) => {
                    event.warned_seconds_before = Some(round_ms(seconds_before))
                }
                Some(Verdict::NotWarned(not)) => {
                    event.not_warned = Some(NotWarned { rise_seconds: not.rise_seconds.map(round_ms), ..not })
                }
                None => event.not_warned = Some(NotWarned { reason: NotWarnedReason::WatcherOff, rise_seconds: None }),
            }
            event.diagnosis = Some(self.diagnoser.diagnose(&event));
            let flow = handler.event(&event)?;
            // A live event's report follows it, when its kill line is read.
            if event.source == EventSource::Ebpf
                && let Some(log) = self.log.as_mut()
            {
                log.sent(event);
            }
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// The counters, the kernel's loss count read now.
    pub fn stats(&self) -> PipelineStats {
        PipelineStats { lost_ringbuf_full: self.tracer.stats().ringbuf_full, ..self.counts() }
    }

    /// The counters with the kernel's loss count as last warned about (no
    /// map read: what goes with each delivery, on the event path).
    fn counts(&self) -> PipelineStats {
        PipelineStats {
            events: self.events,
            lost_ringbuf_full: self.reported_lost,
            undecodable: self.undecodable,
            cgroup_unresolved: self.cgroups.unresolved,
            context_missing: self.context_missing,
            partially_attributed: self.pods.stats.partial,
            cri_failures: self.pods.stats.cri_failures,
            kernel_log_events: self.kernel_log_events,
            log_position: self.log_position(),
            kernel_log_unparsed: self.log.as_ref().map_or(0, LogSide::unparsed),
            kernel_log_repeated: self.log.as_ref().map_or(0, LogSide::repeated),
            warnings: self.warnings,
        }
    }

    /// The watcher, for `oomtrace top`-style views of what it knows.
    pub fn foresight(&self) -> Option<&Foresight> {
        self.foresight.as_ref()
    }

    /// The warning record of a change: attributed as a kill would be, and described.
    async fn warning_of(&mut self, change: Change) -> Warning {
        let outlook = change.outlook;
        let cgroup = outlook.watched.cgroup().map(str::to_owned);
        let workload = self.pods.attribute_cgroup(cgroup.as_deref()).await;
        let mut warning = Warning {
            schema_version: SchemaVersion,
            kind: RecordKind::Warning,
            time: WallTime::from_system_time(std::time::SystemTime::now())
                .unwrap_or_else(|| WallTime::from_timestamp(jiff::Timestamp::UNIX_EPOCH)),
            state: change.state,
            limit_level: outlook.level,
            cgroup,
            usage_bytes: outlook.usage_bytes,
            unreclaimable_bytes: outlook.unreclaimable_bytes,
            unreclaimable: matches!(outlook.watched, Watched::Cgroup(_)).then_some(outlook.parts),
            limit_bytes: outlook.limit_bytes,
            slope_bytes_per_second: outlook.slope_bytes_per_second.round(),
            seconds_left: outlook.seconds_left.map(round_ms),
            limit_hits: outlook.limit_hits,
            reclaim: outlook.reclaim,
            growth: outlook.growth,
            episode_seconds: round_ms(outlook.episode_seconds),
            node: Some(self.node.clone()),
            workload,
            summary: String::new(),
            advice: Vec::new(),
        };
        describe(&mut warning);
        warning
    }
}

/// Hands the reports to `handler` until it says stop.
fn deliver_reports(reports: &mut Vec<KernelReportRecord>, handler: &mut impl EventHandler) -> anyhow::Result<Flow> {
    for record in reports.drain(..) {
        if handler.kernel_report(&record)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// Seconds to the millisecond (what the JSON keeps).
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Starts the watcher where it is wanted and a memory hierarchy is mounted.
fn start_foresight(
    options: Option<&WarnOptions>,
    hierarchy: Option<&MemoryHierarchy>,
    reclaim: Option<ReclaimCounts>,
) -> Option<Foresight> {
    let options = options?;
    let Some(hierarchy) = hierarchy else {
        tracing::warn!("no memory cgroup hierarchy: no warnings before kills");
        return None;
    };
    match Foresight::start(hierarchy, options.watch, options.forecast, reclaim) {
        Ok(foresight) => Some(foresight),
        Err(error) => {
            tracing::warn!(%error, "cannot start the memory cgroup watcher: no warnings before kills");
            None
        }
    }
}

/// The watcher's next change (the `select!` branch; only enabled with a watcher).
async fn next_change(foresight: Option<&mut Foresight>) -> Option<Change> {
    match foresight {
        Some(foresight) => foresight.next_change().await,
        None => std::future::pending().await,
    }
}

/// Waits for records and decodes them into the pending list. Cancellation
/// safe: the only await comes before anything is read.
async fn read_records(
    reader: &mut EventReader,
    pending: &mut VecDeque<Result<OomEvent, DecodeError>>,
    decode_cx: DecodeContext,
) -> anyhow::Result<()> {
    reader.read_batch(|bytes| pending.push_back(decode(bytes, &decode_cx))).await.context("reading the ring buffer")?;
    Ok(())
}

/// Reads the next lines of the kernel log (the `select!` branch; only
/// enabled when there is a log).
async fn read_log(log: Option<&mut LogSide>) {
    if let Some(log) = log {
        log.read().await;
    }
}

/// Keeps every allocation from 128 KiB up in its own mapping, returned to the
/// system when freed. glibc otherwise raises that threshold to the largest
/// block freed so far (up to 32 MiB): once the kernel BTF's 5.5 MB buffer is
/// freed, aya's parse of it grows its vectors inside the heap, every
/// outgrown copy stays resident until `malloc_trim`, and the startup peak
/// grows by them (+4 MiB measured here).
fn map_large_allocations() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes a malloc tunable; a fixed threshold also
    // turns glibc's dynamic adjustment off (mallopt(3)).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// The startup frees what it parsed (the kernel BTF, the eBPF object);
/// hand that heap back to the system so the resident size reflects what the
/// tracer keeps.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
