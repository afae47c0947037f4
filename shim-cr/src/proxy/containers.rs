//! What the proxy remembers about each container it saw created: where its
//! bundle and its rootfs upperdir are, and the checkpoint/restore state.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use containerd_shim_protos::api::CreateTaskRequest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    /// The writable layer of an overlay rootfs, on the host.
    pub upperdir: Option<PathBuf>,
    /// Whether kata-cr-init is its PID 1 (not for CRI sandboxes).
    pub wrapped: bool,
    /// Created from a checkpoint, not restored yet: the staged image dir.
    pub restore_pending: Option<String>,
}

impl Container {
    pub fn from_create(req: &CreateTaskRequest, wrapped: bool) -> Self {
        Container {
            id: req.id.clone(),
            bundle: PathBuf::from(&req.bundle),
            upperdir: upperdir(req),
            wrapped,
            restore_pending: None,
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

#[derive(Default)]
pub struct Registry(Mutex<HashMap<String, Container>>);

impl Registry {
    pub fn insert(&self, c: Container) {
        self.0
            .lock()
            .expect("registry lock")
            .insert(c.id.clone(), c);
    }

    pub fn get(&self, id: &str) -> Option<Container> {
        self.0.lock().expect("registry lock").get(id).cloned()
    }

    /// Takes the pending restore of `id`, if any: a Start restores once.
    pub fn take_restore(&self, id: &str) -> Option<(Container, String)> {
        let mut map = self.0.lock().expect("registry lock");
        let c = map.get_mut(id)?;
        let dir = c.restore_pending.take()?;
        Some((c.clone(), dir))
    }

    pub fn remove(&self, id: &str) {
        self.0.lock().expect("registry lock").remove(id);
    }
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
        let c = Container::from_create(&req, true);
        assert_eq!(c.upperdir, Some(PathBuf::from("/s/2/fs")));
        assert_eq!(c.host_rootfs(), PathBuf::from("/run/b/rootfs"));
        let mut bind = CreateTaskRequest::new();
        let mut b = Mount::new();
        b.type_ = "bind".into();
        bind.rootfs.push(b);
        assert_eq!(upperdir(&bind), None);
    }
}
