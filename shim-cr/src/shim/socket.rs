//! The proxy's own listening socket. Its name must never be the inner shim's:
//! the Go shims hash `address/ns/id` into `/run/containerd/s/`, so the proxy
//! hashes a key that includes its own name.

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

/// Bind `path`; a stale socket nobody answers on is replaced, a live one is
/// an error (another proxy serves this id).
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
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
}
