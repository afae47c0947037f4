//! Restore of a kata-cr container, as a deferred create (the model of
//! containerd's runc shim): Create with a checkpoint stages the image set
//! into the new container's rootfs and starts kata-cr-init in restore mode
//! instead of the command; Start, once the inner shim has started that init,
//! has kata-cr-agent restore the workload into the init's namespaces as the
//! init's child. The inner shim and its agent then see one coherent
//! container: exec joins the init's namespaces (the init has joined the
//! workload's mount namespace), kill reaches the workload through the init,
//! and the init exits with the workload's status.

use std::path::{Path, PathBuf};

use kata_cr_api as api;

use crate::cr::agent::AgentBackend;
use crate::cr::container::Container;
use crate::cr::{rootfs_diff, staging};
use crate::error::{Error, Op, Result};

/// Checks that `dir` holds a criu image set and stages it into the
/// container's upperdir; returns the staged directory's name.
pub async fn prepare(backend: &AgentBackend, c: &Container, checkpoint: &Path) -> Result<String> {
    let id = &c.id;
    let upper = backend.host_upper(c).ok_or_else(|| Error::NotStageable {
        op: Op::Restore,
        id: id.clone(),
    })?;
    // Unpredictable, at the rootfs's root: nothing the image's rootfs diff
    // planted is in the way, and the agent removes it through its view.
    let name = staging::new_private_name();
    let (src, n) = (checkpoint.to_path_buf(), name.clone());
    let t0 = std::time::Instant::now();
    let staged = crate::blocking::run("stage the image set in", move || {
        if !src.join("inventory.img").is_file() {
            return Err(Error::InvalidArgument(format!(
                "{} holds no criu image set (no inventory.img)",
                src.display()
            )));
        }
        staging::stage_in(&src, &upper, &n)
    })
    .await
    .map_err(|e| e.context(format!("restore of container {id}")))?;
    tracing::info!(id, files = staged.files.len(), bytes = staged.bytes, dir = %name,
        stage_ms = t0.elapsed().as_millis() as u64, "restore: images staged");
    Ok(name)
}

/// How long after Start the agent may still not see kata-cr-init.
const INIT_APPEARS_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Restores the workload into the started init. On failure the agent has
/// told the init, which exits: nothing stays half-alive.
pub async fn restore(backend: &AgentBackend, c: &Container, image_dir: &str) -> Result<i32> {
    let id = c.id.as_str();
    let mut req = api::RestoreRequest::new();
    req.container_id = id.to_string();
    req.rootfs = backend.agent_rootfs(c).display().to_string();
    req.image_dir = image_dir.to_string();
    // What the dump kept comes back: containerd hands a restore no criu
    // options (runc's restore sees only its criu config file), and criu
    // refuses an image set holding connections without being told. The
    // agent restores them closed where their address is gone (a new network).
    req.tcp_established = true;
    req.file_locks = true;
    req.ext_unix_sk = true;
    let t0 = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    let diff = match stage_rootfs_diff(backend, c, image_dir).await {
        Ok(d) => d,
        Err(e) => {
            if let Some(upper) = backend.host_upper(c) {
                staging::discard(upper, image_dir.to_string()).await;
            }
            return Err(e.context(format!("restore of container {id}: CRI's rootfs diff")));
        }
    };
    if diff {
        req.rootfs_diff = api::ROOTFS_DIFF_FILE.to_string();
    }
    let client = match backend.connect().await {
        Ok(client) if diff => applies_rootfs_diff(backend, client, id).await,
        r => r,
    };
    let res = match client {
        Ok(client) => loop {
            let r = client
                .restore(api::context_with_timeout(backend.timeout), &req)
                .await;
            // The inner shim's Start can return before the container's
            // process has exec'd kata-cr-init (runc signals its exec fifo and
            // returns): the agent does not see the init yet. Ask again, soon
            // at first (the exec is a matter of milliseconds), then less often.
            match r {
                Err(ttrpc::Error::RpcStatus(s))
                    if s.code() == ttrpc::Code::NOT_FOUND && t0.elapsed() < INIT_APPEARS_WITHIN =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                }
                r => break r.map_err(|e| Error::from_agent(Op::Restore, id, e)),
            }
        },
        Err(e) => Err(e.context(format!("restore of container {id}"))),
    };
    // criu has read the images (or failed): they have no use in the rootfs.
    if let Some(upper) = backend.host_upper(c) {
        staging::discard(upper, image_dir.to_string()).await;
    }
    let r = res?;
    if r.tcp_closed > 0 {
        tracing::warn!(id, connections = r.tcp_closed, missing = ?r.tcp_missing_addresses,
            "restore: TCP connections restored closed: the container's network lacks their addresses");
    }
    tracing::info!(id, pid = r.pid, host_pid = r.host_pid, ms = t0.elapsed().as_millis() as u64, criu_log = %r.criu_log_path, "restore done");
    Ok(r.host_pid)
}

