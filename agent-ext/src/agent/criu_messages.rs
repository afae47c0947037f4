//! The few criu messages kata-cr decodes before letting criu restore an
//! image set, with the field numbers of criu's `images/*.proto`
//! (`mnt_entry`, `creds_entry`, `core_entry`, `task_kobj_ids_entry`,
//! `inventory_entry`, `pstree_entry`, `pidns_entry`, `netns_entry`).
//!
//! Only what the checks need is kept; unknown fields are skipped as
//! protobuf does. A singular field that appears twice is refused: protobuf
//! would take the last one (or merge sub-messages), and a check that read
//! the first would then look at something criu does not use.

use super::criu_image::{fields, repeated_varints, Malformed, Value};

/// Field numbers of `mnt_entry` (images/mnt.proto).
pub mod mnt {
    pub const FSTYPE: u32 = 1;
    pub const MNT_ID: u32 = 2;
    pub const ROOT_DEV: u32 = 3;
    pub const PARENT_MNT_ID: u32 = 4;
    pub const FLAGS: u32 = 5;
    pub const ROOT: u32 = 6;
    pub const MOUNTPOINT: u32 = 7;
    pub const SOURCE: u32 = 8;
    pub const OPTIONS: u32 = 9;
    pub const SHARED_ID: u32 = 10;
    pub const MASTER_ID: u32 = 11;
    pub const WITH_PLUGIN: u32 = 12;
    pub const EXT_MOUNT: u32 = 13;
    pub const FSNAME: u32 = 14;
    pub const INTERNAL_SHARING: u32 = 15;
    pub const DELETED: u32 = 16;
    pub const SB_FLAGS: u32 = 17;
    pub const EXT_KEY: u32 = 18;
}

/// Field numbers of `creds_entry` (images/creds.proto).
pub mod creds {
    pub const UID: u32 = 1;
    pub const GID: u32 = 2;
    pub const EUID: u32 = 3;
    pub const EGID: u32 = 4;
    pub const SUID: u32 = 5;
    pub const SGID: u32 = 6;
    pub const FSUID: u32 = 7;
    pub const FSGID: u32 = 8;
    pub const CAP_INH: u32 = 9;
    pub const CAP_PRM: u32 = 10;
    pub const CAP_EFF: u32 = 11;
    pub const CAP_BND: u32 = 12;
    pub const SECBITS: u32 = 13;
    pub const GROUPS: u32 = 14;
    pub const LSM_PROFILE: u32 = 15;
    pub const LSM_SOCKCREATE: u32 = 16;
    pub const APPARMOR_DATA: u32 = 17;
    pub const NO_NEW_PRIVS: u32 = 18;
    pub const CAP_AMB: u32 = 19;
}

/// Field numbers of `core_entry` and what it holds (images/core.proto).
pub mod core {
    pub const TC: u32 = 3;
    pub const IDS: u32 = 4;
    pub const THREAD_CORE: u32 = 5;
    /// `thread_core_entry.creds`.
    pub const THREAD_CREDS: u32 = 10;
    /// `thread_core_entry.seccomp_mode`.
    pub const THREAD_SECCOMP_MODE: u32 = 11;
    /// `task_core_entry.old_seccomp_mode`.
    pub const TC_OLD_SECCOMP_MODE: u32 = 11;
    /// `task_core_entry.loginuid`.
    pub const TC_LOGINUID: u32 = 13;
}

/// `fstype` values of `mnt_entry` (images/mnt.proto).
pub mod fstype {
    pub const UNSUPPORTED: u32 = 0;
    pub const PROC: u32 = 1;
    pub const SYSFS: u32 = 2;
    pub const DEVTMPFS: u32 = 3;
    pub const TMPFS: u32 = 5;
    pub const DEVPTS: u32 = 6;
    pub const CGROUP: u32 = 12;
    pub const MQUEUE: u32 = 14;
    pub const AUTO: u32 = 16;
    pub const OVERLAYFS: u32 = 17;
    pub const CGROUP2: u32 = 23;

