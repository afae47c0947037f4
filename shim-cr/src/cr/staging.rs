//! Moving image sets between the container's rootfs upperdir and the places
//! containerd and CRI use, without ever following a path the container
//! controls. The container can write anything under its rootfs, so every
//! step below `<upperdir>` goes through `openat` with `O_NOFOLLOW` from a
//! directory fd, only regular files are accepted, and anything else (a
//! symlink, a fifo, a device, a directory) is refused without being opened.
//!
//! Checkpoint: `<upperdir>/<name>/*` -> `<dest>/*`, flat (CRI extracts the
//! result with one `os.Create` per entry), where `<name>` is the private
//! `.kata-cr-<hex>` directory kata-cr-agent made for the dump. Same
//! filesystem: `renameat2(NOREPLACE)`, O(1) per file whatever its size;
//! otherwise a copy. The emptied directory is the agent's to remove,
//! through its view of the rootfs (`ReleaseImages`): removing it here,
//! behind the overlay's back, would leave the container a stale entry.
//!
//! Restore: `<checkpoint dir>/*` -> `<upperdir>/.kata-cr-<hex>/*`, copied
//! (the checkpoint stays containerd's), regular files only: the set came from
//! an image or an archive and is no more trusted than the container. The
//! agent removes it after the restore, through its view.
//!
//! Names without the `.kata-cr-` prefix mean `<upperdir>/.kata-cr/<name>`,
//! the layout of older agents.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use kata_cr_api::IMAGE_ROOT as STAGING_DIR;
use nix::dir::Dir;
use nix::fcntl::{openat, renameat2, OFlag, RenameFlags};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::{Error, Result};

/// Whether `name` is a private image directory (at the rootfs's root).
pub fn is_private(name: &str) -> bool {
    kata_cr_api::is_private_image_dir(name)
}

/// How the files crossed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Rename,
    Copy,
}

#[derive(Debug)]
pub struct Staged {
    pub files: Vec<String>,
    pub bytes: u64,
    pub method: Method,
}

fn nix_err(ctx: String) -> impl FnOnce(nix::errno::Errno) -> Error {
    move |e| Error::io(ctx, std::io::Error::from(e))
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_err(format!("open {}", path.display())))?;
    Ok(fd)
}

/// Open `name` under `dir` as a directory, refusing symlinks and non-dirs.
fn open_subdir<F: AsFd>(dir: &F, name: &str, shown: &str) -> Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => Error::InvalidArgument(format!(
            "{shown} is not a directory (a symlink or other file planted in the container?); refusing to follow it"
        )),
        e => Error::io(format!("open {shown}"), e.into()),
    })
}

/// Image set names follow the rules the agent applies too: a private name
/// at the rootfs's root, or a legacy one under `.kata-cr/`.
fn validate_name(name: &str) -> Result<()> {
    if is_private(name) {
        return Ok(());
    }
    Ok(kata_cr_api::validate_image_dir(name)?)
}

/// A fresh private image directory name, `.kata-cr-<32 hex digits>`
/// (128 random bits): the container can neither predict nor block it.
pub fn new_private_name() -> String {
    format!(
        "{}{}",
        kata_cr_api::PRIVATE_IMAGE_DIR_PREFIX,
        [random_hex(), random_hex()].concat()
    )
}

/// 8 random bytes as hex (the time and pid when /dev/urandom fails).
fn random_hex() -> String {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = (t.as_nanos() as u64 ^ std::process::id() as u64).to_le_bytes();
    }
    hex::encode(b)
}

fn entries(dir: &OwnedFd) -> Result<Vec<String>> {
    let dup = nix::unistd::dup(dir).map_err(nix_err("dup".into()))?;
    let mut d = Dir::from_fd(dup).map_err(nix_err("read image dir".into()))?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(nix_err("read image dir".into()))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    names.sort();
    Ok(names)
}

