//! Whether this kernel accepts an fentry program, asked of the kernel itself
//! (not of oomtrace): a two-instruction program (`r0 = 0; exit`) is loaded as
//! `BPF_PROG_TYPE_TRACING`/`BPF_TRACE_FENTRY` on a function named by its BTF
//! id and attached with `BPF_RAW_TRACEPOINT_OPEN`, then closed at once. A
//! test of oomtrace's fentry path may skip only when this is refused.

use std::os::fd::{FromRawFd as _, OwnedFd};

use aya_obj::btf::{Btf, BtfKind};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_FENTRY: u32 = 24;
/// `r0 = 0` (BPF_ALU64 | BPF_MOV | BPF_K), then `exit` (BPF_JMP | BPF_EXIT).
const PROGRAM: [u64; 2] =
    [u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]), u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0])];
const LICENSE: &[u8] = b"GPL\0";

/// `Ok` when the kernel loads and attaches an fentry program on `function`;
/// else what it answered, for the skip's reason.
pub fn kernel_accepts_fentry(function: &str) -> Result<(), String> {
    let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF (/sys/kernel/btf/vmlinux): {e}"))?;
    let id = btf
        .id_by_type_name_kind(function, BtfKind::Func)
        .map_err(|e| format!("the kernel's BTF has no function {function}: {e}"))?;
    drop(btf);
    let program = load(id).map_err(|e| {
        format!("the kernel refuses to load even a 2-instruction fentry program on {function} to this process: {e}")
    })?;
    attach(&program).map_err(|e| format!("the kernel refuses to attach an fentry program to {function}: {e}"))?;
    Ok(())
}

fn load(attach_btf_id: u32) -> std::io::Result<OwnedFd> {
    // union bpf_attr, BPF_PROG_LOAD members at their offsets (uapi/linux/bpf.h).
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_TRACING.to_ne_bytes());
    attr[4..8].copy_from_slice(&(PROGRAM.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(PROGRAM.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(LICENSE.as_ptr() as u64).to_ne_bytes());
    attr[48..55].copy_from_slice(b"oomtest");
    attr[68..72].copy_from_slice(&BPF_TRACE_FENTRY.to_ne_bytes());
    attr[108..112].copy_from_slice(&attach_btf_id.to_ne_bytes());
    bpf(BPF_PROG_LOAD, &attr)
}

fn attach(program: &OwnedFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd as _;
    // BPF_RAW_TRACEPOINT_OPEN: no name (NULL) for a tracing program, its fd.
    let mut attr = [0u8; 128];
    attr[8..12].copy_from_slice(&(program.as_raw_fd() as u32).to_ne_bytes());
    bpf(BPF_RAW_TRACEPOINT_OPEN, &attr)
}

fn bpf(command: libc::c_long, attr: &[u8; 128]) -> std::io::Result<OwnedFd> {
    // SAFETY: bpf(2) reads `attr.len()` bytes of a zero-filled bpf_attr whose
    // pointers (the program and the license) outlive the call; it returns a
    // new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, command, attr.as_ptr(), attr.len() as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor bpf(2) just returned, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
