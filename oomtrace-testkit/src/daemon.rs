//! `oomtrace daemon` under test: started through the [`Tracer`] runner with
//! JSON logs on a free port, ready once its /readyz answers 200.

use std::{
    net::TcpListener,
    path::Path,
    process::ExitStatus,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    event::Event,
    http, live,
    observability::parse_exposition,
    tracer::{ParseLine, Spec, Tracer},
};

/// How long the daemon may take to attach and answer /readyz.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}

/// Polls `http://<address>/readyz` until it answers 200.
pub fn wait_ready(address: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match http::get(address, "/readyz") {
            Ok((200, _)) => return Ok(()),
            Ok((status, body)) if Instant::now() >= deadline => {
                bail!("/readyz of {address} still answers {status} ({}) after {timeout:?}", body.trim())
            }
            Err(error) if Instant::now() >= deadline => {
                return Err(error.context(format!("/readyz of {address} after {timeout:?}")));
            }
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A running `oomtrace daemon`, killed on drop unless terminated.
pub struct Daemon {
    tracer: Tracer,
    /// `127.0.0.1:<port>` of /metrics, /healthz and /readyz.
    pub address: String,
}

impl Daemon {
    /// `oomtrace daemon --metrics-address <free port> --log-format json <args>`
    /// with `env` added, once it is ready.
    pub fn start(binary: &Path, env: Vec<(&'static str, String)>, args: &[&str]) -> Result<Daemon> {
        Self::start_reading(binary, env, args, Event::victim_and_ktime)
    }

    /// [`Daemon::start`] taking the stdout lines `parse` reads as its records
    /// ([`Daemon::next_line`]); the others go to its log.
    pub fn start_reading(
        binary: &Path,
        env: Vec<(&'static str, String)>,
        args: &[&str],
        parse: ParseLine,
    ) -> Result<Daemon> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let args = [&["daemon", "--metrics-address", &address, "--log-format", "json"][..], args].concat();
        let mut tracer = Tracer::spawn(&Spec { parse, ..live::spec(binary, &args, env) })?;
        tracer.wait_marker(0, READY_DEADLINE).context("oomtrace daemon did not attach")?;
        wait_ready(&address, READY_DEADLINE).with_context(|| format!("its log:\n{}", tracer.log_text()))?;
        Ok(Daemon { tracer, address })
    }

    pub fn pid(&self) -> u32 {
        self.tracer.pid()
    }

    /// Its log so far (stderr, JSON lines).
    pub fn log_text(&self) -> String {
        self.tracer.log_text()
    }

    /// The next event the daemon printed on stdout.
    pub fn expect_event(&self, timeout: Duration) -> Result<Event> {
        live::expect_event(&self.tracer, timeout)
    }

    /// The next stdout line its parser read ([`Daemon::start_reading`]).
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.tracer.next_event_line(timeout).map(|line| line.line)
    }

    /// Every event the daemon prints until none came for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Event> {
        std::iter::from_fn(|| self.expect_event(quiet).ok()).collect()
    }

    /// The sum of the samples of metric `name` on /metrics (those with
    /// `label` when given).
    pub fn metric(&self, name: &str, label: Option<(&str, &str)>) -> Result<f64> {
        let (status, text) = http::get(&self.address, "/metrics")?;
        if status != 200 {
            bail!("GET /metrics of {} answered {status}", self.address);
        }
        Ok(parse_exposition(&text)
            .into_iter()
            .filter(|(n, labels, _)| {
                n == name && label.is_none_or(|(k, v)| labels.get(k).map(String::as_str) == Some(v))
            })
            .map(|(_, _, v)| v)
            .sum())
    }

    /// SIGTERM; the exit status and how long the exit took (SIGKILL after 15 s).
    pub fn terminate(mut self) -> Result<(ExitStatus, Duration)> {
        let started = Instant::now();
        let status = self.tracer.terminate(libc::SIGTERM, Duration::from_secs(15))?;
        Ok((status, started.elapsed()))
    }
}
