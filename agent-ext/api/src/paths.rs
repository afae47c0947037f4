//! What the proxy and the agent agree on inside every kata-cr container:
//! where kata-cr-init is, and where and under which names image sets are
//! staged in its rootfs. Both sides check names with [`validate_image_dir`],
//! so a name one side accepts the other never refuses.

use std::fmt;

/// argv[0] of kata-cr-init inside every kata-cr container: a read-only bind
/// mount in the container's /dev tmpfs, so that no rootfs diff (ctr --rw,
/// CRI's rootfs-diff.tar) ever carries its mount point.
pub const INIT_PATH: &str = "/dev/.kata-cr-init";

/// The directory of kata-cr's files in a container's rootfs: image sets are
/// staged in `<rootfs>/.kata-cr/<image_dir>/`.
pub const IMAGE_ROOT: &str = ".kata-cr";

/// Longest accepted image directory name.
pub const MAX_IMAGE_DIR_LEN: usize = 128;

/// Why an image directory name was refused; its message names the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadImageDir {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for BadImageDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "image_dir {:?} {}", self.name, self.why)
    }
}

impl std::error::Error for BadImageDir {}

/// Checks an image directory name: one path component of `[A-Za-z0-9._-]`,
/// not starting with `.` (so neither `.` nor `..`) and without `..`, at most
/// [`MAX_IMAGE_DIR_LEN`] bytes.
pub fn validate_image_dir(name: &str) -> Result<(), BadImageDir> {
    let bad = |why: &str| {
        Err(BadImageDir {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_IMAGE_DIR_LEN {
        return bad(&format!("is longer than {MAX_IMAGE_DIR_LEN} bytes"));
    }
    if name.contains('/') {
        return bad("must be a single path component (contains '/')");
    }
    if name.contains("..") || name.starts_with('.') {
        return bad("must not start with '.' nor contain '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("may only contain A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_dir_names() {
        for ok in ["ckpt-1a2b", "a", "A.b_c-9", &"x".repeat(MAX_IMAGE_DIR_LEN)] {
            validate_image_dir(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "/abs",
            "a..b",
            ".hidden",
            "sp ace",
            "nul\0",
            "é",
            &"x".repeat(MAX_IMAGE_DIR_LEN + 1),
        ] {
            let e = validate_image_dir(bad).expect_err(bad);
            assert!(e.to_string().starts_with("image_dir "), "{bad}: {e}");
            assert_eq!(e.name, bad);
        }
    }

    #[test]
    fn the_init_is_outside_the_rootfs_diff() {
        assert!(INIT_PATH.starts_with("/dev/"), "in the /dev tmpfs");
        assert!(!IMAGE_ROOT.contains('/'));
    }
}
