//! Where events go: a human table or NDJSON on stdout.

pub mod json;
pub mod otlp;
pub mod prometheus;
pub mod table;

use std::io::Write;

use crate::event::OomEvent;

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
pub trait Sink {
    fn start(&mut self, out: &mut dyn Write) -> std::io::Result<()>;
    fn event(&mut self, out: &mut dyn Write, event: &OomEvent) -> std::io::Result<()>;
}

pub fn for_format(format: OutputFormat) -> Box<dyn Sink + Send> {
    match format {
        OutputFormat::Table => Box::new(table::TableSink),
        OutputFormat::Json => Box::new(json::JsonSink),
    }
}
