//! The container's OCI spec, as the runtime wrote it beside the rootfs
//! (`<rootfs>/../config.json`: the bundle in host mode, and
//! `/run/kata-containers/<cid>/config.json` in a Kata guest). criu needs the
//! runtime's bind mounts: keyed by their destination at dump, and mapped to
//! the restoring container's own sources at restore (as runc does), because a
//! restored container's sources differ (CRI: /etc/hosts of another pod).

use std::path::{Path, PathBuf};

/// A bind mount of the spec: destination in the container, source outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub destination: PathBuf,
    pub source: PathBuf,
}

/// The spec's bind mounts; none when the spec cannot be read (criu's
/// `--ext-mount-map auto` then handles them as before).
pub fn bind_mounts(rootfs: &Path) -> Vec<BindMount> {
    let Some(path) = rootfs.parent().map(|b| b.join("config.json")) else {
        return Vec::new();
    };
    std::fs::read(&path)
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .map(|spec| from_spec(&spec))
        .unwrap_or_default()
}

pub fn from_spec(spec: &serde_json::Value) -> Vec<BindMount> {
    let Some(mounts) = spec.get("mounts").and_then(|m| m.as_array()) else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|m| {
            let typ = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
            let opts = m.get("options").and_then(|o| o.as_array());
            typ == "bind"
                || opts.is_some_and(|o| {
                    o.iter()
                        .any(|v| matches!(v.as_str(), Some("bind") | Some("rbind")))
                })
        })
        .filter_map(|m| {
            let destination = PathBuf::from(m.get("destination")?.as_str()?);
            let source = PathBuf::from(m.get("source")?.as_str()?);
            (destination.is_absolute() && destination != Path::new("/")).then_some(BindMount {
                destination,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bind_mounts_of_a_cri_spec() {
        let spec = json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/cri/sb1/hosts", "options": ["rbind", "rw"]},
            {"destination": "/dev/.kata-cr-init", "source": "/usr/local/bin/kata-cr-init", "options": ["rbind", "ro"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid"]},
            {"destination": "/", "type": "bind", "source": "/x"}
        ]});
        let b = from_spec(&spec);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].destination, PathBuf::from("/etc/hosts"));
        assert_eq!(b[0].source, PathBuf::from("/var/lib/cri/sb1/hosts"));
        assert_eq!(b[1].destination, PathBuf::from("/dev/.kata-cr-init"));
    }

    #[test]
    fn unreadable_specs_give_nothing() {
        assert!(bind_mounts(Path::new("/nonexistent/rootfs")).is_empty());
        assert!(from_spec(&json!({"mounts": "x"})).is_empty());
    }
}
