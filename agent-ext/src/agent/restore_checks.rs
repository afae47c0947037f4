//! Whether an image set may be restored into a container: what it asks for
//! ([`Claims`]) against what the container was granted ([`Grants`], read
//! from the waiting init the runtime set up from the spec). Refusals are
//! `InvalidArgument` errors naming the image, the entry and the grant it
//! exceeds; nothing has been touched when one is returned.
//!
//! criu runs as root with every capability, in the agent's namespaces
//! (the host's in host mode, the guest's under Kata), and restores what the
//! images say: external mounts bound from its own mount namespace, the
//! credentials in each `core-*.img`, the namespaces that differ from its
//! own. runc trusts the image here; kata-cr does not:
//!
//! - Mounts. An external mount must carry a key kata-cr gives at dump
//!   ([`super::criu`]), at the mount point the key names, that the new
//!   container maps (its own spec's sources). Every other mount must be a
//!   fresh virtual filesystem (proc, sysfs, tmpfs, devpts, mqueue) on an
//!   anonymous device: nothing that would make criu mount a device, an
//!   overlay or a cgroup hierarchy of the host. The root mount namespace
//!   must hold the same mounts as the new container's (same mount points,
//!   same parents, same kind, at least its ro/nosuid/nodev/noexec): masked
//!   and read-only paths stay so; the spec's external binds may be missing
//!   or extra (their sources are the container's own). More mounts than
//!   that need `CAP_SYS_ADMIN`, as making them in the container would. The root of
//!   the tree is the new container's rootfs (criu's `--root`), whatever its
//!   entry says about its filesystem (a Kata guest's virtiofs root is
//!   "unsupported" to criu), and no fresh mount may be on its device (criu
//!   would bind the rootfs there); tasks with
//!   mount namespaces of their own are not restored.
//! - Credentials. Every thread has credentials in its core image (criu
//!   leaves a thread without them with its own root credentials); its
//!   capability sets are within the container's; its uids/gids are the
//!   container's unless it may change them (`CAP_SETUID`/`CAP_SETGID`);
//!   no secure bits without `CAP_SETPCAP`; `no_new_privs`, a seccomp filter
//!   and the LSM label stay when the container has them; no AppArmor policy
//!   loading; the audit login uid is the container's.
//! - Namespaces. The root task gets a new mount namespace, the container's
//!   pid namespace (criu's own, as criu runs inside it; or the external
//!   `extpid` of earlier image sets) and network namespace (external
//!   `extnet`, when the container has its own), the container's uts and ipc
//!   namespaces (joined by criu, their images written into them), and the
//!   time namespace criu makes to keep clocks going; nothing else (user
//!   namespaces are not kata-cr's to create). Other tasks may have mount or network namespaces of their own
//!   only with `CAP_SYS_ADMIN`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::criu::{EXT_NET_KEY, EXT_PID_KEY, EXT_ROOT_KEY};
use super::criu_messages::{fstype, MntEntry, SECCOMP_MODE_FILTER};
use super::error::{Error, Result};
use super::image_claims::Claims;

/// Capability numbers the checks use.
pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_SYS_ADMIN: u32 = 21;

/// Linux capability names by number (linux/capability.h).
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Mount flags compared (`MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC`).
pub const PROTECTIVE_FLAGS: u32 = 0xf;

/// A mount of the new container, from its init's `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub parent: u32,
    /// Mount point in the container.
    pub mountpoint: String,
    /// Filesystem type as mountinfo names it.
    pub fstype: String,
    /// `MS_*` flags of the mount (not the superblock's).
    pub flags: u32,
}

/// What the new container was granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Capabilities it may hold (any set).
    pub caps: u64,
    /// uids it runs with.
    pub uids: Vec<u32>,
    /// gids and supplementary groups it runs with.
    pub gids: Vec<u32>,
    pub no_new_privs: bool,
    /// Its init runs under a seccomp filter.
    pub seccomp_filter: bool,
    /// Its LSM label (`/proc/<init>/attr/current`), when it has one.
    pub lsm_label: Option<String>,
    /// Its audit login uid.
    pub loginuid: Option<u32>,
    /// It has a network namespace of its own (not the agent's).
    pub own_netns: bool,
    /// Its mounts.
    pub mounts: Vec<Mount>,
    /// The external mounts it maps: key -> source (as the agent sees it).
    pub external: BTreeMap<String, PathBuf>,
}

impl Grants {
    fn may(&self, cap: u32) -> bool {
        self.caps & (1u64 << cap) != 0
    }
}

