//! A wall-clock time as events carry it: parsed once where it enters (the
//! probe's clock, the kernel log, the CRI), written one way: RFC 3339, UTC,
//! exactly six fractional digits and `Z` (`2026-11-25T23:12:34.987994Z`).

use std::{borrow::Cow, fmt, str::FromStr, time::SystemTime};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

/// A point in time, to the microsecond (what the JSON keeps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(jiff::Timestamp);

impl WallTime {
    /// `time` cut to the microsecond; `None` outside jiff's range (years
    /// -9999..=9999).
    pub fn from_system_time(time: SystemTime) -> Option<Self> {
        jiff::Timestamp::try_from(time).ok().map(Self::from_timestamp)
    }

    /// `time` cut to the microsecond.
    pub fn from_timestamp(time: jiff::Timestamp) -> Self {
        // In range: a timestamp's microseconds make a timestamp again.
        Self(jiff::Timestamp::from_microsecond(time.as_microsecond()).unwrap_or(time))
    }

    /// The same time as a `SystemTime` (the epoch for a time this platform's
    /// `SystemTime` cannot hold).
    pub fn system_time(self) -> SystemTime {
        SystemTime::try_from(self.0).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", self.0)
    }
}

impl FromStr for WallTime {
    type Err = jiff::Error;

    /// Any RFC 3339 time with an offset (`Z`, `+01:00`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(Self::from_timestamp)
    }
}

impl Serialize for WallTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for WallTime {
    fn schema_name() -> Cow<'static, str> {
        "WallTime".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "RFC 3339, UTC, exactly six fractional digits (2026-11-25T23:12:34.987994Z).",
            "type": "string",
            "format": "date-time",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn written_as_the_producers_always_wrote_it() {
        for (nanos, text) in [
            (1_764_112_354_987_994_123, "2025-11-25T23:12:34.987994Z"),
            (1_700_000_005_000_000_000, "2023-11-14T22:13:25.000000Z"),
        ] {
            let system = SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
            let time = WallTime::from_system_time(system).expect("in range");
            assert_eq!(time.to_string(), text);
            assert_eq!(time.to_string(), humantime::format_rfc3339_micros(system).to_string());
            assert_eq!(serde_json::to_string(&time).ok(), Some(format!("\"{text}\"")));
            assert_eq!(text.parse::<WallTime>().ok(), Some(time));
        }
        let offset: WallTime = "2026-11-29T11:00:00.5+01:00".parse().expect("parses");
        assert_eq!(offset.to_string(), "2026-11-29T10:00:00.500000Z");
    }
}
