//! `vmbench image build`: the guest image, from a host kernel or from
//! explicit inputs (what `nix build .#guest-image` passes).
//!
//! Output directory: `bzImage`, `initrd` (newc cpio, uncompressed: the kernel
//! unpacks it fastest and TCG boots feel it), `cmdline`, `manifest.json`.
//! The initramfs holds the static agent as `/init` (stripped),
//! the vmbench module and a static busybox; nothing else runs in the guest.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest module's sources, embedded so the binary builds images anywhere.
const KMOD_C: &str = include_str!("../../../kmod/vmbench.c");
const KMOD_UAPI: &str = include_str!("../../../kmod/vmbench_uapi.h");
const KMOD_KBUILD: &str = include_str!("../../../kmod/Kbuild");

/// Guest kernel cmdline: serial console, quiet-ish, no watchdogs, power
/// off (not reboot) on panic so QEMU exits with -no-reboot, and HLT as the
/// only idle (no guest halt-polling): an idle vCPU exits to KVM, which is
/// what the IPI-to-HLT row wakes.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 8250.nr_uarts=1 loglevel=4 panic=-1 nowatchdog nmi_watchdog=0 tsc=reliable idle=halt";

/// How to build a guest image.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// bzImage; default: the newest /boot/vmlinuz-*.
    pub kernel: Option<PathBuf>,
    /// The image directory to write.
    pub out: PathBuf,
    /// The static agent; default: [`default_agent`].
    pub agent: Option<PathBuf>,
    /// Where `<release>/build` (kernel headers) lives.
    pub modules_dir: PathBuf,
    /// Where the vmbench module comes from.
    pub module: ModuleSource,
    /// busybox to include (must be static); default: a static /bin/busybox
    /// or /usr/bin/busybox if there is one.
    pub busybox: Option<PathBuf>,
}

/// Where the vmbench module comes from. Without it the agent falls back to
/// the uncached sysfs mapping of the shared memory, and says so.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleSource {
    /// Built here against `<modules_dir>/<release>/build`.
    Build,
    /// A `vmbench.ko` built elsewhere (by Nix, against the same kernel); its
    /// vermagic must name the kernel's release.
    Prebuilt(PathBuf),
    /// No module: the agent maps the region through sysfs (uncached), and says so.
    Omit,
}

impl ImageOptions {
    /// The defaults, writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        ImageOptions {
            kernel: None,
            out: out.into(),
            agent: None,
            modules_dir: PathBuf::from("/lib/modules"),
            module: ModuleSource::Build,
            busybox: None,
        }
    }
}

/// What an image holds and where it came from (`<image>/manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImageManifest {
    /// The manifest's format version.
    pub schema_version: u32,
    /// The kernel file the image was built from.
    pub kernel_source: String,
    /// Full version string from the bzImage header.
    pub kernel_version: String,
    /// The release (`uname -r` in the guest).
    pub kernel_release: String,
    /// The agent binary the image holds as `/init`.
    pub agent_source: String,
    /// Size of `/init` in the initramfs, stripped.
    #[serde(default)]
    pub agent_bytes: u64,
    /// The fingerprint of the sources `/init` was built from
    /// ([`vmbench_proto::AGENT_SOURCES`]); absent for an agent without one
    /// and in images made before it existed.
    #[serde(default)]
    pub agent_sources: Option<String>,
    /// The module file, when the image has one.
    pub module: Option<String>,
    /// The busybox binary, when the image has one.
    pub busybox: Option<String>,
    /// The kernel command line the image boots with.
    pub cmdline: String,
    /// The initramfs's size in bytes.
    pub initrd_bytes: u64,
    /// Guest RAM this image boots with unless `--memory` / `vm.memory_mib`
    /// says otherwise: enough to unpack the initramfs and run the agent.
    /// Absent in images made before it existed.
    #[serde(default)]
    pub memory_mib: Option<u32>,
}

impl ImageManifest {
    /// Reads `<image>/manifest.json`.
    pub fn read(image: &Path) -> Result<ImageManifest, ImageError> {
        let path = image.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| ImageError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(format!("not a vmbench image manifest: {e}")),
        })
    }
}

