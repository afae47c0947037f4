//! The sandboxes the service runs, and Kata's four calls on them. A sandbox
//! ends with StopVM, or when the Kata shim that created it dies: nothing of
//! it (VM, daemons, sockets) outlives its shim.

use std::collections::HashMap;
use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixListener;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::bridge::{Bridge, Guest};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::vm::{self, Paths, Shape, Vm};

pub struct Service {
    opts: Options,
    sandboxes: Mutex<HashMap<String, Arc<Sandbox>>>,
}

struct Sandbox {
    id: String,
    paths: Paths,
    shape: Shape,
    /// The Kata shim that called CreateVM.
    shim_pid: u32,
    vm: Mutex<Option<Vm>>,
    guest: watch::Sender<Guest>,
    bridge: std::sync::Mutex<Option<Bridge>>,
    watcher: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Service {
    pub fn new(opts: Options) -> Arc<Service> {
        Arc::new(Service {
            opts,
            sandboxes: Mutex::new(HashMap::new()),
        })
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// CreateVM from the process `peer`: the sandbox's directory, its agent
    /// socket (bridged once the guest is up), and a watch on the shim.
    pub async fn create_vm(
        self: &Arc<Self>,
        peer: Option<u32>,
        id: &str,
        annotations: &HashMap<String, String>,
    ) -> Result<String> {
        let dir = vm::sandbox_dir(&self.opts.state_dir, id)?;
        let shim_pid = peer.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "sandbox {id}: CreateVM from a process whose pid is unknown (no SO_PEERCRED)"
            ))
        })?;
        let mut all = self.sandboxes.lock().await;
        if all.contains_key(id) {
            return Err(Error::AlreadyExists(format!(
                "sandbox {id} already has a VM"
            )));
        }
        // Left by a service that died: nothing of it runs any more (its
        // processes died with it).
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::io(format!("remove stale {}", dir.display()), e))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let paths = Paths::new(dir);
        let listener = UnixListener::bind(&paths.agent)
            .map_err(|e| Error::io(format!("bind {}", paths.agent.display()), e))?;
        let (guest, rx) = watch::channel(Guest::Booting);
        let sb = Arc::new(Sandbox {
            id: id.to_string(),
            shape: vm::shape(&self.opts, annotations),
            shim_pid,
            vm: Mutex::new(None),
            guest,
            bridge: std::sync::Mutex::new(Some(Bridge::start(
                listener,
                paths.hvsock.clone(),
                rx,
                id.to_string(),
            ))),
            watcher: std::sync::Mutex::new(None),
            paths,
        });
        let svc = Arc::clone(self);
        let sid = id.to_string();
        *sb.watcher.lock().expect("watcher lock") = Some(tokio::spawn(async move {
            match exited(shim_pid).await {
                Ok(()) => tracing::info!(sandbox = sid, shim_pid, "Kata shim exited"),
                Err(e) => {
                    tracing::warn!(sandbox = sid, shim_pid, error = %e, "cannot watch the Kata shim; stopping its VM")
                }
            }
            // Spawned: stop() aborts this watcher, which must not cut the
            // teardown short.
            tokio::spawn(async move { svc.stop_vm(&sid).await });
        }));
        tracing::info!(
            sandbox = id,
            shim_pid,
            memory_mib = sb.shape.memory_mib,
            vcpus = sb.shape.vcpus,
            "CreateVM"
        );
        let agent = sb.paths.agent.to_string_lossy().into_owned();
        all.insert(id.to_string(), sb);
        Ok(agent)
    }

    /// StartVM: boots the guest and returns once its agent answers.
    pub async fn start_vm(self: &Arc<Self>, id: &str) -> Result<()> {
        let sb = self
            .sandboxes
            .lock()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("sandbox {id}: StartVM without CreateVM")))?;
        let mut vm = sb.vm.lock().await;
        if vm.is_some() {
            return Ok(());
        }
        tracing::info!(sandbox = id, "StartVM");
        // A StopVM (or the shim's death) during the boot ends it: dropping
        // the boot kills what it started.
        let mut gone = sb.guest.subscribe();
        let booted = tokio::select! {
            r = Vm::boot(&self.opts, id, &sb.paths, &sb.shape, sb.shim_pid) => r,
            _ = gone.wait_for(|g| *g == Guest::Gone) => Err(Error::VmFailed(format!(
                "sandbox {id}: stopped while its VM was booting"
            ))),
        };
        match booted {
            Ok(v) => {
                *vm = Some(v);
                let _ = sb.guest.send(Guest::Up);
                Ok(())
            }
            Err(e) => {
                tracing::error!(sandbox = id, error = %e, "StartVM failed");
                let _ = sb.guest.send(Guest::Gone);
                Err(e)
            }
        }
    }

    /// StopVM (also when the shim dies): the VM, its daemons, its agent
    /// socket and directory. Unknown sandboxes are already stopped.
    pub async fn stop_vm(&self, id: &str) {
        let Some(sb) = self.sandboxes.lock().await.remove(id) else {
            return;
        };
        tracing::info!(sandbox = id, "stopping the VM");
        let _ = sb.guest.send(Guest::Gone);
        drop(sb.bridge.lock().expect("bridge lock").take());
        if let Some(w) = sb.watcher.lock().expect("watcher lock").take() {
            w.abort();
        }
        if let Some(mut v) = sb.vm.lock().await.take() {
            v.stop().await;
        }
        if let Err(e) = std::fs::remove_dir_all(&sb.paths.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(sandbox = sb.id, error = %e, "cannot remove {}", sb.paths.dir.display());
            }
        }
    }

    /// Every sandbox (the service is going away).
    pub async fn stop_all(&self) {
        let ids: Vec<String> = self.sandboxes.lock().await.keys().cloned().collect();
        for id in ids {
            self.stop_vm(&id).await;
        }
    }

    #[cfg(test)]
    pub async fn sandboxes(&self) -> Vec<String> {
        self.sandboxes.lock().await.keys().cloned().collect()
    }
}

