//! The `oom_kernel_report` record of a live event: the event's keys and
//! workload, its kernel report as read from the log, and its diagnosis
//! revised with that report.

use oomtrace_event::{KernelReport, KernelReportRecord, OomEvent, RecordKind, SchemaVersion};

use crate::diagnosis;

/// The record of `event`'s report, as `logged`: the same kill read from the
/// log; `None` when the kernel printed no more than the kill line.
pub fn report_record(mut event: OomEvent, logged: OomEvent) -> Option<KernelReportRecord> {
    let report = logged.kernel_report.filter(|report| report != &KernelReport::default())?;
    // Lent to the event for the diagnosis, then taken back (not copied).
    event.kernel_report = Some(report);
    let diagnosis = match event.diagnosis.as_ref() {
        Some(earlier) => diagnosis::revise(&event, earlier),
        None => diagnosis::diagnose(&event),
    };
    let report = event.kernel_report.take()?;
    Some(KernelReportRecord {
        schema_version: SchemaVersion,
        kind: RecordKind::OomKernelReport,
        time: event.time,
        ktime_ns: event.ktime_ns,
        oom_id: event.oom_id,
        victim_pid: event.victim.pid,
        victim_comm: event.victim.comm,
        node: event.node,
        workload: event.workload,
        kernel_log: logged.kernel_log,
        kernel_report: report,
        diagnosis,
    })
}
