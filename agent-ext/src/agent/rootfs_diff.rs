//! Applies CRI's rootfs diff (`rootfs-diff.tar` of a checkpoint archive: an
//! OCI layer, gzip or plain, with `.wh.` whiteouts) to a restoring
//! container's rootfs, from beside it (the Kata guest), before criu runs.
//! containerd applies it on the host, into `<bundle>/rootfs`, which under
//! Kata is not where the container's rootfs is mounted (see the proxy's
//! `cr::rootfs_diff`).
//!
//! The archive is untrusted (an archive or an image from anywhere), and so
//! is the rootfs (the container wrote it): nothing is ever resolved through
//! a name either planted. Every entry's path is walked one component at a
//! time from the rootfs's directory fd with `O_NOFOLLOW | O_DIRECTORY`, so a
//! symlink on the way (planted by the archive or by the container) or a
//! mount point is refused rather than followed; names with `..` and
//! absolute names are refused, as are hard links whose target is outside
//! the rootfs by the same rules. Files are created with `O_EXCL |
//! O_NOFOLLOW` after removing what was there (as containerd replaces it),
//! and their owner and mode set on the open file.
//!
//! What containerd's apply does that this does not (an archive asking for
//! it is refused with a message naming the entry, not partly applied in
//! silence): device nodes (a container's devices are its runtime's to
//! give); extended attributes are not restored (`security.capability`
//! would be a privilege the archive grants itself). Modes, set-id bits
//! included, and owners are kept as containerd keeps them.
//!
//! Sizes are capped like an image set's ([`super::limits`]): each file,
//! the sum of all files and the number of entries; PAX headers and long
//! names by [`super::tar_reader::MAX_META`].

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::error::{Error, Result};
use super::limits::{self, Limits};
use super::tar_reader::{Header, Kind, Reader};

/// Name of the rootfs diff in a staged image set (criu never writes it).
pub const FILE_NAME: &str = kata_cr_api::ROOTFS_DIFF_FILE;

/// How deep a tree the diff may remove (a whiteout of a directory).
const MAX_DEPTH: usize = 512;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What an application did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Entries created (files, directories, links, fifos).
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Whiteouts and opaque directories applied.
    pub removals: u64,
}

fn refused(what: &str, entry: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!(
        "{what}: entry {entry:?} {why}; refusing the rootfs diff"
    ))
}

/// The entry's path as components: no `..`, not absolute, no empty or `.`
/// components. Empty for the root itself.
pub fn components<'a>(what: &str, name: &'a str) -> Result<Vec<&'a str>> {
    if name.starts_with('/') {
        return Err(refused(what, name, "is an absolute path"));
    }
    let comps: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.contains(&"..") {
        return Err(refused(what, name, "has a '..' component"));
    }
    if comps.iter().any(|c| c.contains('\0')) {
        return Err(refused(what, name, "has a NUL byte"));
    }
    // The staged image set is a sibling at the rootfs's root: the diff has
    // no business there.
    if let Some(first) = comps.first() {
        if kata_cr_api::is_private_image_dir(first) || *first == kata_cr_api::IMAGE_ROOT {
            return Err(refused(what, name, "is in kata-cr's image directory"));
        }
    }
    Ok(comps)
}

fn dev_of(fd: BorrowedFd<'_>, shown: &str) -> Result<u64> {
    Ok(fstat(fd)
        .map_err(|e| Error::io(format!("stat {shown}"), e))?
        .st_dev)
}

fn kind_of(mode: u32) -> SFlag {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits())
}

/// The rootfs being written, and what stays fixed while it is.
struct Root<'a> {
    what: &'a str,
    fd: OwnedFd,
    dev: u64,
}

impl Root<'_> {
    /// Opens directory `name` under `dir`: never a symlink, never another
    /// filesystem (a mount point). Missing: created (mode 0755, as
    /// containerd makes missing parents) when `create`.
    fn subdir(
        &self,
        dir: BorrowedFd<'_>,
        name: &str,
        entry: &str,
        create: bool,
    ) -> Result<OwnedFd> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::openat(dir, name, flags, Mode::empty()) {
            Err(Errno::ENOENT) if create => {
                match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(Error::io(format!("{}: mkdir for {entry:?}", self.what), e))
                    }
                }
                nix::fcntl::openat(dir, name, flags, Mode::empty())
            }
            r => r,
        };
        let fd = fd.map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => refused(
                self.what,
                entry,
                format!("goes through {name:?}, which is a symlink or not a directory"),
            ),
            Errno::ENOENT => refused(
                self.what,
                entry,
                format!("needs {name:?}, which does not exist"),
            ),
            e => Error::io(format!("{}: open {name:?} for {entry:?}", self.what), e),
        })?;
        if dev_of(fd.as_fd(), name)? != self.dev {
            return Err(refused(
                self.what,
                entry,
                format!("goes through {name:?}, a mount point"),
            ));
        }
        Ok(fd)
    }

    /// The directory holding the last component of `comps`.
    fn parent(&self, comps: &[&str], entry: &str, create: bool) -> Result<OwnedFd> {
        let mut cur = nix::unistd::dup(&self.fd).map_err(|e| Error::io("dup", e))?;
        for c in &comps[..comps.len() - 1] {
            cur = self.subdir(cur.as_fd(), c, entry, create)?;
        }
        Ok(cur)
    }

    /// Removes `name` under `dir` and everything in it, following nothing
    /// and not crossing into another filesystem. Missing is fine.
    fn remove(&self, dir: BorrowedFd<'_>, name: &str, entry: &str, depth: usize) -> Result<()> {
        let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => {
                return Err(Error::io(
                    format!("{}: stat {name:?} for {entry:?}", self.what),
                    e,
                ))
            }
        };
        if kind_of(st.st_mode) != SFlag::S_IFDIR {
            return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(|e| {
                Error::io(format!("{}: unlink {name:?} for {entry:?}", self.what), e)
            });
        }
        if depth >= MAX_DEPTH {
            return Err(refused(
                self.what,
                entry,
                format!("removes a tree deeper than {MAX_DEPTH}"),
            ));
        }
        let sub = self.subdir(dir, name, entry, false)?;
        for child in children(sub.as_fd())? {
            self.remove(sub.as_fd(), &child, entry, depth + 1)?;
        }
        unlinkat(dir, name, UnlinkatFlags::RemoveDir)
            .map_err(|e| Error::io(format!("{}: rmdir {name:?} for {entry:?}", self.what), e))
    }
}

