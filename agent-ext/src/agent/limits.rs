//! How much of an image set kata-cr-agent accepts: per file, in total, in
//! number of files, and for the files it parses itself. An image set comes
//! from an archive or a registry (a few compressed megabytes can unpack to
//! gigabytes); in a Kata guest the agent shares a small VM with the
//! workloads, so nothing it reads may grow with the input.
//!
//! Checked on the listing before anything is read (restore), and on what
//! criu wrote (dump: criu itself runs under `RLIMIT_FSIZE` = the per-file
//! cap). Files are read as streams of bounded entries
//! ([`super::criu_image::EntryReader`]), never whole.

use super::error::{Error, Result};

/// Default of `--max-image-file-bytes`.
pub const DEFAULT_FILE: u64 = 32 << 30;
/// Default of `--max-image-set-bytes`.
pub const DEFAULT_TOTAL: u64 = 64 << 30;
/// Default of `--max-image-files`.
pub const DEFAULT_FILES: u64 = 100_000;
/// Default of `--max-metadata-image-bytes`.
pub const DEFAULT_METADATA: u64 = 64 << 20;
/// The largest protobuf entry read from an image (criu's entries are a few
/// kilobytes; a core entry with the FPU state is the largest kata-cr reads).
pub const MAX_ENTRY: usize = 4 << 20;
/// The largest `descriptors.json` read.
pub const MAX_DESCRIPTORS: u64 = 64 << 10;

/// The caps (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Any one file of an image set.
    pub file: u64,
    /// All files of an image set together.
    pub total: u64,
    /// Number of files in an image set.
    pub files: u64,
    /// A file kata-cr-agent parses itself (the criu images it checks before
    /// a restore, `files.img`...), and the criu log it copies into a set.
    pub metadata: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file: DEFAULT_FILE,
            total: DEFAULT_TOTAL,
            files: DEFAULT_FILES,
            metadata: DEFAULT_METADATA,
        }
    }
}

/// Human-readable size for messages ("1.5 GiB").
pub fn show(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Limits {
    /// Checks a listing of `(name, size)`: every file, their number and
    /// their sum. `what` names the set in errors.
    pub fn check_set<'a>(
        &self,
        what: &str,
        files: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<()> {
        let (mut n, mut total) = (0u64, 0u64);
        for (name, size) in files {
            self.check_file(what, name, size)?;
            n += 1;
            total = total.saturating_add(size);
            if n > self.files {
                return Err(Error::InvalidArgument(format!(
                    "{what}: more than {} files (--max-image-files)",
                    self.files
                )));
            }
        }
        if total > self.total {
            return Err(Error::InvalidArgument(format!(
                "{what}: {} in total, over the {} an image set may hold (--max-image-set-bytes)",
                show(total),
                show(self.total)
            )));
        }
        Ok(())
    }

    /// Checks one file of a set.
    pub fn check_file(&self, what: &str, name: &str, size: u64) -> Result<()> {
        if size > self.file {
            return Err(Error::InvalidArgument(format!(
                "{what}: {name} is {}, over the {} an image file may be (--max-image-file-bytes)",
                show(size),
                show(self.file)
            )));
        }
        Ok(())
    }

    /// Checks a file the agent is about to parse.
    pub fn check_metadata(&self, what: &str, name: &str, size: u64) -> Result<()> {
        if size > self.metadata {
            return Err(Error::InvalidArgument(format!(
                "{what}: {name} is {}, over the {} kata-cr-agent reads of one criu metadata \
                 image (--max-metadata-image-bytes)",
                show(size),
                show(self.metadata)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(show(512), "512 bytes");
        assert_eq!(show(3 << 29), "1.5 GiB");
        assert_eq!(show(64 << 20), "64.0 MiB");
    }

    #[test]
    fn each_cap_names_what_was_over_it_and_its_flag() {
        let l = Limits {
            file: 100,
            total: 150,
            files: 2,
            metadata: 10,
        };
        l.check_set("set", [("a", 100), ("b", 50)]).unwrap();
        let e = l.check_set("set", [("a", 101)]).unwrap_err();
        assert!(
            e.to_string().contains("a is 101 bytes")
                && e.to_string().contains("--max-image-file-bytes"),
            "{e}"
        );
        let e = l.check_set("set", [("a", 100), ("b", 51)]).unwrap_err();
        assert!(e.to_string().contains("--max-image-set-bytes"), "{e}");
        let e = l
            .check_set("set", [("a", 1), ("b", 1), ("c", 1)])
            .unwrap_err();
        assert!(e.to_string().contains("--max-image-files"), "{e}");
        let e = l.check_metadata("set", "files.img", 11).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert!(e.to_string().contains("files.img is 11 bytes"), "{e}");
    }
}
