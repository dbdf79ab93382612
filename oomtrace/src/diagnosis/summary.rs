//! The diagnosis in one sentence, for a person at 3 a.m.

use super::{Cause, Finding};
use crate::event::OomEvent;

/// One sentence: who was killed, at which limit, how often, how soon.
pub fn summary(event: &OomEvent, cause: Cause, _findings: &[Finding]) -> String {
    let who = event.victim.comm.as_deref().unwrap_or("?");
    format!("{who} (pid {}) was killed: {}", event.victim.pid, cause.as_str())
}
