//! Debian kernel images for the VM matrix: resolved with apt-cache, fetched
//! with `apt-get download`, unpacked with `dpkg-deb -x` under
//! `target/vm/kernels/<release>/` (nothing is installed into the host's /boot):
//! `vmlinuz` for every guest, and `modules/` (the package's
//! `lib/modules/<release>`) for guests that load modules (the node's overlay,
//! bridge and veth).
//! Suites the host does not list (bullseye-security, trixie-backports) go
//! through a private apt state under `target/vm/apt`, leaving the host's apt
//! configuration alone.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::run;

/// A kernel series of the matrix.
#[derive(Clone, Copy, Debug)]
pub struct Series {
    /// What users pass to `--kernel`.
    pub label: &'static str,
    /// Extra apt source (None: the host's own bookworm sources).
    private_source: Option<&'static str>,
    pick: Pick,
}

#[derive(Clone, Copy, Debug)]
enum Pick {
    /// The candidate of a meta package.
    Meta(&'static str),
    /// The oldest ABI of `linux-image-<prefix><N>-cloud-amd64` still in the archive.
    OldestAbi(&'static str),
}

const BULLSEYE_SECURITY: &str = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main";
const TRIXIE_BACKPORTS: &str =
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main";

/// The matrix, oldest first.
pub const SERIES: [Series; 5] = [
    Series { label: "5.10", private_source: Some(BULLSEYE_SECURITY), pick: Pick::Meta("linux-image-cloud-amd64") },
    Series { label: "6.1-oldest", private_source: None, pick: Pick::OldestAbi("6.1.0-") },
    Series { label: "6.1", private_source: None, pick: Pick::Meta("linux-image-cloud-amd64") },
    Series { label: "6.12", private_source: None, pick: Pick::Meta("linux-image-6.12-cloud-amd64") },
    Series { label: "7.x", private_source: Some(TRIXIE_BACKPORTS), pick: Pick::Meta("linux-image-cloud-amd64") },
];

/// An unpacked kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub label: &'static str,
    /// e.g. `6.1.0-47-cloud-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// The package's `lib/modules/<release>` tree (without depmod's indexes).
    pub modules: PathBuf,
}

pub fn series(label: &str) -> Result<Series> {
    SERIES.iter().copied().find(|s| s.label == label).with_context(|| {
        let known: Vec<_> = SERIES.iter().map(|s| s.label).collect();
        format!("unknown kernel series {label:?}; known: {}", known.join(", "))
    })
}

/// apt options for a private state directory with one extra source.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn host() -> Self {
        Self { options: Vec::new() }
    }

    fn private(dir: &Path, source: &str) -> Result<Self> {
        let name = source.split_whitespace().nth(3).unwrap_or("extra");
        let root = dir.join(name);
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(root.join(sub)).with_context(|| format!("mkdir {}", root.display()))?;
        }
        std::fs::write(root.join("sources.list"), format!("{source}\n"))?;
        let d = |p: &str| root.join(p).display().to_string();
        let options = vec![
            format!("-oDir::Etc::SourceList={}", d("sources.list")),
            "-oDir::Etc::SourceParts=/dev/null".to_owned(),
            format!("-oDir::State::Lists={}", d("lists")),
            format!("-oDir::Cache={}", d("cache")),
            "-oDir::State::status=/dev/null".to_owned(),
        ];
        Ok(Self { options })
    }

    fn command(&self, tool: &str) -> Command {
        let mut command = Command::new(tool);
        command.args(&self.options);
        command
    }

    fn update(&self) -> Result<()> {
        run::status(self.command("apt-get").args(["update", "-qq"]))
    }

    fn candidate(&self, package: &str) -> Result<String> {
        let policy = run::stdout(self.command("apt-cache").args(["policy", package]))?;
        policy
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(|v| v.trim().to_owned())
            .filter(|v| v != "(none)")
            .with_context(|| format!("no candidate for {package}"))
    }

    /// The `linux-image-*` package a meta package depends on.
    fn image_of_meta(&self, meta: &str) -> Result<String> {
        let version = self.candidate(meta)?;
        let show = run::stdout(self.command("apt-cache").args(["show", &format!("{meta}={version}")]))?;
        let depends = show.lines().find_map(|l| l.strip_prefix("Depends:")).context("meta package has no Depends")?;
        depends
            .split([',', '|'])
            .map(str::trim)
            .map(|d| d.split_whitespace().next().unwrap_or_default())
            .find(|d| d.starts_with("linux-image-") && d.chars().nth(12).is_some_and(|c| c.is_ascii_digit()))
            .map(str::to_owned)
            .with_context(|| format!("{meta} depends on no versioned linux-image: {depends}"))
    }

    fn oldest_abi(&self, prefix: &str) -> Result<String> {
        let pattern = format!("^linux-image-{}[0-9]+-cloud-amd64$", prefix.replace('.', "\\."));
        let list = run::stdout(self.command("apt-cache").args(["search", "--names-only", &pattern]))?;
        list.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|name| {
                let abi = name.strip_prefix(&format!("linux-image-{prefix}"))?.strip_suffix("-cloud-amd64")?;
                Some((abi.parse::<u32>().ok()?, name.to_owned()))
            })
            .min()
            .map(|(_, name)| name)
            .with_context(|| format!("no package matches {pattern}"))
    }

    fn exists(&self, package: &str) -> bool {
        self.candidate(package).is_ok()
    }

    fn download(&self, packages: &[String], into: &Path) -> Result<()> {
        std::fs::create_dir_all(into)?;
        run::status(self.command("apt-get").arg("download").args(packages).current_dir(into))
    }
}

