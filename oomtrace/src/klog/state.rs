//! The daemon's position in the kernel log: the boot id and the last /dev/kmsg sequence number
//! it reported, so that a restart reports past kills exactly once.
//!
//! Kept in a directory under /run (a tmpfs, empty after a reboot: journald keeps its kernel
//! sequence number in /run/systemd/journal/kernel-seqnum the same way). A boot id is stored
//! anyway, since a hostPath under /run outlives the pod but a directory someone points
//! elsewhere may outlive the boot: sequence numbers restart at 0 each boot.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// The directory the daemon keeps its state in by default.
pub const DEFAULT_STATE_DIR: &str = "/run/oomtrace";
const STATE_FILE_NAME: &str = "kmsg-position.json";
/// The longest state overwritten in place: one page, written whole or not at all.
const IN_PLACE_MAX: usize = 4096;

/// Where the daemon stands in the kernel log, and how many kills of this boot it reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonState {
    /// The boot the position belongs to ([`super::boot::boot_id`]'s spelling).
    pub boot_id: String,
    /// The /dev/kmsg sequence number of the last kill line accounted for (read through
    /// syslog(2), the log has none).
    #[serde(default)]
    pub last_seq: Option<u64>,
    /// Its kernel timestamp, µs since boot (kill lines up to it are done).
    #[serde(default)]
    pub since_boot_us: u64,
    /// OOM kills of this boot reported by the daemon's runs so far (live or from the log).
    #[serde(default)]
    pub reported: u64,
    /// Live events sent before their kill line was read (victim pid, kernel ns): a later run
    /// that reads those lines must not report them again.
    #[serde(default)]
    pub sent_unjoined: Vec<(u32, u64)>,
}

impl DaemonState {
    /// Nothing reported yet in this boot.
    pub fn new(boot_id: String) -> Self {
        Self { boot_id, last_seq: None, since_boot_us: 0, reported: 0, sent_unjoined: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("could not read the state file {path}: {cause}")]
    Read { path: PathBuf, cause: io::Error },
    #[error("state file {path} is not a valid position ({reason}); it will be rewritten")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "could not write the state file {path}: {cause} (is {dir} a writable directory, e.g. a hostPath under /run?)"
    )]
    Write { path: PathBuf, dir: PathBuf, cause: io::Error },
}

/// The state file in its directory.
#[derive(Debug)]
pub struct StateFile {
    dir: PathBuf,
    path: PathBuf,
    /// The file as this process last wrote it whole, and that length: later
    /// saves overwrite it in place (see [`StateFile::save`]).
    written: Option<(File, usize)>,
}

