//! The event oomtrace reports, as users read it (docs/events.md): one OOM
//! victim ([`OomEvent`]), the workload it belonged to, what the kernel's
//! report in its log added, and the diagnosis. Data types only: every
//! producer (the eBPF decoder, the kernel log, enrichment, the diagnosis)
//! depends on this crate, and it depends on none of them.
//!
//! Every name is a unit enum whose JSON spelling (serde's `rename_all`) and
//! `as_str` and `FromStr` (strum's `serialize_all`) are one rule on one declaration; the
//! test below holds them equal over every variant.

pub mod diagnosis;
pub mod oom;
pub mod report;
pub mod time;
pub mod warning;
pub mod workload;

pub use self::{
    diagnosis::{Advice, AdviceAction, Cause, Diagnosis, Finding, FindingKind, MissingFact, Repeat},
    oom::{
        CapturedPath, Cgroup, EventSource, OomCgroup, OomEvent, RecordKind, SchemaVersion, Scope, ScopeSource,
        ScopeUnknownReason, Trigger, Victim,
    },
    report::{KernelLog, KernelReport, KernelReportRecord, LogOrigin, ReportTask},
    time::WallTime,
    warning::{Growth, LimitLevel, NotWarned, NotWarnedReason, Reclaim, Unreclaimable, Warning, WarningState},
    workload::{
        Attribution, MonitoredContainer, NullUnknown, OmitUnknown, Owner, OwnerKind, Qos, Runtime, UnknownKeys,
        WorkloadIdentity, WorkloadInfo, WorkloadKind,
    },
};

/// The version of the event's JSON: the first field of every NDJSON line
/// (`schema_version`). Raise it when a field changes meaning or goes away.
/// 2: every line has a `kind`; `warning` lines join the kills.
/// 3: live kills no longer carry `kernel_report`: `oom_kernel_report` lines
/// follow them.
pub const SCHEMA_VERSION: u32 = 3;

/// One NDJSON line: a kill, a warning or a kill's kernel report (told apart by `kind`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Record {
    Kill(Box<OomEvent>),
    Warning(Box<Warning>),
    KernelReport(Box<KernelReportRecord>),
}

/// `as_str`, the name the JSON uses, for each name enum.
macro_rules! names {
    ($($name:ty),* $(,)?) => {
        $(impl $name {
            /// The name the JSON uses.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        })*

        #[cfg(test)]
        mod names_tests {
            use super::*;

            /// serde (the JSON) and strum (`as_str`, `FromStr`) spell every
            /// variant alike.
            #[test]
            fn as_str_is_the_json_name() {
                $(for value in <$name as strum::VariantArray>::VARIANTS {
                    assert_eq!(
                        serde_json::to_value(value).ok(),
                        Some(serde_json::Value::from(value.as_str())),
                        "{}::{value:?}",
                        stringify!($name)
                    );
                    assert_eq!(value.as_str().parse::<$name>().ok().as_ref(), Some(value));
                })*
            }
        }
    };
}

names!(
    Scope,
    ScopeSource,
    ScopeUnknownReason,
    EventSource,
    Runtime,
    Qos,
    Attribution,
    WorkloadKind,
    OwnerKind,
    LogOrigin,
    Cause,
    MissingFact,
    FindingKind,
    AdviceAction,
    RecordKind,
    WarningState,
    LimitLevel,
    Growth,
    NotWarnedReason,
);

/// Where the committed JSON Schema of an event lives, from the workspace root
/// (`cargo xtask schema` writes it; the testkit checks real events against it).
pub const SCHEMA_PATH: &str = "docs/event.schema.json";

/// The JSON Schema (draft 2020-12) of one NDJSON line, [`OomEvent`] and all it
/// contains, or a [`Warning`], as written to [`SCHEMA_PATH`] (pretty, with a final newline).
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft2020_12().for_serialize().into_generator();
    let schema = generator.into_root_schema_for::<Record>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod schema_tests {
    /// The committed schema is what the types generate.
    #[test]
    fn the_committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(super::SCHEMA_PATH);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == super::json_schema(),
            "{} is not what the event types generate: run `cargo xtask schema` and commit it",
            super::SCHEMA_PATH
        );
    }
}
