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

/// Checkpoints `c` (a container whose init is kata-cr-init) as `req` asks;
/// returns what was asked (`exit`: the agent ended the workload).
pub async fn checkpoint(
    backend: &AgentBackend,
    c: &Container,
    defaults: &Criu,
    req: &CheckpointTaskRequest,
) -> Result<Wanted> {
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
    let (cid, req_c, upper_c, images) = (
        id.to_string(),
        req.clone(),
        c.upperdir.clone(),
        dest.clone(),
    );
    crate::blocking::run("place criu's metadata", move || {
        let home = criu_metadata_home(&req_c, upper_c.as_deref())?;
        place_criu_metadata(&cid, home.as_deref(), &images);
        Ok(())
    })
    .await?;
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
    Ok(want)
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

/// criu's log and statistics (`dump.log`, `stats-dump`): the agent brings
/// them back with the image set (the only way out of a guest), but runc's
/// criu writes them into its work directory, never among the images, and
/// tools expect them there: containerd puts runc's into the CRI archive's top
/// level, where checkpointctl reads them (`inspect --stats`), and counts
/// everything under `checkpoint/` as image size.
pub const CRIU_METADATA: [&str; 2] = ["dump.log", "stats-dump"];

/// Where runc's criu would have written [`CRIU_METADATA`] for this request:
/// - Tasks API (ctr): the options' `work_path`; without one runc uses a
///   temporary directory it removes, so nowhere (the agent keeps its own copy
///   of the log in its work directory).
/// - CRI (no options): containerd 2.1.9+, 2.2.5+ and 2.3.2+ hand runc the
///   archive directory `<CRI container dir>/ctrd-checkpoint`, made before the
///   checkpoint; earlier 2.x versions hand it the CRI container directory and
///   copy both files from there into the archive (2.1.0-2.1.8, 2.2.0-2.2.4
///   and 2.3.0-2.3.1 fail without `stats-dump`). That directory sits under
///   containerd's root, which the snapshotter's upperdir
///   (`<root>/io.containerd.snapshotter.v1.<name>/snapshots/<n>/fs`) names.
pub fn criu_metadata_home(
    req: &CheckpointTaskRequest,
    upper: Option<&Path>,
) -> Result<Option<PathBuf>> {
    let Some(any) = req.options.as_ref() else {
        return Ok(upper
            .and_then(|u| cri_container_dir(u, &req.id))
            .map(|dir| {
                let archive_dir = dir.join("ctrd-checkpoint");
                if archive_dir.is_dir() {
                    archive_dir
                } else {
                    dir
                }
            }));
    };
    // wanted() has refused options of any other type already
    let o = CheckpointOptions::parse_from_bytes(&any.value)?;
    if o.work_path.is_empty() {
        return Ok(None);
    }
    let dir = PathBuf::from(&o.work_path);
    if !dir.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "checkpoint of {}: work path {:?} is not absolute",
            req.id, o.work_path
        )));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("create work path {}", dir.display()), e))?;
    Ok(Some(dir))
}

/// Moves [`CRIU_METADATA`] out of the image set in `images` into `home`, or
/// drops them when there is none. Best effort past the image set: a file
/// that cannot be moved is logged, never left among the images.
pub fn place_criu_metadata(id: &str, home: Option<&Path>, images: &Path) {
    for name in CRIU_METADATA {
        let src = images.join(name);
        if !std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if let Some(dir) = home {
            let dst = dir.join(name);
            let moved = std::fs::rename(&src, &dst).or_else(|_| {
                let _ = std::fs::remove_file(&dst);
                std::fs::copy(&src, &dst).map(|_| ())
            });
            if let Err(e) = moved {
                tracing::warn!(id, file = name, dest = %dst.display(), error = %e, "cannot place criu's file where runc's would be");
            }
        }
        match std::fs::remove_file(&src) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(id, file = name, error = %e, "cannot remove criu's file from the image set")
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

    fn images_with_metadata(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for n in ["dump.log", "stats-dump", "pages-1.img", "inventory.img"] {
            std::fs::write(dir.join(n), n).unwrap();
        }
    }
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn criu_metadata_goes_where_runc_puts_it_never_among_the_images() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let upper = root.join("io.containerd.snapshotter.v1.overlayfs/snapshots/7/fs");
        std::fs::create_dir_all(&upper).unwrap();
        let cri = root.join("io.containerd.grpc.v1.cri/containers/c1");
        std::fs::create_dir_all(&cri).unwrap();
        let mut req = CheckpointTaskRequest::new();
        req.id = "c1".into();
        let images = root.join("images");

        // CRI, containerd before 2.1.9: the container directory
        images_with_metadata(&images);
        let home = criu_metadata_home(&req, Some(&upper)).unwrap();
        assert_eq!(home.as_deref(), Some(cri.as_path()));
        place_criu_metadata("c1", home.as_deref(), &images);
        assert_eq!(names(&images), ["inventory.img", "pages-1.img"]);
        assert_eq!(
            std::fs::read_to_string(cri.join("stats-dump")).unwrap(),
            "stats-dump"
        );

        // CRI, 2.1.9+: the archive directory containerd made for this checkpoint
        std::fs::create_dir(cri.join("ctrd-checkpoint")).unwrap();
        images_with_metadata(&images);
        let home = criu_metadata_home(&req, Some(&upper)).unwrap();
        assert_eq!(home, Some(cri.join("ctrd-checkpoint")));
        place_criu_metadata("c1", home.as_deref(), &images);
        assert_eq!(
            names(&cri.join("ctrd-checkpoint")),
            ["dump.log", "stats-dump"]
        );
        assert_eq!(names(&images), ["inventory.img", "pages-1.img"]);

        // ctr without a work path: dropped, as runc's temporary work directory
        let mut ctr = with_options(&CheckpointOptions::new());
        ctr.id = "c1".into();
        images_with_metadata(&images);
        let home = criu_metadata_home(&ctr, Some(&upper)).unwrap();
        assert_eq!(home, None);
        place_criu_metadata("c1", None, &images);
        assert_eq!(names(&images), ["inventory.img", "pages-1.img"]);

        // ctr t checkpoint --work-path W: into W, created if need be
        let mut o = CheckpointOptions::new();
        o.work_path = root.join("work/here").display().to_string();
        let mut ctr = with_options(&o);
        ctr.id = "c1".into();
        images_with_metadata(&images);
        let home = criu_metadata_home(&ctr, None).unwrap();
        place_criu_metadata("c1", home.as_deref(), &images);
        assert_eq!(names(&root.join("work/here")), ["dump.log", "stats-dump"]);
        assert_eq!(names(&images), ["inventory.img", "pages-1.img"]);

        o.work_path = "relative/dir".into();
        let e = criu_metadata_home(&with_options(&o), None).unwrap_err();
        assert!(e.to_string().contains("relative/dir"), "{e}");
    }
}
