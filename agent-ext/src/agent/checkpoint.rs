//! `Checkpoint`: dump a container's workload into a private directory of
//! its rootfs (`<rootfs>/.kata-cr-<random>`, see [`super::images`]).
//!
//! Only the workload subtree is dumped (the init stays out: it cannot be
//! restored into an existing pid namespace, and the restoring container
//! brings its own). criu runs as a process of the container's pid namespace
//! (as restore does), so that namespace is criu's own and needs no image;
//! the network namespace when it is not the daemon's, and the root mount,
//! are external. The uts and ipc namespaces are dumped as runc dumps them
//! (`utsns-*.img`, `ipcns-*.img`): a restore writes them back into the
//! restoring container's own. The image set thus has runc's files. The engine has
//! normally frozen the container's cgroup before calling: criu then seizes
//! the frozen tasks (`--freeze-cgroup`) and leaves the cgroup frozen. After
//! the dump, successful or not, the freezer state is the one found before.
//!
//! criu runs under the daemon's guard ([`super::guard`]) when the cgroup
//! was frozen: should the daemon die mid-dump, criu dies and the cgroup is
//! frozen again, as the engine expects before it resumes the task.
//!
//! A shell that spawns commands is now and then frozen by the engine's
//! pause between vfork and exec, which criu cannot dump ("Unseizable
//! non-zombie ... state D"); the dump is then tried again (up to
//! [`DUMP_ATTEMPTS`] times) after letting the cgroup run a moment.
//!
//! A dump has a time limit ([`super::restore::criu_limit`] of the daemon's
//! `--dump-timeout` and the caller's deadline) and criu writes no file
//! larger than `--max-image-file-bytes`. After the dump, successful or
//! not, killed or not, the freezer state is the one found before and the
//! workload runs on (criu's `--leave-running`, or killed by criu only
//! after a successful dump when the caller asked for that). On failure the
//! image directory is removed; on success it is recorded as handed over
//! until the proxy has moved the files out and calls `ReleaseImages`.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cgroup::{self, Freezer, State};
use super::container::{self, Container};
use super::criu::{self, ChildSetup, DumpArgs};
use super::error::{Error, Result};
use super::images::{self, ImageDir};
use super::limits;
use super::restore::criu_limit;
use super::spec;
use super::workdir::Op;
use super::Daemon;
use crate::api::{CheckpointRequest, CheckpointResponse};

/// Name of criu's log in the operation's work directory.
pub const LOG_NAME: &str = "dump.log";
/// Default limit of a criu dump (`kata-cr-agent --dump-timeout`).
pub const DEFAULT_CRIU_LIMIT: Duration = Duration::from_secs(120);

/// Checks the request fields that need no system access.
pub fn validate(req: &CheckpointRequest) -> Result<()> {
    if req.container_id.is_empty() {
        return Err(Error::InvalidArgument("container_id is empty".into()));
    }
    if !Path::new(&req.rootfs).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "rootfs {:?} is not an absolute path",
            req.rootfs
        )));
    }
    if !req.image_dir.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "image_dir {:?}: since API 3 kata-cr-agent names the image directory itself \
             (CheckpointResponse.image_dir); leave it empty",
            req.image_dir
        )));
    }
    Ok(())
}

