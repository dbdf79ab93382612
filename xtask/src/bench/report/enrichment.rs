//! The Enrichment cost section.

use std::{fmt::Write as _, time::Duration};

use crate::bench::{
    figures::{EnrichmentFigures, Report, duration_stats},
    report::format::{not_measured, short_duration},
    settings::RUNTIME_CALL_FLOOR,
};

/// `## Enrichment cost`: a table of attribute() times, then what they show.
pub fn enrichment(out: &mut String, report: &Report) {
    writeln!(out, "## Enrichment cost").ok();
    writeln!(out).ok();
    let Some(e) = report.enrichment.measured() else {
        return not_measured(out, &report.enrichment);
    };
    writeln!(
        out,
        "`oomtrace::enrich::pod::PodResolver::attribute` called in process ({}), in a tokio current-thread runtime (the \
         daemon's pipeline awaits it once per event), with a {} ms CRI timeout, on a pod {} runs: container `app` in \
         `{}`, attributed as *{}*. No peer: bpftrace has no pod attribution, so this section has no ratio.",
        if e.optimized {
            "a release build of oomtrace's `enrichment_bench` example, optimized as oomtrace ships"
        } else {
            "**an unoptimized build**: the times overstate the shipped binary's"
        },
        e.timeout.as_millis(),
        e.runtime,
        e.container_path,
        e.attribution
    )
    .ok();
    writeln!(out).ok();
    table(out, e);
    writeln!(out).ok();
    findings(out, e);
    writeln!(out).ok();
}

fn table(out: &mut String, e: &EnrichmentFigures) {
    writeln!(out, "| attribute() of | calls | min | p50 | p99 | max |\n|---|---|---|---|---|---|").ok();
    let rows: [(String, &[Duration]); 6] = [
        ("a cached container (looked up before)".to_owned(), &e.cached),
        (
            "a container listed by `warm()` but never looked up (first call after `warm()`, as in the daemon)"
                .to_owned(),
            &e.after_warm,
        ),
        (
            "a container never looked up, fresh resolver (connects to the socket, then ContainerStatus)".to_owned(),
            &e.cold_connect,
        ),
        ("another container never looked up, connected resolver (ContainerStatus)".to_owned(), &e.cold_connected),
        ("a container whose main process has exited, again and again".to_owned(), &e.exited),
        (
            format!("any container, CRI socket that accepts but never answers ({} ms timeout)", e.timeout.as_millis()),
            &e.hung,
        ),
    ];
    for (what, times) in rows {
        match duration_stats(times) {
            Some(stats) => {
                let [min, p50, p99, max] = stats.map(short_duration);
                writeln!(out, "| {what} | {} | {min} | {p50} | {p99} | {max} |", times.len()).ok();
            }
            None => {
                writeln!(out, "| {what} | 0 | n/a | n/a | n/a | n/a |").ok();
            }
        }
    }
}

/// What the attributions were, and what the times say about the cache.
fn findings(out: &mut String, e: &EnrichmentFigures) {
    writeln!(out, "- The exited container was attributed as *{}*.", e.exited_attribution).ok();
    writeln!(out, "- Against the socket that never answers, attribution was *{}*.", e.hung_attribution).ok();
    // A call this much slower than a cache hit went to the runtime.
    let asked_runtime = |times: &[Duration]| match duration_stats(times) {
        Some([min, p50, ..]) if min >= RUNTIME_CALL_FLOOR => Some(short_duration(p50)),
        _ => None,
    };
    if let Some(p50) = asked_runtime(&e.after_warm) {
        writeln!(
            out,
            "- After `warm()` the first call for a container still went to the runtime (p50 {p50}): `warm()` fills \
             the cache from ListContainers, which carries no main pid, and `attribute` serves a cached entry only \
             when it has one (or is a sandbox); the listed entries are used when the runtime fails or has \
             forgotten the container."
        )
        .ok();
    }
    if let Some(p50) = asked_runtime(&e.exited) {
        writeln!(
            out,
            "- Every call for the exited container went to the runtime (p50 {p50}): once its main process is gone, \
             ContainerStatus reports no pid, and an entry without one is never served from the cache."
        )
        .ok();
    }
    if e.hung.len() > 1 && e.hung.iter().all(|t| *t >= e.timeout) {
        writeln!(
            out,
            "- Failures are not remembered: each of the {} calls on one resolver waited the full timeout. The \
             pipeline attributes events one after another, so while the runtime hangs each container kill delays \
             the events behind it by the timeout.",
            e.hung.len()
        )
        .ok();
    } else if let Some((first, rest)) = e.hung.split_first()
        && *first >= e.timeout
        && !rest.is_empty()
        && rest.iter().all(|t| *t < e.timeout / 10)
    {
        let slowest = rest.iter().max().copied().unwrap_or_default();
        writeln!(
            out,
            "- A failure is remembered: the first call waited the timeout ({}), the next {} returned at once \
             (slowest {}), each a partial attribution, while the resolver leaves the runtime alone (2 s after a \
             failure, doubling up to 60 s). A hung runtime costs one event the timeout, not every event of a storm.",
            short_duration(*first),
            rest.len(),
            short_duration(slowest)
        )
        .ok();
    }
}

#[cfg(test)]
mod tests {
    use crate::bench::report::golden::assert_section;

    #[test]
    fn enrichment_as_before() {
        assert_section(Some("Enrichment cost"), super::enrichment);
    }
}
