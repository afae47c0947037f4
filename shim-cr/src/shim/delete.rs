//! `delete`: containerd's cleanup after a shim connection closes. The inner
//! shim does the real work; its `DeleteResponse` goes back byte for byte.
//!
//! Sockets left behind are removed, when nobody answers on them any more:
//! the proxy's (a proxy that died), and the inner shim's. containerd 1.7's
//! runc shim removes its socket in `delete`, found through the address in
//! `<bundle>/address`, which names the proxy's socket once kata-cr has
//! started: without this, every container would leave one socket file in
//! `/run/containerd/s` (2.x shims remove theirs when they exit).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::{self, Config};
use crate::error::{Error, IoContext, Result};
use crate::shim::args::ShimArgs;
use crate::shim::bundle_state::BundleState;

pub fn run(args: &ShimArgs) -> Result<Vec<u8>> {
    let bundle: PathBuf = match &args.bundle {
        Some(b) => b.into(),
        None => std::env::current_dir().ctx(|| "current directory (the bundle)".into())?,
    };
    let state = BundleState::read(&bundle).ok();
    let inner_binary = match &state {
        Some(s) => s.inner_binary.clone(),
        None => {
            let env_path = std::env::var(config::ENV_PATH).ok();
            Config::resolve(env_path.as_deref(), None)?.inner_binary_path()?
        }
    };
    let cwd = if bundle.is_dir() {
        bundle.clone()
    } else {
        PathBuf::from("/")
    };
    let out = Command::new(&inner_binary)
        .args(&args.raw)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::InnerShim {
            binary: inner_binary.display().to_string(),
            reason: format!("delete: {e}"),
        })?;
    if let Some(s) = &state {
        if let Some(sock) = s.socket.as_deref() {
            remove_if_stale(sock);
        }
        if let Some(sock) = s.inner.as_ref().and_then(|b| unix_socket_path(&b.address)) {
            remove_if_stale(&sock);
        }
    }
    if !out.status.success() {
        return Err(Error::InnerShim {
            binary: inner_binary.display().to_string(),
            reason: format!(
                "delete failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out.stdout)
}

/// A socket nobody answers on is debris of a server that has exited.
/// Anything that is not a socket is left alone.
fn remove_if_stale(sock: &Path) {
    use std::os::unix::fs::FileTypeExt as _;
    let is_socket = std::fs::symlink_metadata(sock).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && std::os::unix::net::UnixStream::connect(sock).is_err() {
        let _ = std::fs::remove_file(sock);
    }
}

/// The path of a `unix://` shim address (ttrpc's form), if it is one.
fn unix_socket_path(address: &str) -> Option<PathBuf> {
    let path = address.strip_prefix("unix://")?;
    Path::new(path).is_absolute().then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_unix_addresses_name_a_socket() {
        assert_eq!(
            unix_socket_path("unix:///run/containerd/s/ab"),
            Some(PathBuf::from("/run/containerd/s/ab"))
        );
        assert_eq!(unix_socket_path("unix://relative"), None);
        assert_eq!(unix_socket_path("vsock://3:1024"), None);
        assert_eq!(unix_socket_path("/run/containerd/s/ab"), None);
    }

    #[test]
    fn only_sockets_nobody_answers_on_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let _listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
        let stale = dir.path().join("stale");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        for p in [&live, &stale, &file] {
            remove_if_stale(p);
        }
        assert!(live.exists(), "a socket with a server stays");
        assert!(!stale.exists(), "a socket without one goes");
        assert!(file.exists(), "a file that is not a socket stays");
        remove_if_stale(&dir.path().join("missing"));
    }
}