/// Performs a checkpoint (see the module documentation). `rpc_timeout`:
/// the caller's deadline, if it sent one.
pub async fn checkpoint(
    daemon: &Daemon,
    req: CheckpointRequest,
    rpc_timeout: Option<Duration>,
) -> Result<CheckpointResponse> {
    let started = Instant::now();
    validate(&req)?;
    let rootfs = PathBuf::from(&req.rootfs);
    let _busy = daemon
        .busy
        .enter(&req.container_id, &rootfs, "checkpoint")?;

    let proc = daemon.proc_root.as_path();
    let c = container::find(proc, &rootfs)?;
    tracing::info!(id = %req.container_id, init = c.init, workload = c.workload, "checkpoint: found the container");
    // Refused before anything is touched (the engine resumes the task it
    // paused): a checkpoint kata-cr could not restore is no checkpoint.
    if let Some(why) = container::shared_pidns(proc, c.init, &req.container_id) {
        tracing::info!(id = %req.container_id, init = c.init, "checkpoint refused: the container shares a pid namespace");
        return Err(Error::FailedPrecondition(why));
    }
    for r in daemon.work.sweep() {
        tracing::warn!(rootfs = %r.rootfs.display(), name = %r.name, "removed an image directory nobody came for");
    }

    let op = daemon.work.begin("checkpoint", &req.container_id)?;
    let log_path = op.dir().join(LOG_NAME);

    let freezer = cgroup::freezer_of(proc, c.workload)?;
    let before = freezer.as_ref().map(Freezer::state).transpose()?;
    let frozen = match (&freezer, before) {
        (Some(f), Some(State::Frozen)) => Some(f),
        _ => None,
    };
    let limit = criu_limit(daemon.dump_limit, rpc_timeout);
    let deadline = Instant::now() + limit;
    let mut attempt = 1;
    let result = loop {
        let r = attempt_dump(daemon, &req, &op, &c, frozen, deadline).await;
        match r {
            Err(Error::FailedPrecondition(msg))
                if attempt < DUMP_ATTEMPTS && frozen.is_some() && caught_in_vfork(&msg) =>
            {
                tracing::warn!(id = %req.container_id, attempt, "checkpoint: the engine froze a task between vfork and exec; letting it run a moment and dumping again");
                if let Some(f) = frozen {
                    refreeze(f).await;
                }
                attempt += 1;
            }
            r => break r,
        }
    };
    let freezer_note = put_back_freezer(freezer.as_ref(), before);
    let (images, files) = match result {
        Ok(done) => done,
        Err(e) => {
            let e = match e {
                Error::FailedPrecondition(mut msg) => {
                    msg.push_str(&format!(
                        "\n{}",
                        state_note(proc, &c, freezer.as_ref(), &freezer_note)
                    ));
                    Error::FailedPrecondition(msg)
                }
                e => e,
            };
            tracing::warn!(id = %req.container_id, log = %log_path.display(), "checkpoint failed");
            return Err(e);
        }
    };
    if let Err(e) = op.record_image_dir(&rootfs, images.name(), true) {
        discard(&op, images);
        return Err(e);
    }
    if !req.leave_running {
        end_workload(proc, &c, freezer.as_ref());
    }
    let mut resp = CheckpointResponse::new();
    resp.image_dir = images.name().to_string();
    resp.image_dir_path = images.path().to_string_lossy().into_owned();
    resp.files = files;
    resp.criu_log_path = log_path.to_string_lossy().into_owned();
    resp.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        id = %req.container_id,
        images = %resp.image_dir_path,
        files = resp.files.len(),
        ms = resp.duration_ms,
        "checkpoint done"
    );
    Ok(resp)
}

/// How many times a dump is tried when criu meets a task frozen in vfork.
const DUMP_ATTEMPTS: u32 = 3;

/// Whether criu failed because a task of the frozen cgroup sat between
/// vfork and exec: the parent waits uninterruptibly for a child criu has
/// seized, and criu gives up on it ("Unseizable non-zombie ... state D").
/// A race with the engine's pause (a shell that spawns commands loses it
/// now and then, under runc as under kata-cr): letting the cgroup run a
/// moment and freezing it again moves the task past it.
pub fn caught_in_vfork(message: &str) -> bool {
    message.contains("Unseizable non-zombie") && message.contains("state D")
}

/// Thaws `f` for a moment and freezes it again (waits until it is).
async fn refreeze(f: &Freezer) {
    let _ = f.set_state(State::Thawed);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = f.set_state(State::Frozen);
    for _ in 0..200 {
        if matches!(f.state(), Ok(State::Frozen)) && !f.freezing() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One dump into a new image directory: on failure the directory is gone.
async fn attempt_dump(
    daemon: &Daemon,
    req: &CheckpointRequest,
    op: &Op,
    c: &Container,
    frozen: Option<&Freezer>,
    deadline: Instant,
) -> Result<(ImageDir, Vec<String>)> {
    let proc = daemon.proc_root.as_path();
    let rootfs = Path::new(&req.rootfs);
    let (pidns, external_netns) = namespaces(proc, c)?;
    // the workload as criu sees it from inside the container's pid namespace
    let pid = match &pidns {
        Some(_) => container::ns_pid(proc, c.workload).ok_or_else(|| {
            Error::NotFound(format!(
                "the workload (pid {}) of container {} is gone",
                c.workload, req.container_id
            ))
        })?,
        None => c.workload,
    };
    let images = ImageDir::create_private(rootfs)?;
    if let Err(e) = op.record_image_dir(rootfs, images.name(), false) {
        discard(op, images);
        return Err(e);
    }
    let setup = DumpSetup {
        pid,
        pidns,
        external_netns,
        freeze_cgroup: frozen.map(|f| f.dir().to_path_buf()),
        limit: deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1)),
        // criu thaws the cgroup while it works: should the daemon die
        // meanwhile, its guard freezes it again.
        on_loss: frozen.map(|f| {
            let (file, value) = f.state_file(State::Frozen);
            super::guard::OnLoss {
                file,
                value: value.to_string(),
            }
        }),
    };
    match dump(daemon, req, op, c, &images, setup).await {
        Ok(files) => Ok((images, files)),
        Err(e) => {
            discard(op, images);
            Err(e)
        }
    }
}

