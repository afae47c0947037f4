//! The daemon's work directory (outside every container): one
//! subdirectory per operation holding criu's log and what else it wrote,
//! kept for the last N operations, and the record of every image directory
//! a checkpoint made in a container's rootfs until it is gone again.
//!
//! Pruning never removes the directory of an operation in flight, nor one
//! whose image directory is still recorded. A record says where the image
//! directory is and whether the dump is still running or its images were
//! handed to the proxy (which moves them out, then asks for the directory
//! to go: `ReleaseImages`). [`WorkDir::sweep`] removes the image
//! directories nobody will come for: those of dumps that never finished
//! (the daemon was killed mid-dump: run at start), and those handed over
//! longer than [`HANDOVER_GRACE`] ago (the proxy died, or never got the
//! reply). So a container's memory never stays in its rootfs.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::{Error, Result};
use super::images::{self, ImageDir};

/// Default location.
pub const DEFAULT_WORK_DIR: &str = "/run/kata-cr/work";
/// Default number of operations whose directories are kept.
pub const DEFAULT_KEEP: usize = 32;
/// How long images handed to the proxy may wait for `ReleaseImages`.
pub const HANDOVER_GRACE: Duration = Duration::from_secs(900);
/// The record of an operation's image directory.
const RECORD: &str = "image-dir";

/// The work directory.
#[derive(Debug)]
pub struct WorkDir {
    root: PathBuf,
    keep: usize,
    seq: AtomicU64,
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
}

/// An operation's directory, in flight until dropped.
#[derive(Debug)]
pub struct Op {
    dir: PathBuf,
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Op {
    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records that this operation made image directory `name` in `rootfs`
    /// (`handed_over`: its images now wait for the proxy).
    pub fn record_image_dir(&self, rootfs: &Path, name: &str, handed_over: bool) -> Result<()> {
        let state = if handed_over {
            format!("handed-over {}", now_secs())
        } else {
            "dumping".to_string()
        };
        let text = format!("{}\n{name}\n{state}\n", rootfs.display());
        let tmp = self.dir.join(format!("{RECORD}.tmp"));
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, self.dir.join(RECORD)))
            .map_err(|e| Error::io(format!("recording {name} in {}", self.dir.display()), e))
    }

    /// Forgets the image directory (it is gone).
    pub fn forget_image_dir(&self) {
        let _ = fs::remove_file(self.dir.join(RECORD));
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.dir);
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An image directory record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub rootfs: PathBuf,
    pub name: String,
    /// `None`: the dump had not finished; `Some(t)`: handed over at `t`
    /// (seconds since the epoch).
    pub handed_over: Option<u64>,
}

