//! The image directory `<rootfs>/.kata-cr/<name>/` inside a container's
//! rootfs, created and used without ever following a path the container
//! could have planted.
//!
//! The container's root may own anything in its rootfs. Every step is
//! relative to a descriptor: the rootfs is opened `O_PATH|O_NOFOLLOW`,
//! `.kata-cr` and the image directory are created with `mkdirat` and opened
//! with `openat2(RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH)` (plain `openat`
//! with `O_NOFOLLOW` on kernels without it), then checked to be real
//! directories owned by the daemon's user. criu gets the directory as an
//! inherited descriptor (`/proc/self/fd/N`), never by path.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::error::{Error, Result};

/// Directory of kata-cr's files in a container's rootfs, and the longest
/// image directory name: the contract shared with the proxy.
pub use crate::api::{IMAGE_ROOT as KATA_DIR, MAX_IMAGE_DIR_LEN as MAX_NAME_LEN};

/// Checks an image directory name by the rule the proxy applies too
/// ([`crate::api::validate_image_dir`]).
pub fn validate_name(name: &str) -> Result<()> {
    crate::api::validate_image_dir(name).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// A freshly created, empty image directory. Dropping it leaves it in place:
/// call [`ImageDir::remove`] to get rid of a failed one.
#[derive(Debug)]
pub struct ImageDir {
    path: PathBuf,
    name: OsString,
    kata_dir: OwnedFd,
    dir: OwnedFd,
}

/// Opens `name` below `parent` as a directory, refusing symlinks.
fn open_dir_beneath(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_BENEATH);
    match nix::fcntl::openat2(parent, name, how) {
        Err(Errno::ENOSYS) => nix::fcntl::openat(parent, name, flags, Mode::empty()),
        other => other,
    }
}

/// Creates `name` below `parent` (mode 0700) if absent (if present and
/// `must_be_new`: `AlreadyExists`), opens it and checks it is a real
/// directory owned by the daemon's user. `shown` names it in errors.
fn make_dir(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
    must_be_new: bool,
) -> Result<OwnedFd> {
    let created = match nix::sys::stat::mkdirat(parent, name, Mode::S_IRWXU) {
        Ok(()) => true,
        Err(Errno::EEXIST) if must_be_new => {
            return Err(Error::AlreadyExists(format!(
                "{} already exists",
                shown.display()
            )))
        }
        Err(Errno::EEXIST) => false,
        Err(e) => return Err(Error::io(format!("mkdir {}", shown.display()), e)),
    };
    let fd = open_dir_beneath(parent, name).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV => Error::InvalidArgument(format!(
            "{} is not a directory (a symlink or another kind of file): refusing to use it",
            shown.display()
        )),
        e => Error::io(format!("open {}", shown.display()), e),
    })?;
    let st = nix::sys::stat::fstat(&fd)
        .map_err(|e| Error::io(format!("stat {}", shown.display()), e))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return Err(Error::InvalidArgument(format!(
            "{} is not a directory: refusing to use it",
            shown.display()
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me {
        return Err(Error::InvalidArgument(format!(
            "{} is owned by uid {}, not {me}: refusing to use it",
            shown.display(),
            st.st_uid
        )));
    }
    // A directory we made gets exactly 0700 whatever the umask; an existing
    // one keeps its mode: `.kata-cr` usually exists already, made by the
    // runtime as the parent of the init's mount point, and a workload
    // running as another user must still reach `/.kata-cr/init` through it.
    if created {
        nix::sys::stat::fchmod(&fd, Mode::S_IRWXU)
            .map_err(|e| Error::io(format!("chmod {}", shown.display()), e))?;
    }
    Ok(fd)
}

/// The container's rootfs as an `O_PATH` directory fd, not following a link.
fn open_rootfs(rootfs: &Path) -> Result<OwnedFd> {
    if !rootfs.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "rootfs {:?} is not an absolute path",
            rootfs
        )));
    }
    nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ENOENT => Error::NotFound(format!("rootfs {} does not exist", rootfs.display())),
        Errno::ELOOP | Errno::ENOTDIR => {
            Error::InvalidArgument(format!("rootfs {} is not a directory", rootfs.display()))
        }
        e => Error::io(format!("open {}", rootfs.display()), e),
    })
}