fn children(dir: BorrowedFd<'_>) -> Result<Vec<String>> {
    let dup = nix::unistd::dup(dir).map_err(|e| Error::io("dup", e))?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(|e| Error::io("read a directory", e))?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(|e| Error::io("read a directory", e))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    Ok(names)
}

/// Opens the archive's stream: gzip (what containerd writes, whatever the
/// file's name says) or a plain tar.
fn decompressed<'a>(what: &str, archive: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::new(archive);
    let head = buf
        .fill_buf()
        .map_err(|e| Error::io(format!("{what}: read"), e))?;
    match head {
        [0x1f, 0x8b, ..] => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buf))),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Err(Error::InvalidArgument(format!(
            "{what}: zstd-compressed; kata-cr reads gzip or plain tar rootfs diffs"
        ))),
        _ => Ok(Box::new(buf)),
    }
}

/// Applies the diff read from `archive` to the rootfs at `rootfs` (see the
/// module documentation). `what` names the archive in errors. On error the
/// rootfs holds what was applied up to the refused entry: the caller fails
/// the restore (the container is not started from a half-applied diff).
pub fn apply(rootfs: &Path, archive: impl Read, limits: &Limits, what: &str) -> Result<Applied> {
    let fd = nix::fcntl::open(
        rootfs,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("open rootfs {}", rootfs.display()), e))?;
    let dev = dev_of(fd.as_fd(), &rootfs.display().to_string())?;
    let root = Root { what, fd, dev };
    let mut tar = Reader::new(decompressed(what, archive)?);
    let mut applied = Applied::default();
    let (mut n, mut total) = (0u64, 0u64);
    // Paths this archive created: an opaque directory keeps them.
    let mut unpacked: HashSet<String> = HashSet::new();
    while let Some(h) = tar.next_entry()? {
        n += 1;
        if n > limits.files {
            return Err(Error::InvalidArgument(format!(
                "{what}: more than {} entries (--max-image-files)",
                limits.files
            )));
        }
        let comps = components(what, &h.name)?;
        if comps.is_empty() {
            continue; // the root itself, as containerd ignores it
        }
        if h.kind == Kind::File {
            limits.check_file(what, &h.name, h.size)?;
            total = total.saturating_add(h.size);
            if total > limits.total {
                return Err(Error::InvalidArgument(format!(
                    "{what}: over the {} an image set may hold (--max-image-set-bytes)",
                    limits::show(limits.total)
                )));
            }
        }
        let parent = root.parent(&comps, &h.name, true)?;
        let base = *comps.last().expect("not empty");
        if let Some(target) = base.strip_prefix(WHITEOUT) {
            let prefix = comps[..comps.len() - 1].join("/");
            if base == OPAQUE {
                for child in children(parent.as_fd())? {
                    let full = join(&prefix, &child);
                    if !unpacked.contains(&full) {
                        root.remove(parent.as_fd(), &child, &h.name, 0)?;
                    }
                }
            } else {
                if target.is_empty() || target == "." || target == ".." {
                    return Err(refused(what, &h.name, "is a whiteout of nothing"));
                }
                root.remove(parent.as_fd(), target, &h.name, 0)?;
            }
            applied.removals += 1;
            continue;
        }
        // What is there goes, unless both are directories (then merged).
        match fstatat(&parent, base, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if kind_of(st.st_mode) == SFlag::S_IFDIR && h.kind == Kind::Dir => {}
            Ok(_) => root.remove(parent.as_fd(), base, &h.name, 0)?,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::io(format!("{what}: stat {:?}", h.name), e)),
        }
        let written = create(&root, parent.as_fd(), base, &h, &mut tar.data())?;
        applied.entries += 1;
        applied.bytes += written;
        unpacked.insert(comps.join("/"));
    }
    Ok(applied)
}