/// Guest RAM for an initramfs of this size: the kernel itself and the
/// agent's buffers (about 128 MiB, the largest frame being 32 MiB), plus
/// three times the archive (the compressed copy, the unpacked files and page
/// cache while it unpacks), rounded up to 64 MiB. A few-MB image gets
/// 256 MiB; the 512 MiB every guest used to get was sized for nothing.
pub fn recommended_memory_mib(initrd_bytes: u64) -> u32 {
    let mib = 192 + (initrd_bytes * 3).div_ceil(1 << 20);
    let rounded = mib.div_ceil(64) * 64;
    u32::try_from(rounded.max(256)).unwrap_or(u32::MAX)
}

/// Why a guest image could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No kernel in /boot.
    #[error("no kernel found in /boot: install linux-image-amd64 (Debian) or pass --kernel PATH")]
    NoKernel,
    /// The kernel file does not exist.
    #[error(
        "{0}: no such kernel file (pass --kernel with a bzImage, e.g. /boot/vmlinuz-$(uname -r))"
    )]
    KernelMissing(String),
    /// The kernel file is not a bzImage.
    #[error(
        "{0} is not a bzImage (no 'HdrS' setup header): pass a compressed x86 kernel such as /boot/vmlinuz-*"
    )]
    NotBzImage(String),
    /// The kernel headers the module build needs are missing.
    #[error(
        "kernel headers for {release} are missing ({dir}): install linux-headers-{release} (for Debian's current kernel: linux-headers-amd64), or pass --no-module"
    )]
    NoHeaders {
        /// The kernel's release.
        release: String,
        /// Where the headers were looked for.
        dir: String,
    },
    /// The module did not build (the build's output).
    #[error("building the vmbench module failed (is build-essential installed?):\n{0}")]
    ModuleBuild(String),
    /// The agent is not statically linked.
    #[error(
        "the agent {0} is dynamically linked and cannot run as init: build vmbench with the repository's .cargo/config.toml (static), or pass --agent"
    )]
    AgentNotStatic(String),
    /// An ELF file (agent, module) could not be read or stripped.
    #[error("{path}")]
    Elf {
        /// The file.
        path: String,
        /// What was wrong with it.
        #[source]
        source: crate::elf::ElfError,
    },
    /// The busybox given is not statically linked.
    #[error(
        "--busybox {0} is dynamically linked and cannot run in the initramfs: pass a static busybox (Debian: busybox-static)"
    )]
    BusyboxNotStatic(String),
    /// The prebuilt module was built for another kernel.
    #[error(
        "--module {path} was built for kernel {vermagic:?}, but the kernel is {release}: build the module against this kernel's headers"
    )]
    ModuleMismatch {
        /// The module file.
        path: String,
        /// Its vermagic.
        vermagic: String,
        /// The kernel's release.
        release: String,
    },
    /// Neither XDG_CACHE_HOME nor HOME is set, and this is not root.
    #[error(
        "no place for the default guest image: set HOME or XDG_CACHE_HOME, or give the image directory (--image, or --out for image build)"
    )]
    NoCacheDir,
    /// The image directory is one another user could change: root would
    /// run `make` there or boot what they planted.
    #[error(
        "guest image directory {dir}: {source} (give --out/--image a directory only root or you can write, e.g. {ROOT_CACHE}/guest-image)"
    )]
    UntrustedDir {
        /// The directory.
        dir: String,
        /// What makes it untrusted.
        #[source]
        source: vmbench_host::files::FileError,
    },
    /// A file could not be written into the image directory.
    #[error("writing the guest image: {0}")]
    Write(#[from] vmbench_host::files::FileError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The cache root's own fallback for root when neither `XDG_CACHE_HOME` nor
/// `HOME` is set (service managers, `env -i`): a directory only root
/// writes, never a shared one such as /tmp.
pub const ROOT_CACHE: &str = "/var/cache/vmbench";

/// Where the default guest image lives: `$XDG_CACHE_HOME/vmbench/guest-image`,
/// else `$HOME/.cache/vmbench/guest-image`, else, for root,
/// `/var/cache/vmbench/guest-image`; built there on first use. Only
/// absolute variables count (a relative one would depend on the working
/// directory). Without either, a user other than root has no cache.
pub fn default_dir() -> Result<PathBuf, ImageError> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(x) = absolute("XDG_CACHE_HOME") {
        return Ok(x.join("vmbench").join("guest-image"));
    }
    if let Some(h) = absolute("HOME") {
        return Ok(h.join(".cache").join("vmbench").join("guest-image"));
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from(ROOT_CACHE).join("guest-image"));
    }
    Err(ImageError::NoCacheDir)
}