    /// The code criu gives a filesystem type as `/proc/<pid>/mountinfo`
    /// names it; `None` for the ones kata-cr has no use for.
    pub fn of_name(name: &str) -> Option<u32> {
        Some(match name {
            "proc" => PROC,
            "sysfs" => SYSFS,
            "devtmpfs" => DEVTMPFS,
            "tmpfs" => TMPFS,
            "devpts" => DEVPTS,
            "cgroup" => CGROUP,
            "mqueue" => MQUEUE,
            "overlay" => OVERLAYFS,
            "cgroup2" => CGROUP2,
            _ => return None,
        })
    }
}

/// A `seccomp_mode` value: `SECCOMP_MODE_FILTER`.
pub const SECCOMP_MODE_FILTER: u64 = 2;

/// Records which singular fields a message had, refusing repeats.
#[derive(Default)]
struct Seen(u64);

impl Seen {
    fn once(&mut self, n: u32) -> Result<(), Malformed> {
        if n >= 64 {
            return Ok(());
        }
        let bit = 1u64 << n;
        if self.0 & bit != 0 {
            return Err(Malformed);
        }
        self.0 |= bit;
        Ok(())
    }
}

fn u32_of(v: Value<'_>) -> Result<u32, Malformed> {
    v.varint()
        .and_then(|x| u32::try_from(x).ok())
        .ok_or(Malformed)
}

fn text_of(v: Value<'_>) -> Result<String, Malformed> {
    let b = v.bytes().ok_or(Malformed)?;
    String::from_utf8(b.to_vec()).map_err(|_| Malformed)
}

/// What kata-cr reads of a `mnt_entry`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MntEntry {
    pub fstype: u32,
    pub mnt_id: u32,
    pub root_dev: u32,
    pub parent_mnt_id: u32,
    pub flags: u32,
    pub root: String,
    pub mountpoint: String,
    pub source: String,
    pub options: String,
    pub fsname: Option<String>,
    pub with_plugin: bool,
    /// The old form of an external mount (its key in `root`).
    pub ext_mount: bool,
    pub deleted: bool,
    pub ext_key: Option<String>,
}

impl MntEntry {
    /// Decodes one entry of `mountpoints-*.img`.
    pub fn decode(msg: &[u8]) -> Result<Self, Malformed> {
        let mut e = MntEntry::default();
        let mut seen = Seen::default();
        for f in fields(msg) {
            let (n, v) = f?;
            seen.once(n)?;
            match n {
                mnt::FSTYPE => e.fstype = u32_of(v)?,
                mnt::MNT_ID => e.mnt_id = u32_of(v)?,
                mnt::ROOT_DEV => e.root_dev = u32_of(v)?,
                mnt::PARENT_MNT_ID => e.parent_mnt_id = u32_of(v)?,
                mnt::FLAGS => e.flags = u32_of(v)?,
                mnt::ROOT => e.root = text_of(v)?,
                mnt::MOUNTPOINT => e.mountpoint = text_of(v)?,
                mnt::SOURCE => e.source = text_of(v)?,
                mnt::OPTIONS => e.options = text_of(v)?,
                mnt::FSNAME => e.fsname = Some(text_of(v)?),
                mnt::WITH_PLUGIN => e.with_plugin = u32_of(v)? != 0,
                mnt::EXT_MOUNT => e.ext_mount = u32_of(v)? != 0,
                mnt::DELETED => e.deleted = u32_of(v)? != 0,
                mnt::EXT_KEY => e.ext_key = Some(text_of(v)?),
                _ => {}
            }
        }
        Ok(e)
    }

    /// Major number of `root_dev` (criu's kernel encoding: major in the
    /// bits above 20); 0 for the anonymous devices of virtual filesystems.
    pub fn root_dev_major(&self) -> u32 {
        self.root_dev >> 20
    }
}

