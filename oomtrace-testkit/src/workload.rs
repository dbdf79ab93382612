//! Memory workloads for the tests: a process whose memory grows, holds, bursts
//! or saws in a known way inside a limited [`MemCgroup`], so a test can say
//! what oomtrace should have seen (a warning before the kill, none for a
//! steady process, ...).
//!
//! The tests run on hosts (cgroup v1) and as static binaries in busybox VMs
//! (cgroup v2), where no `stress-ng` or `dd` can be counted on: the workload is
//! the test binary itself, re-executed. [`MemCgroup::spawn_workload`] starts
//! `current_exe()` with the workload's arguments ([`Workload::to_args`]) and
//! [`WORKLOAD_ENV`] set; [`run_if_requested`], called first thing in
//! [`crate::harness::main`], sees the variable, moves the process into the
//! cgroup named by [`CGROUP_PROCS_ENV`] before it allocates anything, and runs
//! the workload instead of the tests.
//!
//! Memory is what the kernel charges, not what an allocator reserves:
//! anonymous memory comes from its own `mmap(MAP_PRIVATE | MAP_ANONYMOUS)` and
//! every page of it is written, so it is resident; it is returned with
//! `munmap`, so freeing uncharges the cgroup at once.

use std::{
    ffi::OsString,
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Seek as _, SeekFrom, Write as _},
    ops::Range,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{self, Child, Command, Stdio},
    ptr::NonNull,
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::cgroup::MemCgroup;

/// A running workload, killed (SIGKILL) and reaped when dropped: no workload
/// outlives its test or benchmark step.
pub struct Running(pub Child);

