//! The diagnosis of each kill (issue 12, work in progress): its cause from
//! the event's facts; findings, summary and advice are still to come.

pub mod advice;
pub mod cause;
pub mod findings;
