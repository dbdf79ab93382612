//! The integration tests' harness (`harness = false`, on libtest-mimic): each
//! test names what it needs, and a test whose needs this machine does not
//! meet is reported as ignored with the reason (`test x ... ignored (needs
//! root ...)`), never as passed. Where CI has brought the components up it
//! sets `OOMTRACE_TEST_REQUIRE_CRI` / `OOMTRACE_TEST_REQUIRE_OBSERVABILITY`,
//! and a test that cannot reach them fails instead.
//!
//! ```text
//! fn main() -> std::process::ExitCode {
//!     harness::main(vec![trial!(a_kill_is_seen, Need::Root), trial!(a_pod_is_named, Need::Cri)])
//! }
//! ```

use std::{path::Path, process::ExitCode};

use anyhow::Result;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::{cgroup::Hierarchy, cri, observability, procfs};

/// Set (not empty, not 0) where containerd must be up: a CRI test fails instead of skipping.
pub const REQUIRE_CRI_ENV: &str = "OOMTRACE_TEST_REQUIRE_CRI";
/// Set where Prometheus and the OTLP receiver must be up.
pub const REQUIRE_OBSERVABILITY_ENV: &str = "OOMTRACE_TEST_REQUIRE_OBSERVABILITY";
/// Set where kubectl must be there (`scripts/test.sh`: every machine of this
/// kind has it): a test of the advice's commands fails instead of skipping.
pub const REQUIRE_KUBECTL_ENV: &str = "OOMTRACE_TEST_REQUIRE_KUBECTL";
/// Set by the VM matrix, whose throw-away guests may run out of memory.
pub const GLOBAL_OOM_ENV: &str = "OOMTRACE_TEST_GLOBAL_OOM";
/// Set in the node VM of `cargo xtask node-test`: the node scenarios run.
pub const NODE_ENV: &str = "OOMTRACE_NODE_TEST";
/// Where the kernel exposes its BTF.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Something a test needs from the machine.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// Root: loading eBPF programs, making memory cgroups.
    Root,
    /// Root and containerd answering CRI (`scripts/runtime.sh up`).
    Cri,
    /// Root, Prometheus and the OTLP receiver (`scripts/observability.sh up`).
    Observability,
    /// The memory controller on cgroup v2.
    CgroupV2,
    /// A throw-away VM whose memory may be exhausted (`OOMTRACE_TEST_GLOBAL_OOM`).
    GlobalOomVm,
    /// Kernel BTF at /sys/kernel/btf/vmlinux.
    KernelBtf,
    /// The AKS-shaped node of `cargo xtask node-test` (systemd, containerd
    /// with the systemd cgroup driver, cgroup v2, the DaemonSet's image).
    Node,
    /// The real `kubectl` (its client alone: the commands run offline).
    Kubectl,
    /// The repository's files beside the test binary (README.md, docs/,
    /// oomtrace/src): tests that read the docs or the source.
    SourceTree,
    /// A condition only the test crate can check: `Err` says why it fails.
    Probe(fn() -> Result<(), String>),
}

/// Why a need is not met.
enum Unmet {
    /// Reported as ignored.
    Skip(String),
    /// Reported as failed: the environment says the need must be met.
    Fail(String),
}