/// What [`dump`] needs beside the request.
struct DumpSetup {
    /// The workload's pid in its own pid namespace (criu's).
    pid: i32,
    pidns: Option<File>,
    external_netns: Option<u64>,
    freeze_cgroup: Option<PathBuf>,
    limit: Duration,
    on_loss: Option<super::guard::OnLoss>,
}

/// Runs criu dump into `images` and completes the set; its file names.
async fn dump(
    daemon: &Daemon,
    req: &CheckpointRequest,
    op: &Op,
    c: &Container,
    images: &ImageDir,
    setup: DumpSetup,
) -> Result<Vec<String>> {
    let proc = daemon.proc_root.as_path();
    let rootfs = Path::new(&req.rootfs);
    let log_path = op.dir().join(LOG_NAME);
    let args = DumpArgs {
        pid: setup.pid,
        images_dir: images::proc_fd_path(images.fd()),
        work_dir: op.dir().to_path_buf(),
        log_file: log_path.clone(),
        external_pidns: None,
        external_netns: setup.external_netns,
        freeze_cgroup: setup.freeze_cgroup,
        // Inside the container's pid namespace criu must not end the
        // workload itself: the init then exits, and the kernel kills every
        // process of the namespace, criu too, before it has finished. The
        // daemon ends it after a successful dump instead.
        leave_running: req.leave_running || setup.pidns.is_some(),
        tcp_established: req.tcp_established,
        file_locks: req.file_locks,
        ext_unix_sk: req.ext_unix_sk,
        bind_mounts: spec::bind_mounts(rootfs)
            .into_iter()
            .map(|m| m.destination)
            .chain(spec::cgroup_mountpoints(proc, c.workload))
            .collect(),
    }
    .args();
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = format!("{} {}", daemon.criu.path().display(), shown.join(" "));
    tracing::info!(id = %req.container_id, %command, limit_s = setup.limit.as_secs(), "checkpoint: running criu");
    // Best effort: the command line beside the log, for whoever reads it.
    let _ = std::fs::write(op.dir().join("command"), format!("{command}\n"));

    let outcome = daemon
        .criu
        .run(
            &args,
            ChildSetup {
                keep_fds: vec![images.fd()],
                pidns: setup.pidns.as_ref().map(|f| f.as_fd()),
                limit: Some(setup.limit),
                max_file_size: Some(daemon.limits.file),
                guard: setup.on_loss,
                ..Default::default()
            },
        )
        .await?;
    if !outcome.stderr.trim().is_empty() {
        let _ = std::fs::write(op.dir().join("criu.stderr"), &outcome.stderr);
    }
    if !outcome.status.success() || outcome.timed_out.is_some() {
        let log = criu::CriuLog::read(&log_path);
        let mut msg = criu::failure_message("criu dump", &outcome, &log, &log_path);
        // Killed by SIGXFSZ, directly or as the guard reports it.
        let xfsz = std::os::unix::process::ExitStatusExt::signal(&outcome.status)
            == Some(libc::SIGXFSZ)
            || outcome.status.code() == Some(128 + libc::SIGXFSZ);
        if xfsz {
            msg.push_str(&format!(
                "\ncriu wrote an image file larger than {} (--max-image-file-bytes)",
                limits::show(daemon.limits.file)
            ));
        }
        return Err(Error::FailedPrecondition(msg));
    }
    // criu's log and statistics travel with the image set (the only way out
    // of a guest); the proxy moves them where runc's criu writes them (its
    // work directory: the CRI archive's top level), out of the image set.
    for (name, src) in [
        (LOG_NAME, log_path.clone()),
        ("stats-dump", op.dir().join("stats-dump")),
    ] {
        if src.exists() {
            images.add_file(name, &src, daemon.limits.metadata)?;
        }
    }
    // Where the workload's stdio pointed (runc keeps the same record): a
    // restore hands the new container's stdio to criu in their place.
    images.add_bytes(
        spec::DESCRIPTORS,
        spec::stdio_of(proc, c.workload).as_bytes(),
    )?;
    let listing = images.listing()?;
    daemon.limits.check_set(
        &format!("the dump of {}", req.container_id),
        listing.iter().map(|(n, s)| (n.as_str(), *s)),
    )?;
    images.list_files(!req.skip_sync)
}

type Namespaces = (Option<File>, Option<u64>);

/// The container's pid namespace when it is not the daemon's own (criu runs
/// inside it), and the inode of its network namespace when that is not the
/// daemon's own (external).
fn namespaces(proc: &Path, c: &Container) -> Result<Namespaces> {
    let init = c.init.to_string();
    let differs = |kind: &str| -> Result<Option<u64>> {
        let theirs = container::ns_inode(proc, &init, kind)?;
        let ours = container::ns_inode(proc, "self", kind)?;
        Ok((theirs != ours).then_some(theirs))
    };
    let pidns = match differs("pid")? {
        Some(_) => {
            let path = container::ns_path(proc, &init, "pid");
            Some(File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?)
        }
        None => None,
    };
    Ok((pidns, differs("net")?))
}