/// Whether the agent must apply CRI's rootfs diff (see `cr::rootfs_diff`):
/// true once the archive is staged into the image set, and containerd's
/// misplaced copy of it removed.
async fn stage_rootfs_diff(backend: &AgentBackend, c: &Container, image_dir: &str) -> Result<bool> {
    let Some(archive) = c.checkpoint.as_deref().and_then(rootfs_diff::archive_of) else {
        return Ok(false);
    };
    if std::fs::symlink_metadata(&archive).is_err() {
        return Ok(false);
    }
    let (id, rootfs) = (c.id.clone(), c.host_rootfs());
    let upper = backend.host_upper(c);
    let set = image_dir.to_string();
    crate::blocking::run("stage CRI's rootfs diff", move || {
        if rootfs_diff::is_mount_point(&rootfs)? {
            tracing::info!(id, rootfs = %rootfs.display(), "restore: rootfs diff applied by containerd (the rootfs is mounted here)");
            return Ok(false);
        }
        let upper = upper.ok_or_else(|| Error::NotStageable {
            op: Op::Restore,
            id: id.clone(),
        })?;
        let bytes = staging::add_file(&archive, &upper, &set, api::ROOTFS_DIFF_FILE)?;
        match rootfs_diff::clear_debris(&rootfs) {
            Ok(n) => tracing::info!(id, bytes, debris = n, rootfs = %rootfs.display(),
                "restore: rootfs diff staged for the agent; containerd's copy in the bare bundle rootfs removed"),
            Err(e) => tracing::warn!(id, error = %e, "restore: cannot remove containerd's copy of the rootfs diff"),
        }
        Ok(true)
    })
    .await
}

/// The client, once the agent has said it applies a rootfs diff (an older
/// one would ignore the field and restore without it).
async fn applies_rootfs_diff(
    backend: &AgentBackend,
    client: api::AgentClient,
    id: &str,
) -> Result<api::AgentClient> {
    let caps = client
        .capabilities(
            api::context_with_timeout(backend.timeout),
            &api::CapabilitiesRequest::new(),
        )
        .await
        .map_err(|e| Error::from_agent(Op::Restore, id, e))?;
    if caps.api_version < api::ROOTFS_DIFF_API_VERSION {
        return Err(Error::Agent {
            op: Op::Restore,
            id: id.to_string(),
            status: ttrpc::get_status(
                ttrpc::Code::FAILED_PRECONDITION,
                format!(
                    "CRI's rootfs diff must be applied in the guest, and kata-cr-agent {} (api_version {}) cannot: api_version {} can (update the guest's kata-cr-agent)",
                    caps.agent_version, caps.api_version, api::ROOTFS_DIFF_API_VERSION
                ),
            ),
        });
    }
    Ok(client)
}

/// The checkpoint directory containerd gives Create (`ctr c restore`: the
/// unpacked criu tar; CRI: `<...>/checkpoint`).
pub fn checkpoint_dir(field: &str) -> Option<PathBuf> {
    (!field.is_empty()).then(|| PathBuf::from(field))
}
