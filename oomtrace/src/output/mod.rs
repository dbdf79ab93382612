//! What a person or a pipe reads: the table or NDJSON that `oomtrace live`
//! (and the daemon, on stdout) writes. What a system scrapes or receives is in
//! `export`. Text from outside oomtrace reaches a person only through
//! `escape`.

pub mod json;
pub mod stdout_pipe;
pub mod table;

use std::io::Write;

use oomtrace_event::{KernelReportRecord, OomEvent, Warning};

/// An output format of `oomtrace live`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON object per line (docs/events.md).
    Json,
}

/// Writes events in one format.
pub trait EventWriter {
    fn start(&mut self, out: &mut dyn Write) -> std::io::Result<()>;
    fn event(&mut self, out: &mut dyn Write, event: &OomEvent) -> std::io::Result<()>;
    fn warning(&mut self, out: &mut dyn Write, warning: &Warning) -> std::io::Result<()>;
    fn kernel_report(&mut self, out: &mut dyn Write, record: &KernelReportRecord) -> std::io::Result<()>;
}

pub fn for_format(format: OutputFormat) -> Box<dyn EventWriter + Send> {
    match format {
        OutputFormat::Table => Box::new(table::TableWriter),
        OutputFormat::Json => Box::new(json::JsonWriter),
    }
}
