//! What an image set asks of a restore, read from its criu images before
//! criu sees them: the namespaces criu would create, every thread's
//! credentials, the mounts of every mount namespace, which namespaces were
//! external at dump. [`super::restore_checks`] judges it against the
//! container being restored into.
//!
//! Read the way criu reads them: the tasks from `pstree.img`, each thread's
//! `core-<tid>.img` (only its first entry counts for criu; more are
//! refused), each task's namespace ids from `ids-<pid>.img`, the root
//! task's against `inventory.img`'s `root_ids` and every other task's
//! against its parent's (criu's `prepare_pstree_kobj_ids`), `mountpoints-<mnt ns id>.img`,
//! `pidns-<id>.img`, `netns-<id>.img`. Every file goes through
//! [`Limits::check_metadata`] and is read entry by entry.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};

use super::criu_image::{magic, EntryReader};
use super::criu_messages::{self as msgs, Core, Creds, MntEntry, NsIds, PstreeEntry};
use super::error::{Error, Result};
use super::limits::{Limits, MAX_ENTRY};

/// Most tasks and threads kata-cr reads from one image set.
pub const MAX_THREADS: usize = 1 << 16;
/// Most mounts kata-cr reads from one mount namespace.
pub const MAX_MOUNTS: usize = 1 << 14;

/// Where the images are read from.
pub trait Source {
    /// Opens image `name` for reading if it exists; its size.
    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + '_>, u64)>>;
    /// The names of the files in the set.
    fn names(&self) -> Result<Vec<String>>;
    /// How the set is named in errors.
    fn what(&self) -> String;
}

/// One thread of the image set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// Its task's pid (in the dumped pid namespace).
    pub pid: u32,
    pub tid: u32,
    /// `None`: no credentials in its core image.
    pub creds: Option<Creds>,
    pub seccomp_mode: u64,
    pub loginuid: Option<u32>,
}

/// What the image set asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// The root task's pid.
    pub root_pid: u32,
    /// The root task's namespace ids.
    pub root_ids: NsIds,
    /// Namespaces criu creates for the root task ("pid", "mnt"...).
    pub root_new_ns: Vec<&'static str>,
    /// Other tasks that get namespaces of their own: `(pid, kinds)`.
    pub nested_ns: Vec<(u32, Vec<&'static str>)>,
    /// Every thread of every task.
    pub threads: Vec<Thread>,
    /// The mounts of each mount namespace, by namespace id.
    pub mounts: BTreeMap<u32, Vec<MntEntry>>,
    /// `ext_key` of the root task's pid namespace image (`None`: not
    /// external, or no image).
    pub pidns_key: Option<String>,
    /// `ext_key` of the root task's network namespace image.
    pub netns_key: Option<String>,
    /// Files criu would use that kata-cr refuses whatever they hold
    /// (legacy `creds-*.img`, `apparmor.img`, `userns-*.img`).
    pub refused_files: Vec<String>,
}

fn read_entries<F>(
    src: &dyn Source,
    name: &str,
    magic: u32,
    limits: &Limits,
    mut each: F,
) -> Result<bool>
where
    F: FnMut(&[u8], &str) -> Result<()>,
{
    let Some((input, size)) = src.open(name)? else {
        return Ok(false);
    };
    let what = src.what();
    limits.check_metadata(&what, name, size)?;
    let shown = format!("{what}/{name}");
    let mut r = EntryReader::new(
        BufReader::new(input.take(size)),
        magic,
        shown.clone(),
        MAX_ENTRY,
    )?;
    while let Some(e) = r.next_entry()? {
        each(e, &shown)?;
    }
    Ok(true)
}

fn malformed(what: &str, detail: &str) -> Error {
    Error::InvalidArgument(format!("{what}: malformed criu image ({detail})"))
}

/// Reads the only entry criu reads of `name`; more than one is refused.
fn read_one<T>(
    src: &dyn Source,
    name: &str,
    magic: u32,
    limits: &Limits,
    decode: impl Fn(&[u8]) -> std::result::Result<T, super::criu_image::Malformed>,
) -> Result<Option<T>> {
    let mut out = None;
    let found = read_entries(src, name, magic, limits, |e, what| {
        if out.is_some() {
            return Err(malformed(what, "more than one entry"));
        }
        out = Some(decode(e).map_err(|_| malformed(what, "undecodable entry"))?);
        Ok(())
    })?;
    if found && out.is_none() {
        return Err(malformed(&format!("{}/{name}", src.what()), "no entry"));
    }
    Ok(out)
}

