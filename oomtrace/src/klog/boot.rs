//! Which boot this is, and the wall-clock time of a kernel log stamp from it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::kernel::clock::monotonic_now;

pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

#[derive(Debug, thiserror::Error)]
#[error("could not read the boot id from {path}: {cause}")]
pub struct BootIdError {
    path: String,
    cause: std::io::Error,
}

/// This boot's id in the journal's spelling (`_BOOT_ID`: 32 lowercase hex digits, the
/// kernel's dashes removed), so ids from both compare equal.
pub fn boot_id() -> Result<String, BootIdError> {
    read_boot_id(Path::new(BOOT_ID_PATH))
}

fn read_boot_id(path: &Path) -> Result<String, BootIdError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| BootIdError { path: path.display().to_string(), cause: source })?;
    Ok(normalize_boot_id(&text))
}

/// `3f1c2a0e-…` or `3F1C2A0E…` with or without dashes and newline → `3f1c2a0e…`.
pub fn normalize_boot_id(text: &str) -> String {
    text.trim().chars().filter(|c| *c != '-').flat_map(char::to_lowercase).collect()
}

/// Converts the kernel log's time since boot to wall-clock time.
///
/// printk stamps records with `local_clock()`, which runs with CLOCK_MONOTONIC (both stop
/// while the machine is suspended), so wall time = the boot's wall time + the stamp, with the
/// boot's wall time taken as now (CLOCK_REALTIME) − CLOCK_MONOTONIC now. `dmesg -T` and
/// journald do the same. Caveat: a record stamped before a suspend is dated too late by the
/// time spent suspended, and a wall-clock step (NTP) since the record shifts it too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootClock {
    booted_at: SystemTime,
}

impl BootClock {
    /// The clock as of now.
    pub fn now() -> Self {
        let booted_at = SystemTime::now().checked_sub(monotonic_now()).unwrap_or(SystemTime::UNIX_EPOCH);
        Self { booted_at }
    }

    /// A clock for a boot that started at `booted_at` (tests, or a boot time known otherwise).
    pub fn booted_at(booted_at: SystemTime) -> Self {
        Self { booted_at }
    }

    pub fn boot_time(&self) -> SystemTime {
        self.booted_at
    }

    /// The wall-clock time of a stamp from this boot.
    pub fn wall_time(&self, since_boot: Duration) -> SystemTime {
        self.booted_at.checked_add(since_boot).unwrap_or(self.booted_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_boots_id_is_32_hex_digits() {
        let id = boot_id().unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        assert_eq!(normalize_boot_id("2F563038-0a4c-44f8-6ef4-9659a83bef18\n"), "2f5630380a4c44f86ef49659a83bef18");
    }

    #[test]
    fn a_missing_boot_id_file_is_an_error_naming_it() {
        let error = read_boot_id(Path::new("/nonexistent/boot_id")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/boot_id"), "{error}");
    }

    #[test]
    fn wall_time_is_boot_time_plus_the_stamp() {
        let booted_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_929_606);
        let clock = BootClock::booted_at(booted_at);
        assert_eq!(
            clock.wall_time(Duration::from_micros(20_291_692_735)),
            booted_at + Duration::from_micros(20_291_692_735)
        );
        // Now's clock dates a stamp of "now since boot" at about now.
        let now = BootClock::now().wall_time(monotonic_now());
        let skew = now.duration_since(SystemTime::now()).or_else(|e| Ok::<_, ()>(e.duration())).unwrap();
        assert!(skew < Duration::from_secs(1), "{skew:?}");
    }
}