impl ImageDir {
    /// Creates `<rootfs>/.kata-cr/<name>/` (mode 0700); `name` must pass
    /// [`validate_name`] and must not exist yet.
    pub fn create(rootfs: &Path, name: &str) -> Result<Self> {
        validate_name(name)?;
        let root = open_rootfs(rootfs)?;
        let kata_path = rootfs.join(KATA_DIR);
        let kata_dir = make_dir(root.as_fd(), OsStr::new(KATA_DIR), &kata_path, false)?;
        let path = kata_path.join(name);
        let dir = make_dir(kata_dir.as_fd(), OsStr::new(name), &path, true)?;
        Ok(ImageDir {
            path,
            name: OsString::from(name),
            kata_dir,
            dir,
        })
    }

    /// Opens the existing `<rootfs>/.kata-cr/<name>/` (images staged for a
    /// restore), with the same checks as [`ImageDir::create`]; `NotFound`
    /// when it does not exist.
    pub fn open(rootfs: &Path, name: &str) -> Result<Self> {
        validate_name(name)?;
        let root = open_rootfs(rootfs)?;
        let kata_path = rootfs.join(KATA_DIR);
        let path = kata_path.join(name);
        let missing = |e: Errno, shown: &Path| match e {
            Errno::ENOENT => Error::NotFound(format!("{} does not exist", shown.display())),
            Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV => Error::InvalidArgument(format!(
                "{} is not a directory (a symlink or another kind of file): refusing to use it",
                shown.display()
            )),
            e => Error::io(format!("open {}", shown.display()), e),
        };
        let kata_dir = open_dir_beneath(root.as_fd(), OsStr::new(KATA_DIR))
            .map_err(|e| missing(e, &kata_path))?;
        let dir =
            open_dir_beneath(kata_dir.as_fd(), OsStr::new(name)).map_err(|e| missing(e, &path))?;
        let st = nix::sys::stat::fstat(&dir)
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != me {
            return Err(Error::InvalidArgument(format!(
                "{} is owned by uid {}, not {me}: refusing to use it",
                path.display(),
                st.st_uid
            )));
        }
        Ok(ImageDir {
            path,
            name: OsString::from(name),
            kata_dir,
            dir,
        })
    }

    /// `<rootfs>/.kata-cr/<name>` as the daemon sees it (for messages and
    /// replies only: never opened by this path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory (read-only descriptor, close-on-exec).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Copies `src` (a file of the daemon's own, outside the container) into
    /// the image set as `name`: criu's `dump.log` and `stats-dump` ride with
    /// the images to the proxy, which puts them where runc's criu writes them.
    pub fn add_file(&self, name: &str, src: &Path) -> Result<()> {
        validate_name(name)?;
        let mut input = std::fs::File::open(src)
            .map_err(|e| Error::io(format!("open {}", src.display()), e))?;
        let fd = nix::fcntl::openat(
            self.dir.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| Error::io(format!("create {}", self.path.join(name).display()), e))?;
        let mut out = std::fs::File::from(fd);
        std::io::copy(&mut input, &mut out).map_err(|e| {
            Error::io(
                format!("copy {} into {}", src.display(), self.path.display()),
                e,
            )
        })?;
        Ok(())
    }

    /// Writes `data` as a new file `name` of the image set.
    pub fn add_bytes(&self, name: &str, data: &[u8]) -> Result<()> {
        validate_name(name)?;
        let fd = nix::fcntl::openat(
            self.dir.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| Error::io(format!("create {}", self.path.join(name).display()), e))?;
        std::io::Write::write_all(&mut std::fs::File::from(fd), data)
            .map_err(|e| Error::io(format!("write {}", self.path.join(name).display()), e))
    }

