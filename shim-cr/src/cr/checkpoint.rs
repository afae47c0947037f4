//! Checkpoint of a kata-cr container. The engine has paused the task; the
//! agent dumps the workload subtree (kata-cr-init's child) into a private
//! directory of the rootfs it names itself (`<rootfs>/.kata-cr-<hex>/`),
//! which reaches this host through the rootfs's upperdir, from where the
//! image set is moved flat into the request's path; then the agent removes
//! the emptied directory through its view of the rootfs (`ReleaseImages`).
//! On any failure nothing is left in the request's path or the rootfs; the
//! agent leaves the workload running in the freezer state it found.

use std::path::{Path, PathBuf};

use containerd_shim_protos::api::CheckpointTaskRequest;
use containerd_shim_protos::shim::oci::CheckpointOptions;
use kata_cr_api as api;
use protobuf::Message;

use crate::config::Criu;
use crate::cr::agent::AgentBackend;
use crate::cr::container::{check_id, Container};
use crate::cr::staging::{self, Staged};
use crate::error::{Error, Op, Result};

/// What the checkpoint asks of criu: the request's runc `CheckpointOptions`
/// (what containerd's runc shim hands to runc), each criu option OR-ed with
/// kata-cr's `[criu]` settings as runc's criu config file would be. CRI sends
/// no options: leave running, and only the configured criu options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub exit: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub file_locks: bool,
}

pub fn wanted(req: &CheckpointTaskRequest, defaults: &Criu) -> Result<Wanted> {
    let o = match req.options.as_ref() {
        None => CheckpointOptions::new(),
        Some(any) if any.type_url.ends_with("CheckpointOptions") => {
            CheckpointOptions::parse_from_bytes(&any.value)?
        }
        Some(any) => {
            return Err(Error::InvalidArgument(format!(
                "checkpoint options of type {} are not understood (want containerd.runc.v1.CheckpointOptions)",
                any.type_url
            )))
        }
    };
    Ok(Wanted {
        exit: o.exit,
        tcp_established: o.open_tcp || defaults.tcp_established,
        ext_unix_sk: o.external_unix_sockets || defaults.ext_unix_sk,
        file_locks: o.file_locks || defaults.file_locks,
    })
}

/// Checkpoints `c` (a container whose init is kata-cr-init) as `req` asks.
pub async fn checkpoint(
    backend: &AgentBackend,
    c: &Container,
    defaults: &Criu,
    req: &CheckpointTaskRequest,
) -> Result<()> {
    let id = c.id.as_str();
    let want = wanted(req, defaults)?;
    if req.path.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "checkpoint of {id}: empty image path"
        )));
    }
    let dest = PathBuf::from(&req.path);
    let upper = backend.host_upper(c).ok_or_else(|| Error::NotStageable {
        op: Op::Checkpoint,
        id: id.to_string(),
    })?;
    let mkdir = dest.clone();
    crate::blocking::run("create the image path", move || {
        std::fs::create_dir_all(&mkdir)
            .map_err(|e| Error::io(format!("create {}", mkdir.display()), e))
    })
    .await?;

    let t0 = std::time::Instant::now();
    let (dumped, staged, dump_ms) = dump_and_stage(backend, c, want, &upper, &dest).await?;
    if req.options.is_none() {
        let (cid, upper, images) = (id.to_string(), c.upperdir.clone(), dest.clone());
        crate::blocking::run("copy criu's metadata for CRI", move || {
            leave_criu_metadata_for_cri(&cid, upper.as_deref(), &images);
            Ok(())
        })
        .await?;
    }
    tracing::info!(
        id,
        files = staged.files.len(),
        bytes = staged.bytes,
        method = ?staged.method,
        dump_ms,
        stage_ms = t0.elapsed().as_millis() - dump_ms,
        criu_log = %dumped.criu_log_path,
        dest = %dest.display(),
        "checkpoint done"
    );
    Ok(())
}

/// Has the agent dump `c` into its rootfs and moves the image set from the
/// host side of the rootfs (`upper`) flat into `dest`; on failure nothing
/// is left in either. Returns the agent's answer, what was staged and the
/// dump's duration in milliseconds.
pub async fn dump_and_stage(
    backend: &AgentBackend,
    c: &Container,
    want: Wanted,
    upper: &Path,
    dest: &Path,
) -> Result<(api::CheckpointResponse, Staged, u128)> {
    let id = c.id.as_str();
    let mut ck = api::CheckpointRequest::new();
    ck.container_id = id.to_string();
    ck.rootfs = backend.agent_rootfs(c).display().to_string();
    ck.leave_running = !want.exit;
    ck.tcp_established = want.tcp_established;
    ck.file_locks = want.file_locks;
    ck.ext_unix_sk = want.ext_unix_sk;
    ck.skip_sync = backend.same_kernel();

    let client = backend.connect().await?;
    let t0 = std::time::Instant::now();
    let dumped = client
        .checkpoint(api::context_with_timeout(backend.timeout), &ck)
        .await
        .map_err(|e| Error::from_agent(Op::Checkpoint, id, e));
    // A failed dump leaves nothing: the agent removed its directory.
    let dumped = dumped?;
    let dump_ms = t0.elapsed().as_millis();
    let name = dumped.image_dir.clone();
    if !staging::is_private(&name) {
        return Err(Error::InvalidArgument(format!(
            "checkpoint of {id}: kata-cr-agent named no private image directory ({name:?}): \
             an agent older than API 3?"
        )));
    }
    let staged = stage(upper.to_path_buf(), name.clone(), dest.to_path_buf())
        .await
        .map_err(|e| e.context(format!("checkpoint of container {id}")));
    // The emptied (or, on failure, partly moved) directory goes away
    // through the agent's view of the rootfs.
    release(&client, backend, id, &ck.rootfs, name).await;
    Ok((dumped, staged?, dump_ms))
}

