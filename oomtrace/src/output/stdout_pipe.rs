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

use std::os::fd::AsRawFd as _;

/// The size asked for: the kernel's default `fs.pipe-max-size`.
pub const STDOUT_PIPE_BYTES: libc::c_int = 1 << 20;

/// Widens stdout's pipe to [`STDOUT_PIPE_BYTES`] when stdout is a pipe and
/// is smaller; says at debug level what the kernel answered (nothing
/// depends on it but how long a burst may wait for a slow reader).
pub fn widen() {
    let fd = std::io::stdout().as_raw_fd();
    // SAFETY: F_GETPIPE_SZ takes no argument and reads nothing from memory;
    // on a descriptor that is not a pipe the kernel answers EBADF.
    let current = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    if !(0..STDOUT_PIPE_BYTES).contains(&current) {
        return;
    }
    // SAFETY: F_SETPIPE_SZ takes an int by value; no memory is passed.
    let result = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, STDOUT_PIPE_BYTES) };
    if result < 0 {
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, bytes = current, "stdout's pipe left as it is");
    } else {
        tracing::debug!(from_bytes = current, bytes = result, "stdout's pipe widened");
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    #[test]
    fn a_pipe_can_be_widened_to_the_size_asked_for() {
        let max: Option<i64> =
            std::fs::read_to_string("/proc/sys/fs/pipe-max-size").ok().and_then(|s| s.trim().parse().ok());
        if max.is_some_and(|max| max < i64::from(super::STDOUT_PIPE_BYTES)) {
            eprintln!("skipped: fs.pipe-max-size is {max:?}, below the size asked for");
            return;
        }
        let (reader, writer) = std::io::pipe().expect("a pipe");
        // SAFETY: as in `widen`: no memory passed, a descriptor we own.
        let set = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, super::STDOUT_PIPE_BYTES) };
        assert!(set >= super::STDOUT_PIPE_BYTES, "F_SETPIPE_SZ answered {set}");
        drop(reader);
    }
}
