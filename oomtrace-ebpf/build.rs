use which::which;

/// Rebuild when the bpf-linker binary changes (as in the aya template).
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => println!("cargo:warning=bpf-linker not found; run scripts/setup.sh"),
    }
}