/// Has the agent remove its image directory `name` (best effort: the agent
/// removes what is not claimed after a grace period anyway).
async fn release(
    client: &api::AgentClient,
    backend: &AgentBackend,
    id: &str,
    rootfs: &str,
    name: String,
) {
    let mut rel = api::ReleaseImagesRequest::new();
    rel.container_id = id.to_string();
    rel.rootfs = rootfs.to_string();
    rel.image_dir = name;
    if let Err(e) = client
        .release_images(api::context_with_timeout(backend.timeout), &rel)
        .await
    {
        tracing::warn!(id, error = %e, dir = %rel.image_dir, "checkpoint: the agent could not remove its image directory (it will after its grace period)");
    }
}

/// criu's log and statistics, for checkpointctl. containerd 2.1.0-2.1.8,
/// 2.2.0-2.2.4 and 2.3.0-2.3.1 copy them into the CRI archive from the CRI
/// container directory (and fail without `stats-dump` there); later versions
/// have runc's criu write them into the archive directory directly and give
/// other runtimes no path for them. That directory sits under containerd's
/// root, which the snapshotter's upperdir
/// (`<root>/io.containerd.snapshotter.v1.<name>/snapshots/<n>/fs`) names.
/// Best effort: the archive is valid without them on the versions that
/// tolerate their absence.
fn leave_criu_metadata_for_cri(id: &str, upper: Option<&Path>, images: &Path) {
    let Some(cri_dir) = upper.and_then(|u| cri_container_dir(u, id)) else {
        return;
    };
    for name in ["dump.log", "stats-dump"] {
        let src = images.join(name);
        if src.is_file() {
            if let Err(e) = std::fs::copy(&src, cri_dir.join(name)) {
                tracing::warn!(id, file = name, error = %e, "cannot leave criu metadata for CRI");
            }
        }
    }
}

pub fn cri_container_dir(upper: &Path, id: &str) -> Option<PathBuf> {
    let snapshots = upper.parent()?.parent()?;
    let plugin = snapshots.parent()?;
    let is_snapshotter = snapshots.file_name()? == "snapshots"
        && plugin
            .file_name()?
            .to_str()?
            .starts_with("io.containerd.snapshotter.v1.");
    let dir = plugin
        .parent()?
        .join("io.containerd.grpc.v1.cri/containers")
        .join(id);
    (is_snapshotter && check_id("container", id).is_ok() && dir.is_dir()).then_some(dir)
}

async fn stage(upper: PathBuf, name: String, dest: PathBuf) -> Result<staging::Staged> {
    crate::blocking::run("stage the image set out", move || {
        staging::stage_out(&upper, &name, &dest)
    })
    .await
}

#[cfg(test)]
mod tests {
    use protobuf::well_known_types::any::Any;

    use super::*;

    fn with_options(o: &CheckpointOptions) -> CheckpointTaskRequest {
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.CheckpointOptions".into();
        any.value = o.write_to_bytes().unwrap();
        let mut req = CheckpointTaskRequest::new();
        req.options = protobuf::MessageField::some(any);
        req
    }

    #[test]
    fn options_decide_exit_and_criu_options() {
        let none = Criu::default();
        let req = CheckpointTaskRequest::new();
        assert_eq!(
            wanted(&req, &none).unwrap(),
            Wanted {
                exit: false,
                tcp_established: false,
                ext_unix_sk: false,
                file_locks: false
            },
            "CRI: no options, runc's defaults"
        );
        let mut o = CheckpointOptions::new();
        o.exit = true;
        o.open_tcp = true;
        let w = wanted(&with_options(&o), &none).unwrap();
        assert!(w.exit && w.tcp_established && !w.ext_unix_sk && !w.file_locks);
        o.open_tcp = false;
        o.external_unix_sockets = true;
        o.file_locks = true;
        let w = wanted(&with_options(&o), &none).unwrap();
        assert!(!w.tcp_established && w.ext_unix_sk && w.file_locks);

        let mut req = with_options(&CheckpointOptions::new());
        req.options.as_mut().unwrap().type_url = "example.com/Other".into();
        let e = wanted(&req, &none).unwrap_err();
        assert!(e.to_string().contains("example.com/Other"));
    }

    #[test]
    fn configured_criu_options_add_to_the_request() {
        let cfg = Criu {
            tcp_established: true,
            ..Criu::default()
        };
        // ctr sends every option false; the configuration still turns TCP on,
        // as runc's criu config file does for runc.
        let w = wanted(&with_options(&CheckpointOptions::new()), &cfg).unwrap();
        assert!(w.tcp_established && !w.file_locks && !w.exit);
        let w = wanted(&CheckpointTaskRequest::new(), &cfg).unwrap();
        assert!(w.tcp_established);
    }

    #[test]
    fn cri_dir_is_found_from_the_snapshotter_upperdir() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let upper = root.join("io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs");
        std::fs::create_dir_all(&upper).unwrap();
        assert_eq!(
            cri_container_dir(&upper, "c1"),
            None,
            "no CRI dir: not a CRI container"
        );
        let cri = root.join("io.containerd.grpc.v1.cri/containers/c1");
        std::fs::create_dir_all(&cri).unwrap();
        assert_eq!(cri_container_dir(&upper, "c1"), Some(cri));
        assert_eq!(cri_container_dir(&upper, "../c1"), None);
        assert_eq!(cri_container_dir(Path::new("/some/where/fs"), "c1"), None);
    }
}
