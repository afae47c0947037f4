//! Image directories inside a container's rootfs, made and used without
//! ever following a path the container could have planted, and named so
//! that the container can neither predict nor block them.
//!
//! The images must live in the rootfs: under Kata it is the one directory
//! the guest and the host share (virtio-fs), and the proxy moves them out
//! through the rootfs's upperdir on the host. So the container's root (who
//! may own everything in its rootfs) must not be able to interfere:
//!
//! - A checkpoint's directory is `<rootfs>/.kata-cr-<32 random hex>`
//!   ([`ImageDir::create_private`]): 128 bits from the kernel's random
//!   generator, chosen by the agent at the moment of the dump. Nothing the
//!   container plants under any name is in the way, and an earlier guess
//!   cannot be the name: `mkdirat` fails on anything that exists, and the
//!   agent draws another name.
//! - Every step is relative to a descriptor: the rootfs is opened
//!   `O_PATH|O_NOFOLLOW`, the directory created with `mkdirat` and opened
//!   with `openat2(RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH)` (`openat` with
//!   `O_NOFOLLOW` on kernels without it), then checked to be a directory
//!   owned by the agent's user, mode 0700. criu gets it as an inherited
//!   descriptor (`/proc/self/fd/N`), never by path.
//! - The directory goes away through the agent's view of the rootfs (never
//!   behind an overlay's back, which would leave the container a stale
//!   entry): on a failed dump at once, after a successful one when the
//!   proxy has moved the files out ([`ImageDir::release`]). The engine keeps
//!   the workload frozen for the whole checkpoint, so it never sees the
//!   directory, and no rootfs diff taken afterwards carries it.
//!
//! Restores read images the proxy staged at `<rootfs>/.kata-cr-<hex>` the
//! same way ([`ImageDir::open`]); a legacy name (no `.kata-cr-` prefix)
//! means `<rootfs>/.kata-cr/<name>`, where older proxies stage them.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::error::{Error, Result};
/// Directory under which older proxies stage restore images, the longest
/// legacy name, and the private names at a rootfs's root: the contract
/// shared with the proxy.
pub use crate::api::{
    is_private_image_dir as is_private_name, IMAGE_ROOT as LEGACY_DIR,
    MAX_IMAGE_DIR_LEN as MAX_NAME_LEN, PRIVATE_IMAGE_DIR_HEX as PRIVATE_HEX,
    PRIVATE_IMAGE_DIR_PREFIX as PRIVATE_PREFIX,
};

/// Checks a file or legacy directory name by the rule the proxy applies too
/// ([`crate::api::validate_image_dir`]): one path component of
/// `[A-Za-z0-9._-]`, not starting with `.`, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_name(name: &str) -> Result<()> {
    crate::api::validate_image_dir(name).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Checks an image directory name a request names: a private name, or a
/// legacy one ([`validate_name`]).
pub fn validate_dir_name(name: &str) -> Result<()> {
    if is_private_name(name) {
        return Ok(());
    }
    validate_name(name)
}