    /// Reads the file `name` of the image set (a regular file, not followed
    /// if it is a link); `None` when it is missing.
    pub fn read_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        validate_name(name)?;
        let fd = match nix::fcntl::openat(
            self.dir.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(Error::io(
                    format!("open {}", self.path.join(name).display()),
                    e,
                ))
            }
        };
        let mut f = std::fs::File::from(fd);
        if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(Error::InvalidArgument(format!(
                "{} is not a regular file",
                self.path.join(name).display()
            )));
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data)
            .map_err(|e| Error::io(format!("read {}", self.path.join(name).display()), e))?;
        Ok(Some(data))
    }

    /// Fsyncs every file of the directory, the directory and `.kata-cr`;
    /// returns the file names, sorted.
    pub fn sync_and_list(&self) -> Result<Vec<String>> {
        self.list_files(true)
    }

    /// Returns the file names, sorted; fsyncs them (and the directories)
    /// only if `sync`.
    pub fn list_files(&self, sync: bool) -> Result<Vec<String>> {
        if !sync {
            let mut names: Vec<String> = list(self.dir.as_fd())
                .map_err(|e| Error::io(format!("listing {}", self.path.display()), e))?
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            names.sort();
            return Ok(names);
        }
        let mut names = Vec::new();
        for name in list(self.dir.as_fd())
            .map_err(|e| Error::io(format!("listing {}", self.path.display()), e))?
        {
            let fd = nix::fcntl::openat(
                self.dir.as_fd(),
                name.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
                Mode::empty(),
            )
            .map_err(|e| Error::io(format!("open {}", self.path.join(&name).display()), e))?;
            nix::unistd::fsync(&fd)
                .map_err(|e| Error::io(format!("fsync {}", self.path.join(&name).display()), e))?;
            names.push(name.to_string_lossy().into_owned());
        }
        nix::unistd::fsync(&self.dir)
            .map_err(|e| Error::io(format!("fsync {}", self.path.display()), e))?;
        nix::unistd::fsync(&self.kata_dir).map_err(|e| {
            Error::io(
                format!("fsync {}", self.path.with_file_name("").display()),
                e,
            )
        })?;
        names.sort();
        Ok(names)
    }

    /// Removes the directory and everything in it (descriptor-relative, not
    /// following symlinks).
    pub fn remove(self) -> Result<()> {
        remove_tree_at(self.kata_dir.as_fd(), &self.name)
            .and_then(|()| nix::unistd::fsync(&self.kata_dir))
            .map_err(|e| Error::io(format!("removing {}", self.path.display()), e))
    }
}

/// Names in a directory, without `.` and `..`.
fn list(dir: BorrowedFd<'_>) -> nix::Result<Vec<OsString>> {
    let dup = nix::fcntl::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(dup)?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(OsStr::from_bytes(&name).to_os_string());
        }
    }
    Ok(out)
}

/// `rm -r parent/name` without following symlinks.
fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    match nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        Err(Errno::ENOENT) => return Ok(()),
        other => return other,
    }
    let dir = open_dir_beneath(parent, name)?;
    for child in list(dir.as_fd())? {
        remove_tree_at(dir.as_fd(), &child)?;
    }
    drop(dir);
    nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