/// Reads what the image set in `src` asks for.
pub fn read(src: &dyn Source, limits: &Limits) -> Result<Claims> {
    let what = src.what();
    let mut claims = Claims::default();
    for name in src.names()? {
        let refused = (name.starts_with("creds-") && name.ends_with(".img"))
            || name == "apparmor.img"
            || (name.starts_with("userns-") && name.ends_with(".img"));
        if refused {
            claims.refused_files.push(name);
        }
    }

    let root_ids = read_one(
        src,
        "inventory.img",
        magic::INVENTORY,
        limits,
        msgs::inventory_root_ids,
    )?
    .ok_or_else(|| {
        Error::InvalidArgument(format!("{what}: no inventory.img: not a criu image set"))
    })?
    .ok_or_else(|| malformed(&format!("{what}/inventory.img"), "no root_ids"))?;

    let mut tasks: Vec<PstreeEntry> = Vec::new();
    let found = read_entries(src, "pstree.img", magic::PSTREE, limits, |e, w| {
        if tasks.len() >= MAX_THREADS {
            return Err(Error::InvalidArgument(format!(
                "{w}: more than {MAX_THREADS} tasks"
            )));
        }
        tasks.push(PstreeEntry::decode(e).map_err(|_| malformed(w, "undecodable pstree entry"))?);
        Ok(())
    })?;
    if !found || tasks.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what}: no tasks (pstree.img missing or empty)"
        )));
    }
    claims.root_pid = tasks[0].pid;

    let mut ids_of: BTreeMap<u32, NsIds> = BTreeMap::new();
    let mut nthreads = 0usize;
    for t in &tasks {
        // A task with no thread list has its main thread only.
        let tids: Vec<u32> = if t.threads.is_empty() {
            vec![t.pid]
        } else {
            t.threads.clone()
        };
        nthreads += tids.len();
        if nthreads > MAX_THREADS {
            return Err(Error::InvalidArgument(format!(
                "{what}: more than {MAX_THREADS} threads"
            )));
        }
        for tid in tids {
            let name = format!("core-{tid}.img");
            let core =
                read_one(src, &name, magic::CORE, limits, Core::decode)?.ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "{what}: {name} is missing (pstree.img lists thread {tid} of task {} \
                     among {} task(s))",
                        t.pid,
                        tasks.len()
                    ))
                })?;
            claims.threads.push(Thread {
                pid: t.pid,
                tid,
                creds: core.creds,
                seccomp_mode: core.seccomp_mode,
                loginuid: core.loginuid,
            });
        }
    }

    for t in &tasks {
        let name = format!("ids-{}.img", t.pid);
        // criu takes a task without ids as sharing its parent's (the root
        // task must have them).
        if let Some(ids) = read_one(src, &name, magic::IDS, limits, NsIds::decode)? {
            ids_of.insert(t.pid, ids);
        }
    }
    let root = ids_of.get(&claims.root_pid).copied().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{what}: ids-{}.img is missing: no namespace ids for the root task",
            claims.root_pid
        ))
    })?;
    claims.root_ids = root;
    claims.root_new_ns = root.new_in(&root_ids);
    for t in tasks.iter().skip(1) {
        let Some(ids) = ids_of.get(&t.pid) else {
            continue;
        };
        let parent = ids_of.get(&t.ppid).copied().unwrap_or(root);
        let new = ids.new_in(&parent);
        if !new.is_empty() {
            claims.nested_ns.push((t.pid, new));
        }
    }

    let mut mnt_ns: Vec<u32> = ids_of.values().map(|i| i.get("mnt")).collect();
    mnt_ns.sort_unstable();
    mnt_ns.dedup();
    for id in mnt_ns {
        let name = format!("mountpoints-{id}.img");
        let mut list = Vec::new();
        read_entries(src, &name, magic::MNTS, limits, |e, w| {
            if list.len() >= MAX_MOUNTS {
                return Err(Error::InvalidArgument(format!(
                    "{w}: more than {MAX_MOUNTS} mounts"
                )));
            }
            list.push(MntEntry::decode(e).map_err(|_| malformed(w, "undecodable mount entry"))?);
            Ok(())
        })?;
        claims.mounts.insert(id, list);
    }

    let pid_id = root.get("pid");
    claims.pidns_key = read_one(
        src,
        &format!("pidns-{pid_id}.img"),
        magic::PIDNS,
        limits,
        |e| msgs::ext_key(e, msgs::PIDNS_EXT_KEY),
    )?
    .flatten();
    let net_id = root.get("net");
    claims.netns_key = read_one(
        src,
        &format!("netns-{net_id}.img"),
        magic::NETNS,
        limits,
        |e| msgs::ext_key(e, msgs::NETNS_EXT_KEY),
    )?
    .flatten();
    Ok(claims)
}

/// A [`Source`] over files in memory (tests, fuzzing).
#[derive(Debug, Default, Clone)]
pub struct MemSource(pub BTreeMap<String, Vec<u8>>);

impl Source for MemSource {
    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + '_>, u64)>> {
        Ok(self
            .0
            .get(name)
            .map(|d| (Box::new(d.as_slice()) as Box<dyn Read>, d.len() as u64)))
    }
    fn names(&self) -> Result<Vec<String>> {
        Ok(self.0.keys().cloned().collect())
    }
    fn what(&self) -> String {
        "image set".into()
    }
}
