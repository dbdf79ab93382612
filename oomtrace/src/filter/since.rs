//! `--since`: a duration ago ("1h", "30m") or a time ("2026-11-29 10:00:00",
//! RFC 3339; without an offset, UTC).

use std::time::SystemTime;

use oomtrace_event::OomEvent;

#[derive(Debug, thiserror::Error)]
#[error("--since {0:?}: not a duration (30m, 2h, 1day) or a time (2026-11-29 10:00:00, 2026-11-29T10:00:00Z; UTC)")]
pub struct SinceError(String);

pub fn parse(text: &str, now: SystemTime) -> Result<SystemTime, SinceError> {
    let text = text.trim();
    if let Ok(ago) = humantime::parse_duration(text) {
        return now.checked_sub(ago).ok_or_else(|| SinceError(text.to_owned()));
    }
    humantime::parse_rfc3339_weak(text)
        .or_else(|_| humantime::parse_rfc3339(text))
        .map_err(|_| SinceError(text.to_owned()))
}

/// Whether `event` happened at or after `since`. An event without a
/// wall-clock time is kept: whether it is recent is unknown.
pub fn in_window(event: &OomEvent, since: Option<SystemTime>) -> bool {
    let Some(since) = since else { return true };
    event.time.is_none_or(|time| time.system_time() >= since)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_count_back_from_now_and_times_are_utc() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(parse("1h", now).ok(), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(6_400)));
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_410_400);
        assert_eq!(parse("2025-11-29 10:00:00", now).ok(), Some(at));
        assert_eq!(parse("2025-11-29T10:00:00Z", now).ok(), Some(at));
        assert!(parse("yesterday-ish", now).is_err());
        assert!(parse("18446744073709551615s", now).is_err(), "before any representable time");
    }

    #[test]
    fn the_window_keeps_later_and_untimed_kills() {
        use oomtrace_event::Victim;
        let at = |time: Option<&str>| OomEvent {
            time: time.and_then(|t| t.parse().ok()),
            ..OomEvent::of_victim(Victim::default())
        };
        let since = humantime::parse_rfc3339("2026-11-29T10:00:00Z").ok();
        assert!(in_window(&at(Some("2026-11-29T10:00:01.5Z")), since));
        assert!(!in_window(&at(Some("2026-11-29T09:59:59Z")), since));
        assert!(in_window(&at(None), since));
        assert!(in_window(&at(Some("2000-01-01T00:00:00Z")), None));
    }
}