/// The newest /boot/vmlinuz-* by version order.
pub fn default_kernel() -> Result<PathBuf, ImageError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map_err(|_| ImageError::NoKernel)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    found.sort_by(|a, b| vmbench_host::fs::natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    found.pop().ok_or(ImageError::NoKernel)
}

/// The kernel version string in a bzImage's setup header (offset 0x20E holds
/// a pointer to it, relative to 0x200; "HdrS" at 0x202 marks the header).
pub fn bzimage_version(bytes: &[u8]) -> Option<String> {
    if bytes.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*bytes.get(0x20E)?, *bytes.get(0x20F)?]) as usize;
    let start = ptr.checked_add(0x200)?;
    let s = bytes.get(start..)?;
    let end = s.iter().take(512).position(|&b| b == 0)?;
    String::from_utf8(s[..end].to_vec()).ok()
}

fn find_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            std::fs::read(p)
                .ok()
                .and_then(|b| crate::elf::is_static(&b))
                == Some(true)
        })
}

/// The agent an image gets when none is given, with its bytes:
/// `vmbench-agent` beside the running executable (the agent alone) when it
/// was built from the same sources as this one, else this executable (as
/// PID 1, `vmbench` is the agent too, with the whole host tool beside it). A
/// `vmbench-agent` left by an earlier build (`cargo run` rebuilds only
/// `vmbench`) is never used.
pub fn default_agent() -> Result<(PathBuf, Vec<u8>), ImageError> {
    let me = std::env::current_exe().map_err(io(Path::new("/proc/self/exe")))?;
    let agent = me.with_file_name(AGENT_BINARY);
    if let Ok(bytes) = std::fs::read(&agent)
        && vmbench_proto::agent_sources_in(&bytes) == Some(vmbench_proto::AGENT_SOURCES_FINGERPRINT)
    {
        return Ok((agent, bytes));
    }
    let bytes = std::fs::read(&me).map_err(io(&me))?;
    Ok((me, bytes))
}

/// The file name of the agent-only binary.
pub const AGENT_BINARY: &str = "vmbench-agent";