/// A capability set as criu stores it: 32-bit words, lowest first.
fn cap_words(v: Value<'_>, words: &mut Vec<u64>) -> Result<(), Malformed> {
    repeated_varints(v, words)
}

fn caps_of(words: &[u64]) -> Result<u64, Malformed> {
    let mut mask = 0u64;
    for (i, &w) in words.iter().enumerate() {
        let w = u32::try_from(w).map_err(|_| Malformed)?;
        match i {
            0 => mask |= u64::from(w),
            1 => mask |= u64::from(w) << 32,
            // A capability past bit 63 does not exist: refuse it rather
            // than drop it silently.
            _ if w != 0 => return Err(Malformed),
            _ => {}
        }
    }
    Ok(mask)
}

/// What kata-cr reads of a `creds_entry`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Creds {
    /// uid, euid, suid, fsuid.
    pub uids: [u32; 4],
    /// gid, egid, sgid, fsgid.
    pub gids: [u32; 4],
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    pub secbits: u32,
    pub groups: Vec<u32>,
    pub lsm_profile: Option<String>,
    pub lsm_sockcreate: Option<String>,
    pub apparmor_data: bool,
    pub no_new_privs: bool,
}

impl Creds {
    /// Decodes a `creds_entry`.
    pub fn decode(msg: &[u8]) -> Result<Self, Malformed> {
        let mut c = Creds::default();
        let mut seen = Seen::default();
        let (mut inh, mut prm, mut eff, mut bnd, mut amb, mut groups) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for f in fields(msg) {
            let (n, v) = f?;
            match n {
                creds::CAP_INH => cap_words(v, &mut inh)?,
                creds::CAP_PRM => cap_words(v, &mut prm)?,
                creds::CAP_EFF => cap_words(v, &mut eff)?,
                creds::CAP_BND => cap_words(v, &mut bnd)?,
                creds::CAP_AMB => cap_words(v, &mut amb)?,
                creds::GROUPS => repeated_varints(v, &mut groups)?,
                _ => {
                    seen.once(n)?;
                    match n {
                        creds::UID => c.uids[0] = u32_of(v)?,
                        creds::EUID => c.uids[1] = u32_of(v)?,
                        creds::SUID => c.uids[2] = u32_of(v)?,
                        creds::FSUID => c.uids[3] = u32_of(v)?,
                        creds::GID => c.gids[0] = u32_of(v)?,
                        creds::EGID => c.gids[1] = u32_of(v)?,
                        creds::SGID => c.gids[2] = u32_of(v)?,
                        creds::FSGID => c.gids[3] = u32_of(v)?,
                        creds::SECBITS => c.secbits = u32_of(v)?,
                        creds::LSM_PROFILE => c.lsm_profile = Some(text_of(v)?),
                        creds::LSM_SOCKCREATE => c.lsm_sockcreate = Some(text_of(v)?),
                        creds::APPARMOR_DATA => c.apparmor_data = true,
                        creds::NO_NEW_PRIVS => c.no_new_privs = u32_of(v)? != 0,
                        _ => {}
                    }
                }
            }
        }
        // Each uid/gid field is required in the proto: protobuf-c refuses
        // a message without them, and so does kata-cr.
        for n in [
            creds::UID,
            creds::GID,
            creds::EUID,
            creds::EGID,
            creds::SUID,
            creds::SGID,
            creds::FSUID,
            creds::FSGID,
            creds::SECBITS,
        ] {
            if seen.0 & (1 << n) == 0 {
                return Err(Malformed);
            }
        }
        c.cap_inh = caps_of(&inh)?;
        c.cap_prm = caps_of(&prm)?;
        c.cap_eff = caps_of(&eff)?;
        c.cap_bnd = caps_of(&bnd)?;
        c.cap_amb = caps_of(&amb)?;
        c.groups = groups
            .into_iter()
            .map(|g| u32::try_from(g).map_err(|_| Malformed))
            .collect::<Result<_, _>>()?;
        Ok(c)
    }
}