impl Need {
    fn check(self) -> Result<(), Unmet> {
        match self {
            Need::Root => root("needs root to load eBPF programs and create memory cgroups"),
            Need::Cri => required(REQUIRE_CRI_ENV, || {
                root("needs root to run containers")?;
                cri::available().map(drop).map_err(|error| Unmet::Skip(format!("{error:#}")))
            }),
            Need::Observability => required(REQUIRE_OBSERVABILITY_ENV, || {
                root("needs root to trace the kills it exports")?;
                observability::prometheus_available()
                    .and_then(|_| observability::otlp_available())
                    .map(drop)
                    .map_err(|error| Unmet::Skip(format!("{error:#}")))
            }),
            Need::CgroupV2 => match Hierarchy::detect() {
                Ok(hierarchy) if hierarchy.is_v2() => Ok(()),
                Ok(hierarchy) => Err(Unmet::Skip(format!(
                    "needs cgroup v2 (this host has v{}); it runs in the VM matrix",
                    hierarchy.version()
                ))),
                Err(error) => Err(Unmet::Skip(format!("needs a memory cgroup hierarchy: {error:#}"))),
            },
            Need::GlobalOomVm => match std::env::var_os(GLOBAL_OOM_ENV) {
                Some(_) => Ok(()),
                None => Err(Unmet::Skip(format!(
                    "exhausts the machine's memory; runs only in the VM matrix ({GLOBAL_OOM_ENV}=1)"
                ))),
            },
            Need::KernelBtf => match Path::new(VMLINUX_BTF).exists() {
                true => Ok(()),
                false => Err(Unmet::Skip(format!("this kernel has no {VMLINUX_BTF}"))),
            },
            Need::SourceTree => match Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md").exists() {
                true => Ok(()),
                false => Err(Unmet::Skip(
                    "reads the repository's files (README.md, docs/, oomtrace/src), which the VM guests do not \
                     have; it runs on the host"
                        .to_owned(),
                )),
            },
            Need::Node => match std::env::var_os(NODE_ENV) {
                Some(_) => Ok(()),
                None => Err(Unmet::Skip(format!(
                    "runs only on the AKS-shaped node VM of `cargo xtask node-test` ({NODE_ENV}=1)"
                ))),
            },
            Need::Kubectl => required(REQUIRE_KUBECTL_ENV, || {
                match std::process::Command::new("kubectl").args(["version", "--client"]).output() {
                    Ok(out) if out.status.success() => Ok(()),
                    Ok(out) => Err(Unmet::Skip(format!(
                        "kubectl version --client failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ))),
                    Err(error) => Err(Unmet::Skip(format!("needs kubectl to check the advice's commands ({error})"))),
                }
            }),
            Need::Probe(probe) => probe().map_err(Unmet::Skip),
        }
    }
}

fn root(why: &str) -> Result<(), Unmet> {
    match procfs::euid() {
        0 => Ok(()),
        euid => Err(Unmet::Skip(format!("{why} (euid {euid})"))),
    }
}

/// A skip of `check` becomes a failure when `env` is set.
fn required(env: &str, check: impl FnOnce() -> Result<(), Unmet>) -> Result<(), Unmet> {
    let is_set = std::env::var_os(env).is_some_and(|v| !v.is_empty() && v != "0");
    match check() {
        Err(Unmet::Skip(reason)) if is_set => Err(Unmet::Fail(format!("{reason} (and {env} is set)"))),
        other => other,
    }
}

/// One integration test: a function that panics or returns an error on failure.
pub struct Test {
    name: &'static str,
    run: fn() -> Result<()>,
    needs: Vec<Need>,
}

impl Test {
    pub fn new(name: &'static str, run: fn() -> Result<()>, needs: Vec<Need>) -> Test {
        Test { name, run, needs }
    }

    fn into_trial(self) -> Trial {
        let Test { name, run, needs } = self;
        Trial::ignorable_test(name, move || {
            for need in needs {
                match need.check() {
                    Ok(()) => {}
                    Err(Unmet::Skip(reason)) => return Ok(Completion::ignored_with(reason)),
                    Err(Unmet::Fail(reason)) => return Err(Failed::from(reason)),
                }
            }
            run().map(|()| Completion::Completed).map_err(|error| Failed::from(format!("{error:?}")))
        })
    }
}

/// `trial!(function, Need::Root, ...)`: a [`Test`] named after its function.
#[macro_export]
macro_rules! trial {
    ($run:ident $(, $need:expr)* $(,)?) => {
        $crate::harness::Test::new(stringify!($run), $run, vec![$($need),*])
    };
}

/// Runs `tests` as libtest does (same arguments, same output); or, when this
/// binary was re-executed as a [`crate::workload`], that workload instead.
pub fn main(tests: Vec<Test>) -> ExitCode {
    crate::workload::run_if_requested();
    let args = Arguments::from_args();
    libtest_mimic::run(&args, tests.into_iter().map(Test::into_trial).collect()).exit_code()
}