fn join(prefix: &str, name: &str) -> String {
    match prefix {
        "" => name.to_string(),
        p => format!("{p}/{name}"),
    }
}

fn nix_io(what: &str, op: &str, entry: &str) -> impl FnOnce(Errno) -> Error {
    let ctx = format!("{what}: {op} {entry:?}");
    move |e| Error::io(ctx, e)
}

/// Sets owner then mode (chown clears set-id bits) on an open file.
fn own(fd: BorrowedFd<'_>, h: &Header, what: &str) -> Result<()> {
    nix::unistd::fchown(
        fd,
        Some(nix::unistd::Uid::from_raw(h.uid)),
        Some(nix::unistd::Gid::from_raw(h.gid)),
    )
    .map_err(nix_io(what, "chown", &h.name))?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(h.mode))
        .map_err(nix_io(what, "chmod", &h.name))
}

/// Creates one entry `base` in `dir`; returns the bytes written.
fn create(
    root: &Root<'_>,
    dir: BorrowedFd<'_>,
    base: &str,
    h: &Header,
    data: &mut impl Read,
) -> Result<u64> {
    let what = root.what;
    match h.kind {
        Kind::Dir => {
            match nix::sys::stat::mkdirat(dir, base, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(nix_io(what, "mkdir", &h.name)(e)),
            }
            let fd = root.subdir(dir, base, &h.name, false)?;
            own(fd.as_fd(), h, what)?;
            Ok(0)
        }
        Kind::File => {
            let fd = nix::fcntl::openat(
                dir,
                base,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(nix_io(what, "create", &h.name))?;
            let mut f = File::from(fd);
            let written = std::io::copy(data, &mut f).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    refused(what, &h.name, "is cut short (the archive ends inside it)")
                }
                _ => Error::io(format!("{what}: write {:?}", h.name), e),
            })?;
            own(f.as_fd(), h, what)?;
            let t = nix::sys::time::TimeSpec::new(h.mtime, 0);
            nix::sys::stat::futimens(&f, &t, &t).map_err(nix_io(
                what,
                "set the times of",
                &h.name,
            ))?;
            Ok(written)
        }
        Kind::Symlink => {
            nix::unistd::symlinkat(h.link.as_str(), dir, base)
                .map_err(nix_io(what, "symlink", &h.name))?;
            nix::unistd::fchownat(
                dir,
                base,
                Some(nix::unistd::Uid::from_raw(h.uid)),
                Some(nix::unistd::Gid::from_raw(h.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(nix_io(what, "chown", &h.name))?;
            Ok(0)
        }
        Kind::HardLink => {
            let target = components(what, &h.link).map_err(|_| {
                refused(
                    what,
                    &h.name,
                    format!("links to {:?}, outside the rootfs", h.link),
                )
            })?;
            if target.is_empty() {
                return Err(refused(what, &h.name, "links to the root"));
            }
            let tdir = root.parent(&target, &h.name, false)?;
            let tbase = *target.last().expect("not empty");
            // Without AT_SYMLINK_FOLLOW: a symlink target is linked, not followed.
            nix::unistd::linkat(&tdir, tbase, dir, base, AtFlags::empty()).map_err(nix_io(
                what,
                &format!("hard-link {:?} to", h.link),
                &h.name,
            ))?;
            Ok(0)
        }
        Kind::Fifo => {
            nix::sys::stat::mknodat(
                dir,
                base,
                SFlag::S_IFIFO,
                Mode::from_bits_truncate(0o600),
                0,
            )
            .map_err(nix_io(what, "mkfifo", &h.name))?;
            // fchown/fchmod need an open file; a fifo opened for I/O would
            // block: an O_PATH descriptor, checked, then its /proc name.
            let fd = nix::fcntl::openat(
                dir,
                base,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(nix_io(what, "open", &h.name))?;
            if kind_of(fstat(&fd).map_err(nix_io(what, "stat", &h.name))?.st_mode) != SFlag::S_IFIFO
            {
                return Err(refused(what, &h.name, "changed while being created"));
            }
            let proc = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
            // SAFETY: plain syscalls on a NUL-terminated path we own.
            let chown = unsafe { libc::chown(proc.as_ptr(), h.uid, h.gid) };
            if chown != 0 {
                let e = std::io::Error::last_os_error();
                return Err(Error::io(format!("{what}: chown {:?}", h.name), e));
            }
            // SAFETY: as above.
            if unsafe { libc::chmod(proc.as_ptr(), h.mode as libc::mode_t) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(Error::io(format!("{what}: chmod {:?}", h.name), e));
            }
            Ok(0)
        }
        Kind::Char | Kind::Block => Err(refused(
            what,
            &h.name,
            "is a device node (kata-cr does not create devices in a container's rootfs)",
        )),
        Kind::Other(f) => Err(refused(
            what,
            &h.name,
            format!("has tar type {:?}, which kata-cr does not apply", f as char),
        )),
    }
}

#[cfg(test)]
#[path = "rootfs_diff_tests.rs"]
mod tests;