/// 16 bytes from the kernel's random generator, as hex.
fn random_hex() -> Result<String> {
    let mut b = [0u8; PRIVATE_HEX / 2];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: getrandom writes at most `len` bytes into the buffer it
        // is given, which is ours and that long.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        match Errno::result(n) {
            Ok(n) => got += n as usize,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("getrandom", e)),
        }
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// An image directory. Dropping it leaves it in place: [`ImageDir::remove`]
/// gets rid of it.
#[derive(Debug)]
pub struct ImageDir {
    path: PathBuf,
    name: OsString,
    /// The directory holding it (the rootfs, or its legacy `.kata-cr`).
    parent: OwnedFd,
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

fn not_a_dir(shown: &Path) -> Error {
    Error::InvalidArgument(format!(
        "{} is not a directory (a symlink or another kind of file): refusing to use it",
        shown.display()
    ))
}

/// Checks that `fd` is a directory owned by the daemon's user.
fn check_own_dir(fd: &OwnedFd, shown: &Path) -> Result<()> {
    let st =
        nix::sys::stat::fstat(fd).map_err(|e| Error::io(format!("stat {}", shown.display()), e))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return Err(not_a_dir(shown));
    }
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me {
        return Err(Error::InvalidArgument(format!(
            "{} is owned by uid {}, not {me}: refusing to use it",
            shown.display(),
            st.st_uid
        )));
    }
    Ok(())
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

/// What opening an existing directory found.
fn open_error(e: Errno, shown: &Path) -> Error {
    match e {
        Errno::ENOENT => Error::NotFound(format!("{} does not exist", shown.display())),
        Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV => not_a_dir(shown),
        e => Error::io(format!("open {}", shown.display()), e),
    }
}

/// How many names [`ImageDir::create_private`] draws before giving up
/// (a collision with 128 random bits means something is wrong).
const CREATE_TRIES: usize = 8;

impl ImageDir {
    /// Creates `<rootfs>/.kata-cr-<random>/`, mode 0700, owned by the
    /// daemon's user (see the module documentation).
    pub fn create_private(rootfs: &Path) -> Result<Self> {
        let root = open_rootfs(rootfs)?;
        for _ in 0..CREATE_TRIES {
            let name = format!("{PRIVATE_PREFIX}{}", random_hex()?);
            let path = rootfs.join(&name);
            match nix::sys::stat::mkdirat(&root, name.as_str(), Mode::S_IRWXU) {
                Ok(()) => {}
                // Something is there already: never touch it, draw again.
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(Error::io(format!("mkdir {}", path.display()), e)),
            }
            let made = ImageDir {
                dir: open_dir_beneath(root.as_fd(), OsStr::new(&name))
                    .map_err(|e| open_error(e, &path))?,
                path,
                name: OsString::from(&name),
                parent: root,
            };
            check_own_dir(&made.dir, &made.path)?;
            // Exactly 0700 whatever the umask.
            nix::sys::stat::fchmod(&made.dir, Mode::S_IRWXU)
                .map_err(|e| Error::io(format!("chmod {}", made.path.display()), e))?;
            return Ok(made);
        }
        Err(Error::io(
            format!("creating an image directory in {}", rootfs.display()),
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{CREATE_TRIES} random names all taken"),
            ),
        ))
    }

    /// Opens the existing image directory `name` of `rootfs` (images staged
    /// for a restore): `<rootfs>/<name>` for a private name,
    /// `<rootfs>/.kata-cr/<name>` for a legacy one. `NotFound` when it
    /// does not exist.
    pub fn open(rootfs: &Path, name: &str) -> Result<Self> {
        validate_dir_name(name)?;
        let root = open_rootfs(rootfs)?;
        let (parent, path) = if is_private_name(name) {
            (root, rootfs.join(name))
        } else {
            let legacy = rootfs.join(LEGACY_DIR);
            let fd = open_dir_beneath(root.as_fd(), OsStr::new(LEGACY_DIR))
                .map_err(|e| open_error(e, &legacy))?;
            (fd, legacy.join(name))
        };
        let dir =
            open_dir_beneath(parent.as_fd(), OsStr::new(name)).map_err(|e| open_error(e, &path))?;
        check_own_dir(&dir, &path)?;
        Ok(ImageDir {
            path,
            name: OsString::from(name),
            parent,
            dir,
        })
    }