/// Namespace ids of a task (`task_kobj_ids_entry`), in
/// [`NS_KINDS`] order; 0 when absent (as protobuf-c leaves them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NsIds(pub [u32; NS_KINDS.len()]);

/// The namespaces criu compares between a task and its parent (criu's
/// `get_clone_mask`), with their `task_kobj_ids_entry` field numbers.
pub const NS_KINDS: [(&str, u32); 7] = [
    ("pid", 5),
    ("net", 6),
    ("ipc", 7),
    ("uts", 8),
    ("mnt", 9),
    ("user", 10),
    ("time", 12),
];

impl NsIds {
    /// Decodes a `task_kobj_ids_entry`.
    pub fn decode(msg: &[u8]) -> Result<Self, Malformed> {
        let mut ids = NsIds::default();
        let mut seen = Seen::default();
        for f in fields(msg) {
            let (n, v) = f?;
            seen.once(n)?;
            if let Some(i) = NS_KINDS.iter().position(|(_, f)| *f == n) {
                ids.0[i] = u32_of(v)?;
            }
        }
        Ok(ids)
    }

    /// The id of namespace `kind` ("pid", "net"...).
    pub fn get(&self, kind: &str) -> u32 {
        NS_KINDS
            .iter()
            .position(|(k, _)| *k == kind)
            .map(|i| self.0[i])
            .unwrap_or(0)
    }

    /// The kinds whose ids differ from `parent`'s: the namespaces criu
    /// creates for this task.
    pub fn new_in(&self, parent: &NsIds) -> Vec<&'static str> {
        NS_KINDS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0[*i] != parent.0[*i])
            .map(|(_, (k, _))| *k)
            .collect()
    }
}

/// What kata-cr reads of one `core-<tid>.img` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Core {
    /// `ids` (main threads only).
    pub ids: Option<NsIds>,
    /// `thread_core.creds`; `None` when the thread has no `thread_core` or
    /// no creds in it (criu then leaves the thread with its own credentials,
    /// or reads a legacy `creds-<pid>.img`).
    pub creds: Option<Creds>,
    /// The seccomp mode criu restores: `thread_core.seccomp_mode`, else
    /// the task's deprecated `tc.old_seccomp_mode`, else 0.
    pub seccomp_mode: u64,
    /// `tc.loginuid`.
    pub loginuid: Option<u32>,
}