/// Ends the workload after a dump the caller asked to stop it (`--exit`),
/// as criu ends it when it runs outside the container: every process of the
/// container's pid namespace but its init (which then exits with the
/// workload's status), and the cgroup thawed so that they die now.
fn end_workload(proc: &Path, c: &Container, freezer: Option<&Freezer>) {
    let own = container::ns_inode(proc, "self", "pid").ok();
    let theirs = container::ns_inode(proc, &c.init.to_string(), "pid").ok();
    let victims = if theirs.is_some() && theirs != own {
        container::pidns_members(proc, c.init)
    } else {
        vec![c.workload]
    };
    for pid in victims {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    if let Some(f) = freezer {
        if let Err(e) = f.set_state(State::Thawed) {
            tracing::warn!(cgroup = %f.dir().display(), error = %e, "checkpoint --exit: cannot thaw the killed workload");
        }
    }
}

/// Puts the freezer back into the state it had before criu ran; returns a
/// note on what was found.
fn put_back_freezer(freezer: Option<&Freezer>, before: Option<State>) -> String {
    let (Some(f), Some(before)) = (freezer, before) else {
        return "no freezer cgroup".into();
    };
    match f.state() {
        Ok(now) if now == before => format!("freezer {before:?} as before"),
        Ok(now) => {
            tracing::warn!(cgroup = %f.dir().display(), ?before, ?now, "criu changed the freezer state: putting it back");
            match f.set_state(before) {
                Ok(()) => format!("freezer was {now:?} after criu, put back to {before:?}"),
                Err(e) => format!("freezer is {now:?}, could not put it back to {before:?}: {e}"),
            }
        }
        Err(e) => format!("freezer state unreadable: {e}"),
    }
}

/// One line on the container's state after a failure.
fn state_note(proc: &Path, c: &Container, freezer: Option<&Freezer>, freezer_note: &str) -> String {
    let alive = |pid| {
        if container::is_alive(proc, pid) {
            "running"
        } else {
            "GONE"
        }
    };
    let state = freezer
        .and_then(|f| f.state().ok())
        .map(|s| format!(" ({s:?})"))
        .unwrap_or_default();
    format!(
        "container: init pid {} {}, workload pid {} {}; {freezer_note}{state}; partial images removed",
        c.init,
        alive(c.init),
        c.workload,
        alive(c.workload)
    )
}

/// Removes a failed image directory (and its record), logging (not
/// returning) a failure to.
fn discard(op: &Op, images: ImageDir) {
    let path = images.path().to_path_buf();
    match images.remove() {
        Ok(()) => op.forget_image_dir(),
        Err(e) => {
            tracing::error!(images = %path.display(), error = %e, "cannot remove the partial image directory (left to the sweep)")
        }
    }
}

/// Removes the image directory of a checkpoint whose reply nobody was
/// waiting for any more (the caller's connection went away).
pub fn abandon(daemon: &Daemon, rootfs: &Path, resp: &CheckpointResponse) {
    match ImageDir::release(rootfs, &resp.image_dir) {
        Ok(_) => daemon.work.forget(&resp.image_dir),
        Err(e) => {
            tracing::error!(images = %resp.image_dir_path, error = %e, "cannot remove an abandoned image directory (left to the sweep)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CheckpointRequest {
        let mut r = CheckpointRequest::new();
        r.container_id = "c1".into();
        r.rootfs = "/run/c1/rootfs".into();
        r
    }

    #[test]
    fn a_task_caught_in_vfork_is_recognised_from_criu_s_log() {
        let log = "(10.002203) Error (criu/cr-dump.c:1655): Timeout reached. Try to interrupt: 0\n\
                   (10.002324) Error (compel/src/lib/infect.c:262): Unseizable non-zombie 4804 found, state D, err -1/4";
        assert!(caught_in_vfork(log));
        assert!(!caught_in_vfork(
            "Error (criu/sk-inet.c:1): Connected TCP socket"
        ));
    }

    #[test]
    fn validation() {
        validate(&req()).unwrap();
        for (field, value) in [
            ("id", ""),
            ("rootfs", "rel/rootfs"),
            ("rootfs", ""),
            ("image_dir", "../x"),
            ("image_dir", "ckpt-1"),
        ] {
            let mut r = req();
            match field {
                "id" => r.container_id = value.into(),
                "rootfs" => r.rootfs = value.into(),
                _ => r.image_dir = value.into(),
            }
            assert!(
                matches!(validate(&r), Err(Error::InvalidArgument(_))),
                "{field}={value:?}"
            );
        }
    }
}
