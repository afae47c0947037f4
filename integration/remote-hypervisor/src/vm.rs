//! One sandbox's VM: virtiofsd (in the Kata shim's mount namespace, sharing
//! the sandbox's `mounts/` directory as `kataShared`), vhost-device-vsock
//! (the guest's vsock as a hybrid-vsock unix socket) and qemu under TCG.
//! Booted until the guest's Kata agent answers on vsock port 1024.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hvsock;
use crate::options::Options;
use crate::process::{tail, Daemon, Spec};

/// The Kata agent's vsock port.
pub const AGENT_PORT: u32 = 1024;
/// The guest's CID (any: the hybrid vsock is private to this VM).
const GUEST_CID: &str = "3";
/// The virtio-fs tag Kata's guests mount the shared directory by.
pub const SHARE_TAG: &str = "kataShared";
/// Lines of the guest console quoted in errors.
const CONSOLE_LINES: usize = 25;

/// The files of one sandbox, all under its directory.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
    /// The hybrid vsock (vhost-device-vsock's `--uds-path`): kata-cr's
    /// `[agent] remote_hybrid_vsock` names it.
    pub hvsock: PathBuf,
    /// Where the Kata shim speaks to its agent (CreateVM's answer).
    pub agent: PathBuf,
    pub vhost: PathBuf,
    pub virtiofs: PathBuf,
    pub console: PathBuf,
}

impl Paths {
    pub fn new(dir: PathBuf) -> Paths {
        Paths {
            hvsock: dir.join("vm.vsock"),
            agent: dir.join("agent.sock"),
            vhost: dir.join("vhost.sock"),
            virtiofs: dir.join("fs.sock"),
            console: dir.join("console.log"),
            dir,
        }
    }
}

/// What a sandbox's VM is made of.
#[derive(Debug, Clone)]
pub struct Shape {
    pub memory_mib: u32,
    pub vcpus: u32,
}

/// A running VM: its processes, started in this order.
pub struct Vm {
    daemons: Vec<Daemon>,
}

impl Vm {
    /// Starts the VM of sandbox `id` whose Kata shim is `shim_pid`, and
    /// waits for its agent. On failure everything started is stopped and the
    /// error quotes the failing part's log and the guest console.
    pub async fn boot(
        opts: &Options,
        id: &str,
        paths: &Paths,
        shape: &Shape,
        shim_pid: u32,
    ) -> Result<Vm> {
        let mut vm = Vm {
            daemons: Vec::new(),
        };
        match vm.start(opts, id, paths, shape, shim_pid).await {
            Ok(()) => Ok(vm),
            Err(e) => {
                vm.stop().await;
                Err(e)
            }
        }
    }