/// Fetches (or finds in `cache`, `target/vm`) the kernel of each series label.
pub fn fetch_all(labels: &[&str], cache: &Path) -> Result<Vec<Kernel>> {
    let mut kernels = Vec::new();
    for label in labels {
        let series = series(label)?;
        let kernel = fetch(series, cache).with_context(|| format!("fetching the {label} kernel"))?;
        eprintln!("xtask: kernel {} -> {}", kernel.label, kernel.release);
        kernels.push(kernel);
    }
    Ok(kernels)
}

/// Fetches (or finds in the cache) the kernel of one series.
pub fn fetch(series: Series, cache: &Path) -> Result<Kernel> {
    let apt = match series.private_source {
        Some(source) => Apt::private(&cache.join("apt"), source)?,
        None => Apt::host(),
    };
    apt.update().with_context(|| format!("apt-get update for {}", series.label))?;
    let image = match series.pick {
        Pick::Meta(meta) => apt.image_of_meta(meta)?,
        Pick::OldestAbi(prefix) => apt.oldest_abi(prefix)?,
    };
    let release = image.trim_start_matches("linux-image-").trim_end_matches("-unsigned").to_owned();
    let dir = cache.join("kernels").join(&release);
    let kernel = Kernel { label: series.label, vmlinuz: dir.join("vmlinuz"), modules: dir.join("modules"), release };
    if kernel.vmlinuz.exists() && kernel.modules.is_dir() {
        return Ok(kernel);
    }
    let release = &kernel.release;
    // trixie and later split the image into linux-binary-unsigned-* packages.
    let split = format!("linux-binary-unsigned-{release}");
    let packages = if apt.exists(&split) {
        let base = format!("linux-base-{release}");
        if apt.exists(&base) { vec![split, base] } else { vec![split] }
    } else {
        vec![image.clone()]
    };
    let debs = cache.join("debs").join(release);
    let is_deb = |p: &PathBuf| p.extension().is_some_and(|x| x == "deb");
    let downloaded = || -> Vec<PathBuf> {
        let entries = std::fs::read_dir(&debs).into_iter().flatten().flatten();
        entries.map(|e| e.path()).filter(is_deb).collect()
    };
    if downloaded().is_empty() {
        apt.download(&packages, &debs).with_context(|| format!("downloading {packages:?}"))?;
    }
    let unpacked = cache.join("unpack").join(release);
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)?;
    for deb in downloaded() {
        run::status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    }
    let found_vmlinuz =
        files_under(&unpacked, &|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz")))
            .into_iter()
            .next()
            .with_context(|| format!("no vmlinuz in {packages:?}"))?;
    let found_modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|m| unpacked.join(m).join(release))
        .find(|m| m.is_dir())
        .with_context(|| format!("no lib/modules/{release} in {packages:?}"))?;
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(&found_vmlinuz, &kernel.vmlinuz)?;
    let _ = std::fs::remove_dir_all(&kernel.modules);
    std::fs::rename(&found_modules, &kernel.modules)
        .with_context(|| format!("moving {} to {}", found_modules.display(), kernel.modules.display()))?;
    let _ = std::fs::remove_dir_all(&unpacked);
    Ok(kernel)
}

/// Every file under `dir` (recursively) that `wanted` accepts.
pub fn files_under(dir: &Path, wanted: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if wanted(&path) {
                found.push(path);
            }
        }
    }
    found
}

/// Fails early with a clear message when a needed host tool is missing.
pub fn require_host_tools() -> Result<()> {
    for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
        if which(tool).is_none() {
            bail!("{tool} not found: the VM matrix fetches Debian kernel packages and needs a Debian host");
        }
    }
    Ok(())
}

/// Where `tool` is on PATH (exactly where `Command::new(tool)` looks: a tool
/// found elsewhere would count as present and then not run), as its real
/// path: a symlink (an alternatives link, or scripts/fresh-path.sh's scratch
/// directory) is resolved, so a tool copied into a guest lands where the
/// guest's PATH finds it.
pub fn which(tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())?;
    Some(std::fs::canonicalize(&found).unwrap_or(found))
}
