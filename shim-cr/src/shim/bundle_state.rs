//! What `start` leaves in the bundle for later invocations (`delete`, the
//! start of a pod's next container): `<bundle>/kata-cr.json`. containerd
//! removes the bundle directory, so this file needs no cleanup of its own.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bundle::write_atomic;
use crate::error::{Error, IoContext, Result};
use crate::shim::bootstrap::Bootstrap;

pub const FILE: &str = "kata-cr.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleState {
    /// What containerd was told (our address).
    pub proxy: Bootstrap,
    /// The inner shim's binary, resolved at start.
    pub inner_binary: PathBuf,
    /// The inner shim's own bootstrap (for diagnostics and benchmarks).
    #[serde(default)]
    pub inner: Option<Bootstrap>,
    /// Set for the bundle whose start created the proxy: its socket path.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Set for a container that joined its sandbox's proxy.
    #[serde(default)]
    pub sandbox: Option<String>,
}

impl BundleState {
    pub fn path(bundle: &Path) -> PathBuf {
        bundle.join(FILE)
    }

    pub fn read(bundle: &Path) -> Result<Self> {
        let p = Self::path(bundle);
        let data = std::fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&data).map_err(|source| Error::Json {
            context: format!("parse {}", p.display()),
            source,
        })
    }

    pub fn write(&self, bundle: &Path) -> Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(|source| Error::Json {
            context: "serialise the bundle state".into(),
            source,
        })?;
        write_atomic(&Self::path(bundle), &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shim::bootstrap::Form;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = BundleState {
            proxy: Bootstrap {
                form: Form::Json,
                version: 3,
                address: "unix:///run/containerd/s/x".into(),
                protocol: "ttrpc".into(),
            },
            inner_binary: "/usr/bin/containerd-shim-runc-v2".into(),
            inner: None,
            socket: Some("/run/containerd/s/x".into()),
            sandbox: None,
        };
        s.write(dir.path()).unwrap();
        assert_eq!(BundleState::read(dir.path()).unwrap(), s);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = BundleState::read(Path::new("/nonexistent/b")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/b/kata-cr.json"));
    }
}
