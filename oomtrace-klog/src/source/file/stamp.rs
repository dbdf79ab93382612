//! The time stamps that open a saved log line, each parsed from text (no clock read): the
//! calendar and time zone work is jiff's.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `123.456789` (the inside of dmesg's `[  123.456789]`): seconds since boot.
pub(super) fn since_boot(text: &str) -> Option<Duration> {
    let (seconds, fraction) = text.trim_start().split_once('.')?;
    let seconds: u64 = digits(seconds)?.parse().ok()?;
    Some(Duration::new(seconds, nanos(fraction)?))
}

/// `1764414840.123456` (journalctl's `short-unix`): seconds since the epoch.
pub(super) fn unix(text: &str) -> Option<SystemTime> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let seconds: u64 = digits(seconds)?.parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(seconds, nanos(fraction)?))
}

/// An RFC 3339 time with its offset: rsyslog's `2026-11-29T11:14:00.123456+00:00`, journalctl's
/// `short-iso` `2026-11-29T11:14:00+0000`, dmesg's `--time-format iso` `…T11:14:00,123456+00:00`.
pub(super) fn rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    // jiff accepts more than RFC 3339 (week dates, bare years with offsets): insist on the shape.
    if bytes.len() < 20 || !bytes[..4].iter().all(u8::is_ascii_digit) || bytes[4] != b'-' || bytes[10] != b'T' {
        return None;
    }
    system_time(text.parse::<Timestamp>().ok()?)
}

