//! The daemon's work directory (outside every container): one
//! subdirectory per operation holding criu's log and what else it wrote,
//! kept for the last N operations.

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::{Error, Result};

/// Default location.
pub const DEFAULT_WORK_DIR: &str = "/run/kata-cr/work";
/// Default number of operations whose directories are kept.
pub const DEFAULT_KEEP: usize = 32;

/// The work directory.
#[derive(Debug)]
pub struct WorkDir {
    root: PathBuf,
    keep: usize,
    seq: AtomicU64,
}

/// Makes a container id usable in a file name.
pub fn sanitize(id: &str) -> String {
    let s: String = id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

impl WorkDir {
    /// Creates (mode 0700) or reuses `root`.
    pub fn new(root: impl Into<PathBuf>, keep: usize) -> Result<Self> {
        let root = root.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("chmod {}", root.display()), e))?;
        Ok(WorkDir {
            root,
            keep: keep.max(1),
            seq: AtomicU64::new(0),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory of a new operation (names sort by start time)
    /// and drops the oldest beyond the number kept.
    pub fn begin(&self, verb: &str, container_id: &str) -> Result<PathBuf> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % 10_000;
        let dir = self.root.join(format!(
            "{millis:013}-{seq:04}-{verb}-{}",
            sanitize(container_id)
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        self.prune();
        Ok(dir)
    }

    /// Removes the oldest operation directories beyond `keep` (best effort).
    fn prune(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        let excess = dirs.len().saturating_sub(self.keep);
        for old in &dirs[..excess] {
            if let Err(e) = fs::remove_dir_all(old) {
                tracing::warn!(dir = %old.display(), error = %e, "cannot remove an old operation directory");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_ids() {
        assert_eq!(sanitize("c1"), "c1");
        assert_eq!(sanitize("../x/y"), "_.._x_y");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn keeps_the_last_n_operations_private() {
        let base = tempfile::tempdir().unwrap();
        let w = WorkDir::new(base.path().join("work"), 3).unwrap();
        assert_eq!(
            fs::metadata(w.root()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let dirs: Vec<PathBuf> = (0..5)
            .map(|i| w.begin("checkpoint", &format!("c{i}")).unwrap())
            .collect();
        let mut left: Vec<PathBuf> = fs::read_dir(w.root())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        left.sort();
        assert_eq!(left, dirs[2..]);
        assert_eq!(
            fs::metadata(&dirs[4]).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