impl StateFile {
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let path = dir.join(STATE_FILE_NAME);
        Self { dir, path, written: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved position: `Ok(None)` when there is no file.
    pub fn load(&self) -> Result<Option<DaemonState>, StateError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                return Err(StateError::Corrupt { path: self.path.clone(), reason: error.to_string() });
            }
            Err(source) => return Err(StateError::Read { path: self.path.clone(), cause: source }),
        };
        let corrupt = |reason: String| StateError::Corrupt { path: self.path.clone(), reason };
        let position: DaemonState = serde_json::from_str(&text).map_err(|error| corrupt(error.to_string()))?;
        if position.boot_id.is_empty() {
            return Err(corrupt("empty boot_id".to_owned()));
        }
        Ok(Some(position))
    }

    /// The state of the boot `boot_id`. Never fails: no file, a file of another boot or one
    /// that cannot be used (a warning says why) all mean nothing of this boot was reported yet.
    pub fn load_for_boot(&self, boot_id: &str) -> DaemonState {
        match self.load() {
            Ok(Some(state)) if state.boot_id == boot_id => state,
            Ok(_) => DaemonState::new(boot_id.to_owned()),
            Err(error) => {
                warn!(%error, "ignoring the kernel log state; reading this boot's log from its start");
                DaemonState::new(boot_id.to_owned())
            }
        }
    }

    /// Saves `position` so that a process killed at any point leaves either
    /// the old or the new position, never a torn file. The first save writes
    /// a temporary file in the same directory and renames it over the old
    /// one; later ones (one per delivered event) overwrite that file in place
    /// with one `pwrite` from offset 0, padded with spaces to the longest
    /// content written so far, so no byte of an older, longer position is
    /// left behind: a write of one page to the page cache is done whole or
    /// not at all when the process is killed. Not fsynced: the page cache
    /// outlives the process, and what only a disk flush would save, a
    /// position after a power loss or a kernel crash, is of a boot whose log
    /// is gone (the next boot has another boot id and starts from its log's
    /// beginning). The rename and a flush per event cost the daemon time on
    /// the event path (`cargo xtask bench --only storm`, time to know).
    pub fn save(&mut self, position: &DaemonState) -> Result<(), StateError> {
        let json = serde_json::to_vec(position).map_err(|error| self.write_error(error.into()))?;
        if let Some((file, longest)) = self.written.as_mut() {
            let width = (*longest).max(json.len() + 1);
            // (Removed behind this process' back: its inode is no one's state.)
            if width <= IN_PLACE_MAX && file.metadata().is_ok_and(|m| m.nlink() > 0) {
                let mut padded = Vec::with_capacity(width);
                padded.extend_from_slice(&json);
                padded.resize(width - 1, b' ');
                padded.push(b'\n');
                match file.write_all_at(&padded, 0) {
                    Ok(()) => {
                        *longest = width;
                        return Ok(());
                    }
                    // Written whole again below (the file may have been removed).
                    Err(error) => tracing::debug!(%error, path = %self.path.display(), "state file: in-place write"),
                }
            }
        }
        self.written = None;
        fs::create_dir_all(&self.dir).map_err(|error| self.write_error(error))?;
        let temporary = self.dir.join(format!(".{STATE_FILE_NAME}.{}.tmp", std::process::id()));
        let mut line = json;
        line.push(b'\n');
        let written = fs::write(&temporary, &line).and_then(|()| fs::rename(&temporary, &self.path));
        if let Err(error) = written {
            // Best effort: the write already failed, a leftover temporary file is harmless.
            let _ = fs::remove_file(&temporary);
            return Err(self.write_error(error));
        }
        self.written = File::options().write(true).open(&self.path).ok().map(|file| (file, line.len()));
        Ok(())
    }

    fn write_error(&self, cause: io::Error) -> StateError {
        StateError::Write { path: self.path.clone(), dir: self.dir.clone(), cause }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "2f5630380a4c44f86ef49659a83bef18";

    /// A fresh directory per test (removed first, in case an earlier run left it).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oomtrace-klog-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_saved_position_round_trips_and_resumes_after_its_seq() {
        let dir = scratch("round-trip");
        let mut state = StateFile::in_dir(dir.join("nested"));
        assert_eq!(state.load_for_boot(BOOT), DaemonState::new(BOOT.to_owned()));
        let position = DaemonState { last_seq: Some(110_942), ..DaemonState::new(BOOT.to_owned()) };
        state.save(&position).unwrap();
        assert_eq!(state.load().unwrap(), Some(position.clone()));
        assert_eq!(state.load_for_boot(BOOT).last_seq, Some(110_942));
        // A second save replaces the first and leaves no temporary file behind.
        state.save(&DaemonState { last_seq: Some(110_943), ..position }).unwrap();
        assert_eq!(state.load_for_boot(BOOT).last_seq, Some(110_943));
        let names: Vec<_> = fs::read_dir(dir.join("nested")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [STATE_FILE_NAME]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_shorter_position_overwrites_a_longer_one_in_place_and_loads_exactly() {
        let dir = scratch("in-place");
        let mut state = StateFile::in_dir(&dir);
        let long = DaemonState {
            last_seq: Some(123_456_789),
            reported: 40,
            sent_unjoined: (0..32).map(|i| (100_000 + i, 9_000_000_000_000 + u64::from(i))).collect(),
            ..DaemonState::new(BOOT.to_owned())
        };
        state.save(&long).unwrap();
        let inode = fs::metadata(state.path()).unwrap().ino();
        let short = DaemonState { last_seq: Some(7), ..DaemonState::new(BOOT.to_owned()) };
        state.save(&short).unwrap();
        assert_eq!(state.load().unwrap(), Some(short), "no byte of the longer position is left");
        assert_eq!(fs::metadata(state.path()).unwrap().ino(), inode, "written in place, not renamed over");
        // Removed behind its back: written whole again.
        fs::remove_file(state.path()).unwrap();
        state.save(&long).unwrap();
        assert_eq!(state.load().unwrap(), Some(long.clone()));
        // Another process' file (a restart): this one starts with a whole write of its own.
        assert_eq!(StateFile::in_dir(&dir).load_for_boot(BOOT), long);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn another_boots_position_means_this_boot_from_its_start() {
        let dir = scratch("other-boot");
        let mut state = StateFile::in_dir(&dir);
        state
            .save(&DaemonState { last_seq: Some(5), ..DaemonState::new("0123456789abcdef0123456789abcdef".to_owned()) })
            .unwrap();
        assert_eq!(state.load_for_boot(BOOT), DaemonState::new(BOOT.to_owned()));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_treated_as_missing_and_then_rewritten() {
        let dir = scratch("corrupt");
        let mut state = StateFile::in_dir(&dir);
        fs::create_dir_all(&dir).unwrap();
        for garbage in
            ["", "{\"boot_id\":\"", "{\"boot_id\":\"\",\"last_seq\":1}", "{\"boot_id\":\"x\",\"last_seq\":-1}", "\u{0}"]
        {
            fs::write(state.path(), garbage).unwrap();
            assert!(matches!(state.load(), Err(StateError::Corrupt { .. })), "{garbage:?}");
            assert_eq!(state.load_for_boot(BOOT), DaemonState::new(BOOT.to_owned()), "{garbage:?}");
        }
        fs::write(state.path(), [0xff, 0xfe, b'{']).unwrap();
        assert_eq!(state.load_for_boot(BOOT), DaemonState::new(BOOT.to_owned()), "not UTF-8");
        state.save(&DaemonState { last_seq: Some(7), ..DaemonState::new(BOOT.to_owned()) }).unwrap();
        assert_eq!(state.load_for_boot(BOOT).last_seq, Some(7));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let dir = scratch("unwritable");
        fs::write(&dir, "a file where the directory should be").unwrap();
        let error = StateFile::in_dir(&dir)
            .save(&DaemonState { last_seq: Some(1), ..DaemonState::new(BOOT.to_owned()) })
            .unwrap_err();
        assert!(matches!(error, StateError::Write { .. }));
        assert!(error.to_string().contains(&dir.display().to_string()), "{error}");
        fs::remove_file(dir).unwrap();
    }
}
