//! `kata-cr-agent`, the checkpoint daemon of kata-cr.
//!
//! It serves [`crate::api`] (`katacr.agent.v1.Agent`) over ttrpc, on a vsock
//! port in a Kata guest or a unix socket in host mode, and drives criu on
//! the containers it finds through `/proc`. One verb per file:
//! [`capabilities`], [`checkpoint`], [`restore`]; shared pieces: [`criu`] (running criu, its
//! arguments and log), [`container`] (finding a container's init and
//! workload), [`cgroup`] (the freezer), [`images`] (the image directory in
//! the rootfs, symlink-safe), [`workdir`] (per-operation logs), [`listen`]
//! (sockets), [`pidns`] (the helper that starts criu restore inside a
//! container's pid namespace), [`readonly_root`] (a read-only root stays
//! read-only across a restore), [`cli`] (command line, including the `ctl`
//! client).
//!
//! Operations on one container are serialized: a second one while the
//! first runs is refused with `ABORTED` ("... already in progress"), not
//! queued (the proxy decides whether to retry; a queued dump of a container
//! the engine may have resumed meanwhile would be a surprise).

pub mod capabilities;
pub mod cgroup;
pub mod checkpoint;
pub mod cli;
pub mod container;
pub mod criu;
pub mod criu_image;
pub mod criu_messages;
pub mod error;
pub mod grants;
pub mod guard;
pub mod image_claims;
pub mod images;
pub mod limits;
pub mod listen;
pub mod pidns;
pub mod readonly_root;
pub mod restore;
pub mod restore_checks;
pub mod rootfs_diff;
pub mod spec;
pub mod tar_reader;
pub mod tcp;
pub mod workdir;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use error::{Error, Result};

use crate::api;

/// Settings of the daemon.
#[derive(Debug, Clone)]
pub struct Config {
    /// criu executable.
    pub criu: PathBuf,
    /// Work directory (logs).
    pub work_dir: PathBuf,
    /// Operations whose work directories are kept.
    pub keep: usize,
    /// The proc filesystem to read (`/proc`).
    pub proc_root: PathBuf,
    /// How long a criu restore may run (see [`restore::criu_limit`]).
    pub restore_limit: std::time::Duration,
    /// How long a criu dump may run (the same rule).
    pub dump_limit: std::time::Duration,
    /// Size caps on image sets.
    pub limits: limits::Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            criu: PathBuf::from("criu"),
            work_dir: PathBuf::from(workdir::DEFAULT_WORK_DIR),
            keep: workdir::DEFAULT_KEEP,
            proc_root: PathBuf::from("/proc"),
            restore_limit: restore::DEFAULT_CRIU_LIMIT,
            dump_limit: checkpoint::DEFAULT_CRIU_LIMIT,
            limits: limits::Limits::default(),
        }
    }
}

/// The daemon's state, shared by every request.
#[derive(Debug)]
pub struct Daemon {
    criu: criu::Criu,
    work: workdir::WorkDir,
    proc_root: PathBuf,
    restore_limit: std::time::Duration,
    dump_limit: std::time::Duration,
    limits: limits::Limits,
    busy: Busy,
}

impl Daemon {
    /// Sets up the work directory, and removes the image directories of
    /// dumps a previous daemon did not finish (it was killed mid-dump).
    pub fn new(config: Config) -> Result<Self> {
        let work = workdir::WorkDir::new(config.work_dir, config.keep)?;
        for r in work.sweep() {
            tracing::warn!(rootfs = %r.rootfs.display(), name = %r.name, "removed the image directory of an unfinished dump");
        }
        Ok(Daemon {
            criu: criu::Criu::new(config.criu),
            work,
            proc_root: config.proc_root,
            restore_limit: config.restore_limit,
            dump_limit: config.dump_limit,
            limits: config.limits,
            busy: Busy::default(),
        })
    }
}

/// Containers with an operation in progress (by id and by rootfs).
#[derive(Debug, Default)]
struct Busy(Mutex<HashSet<String>>);

/// Marks a container busy until dropped.
struct BusyGuard<'a> {
    busy: &'a Busy,
    keys: [String; 2],
}

impl Busy {
    fn enter(&self, id: &str, rootfs: &Path, verb: &str) -> Result<BusyGuard<'_>> {
        let keys = [format!("id:{id}"), format!("rootfs:{}", rootfs.display())];
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if keys.iter().any(|k| set.contains(k)) {
            return Err(Error::Aborted(format!(
                "{verb} of {id}: an operation on this container ({}) is already in progress",
                rootfs.display()
            )));
        }
        for k in &keys {
            set.insert(k.clone());
        }
        Ok(BusyGuard { busy: self, keys })
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut set = self
            .busy
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for k in &self.keys {
            set.remove(k);
        }
    }
}

/// The ttrpc service: each method logs, runs its verb and converts the
/// error.
///
/// Checkpoint and Restore run in tasks of their own: ttrpc drops a
/// handler when the caller's connection goes away (a proxy killed, a
/// client deadline), and the work must then still finish and clean up (a
/// dump put the freezer back and removed its partial images, a restore
/// ended or killed the init). A checkpoint whose reply nobody receives
/// any more has its images removed at once.
pub struct Service {
    daemon: Arc<Daemon>,
}

impl Service {
    /// Serves `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Service { daemon }
    }
}

/// The caller's deadline, if it sent one.
fn deadline(ctx: &ttrpc::r#async::TtrpcContext) -> Option<std::time::Duration> {
    u64::try_from(ctx.timeout_nano)
        .ok()
        .filter(|&n| n > 0)
        .map(std::time::Duration::from_nanos)
}

