//! What the proxy and the agent agree on inside every kata-cr container:
//! where kata-cr-init is, and where and under which names image sets are
//! staged in its rootfs. Both sides check names with [`validate_image_dir`]
//! and [`is_private_image_dir`], so a name one side accepts the other never
//! refuses.

use std::fmt;

/// argv[0] of kata-cr-init inside every kata-cr container: a read-only bind
/// mount in the container's /dev tmpfs, so that no rootfs diff (ctr --rw,
/// CRI's rootfs-diff.tar) ever carries its mount point.
pub const INIT_PATH: &str = "/dev/.kata-cr-init";

/// The name of CRI's rootfs diff, both where containerd keeps it (beside
/// the checkpoint directory) and in a staged image set (criu writes no such
/// file).
pub const ROOTFS_DIFF_FILE: &str = "rootfs-diff.tar";

/// The directory under which agents before api_version 3 kept image sets
/// (`<rootfs>/.kata-cr/<image_dir>/`); a container could block it by
/// planting that name. Still read for restores staged by older proxies.
pub const IMAGE_ROOT: &str = ".kata-cr";

/// Prefix of the image directories at the root of a rootfs (api_version
/// 3): `<rootfs>/.kata-cr-<hex>/`, the hex random, drawn by the agent for a
/// checkpoint and by the proxy for a restore, so that the container can
/// neither predict nor block the name.
pub const PRIVATE_IMAGE_DIR_PREFIX: &str = ".kata-cr-";

/// Lowercase hex digits after [`PRIVATE_IMAGE_DIR_PREFIX`] (128 bits).
pub const PRIVATE_IMAGE_DIR_HEX: usize = 32;

/// Whether `name` is [`PRIVATE_IMAGE_DIR_PREFIX`] and
/// [`PRIVATE_IMAGE_DIR_HEX`] lowercase hex digits.
pub fn is_private_image_dir(name: &str) -> bool {
    name.strip_prefix(PRIVATE_IMAGE_DIR_PREFIX)
        .is_some_and(|hex| {
            hex.len() == PRIVATE_IMAGE_DIR_HEX
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

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
    fn private_image_dirs() {
        assert!(is_private_image_dir(&format!(
            ".kata-cr-{}",
            "a1".repeat(16)
        )));
        for bad in [
            ".kata-cr-",
            ".kata-cr-ABCDEF0123456789abcdef0123456789",
            ".kata-cr-xx",
            ".kata-cr-0123456789abcdef0123456789abcdef0",
            ".kata-cr/0123456789abcdef0123456789abcdef",
        ] {
            assert!(!is_private_image_dir(bad), "{bad}");
        }
    }

    #[test]
    fn the_init_is_outside_the_rootfs_diff() {
        assert!(INIT_PATH.starts_with("/dev/"), "in the /dev tmpfs");
        assert!(!IMAGE_ROOT.contains('/'));
    }
}