    /// Removes the private image directory `name` of `rootfs` and what is
    /// left in it; `false` when it was not there.
    pub fn release(rootfs: &Path, name: &str) -> Result<bool> {
        if !is_private_name(name) {
            return Err(Error::InvalidArgument(format!(
                "image_dir {name:?} is not an image directory kata-cr-agent makes \
                 ({PRIVATE_PREFIX} and {PRIVATE_HEX} hex digits)"
            )));
        }
        match ImageDir::open(rootfs, name) {
            Ok(d) => d.remove().map(|()| true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The directory's name (relative to the rootfs for a private one).
    pub fn name(&self) -> &str {
        self.name.to_str().unwrap_or_default()
    }

    /// Where it is as the daemon sees it (for messages and replies only:
    /// never opened by this path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory (read-only descriptor, close-on-exec).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    fn create_file(&self, name: &str) -> Result<File> {
        validate_name(name)?;
        let fd = nix::fcntl::openat(
            self.dir.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| Error::io(format!("create {}", self.path.join(name).display()), e))?;
        Ok(File::from(fd))
    }

    /// Copies the last `max` bytes (all of it when shorter) of `src` (a
    /// file of the daemon's own, outside the container) into the image set
    /// as `name`: criu's `dump.log` and `stats-dump` ride with the images to
    /// the proxy, which puts them where runc's criu writes them.
    pub fn add_file(&self, name: &str, src: &Path, max: u64) -> Result<()> {
        let mut input =
            File::open(src).map_err(|e| Error::io(format!("open {}", src.display()), e))?;
        let len = input
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", src.display()), e))?
            .len();
        if len > max {
            input
                .seek(SeekFrom::Start(len - max))
                .map_err(|e| Error::io(format!("seek {}", src.display()), e))?;
        }
        let mut out = self.create_file(name)?;
        std::io::copy(&mut input.take(max), &mut out).map_err(|e| {
            Error::io(
                format!("copy {} into {}", src.display(), self.path.display()),
                e,
            )
        })?;
        Ok(())
    }

    /// Writes `data` as a new file `name` of the image set.
    pub fn add_bytes(&self, name: &str, data: &[u8]) -> Result<()> {
        std::io::Write::write_all(&mut self.create_file(name)?, data)
            .map_err(|e| Error::io(format!("write {}", self.path.join(name).display()), e))
    }

    /// Opens the file `name` of the image set for reading: a regular file,
    /// not followed if it is a link; `None` when it is missing. Its size.
    pub fn open_file(&self, name: &str) -> Result<Option<(File, u64)>> {
        let shown = || self.path.join(name).display().to_string();
        if name.contains('/') || name == "." || name == ".." || name.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{}: not a file name",
                shown()
            )));
        }
        let fd = match nix::fcntl::openat(
            self.dir.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => {
                return Err(Error::InvalidArgument(format!("{} is a symlink", shown())))
            }
            Err(e) => return Err(Error::io(format!("open {}", shown()), e)),
        };
        let f = File::from(fd);
        let meta = f
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", shown()), e))?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a regular file",
                shown()
            )));
        }
        Ok(Some((f, meta.len())))
    }

    /// Every entry of the set with its size; anything but a regular file
    /// (a directory, a link, a fifo...) is refused.
    pub fn listing(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for name in list(self.dir.as_fd())
            .map_err(|e| Error::io(format!("listing {}", self.path.display()), e))?
        {
            let st = nix::sys::stat::fstatat(
                self.dir.as_fd(),
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| Error::io(format!("stat {}", self.path.join(&name).display()), e))?;
            let shown = name.to_string_lossy().into_owned();
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                return Err(Error::InvalidArgument(format!(
                    "{}: {shown} is not a regular file",
                    self.path.display()
                )));
            }
            out.push((shown, st.st_size as u64));
        }
        out.sort();
        Ok(out)
    }

    /// Fsyncs every file of the directory, the directory and its parent;
    /// returns the file names, sorted.
    pub fn sync_and_list(&self) -> Result<Vec<String>> {
        self.list_files(true)
    }

    /// Returns the file names, sorted; fsyncs them (and the directories)
    /// only if `sync`.
    pub fn list_files(&self, sync: bool) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for name in list(self.dir.as_fd())
            .map_err(|e| Error::io(format!("listing {}", self.path.display()), e))?
        {
            if sync {
                let fd = nix::fcntl::openat(
                    self.dir.as_fd(),
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
                    Mode::empty(),
                )
                .map_err(|e| Error::io(format!("open {}", self.path.join(&name).display()), e))?;
                nix::unistd::fsync(&fd).map_err(|e| {
                    Error::io(format!("fsync {}", self.path.join(&name).display()), e)
                })?;
            }
            names.push(name.to_string_lossy().into_owned());
        }
        if sync {
            nix::unistd::fsync(&self.dir)
                .map_err(|e| Error::io(format!("fsync {}", self.path.display()), e))?;
            // The parent may be an O_PATH descriptor, which fsync refuses:
            // reopen it for reading.
            let parent = nix::fcntl::openat(
                self.parent.as_fd(),
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .and_then(|fd| nix::unistd::fsync(&fd));
            parent.map_err(|e| {
                Error::io(
                    format!("fsync {}", self.path.with_file_name("").display()),
                    e,
                )
            })?;
        }
        names.sort();
        Ok(names)
    }

    /// Removes the directory and everything in it (descriptor-relative, not
    /// following symlinks). Entries someone else removed meanwhile (the
    /// proxy moves the files out through the host's side of the rootfs)
    /// are not an error.
    pub fn remove(self) -> Result<()> {
        remove_tree_at(self.parent.as_fd(), &self.name, 0)
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

/// Deepest directory nesting [`remove_tree_at`] goes into (criu writes a
/// flat directory; anything deeper was not made by it).
const MAX_DEPTH: usize = 16;

/// `rm -r parent/name` without following symlinks.
fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr, depth: usize) -> nix::Result<()> {
    match nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        // Gone already (ESTALE: moved out behind an overlay's back).
        Err(Errno::ENOENT) | Err(Errno::ESTALE) => return Ok(()),
        other => return other,
    }
    if depth >= MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    let dir = match open_dir_beneath(parent, name) {
        Err(Errno::ENOENT) | Err(Errno::ESTALE) => return Ok(()),
        other => other?,
    };
    for child in list(dir.as_fd())? {
        remove_tree_at(dir.as_fd(), &child, depth + 1)?;
    }
    drop(dir);
    match nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Err(Errno::ENOENT) | Err(Errno::ESTALE) => Ok(()),
        other => other,
    }
}

