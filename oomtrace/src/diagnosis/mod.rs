//! The diagnosis of each kill: its cause, the findings with their
//! evidence, one sentence for a person and the advice with exact commands,
//! following the AKS guide "Troubleshoot OOMkilled in AKS clusters"
//! (docs/diagnosis.md).

pub mod advice;
pub mod cause;
pub mod findings;
pub mod repeat;
pub mod summary;

use oomtrace_event::{Diagnosis, Finding, OomEvent};

pub use self::repeat::KillMemory;

/// Diagnoses events in the order they happened, remembering each workload's
/// kills (the `repeated` finding).
#[derive(Default)]
pub struct Diagnoser {
    kills: KillMemory,
}

impl Diagnoser {
    /// The diagnosis of a complete (attributed) event.
    pub fn diagnose(&mut self, event: &OomEvent) -> Diagnosis {
        let (cause, missing) = cause::cause(event);
        let findings = findings::findings(event, self.kills.note(event));
        let summary = summary::summary(event, cause, &findings);
        let advice = advice::advise(event, cause, &findings);
        Diagnosis { cause, missing, findings, summary, advice }
    }
}

/// `earlier`, the diagnosis an event went out with, again now that the
/// event has more facts (its kernel report): the same cause and the same
/// earlier kills, the findings, summary and advice of the facts it has now.
pub fn revise(event: &OomEvent, earlier: &Diagnosis) -> Diagnosis {
    let repeat = earlier.findings.iter().find_map(|finding| match finding {
        Finding::Repeated { repeat, .. } => Some(repeat.clone()),
        _ => None,
    });
    let findings = findings::findings(event, repeat);
    let summary = summary::summary(event, earlier.cause, &findings);
    let advice = advice::advise(event, earlier.cause, &findings);
    Diagnosis { cause: earlier.cause, missing: earlier.missing.clone(), findings, summary, advice }
}

/// The diagnosis of one event on its own (no earlier kills known).
pub fn diagnose(event: &OomEvent) -> Diagnosis {
    Diagnoser::default().diagnose(event)
}