/// Builds the image: the kernel, and an initramfs of the stripped agent as `/init`, the module and busybox; writes the manifest last.
pub fn build(opts: &ImageOptions) -> Result<ImageManifest, ImageError> {
    let kernel = match &opts.kernel {
        Some(k) if !k.exists() => return Err(ImageError::KernelMissing(k.display().to_string())),
        Some(k) => k.clone(),
        None => default_kernel()?,
    };
    let kbytes = std::fs::read(&kernel).map_err(io(&kernel))?;
    let version = bzimage_version(&kbytes)
        .ok_or_else(|| ImageError::NotBzImage(kernel.display().to_string()))?;
    let release = version.split_whitespace().next().unwrap_or("").to_string();

    let (agent, abytes) = match &opts.agent {
        Some(a) => (a.clone(), std::fs::read(a).map_err(io(a))?),
        None => default_agent()?,
    };
    if crate::elf::is_static(&abytes) != Some(true) {
        return Err(ImageError::AgentNotStatic(agent.display().to_string()));
    }
    let abytes = crate::elf::strip(&abytes).map_err(|source| ImageError::Elf {
        path: agent.display().to_string(),
        source,
    })?;

    let out = open_image_dir(&opts.out)?;
    // The module's bytes, and where they came from: built in a private
    // directory (only the .ko leaves it, written into the image directory)
    // or the prebuilt file given.
    let module = match &opts.module {
        ModuleSource::Build => {
            let ko = build_module(&opts.modules_dir, &release)?;
            out.write(MODULE_FILE, &ko)?;
            Some((opts.out.join(MODULE_FILE), ko))
        }
        ModuleSource::Prebuilt(ko) => {
            let bytes = check_module_release(ko, &release)?;
            Some((ko.clone(), bytes))
        }
        ModuleSource::Omit => None,
    };
    let busybox = match &opts.busybox {
        Some(bb) => {
            let bytes = std::fs::read(bb).map_err(io(bb))?;
            if crate::elf::is_static(&bytes) != Some(true) {
                return Err(ImageError::BusyboxNotStatic(bb.display().to_string()));
            }
            Some(bb.clone())
        }
        None => find_busybox(),
    };

    let initrd = opts.out.join("initrd");
    let mut cpio = CpioWriter::new(&initrd);
    for d in [
        "bin",
        "dev",
        "lib",
        "lib/modules",
        "proc",
        "sys",
        "tmp",
        "run",
        "root",
    ] {
        cpio.add(d, 0o040755, b"", None)?;
    }
    // The kernel opens /dev/console for init's stdio before devtmpfs exists.
    cpio.add("dev/console", 0o020600, b"", Some((5, 1)))?;
    cpio.add("init", 0o100755, &abytes, None)?;
    if let Some((_, ko)) = &module {
        cpio.add("lib/modules/vmbench.ko", 0o100644, ko, None)?;
    }
    if let Some(bb) = &busybox {
        cpio.add(
            "bin/busybox",
            0o100755,
            &std::fs::read(bb).map_err(io(bb))?,
            None,
        )?;
        cpio.add("bin/sh", 0o120777, b"busybox", None)?;
    }
    let archive = cpio.finish()?;
    let initrd_bytes = archive.len() as u64;
    // Every file is written under a fresh name and renamed into place: a
    // link planted at any of these names is replaced, never written through.
    out.write("initrd", &archive)?;
    out.write("bzImage", &kbytes)?;
    out.write("cmdline", format!("{DEFAULT_CMDLINE}\n").as_bytes())?;
    let manifest = ImageManifest {
        schema_version: 1,
        kernel_source: kernel.display().to_string(),
        kernel_version: version,
        kernel_release: release,
        agent_source: agent.display().to_string(),
        agent_bytes: abytes.len() as u64,
        agent_sources: vmbench_proto::agent_sources_in(&abytes).map(str::to_string),
        module: module.map(|(m, _)| m.display().to_string()),
        busybox: busybox.map(|b| b.display().to_string()),
        cmdline: DEFAULT_CMDLINE.to_string(),
        initrd_bytes,
        memory_mib: Some(recommended_memory_mib(initrd_bytes)),
    };
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    out.write("manifest.json", (text + "\n").as_bytes())?;
    Ok(manifest)
}

/// The module's file name in the image directory (when built here).
pub const MODULE_FILE: &str = "vmbench.ko";

/// Creates (mode 0700 where new) and opens the image directory, refusing
/// one that another user could change: root runs `make` for the module and
/// boots what is there, so neither the directory nor any directory above it
/// may be writable by someone else.
fn open_image_dir(dir: &Path) -> Result<vmbench_host::files::OutputDir, ImageError> {
    if dir.symlink_metadata().is_err() {
        // New: made private. Existing parents are judged below.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    check_image_dir(dir)?;
    vmbench_host::files::OutputDir::open(dir).map_err(untrusted(dir))
}

/// Checks, without changing anything, that an existing image directory
/// may be used by this user (see [`open_image_dir`]).
pub fn check_image_dir(dir: &Path) -> Result<(), ImageError> {
    vmbench_host::files::check_trusted_dir(dir).map_err(untrusted(dir))
}

fn untrusted(dir: &Path) -> impl FnOnce(vmbench_host::files::FileError) -> ImageError + '_ {
    move |source| ImageError::UntrustedDir {
        dir: dir.display().to_string(),
        source,
    }
}

/// A newc archive being built in memory (the format the kernel unpacks as
/// initramfs; a few MB), then written whole.
struct CpioWriter {
    path: PathBuf,
    w: Vec<u8>,
    ino: u32,
}

impl CpioWriter {
    fn new(path: &Path) -> CpioWriter {
        CpioWriter {
            path: path.to_path_buf(),
            w: Vec::new(),
            ino: 1,
        }
    }

