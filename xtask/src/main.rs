//! Developer tasks for oomtrace, never needed by users.
//!
//! `cargo xtask bench`: measure oomtrace on real OOM kills and compare it with
//! bpftrace in the same run, then the daemon's footprint and the cost of pod
//! attribution (see `bench/`).
//!
//! `cargo xtask vm-test`: the integration suite on Debian kernels under qemu;
//! `cargo xtask node-test`: an AKS-shaped node (systemd, containerd, runc,
//! cgroup v2) under qemu running the in-guest suite (see `vm/`, `node/`).
//!
//! `cargo xtask schema`: write docs/event.schema.json, the JSON Schema of an
//! event, from oomtrace-event's types.

mod bench;
mod ebpf_object;
mod marked;
mod node;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Developer tasks for oomtrace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark `oomtrace live` on real memcg OOM kills (needs root) and
    /// write the report to docs/benchmarks.md.
    Bench(bench::BenchArgs),
    /// Run the integration suite on real Debian kernels under qemu (needs root)
    /// and write docs/kernels.md.
    VmTest(vm::VmTestArgs),
    /// Boot an AKS-shaped node (systemd, containerd, runc, cgroup v2) under
    /// qemu on 6.1 and 6.12, run the in-guest suite, write docs/node.md (needs root).
    NodeTest(node::NodeTestArgs),
    /// Check (CI) or refresh the prebuilt eBPF object stable-only builds use.
    EbpfObject(ebpf_object::EbpfObjectArgs),
    /// Write docs/event.schema.json from oomtrace-event's types.
    Schema,
    /// The bench's OTLP/gRPC receiver (run by `bench`, the time to know).
    #[command(hide = true)]
    OtlpReceiver(bench::receiver::ReceiverArgs),
}

fn main() -> ExitCode {
    // The bench's workloads are this binary run again (never returns then).
    oomtrace_testkit::workload::run_if_requested();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::VmTest(args) => vm::run(&workspace_root(), &args),
        Command::NodeTest(args) => node::run(&workspace_root(), &args),
        Command::EbpfObject(args) => ebpf_object::run(&workspace_root(), &args),
        Command::Schema => write_schema(&workspace_root()),
        Command::OtlpReceiver(args) => bench::receiver::serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the event's JSON Schema where the testkit and the check in
/// oomtrace-event read it.
fn write_schema(root: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let path = root.join(oomtrace_event::SCHEMA_PATH);
    std::fs::write(&path, oomtrace_event::json_schema()).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}