fn log_failure(verb: &str, id: &str, e: Error) -> ttrpc::Error {
    tracing::warn!(%id, code = ?e.code(), error = %e, "{verb} failed");
    e.into()
}

fn task_lost(verb: &str, e: tokio::task::JoinError) -> ttrpc::Error {
    Error::io(format!("{verb} task"), std::io::Error::other(e.to_string())).into()
}

#[async_trait::async_trait]
impl api::Agent for Service {
    async fn capabilities(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: api::CapabilitiesRequest,
    ) -> ttrpc::Result<api::CapabilitiesResponse> {
        tracing::debug!("Capabilities");
        Ok(capabilities::capabilities(&self.daemon, req).await)
    }

    async fn checkpoint(
        &self,
        ctx: &ttrpc::r#async::TtrpcContext,
        req: api::CheckpointRequest,
    ) -> ttrpc::Result<api::CheckpointResponse> {
        tracing::info!(
            id = %req.container_id,
            rootfs = %req.rootfs,
            leave_running = req.leave_running,
            "Checkpoint"
        );
        let id = req.container_id.clone();
        let rootfs = PathBuf::from(&req.rootfs);
        let rpc = deadline(ctx);
        let daemon = self.daemon.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let r = checkpoint::checkpoint(&daemon, req, rpc).await;
            if let Err(Ok(resp)) = tx.send(r) {
                tracing::warn!(id = %resp.image_dir_path, "Checkpoint: the caller went away; removing its images");
                checkpoint::abandon(&daemon, &rootfs, &resp);
            }
        });
        match rx.await {
            Ok(r) => r.map_err(|e| log_failure("Checkpoint", &id, e)),
            Err(_) => Err(Error::io(
                "checkpoint task",
                std::io::Error::other("ended without an answer"),
            )
            .into()),
        }
    }

    async fn restore(
        &self,
        ctx: &ttrpc::r#async::TtrpcContext,
        req: api::RestoreRequest,
    ) -> ttrpc::Result<api::RestoreResponse> {
        tracing::info!(
            id = %req.container_id,
            rootfs = %req.rootfs,
            image_dir = %req.image_dir,
            "Restore"
        );
        let id = req.container_id.clone();
        let rpc = deadline(ctx);
        let daemon = self.daemon.clone();
        tokio::spawn(async move { restore::restore(&daemon, req, rpc).await })
            .await
            .map_err(|e| task_lost("Restore", e))?
            .map_err(|e| {
                if restore::caller_asks_again(&e) {
                    tracing::info!(%id, error = %e, "Restore: no kata-cr init waits there (yet); the proxy asks again while the container's process starts");
                    e.into()
                } else {
                    log_failure("Restore", &id, e)
                }
            })
    }

    async fn release_images(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: api::ReleaseImagesRequest,
    ) -> ttrpc::Result<api::ReleaseImagesResponse> {
        tracing::info!(id = %req.container_id, image_dir = %req.image_dir, "ReleaseImages");
        let id = req.container_id.clone();
        let daemon = self.daemon.clone();
        tokio::task::spawn_blocking(move || release_images(&daemon, &req))
            .await
            .map_err(|e| task_lost("ReleaseImages", e))?
            .map_err(|e| log_failure("ReleaseImages", &id, e))
    }
}

/// `ReleaseImages`: removes a checkpoint's image directory.
pub fn release_images(
    daemon: &Daemon,
    req: &api::ReleaseImagesRequest,
) -> Result<api::ReleaseImagesResponse> {
    let rootfs = Path::new(&req.rootfs);
    if !rootfs.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "rootfs {:?} is not an absolute path",
            req.rootfs
        )));
    }
    let removed = images::ImageDir::release(rootfs, &req.image_dir)?;
    daemon.work.forget(&req.image_dir);
    let mut resp = api::ReleaseImagesResponse::new();
    resp.removed = removed;
    Ok(resp)
}

/// Runs the daemon on `listen` until SIGTERM or SIGINT.
pub async fn serve(
    config: Config,
    listen: &listen::ListenAddr,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let daemon = Arc::new(Daemon::new(config)?);
    let bound = listen::bind(listen)?;
    let mut server = ttrpc::r#async::Server::new()
        .add_listener(bound.listener)
        .register_service(api::create_agent(Arc::new(Service::new(daemon.clone()))));
    server.start().await?;
    tracing::info!(listen = %listen, work_dir = %daemon.work.root().display(), criu = %daemon.criu.path().display(), "kata-cr-agent serving");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    if let Err(e) = server.shutdown().await {
        tracing::warn!(error = %e, "server shutdown");
    }
    drop(bound.cleanup);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_operation_on_a_busy_container_is_aborted_until_the_first_ends() {
        let busy = Busy::default();
        let g = busy.enter("c1", Path::new("/r1"), "checkpoint").unwrap();
        let err = busy
            .enter("c1", Path::new("/r1"), "checkpoint")
            .err()
            .unwrap();
        assert!(matches!(err, Error::Aborted(_)), "{err:?}");
        assert!(err.to_string().contains("already in progress"));
        // Same rootfs under another id: busy too. Another container: fine.
        assert!(busy.enter("other", Path::new("/r1"), "checkpoint").is_err());
        let g2 = busy.enter("c2", Path::new("/r2"), "checkpoint").unwrap();
        drop(g);
        busy.enter("c1", Path::new("/r1"), "checkpoint").unwrap();
        drop(g2);
    }
}
