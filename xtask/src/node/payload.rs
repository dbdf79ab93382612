//! What the node gets under /node-test: the suite, the static oomtrace, the
//! image archives its containerd imports, and the DaemonSet's manifests.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::vm::{build, run};

/// Where the guest finds everything; the suite's environment names these.
pub const GUEST_DIR: &str = "/node-test";
/// containerd's socket in the guest (Debian's containerd.service default).
pub const GUEST_CRI_SOCKET: &str = "/run/containerd/containerd.sock";

/// An OCI image archive and the reference it provides once imported.
#[derive(Debug)]
pub struct ImageArchive {
    pub reference: String,
    pub archive: PathBuf,
    /// The image's size, uncompressed and as the archive (the DaemonSet's image only).
    pub size_bytes: Option<u64>,
    pub archive_bytes: Option<u64>,
}

#[derive(Debug)]
pub struct Payload {
    /// The in-guest test executable (`oomtrace/tests/node.rs`, or `--suite`).
    pub suite: PathBuf,
    pub oomtrace: PathBuf,
    /// The test kit's images: the pause (sandbox) image first.
    pub test_images: Vec<ImageArchive>,
    /// The DaemonSet's image (scripts/image.sh), absent only with `--suite`.
    pub daemonset_image: Option<ImageArchive>,
    pub manifests: Vec<PathBuf>,
}

impl Payload {
    /// Every archive the guest imports, the pause image first.
    pub fn images(&self) -> impl Iterator<Item = &ImageArchive> {
        self.test_images.iter().chain(&self.daemonset_image)
    }

    /// The suite's environment (written to /node-test/suite.env).
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("OOMTRACE_NODE_TEST", "1".to_owned()),
            ("OOMTRACE_NODE_DEPLOY", format!("{GUEST_DIR}/deploy")),
            ("OOMTRACE_BIN", format!("{GUEST_DIR}/oomtrace")),
            ("OOMTRACE_CRI_SOCKET", GUEST_CRI_SOCKET.to_owned()),
            // The test kit's CRI client reads this one.
            ("OOMTRACE_TEST_CRI_SOCKET", GUEST_CRI_SOCKET.to_owned()),
        ];
        if let Some(image) = &self.daemonset_image {
            env.push(("OOMTRACE_NODE_IMAGE", image.reference.clone()));
        }
        env
    }
}

const IMAGE_SCRIPT: &str = "scripts/image.sh";

/// Fails before anything is fetched or built when a piece of the run is
/// missing: the in-guest suite, or the script that builds the DaemonSet's
/// image (both optional with `--suite`).
pub fn preflight(workspace: &Path, suite: Option<&Path>) -> Result<()> {
    if let Some(suite) = suite {
        if !suite.is_file() {
            bail!("--suite {}: no such file", suite.display());
        }
        return Ok(());
    }
    if !workspace.join("oomtrace/tests/node.rs").exists() {
        bail!("oomtrace/tests/node.rs (the in-guest suite) is missing; pass --suite to boot another executable");
    }
    if !workspace.join(IMAGE_SCRIPT).exists() {
        bail!("{IMAGE_SCRIPT} is missing: node-test needs it to build the DaemonSet's image (deploy/Dockerfile)");
    }
    Ok(())
}

/// Builds the suite and oomtrace, and the images. `suite` replaces the
/// `node` integration test (a harness check); the DaemonSet's image is then
/// optional.
pub fn prepare(workspace: &Path, cache: &Path, suite: Option<&Path>) -> Result<Payload> {
    let placeholder = suite.is_some();
    // A placeholder still needs the static oomtrace: cargo builds it with any
    // integration test (check_cmd is the smallest).
    let built = build::build(workspace, Some(if placeholder { "check_cmd" } else { "node" }))?;
    let suite = match suite {
        Some(path) => path.to_path_buf(),
        None => built.tests.into_iter().next().context("cargo built no `node` test executable")?,
    };
    let test_images = test_images(workspace)?;
    let image_script = workspace.join(IMAGE_SCRIPT);
    let daemonset_image = if image_script.exists() {
        Some(daemonset_image(workspace, &image_script, cache)?)
    } else if placeholder {
        eprintln!("node-test: {IMAGE_SCRIPT} is missing: the guest gets no DaemonSet image (--suite run)");
        None
    } else {
        bail!("{IMAGE_SCRIPT} is missing: node-test needs it to build the DaemonSet's image (deploy/Dockerfile)");
    };
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(workspace.join("deploy/kubernetes"))
        .context("reading deploy/kubernetes")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    manifests.sort();
    Ok(Payload { suite, oomtrace: built.oomtrace, test_images, daemonset_image, manifests })
}

/// The test kit's images (pause, test workload), as `scripts/runtime.sh
/// images` builds them for the host's test containerd.
fn test_images(workspace: &Path) -> Result<Vec<ImageArchive>> {
    let listing = run::stdout(Command::new(workspace.join("scripts/runtime.sh")).arg("images"))?;
    let images: Vec<ImageArchive> = listing
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(reference, archive)| ImageArchive {
            reference: reference.to_owned(),
            archive: archive.into(),
            size_bytes: None,
            archive_bytes: None,
        })
        .collect();
    if images.is_empty() {
        bail!("scripts/runtime.sh images listed no images: {listing}");
    }
    Ok(images)
}

/// The DaemonSet's image: `scripts/image.sh build <archive>`, whose last
/// line is `image: <ref> size_bytes=N archive_bytes=M`.
fn daemonset_image(workspace: &Path, script: &Path, cache: &Path) -> Result<ImageArchive> {
    let archive = cache.join("oomtrace-image.oci.tar");
    eprintln!("node-test: building the DaemonSet image ({} build {})", script.display(), archive.display());
    let out = run::stdout(Command::new(script).arg("build").arg(&archive).current_dir(workspace))?;
    let last = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let reference = last
        .strip_prefix("image: ")
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("scripts/image.sh did not end with `image: <ref> ...`: {last:?}"))?;
    let value = |key: &str| {
        last.split_whitespace().find_map(|word| word.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok())
    };
    Ok(ImageArchive {
        reference: reference.to_owned(),
        archive,
        size_bytes: value("size_bytes"),
        archive_bytes: value("archive_bytes"),
    })
}