fn refuse(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// Judges `claims` (read from the image set named `what`) against `grants`.
pub fn check(what: &str, claims: &Claims, grants: &Grants) -> Result<()> {
    if let Some(f) = claims.refused_files.first() {
        return Err(refuse(format!(
            "{what}: {f}: kata-cr does not restore legacy credential images, AppArmor policies \
             or user namespaces"
        )));
    }
    namespaces(what, claims, grants)?;
    credentials(what, claims, grants)?;
    mounts(what, claims, grants)
}

fn namespaces(what: &str, c: &Claims, g: &Grants) -> Result<()> {
    let new = &c.root_new_ns;
    if !new.contains(&"mnt") {
        return Err(refuse(format!(
            "{what}: the root task (pid {}) keeps criu's own mount namespace: it would run in the \
             agent's filesystem, not the container's",
            c.root_pid
        )));
    }
    // criu dumps and restores from inside the container's pid namespace:
    // the root task stays in criu's own, which is the container's. Image
    // sets of earlier kata-cr versions record it as the external `extpid`,
    // which a restore also maps to the container's.
    let pid_ok = if new.contains(&"pid") {
        c.pidns_key.as_deref() == Some(EXT_PID_KEY)
    } else {
        c.pidns_key.is_none()
    };
    if !pid_ok {
        return Err(refuse(format!(
            "{what}: the root task's pid namespace is neither criu's own (the container's) nor \
             the external one kata-cr records (key {EXT_PID_KEY:?}; image: {})",
            c.pidns_key.as_deref().unwrap_or("none")
        )));
    }
    match (g.own_netns, new.contains(&"net")) {
        (true, true) if c.netns_key.as_deref() == Some(EXT_NET_KEY) => {}
        (true, _) => {
            return Err(refuse(format!(
                "{what}: the container has a network namespace of its own, but the image's is not \
                 the external one kata-cr records (key {EXT_NET_KEY:?}; image: {}): criu would \
                 restore into the agent's network",
                c.netns_key.as_deref().unwrap_or("none")
            )))
        }
        (false, true) => {
            return Err(refuse(format!(
                "{what}: the image asks for a network namespace, the container shares the agent's"
            )))
        }
        (false, false) => {}
    }
    // A time namespace is criu's own doing: it restores a tree in a new one
    // to keep its clocks going (with the offsets of timens-*.img), so a
    // workload restored once is in one at its next dump. uts and ipc are
    // dumped as runc dumps them; a restore writes them into the container's
    // own (criu's --join-ns).
    if let Some(other) = new
        .iter()
        .find(|k| !matches!(**k, "mnt" | "pid" | "net" | "time" | "uts" | "ipc"))
    {
        return Err(refuse(format!(
            "{what}: the image asks for a new {other} namespace, which kata-cr never records and \
             the container does not get from criu"
        )));
    }
    for (pid, kinds) in &c.nested_ns {
        if let Some(k) = kinds.iter().find(|k| !matches!(**k, "mnt" | "net")) {
            return Err(refuse(format!(
                "{what}: task {pid} has a {k} namespace of its own, which criu cannot restore \
                 inside a container"
            )));
        }
        if !g.may(CAP_SYS_ADMIN) {
            return Err(refuse(format!(
                "{what}: task {pid} has {} namespace(s) of its own, which needs CAP_SYS_ADMIN, \
                 not granted to the container",
                kinds.join(", ")
            )));
        }
    }
    Ok(())
}

fn cap_names(mask: u64) -> String {
    (0..64usize)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| {
            CAP_NAMES
                .get(b)
                .map_or(format!("capability {b}"), |n| n.to_string())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn credentials(what: &str, c: &Claims, g: &Grants) -> Result<()> {
    for t in &c.threads {
        let at = format!("{what}/core-{}.img", t.tid);
        let Some(cr) = &t.creds else {
            return Err(refuse(format!(
                "{at}: no credentials (criu would leave the thread with its own, root with every \
                 capability)"
            )));
        };
        for (set, mask) in [
            ("bounding", cr.cap_bnd),
            ("permitted", cr.cap_prm),
            ("effective", cr.cap_eff),
            ("inheritable", cr.cap_inh),
            ("ambient", cr.cap_amb),
        ] {
            let extra = mask & !g.caps;
            if extra != 0 {
                return Err(refuse(format!(
                    "{at}: {set} capabilities beyond the container's: {}",
                    cap_names(extra)
                )));
            }
        }
        if !g.may(CAP_SETUID) {
            if let Some(u) = cr.uids.iter().find(|u| !g.uids.contains(u)) {
                return Err(refuse(format!(
                    "{at}: uid {u}, not the container's ({:?}) and it may not change uid \
                     (no CAP_SETUID)",
                    g.uids
                )));
            }
        }
        if !g.may(CAP_SETGID) {
            if let Some(x) = cr
                .gids
                .iter()
                .chain(cr.groups.iter())
                .find(|x| !g.gids.contains(x))
            {
                return Err(refuse(format!(
                    "{at}: gid {x}, not among the container's ({:?}) and it may not change \
                     groups (no CAP_SETGID)",
                    g.gids
                )));
            }
        }
        if cr.secbits != 0 && !g.may(CAP_SETPCAP) {
            return Err(refuse(format!(
                "{at}: secure bits {:#x} without CAP_SETPCAP",
                cr.secbits
            )));
        }
        if g.no_new_privs && !cr.no_new_privs {
            return Err(refuse(format!(
                "{at}: no_new_privs is off; the container runs with it on"
            )));
        }
        if g.seccomp_filter && t.seccomp_mode != SECCOMP_MODE_FILTER {
            return Err(refuse(format!(
                "{at}: no seccomp filter (mode {}); the container runs under one",
                t.seccomp_mode
            )));
        }
        if cr.apparmor_data {
            return Err(refuse(format!(
                "{at}: carries AppArmor policy data for criu to load"
            )));
        }
        for (field, label) in [
            ("LSM profile", &cr.lsm_profile),
            ("LSM socket label", &cr.lsm_sockcreate),
        ] {
            let Some(label) = label.as_deref().filter(|l| !l.is_empty()) else {
                continue;
            };
            if Some(lsm_name(label)) != g.lsm_label.as_deref().map(lsm_name) {
                return Err(refuse(format!(
                    "{at}: {field} {label:?}, not the container's ({})",
                    g.lsm_label.as_deref().unwrap_or("none")
                )));
            }
        }
        if let (Some(l), Some(want)) = (t.loginuid, g.loginuid) {
            if l != want {
                return Err(refuse(format!(
                    "{at}: audit login uid {l}, not the container's ({want})"
                )));
            }
        }
    }
    Ok(())
}

/// An LSM label without AppArmor's mode suffix (`profile (enforce)`).
fn lsm_name(label: &str) -> &str {
    let l = label.trim_end_matches(['\n', '\0']).trim();
    match l.rfind(" (") {
        Some(i) if l.ends_with(')') => &l[..i],
        _ => l,
    }
}

/// A path of an image that must stay where it says: absolute, without
/// `.` or `..` components.
fn plain_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains('\0')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn norm(p: &str) -> &str {
    if p.len() > 1 {
        p.trim_end_matches('/')
    } else {
        p
    }
}

/// Filesystems criu may mount afresh inside the container: virtual ones,
/// which show nothing of the host's storage.
const FRESH_FS: [u32; 5] = [
    fstype::PROC,
    fstype::SYSFS,
    fstype::TMPFS,
    fstype::DEVPTS,
    fstype::MQUEUE,
];

fn mounts(what: &str, c: &Claims, g: &Grants) -> Result<()> {
    let root_ns = c.root_ids.get("mnt");
    let file = format!("{what}/mountpoints-{root_ns}.img");
    if let Some(other) = c.mounts.keys().find(|ns| **ns != root_ns) {
        return Err(refuse(format!(
            "{what}/mountpoints-{other}.img: a task with a mount namespace of its own; kata-cr \
             restores workloads in the container's one mount namespace only"
        )));
    }
    let list = c.mounts.get(&root_ns).ok_or_else(|| {
        refuse(format!(
            "{file} is missing: no mounts for the root task's mount namespace"
        ))
    })?;
    // The tree's root comes back as the new container's rootfs, whatever
    // the entry says about its filesystem, source or root: criu takes the
    // entry at "/" of the root task's mount namespace for the namespace's
    // root and binds `--root` there (mount.c `rst_mnt_is_root`, before any
    // other way of mounting it). It is never an external mount either:
    // criu's dump resolves external mounts of every entry but that root, so
    // `--external mnt[/]` leaves no key on it.
    let ids: std::collections::BTreeSet<u32> = list.iter().map(|m| m.mnt_id).collect();
    let roots: Vec<&MntEntry> = list
        .iter()
        .filter(|m| !ids.contains(&m.parent_mnt_id) || m.parent_mnt_id == m.mnt_id)
        .collect();
    match roots.as_slice() {
        [r] if norm(&r.mountpoint) == "/" => {}
        _ => {
            return Err(refuse(format!(
                "{file}: the mount tree must have one root, at \"/\" (found {:?})",
                roots
                    .iter()
                    .map(|r| r.mountpoint.as_str())
                    .collect::<Vec<_>>()
            )))
        }
    }
    let root = roots[0];
    for m in list {
        let is_root = std::ptr::eq(m, root);
        entry(&file, m, g, is_root)?;
        if !is_root {
            not_a_bind_of_the_root(&file, m, root)?;
        }
    }
    same_tree(&file, list, g)
}

/// A mount that is not external must not be on the device of the tree's
/// root. criu restores a mount whose superblock it takes for the root's
/// (same device, and same source, type and options unless one of them is
/// external) as a bind of the root: of `--root`, the new container's
/// rootfs, in place of the fresh filesystem the image names. As the root's
/// type is not checked (criu does not use it), an image could otherwise
/// turn a masking tmpfs, or /proc, into a view of the rootfs. No dump
/// records such a mount: a bind of the rootfs inside the container has the
/// rootfs's own type, which only an external key lets through.
fn not_a_bind_of_the_root(file: &str, m: &MntEntry, root: &MntEntry) -> Result<()> {
    if m.ext_key.is_none() && m.root_dev == root.root_dev {
        return Err(refuse(format!(
            "{file}: mount {} at {:?}: a {} mount on device {}:{}, the device of the tree's \
             root: criu would bind the container's rootfs there",
            m.mnt_id,
            m.mountpoint,
            m.fsname.as_deref().unwrap_or(fs_name(m.fstype)),
            m.root_dev >> 20,
            m.root_dev & 0xfffff,
        )));
    }
    Ok(())
}

/// The rules every mount entry follows, whatever namespace it is in.
fn entry(file: &str, m: &MntEntry, g: &Grants, is_root: bool) -> Result<()> {
    let at = format!("{file}: mount {} at {:?}", m.mnt_id, m.mountpoint);
    if !plain_path(&m.mountpoint) || !(m.root.is_empty() || plain_path(&m.root)) {
        return Err(refuse(format!(
            "{at}: root {:?} or mount point is not a plain absolute path",
            m.root
        )));
    }
    if m.with_plugin || m.ext_mount {
        return Err(refuse(format!(
            "{at}: external mount of a form kata-cr never records (plugin or legacy key)"
        )));
    }
    match m.ext_key.as_deref() {
        Some(key) => {
            let Some(source) = g.external.get(key) else {
                return Err(refuse(format!(
                    "{at}: external mount with key {key:?} (source {:?}): not a key kata-cr \
                     records, or one the new container does not map",
                    m.source
                )));
            };
            let expected = if key == EXT_ROOT_KEY { "/" } else { key };
            if norm(&m.mountpoint) != norm(expected) {
                return Err(refuse(format!(
                    "{at}: key {key:?} belongs at {expected:?} (it would bind {} there)",
                    source.display()
                )));
            }
            if m.deleted {
                return Err(refuse(format!("{at}: an external mount marked deleted")));
            }
        }
        None if is_root => {}
        None => {
            if !FRESH_FS.contains(&m.fstype) || m.root_dev_major() != 0 {
                return Err(refuse(format!(
                    "{at}: a {} mount of device {}:{} from {:?} that is not one of the \
                     container's external mounts: criu would mount it from the host",
                    m.fsname.as_deref().unwrap_or(fs_name(m.fstype)),
                    m.root_dev >> 20,
                    m.root_dev & 0xfffff,
                    m.source
                )));
            }
        }
    }
    Ok(())
}

fn fs_name(code: u32) -> &'static str {
    match code {
        fstype::PROC => "proc",
        fstype::SYSFS => "sysfs",
        fstype::DEVTMPFS => "devtmpfs",
        fstype::TMPFS => "tmpfs",
        fstype::DEVPTS => "devpts",
        fstype::CGROUP => "cgroup",
        fstype::MQUEUE => "mqueue",
        fstype::AUTO => "auto",
        fstype::OVERLAYFS => "overlay",
        fstype::CGROUP2 => "cgroup2",
        fstype::UNSUPPORTED => "unsupported",
        _ => "other",
    }
}

/// The root mount namespace holds the new container's own mounts, with
/// their protections; more only as external mounts the container maps, or
/// with `CAP_SYS_ADMIN`.
///
/// The container's mounts that are not external binds (its proc, sysfs,
/// /dev, the tmpfs and proc binds that mask or make read-only parts of
/// /proc and /sys) must come back as they are: same number at each mount
/// point, same parent, same kind of filesystem, at least the same
/// ro/nosuid/nodev/noexec. An external bind of the spec (/etc/hosts...) may
/// be missing from the image or present without the container having it
/// mounted (a restored CRI container is not always given the same runtime
/// binds): its source is the container's own either way; when both have
/// it, the same rules apply.
fn same_tree(file: &str, list: &[MntEntry], g: &Grants) -> Result<()> {
    let by_id: BTreeMap<u32, &MntEntry> = list.iter().map(|m| (m.mnt_id, m)).collect();
    let parent_mp = |m: &MntEntry| by_id.get(&m.parent_mnt_id).map(|p| norm(&p.mountpoint));
    let init_ids: BTreeMap<u32, &Mount> = g.mounts.iter().map(|m| (m.id, m)).collect();
    let mut wanted: BTreeMap<&str, Vec<&Mount>> = BTreeMap::new();
    for m in &g.mounts {
        wanted.entry(norm(&m.mountpoint)).or_default().push(m);
    }
    let mut have: BTreeMap<&str, Vec<&MntEntry>> = BTreeMap::new();
    for m in list {
        have.entry(norm(&m.mountpoint)).or_default().push(m);
    }
    let is_bind = |mp: &str| mp != "/" && g.external.contains_key(mp);
    for (mp, mine) in &wanted {
        let theirs = have.get(mp).map(Vec::as_slice).unwrap_or_default();
        if theirs.len() != mine.len() && !(is_bind(mp) && theirs.is_empty()) {
            return Err(refuse(format!(
                "{file}: {} mount(s) at {mp:?}, the container has {}: its mounts (masked and \
                 read-only paths among them) must come back as they are",
                theirs.len(),
                mine.len()
            )));
        }
        for (want, got) in mine.iter().zip(theirs.iter()) {
            let at = format!("{file}: mount {} at {mp:?}", got.mnt_id);
            let want_parent = init_ids.get(&want.parent).map(|p| norm(&p.mountpoint));
            if *mp != "/" && parent_mp(got) != want_parent {
                return Err(refuse(format!(
                    "{at}: mounted on {:?}, in the container on {:?}",
                    parent_mp(got).unwrap_or("?"),
                    want_parent.unwrap_or("?")
                )));
            }
            let missing = want.flags & PROTECTIVE_FLAGS & !got.flags;
            if missing != 0 {
                return Err(refuse(format!(
                    "{at}: lacks {} that the container's mount has",
                    flag_names(missing)
                )));
            }
            // External mounts were checked against their key; a fresh one
            // must be the same kind of filesystem as the container's
            // (a proc bind in place of a masking tmpfs would unmask). The
            // root is neither: criu binds the new container's rootfs there
            // whatever its entry says (see `mounts`), and records what it
            // cannot name as "unsupported" (a Kata guest's virtiofs root).
            if *mp != "/"
                && got.ext_key.is_none()
                && fstype::of_name(&want.fstype) != Some(got.fstype)
            {
                return Err(refuse(format!(
                    "{at}: a {} mount where the container has {}",
                    fs_name(got.fstype),
                    want.fstype
                )));
            }
        }
    }
    for (mp, theirs) in &have {
        if wanted.contains_key(mp) {
            continue;
        }
        // An external bind the container maps but was not given: once,
        // on its parent as the container's mounts place it.
        if theirs.iter().all(|m| m.ext_key.is_some()) && is_bind(mp) {
            if theirs.len() > 1 {
                return Err(refuse(format!(
                    "{file}: {} mounts stacked at {mp:?}",
                    theirs.len()
                )));
            }
            continue;
        }
        if !g.may(CAP_SYS_ADMIN) {
            return Err(refuse(format!(
                "{file}: a mount the container does not have, at {mp:?}: making it needs \
                 CAP_SYS_ADMIN, not granted to the container"
            )));
        }
    }
    Ok(())
}

fn flag_names(flags: u32) -> String {
    [(1, "ro"), (2, "nosuid"), (4, "nodev"), (8, "noexec")]
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// Per-mount flags from mountinfo's mount options (field 6).
pub fn mount_flags(options: &str) -> u32 {
    options.split(',').fold(0, |f, o| {
        f | match o {
            "ro" => 1,
            "nosuid" => 2,
            "nodev" => 4,
            "noexec" => 8,
            _ => 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::criu_image::{encode_image, magic, EntryReader, RawMessage, RawValue};
    use super::super::criu_messages::{creds, mnt};
    use super::super::grants::mounts_of;
    use super::super::image_claims::{self, MemSource};
    use super::super::limits::Limits;
    use super::*;

    /// The real image sets of `tests/corpus/criu` (dumped in the test bed
    /// by kata-cr-agent without `--ext-mount-map auto`; `kata-*` in a Kata
    /// guest of the `--kata` bed), each with the mountinfo of the
    /// container's init.
    fn corpus(name: &str) -> (MemSource, String) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus/criu")
            .join(name);
        let mut src = MemSource::default();
        let mut mountinfo = String::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let n = e.file_name().to_string_lossy().into_owned();
            let data = std::fs::read(e.path()).unwrap();
            if n == "init.mountinfo" {
                mountinfo = String::from_utf8(data).unwrap();
            } else {
                src.0.insert(n, data);
            }
        }
        (src, mountinfo)
    }

    /// What the container of `name` was granted (as its spec and the bed
    /// made it): the default capabilities, root, its mounts, the external
    /// mounts kata-cr maps for it.
    fn grants(name: &str, mountinfo: &str) -> Grants {
        let mounts = mounts_of(mountinfo);
        let mut external = BTreeMap::new();
        external.insert(EXT_ROOT_KEY.to_string(), PathBuf::from("/new/rootfs"));
        for m in &mounts {
            // (Kata binds the sandbox's shm at every container's /dev/shm.)
            let bind = m.mountpoint.starts_with("/etc/")
                || m.mountpoint == "/dev/.kata-cr-init"
                || (m.mountpoint == "/dev/shm" && !name.starts_with("ctr"))
                || m.fstype == "cgroup";
            if bind {
                external.insert(m.mountpoint.clone(), PathBuf::from("/new/source"));
            }
        }
        Grants {
            caps: 0xa804_25fb,
            uids: vec![0],
            gids: vec![0],
            no_new_privs: name.ends_with("ctr"),
            seccomp_filter: false,
            lsm_label: None,
            loginuid: Some(u32::MAX),
            // A Kata guest's containers share its network namespace.
            own_netns: name != "cri-host-net" && !name.starts_with("kata"),
            mounts,
            external,
        }
    }

    fn judge(src: &MemSource, g: &Grants) -> Result<()> {
        let claims = image_claims::read(src, &Limits::default())?;
        check("set", &claims, g)
    }

    /// Rewrites every entry of image `file` in `src` with `edit` (which
    /// returns false to drop the entry).
    fn edit(
        src: &mut MemSource,
        file: &str,
        m: u32,
        mut edit: impl FnMut(&mut RawMessage) -> bool,
    ) {
        let data = src.0.get(file).unwrap_or_else(|| panic!("{file}")).clone();
        let mut r = EntryReader::new(data.as_slice(), m, file, 1 << 20).unwrap();
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut raw = RawMessage::parse(e).unwrap();
            if edit(&mut raw) {
                out.push(raw.encode());
            }
        }
        src.0
            .insert(file.into(), encode_image(m, out.iter().map(Vec::as_slice)));
    }

    fn mounts_file(src: &MemSource) -> String {
        src.0
            .keys()
            .find(|k| k.starts_with("mountpoints-"))
            .unwrap()
            .clone()
    }

    fn at(raw: &RawMessage, mountpoint: &str) -> bool {
        raw.get_str(mnt::MOUNTPOINT).as_deref() == Some(mountpoint)
    }

    fn refused(src: &MemSource, g: &Grants, words: &[&str]) {
        let e = judge(src, g).expect_err("refused");
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let text = e.to_string();
        for w in words {
            assert!(text.contains(w), "{w:?} not in: {text}");
        }
    }

    #[test]
    fn real_checkpoints_pass_against_their_own_containers() {
        for name in ["ctr", "cri-host-net", "cri-pod-net", "kata-ctr"] {
            let (src, mi) = corpus(name);
            judge(&src, &grants(name, &mi)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn an_external_dev_shm_with_criu_s_auto_key_and_a_host_source_is_refused() {
        // The archive of issue 9, item 1.
        let (mut src, mi) = corpus("cri-pod-net");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/dev/shm") {
                m.set(
                    mnt::EXT_KEY,
                    RawValue::Bytes(b"CRIU:AUTOGENERATED".to_vec()),
                )
                .set(mnt::SOURCE, RawValue::Bytes(b"/srv/host-dir".to_vec()));
            }
            true
        });
        refused(
            &src,
            &grants("cri-pod-net", &mi),
            &["/dev/shm", "CRIU:AUTOGENERATED", "/srv/host-dir"],
        );
        // The same on a ctr container, whose /dev/shm is a tmpfs of its own.
        let (mut src, mi) = corpus("ctr");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/dev/shm") {
                m.set(
                    mnt::EXT_KEY,
                    RawValue::Bytes(b"CRIU:AUTOGENERATED".to_vec()),
                )
                .set(mnt::SOURCE, RawValue::Bytes(b"/srv/host-dir".to_vec()));
            }
            true
        });
        refused(&src, &grants("ctr", &mi), &["CRIU:AUTOGENERATED"]);
    }

    #[test]
    fn a_key_at_another_mount_point_or_unmapped_is_refused() {
        let (mut src, mi) = corpus("cri-host-net");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/etc/hostname") {
                m.set(
                    mnt::EXT_KEY,
                    RawValue::Bytes(b"/dev/.kata-cr-init".to_vec()),
                );
            }
            true
        });
        refused(
            &src,
            &grants("cri-host-net", &mi),
            &["belongs at \"/dev/.kata-cr-init\""],
        );
        let (src, mi) = corpus("cri-host-net");
        let mut g = grants("cri-host-net", &mi);
        g.external.remove("/etc/hosts");
        refused(&src, &g, &["/etc/hosts", "does not map"]);
    }

    #[test]
    fn spec_binds_may_be_missing_on_either_side() {
        // A restored CRI container is not always given the same runtime
        // binds as the dumped one (seen: /etc/hostname, /etc/resolv.conf).
        let (src, mi) = corpus("cri-host-net");
        let mut g = grants("cri-host-net", &mi);
        g.mounts
            .retain(|m| m.mountpoint != "/etc/hostname" && m.mountpoint != "/etc/resolv.conf");
        judge(&src, &g).unwrap();
        // ... and the image may lack one the container has.
        let (mut src, mi) = corpus("cri-host-net");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| !at(m, "/etc/hostname"));
        judge(&src, &grants("cri-host-net", &mi)).unwrap();
        // But not a mount of the container's own (a mask, /proc...).
        let (mut src, mi) = corpus("cri-host-net");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| !at(m, "/dev/mqueue"));
        refused(
            &src,
            &grants("cri-host-net", &mi),
            &["0 mount(s) at \"/dev/mqueue\""],
        );
    }

    #[test]
    fn host_devices_and_foreign_filesystems_are_refused() {
        for (fstype, dev, what) in [
            (
                crate::agent::criu_messages::fstype::DEVTMPFS,
                0u64,
                "devtmpfs",
            ),
            (
                crate::agent::criu_messages::fstype::TMPFS,
                (254 << 20) | 1,
                "device 254:1",
            ),
            (crate::agent::criu_messages::fstype::AUTO, 0, "auto"),
            (crate::agent::criu_messages::fstype::CGROUP, 0, "cgroup"),
        ] {
            let (mut src, mi) = corpus("ctr");
            let f = mounts_file(&src);
            edit(&mut src, &f, magic::MNTS, |m| {
                if at(m, "/run") {
                    m.set(mnt::FSTYPE, RawValue::Varint(u64::from(fstype)))
                        .set(mnt::ROOT_DEV, RawValue::Varint(dev))
                        .set(mnt::SOURCE, RawValue::Bytes(b"/dev/vda".to_vec()));
                }
                true
            });
            refused(
                &src,
                &grants("ctr", &mi),
                &["\"/run\"", what, "from the host"],
            );
        }
    }

    #[test]
    fn protections_of_the_container_s_mounts_stay() {
        // /proc/sys loses its read-only flag.
        let (mut src, mi) = corpus("ctr");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/proc/sys") {
                m.set(mnt::FLAGS, RawValue::Varint(0x20_0000));
            }
            true
        });
        refused(
            &src,
            &grants("ctr", &mi),
            &["/proc/sys", "lacks ro,nosuid,nodev,noexec"],
        );
        // A masked path is dropped.
        let (mut src, mi) = corpus("ctr");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| !at(m, "/proc/keys"));
        refused(&src, &grants("ctr", &mi), &["0 mount(s) at \"/proc/keys\""]);
        // ... or unmasked by a bind of proc itself.
        let (mut src, mi) = corpus("ctr");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/proc/keys") {
                m.set(mnt::FSTYPE, RawValue::Varint(1))
                    .set(mnt::ROOT, RawValue::Bytes(b"/keys".to_vec()));
            }
            true
        });
        refused(
            &src,
            &grants("ctr", &mi),
            &["a proc mount where the container has tmpfs"],
        );
        // A mount the container does not have, without CAP_SYS_ADMIN.
        let (mut src, mi) = corpus("ctr");
        let f = mounts_file(&src);
        let mut extra = None;
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/run") {
                let mut e = m.clone();
                e.set(mnt::MOUNTPOINT, RawValue::Bytes(b"/mnt".to_vec()))
                    .set(mnt::MNT_ID, RawValue::Varint(9999));
                extra = Some(e.encode());
            }
            true
        });
        let mut all = Vec::new();
        let data = src.0[&f].clone();
        let mut r = EntryReader::new(data.as_slice(), magic::MNTS, "m", 1 << 20).unwrap();
        while let Some(e) = r.next_entry().unwrap() {
            all.push(e.to_vec());
        }
        all.push(extra.unwrap());
        src.0.insert(
            f.clone(),
            encode_image(magic::MNTS, all.iter().map(Vec::as_slice)),
        );
        let g = grants("ctr", &mi);
        refused(&src, &g, &["at \"/mnt\"", "CAP_SYS_ADMIN"]);
        let mut admin = g.clone();
        admin.caps |= 1 << CAP_SYS_ADMIN;
        judge(&src, &admin).unwrap();
        // Escaping paths.
        let (mut src, mi) = corpus("ctr");
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/run") {
                m.set(mnt::ROOT, RawValue::Bytes(b"/../../etc".to_vec()));
            }
            true
        });
        refused(&src, &grants("ctr", &mi), &["not a plain absolute path"]);
    }

    fn edit_creds(src: &mut MemSource, f: impl Fn(&mut RawMessage) + Copy) {
        let cores: Vec<String> = src
            .0
            .keys()
            .filter(|k| k.starts_with("core-"))
            .cloned()
            .collect();
        for core in cores {
            edit(src, &core, magic::CORE, |c| {
                let Some(RawValue::Bytes(tc)) = c.get(5).cloned() else {
                    return true;
                };
                let mut th = RawMessage::parse(&tc).unwrap();
                let Some(RawValue::Bytes(cr)) = th.get(10).cloned() else {
                    return true;
                };
                let mut cr = RawMessage::parse(&cr).unwrap();
                f(&mut cr);
                th.set(10, RawValue::Bytes(cr.encode()));
                c.set(5, RawValue::Bytes(th.encode()));
                true
            });
        }
    }

    #[test]
    fn credentials_no_wider_than_the_container_s() {
        let (mut src, mi) = corpus("ctr");
        edit_creds(&mut src, |c| {
            c.remove(creds::CAP_BND)
                .push(creds::CAP_BND, RawValue::Varint(0xffff_ffff))
                .push(creds::CAP_BND, RawValue::Varint(0x1ff));
        });
        refused(
            &src,
            &grants("ctr", &mi),
            &[
                "bounding capabilities beyond",
                "CAP_SYS_ADMIN",
                "CAP_SYS_MODULE",
            ],
        );

        let no_setuid = 0xa804_25fbu64 & !(1 << CAP_SETUID);
        let (mut src, mi) = corpus("ctr");
        edit_creds(&mut src, move |c| {
            c.set(creds::EUID, RawValue::Varint(1000));
            for set in [creds::CAP_BND, creds::CAP_PRM, creds::CAP_EFF] {
                c.remove(set)
                    .push(set, RawValue::Varint(no_setuid))
                    .push(set, RawValue::Varint(0));
            }
        });
        let mut g = grants("ctr", &mi);
        judge(&src, &g).unwrap();
        g.caps = no_setuid;
        refused(&src, &g, &["uid 1000", "CAP_SETUID"]);

        let (mut src, mi) = corpus("ctr");
        edit_creds(&mut src, |c| {
            c.set(creds::NO_NEW_PRIVS, RawValue::Varint(0));
        });
        refused(&src, &grants("ctr", &mi), &["no_new_privs"]);

        let (src, mi) = corpus("ctr");
        let mut g = grants("ctr", &mi);
        g.seccomp_filter = true;
        refused(&src, &g, &["no seccomp filter"]);

        let (mut src, mi) = corpus("ctr");
        edit_creds(&mut src, |c| {
            c.set(creds::LSM_PROFILE, RawValue::Bytes(b"unconfined".to_vec()));
        });
        let mut g = grants("ctr", &mi);
        g.lsm_label = Some("cri-containerd.apparmor.d (enforce)".into());
        refused(&src, &g, &["LSM profile \"unconfined\""]);
        edit_creds(&mut src, |c| {
            c.set(
                creds::LSM_PROFILE,
                RawValue::Bytes(b"cri-containerd.apparmor.d".to_vec()),
            );
        });
        judge(&src, &g).unwrap();

        // A thread without credentials would keep criu's.
        let (mut src, mi) = corpus("ctr");
        let cores: Vec<String> = src
            .0
            .keys()
            .filter(|k| k.starts_with("core-"))
            .cloned()
            .collect();
        edit(&mut src, &cores[0], magic::CORE, |c| {
            c.remove(5);
            true
        });
        refused(&src, &grants("ctr", &mi), &["no credentials"]);
        let (mut src, mi) = corpus("ctr");
        src.0.insert("creds-8.img".into(), vec![]);
        refused(&src, &grants("ctr", &mi), &["creds-8.img"]);
    }

    #[test]
    fn namespaces_are_the_ones_kata_cr_records() {
        let root_ids = |src: &MemSource| {
            let data = src.0.get("inventory.img").unwrap().clone();
            let mut r =
                EntryReader::new(data.as_slice(), magic::INVENTORY, "inv", 1 << 20).unwrap();
            let inv = RawMessage::parse(r.next_entry().unwrap().unwrap()).unwrap();
            match inv.get(3) {
                Some(RawValue::Bytes(b)) => RawMessage::parse(b).unwrap(),
                _ => panic!("no root_ids"),
            }
        };
        let root_task = |src: &MemSource| {
            let data = src.0.get("pstree.img").unwrap().clone();
            let mut r = EntryReader::new(data.as_slice(), magic::PSTREE, "p", 1 << 20).unwrap();
            match RawMessage::parse(r.next_entry().unwrap().unwrap())
                .unwrap()
                .get(1)
            {
                Some(RawValue::Varint(p)) => *p,
                _ => panic!(),
            }
        };
        // The root task keeps criu's mount namespace: it would run in the
        // agent's filesystem.
        let (mut src, mi) = corpus("ctr");
        let rid = root_ids(&src);
        let ids = format!("ids-{}.img", root_task(&src));
        edit(&mut src, &ids, magic::IDS, |i| {
            i.set(9, rid.get(9).unwrap().clone());
            true
        });
        refused(
            &src,
            &grants("ctr", &mi),
            &["keeps criu's own mount namespace"],
        );
        // ... or criu's network namespace, when the container has its own.
        let (mut src, mi) = corpus("ctr");
        edit(&mut src, &ids, magic::IDS, |i| {
            i.set(6, rid.get(6).unwrap().clone());
            true
        });
        refused(
            &src,
            &grants("ctr", &mi),
            &["restore into the agent's network"],
        );
        // A new user namespace (uts and ipc are the container's own).
        let (mut src, mi) = corpus("ctr");
        edit(&mut src, &ids, magic::IDS, |i| {
            i.set(10, RawValue::Varint(999));
            true
        });
        refused(&src, &grants("ctr", &mi), &["new user namespace"]);
        // A time namespace (a workload criu restored once): criu's own.
        let (mut src, mi) = corpus("ctr");
        let all: Vec<String> = src
            .0
            .keys()
            .filter(|k| k.starts_with("ids-"))
            .cloned()
            .collect();
        for f in &all {
            edit(&mut src, f, magic::IDS, |i| {
                i.set(12, RawValue::Varint(999));
                true
            });
        }
        judge(&src, &grants("ctr", &mi)).unwrap();
        // A pid namespace that is not the external one.
        let (mut src, mi) = corpus("ctr");
        let pidns = src
            .0
            .keys()
            .find(|k| k.starts_with("pidns-"))
            .unwrap()
            .clone();
        edit(&mut src, &pidns, magic::PIDNS, |p| {
            p.remove(1);
            true
        });
        refused(
            &src,
            &grants("ctr", &mi),
            &["pid namespace is neither criu's own"],
        );
    }

    /// The root entry of `src`'s mount tree, as criu recorded it.
    fn root_entry(src: &MemSource) -> MntEntry {
        let f = mounts_file(src);
        let data = src.0[&f].clone();
        let mut r = EntryReader::new(data.as_slice(), magic::MNTS, "m", 1 << 20).unwrap();
        while let Some(e) = r.next_entry().unwrap() {
            let m = MntEntry::decode(e).unwrap();
            if m.mountpoint == "/" {
                return m;
            }
        }
        panic!("no root entry in {f}")
    }

    /// A ctr container's image set dumped in a Kata guest (Kata 3.30 in
    /// the `--kata` bed): its rootfs is virtiofs (kata-agent's bind of the
    /// shared directory), which criu cannot name ("unsupported"), and the
    /// root entry has no external key although the dump said
    /// `--external mnt[/]:rootfs`.
    fn kata_like() -> (MemSource, Grants) {
        let (src, mi) = corpus("kata-ctr");
        let g = grants("kata-ctr", &mi);
        (src, g)
    }

    #[test]
    fn a_root_criu_cannot_name_comes_back_as_the_container_s_rootfs() {
        let (src, g) = kata_like();
        assert_eq!(root_entry(&src).fstype, fstype::UNSUPPORTED);
        assert_eq!(root_entry(&src).ext_key, None);
        judge(&src, &g).unwrap();
        // Whatever the root entry claims to be: criu binds --root there.
        for code in [fstype::TMPFS, fstype::PROC, fstype::OVERLAYFS] {
            let (mut src, g) = kata_like();
            let f = mounts_file(&src);
            edit(&mut src, &f, magic::MNTS, |m| {
                if at(m, "/") {
                    m.set(mnt::FSTYPE, RawValue::Varint(u64::from(code)));
                }
                true
            });
            judge(&src, &g).unwrap_or_else(|e| panic!("root as {code}: {e}"));
        }
    }

    #[test]
    fn the_root_s_other_refusals_stay() {
        // Its protections: a read-only rootfs stays read-only.
        let (src, mut g) = kata_like();
        g.mounts
            .iter_mut()
            .filter(|m| m.mountpoint == "/")
            .for_each(|m| m.flags |= 1);
        refused(&src, &g, &["at \"/\"", "lacks ro"]);
        // A second mount at "/" (criu would bind --root twice; the second
        // hides the first's mounts).
        let (mut src, g) = kata_like();
        let f = mounts_file(&src);
        let root = root_entry(&src);
        let mut all = Vec::new();
        let data = src.0[&f].clone();
        let mut r = EntryReader::new(data.as_slice(), magic::MNTS, "m", 1 << 20).unwrap();
        while let Some(e) = r.next_entry().unwrap() {
            all.push(e.to_vec());
        }
        let mut over = RawMessage::parse(&all[0]).unwrap();
        over.set(mnt::MNT_ID, RawValue::Varint(9999))
            .set(mnt::PARENT_MNT_ID, RawValue::Varint(u64::from(root.mnt_id)))
            .set(mnt::MOUNTPOINT, RawValue::Bytes(b"/".to_vec()));
        all.push(over.encode());
        src.0
            .insert(f, encode_image(magic::MNTS, all.iter().map(Vec::as_slice)));
        refused(&src, &g, &["2 mount(s) at \"/\""]);
        // An external key other than the rootfs's at "/".
        let (mut src, g) = kata_like();
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/") {
                m.set(mnt::EXT_KEY, RawValue::Bytes(b"/dev/shm".to_vec()));
            }
            true
        });
        refused(&src, &g, &["key \"/dev/shm\" belongs at \"/dev/shm\""]);
    }

    #[test]
    fn a_fresh_mount_on_the_root_s_device_is_refused() {
        // criu would take it for a bind of the root and bind the rootfs
        // there: a masking tmpfs, or /proc, would become the rootfs.
        for (mp, code) in [
            ("/proc/keys", fstype::TMPFS),
            ("/proc", fstype::PROC),
            ("/run", fstype::TMPFS),
        ] {
            let (mut src, g) = kata_like();
            let root = root_entry(&src);
            let f = mounts_file(&src);
            let mut opts = None;
            edit(&mut src, &f, magic::MNTS, |m| {
                if at(m, mp) {
                    opts = m.get(mnt::OPTIONS).cloned();
                    m.set(mnt::ROOT_DEV, RawValue::Varint(u64::from(root.root_dev)));
                }
                true
            });
            edit(&mut src, &f, magic::MNTS, |m| {
                if at(m, "/") {
                    m.set(mnt::FSTYPE, RawValue::Varint(u64::from(code)))
                        .set(mnt::SOURCE, RawValue::Bytes(b"tmpfs".to_vec()));
                    if let Some(o) = opts.clone() {
                        m.set(mnt::OPTIONS, o);
                    }
                }
                true
            });
            refused(
                &src,
                &g,
                &[&format!("at {mp:?}"), "device of the tree's root", "rootfs"],
            );
        }
        // The same on the plain bed's image set (an overlay root).
        let (mut src, mi) = corpus("ctr");
        let root = root_entry(&src);
        let f = mounts_file(&src);
        edit(&mut src, &f, magic::MNTS, |m| {
            if at(m, "/run") {
                m.set(mnt::ROOT_DEV, RawValue::Varint(u64::from(root.root_dev)));
            }
            true
        });
        refused(&src, &grants("ctr", &mi), &["device of the tree's root"]);
    }
}