impl Running {
    /// Starts `workload` in `cgroup` ([`MemCgroup::spawn_workload`]).
    pub fn start(cgroup: &MemCgroup, workload: &Workload) -> Result<Running> {
        Ok(Running(cgroup.spawn_workload(workload)?))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory on a block-device-backed file system, where a file's pages
/// are page cache that reclaim can free and writeback can clean: the one
/// [`DISK_DIR_ENV`] names (the VM guests' scratch disk), else the temporary
/// directory (a disk on the host). Whether it really is on a disk is for the
/// caller to ask the kernel (statfs): the guests' temporary directory is in
/// RAM.
pub fn disk_dir() -> PathBuf {
    std::env::var_os(DISK_DIR_ENV).map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// A directory on a disk for the tests' page-cache files, set by the VM
/// guests (`xtask/src/vm/guest-suite.sh`, which mounts their scratch disk).
pub const DISK_DIR_ENV: &str = "OOMTRACE_TEST_DISK_DIR";
/// Set instead of [`DISK_DIR_ENV`] by a VM guest whose scratch disk could not
/// be mounted: what failed, for the skip reason of the tests that need a disk.
pub const DISK_ERROR_ENV: &str = "OOMTRACE_TEST_DISK_ERROR";

/// A file of `bytes` in [`disk_dir`], out of the page cache, so that a
/// [`Workload::Stream`] reading it charges its own cgroup (written here, its
/// pages would be cached and charged to the writer's).
pub fn uncached_file(name: &str, bytes: u64) -> Result<PathBuf> {
    use std::os::unix::{fs::OpenOptionsExt as _, io::AsRawFd as _};
    let path = disk_dir().join(name);
    let mut file = OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&path)?;
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..bytes.div_ceil(1 << 20) {
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    // SAFETY: the descriptor is open; fadvise only drops clean cached pages.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise(DONTNEED) on {}: {rc}", path.display());
    Ok(path)
}

/// Set (to anything) in the environment of a test binary that is to run a
/// workload instead of its tests.
pub const WORKLOAD_ENV: &str = "OOMTRACE_TEST_WORKLOAD";
/// The `cgroup.procs` (v2) or `tasks` (v1) file the workload writes its pid
/// into before it does anything else. Unset: it stays where it was started.
pub const CGROUP_PROCS_ENV: &str = "OOMTRACE_TEST_WORKLOAD_CGROUP_PROCS";
/// Exit code of a workload whose arguments do not parse.
pub const EXIT_BAD_ARGS: i32 = 2;
/// Exit code of a workload that could not start or keep going: the cgroup
/// could not be joined, a file could not be opened or written, mmap failed.
pub const EXIT_FAILED: i32 = 3;

/// How often the paced workloads take a step.
const TICK: Duration = Duration::from_millis(20);
/// How long [`Workload::Burst`] stays idle before its burst.
const BURST_IDLE: Duration = Duration::from_secs(2);
/// How often [`Workload::Steady`] writes its pages again.
const RETOUCH_EVERY: Duration = Duration::from_secs(1);
/// The chunk files are written and read in.
const IO_CHUNK: usize = 1 << 20;

/// A memory behaviour, run by a re-executed test binary until it is killed
/// (none of them ends on its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Anonymous memory allocated at a steady rate, a step every 20 ms, every
    /// page written, never freed: the cgroup's usage rises in a straight line
    /// to its limit.
    Leak { bytes_per_second: u64 },
    /// A file in `dir` (a tmpfs the test mounted) appended to at a steady
    /// rate, a chunk every 20 ms: shmem, charged to the cgroup and not
    /// reclaimable without swap. The file is `dir/oomtrace-workload-<pid>`.
    TmpfsGrow { dir: PathBuf, bytes_per_second: u64 },
    /// Idle for 2 s (a watcher sees it steady), then `bytes` in one mapping,
    /// every page written as fast as it can be, then held.
    Burst { bytes: u64 },
    /// `file` read from start to end over and over: page cache, reclaimable.
    /// Only pages not cached yet are charged to the cgroup: a file the test
    /// has just written is cached (and charged) where the test runs, until
    /// `sync` and `echo 1 > /proc/sys/vm/drop_caches` drop it.
    Stream { file: PathBuf },
    /// `bytes` of anonymous memory written once and held, a byte of each page
    /// written again every second (the pages stay active).
    Steady { bytes: u64 },
    /// `low` bytes held; in each period, more memory written in 20 ms steps
    /// over its first half up to `high` in all, then unmapped back down to
    /// `low` for the second half.
    Sawtooth { low: u64, high: u64, period_ms: u64 },
    /// `file` written at a steady rate without fsync, so dirty page cache
    /// builds up for the kernel to write back; truncated and written again
    /// from the start whenever it reaches `max_file_bytes`.
    DirtyWriter { file: PathBuf, bytes_per_second: u64, max_file_bytes: u64 },
}

impl Workload {
    /// The command-line form [`Workload::from_args`] reads back: the kind,
    /// then `key=value` per field (`leak bytes_per_second=16777216`). Sizes
    /// are in bytes. A path that is not UTF-8 does not survive the trip.
    pub fn to_args(&self) -> Vec<String> {
        let (kind, fields) = self.fields();
        std::iter::once(kind.to_owned())
            .chain(fields.into_iter().map(|(key, value)| format!("{key}={value}")))
            .collect()
    }

    /// The workload of [`Workload::to_args`]; None if `args` are not one
    /// (see [`Workload::parse`] for why).
    pub fn from_args(args: &[String]) -> Option<Workload> {
        Self::parse(args).ok()
    }

    /// [`Workload::from_args`], saying what is wrong: an unknown kind, a
    /// missing, repeated, unknown or malformed field, a sawtooth whose `low`
    /// is above its `high` or whose period is 0, a writer whose file may not
    /// grow at all.
    pub fn parse(args: &[String]) -> Result<Workload, String> {
        let (kind, rest) = args.split_first().ok_or("no workload kind given")?;
        let mut fields = Fields::new(rest)?;
        let workload = match kind.as_str() {
            "leak" => Workload::Leak { bytes_per_second: fields.u64("bytes_per_second")? },
            "tmpfs-grow" => {
                Workload::TmpfsGrow { dir: fields.path("dir")?, bytes_per_second: fields.u64("bytes_per_second")? }
            }
            "burst" => Workload::Burst { bytes: fields.u64("bytes")? },
            "stream" => Workload::Stream { file: fields.path("file")? },
            "steady" => Workload::Steady { bytes: fields.u64("bytes")? },
            "sawtooth" => Workload::Sawtooth {
                low: fields.u64("low")?,
                high: fields.u64("high")?,
                period_ms: fields.u64("period_ms")?,
            },
            "dirty-writer" => Workload::DirtyWriter {
                file: fields.path("file")?,
                bytes_per_second: fields.u64("bytes_per_second")?,
                max_file_bytes: fields.u64("max_file_bytes")?,
            },
            other => return Err(format!("unknown workload kind {other:?}")),
        };
        fields.finish()?;
        workload.validate()?;
        Ok(workload)
    }

    /// The kind's name and the fields, in the order [`Workload::parse`] reads them.
    fn fields(&self) -> (&'static str, Vec<(&'static str, String)>) {
        let path = |p: &Path| p.display().to_string();
        match self {
            Workload::Leak { bytes_per_second } => ("leak", vec![("bytes_per_second", bytes_per_second.to_string())]),
            Workload::TmpfsGrow { dir, bytes_per_second } => {
                ("tmpfs-grow", vec![("dir", path(dir)), ("bytes_per_second", bytes_per_second.to_string())])
            }
            Workload::Burst { bytes } => ("burst", vec![("bytes", bytes.to_string())]),
            Workload::Stream { file } => ("stream", vec![("file", path(file))]),
            Workload::Steady { bytes } => ("steady", vec![("bytes", bytes.to_string())]),
            Workload::Sawtooth { low, high, period_ms } => (
                "sawtooth",
                vec![("low", low.to_string()), ("high", high.to_string()), ("period_ms", period_ms.to_string())],
            ),
            Workload::DirtyWriter { file, bytes_per_second, max_file_bytes } => (
                "dirty-writer",
                vec![
                    ("file", path(file)),
                    ("bytes_per_second", bytes_per_second.to_string()),
                    ("max_file_bytes", max_file_bytes.to_string()),
                ],
            ),
        }
    }

    /// Field values no run could honour.
    fn validate(&self) -> Result<(), String> {
        match self {
            Workload::Sawtooth { low, high, .. } if low > high => {
                Err(format!("a sawtooth's low ({low}) is above its high ({high})"))
            }
            Workload::Sawtooth { period_ms: 0, .. } => Err("a sawtooth's period_ms is 0".to_owned()),
            Workload::DirtyWriter { max_file_bytes: 0, .. } => Err("a dirty writer's max_file_bytes is 0".to_owned()),
            _ => Ok(()),
        }
    }

    /// Runs the workload in this process; it returns only on an error.
    fn run(&self) -> Result<()> {
        match self {
            Workload::Leak { bytes_per_second } => leak(*bytes_per_second),
            Workload::TmpfsGrow { dir, bytes_per_second } => tmpfs_grow(dir, *bytes_per_second),
            Workload::Burst { bytes } => burst(*bytes),
            Workload::Stream { file } => stream(file),
            Workload::Steady { bytes } => steady(*bytes),
            Workload::Sawtooth { low, high, period_ms } => sawtooth(*low, *high, Duration::from_millis(*period_ms)),
            Workload::DirtyWriter { file, bytes_per_second, max_file_bytes } => {
                dirty_writer(file, *bytes_per_second, *max_file_bytes)
            }
        }
    }
}

/// The `key=value` arguments of a workload, taken one by one.
struct Fields<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    fn new(args: &'a [String]) -> Result<Fields<'a>, String> {
        let pairs = args
            .iter()
            .map(|arg| arg.split_once('=').ok_or_else(|| format!("{arg:?} is not key=value")))
            .collect::<Result<_, _>>()?;
        Ok(Fields { pairs })
    }

    /// The value of `key`, removed (a repeated key is left for [`Fields::finish`]).
    fn take(&mut self, key: &str) -> Result<&'a str, String> {
        let index = self.pairs.iter().position(|(k, _)| *k == key).ok_or_else(|| format!("{key}= is missing"))?;
        Ok(self.pairs.remove(index).1)
    }