/// `Sun Nov 29 10:58:17 2026` (dmesg -T, inside its brackets), in the given time zone.
pub(super) fn ctime(text: &str, zone: &TimeZone) -> Option<SystemTime> {
    let mut fields = text.split_whitespace();
    let (weekday, month, day, time, year) =
        (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || !WEEKDAYS.contains(&weekday) {
        return None;
    }
    let year: i16 = digits(year)?.parse().ok()?;
    let date = Date::new(year, month_number(month)?, day_number(day)?).ok()?;
    local(date.to_datetime(time_of_day(time)?), zone)
}

/// `dmesg -H`'s first stamp of a minute, `Nov29 11:34`: month, day and time.
pub(super) fn month_day_minute(text: &str) -> Option<(i8, i8, Time)> {
    let (month_day, clock) = text.split_once(' ')?;
    let (month, day) = month_day.split_at_checked(3)?;
    let (hour, minute) = clock.split_once(':')?;
    let number = |text: &str| -> Option<i8> { digits(text).filter(|t| t.len() == 2)?.parse().ok() };
    Some((month_number(month)?, day_number(day)?, Time::new(number(hour)?, number(minute)?, 0, 0).ok()?))
}

/// `dmesg -H`'s `  +0.000117` and `--time-format delta`'s `<   0.000117>`: time since the
/// previous line, which dates nothing.
pub(super) fn is_delta(text: &str) -> bool {
    let text = text.trim();
    let seconds = text.strip_prefix('+').or_else(|| text.strip_prefix('<').and_then(|t| t.strip_suffix('>')));
    seconds.is_some_and(|seconds| since_boot(seconds).is_some())
}

pub(super) fn is_weekday(text: &str) -> bool {
    WEEKDAYS.contains(&text)
}

/// A syslog date without its year: `Nov 29` (or `Nov  1`), as month and day.
pub(super) fn month_day(month: &str, day: &str) -> Option<(i8, i8)> {
    Some((month_number(month)?, day_number(day)?))
}

/// `11:14:00` or `11:14:00.123456`.
pub(super) fn time_of_day(text: &str) -> Option<Time> {
    let (clock, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let mut parts = clock.split(':');
    let (hour, minute, second) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [hour, minute, second].iter().any(|part| part.len() != 2) {
        return None;
    }
    let number = |text: &str| -> Option<i8> { digits(text)?.parse().ok() };
    let nanos = i32::try_from(nanos(fraction)?).ok()?;
    Time::new(number(hour)?, number(minute)?, number(second)?, nanos).ok()
}

/// A local date and time in `zone` (a time repeated when clocks go back is taken the first
/// time, one skipped when they go forward as if the clocks had not moved yet: jiff's
/// "compatible" choice, as RFC 5545 and Temporal make it).
pub(super) fn local(datetime: DateTime, zone: &TimeZone) -> Option<SystemTime> {
    system_time(zone.to_ambiguous_timestamp(datetime).compatible().ok()?)
}

pub(super) fn month_number(name: &str) -> Option<i8> {
    let index = MONTHS.iter().position(|month| *month == name)?;
    i8::try_from(index + 1).ok()
}

fn day_number(text: &str) -> Option<i8> {
    let day: i8 = digits(text)?.parse().ok()?;
    (1..=31).contains(&day).then_some(day)
}

fn system_time(timestamp: Timestamp) -> Option<SystemTime> {
    SystemTime::try_from(timestamp).ok()
}

/// A decimal fraction (`123456` of `.123456`) as nanoseconds; digits past the ninth are dropped.
fn nanos(fraction: &str) -> Option<u32> {
    let fraction = digits(fraction)?;
    let kept = &fraction[..fraction.len().min(9)];
    let scale = 10u32.pow(9 - kept.len() as u32);
    Some(kept.parse::<u32>().ok()? * scale)
}

/// `text` if it is one or more ASCII digits (what `str::parse` would also take with a sign).
fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> SystemTime {
        system_time(text.parse().unwrap()).unwrap()
    }

    #[test]
    fn since_boot_and_unix_stamps() {
        assert_eq!(since_boot("  20291.748109"), Some(Duration::new(20291, 748_109_000)));
        assert_eq!(since_boot("0.000000"), Some(Duration::ZERO));
        assert_eq!(since_boot("1.1234567891"), Some(Duration::new(1, 123_456_789)));
        for bad in ["", "12", "x.5", "1.", "-1.5", "1.+5", "99999999999999999999.0"] {
            assert_eq!(since_boot(bad), None, "{bad:?}");
        }
        assert_eq!(unix("1764414840.123456"), Some(utc("2025-11-29T11:14:00.123456Z")));
        assert_eq!(unix("1764414840"), Some(utc("2025-11-29T11:14:00Z")));
    }

    #[test]
    fn rfc3339_in_its_three_spellings() {
        let expected = Some(utc("2026-11-29T10:58:17.692634Z"));
        assert_eq!(rfc3339("2026-11-29T10:58:17.692634+00:00"), expected);
        assert_eq!(rfc3339("2026-11-29T10:58:17,692634+00:00"), expected);
        assert_eq!(rfc3339("2026-11-29T11:58:17.692634+0100"), expected);
        assert_eq!(rfc3339("2026-11-29T10:58:17+0000"), Some(utc("2026-11-29T10:58:17Z")));
        assert_eq!(rfc3339("2026-11-29T10:58:17"), None, "no offset: not a point in time");
        assert_eq!(rfc3339("2026-W48-7T10:58:17+00:00"), None);
    }

    #[test]
    fn ctime_in_a_zone() {
        let berlin = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(ctime("Sun Nov 29 10:58:17 2026", &TimeZone::UTC), Some(utc("2026-11-29T10:58:17Z")));
        assert_eq!(ctime("Sun Nov  1 10:58:17 2026", &berlin), Some(utc("2026-11-01T09:58:17Z")));
        for bad in
            ["Sun Nov 29 10:58:17", "Xyz Nov 29 10:58:17 2026", "Sun Nov 31 10:58:17 2026", "Sun Nov 29 25:00:00 2026"]
        {
            assert_eq!(ctime(bad, &TimeZone::UTC), None, "{bad:?}");
        }
    }

    #[test]
    fn times_of_day() {
        assert_eq!(time_of_day("11:14:00"), Time::new(11, 14, 0, 0).ok());
        assert_eq!(time_of_day("11:14:00.5"), Time::new(11, 14, 0, 500_000_000).ok());
        for bad in ["11:14", "1:14:00", "11:14:00:00", "11:14:60", "aa:bb:cc", "11:14:00."] {
            assert_eq!(time_of_day(bad), None, "{bad:?}");
        }
    }
}
