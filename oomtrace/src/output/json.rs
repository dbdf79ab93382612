//! NDJSON: one record (a kill, a warning or a kill's kernel report, told
//! apart by `kind`) per line, flushed per record, each line one write:
//! serialized whole first (a kill is ~2 KiB, which through stdout's 1 KiB
//! line buffer took three write(2) calls on the event thread).

use std::io::Write;

use super::EventWriter;
use oomtrace_event::{KernelReportRecord, OomEvent, Warning};

pub struct JsonWriter;

/// Room for a whole line at once (a kill with its diagnosis is 2–4 KiB): the
/// line is not grown, copy by copy, on the event path.
const LINE_CAPACITY: usize = 8 * 1024;

impl EventWriter for JsonWriter {
    fn start(&mut self, _out: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }

    fn event(&mut self, out: &mut dyn Write, event: &OomEvent) -> std::io::Result<()> {
        write_line(out, event)
    }

    fn warning(&mut self, out: &mut dyn Write, warning: &Warning) -> std::io::Result<()> {
        write_line(out, warning)
    }

    fn kernel_report(&mut self, out: &mut dyn Write, record: &KernelReportRecord) -> std::io::Result<()> {
        write_line(out, record)
    }
}

fn write_line(out: &mut dyn Write, record: &impl serde::Serialize) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(LINE_CAPACITY);
    serde_json::to_writer(&mut line, record)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}
