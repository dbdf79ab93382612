//! NDJSON: one record (a kill or a warning, told apart by `kind`) per line,
//! flushed per record.

use std::io::Write;

use super::EventWriter;
use oomtrace_event::{OomEvent, Warning};

pub struct JsonWriter;

impl EventWriter for JsonWriter {
    fn start(&mut self, _out: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }

    fn event(&mut self, out: &mut dyn Write, event: &OomEvent) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, event)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    fn warning(&mut self, out: &mut dyn Write, warning: &Warning) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, warning)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}