/// The `--images-dir` value that makes a child process use `fd`, which it
/// inherits under the same number.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// An image set read through [`ImageDir`], for
/// [`super::image_claims::read`].
pub struct DirSource<'a>(pub &'a ImageDir);

impl super::image_claims::Source for DirSource<'_> {
    fn open(&self, name: &str) -> Result<Option<(Box<dyn std::io::Read + '_>, u64)>> {
        Ok(self
            .0
            .open_file(name)?
            .map(|(f, n)| (Box::new(f) as Box<dyn std::io::Read>, n)))
    }
    fn names(&self) -> Result<Vec<String>> {
        Ok(self.0.listing()?.into_iter().map(|(n, _)| n).collect())
    }
    fn what(&self) -> String {
        self.0.path().display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt as _};

    use super::*;

    #[test]
    fn private_dirs_are_unpredictable_private_and_removed_whole() {
        let rootfs = tempfile::tempdir().unwrap();
        let a = ImageDir::create_private(rootfs.path()).unwrap();
        let b = ImageDir::create_private(rootfs.path()).unwrap();
        assert!(is_private_name(a.name()) && is_private_name(b.name()));
        assert_ne!(a.name(), b.name());
        assert_eq!(a.path(), rootfs.path().join(a.name()));
        let m = fs::symlink_metadata(a.path()).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.permissions().mode() & 0o7777, 0o700);
        // Files written through the descriptor path, as criu does.
        let via_fd = proc_fd_path(a.fd());
        fs::write(via_fd.join("inventory.img"), b"x").unwrap();
        fs::write(via_fd.join("pstree.img"), b"y").unwrap();
        assert_eq!(a.sync_and_list().unwrap(), ["inventory.img", "pstree.img"]);
        assert_eq!(
            a.listing().unwrap(),
            [
                ("inventory.img".to_string(), 1),
                ("pstree.img".to_string(), 1)
            ]
        );
        let name = a.name().to_string();
        drop(a);
        assert!(ImageDir::release(rootfs.path(), &name).unwrap());
        assert!(!ImageDir::release(rootfs.path(), &name).unwrap());
        b.remove().unwrap();
        assert_eq!(fs::read_dir(rootfs.path()).unwrap().count(), 0, "no trace");
    }

    #[test]
    fn whatever_the_container_planted_a_checkpoint_dir_is_made_beside_it() {
        let rootfs = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("marker"), b"host").unwrap();
        // The old fixed name, as a symlink, a file, a fifo, a full directory.
        symlink(outside.path(), rootfs.path().join(".kata-cr")).unwrap();
        fs::write(rootfs.path().join(".kata-cr-file"), b"").unwrap();
        nix::unistd::mkfifo(&rootfs.path().join(".kata-cr-fifo"), Mode::S_IRWXU).unwrap();
        fs::create_dir(rootfs.path().join(".kata-cr-dir")).unwrap();
        fs::write(rootfs.path().join(".kata-cr-dir/x"), b"").unwrap();
        let d = ImageDir::create_private(rootfs.path()).unwrap();
        fs::write(proc_fd_path(d.fd()).join("core-1.img"), b"c").unwrap();
        d.remove().unwrap();
        assert_eq!(fs::read_dir(rootfs.path()).unwrap().count(), 4);
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[test]
    fn open_finds_staged_images_and_refuses_symlinks() {
        let rootfs = tempfile::tempdir().unwrap();
        let name = format!("{PRIVATE_PREFIX}{}", "0".repeat(PRIVATE_HEX));
        let err = ImageDir::open(rootfs.path(), &name).unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
        fs::create_dir(rootfs.path().join(&name)).unwrap();
        fs::write(rootfs.path().join(&name).join("inventory.img"), b"x").unwrap();
        let d = ImageDir::open(rootfs.path(), &name).unwrap();
        assert_eq!(d.list_files(false).unwrap(), ["inventory.img"]);
        let (mut f, n) = d.open_file("inventory.img").unwrap().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), n), ("x", 1));
        assert!(d.open_file("nope.img").unwrap().is_none());
        d.remove().unwrap();
        assert!(!rootfs.path().join(&name).exists());

        // Legacy layout, and symlinks planted in both places.
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(rootfs.path().join(LEGACY_DIR)).unwrap();
        fs::create_dir(rootfs.path().join(LEGACY_DIR).join("img")).unwrap();
        ImageDir::open(rootfs.path(), "img")
            .unwrap()
            .remove()
            .unwrap();
        symlink(outside.path(), rootfs.path().join(LEGACY_DIR).join("evil")).unwrap();
        let err = ImageDir::open(rootfs.path(), "evil").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        symlink(outside.path(), rootfs.path().join(&name)).unwrap();
        let err = ImageDir::open(rootfs.path(), &name).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(matches!(
            ImageDir::release(rootfs.path(), &name).unwrap_err(),
            Error::InvalidArgument(_)
        ));
        assert!(outside.path().exists());
    }

    #[test]
    fn listing_refuses_what_is_not_a_regular_file() {
        let rootfs = tempfile::tempdir().unwrap();
        let d = ImageDir::create_private(rootfs.path()).unwrap();
        let p = proc_fd_path(d.fd());
        fs::write(p.join("a.img"), b"aa").unwrap();
        symlink("/etc/passwd", p.join("b.img")).unwrap();
        let e = d.listing().unwrap_err();
        assert!(e.to_string().contains("b.img is not a regular file"), "{e}");
        let e = d.open_file("b.img").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        fs::remove_file(p.join("b.img")).unwrap();
        nix::unistd::mkfifo(&p.join("c.img"), Mode::S_IRWXU).unwrap();
        let e = d.open_file("c.img").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        d.remove().unwrap();
    }

    #[test]
    fn add_file_keeps_the_end_of_a_long_log() {
        let rootfs = tempfile::tempdir().unwrap();
        let d = ImageDir::create_private(rootfs.path()).unwrap();
        let work = tempfile::tempdir().unwrap();
        let log = work.path().join("dump.log");
        fs::write(&log, b"0123456789").unwrap();
        d.add_file("dump.log", &log, 4).unwrap();
        assert_eq!(fs::read(d.path().join("dump.log")).unwrap(), b"6789");
        d.add_file("stats-dump", &log, 100).unwrap();
        assert_eq!(
            fs::read(d.path().join("stats-dump")).unwrap(),
            b"0123456789"
        );
        d.remove().unwrap();
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
        assert!(is_private_name(&format!(".kata-cr-{}", "a1".repeat(16))));
        for bad in [
            ".kata-cr-",
            ".kata-cr-ABCDEF0123456789abcdef0123456789",
            ".kata-cr-xx",
        ] {
            assert!(!is_private_name(bad), "{bad}");
        }
        validate_dir_name(&format!(".kata-cr-{}", "f".repeat(32))).unwrap();
        assert!(validate_dir_name(".kata-cr-zz").is_err());
    }

    #[test]
    fn a_rootfs_that_is_a_symlink_or_missing_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        fs::create_dir(&real).unwrap();
        symlink(&real, base.path().join("link")).unwrap();
        assert!(matches!(
            ImageDir::create_private(&base.path().join("link")).unwrap_err(),
            Error::InvalidArgument(_)
        ));
        assert!(matches!(
            ImageDir::create_private(&base.path().join("nope")).unwrap_err(),
            Error::NotFound(_)
        ));
        assert!(matches!(
            ImageDir::create_private(Path::new("rel")).unwrap_err(),
            Error::InvalidArgument(_)
        ));
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
    }
}
