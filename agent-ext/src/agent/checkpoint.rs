//! `Checkpoint`: dump a container's workload into
//! `<rootfs>/.kata-cr/<image_dir>/`.
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
//! On failure the partial image directory is removed.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cgroup::{self, Freezer, State};
use super::container::{self, Container};
use super::criu::{self, ChildSetup, DumpArgs};
use super::error::{Error, Result};
use super::images::{self, ImageDir};
use super::spec;
use super::Daemon;
use crate::api::{CheckpointRequest, CheckpointResponse};

/// Name of criu's log in the operation's work directory.
pub const LOG_NAME: &str = "dump.log";

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
    images::validate_name(&req.image_dir)
}

/// Performs a checkpoint (see the module documentation).
pub async fn checkpoint(daemon: &Daemon, req: CheckpointRequest) -> Result<CheckpointResponse> {
    let started = Instant::now();
    validate(&req)?;
    let rootfs = PathBuf::from(&req.rootfs);
    let _busy = daemon
        .busy
        .enter(&req.container_id, &rootfs, "checkpoint")?;

    let proc = daemon.proc_root.as_path();
    let c = container::find(proc, &rootfs)?;
    tracing::info!(id = %req.container_id, init = c.init, workload = c.workload, "checkpoint: found the container");

    let op_dir = daemon.work.begin("checkpoint", &req.container_id)?;
    let log_path = op_dir.join(LOG_NAME);

    let (pidns, external_netns) = namespaces(proc, &c)?;
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
    let freezer = cgroup::freezer_of(proc, c.workload)?;
    let before = freezer.as_ref().map(Freezer::state).transpose()?;
    let freeze_cgroup = match (&freezer, before) {
        (Some(f), Some(State::Frozen)) => Some(f.dir().to_path_buf()),
        _ => None,
    };

    let images = ImageDir::create(&rootfs, &req.image_dir)?;
    let args = DumpArgs {
        pid,
        images_dir: images::proc_fd_path(images.fd()),
        work_dir: op_dir.clone(),
        log_file: log_path.clone(),
        external_pidns: None,
        external_netns,
        freeze_cgroup,
        leave_running: req.leave_running,
        tcp_established: req.tcp_established,
        file_locks: req.file_locks,
        ext_unix_sk: req.ext_unix_sk,
        bind_mounts: spec::bind_mounts(&rootfs)
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
    tracing::info!(id = %req.container_id, %command, "checkpoint: running criu");
    // Best effort: the command line beside the log, for whoever reads it.
    let _ = std::fs::write(op_dir.join("command"), format!("{command}\n"));

    let outcome = daemon
        .criu
        .run(
            &args,
            ChildSetup {
                keep_fds: vec![images.fd()],
                pidns: pidns.as_ref().map(|f| f.as_fd()),
                ..Default::default()
            },
        )
        .await;
    let freezer_note = put_back_freezer(freezer.as_ref(), before);

    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            discard(images);
            return Err(e);
        }
    };
    if !outcome.stderr.trim().is_empty() {
        let _ = std::fs::write(op_dir.join("criu.stderr"), &outcome.stderr);
    }
    if !outcome.status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        discard(images);
        let mut msg = criu::failure_message("criu dump", &outcome, &log, &log_path);
        msg.push_str(&format!(
            "\n{}",
            state_note(proc, &c, freezer.as_ref(), &freezer_note)
        ));
        tracing::warn!(id = %req.container_id, log = %log_path.display(), "checkpoint failed");
        return Err(Error::FailedPrecondition(msg));
    }
    // criu's log and statistics travel with the image set (the only way out
    // of a guest); the proxy moves them where runc's criu writes them (its
    // work directory: the CRI archive's top level), out of the image set.
    for (name, src) in [
        (LOG_NAME, log_path.clone()),
        ("stats-dump", op_dir.join("stats-dump")),
    ] {
        if src.exists() {
            if let Err(e) = images.add_file(name, &src) {
                discard(images);
                return Err(e);
            }
        }
    }
    // Where the workload's stdio pointed (runc keeps the same record): a
    // restore hands the new container's stdio to criu in their place.
    let stdio = spec::stdio_of(proc, c.workload);
    if let Err(e) = images.add_bytes(spec::DESCRIPTORS, stdio.as_bytes()) {
        discard(images);
        return Err(e);
    }
    let files = match images.list_files(!req.skip_sync) {
        Ok(f) => f,
        Err(e) => {
            discard(images);
            return Err(e);
        }
    };
    let mut resp = CheckpointResponse::new();
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

/// Removes a failed image directory, logging (not returning) a failure to.
fn discard(images: ImageDir) {
    let path = images.path().to_path_buf();
    if let Err(e) = images.remove() {
        tracing::error!(images = %path.display(), error = %e, "cannot remove the partial image directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CheckpointRequest {
        let mut r = CheckpointRequest::new();
        r.container_id = "c1".into();
        r.rootfs = "/run/c1/rootfs".into();
        r.image_dir = "ckpt-1".into();
        r
    }

    #[test]
    fn validation() {
        validate(&req()).unwrap();
        for (field, value) in [
            ("id", ""),
            ("rootfs", "rel/rootfs"),
            ("rootfs", ""),
            ("image_dir", "../x"),
            ("image_dir", ""),
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
