//! NDJSON: one event per line, flushed per event.

use std::io::Write;

use super::EventWriter;
use oomtrace_event::OomEvent;

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
}
