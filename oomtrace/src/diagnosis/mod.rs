//! The diagnosis of each kill (issue 12, work in progress): its cause and
//! findings from the event's facts; summary and advice are still to come.

pub mod advice;
pub mod cause;
pub mod findings;

use serde::Serialize;

use crate::event::OomEvent;

pub use self::{cause::Cause, findings::Finding};

/// Why the kill happened, on every event (`diagnosis` in docs/events.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub cause: Cause,
    /// With `cause` = `unknown`: the facts that were missing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

/// The diagnosis of a complete (attributed) event.
pub fn diagnose(event: &OomEvent) -> Diagnosis {
    let (cause, missing) = cause::cause(event);
    Diagnosis { cause, missing, findings: findings::findings(event) }
}