/// The `--images-dir` value that makes a child process use `fd`, which it
/// inherits under the same number.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt as _, PermissionsExt as _};

    use super::*;

    #[test]
    fn open_finds_staged_images_and_refuses_symlinks() {
        let rootfs = tempfile::tempdir().unwrap();
        let err = ImageDir::open(rootfs.path(), "img").unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
        let made = ImageDir::create(rootfs.path(), "img").unwrap();
        fs::write(made.path().join("inventory.img"), b"x").unwrap();
        drop(made);
        let d = ImageDir::open(rootfs.path(), "img").unwrap();
        assert_eq!(d.list_files(false).unwrap(), ["inventory.img"]);
        d.remove().unwrap();
        assert!(!rootfs.path().join(".kata-cr/img").exists());
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), rootfs.path().join(".kata-cr/evil")).unwrap();
        let err = ImageDir::open(rootfs.path(), "evil").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    }

    #[test]
    fn names() {
        // The rule itself is kata-cr-api's (tested there); refusals are
        // INVALID_ARGUMENT here.
        validate_name(&"x".repeat(MAX_NAME_LEN)).unwrap();
        for bad in ["..", "a/b", &"x".repeat(MAX_NAME_LEN + 1)] {
            let err = validate_name(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn creates_private_dirs_syncs_lists_and_removes() {
        let rootfs = tempfile::tempdir().unwrap();
        let d = ImageDir::create(rootfs.path(), "ckpt-1").unwrap();
        let kata = rootfs.path().join(KATA_DIR);
        assert_eq!(d.path(), kata.join("ckpt-1"));
        for p in [&kata, &kata.join("ckpt-1")] {
            let m = fs::symlink_metadata(p).unwrap();
            assert!(m.is_dir());
            assert_eq!(m.permissions().mode() & 0o7777, 0o700, "{}", p.display());
        }
        // Files written through the descriptor path, as criu does.
        let via_fd = proc_fd_path(d.fd());
        fs::write(via_fd.join("inventory.img"), b"x").unwrap();
        fs::write(via_fd.join("pstree.img"), b"y").unwrap();
        fs::create_dir(via_fd.join("sub")).unwrap();
        fs::write(via_fd.join("sub/f"), b"z").unwrap();
        fs::remove_dir_all(via_fd.join("sub")).unwrap();
        assert_eq!(d.sync_and_list().unwrap(), ["inventory.img", "pstree.img"]);
        assert_eq!(
            d.list_files(false).unwrap(),
            ["inventory.img", "pstree.img"]
        );

        // A second one next to it; the same name again is refused.
        let d2 = ImageDir::create(rootfs.path(), "ckpt-2").unwrap();
        let err = ImageDir::create(rootfs.path(), "ckpt-1").unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");

        d.remove().unwrap();
        assert!(!kata.join("ckpt-1").exists());
        fs::create_dir(proc_fd_path(d2.fd()).join("nested")).unwrap();
        d2.remove().unwrap();
        assert!(!kata.join("ckpt-2").exists());
        assert!(kata.is_dir());
    }

    #[test]
    fn an_existing_kata_cr_keeps_its_mode() {
        let rootfs = tempfile::tempdir().unwrap();
        let kata = rootfs.path().join(KATA_DIR);
        fs::create_dir(&kata).unwrap();
        fs::set_permissions(&kata, fs::Permissions::from_mode(0o755)).unwrap();
        let d = ImageDir::create(rootfs.path(), "ckpt-1").unwrap();
        assert_eq!(
            fs::metadata(&kata).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            fs::metadata(d.path()).unwrap().permissions().mode() & 0o7777,
            0o700
        );
    }

    #[test]
    fn refuses_a_planted_kata_cr_symlink_and_touches_nothing_outside() {
        let rootfs = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), rootfs.path().join(KATA_DIR)).unwrap();
        let err = ImageDir::create(rootfs.path(), "ckpt-1").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(err.to_string().contains(KATA_DIR), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);

        // A relative symlink, and one to a file: same.
        fs::remove_file(rootfs.path().join(KATA_DIR)).unwrap();
        symlink("../../../../tmp", rootfs.path().join(KATA_DIR)).unwrap();
        assert!(matches!(
            ImageDir::create(rootfs.path(), "x").unwrap_err(),
            Error::InvalidArgument(_)
        ));
        fs::remove_file(rootfs.path().join(KATA_DIR)).unwrap();
        fs::write(rootfs.path().join(KATA_DIR), b"").unwrap();
        assert!(matches!(
            ImageDir::create(rootfs.path(), "x").unwrap_err(),
            Error::InvalidArgument(_)
        ));
    }

    #[test]
    fn refuses_a_planted_image_dir_symlink() {
        let rootfs = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(rootfs.path().join(KATA_DIR)).unwrap();
        symlink(outside.path(), rootfs.path().join(KATA_DIR).join("ckpt-1")).unwrap();
        let err = ImageDir::create(rootfs.path(), "ckpt-1").unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_a_kata_cr_dir_owned_by_someone_else() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let rootfs = tempfile::tempdir().unwrap();
        let kata = rootfs.path().join(KATA_DIR);
        fs::create_dir(&kata).unwrap();
        std::os::unix::fs::chown(&kata, Some(1000), Some(1000)).unwrap();
        let err = ImageDir::create(rootfs.path(), "ckpt-1").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert_eq!(fs::metadata(&kata).unwrap().uid(), 1000);
        assert_eq!(fs::read_dir(&kata).unwrap().count(), 0);
    }

    #[test]
    fn a_rootfs_that_is_a_symlink_or_missing_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        fs::create_dir(&real).unwrap();
        symlink(&real, base.path().join("link")).unwrap();
        assert!(matches!(
            ImageDir::create(&base.path().join("link"), "x").unwrap_err(),
            Error::InvalidArgument(_)
        ));
        assert!(matches!(
            ImageDir::create(&base.path().join("nope"), "x").unwrap_err(),
            Error::NotFound(_)
        ));
        assert!(matches!(
            ImageDir::create(Path::new("rel"), "x").unwrap_err(),
            Error::InvalidArgument(_)
        ));
    }
}
