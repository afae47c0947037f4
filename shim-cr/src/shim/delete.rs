//! `delete`: containerd's cleanup after a shim connection closes. The inner
//! shim does the real work; its `DeleteResponse` goes back byte for byte.

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
    if let Some(sock) = state.as_ref().and_then(|s| s.socket.as_deref()) {
        remove_if_stale(sock);
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

/// A socket nobody answers on is debris of a proxy that died.
fn remove_if_stale(sock: &Path) {
    if sock.exists() && std::os::unix::net::UnixStream::connect(sock).is_err() {
        let _ = std::fs::remove_file(sock);
    }
}
