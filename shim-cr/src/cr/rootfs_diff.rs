//! CRI's rootfs diff on a runtime whose rootfs containerd cannot reach.
//!
//! On a CRI restore (create from a checkpoint archive or image), containerd
//! 2.1-2.3 applies `<checkpoint>/../rootfs-diff.tar` (an OCI layer, gzip)
//! to `<bundle>/rootfs` itself, on the host, between the shim's Create and
//! Start. Under runc that path is the container's mounted rootfs, and the
//! diff is in place. Under Kata the rootfs overlay is mounted in the Kata
//! shim's private mount namespace: on the host `<bundle>/rootfs` is a bare
//! directory, containerd's files land there (and later keep containerd from
//! removing the bundle: "directory not empty"), and the guest never sees
//! them.
//!
//! Which case holds is decided by the fact that makes the difference:
//! whether `<bundle>/rootfs` is a mount point in this process's mount
//! namespace, which is the one containerd wrote through (both are the host's:
//! the proxy is started by containerd and does not unshare). A mount point:
//! containerd wrote into the container, nothing to do. A bare directory:
//! kata-cr stages the archive, unopened, beside the image set
//! ([`kata_cr_api::ROOTFS_DIFF_FILE`]) and kata-cr-agent applies it from
//! inside the guest's view of the rootfs before criu runs (it judges every
//! entry: the archive is untrusted); what containerd left in the bare
//! directory is removed, following nothing.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::{Error, Result};

/// How deep a tree [`clear_debris`] removes.
const MAX_DEPTH: usize = 512;

/// Where containerd looks for the diff of the checkpoint in `checkpoint`
/// (`filepath.Join(checkpoint, "..", "rootfs-diff.tar")`).
pub fn archive_of(checkpoint: &Path) -> Option<PathBuf> {
    let parent = checkpoint.components().as_path().parent()?;
    Some(parent.join(kata_cr_api::ROOTFS_DIFF_FILE))
}

fn mount_id(path: &Path) -> Result<u64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidArgument(format!("{}: NUL in path", path.display())))?;
    // SAFETY: statx writes into the zeroed struct it is given.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("statx {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Error::io(
            format!("statx {}", path.display()),
            std::io::Error::other("the kernel gives no mount id (Linux 5.8+ does)"),
        ));
    }
    Ok(stx.stx_mnt_id)
}

/// Whether `rootfs` is a mount point here (not on the same mount as its
/// parent directory).
pub fn is_mount_point(rootfs: &Path) -> Result<bool> {
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    Ok(mount_id(rootfs)? != mount_id(parent)?)
}

fn nix_err(ctx: String) -> impl FnOnce(Errno) -> Error {
    move |e| Error::io(ctx, std::io::Error::from(e))
}

fn entries(dir: BorrowedFd<'_>) -> Result<Vec<String>> {
    let dup = nix::unistd::dup(dir).map_err(nix_err("dup".into()))?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(nix_err("read a directory".into()))?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(nix_err("read a directory".into()))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    Ok(names)
}

fn remove(dir: BorrowedFd<'_>, name: &str, dev: u64, depth: usize, shown: &Path) -> Result<()> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(nix_err(format!("stat {}/{name}", shown.display()))(e)),
    };
    let is_dir = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
    if !is_dir {
        return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
            .map_err(nix_err(format!("unlink {}/{name}", shown.display())));
    }
    if depth >= MAX_DEPTH || st.st_dev != dev {
        return Err(Error::InvalidArgument(format!(
            "{}/{name}: deeper than {MAX_DEPTH} levels or another filesystem; left in place",
            shown.display()
        )));
    }
    let sub: OwnedFd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_err(format!("open {}/{name}", shown.display())))?;
    let sub_shown = shown.join(name);
    for child in entries(sub.as_fd())? {
        remove(sub.as_fd(), &child, dev, depth + 1, &sub_shown)?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
        .map_err(nix_err(format!("rmdir {}/{name}", shown.display())))
}

/// Removes everything in the bare directory `rootfs` (containerd's apply
/// that missed the container), keeping the directory itself, following no
/// link and crossing into no other filesystem. Refuses a mount point (that
/// would be the container's rootfs). Returns the number of top-level
/// entries removed.
pub fn clear_debris(rootfs: &Path) -> Result<usize> {
    if is_mount_point(rootfs)? {
        return Err(Error::InvalidArgument(format!(
            "{} is a mount point: not containerd's debris; left in place",
            rootfs.display()
        )));
    }
    let fd = nix::fcntl::open(
        rootfs,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_err(format!("open {}", rootfs.display())))?;
    let dev = fstat(&fd)
        .map_err(nix_err(format!("stat {}", rootfs.display())))?
        .st_dev;
    let names = entries(fd.as_fd())?;
    for n in &names {
        remove(fd.as_fd(), n, dev, 0, rootfs)?;
    }
    Ok(names.len())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn the_archive_is_beside_the_checkpoint_dir() {
        assert_eq!(
            archive_of(Path::new("/var/lib/c/ctr/restore/checkpoint")),
            Some(PathBuf::from("/var/lib/c/ctr/restore/rootfs-diff.tar"))
        );
        assert_eq!(
            archive_of(Path::new("/var/lib/c/ctr/restore/checkpoint/")),
            Some(PathBuf::from("/var/lib/c/ctr/restore/rootfs-diff.tar"))
        );
        assert_eq!(archive_of(Path::new("/")), None);
    }

    #[test]
    fn a_bare_directory_is_no_mount_point_and_proc_is() {
        let t = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(t.path()).unwrap());
        assert!(is_mount_point(Path::new("/proc")).unwrap());
    }

    #[test]
    fn debris_goes_and_nothing_outside_it() {
        let t = tempfile::tempdir().unwrap();
        let (rootfs, host) = (t.path().join("rootfs"), t.path().join("host"));
        std::fs::create_dir_all(rootfs.join("tmp/deep/er")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("keep"), b"k").unwrap();
        std::fs::write(rootfs.join("tmp/deep/er/echo"), b"1").unwrap();
        symlink(&host, rootfs.join("tmp/link")).unwrap();
        symlink(host.join("keep"), rootfs.join("f")).unwrap();
        assert_eq!(clear_debris(&rootfs).unwrap(), 2);
        assert_eq!(std::fs::read_dir(&rootfs).unwrap().count(), 0);
        assert_eq!(std::fs::read(host.join("keep")).unwrap(), b"k");
        assert!(
            clear_debris(Path::new("/proc")).is_err(),
            "a mount point is refused"
        );
    }
}