impl Core {
    /// Decodes a `core_entry`.
    pub fn decode(msg: &[u8]) -> Result<Self, Malformed> {
        let mut core = Core::default();
        let mut seen = Seen::default();
        let (mut thread_mode, mut old_mode) = (None, None);
        for f in fields(msg) {
            let (n, v) = f?;
            seen.once(n)?;
            match n {
                core::IDS => core.ids = Some(NsIds::decode(v.bytes().ok_or(Malformed)?)?),
                core::TC => {
                    let mut tseen = Seen::default();
                    for f in fields(v.bytes().ok_or(Malformed)?) {
                        let (n, v) = f?;
                        match n {
                            core::TC_OLD_SECCOMP_MODE => {
                                tseen.once(n)?;
                                old_mode = Some(v.varint().ok_or(Malformed)?);
                            }
                            core::TC_LOGINUID => {
                                tseen.once(n)?;
                                core.loginuid = Some(u32_of(v)?);
                            }
                            _ => {}
                        }
                    }
                }
                core::THREAD_CORE => {
                    let mut tseen = Seen::default();
                    for f in fields(v.bytes().ok_or(Malformed)?) {
                        let (n, v) = f?;
                        match n {
                            core::THREAD_CREDS => {
                                tseen.once(n)?;
                                core.creds = Some(Creds::decode(v.bytes().ok_or(Malformed)?)?);
                            }
                            core::THREAD_SECCOMP_MODE => {
                                tseen.once(n)?;
                                thread_mode = Some(v.varint().ok_or(Malformed)?);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        core.seccomp_mode = thread_mode.or(old_mode).unwrap_or(0);
        Ok(core)
    }
}

/// `inventory_entry.root_ids` (field 3): criu's own namespaces at dump, to
/// which the root task's are compared.
pub fn inventory_root_ids(msg: &[u8]) -> Result<Option<NsIds>, Malformed> {
    let mut seen = Seen::default();
    let mut ids = None;
    for f in fields(msg) {
        let (n, v) = f?;
        seen.once(n)?;
        if n == 3 {
            ids = Some(NsIds::decode(v.bytes().ok_or(Malformed)?)?);
        }
    }
    Ok(ids)
}

/// A `pstree_entry`: a task, its parent and its threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PstreeEntry {
    pub pid: u32,
    pub ppid: u32,
    pub threads: Vec<u32>,
}

impl PstreeEntry {
    /// Decodes a `pstree_entry`.
    pub fn decode(msg: &[u8]) -> Result<Self, Malformed> {
        let mut e = PstreeEntry::default();
        let mut seen = Seen::default();
        let mut threads = Vec::new();
        for f in fields(msg) {
            let (n, v) = f?;
            match n {
                5 => repeated_varints(v, &mut threads)?,
                _ => {
                    seen.once(n)?;
                    match n {
                        1 => e.pid = u32_of(v)?,
                        2 => e.ppid = u32_of(v)?,
                        _ => {}
                    }
                }
            }
        }
        if seen.0 & (1 << 1) == 0 {
            return Err(Malformed);
        }
        e.threads = threads
            .into_iter()
            .map(|t| u32::try_from(t).map_err(|_| Malformed))
            .collect::<Result<_, _>>()?;
        Ok(e)
    }
}

/// The `ext_key` of a `pidns_entry` (field 1) or `netns_entry` (field 8):
/// set when the namespace was external at dump.
pub fn ext_key(msg: &[u8], field: u32) -> Result<Option<String>, Malformed> {
    let mut seen = Seen::default();
    let mut key = None;
    for f in fields(msg) {
        let (n, v) = f?;
        if n == field {
            seen.once(n)?;
            key = Some(text_of(v)?);
        }
    }
    Ok(key)
}

/// `pidns_entry.ext_key`.
pub const PIDNS_EXT_KEY: u32 = 1;
/// `netns_entry.ext_key`.
pub const NETNS_EXT_KEY: u32 = 8;

#[cfg(test)]
mod tests {
    use super::super::criu_image::{RawMessage, RawValue};
    use super::*;

    pub(crate) fn creds_msg(caps: u64) -> RawMessage {
        let mut m = RawMessage::default();
        for n in 1..=8 {
            m.push(n, RawValue::Varint(0));
        }
        for set in [
            creds::CAP_INH,
            creds::CAP_PRM,
            creds::CAP_EFF,
            creds::CAP_BND,
        ] {
            m.push(set, RawValue::Varint(caps & 0xffff_ffff));
            m.push(set, RawValue::Varint(caps >> 32));
        }
        m.push(creds::SECBITS, RawValue::Varint(0));
        m
    }

    #[test]
    fn creds_with_caps_in_words_packed_or_not() {
        let c = Creds::decode(&creds_msg(0x1_0000_0004).encode()).unwrap();
        assert_eq!(c.cap_bnd, 0x1_0000_0004);
        assert_eq!(c.cap_amb, 0);
        let mut m = creds_msg(0);
        m.remove(creds::CAP_EFF);
        m.push(creds::CAP_EFF, RawValue::Bytes(vec![0xff, 0x01, 0x02]));
        let c = Creds::decode(&m.encode()).unwrap();
        assert_eq!(c.cap_eff, 0xff | (2 << 32));
        // Required fields, repeats and capability words past 64 bits.
        let mut m = creds_msg(0);
        m.remove(creds::EUID);
        assert!(Creds::decode(&m.encode()).is_err());
        let mut m = creds_msg(0);
        m.push(creds::UID, RawValue::Varint(0));
        assert!(Creds::decode(&m.encode()).is_err());
        let mut m = creds_msg(0);
        m.push(creds::CAP_BND, RawValue::Varint(1));
        assert!(Creds::decode(&m.encode()).is_err());
    }

    #[test]
    fn core_creds_ids_and_seccomp() {
        let mut ids = RawMessage::default();
        ids.push(1, RawValue::Varint(1))
            .push(5, RawValue::Varint(77));
        let mut tc = RawMessage::default();
        tc.push(core::TC_OLD_SECCOMP_MODE, RawValue::Varint(2));
        let mut th = RawMessage::default();
        th.push(core::THREAD_CREDS, RawValue::Bytes(creds_msg(5).encode()));
        let mut m = RawMessage::default();
        m.push(1, RawValue::Varint(1))
            .push(core::TC, RawValue::Bytes(tc.encode()))
            .push(core::IDS, RawValue::Bytes(ids.encode()))
            .push(core::THREAD_CORE, RawValue::Bytes(th.encode()));
        let c = Core::decode(&m.encode()).unwrap();
        assert_eq!(c.ids.unwrap().get("pid"), 77);
        assert_eq!(c.creds.unwrap().cap_prm, 5);
        assert_eq!(c.seccomp_mode, SECCOMP_MODE_FILTER);
        // A second thread_core would be merged by protobuf: refused.
        m.push(core::THREAD_CORE, RawValue::Bytes(th.encode()));
        assert!(Core::decode(&m.encode()).is_err());
    }

    #[test]
    fn namespaces_new_in_a_task() {
        let root = NsIds([1, 2, 3, 4, 5, 6, 7]);
        let task = NsIds([9, 2, 3, 4, 8, 6, 7]);
        assert_eq!(task.new_in(&root), ["pid", "mnt"]);
        assert!(root.new_in(&root).is_empty());
    }

    #[test]
    fn mnt_entries() {
        let mut m = RawMessage::default();
        m.push(mnt::FSTYPE, RawValue::Varint(u64::from(fstype::TMPFS)))
            .push(mnt::MNT_ID, RawValue::Varint(10))
            .push(mnt::ROOT_DEV, RawValue::Varint((8 << 20) | 1))
            .push(mnt::MOUNTPOINT, RawValue::Bytes(b"/dev/shm".to_vec()))
            .push(
                mnt::EXT_KEY,
                RawValue::Bytes(b"CRIU:AUTOGENERATED".to_vec()),
            );
        let e = MntEntry::decode(&m.encode()).unwrap();
        assert_eq!(e.mountpoint, "/dev/shm");
        assert_eq!(e.root_dev_major(), 8);
        assert_eq!(e.ext_key.as_deref(), Some("CRIU:AUTOGENERATED"));
        m.push(mnt::EXT_KEY, RawValue::Bytes(b"rootfs".to_vec()));
        assert!(MntEntry::decode(&m.encode()).is_err());
        assert_eq!(fstype::of_name("cgroup2"), Some(fstype::CGROUP2));
    }

    #[test]
    fn pstree_and_ext_keys() {
        let mut m = RawMessage::default();
        m.push(1, RawValue::Varint(7))
            .push(2, RawValue::Varint(0))
            .push(5, RawValue::Bytes(vec![7, 8]));
        let e = PstreeEntry::decode(&m.encode()).unwrap();
        assert_eq!((e.pid, e.threads.as_slice()), (7, &[7, 8][..]));
        let mut p = RawMessage::default();
        p.push(PIDNS_EXT_KEY, RawValue::Bytes(b"extpid".to_vec()));
        assert_eq!(
            ext_key(&p.encode(), PIDNS_EXT_KEY).unwrap().as_deref(),
            Some("extpid")
        );
        assert_eq!(ext_key(&[], NETNS_EXT_KEY).unwrap(), None);
    }
}