/// Parses a record's text.
pub fn parse_record(text: &str) -> Option<Record> {
    let mut lines = text.lines();
    let rootfs = PathBuf::from(lines.next()?);
    let name = lines.next()?.to_string();
    let handed_over = match lines.next()? {
        "dumping" => None,
        s => Some(s.strip_prefix("handed-over ")?.parse().ok()?),
    };
    (rootfs.is_absolute() && images::is_private_name(&name)).then_some(Record {
        rootfs,
        name,
        handed_over,
    })
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
            in_flight: Arc::default(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory of a new operation (names sort by start time)
    /// and drops the oldest beyond the number kept.
    pub fn begin(&self, verb: &str, container_id: &str) -> Result<Op> {
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
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.clone());
        self.prune();
        Ok(Op {
            dir,
            in_flight: self.in_flight.clone(),
        })
    }

    fn op_dirs(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        dirs
    }

    fn is_in_flight(&self, dir: &Path) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(dir)
    }

    /// Removes the oldest operation directories beyond `keep` (best
    /// effort), never one in flight or holding an image directory record.
    fn prune(&self) {
        let dirs = self.op_dirs();
        let mut excess = dirs.len().saturating_sub(self.keep);
        for old in &dirs {
            if excess == 0 {
                break;
            }
            if self.is_in_flight(old) || old.join(RECORD).exists() {
                continue;
            }
            match fs::remove_dir_all(old) {
                Ok(()) => excess -= 1,
                Err(e) => {
                    tracing::warn!(dir = %old.display(), error = %e, "cannot remove an old operation directory")
                }
            }
        }
    }

    /// The records of image directories, with the operation directory
    /// holding each.
    pub fn records(&self) -> Vec<(PathBuf, Record)> {
        self.op_dirs()
            .into_iter()
            .filter_map(|d| {
                let text = fs::read_to_string(d.join(RECORD)).ok()?;
                Some((d, parse_record(&text)?))
            })
            .collect()
    }

    /// Forgets the record of image directory `name` (released).
    pub fn forget(&self, name: &str) {
        for (dir, r) in self.records() {
            if r.name == name {
                let _ = fs::remove_file(dir.join(RECORD));
            }
        }
    }

    /// Removes the image directories nobody will come for (see the module
    /// documentation); returns what was removed.
    pub fn sweep(&self) -> Vec<Record> {
        let now = now_secs();
        let mut removed = Vec::new();
        for (dir, r) in self.records() {
            let abandoned = match r.handed_over {
                None => !self.is_in_flight(&dir),
                Some(t) => now.saturating_sub(t) > HANDOVER_GRACE.as_secs(),
            };
            if !abandoned {
                continue;
            }
            match ImageDir::release(&r.rootfs, &r.name) {
                // A container that is gone took its rootfs along.
                Ok(_) | Err(Error::NotFound(_)) => {
                    let _ = fs::remove_file(dir.join(RECORD));
                    removed.push(r);
                }
                Err(e) => {
                    tracing::warn!(rootfs = %r.rootfs.display(), name = %r.name, error = %e, "cannot remove an abandoned image directory");
                }
            }
        }
        removed
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
            .map(|i| {
                w.begin("checkpoint", &format!("c{i}"))
                    .unwrap()
                    .dir()
                    .to_path_buf()
            })
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

    #[test]
    fn an_operation_in_flight_is_never_pruned() {
        let base = tempfile::tempdir().unwrap();
        let w = WorkDir::new(base.path().join("work"), 2).unwrap();
        let long = w.begin("restore", "slow").unwrap();
        for i in 0..40 {
            drop(w.begin("checkpoint", &format!("c{i}")).unwrap());
        }
        assert!(long.dir().is_dir(), "pruned while in flight");
        drop(long);
        drop(w.begin("checkpoint", "last").unwrap());
        assert_eq!(fs::read_dir(w.root()).unwrap().count(), 2);
    }

    #[test]
    fn records_keep_their_dir_and_the_sweep_removes_abandoned_images() {
        let base = tempfile::tempdir().unwrap();
        let rootfs = base.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        let w = WorkDir::new(base.path().join("work"), 1).unwrap();

        // A dump that never finished (the daemon died): swept.
        let d1 = ImageDir::create_private(&rootfs).unwrap();
        let op1 = w.begin("checkpoint", "c1").unwrap();
        op1.record_image_dir(&rootfs, d1.name(), false).unwrap();
        let op1_dir = op1.dir().to_path_buf();
        // In flight: left alone.
        assert!(w.sweep().is_empty());
        drop(op1);
        // Handed over just now: left alone, and its dir is not pruned.
        let d2 = ImageDir::create_private(&rootfs).unwrap();
        let op2 = w.begin("checkpoint", "c2").unwrap();
        op2.record_image_dir(&rootfs, d2.name(), true).unwrap();
        drop(op2);
        for i in 0..3 {
            drop(w.begin("checkpoint", &format!("x{i}")).unwrap());
        }
        assert!(op1_dir.is_dir(), "a recorded operation was pruned");
        let swept = w.sweep();
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].name, d1.name());
        assert!(!d1.path().exists() && d2.path().exists());
        // Released by the proxy: forgotten.
        assert!(ImageDir::release(&rootfs, d2.name()).unwrap());
        w.forget(d2.name());
        assert!(w.records().is_empty());
    }

    #[test]
    fn records_parse_strictly() {
        let name = format!(".kata-cr-{}", "0".repeat(32));
        assert_eq!(
            parse_record(&format!("/r\n{name}\nhanded-over 5\n")),
            Some(Record {
                rootfs: "/r".into(),
                name: name.clone(),
                handed_over: Some(5)
            })
        );
        assert!(parse_record(&format!("/r\n{name}\ndumping\n")).is_some());
        assert!(parse_record(&format!("r\n{name}\ndumping\n")).is_none());
        assert!(parse_record("/r\n../etc\ndumping\n").is_none());
        assert!(parse_record(&format!("/r\n{name}\n")).is_none());
    }
}