    async fn start(
        &mut self,
        opts: &Options,
        id: &str,
        paths: &Paths,
        shape: &Shape,
        shim_pid: u32,
    ) -> Result<()> {
        let t0 = Instant::now();
        // The shim bind-mounts each container's rootfs under mounts/ in its
        // own mount namespace: virtiofsd must serve from there, and see the
        // mounts made after it started.
        let shared = opts.shared_root.join(id).join("mounts");
        let seen = PathBuf::from(format!("/proc/{shim_pid}/root")).join(
            shared
                .strip_prefix("/")
                .expect("--shared-root is absolute (checked by options)"),
        );
        if !seen.is_dir() {
            return Err(Error::VmFailed(format!(
                "sandbox {id}: the Kata shim (pid {shim_pid}) has no {} in its mount namespace",
                shared.display()
            )));
        }
        let ns_path = format!("/proc/{shim_pid}/ns/mnt");
        let ns = File::open(&ns_path)
            .map_err(|e| Error::io(format!("sandbox {id}: open {ns_path}"), e))?;
        self.daemons.push(Daemon::spawn(Spec {
            name: "virtiofsd",
            program: &opts.virtiofsd,
            args: os(&[
                "--socket-path",
                &paths.virtiofs.to_string_lossy(),
                "--shared-dir",
                &shared.to_string_lossy(),
                "--sandbox",
                "none",
                "--cache",
                "auto",
                "--announce-submounts",
                "--log-level",
                "error",
            ]),
            log: paths.dir.join("virtiofsd.log"),
            mount_ns: Some(ns.into()),
        })?);
        self.daemons.push(Daemon::spawn(Spec {
            name: "vhost-device-vsock",
            program: &opts.vhost_device_vsock,
            args: os(&[
                "--guest-cid",
                GUEST_CID,
                "--socket",
                &paths.vhost.to_string_lossy(),
                "--uds-path",
                &paths.hvsock.to_string_lossy(),
            ]),
            log: paths.dir.join("vhost-device-vsock.log"),
            mount_ns: None,
        })?);
        for sock in [&paths.virtiofs, &paths.vhost] {
            self.wait_for(id, paths, Duration::from_secs(10), || sock.exists())
                .await
                .map_err(|e| match e {
                    Error::VmFailed(m) => {
                        Error::VmFailed(format!("{m} (waiting for {})", sock.display()))
                    }
                    e => e,
                })?;
        }
        let mem = shape.memory_mib.to_string();
        let params = opts.kernel_params.clone();
        self.daemons.push(Daemon::spawn(Spec {
            name: "qemu",
            program: &opts.qemu,
            args: os(&[
                "-name",
                &format!("kata-{id}"),
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-smp",
                &shape.vcpus.to_string(),
                "-m",
                &format!("{mem}M"),
                "-object",
                &format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
                "-machine",
                "q35,memory-backend=mem",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
                "-kernel",
                &opts.kernel.to_string_lossy(),
                "-initrd",
                &opts.initrd.to_string_lossy(),
                "-append",
                &params,
                "-serial",
                &format!("file:{}", paths.console.display()),
                "-monitor",
                "none",
                "-chardev",
                &format!("socket,id=vsock,path={}", paths.vhost.display()),
                "-device",
                "vhost-user-vsock-pci,chardev=vsock",
                "-chardev",
                &format!("socket,id=fs,path={}", paths.virtiofs.display()),
                "-device",
                &format!("vhost-user-fs-pci,chardev=fs,tag={SHARE_TAG}"),
            ]),
            log: paths.dir.join("qemu.log"),
            mount_ns: None,
        })?);
        let deadline = t0 + opts.boot_timeout;
        loop {
            self.check(id, paths)?;
            if paths.hvsock.exists()
                && hvsock::connect(&paths.hvsock, AGENT_PORT, Duration::from_secs(2))
                    .await
                    .is_ok()
            {
                tracing::info!(
                    sandbox = id,
                    secs = t0.elapsed().as_secs_f32(),
                    "guest agent up"
                );
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::VmFailed(format!(
                    "sandbox {id}: the guest's Kata agent did not answer on vsock port {AGENT_PORT} within {} s; {}",
                    opts.boot_timeout.as_secs(),
                    console(paths)
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls `ready` for up to `within`, failing as soon as a process exits.
    async fn wait_for(
        &mut self,
        id: &str,
        paths: &Paths,
        within: Duration,
        ready: impl Fn() -> bool,
    ) -> Result<()> {
        let end = Instant::now() + within;
        loop {
            self.check(id, paths)?;
            if ready() {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(Error::VmFailed(format!(
                    "sandbox {id}: not ready within {} s",
                    within.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An error naming the first process that has exited, with its log.
    pub fn check(&mut self, id: &str, paths: &Paths) -> Result<()> {
        for d in &mut self.daemons {
            if let Some(status) = d.exited() {
                let log = tail(&d.log, 8);
                let mut m = format!("sandbox {id}: {} exited ({status})", d.name);
                if !log.is_empty() {
                    m.push_str(&format!("; {}:\n{log}", d.log.display()));
                }
                if d.name == "qemu" {
                    m.push_str(&format!("\n{}", console(paths)));
                }
                return Err(Error::VmFailed(m));
            }
        }
        Ok(())
    }

    /// qemu first (the backends serve it), then the backends.
    pub async fn stop(&mut self) {
        while let Some(d) = self.daemons.pop() {
            d.stop().await;
        }
    }
}

fn console(paths: &Paths) -> String {
    let t = tail(&paths.console, CONSOLE_LINES);
    if t.is_empty() {
        format!("the guest console ({}) is empty", paths.console.display())
    } else {
        format!(
            "guest console (last {CONSOLE_LINES} lines of {}):\n{t}",
            paths.console.display()
        )
    }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The sandbox's VM shape: its annotations (Kata sends default_memory in
/// MiB and default_vcpus), bounded by the service's options.
pub fn shape(opts: &Options, annotations: &std::collections::HashMap<String, String>) -> Shape {
    const MEM: &str = "io.katacontainers.config.hypervisor.default_memory";
    const CPUS: &str = "io.katacontainers.config.hypervisor.default_vcpus";
    let asked = |k: &str| {
        annotations
            .get(k)
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    let memory_mib = opts
        .memory_mib
        .or_else(|| asked(MEM))
        .filter(|m| *m > 0)
        .unwrap_or(2048)
        .max(256);
    let vcpus = asked(CPUS)
        .filter(|c| *c > 0)
        .unwrap_or(1)
        .min(opts.max_vcpus);
    Shape { memory_mib, vcpus }
}

/// Where a sandbox's files live, checked: a sandbox id must name one
/// directory under the state directory.
pub fn sandbox_dir(state_dir: &Path, id: &str) -> Result<PathBuf> {
    if id.is_empty()
        || id.len() > 128
        || id == "."
        || id == ".."
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(Error::InvalidArgument(format!(
            "sandbox id {id:?}: want 1-128 characters of [A-Za-z0-9._-]"
        )));
    }
    Ok(state_dir.join(id))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::options::{parse, Mode};

    fn opts(extra: &str) -> Options {
        let mut a: Vec<String> = ["--kernel", "/k", "--initrd", "/i"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.split_whitespace().map(String::from));
        match parse(a).unwrap() {
            Mode::Serve(o) => *o,
            Mode::Help => unreachable!(),
        }
    }

    #[test]
    fn shape_follows_the_annotations_within_bounds() {
        let mut a = HashMap::new();
        let s = shape(&opts(""), &a);
        assert_eq!((s.memory_mib, s.vcpus), (2048, 1));
        a.insert(
            "io.katacontainers.config.hypervisor.default_memory".to_string(),
            "1024".to_string(),
        );
        a.insert(
            "io.katacontainers.config.hypervisor.default_vcpus".to_string(),
            "4".to_string(),
        );
        let s = shape(&opts(""), &a);
        assert_eq!((s.memory_mib, s.vcpus), (1024, 1));
        let s = shape(&opts("--memory-mib 768 --max-vcpus 2"), &a);
        assert_eq!((s.memory_mib, s.vcpus), (768, 2));
        a.insert(
            "io.katacontainers.config.hypervisor.default_memory".to_string(),
            "16".to_string(),
        );
        assert_eq!(shape(&opts(""), &a).memory_mib, 256);
    }

    /// CRI sandbox ids are 64 hex digits: every socket must still fit a
    /// sockaddr_un (108 bytes with its NUL) under the default state dir.
    #[test]
    fn sockets_of_a_cri_sandbox_fit_sun_path() {
        let o = opts("");
        let p = Paths::new(sandbox_dir(&o.state_dir, &"f".repeat(64)).unwrap());
        for s in [&p.hvsock, &p.agent, &p.vhost, &p.virtiofs] {
            assert!(s.as_os_str().len() < 108, "{} is too long", s.display());
        }
    }

    #[test]
    fn sandbox_ids_cannot_escape_the_state_dir() {
        let root = Path::new("/run/x");
        assert_eq!(
            sandbox_dir(root, "0123abcd-ef_1.2").unwrap(),
            root.join("0123abcd-ef_1.2")
        );
        for bad in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(129)] {
            let e = sandbox_dir(root, bad).unwrap_err();
            assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT, "{bad:?}");
        }
    }
}