    fn u64(&mut self, key: &str) -> Result<u64, String> {
        let value = self.take(key)?;
        value.parse().map_err(|error| format!("{key}={value}: not a number of bytes or ms ({error})"))
    }

    fn path(&mut self, key: &str) -> Result<PathBuf, String> {
        match self.take(key)? {
            "" => Err(format!("{key}= is empty")),
            value => Ok(PathBuf::from(value)),
        }
    }

    /// Fails on what no field took.
    fn finish(self) -> Result<(), String> {
        match self.pairs.first() {
            None => Ok(()),
            Some((key, _)) => Err(format!("{key}= is unknown or repeated")),
        }
    }
}

/// Runs the workload this process was started for, if it was (see the module
/// documentation), and exits: 0 if it ended, [`EXIT_BAD_ARGS`] if its
/// arguments do not parse, [`EXIT_FAILED`] on an error, each error said on
/// stderr. Returns, doing nothing, when [`WORKLOAD_ENV`] is not set.
pub fn run_if_requested() {
    if std::env::var_os(WORKLOAD_ENV).is_none() {
        return;
    }
    // First: nothing may be allocated outside the cgroup's limit.
    if let Err(error) = join_cgroup() {
        fail(EXIT_FAILED, &format!("{error:#}"));
    }
    let args = match std::env::args_os().skip(1).map(OsString::into_string).collect::<Result<Vec<_>, _>>() {
        Ok(args) => args,
        Err(arg) => fail(EXIT_BAD_ARGS, &format!("the argument {arg:?} is not UTF-8")),
    };
    let workload = match Workload::parse(&args) {
        Ok(workload) => workload,
        Err(error) => fail(EXIT_BAD_ARGS, &format!("{error} (arguments: {args:?})")),
    };
    match workload.run() {
        Ok(()) => process::exit(0),
        Err(error) => fail(EXIT_FAILED, &format!("{workload:?}: {error:#}")),
    }
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("oomtrace-testkit workload (pid {}): {message}", process::id());
    process::exit(code)
}