/// Returns when process `pid` has exited (at once if it is gone already).
async fn exited(pid: u32) -> io::Result<()> {
    // SAFETY: pidfd_open(2) with no flags; the fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        // No pidfd (old kernel): poll.
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        return Ok(());
    }
    // SAFETY: a new fd returned by the kernel, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd is moved into the AsyncFd and stays open and the
    // same until it is dropped.
    let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let _ready = afd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::options::{parse, Mode};

    fn service(state: &std::path::Path) -> Arc<Service> {
        let args = [
            "--kernel",
            "/nonexistent/vmlinuz",
            "--initrd",
            "/nonexistent/initrd",
            "--state-dir",
            &state.to_string_lossy(),
            "--shared-root",
            "/nonexistent/sandboxes",
        ];
        match parse(args.iter().map(|s| s.to_string())).unwrap() {
            Mode::Serve(o) => Service::new(*o),
            Mode::Help => unreachable!(),
        }
    }

    #[tokio::test]
    async fn create_then_stop_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let svc = service(d.path());
        let me = std::process::id();
        let agent = svc
            .create_vm(Some(me), "sb1", &HashMap::new())
            .await
            .unwrap();
        assert_eq!(PathBuf::from(&agent), d.path().join("sb1/agent.sock"));
        assert!(PathBuf::from(&agent).exists());
        let e = svc
            .create_vm(Some(me), "sb1", &HashMap::new())
            .await
            .unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::ALREADY_EXISTS);
        svc.stop_vm("sb1").await;
        assert!(!d.path().join("sb1").exists());
        assert!(svc.sandboxes().await.is_empty());
        // again: already stopped
        svc.stop_vm("sb1").await;
    }

    #[tokio::test]
    async fn start_without_create_or_without_the_shims_share_fails_clearly() {
        let d = tempfile::tempdir().unwrap();
        let svc = service(d.path());
        let e = svc.start_vm("nope").await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::NOT_FOUND);
        svc.create_vm(Some(std::process::id()), "sb2", &HashMap::new())
            .await
            .unwrap();
        let e = svc.start_vm("sb2").await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::UNAVAILABLE);
        assert!(
            e.to_string()
                .contains("has no /nonexistent/sandboxes/sb2/mounts"),
            "{e}"
        );
        svc.stop_all().await;
        assert!(!d.path().join("sb2").exists());
    }

    #[tokio::test]
    async fn a_dead_shim_stops_its_sandbox() {
        let d = tempfile::tempdir().unwrap();
        let svc = service(d.path());
        let mut shim = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        svc.create_vm(Some(shim.id()), "sb3", &HashMap::new())
            .await
            .unwrap();
        shim.wait().unwrap();
        for _ in 0..100 {
            if svc.sandboxes().await.is_empty() && !d.path().join("sb3").exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sandbox sb3 still there after its shim exited");
    }

    #[tokio::test]
    async fn no_peer_pid_no_vm() {
        let d = tempfile::tempdir().unwrap();
        let e = service(d.path())
            .create_vm(None, "sb4", &HashMap::new())
            .await
            .unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT);
    }
}
