//! The proxy's own listening socket. Its name must never be the inner shim's:
//! the Go shims hash `address/ns/id` into `/run/containerd/s/`, so the proxy
//! hashes a key that includes its own name.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

pub const SOCKET_DIR: &str = "/run/containerd/s";

pub fn socket_path(dir: &Path, containerd_address: &str, namespace: &str, id: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(format!("kata-cr\0{containerd_address}\0{namespace}\0{id}"));
    dir.join(hex::encode(h.finalize()))
}

pub fn to_address(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// The mode of the proxy's socket, as containerd's shims make theirs:
/// whoever connects drives every container of the pod.
pub const SOCKET_MODE: u32 = 0o600;
/// The mode of the socket directory when the proxy creates it.
pub const DIR_MODE: u32 = 0o700;

/// Bind `path` (mode [`SOCKET_MODE`]); a stale socket nobody answers on is
/// replaced, a live one is an error (another proxy serves this id).
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .ctx(|| format!("create {}", dir.display()))?;
    }
    let listener = bind_or_replace(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .ctx(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

fn bind_or_replace(path: &Path) -> Result<UnixListener> {
    match UnixListener::bind(path) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Err(Error::SocketInUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).ctx(|| format!("remove stale {}", path.display()))?;
            UnixListener::bind(path).ctx(|| format!("bind {}", path.display()))
        }
        Err(e) => Err(Error::io(format!("bind {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_from_the_go_shim_formula_and_stable() {
        let a = socket_path(
            Path::new("/run/containerd/s"),
            "/run/containerd/containerd.sock",
            "k8s.io",
            "abc",
        );
        let b = socket_path(
            Path::new("/run/containerd/s"),
            "/run/containerd/containerd.sock",
            "k8s.io",
            "abc",
        );
        assert_eq!(a, b);
        let mut go = Sha256::new();
        go.update("/run/containerd/containerd.sock/k8s.io/abc");
        assert_ne!(
            a.file_name().unwrap().to_str().unwrap(),
            hex::encode(go.finalize())
        );
        assert!(to_address(&a).len() < 108);
    }

    #[test]
    fn stale_socket_is_replaced_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let l = bind(&p).unwrap();
        assert!(bind(&p).is_err(), "live socket must not be stolen");
        drop(l);
        bind(&p).unwrap();
    }

    #[test]
    fn the_socket_is_0600_in_a_0700_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s").join("sock");
        let _l = bind(&p).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&p), 0o600, "socket");
        assert_eq!(mode(p.parent().unwrap()), 0o700, "directory");
    }
}