/// Writes this process's pid into the file [`CGROUP_PROCS_ENV`] names. On
/// cgroup v1 that is `tasks`, which moves one thread: this one, the only
/// thread the process has so far.
fn join_cgroup() -> Result<()> {
    let Some(procs) = std::env::var_os(CGROUP_PROCS_ENV) else { return Ok(()) };
    fs::write(&procs, process::id().to_string())
        .with_context(|| format!("joining the cgroup: writing the pid to {}", Path::new(&procs).display()))
}

impl MemCgroup {
    /// Starts `workload` inside this cgroup: this test binary again, with
    /// [`WORKLOAD_ENV`] set, which joins the cgroup before it allocates (the
    /// binary's `main` must be [`crate::harness::main`], or call
    /// [`run_if_requested`] first). stdin and stdout are null; stderr is
    /// inherited, for the workload's errors.
    ///
    /// The workload runs until killed: the caller kills and waits for it.
    /// Should the test binary die first, the kernel kills it (parent-death
    /// signal), so no workload outlives its test and keeps the cgroup busy.
    /// That signal comes when the *thread* that spawned it ends: spawn it
    /// from the test's own thread, not from a short-lived helper thread.
    pub fn spawn_workload(&self, workload: &Workload) -> Result<Child> {
        let exe = std::env::current_exe().context("finding this test binary to run a workload")?;
        self.spawn_workload_as(workload, &exe)
    }

    /// [`Self::spawn_workload`] through `exe`, a link to this test binary
    /// whose file name the kernel then takes for the process's comm.
    pub fn spawn_workload_as(&self, workload: &Workload, exe: &std::path::Path) -> Result<Child> {
        let this = libc::pid_t::try_from(process::id()).context("this pid is not a pid_t")?;
        let mut command = Command::new(exe);
        command
            .args(workload.to_args())
            .env(WORKLOAD_ENV, "1")
            .env(CGROUP_PROCS_ENV, self.procs_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: the hook runs in the forked child before exec, where only
        // async-signal-safe calls are allowed: it makes only prctl and getppid
        // calls and builds an io::Error from a raw errno (no allocation).
        unsafe { command.pre_exec(move || die_with_parent(this)) };
        command.spawn().with_context(|| format!("starting the workload {workload:?} in {}", self.dir.display()))
    }
}

/// In the forked child: SIGKILL when the spawning thread ends, and an error
/// if the parent `parent` is already gone (its death came before the prctl).
fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getppid is async-signal-safe and cannot fail.
    match unsafe { libc::getppid() } == parent {
        true => Ok(()),
        false => Err(io::Error::from_raw_os_error(libc::ESRCH)),
    }
}

