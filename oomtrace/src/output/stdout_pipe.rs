//! Room in stdout's pipe for a burst of records.
//!
//! A pipe holds 64 KiB by default: about 20 NDJSON kills (2-4 KiB each).
//! When whoever reads stdout (containerd's shim writing the container log,
//! `| jq`, a collector) waits for a CPU during an OOM wave, a full pipe
//! blocks the event thread in write(2); it then waits for the reader, and
//! for a CPU again, before it reads the next kill. A 1 MiB pipe (the kernel's
//! default `fs.pipe-max-size`, no privilege needed up to it) holds a wave of
//! ~300 kills. Its pages are taken only as records wait in it, and are
//! charged to oomtrace's memory cgroup like its own memory.

use std::os::fd::{AsRawFd as _, RawFd};

/// The size asked for: the kernel's default `fs.pipe-max-size`.
pub const STDOUT_PIPE_BYTES: libc::c_int = 1 << 20;

/// Widens stdout's pipe to [`STDOUT_PIPE_BYTES`] when stdout is a pipe and
/// is smaller; says at debug level what the kernel answered (nothing
/// depends on it but how long a burst may wait for a slow reader).
pub fn widen() {
    match widen_pipe(std::io::stdout().as_raw_fd()) {
        Ok(Some((from_bytes, bytes))) => tracing::debug!(from_bytes, bytes, "stdout's pipe widened"),
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, "stdout's pipe left as it is"),
    }
}

/// Widens the pipe `fd` to [`STDOUT_PIPE_BYTES`]: its size before and
/// after, or `None` when `fd` is no pipe or already that wide.
fn widen_pipe(fd: RawFd) -> std::io::Result<Option<(libc::c_int, libc::c_int)>> {
    // SAFETY: F_GETPIPE_SZ takes no argument and reads nothing from memory;
    // on a descriptor that is not a pipe the kernel answers EBADF.
    let current = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    if !(0..STDOUT_PIPE_BYTES).contains(&current) {
        return Ok(None);
    }
    // SAFETY: F_SETPIPE_SZ takes an int by value; no memory is passed.
    let widened = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, STDOUT_PIPE_BYTES) };
    if widened < 0 { Err(std::io::Error::last_os_error()) } else { Ok(Some((current, widened))) }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    use super::{STDOUT_PIPE_BYTES, widen_pipe};

    #[test]
    fn a_pipe_is_widened_once_and_anything_else_is_left_alone() {
        let max: Option<i64> =
            std::fs::read_to_string("/proc/sys/fs/pipe-max-size").ok().and_then(|s| s.trim().parse().ok());
        if max.is_some_and(|max| max < i64::from(STDOUT_PIPE_BYTES)) {
            eprintln!("skipped: fs.pipe-max-size is {max:?}, below the size asked for");
            return;
        }
        let (_reader, writer) = std::io::pipe().expect("a pipe");
        let (from, to) = widen_pipe(writer.as_raw_fd()).expect("F_SETPIPE_SZ").expect("a pipe to widen");
        assert!(from < STDOUT_PIPE_BYTES, "a new pipe held {from} bytes");
        assert!(to >= STDOUT_PIPE_BYTES, "widened to {to} bytes");
        assert_eq!(widen_pipe(writer.as_raw_fd()).expect("F_GETPIPE_SZ"), None, "already wide");
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        assert_eq!(widen_pipe(file.as_raw_fd()).expect("not a pipe"), None);
    }
}