/// Move the set `name` (see the module documentation) flat into `dest`.
/// On failure nothing is left behind in `dest` by this call. A legacy set's
/// directory is removed here either way (a partial image set is worth
/// nothing); a private one is the agent's to remove.
pub fn stage_out(upper: &Path, name: &str, dest: &Path) -> Result<Staged> {
    validate_name(name)?;
    if is_private(name) {
        // The agent removes its directory (see the module documentation).
        let shown = format!("{}/{name}", upper.display());
        let upper_fd = open_dir(upper)?;
        let src = open_subdir(&upper_fd, name, &shown)?;
        let dest_fd = open_dir(dest)?;
        return move_files(&src, &dest_fd, &shown, dest);
    }
    let shown = format!("{}/{STAGING_DIR}/{name}", upper.display());
    let res = (|| {
        let upper_fd = open_dir(upper)?;
        let kcr = open_subdir(
            &upper_fd,
            STAGING_DIR,
            &format!("{}/{STAGING_DIR}", upper.display()),
        )?;
        let src = open_subdir(&kcr, name, &shown)?;
        let dest_fd = open_dir(dest)?;
        move_files(&src, &dest_fd, &shown, dest)
    })();
    let cleanup = remove_set(upper, name);
    match (res, cleanup) {
        (Ok(s), Ok(())) => Ok(s),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), _) => Err(e),
    }
}

fn move_files(src: &OwnedFd, dest: &OwnedFd, shown: &str, dest_path: &Path) -> Result<Staged> {
    let same_fs = fstat(src).map_err(nix_err(shown.into()))?.st_dev
        == fstat(dest)
            .map_err(nix_err(dest_path.display().to_string()))?
            .st_dev;
    let mut staged = Staged {
        files: Vec::new(),
        bytes: 0,
        method: if same_fs {
            Method::Rename
        } else {
            Method::Copy
        },
    };
    let res = (|| {
        for n in entries(src)? {
            let st = fstatat(src, n.as_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(nix_err(format!("{shown}/{n}")))?;
            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
                return Err(Error::InvalidArgument(format!(
                    "{shown}/{n} is not a regular file; refusing it"
                )));
            }
            let mut renamed = false;
            if staged.method == Method::Rename {
                // One device can still be two mounts (bind mounts): EXDEV.
                match renameat2(
                    src,
                    n.as_str(),
                    dest,
                    n.as_str(),
                    RenameFlags::RENAME_NOREPLACE,
                ) {
                    Ok(()) => renamed = true,
                    Err(nix::errno::Errno::EXDEV) => staged.method = Method::Copy,
                    Err(e) => {
                        return Err(Error::io(
                            format!("rename {shown}/{n} to {}/{n}", dest_path.display()),
                            e.into(),
                        ))
                    }
                }
            }
            if !renamed {
                copy_one(src, dest, &n, shown, dest_path)?;
            }
            staged.bytes += st.st_size as u64;
            staged.files.push(n);
        }
        Ok(())
    })();
    if let Err(e) = res {
        for n in &staged.files {
            let _ = unlinkat(dest, n.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        return Err(e);
    }
    Ok(staged)
}

fn copy_one(src: &OwnedFd, dest: &OwnedFd, n: &str, shown: &str, dest_path: &Path) -> Result<()> {
    let in_fd = openat(
        src,
        n,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )
    .map_err(nix_err(format!("open {shown}/{n}")))?;
    // Re-check on the open file: the name may have been swapped meanwhile.
    let st = fstat(&in_fd).map_err(nix_err(format!("{shown}/{n}")))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(Error::InvalidArgument(format!(
            "{shown}/{n} is not a regular file; refusing it"
        )));
    }
    let out_fd = openat(
        dest,
        n,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(nix_err(format!("create {}/{n}", dest_path.display())))?;
    let mut input = File::from(in_fd);
    let mut output = File::from(out_fd);
    std::io::copy(&mut input, &mut output).map_err(|e| {
        Error::io(
            format!("copy {shown}/{n} to {}/{n}", dest_path.display()),
            e,
        )
    })?;
    output
        .sync_all()
        .map_err(|e| Error::io(format!("fsync {}/{n}", dest_path.display()), e))?;
    Ok(())
}

/// Copy the image set in `src` into a new set `name` of `upper` (mode
/// 0700). Files that are not regular (links, fifos, directories) are refused.
/// On failure the new directory is removed.
pub fn stage_in(src: &Path, upper: &Path, name: &str) -> Result<Staged> {
    validate_name(name)?;
    let src_fd = open_dir(src)?;
    let upper_fd = open_dir(upper)?;
    let (kcr, shown) = if is_private(name) {
        let dup = nix::unistd::dup(&upper_fd).map_err(nix_err("dup".into()))?;
        (dup, format!("{}/{name}", upper.display()))
    } else {
        let kcr_shown = format!("{}/{STAGING_DIR}", upper.display());
        match nix::sys::stat::mkdirat(&upper_fd, STAGING_DIR, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::io(format!("mkdir {kcr_shown}"), e.into())),
        }
        let kcr = open_subdir(&upper_fd, STAGING_DIR, &kcr_shown)?;
        (kcr, format!("{kcr_shown}/{name}"))
    };
    nix::sys::stat::mkdirat(&kcr, name, Mode::from_bits_truncate(0o700))
        .map_err(nix_err(format!("mkdir {shown}")))?;
    let res = (|| {
        let dest = open_subdir(&kcr, name, &shown)?;
        let mut staged = Staged {
            files: Vec::new(),
            bytes: 0,
            method: Method::Copy,
        };
        for n in entries(&src_fd)? {
            let st = fstatat(
                &src_fd,
                n.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(nix_err(format!("{}/{n}", src.display())))?;
            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
                return Err(Error::InvalidArgument(format!(
                    "checkpoint entry {}/{n} is not a regular file; refusing it",
                    src.display()
                )));
            }
            copy_one(
                &src_fd,
                &dest,
                &n,
                &src.display().to_string(),
                Path::new(&shown),
            )?;
            staged.bytes += st.st_size as u64;
            staged.files.push(n);
        }
        Ok(staged)
    })();
    if res.is_err() {
        let _ = remove_tree(&kcr, name, 0);
    }
    res
}

/// Copies the regular file `src` into the existing set `name` of `upper`
/// as `as_name` (never following a link on either side, never replacing a
/// file). Returns its size.
pub fn add_file(src: &Path, upper: &Path, name: &str, as_name: &str) -> Result<u64> {
    validate_name(name)?;
    if !is_private(name) {
        return Err(Error::InvalidArgument(format!(
            "{name}: only a private image set takes extra files"
        )));
    }
    let (src_dir, file) = match (src.parent(), src.file_name().and_then(|f| f.to_str())) {
        (Some(d), Some(f)) => (d, f),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "{}: not a file path",
                src.display()
            )))
        }
    };
    let src_fd = open_dir(src_dir)?;
    let st = fstatat(&src_fd, file, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(nix_err(src.display().to_string()))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file; refusing it",
            src.display()
        )));
    }
    let upper_fd = open_dir(upper)?;
    let shown = format!("{}/{name}", upper.display());
    let dest = open_subdir(&upper_fd, name, &shown)?;
    // copy_one names the file the same on both sides.
    if file != as_name {
        return Err(Error::InvalidArgument(format!(
            "{}: staged as {as_name}, not under another name",
            src.display()
        )));
    }
    copy_one(
        &src_fd,
        &dest,
        file,
        &src_dir.display().to_string(),
        Path::new(&shown),
    )?;
    Ok(st.st_size as u64)
}