/// The size of a page, which one written byte makes resident.
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096)
    })
}

/// `bytes` as a length in this address space.
fn length(bytes: u64) -> Result<usize> {
    usize::try_from(bytes).with_context(|| format!("{bytes} bytes do not fit this address space"))
}

/// Anonymous private memory in a mapping of its own: resident once written,
/// returned to the kernel (and uncharged from the cgroup) when dropped.
struct Anon {
    ptr: NonNull<u8>,
    len: usize,
}

impl Anon {
    /// Maps `len` bytes (nothing resident yet); `len` 0 maps nothing.
    fn map(len: usize) -> Result<Anon> {
        if len == 0 {
            return Ok(Anon { ptr: NonNull::dangling(), len });
        }
        // SAFETY: a new private anonymous mapping at an address the kernel
        // picks: no existing memory is affected; the result is checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).with_context(|| format!("mmap of {len} anonymous bytes"));
        }
        let ptr = NonNull::new(addr.cast::<u8>()).context("mmap returned a null mapping")?;
        Ok(Anon { ptr, len })
    }

    /// Maps `len` bytes and writes every page.
    fn resident(len: usize) -> Result<Anon> {
        let mut anon = Self::map(len)?;
        anon.touch(0..len, 1);
        Ok(anon)
    }

    /// Writes `value` to the first byte of every page `range` overlaps, so
    /// each is resident (a write, not a read: a read maps the shared zero page).
    fn touch(&mut self, range: Range<usize>, value: u8) {
        let page = page_size();
        let end = range.end.min(self.len);
        let mut offset = range.start - range.start % page;
        while offset < end {
            // SAFETY: offset < self.len, inside the writable mapping this
            // Anon owns; volatile so the write is not optimised away.
            unsafe { self.ptr.as_ptr().add(offset).write_volatile(value) };
            offset += page;
        }
    }

    #[cfg(test)]
    fn byte(&self, offset: usize) -> u8 {
        assert!(offset < self.len);
        // SAFETY: offset < self.len, inside the readable mapping this Anon owns.
        unsafe { self.ptr.as_ptr().add(offset).read_volatile() }
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: ptr and len are the mapping mmap made for this Anon,
            // unmapped once, here; nothing borrows it any more.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// A steady rate, kept over time rather than per step: a late step makes up
/// for the time lost, so sleeping longer than asked does not slow it down.
struct Pace {
    start: Instant,
    next_tick: Instant,
    bytes_per_second: u64,
    /// Steps are whole multiples of this (a page, for anonymous memory).
    granule: u64,
    done: u64,
}

impl Pace {
    fn new(bytes_per_second: u64, granule: u64) -> Pace {
        let start = Instant::now();
        Pace { start, next_tick: start, bytes_per_second, granule, done: 0 }
    }

    /// The bytes due since the last call.
    fn due(&mut self) -> u64 {
        let target = bytes_due(self.bytes_per_second, self.start.elapsed(), self.granule);
        let due = target.saturating_sub(self.done);
        self.done = self.done.max(target);
        due
    }

    /// Sleeps to the next 20 ms tick.
    fn wait(&mut self) {
        self.next_tick += TICK;
        sleep_until(self.next_tick);
    }
}

/// What `bytes_per_second` comes to after `elapsed`, rounded down to a
/// multiple of `granule`.
fn bytes_due(bytes_per_second: u64, elapsed: Duration, granule: u64) -> u64 {
    let bytes = u128::from(bytes_per_second) * elapsed.as_micros() / 1_000_000;
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    let granule = granule.max(1);
    bytes - bytes % granule
}

fn sleep_until(deadline: Instant) {
    thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// Sleeps for ever: what a workload does once it holds its memory.
fn hold() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

fn leak(bytes_per_second: u64) -> Result<()> {
    let mut held = Vec::new();
    let mut pace = Pace::new(bytes_per_second, page_size() as u64);
    loop {
        let due = pace.due();
        if due > 0 {
            held.push(Anon::resident(length(due)?)?);
        }
        pace.wait();
    }
}

fn tmpfs_grow(dir: &Path, bytes_per_second: u64) -> Result<()> {
    let path = dir.join(format!("oomtrace-workload-{}", process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let chunk = filler();
    let mut pace = Pace::new(bytes_per_second, 1);
    loop {
        write_filled(&mut file, pace.due(), &chunk).with_context(|| format!("appending to {}", path.display()))?;
        pace.wait();
    }
}

fn burst(bytes: u64) -> Result<()> {
    thread::sleep(BURST_IDLE);
    let _held = Anon::resident(length(bytes)?)?;
    hold()
}

fn stream(file: &Path) -> Result<()> {
    let mut reader = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut buffer = vec![0; IO_CHUNK];
    loop {
        let read = read_through(&mut reader, &mut buffer).with_context(|| format!("reading {}", file.display()))?;
        if read == 0 {
            // An empty file: nothing to cache, no reason to spin.
            thread::sleep(TICK);
        }
    }
}

/// Reads `reader` from its start to its end; the bytes read.
fn read_through(reader: &mut File, buffer: &mut [u8]) -> io::Result<u64> {
    reader.seek(SeekFrom::Start(0))?;
    let mut total = 0;
    loop {
        match reader.read(buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

fn steady(bytes: u64) -> Result<()> {
    let len = length(bytes)?;
    let mut held = Anon::resident(len)?;
    let mut value: u8 = 1;
    loop {
        thread::sleep(RETOUCH_EVERY);
        value = value.wrapping_add(1);
        held.touch(0..len, value);
    }
}

fn sawtooth(low: u64, high: u64, period: Duration) -> Result<()> {
    let _low = Anon::resident(length(low)?)?;
    let extra = length(high - low)?;
    let half = period / 2;
    let steps = u32::try_from((half.as_micros() / TICK.as_micros()).max(1)).unwrap_or(u32::MAX);
    loop {
        let start = Instant::now();
        let mut peak = Anon::map(extra)?;
        let mut written = 0;
        for step in 1..=steps {
            let bound = step_bound(extra, step, steps, page_size());
            peak.touch(written..bound, 1);
            written = bound;
            sleep_until(start + half * step / steps);
        }
        drop(peak);
        sleep_until(start + period);
    }
}

/// Where step `step` of `steps` ends in `len` bytes: a page boundary, `len` at the last.
fn step_bound(len: usize, step: u32, steps: u32, page: usize) -> usize {
    if step >= steps {
        return len;
    }
    let bound = (len as u128 * u128::from(step) / u128::from(steps.max(1))) as usize;
    bound - bound % page
}

fn dirty_writer(path: &Path, bytes_per_second: u64, max_file_bytes: u64) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let chunk = filler();
    let mut pace = Pace::new(bytes_per_second, 1);
    let mut size = 0;
    loop {
        let mut due = pace.due();
        while due > 0 {
            if size >= max_file_bytes {
                restart(&mut file).with_context(|| format!("truncating {}", path.display()))?;
                size = 0;
            }
            let n = due.min(max_file_bytes - size);
            write_filled(&mut file, n, &chunk).with_context(|| format!("writing {}", path.display()))?;
            due -= n;
            size += n;
        }
        pace.wait();
    }
}

/// Empties `file` (its page cache, dirty or not, goes with it) and writes again from its start.
fn restart(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0)).map(drop)
}

/// What the writers write: not zeros, which a file system might not store.
fn filler() -> Vec<u8> {
    vec![0xa5; IO_CHUNK]
}

/// Writes `bytes` of `chunk`'s content, a chunk at a time.
fn write_filled(file: &mut File, mut bytes: u64, chunk: &[u8]) -> io::Result<()> {
    while bytes > 0 {
        let n = chunk.len().min(usize::try_from(bytes).unwrap_or(usize::MAX));
        file.write_all(&chunk[..n])?;
        bytes -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Workload> {
        vec![
            Workload::Leak { bytes_per_second: 16 << 20 },
            Workload::TmpfsGrow { dir: PathBuf::from("/tmp/oomtrace tmpfs"), bytes_per_second: 8 << 20 },
            Workload::Burst { bytes: 96 << 20 },
            Workload::Stream { file: PathBuf::from("/var/tmp/big=file") },
            Workload::Steady { bytes: 0 },
            Workload::Sawtooth { low: 8 << 20, high: 40 << 20, period_ms: 2000 },
            Workload::DirtyWriter {
                file: PathBuf::from("/tmp/dirty"),
                bytes_per_second: u64::MAX,
                max_file_bytes: 256 << 20,
            },
        ]
    }

    fn args(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn every_kind_survives_the_command_line() {
        for workload in every_kind() {
            let args = workload.to_args();
            assert_eq!(Workload::from_args(&args), Some(workload.clone()), "{args:?}");
        }
    }

    #[test]
    fn the_command_line_names_the_kind_and_its_fields() {
        let leak = Workload::Leak { bytes_per_second: 1024 };
        assert_eq!(leak.to_args(), args(&["leak", "bytes_per_second=1024"]));
        let sawtooth = Workload::Sawtooth { low: 1, high: 2, period_ms: 3 };
        assert_eq!(sawtooth.to_args(), args(&["sawtooth", "low=1", "high=2", "period_ms=3"]));
    }

    #[test]
    fn fields_may_come_in_any_order() {
        let parsed = Workload::from_args(&args(&["sawtooth", "period_ms=3", "high=2", "low=1"]));
        assert_eq!(parsed, Some(Workload::Sawtooth { low: 1, high: 2, period_ms: 3 }));
    }

    #[test]
    fn what_is_not_a_workload_says_why() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "no workload kind"),
            (&["hog", "bytes=1"], "unknown workload kind"),
            (&["leak"], "bytes_per_second= is missing"),
            (&["leak", "bytes_per_second=16M"], "not a number"),
            (&["leak", "bytes_per_second=1", "bytes_per_second=2"], "unknown or repeated"),
            (&["burst", "bytes=1", "rate=2"], "rate= is unknown"),
            (&["steady", "1024"], "not key=value"),
            (&["stream", "file="], "file= is empty"),
            (&["sawtooth", "low=2", "high=1", "period_ms=10"], "above its high"),
            (&["sawtooth", "low=1", "high=2", "period_ms=0"], "period_ms is 0"),
            (&["dirty-writer", "file=/f", "bytes_per_second=1", "max_file_bytes=0"], "max_file_bytes is 0"),
        ];
        for (given, expected) in cases {
            let error = Workload::parse(&args(given)).expect_err("not a workload");
            assert!(error.contains(expected), "{given:?}: {error:?} does not say {expected:?}");
            assert_eq!(Workload::from_args(&args(given)), None);
        }
    }

    #[test]
    fn the_pace_is_kept_in_whole_granules() {
        assert_eq!(bytes_due(16 << 20, Duration::from_secs(1), 4096), 16 << 20);
        assert_eq!(bytes_due(16 << 20, Duration::from_millis(20), 4096), 335_544 - 335_544 % 4096);
        assert_eq!(bytes_due(1000, Duration::from_millis(1500), 1), 1500);
        assert_eq!(bytes_due(u64::MAX, Duration::from_secs(10), 1), u64::MAX);
        assert_eq!(bytes_due(1000, Duration::from_secs(1), 0), 1000);
    }

    #[test]
    fn sawtooth_steps_end_on_pages_and_reach_the_top() {
        let page = 4096;
        let len = 10 * page + 100;
        let bounds: Vec<usize> = (1..=4).map(|step| step_bound(len, step, 4, page)).collect();
        assert_eq!(bounds, vec![2 * page, 5 * page, 7 * page, len]);
        assert_eq!(step_bound(len, 1, 1, page), len);
    }

    #[test]
    fn touch_writes_one_byte_in_every_page() {
        let page = page_size();
        let mut anon = Anon::map(4 * page).expect("a small mapping");
        anon.touch(page + 1..3 * page, 7);
        let firsts: Vec<u8> = (0..4).map(|i| anon.byte(i * page)).collect();
        assert_eq!(firsts, vec![0, 7, 7, 0]);
        assert_eq!(anon.byte(page + 1), 0, "only the first byte of a page is written");
        assert!(Anon::map(0).is_ok());
    }
}
