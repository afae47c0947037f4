//! What checkpoint and restore need to know of a container: its id, its
//! bundle and the writable layer of its rootfs on this host.

use std::path::PathBuf;

use containerd_shim_protos::api::CreateTaskRequest;

use crate::cr::exec_guard::ExecGuard;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    /// The writable layer of an overlay rootfs, on the host.
    pub upperdir: Option<PathBuf>,
    /// Set for a container created from a checkpoint: what its execs must
    /// not exceed.
    pub exec_guard: Option<ExecGuard>,
    /// The checkpoint directory it was created from (restore), whose
    /// parent may hold CRI's rootfs diff (see `cr::rootfs_diff`).
    pub checkpoint: Option<PathBuf>,
}

impl Container {
    pub fn from_create(req: &CreateTaskRequest) -> Self {
        Container {
            id: req.id.clone(),
            bundle: PathBuf::from(&req.bundle),
            upperdir: upperdir(req),
            exec_guard: None,
            checkpoint: None,
        }
    }

    /// The rootfs as the inner runtime mounts it on this host.
    pub fn host_rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }
}

/// The overlay upperdir from the Create request's rootfs mounts.
pub fn upperdir(req: &CreateTaskRequest) -> Option<PathBuf> {
    req.rootfs
        .iter()
        .filter(|m| m.type_ == "overlay" || m.type_.ends_with("overlay"))
        .flat_map(|m| m.options.iter())
        .find_map(|o| o.strip_prefix("upperdir=").map(PathBuf::from))
}

/// Checks that a container or sandbox id can name a path component (kata-cr
/// joins ids into paths: CRI's container directory, Kata's guest rootfs and
/// management socket).
pub fn check_id(kind: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 || id == "." || id == ".." || id.contains(['/', '\0']) {
        return Err(Error::InvalidArgument(format!(
            "{kind} id {id:?} cannot name a path"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use containerd_shim_protos::api::Mount;

    use super::*;

    #[test]
    fn upperdir_comes_from_the_overlay_options() {
        let mut req = CreateTaskRequest::new();
        req.id = "c".into();
        req.bundle = "/run/b".into();
        let mut m = Mount::new();
        m.type_ = "overlay".into();
        m.options = vec![
            "index=off".into(),
            "workdir=/s/2/work".into(),
            "upperdir=/s/2/fs".into(),
            "lowerdir=/s/1/fs".into(),
        ];
        req.rootfs.push(m);
        let c = Container::from_create(&req);
        assert_eq!(c.upperdir, Some(PathBuf::from("/s/2/fs")));
        assert_eq!(c.host_rootfs(), PathBuf::from("/run/b/rootfs"));
        let mut bind = CreateTaskRequest::new();
        let mut b = Mount::new();
        b.type_ = "bind".into();
        bind.rootfs.push(b);
        assert_eq!(upperdir(&bind), None);
    }

    #[test]
    fn ids_that_cannot_name_a_path_are_refused() {
        check_id("container", "c1-abc.2_x").unwrap();
        for bad in ["", ".", "..", "../etc", "a/b", "nul\0"] {
            let e = check_id("container", bad).unwrap_err();
            assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT, "{bad:?}");
        }
        assert!(check_id("sandbox", &"x".repeat(129)).is_err());
    }
}
