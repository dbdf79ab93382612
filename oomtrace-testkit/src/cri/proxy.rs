//! A unix-socket proxy in front of the test runtime's CRI socket that the
//! test can wedge: a runtime that stops answering at a chosen moment (a node
//! out of memory) cannot be produced for real on demand, so the proxy plays
//! that part while the real containerd answers everything before it.

use std::{
    io::{Read, Write},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};

pub struct WedgeableProxy {
    socket: PathBuf,
    wedged: Arc<AtomicBool>,
}

impl WedgeableProxy {
    /// Listens on `dir/cri.sock` and forwards every connection to `target`.
    pub fn start(target: &Path, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let socket = dir.join("cri.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).with_context(|| format!("bind {}", socket.display()))?;
        let wedged = Arc::new(AtomicBool::new(false));
        let target = target.to_path_buf();
        let flag = Arc::clone(&wedged);
        thread::spawn(move || accept(&listener, &target, &flag));
        Ok(Self { socket, wedged })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// From now on nothing is forwarded either way: calls get no answer
    /// (connections stay open, as with a runtime that hangs).
    pub fn wedge(&self) {
        self.wedged.store(true, Ordering::SeqCst);
    }
}

fn accept(listener: &UnixListener, target: &Path, wedged: &Arc<AtomicBool>) {
    let mut held = Vec::new();
    for client in listener.incoming().flatten() {
        let upstream = match UnixStream::connect(target) {
            Ok(upstream) if !wedged.load(Ordering::SeqCst) => upstream,
            // Wedged (or the runtime is gone): accepted, never answered.
            _ => {
                held.push(client);
                continue;
            }
        };
        let pairs = client.try_clone().and_then(|c| upstream.try_clone().map(|u| (c, u)));
        let Ok((client_out, upstream_in)) = pairs else { continue };
        let (up, down) = (Arc::clone(wedged), Arc::clone(wedged));
        thread::spawn(move || pump(client, upstream, &up));
        thread::spawn(move || pump(upstream_in, client_out, &down));
    }
}

/// Copies `from` to `to` until either closes; once wedged, holds what it read.
fn pump(mut from: UnixStream, mut to: UnixStream, wedged: &AtomicBool) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while wedged.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50));
        }
        if to.write_all(&buffer[..n]).is_err() {
            return;
        }
    }
}
