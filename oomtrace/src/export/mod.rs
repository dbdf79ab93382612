//! What a system scrapes or receives from the daemon: Prometheus metrics and
//! OTLP logs and metrics. What a person or a pipe reads is in `output`.

pub mod labels;
pub mod otlp;
pub mod prometheus;
