//! Prometheus: the file_sd scrape targets and the instant-query API.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{HINT, JOB, POLL, prometheus_address, state_dir};
use crate::http;

/// Prometheus' file_sd targets file.
pub fn targets_file() -> PathBuf {
    state_dir().join("targets.json")
}

/// Points Prometheus at one target (`"127.0.0.1:PORT"`), replacing the
/// previous ones.
pub fn set_scrape_target(target: &str) -> Result<()> {
    set_scrape_targets(&[target])
}

/// Writes the targets file; an empty list scrapes nothing. Prometheus
/// re-reads it within ~1 s.
pub fn set_scrape_targets(targets: &[&str]) -> Result<()> {
    let groups = if targets.is_empty() {
        serde_json::json!([])
    } else {
        serde_json::json!([{ "targets": targets, "labels": {} }])
    };
    write_atomically(&targets_file(), &format!("{groups:#}\n"))
}

/// Adds one target to the targets file; the file's previous content (other
/// users' targets) is put back on drop.
pub struct ScrapeTarget {
    previous: Option<String>,
}

impl ScrapeTarget {
    pub fn add(target: &str) -> Result<Self> {
        let path = targets_file();
        let previous = fs::read_to_string(&path).ok();
        let mut groups = previous
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|value| value.as_array().cloned())
            .unwrap_or_default();
        groups.push(serde_json::json!({ "targets": [target], "labels": {} }));
        write_atomically(&path, &Value::Array(groups).to_string())?;
        Ok(ScrapeTarget { previous })
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let path = targets_file();
        let restored = self.previous.clone().unwrap_or_else(|| "[]\n".to_owned());
        if let Err(error) = write_atomically(&path, &restored) {
            eprintln!("warning: could not restore {}: {error:#}", path.display());
        }
    }
}

/// Temporary file + rename: Prometheus never reads half a file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!("json.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    fs::write(&tmp, text).with_context(|| format!("writing {} ({HINT})", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| {
        let _ = fs::remove_file(&tmp);
        format!("renaming {} to {}", tmp.display(), path.display())
    })
}

/// An instant query; returns `data.result` (for vector queries an array of
/// `{"metric": {labels}, "value": [time, "value"]}`).
pub fn query(promql: &str) -> Result<Vec<Value>> {
    let path = format!("/api/v1/query?query={}", http::urlencode(promql));
    let (status, body) = http::get(&prometheus_address(), &path)?;
    let json: Value = serde_json::from_str(&body)
        .with_context(|| format!("query {promql:?}: HTTP {status} with a body that is not JSON: {body}"))?;
    if json["status"] != "success" {
        bail!(
            "query {promql:?}: HTTP {status}, {}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or(&body)
        );
    }
    match &json["data"]["result"] {
        Value::Array(series) => Ok(series.clone()),
        other => bail!("query {promql:?}: a non-vector result {other}"),
    }
}

/// The value of the first series of an instant query, if any.
pub fn query_value(promql: &str) -> Result<Option<f64>> {
    Ok(query(promql)?.first().and_then(sample_value))
}

/// Polls `promql` until `predicate` accepts its result (the series array),
/// returning that result, or fails after `timeout` saying what it last saw.
pub fn wait_for_series(promql: &str, predicate: impl FnMut(&[Value]) -> bool, timeout: Duration) -> Result<Vec<Value>> {
    poll(&format!("query {promql:?} still gives"), || query(promql), predicate, timeout)
}