    fn add(
        &mut self,
        name: &str,
        mode: u32,
        data: &[u8],
        rdev: Option<(u32, u32)>,
    ) -> Result<(), ImageError> {
        self.ino += 1;
        let mut b = cpio::newc::Builder::new(name)
            .ino(self.ino)
            .mode(mode)
            .uid(0)
            .gid(0)
            .nlink(1);
        if let Some((major, minor)) = rdev {
            b = b.rdev_major(major).rdev_minor(minor);
        }
        let size = u32::try_from(data.len()).map_err(|_| ImageError::Io {
            path: format!("{} ({name})", self.path.display()),
            source: std::io::Error::other("file too large for a newc archive (4 GiB)"),
        })?;
        let mut wr = b.write(&mut self.w, size);
        wr.write_all(data).map_err(io(&self.path))?;
        wr.finish().map_err(io(&self.path))?;
        Ok(())
    }

    /// Writes the trailer and returns the archive.
    fn finish(self) -> Result<Vec<u8>, ImageError> {
        let path = self.path;
        cpio::newc::trailer(self.w).map_err(io(&path))
    }
}

/// Refuses a prebuilt module whose vermagic names another kernel release:
/// the guest kernel would refuse it at boot, far from the cause.
fn check_module_release(ko: &Path, release: &str) -> Result<Vec<u8>, ImageError> {
    let bytes = std::fs::read(ko).map_err(io(ko))?;
    let vermagic = crate::elf::modinfo(&bytes, "vermagic").map_err(|source| ImageError::Elf {
        path: ko.display().to_string(),
        source,
    })?;
    if vermagic.split_whitespace().next() != Some(release) {
        return Err(ImageError::ModuleMismatch {
            path: ko.display().to_string(),
            vermagic,
            release: release.to_string(),
        });
    }
    Ok(bytes)
}

/// Builds vmbench.ko against `<modules_dir>/<release>/build` and returns
/// it. The build runs in a fresh private directory (mode 0700, a random
/// name, created exclusively) that holds nothing but the module's sources:
/// Kbuild reads every `.*.cmd` file it finds in `M=`, so it must never run
/// where anyone else could have put one.
fn build_module(modules_dir: &Path, release: &str) -> Result<Vec<u8>, ImageError> {
    let kdir = modules_dir.join(release).join("build");
    if !kdir.join("Makefile").exists() {
        return Err(ImageError::NoHeaders {
            release: release.to_string(),
            dir: kdir.display().to_string(),
        });
    }
    let tmp = std::env::temp_dir();
    let work = tempfile::Builder::new()
        .prefix("vmbench-kmod-")
        .tempdir_in(&tmp)
        .map_err(io(&tmp))?;
    let src = work.path();
    for (name, text) in [
        ("vmbench.c", KMOD_C),
        ("vmbench_uapi.h", KMOD_UAPI),
        ("Kbuild", KMOD_KBUILD),
    ] {
        let p = src.join(name);
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    let output = Command::new("make")
        .arg("-C")
        .arg(&kdir)
        .arg(format!("M={}", src.display()))
        .arg("modules")
        .output()
        .map_err(|e| {
            ImageError::ModuleBuild(format!("running make: {e} (apt-get install make gcc)"))
        })?;
    let ko = src.join("vmbench.ko");
    if !output.status.success() || !ko.exists() {
        let text = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        return Err(ImageError::ModuleBuild(
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        ));
    }
    std::fs::read(&ko).map_err(io(&ko))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_from_a_bzimage_header() {
        let mut b = vec![0u8; 0x1000];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20E..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let v = b"6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        b[0x500..0x500 + v.len()].copy_from_slice(v);
        assert_eq!(
            bzimage_version(&b).as_deref(),
            Some("6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP")
        );
        assert_eq!(bzimage_version(&[0u8; 100]), None);
        assert_eq!(bzimage_version(&vec![0u8; 0x1000]), None);
    }

    #[test]
    fn clear_errors_for_missing_inputs() {
        let out = tempfile::tempdir().unwrap();
        let mut o = ImageOptions::new(out.path());
        o.kernel = Some("/nonexistent/vmlinuz".into());
        assert!(
            build(&o)
                .unwrap_err()
                .to_string()
                .contains("no such kernel file")
        );
        let fake = out.path().join("fake-kernel");
        std::fs::write(&fake, b"not a kernel").unwrap();
        o.kernel = Some(fake);
        assert!(build(&o).unwrap_err().to_string().contains("not a bzImage"));
    }

    #[test]
    fn missing_headers_name_the_package() {
        let out = tempfile::tempdir().unwrap();
        let err = build_module(out.path(), "9.9.9-test").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("linux-headers-9.9.9-test"), "{msg}");
    }
}