/// Removes the set `name` of `upper` off the runtime; a failure is logged
/// (what stays is inside the container's rootfs, which its Delete removes).
pub async fn discard(upper: PathBuf, name: String) {
    let set = name.clone();
    let removed = crate::blocking::run("remove a staged image set", move || {
        remove_set(&upper, &name)
    });
    if let Err(e) = removed.await {
        tracing::warn!(set, error = %e, "cannot remove a staged image set");
    }
}

/// Remove the set `name` of `upper` and everything in it, following nothing.
/// Missing is fine.
pub fn remove_set(upper: &Path, name: &str) -> Result<()> {
    validate_name(name)?;
    let upper_fd = open_dir(upper)?;
    if is_private(name) {
        return remove_tree(&upper_fd, name, 0);
    }
    let kcr = match open_subdir(&upper_fd, STAGING_DIR, STAGING_DIR) {
        Ok(fd) => fd,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    // `.kata-cr` itself stays (empty): removing a directory from the upper
    // layer under a mounted overlay leaves the overlay a stale entry, and the
    // next checkpoint could not create it again.
    remove_tree(&kcr, name, 0)
}

fn remove_tree(parent: &OwnedFd, name: &str, depth: usize) -> Result<()> {
    let st = match fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::io(format!("stat {name}"), e.into())),
    };
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR && depth < 16
    {
        let dir = open_subdir(parent, name, name)?;
        for n in entries(&dir)? {
            remove_tree(&dir, &n, depth + 1)?;
        }
        unlinkat(parent, name, UnlinkatFlags::RemoveDir)
            .map_err(nix_err(format!("rmdir {name}")))?;
    } else {
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
            .map_err(nix_err(format!("unlink {name}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn set(upper: &Path, name: &str, files: &[(&str, &[u8])]) {
        let d = upper.join(STAGING_DIR).join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (n, data) in files {
            std::fs::write(d.join(n), data).unwrap();
        }
    }

    #[test]
    fn moves_flat_and_leaves_no_trace() {
        let t = tempfile::tempdir().unwrap();
        let (upper, dest) = (t.path().join("upper"), t.path().join("dest"));
        std::fs::create_dir_all(&dest).unwrap();
        set(
            &upper,
            "ckpt-1",
            &[("inventory.img", b"inv"), ("pages-1.img", &[7u8; 4096])],
        );
        std::fs::write(upper.join(STAGING_DIR).join("init"), b"").unwrap();
        let s = stage_out(&upper, "ckpt-1", &dest).unwrap();
        assert_eq!(s.files, vec!["inventory.img", "pages-1.img"]);
        assert_eq!(s.bytes, 4099);
        assert_eq!(s.method, Method::Rename);
        assert_eq!(
            std::fs::read(dest.join("pages-1.img")).unwrap(),
            vec![7u8; 4096]
        );
        assert!(!upper.join(STAGING_DIR).join("ckpt-1").exists());
        // Anything else beside it is not ours to remove, and the (then
        // empty) staging dir stays: see remove_set.
        assert!(upper.join(STAGING_DIR).join("init").exists());
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let (upper, dest, outside) = (
            t.path().join("upper"),
            t.path().join("dest"),
            t.path().join("host"),
        );
        for d in [&upper, &dest, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(outside.join("secret"), b"host data").unwrap();
        // .kata-cr itself a symlink to a host directory.
        symlink(&outside, upper.join(STAGING_DIR)).unwrap();
        let e = stage_out(&upper, "secret", &dest).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert!(outside.join("secret").exists(), "host file untouched");
        std::fs::remove_file(upper.join(STAGING_DIR)).unwrap();

        // The image dir a symlink.
        std::fs::create_dir_all(upper.join(STAGING_DIR)).unwrap();
        symlink(&outside, upper.join(STAGING_DIR).join("ckpt")).unwrap();
        let e = stage_out(&upper, "ckpt", &dest).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert!(outside.join("secret").exists());

        // The planted link itself was removed, its target was not.
        assert!(upper
            .join(STAGING_DIR)
            .join("ckpt")
            .symlink_metadata()
            .is_err());
        assert!(outside.is_dir());

        // A symlink inside the image set, pointing at a host file.
        set(&upper, "ckpt", &[("a.img", b"a")]);
        symlink(
            outside.join("secret"),
            upper.join(STAGING_DIR).join("ckpt").join("b.img"),
        )
        .unwrap();
        let e = stage_out(&upper, "ckpt", &dest).unwrap_err();
        assert!(e.to_string().contains("b.img"), "{e}");
        assert_eq!(
            std::fs::read_dir(&dest).unwrap().count(),
            0,
            "nothing half-staged"
        );
        assert!(outside.join("secret").exists());
        assert!(
            !upper.join(STAGING_DIR).join("ckpt").exists(),
            "bad set removed"
        );
    }

    #[test]
    fn fifos_are_refused_without_being_opened() {
        let t = tempfile::tempdir().unwrap();
        let (upper, dest) = (t.path().join("upper"), t.path().join("dest"));
        std::fs::create_dir_all(&dest).unwrap();
        set(&upper, "c", &[]);
        nix::unistd::mkfifo(
            &upper.join(STAGING_DIR).join("c").join("x.img"),
            Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let e = stage_out(&upper, "c", &dest).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn copy_path_copies_bytes() {
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("s"), t.path().join("d"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(src.join("f.img"), b"payload").unwrap();
        let (sfd, dfd) = (open_dir(&src).unwrap(), open_dir(&dest).unwrap());
        copy_one(&sfd, &dfd, "f.img", "src", &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("f.img")).unwrap(), b"payload");
    }

    #[test]
    fn names_are_single_components() {
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        validate_name("ckpt-0123abcd").unwrap();
    }

    #[test]
    fn stage_in_copies_regular_files_into_a_private_dir() {
        let t = tempfile::tempdir().unwrap();
        let (ck, upper) = (t.path().join("ck"), t.path().join("upper"));
        std::fs::create_dir_all(&ck).unwrap();
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::write(ck.join("inventory.img"), b"inv").unwrap();
        std::fs::write(ck.join("pages-1.img"), vec![3u8; 8192]).unwrap();
        let s = stage_in(&ck, &upper, "restore-1").unwrap();
        assert_eq!(s.files, vec!["inventory.img", "pages-1.img"]);
        let d = upper.join(STAGING_DIR).join("restore-1");
        assert_eq!(
            std::fs::read(d.join("pages-1.img")).unwrap(),
            vec![3u8; 8192]
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(ck.join("inventory.img").exists(), "the checkpoint stays");
        assert!(
            stage_in(&ck, &upper, "restore-1").is_err(),
            "never into an existing dir"
        );
    }

    #[test]
    fn stage_in_refuses_links_in_the_set_and_a_planted_staging_dir() {
        let t = tempfile::tempdir().unwrap();
        let (ck, upper, host) = (
            t.path().join("ck"),
            t.path().join("upper"),
            t.path().join("host"),
        );
        for d in [&ck, &upper, &host] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(host.join("shadow"), b"secret").unwrap();
        std::fs::write(ck.join("a.img"), b"a").unwrap();
        symlink(host.join("shadow"), ck.join("b.img")).unwrap();
        let e = stage_in(&ck, &upper, "r").unwrap_err();
        assert!(e.to_string().contains("b.img"), "{e}");
        assert!(
            !upper.join(STAGING_DIR).join("r").exists(),
            "nothing half-staged"
        );
        std::fs::remove_file(ck.join("b.img")).unwrap();
        std::fs::remove_dir(upper.join(STAGING_DIR)).unwrap();
        symlink(&host, upper.join(STAGING_DIR)).unwrap();
        let e = stage_in(&ck, &upper, "r").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert_eq!(
            std::fs::read_dir(&host).unwrap().count(),
            1,
            "host dir untouched"
        );
    }

    /// The proxy prunes nothing by pattern: removing a set it staged (a
    /// failed Create, a Delete before Start, a finished restore) touches
    /// that set alone, never another operation's in flight in the same
    /// rootfs (another staged restore, the agent's dump directory).
    #[test]
    fn removing_a_set_never_touches_another_in_flight() {
        let t = tempfile::tempdir().unwrap();
        let (upper, ck) = (t.path().join("upper"), t.path().join("ck"));
        for d in [&upper, &ck] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(ck.join("inventory.img"), b"inv").unwrap();
        let sets: Vec<String> = (0..40).map(|_| new_private_name()).collect();
        for n in &sets {
            stage_in(&ck, &upper, n).unwrap();
        }
        let dumping = upper.join(".kata-cr-0123456789abcdef0123456789abcdef");
        std::fs::create_dir_all(&dumping).unwrap();
        std::fs::write(dumping.join("pages-1.img"), b"p").unwrap();
        for n in &sets[..39] {
            remove_set(&upper, n).unwrap();
        }
        assert!(upper.join(&sets[39]).join("inventory.img").is_file());
        assert!(dumping.join("pages-1.img").is_file());
        assert_eq!(std::fs::read_dir(&upper).unwrap().count(), 2);
    }

    #[test]
    fn private_sets_live_at_the_root_and_their_dir_is_left_to_the_agent() {
        let t = tempfile::tempdir().unwrap();
        let (upper, dest, ck) = (
            t.path().join("upper"),
            t.path().join("dest"),
            t.path().join("ck"),
        );
        for d in [&dest, &ck] {
            std::fs::create_dir_all(d).unwrap();
        }
        let name = ".kata-cr-0123456789abcdef0123456789abcdef";
        std::fs::create_dir_all(upper.join(name)).unwrap();
        std::fs::write(upper.join(name).join("inventory.img"), b"inv").unwrap();
        let s = stage_out(&upper, name, &dest).unwrap();
        assert_eq!(s.files, vec!["inventory.img"]);
        assert_eq!(std::fs::read_dir(upper.join(name)).unwrap().count(), 0);
        assert!(!upper.join(STAGING_DIR).exists(), "no .kata-cr made");
        std::fs::write(ck.join("pstree.img"), b"p").unwrap();
        let r = ".kata-cr-ffffffffffffffffffffffffffffffff";
        stage_in(&ck, &upper, r).unwrap();
        assert!(upper.join(r).join("pstree.img").is_file());
        assert!(!upper.join(STAGING_DIR).exists());
        remove_set(&upper, r).unwrap();
        assert!(!upper.join(r).exists());
    }

    #[test]
    fn new_names_are_private_valid_and_distinct() {
        let (a, b) = (new_private_name(), new_private_name());
        assert_ne!(a, b);
        assert!(is_private(&a), "{a}");
        validate_name(&a).unwrap();
        assert!(validate_name(".kata-cr").is_err());
    }

    #[test]
    fn removing_a_missing_set_is_fine() {
        let t = tempfile::tempdir().unwrap();
        remove_set(t.path(), "nope").unwrap();
    }
}