/// Polls `fetch` until `predicate` accepts what it returns, returning that,
/// or fails after `timeout` with `still` and the last answer (or error).
fn poll(
    still: &str,
    mut fetch: impl FnMut() -> Result<Vec<Value>>,
    mut predicate: impl FnMut(&[Value]) -> bool,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match fetch() {
            Ok(values) if predicate(&values) => return Ok(values),
            Ok(values) => Value::Array(values).to_string(),
            Err(error) => format!("{error:#}"),
        };
        if Instant::now() >= deadline {
            bail!("after {timeout:?}, {still} {last}");
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `promql` until the value of its first series satisfies `accept`;
/// the time it took.
pub fn wait_for_value(promql: &str, accept: impl Fn(f64) -> bool, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    wait_for_series(promql, |series| series.first().and_then(sample_value).is_some_and(&accept), timeout)?;
    Ok(started.elapsed())
}

/// Waits until Prometheus has scraped `target` successfully (`up == 1`).
pub fn wait_for_scrape(target: &str, timeout: Duration) -> Result<Duration> {
    wait_for_value(&format!(r#"up{{job="{JOB}",instance="{target}"}}"#), |v| v == 1.0, timeout)
}

/// The value of one series of an instant-vector result.
pub fn sample_value(series: &Value) -> Option<f64> {
    match &series["value"][1] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// One label of one series of a query result.
pub fn series_label<'a>(series: &'a Value, label: &str) -> Option<&'a str> {
    series["metric"][label].as_str()
}

/// The directory whose `*.yaml` rule files Prometheus loads
/// (`scripts/observability.sh` puts it in `rule_files`).
pub fn rules_dir() -> PathBuf {
    state_dir().join("rules")
}

/// A rule file loaded into the shared Prometheus: written to [`rules_dir`],
/// Prometheus reloaded (`POST /-/reload`) and its groups listed by
/// `/api/v1/rules`. On drop the file is removed and Prometheus reloaded again.
pub struct LoadedRules {
    path: PathBuf,
}

impl LoadedRules {
    /// Loads `text` as rule file `name` and waits until Prometheus lists each of `groups` from it.
    pub fn load(name: &str, text: &str, groups: &[&str], timeout: Duration) -> Result<LoadedRules> {
        let dir = rules_dir();
        if !dir.is_dir() {
            bail!("{} does not exist: run scripts/observability.sh up (it adds it to rule_files)", dir.display());
        }
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        let loaded = LoadedRules { path };
        let file = loaded.path.display().to_string();
        let deadline = Instant::now() + timeout;
        loop {
            reload()?;
            let listed = rule_groups()?;
            let missing: Vec<&&str> = groups
                .iter()
                .filter(|g| !listed.iter().any(|l| l["name"] == **g && l["file"].as_str() == Some(file.as_str())))
                .collect();
            if missing.is_empty() {
                return Ok(loaded);
            }
            if Instant::now() >= deadline {
                bail!(
                    "after {timeout:?} Prometheus still lists no group {missing:?} from {file}: is {} in the \
                     rule_files of its configuration (scripts/observability.sh up)? It lists {}",
                    rules_dir().display(),
                    Value::Array(listed.iter().map(|g| serde_json::json!([g["name"], g["file"]])).collect())
                );
            }
            std::thread::sleep(POLL * 4);
        }
    }
}

impl Drop for LoadedRules {
    fn drop(&mut self) {
        let removed = fs::remove_file(&self.path);
        if let Err(error) = removed.map_err(anyhow::Error::from).and_then(|()| reload()) {
            eprintln!("warning: could not unload {}: {error:#}", self.path.display());
        }
    }
}

/// `POST /-/reload` (Prometheus runs with `--web.enable-lifecycle`).
fn reload() -> Result<()> {
    match http::post(&prometheus_address(), "/-/reload", None)? {
        (200, _) => Ok(()),
        (status, body) => bail!("POST /-/reload answered HTTP {status}: {} ({HINT})", body.trim()),
    }
}

/// `data` of a Prometheus API answer, or its error.
fn api_data(path: &str) -> Result<Value> {
    let (status, body) = http::get(&prometheus_address(), path)?;
    let json: Value = serde_json::from_str(&body)
        .with_context(|| format!("GET {path}: HTTP {status} with a body that is not JSON: {body}"))?;
    if json["status"] != "success" {
        bail!("GET {path}: HTTP {status}: {}", json["error"].as_str().unwrap_or(&body));
    }
    Ok(json["data"].clone())
}

/// The rule groups `/api/v1/rules` lists (`name`, `file`, `rules`, …).
pub fn rule_groups() -> Result<Vec<Value>> {
    Ok(api_data("/api/v1/rules")?["groups"].as_array().cloned().unwrap_or_default())
}

/// The alerts `/api/v1/alerts` reports, pending and firing: each
/// `{"labels", "annotations", "state", "activeAt", "value"}`.
pub fn alerts() -> Result<Vec<Value>> {
    Ok(api_data("/api/v1/alerts")?["alerts"].as_array().cloned().unwrap_or_default())
}

/// Polls [`alerts`] until `predicate` accepts them, returning them, or fails
/// after `timeout` with the last list.
pub fn wait_for_alerts(predicate: impl FnMut(&[Value]) -> bool, timeout: Duration) -> Result<Vec<Value>> {
    poll("Prometheus' alerts are still", alerts, predicate, timeout)
}
