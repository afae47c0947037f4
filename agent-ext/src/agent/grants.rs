//! What a container being restored into was granted, read from its init
//! (kata-cr-init waiting in restore mode): the runtime set it up from the
//! container's spec, so its ids, `no_new_privs`, seccomp mode, LSM label
//! and mounts are the spec's as the runtime applied them. Its capabilities
//! are not: the proxy lends it three for the moment it joins the restored
//! workload; the set it keeps for good is its `--keep-caps` argument.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::container;
use super::error::{Error, Result};
use super::restore_checks::{mount_flags, Grants, Mount};
use super::spec;
use crate::agent::criu::EXT_ROOT_KEY;

/// The `--keep-caps` mask of an init's `/proc/<pid>/cmdline`.
pub fn keep_caps(cmdline: &[u8]) -> Option<u64> {
    let mut args = cmdline
        .split(|&b| b == 0)
        .skip(1)
        .take_while(|a| *a != b"--");
    while let Some(a) = args.next() {
        if a == b"--keep-caps" {
            let hex = std::str::from_utf8(args.next()?).ok()?;
            return u64::from_str_radix(hex, 16).ok();
        }
    }
    None
}

/// The values of a `/proc/<pid>/status` line (`Uid:`, `Groups:`...).
fn status_values<'a>(status: &'a str, key: &str) -> Vec<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().collect())
        .unwrap_or_default()
}

fn status_ids(status: &str, key: &str) -> Vec<u32> {
    let mut v: Vec<u32> = status_values(status, key)
        .into_iter()
        .filter_map(|x| x.parse().ok())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The mounts of a mountinfo text, as [`Grants::mounts`].
pub fn mounts_of(mountinfo: &str) -> Vec<Mount> {
    spec::parse_mountinfo(mountinfo)
        .into_iter()
        .map(|m| Mount {
            id: m.id,
            parent: m.parent,
            mountpoint: m.mountpoint.to_string_lossy().into_owned(),
            fstype: m.fstype,
            flags: mount_flags(&m.options),
        })
        .collect()
}

/// Reads the grants of the container whose init is `init` and whose
/// rootfs is `rootfs` (the agent's view); `own_netns`: it has a network
/// namespace that is not the agent's; `external`: the external mounts its
/// spec lets criu map (key -> source), the rootfs added here.
pub fn read(
    proc: &Path,
    init: i32,
    rootfs: &Path,
    own_netns: bool,
    mut external: BTreeMap<String, PathBuf>,
) -> Result<Grants> {
    let dir = proc.join(init.to_string());
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| Error::io(format!("reading {}", p.display()), e))
    };
    let text = |name: &str| read(name).map(|b| String::from_utf8_lossy(&b).into_owned());
    let caps = keep_caps(&read("cmdline")?).ok_or_else(|| {
        Error::FailedPrecondition(format!(
            "the init {init} has no --keep-caps: not a kata-cr-init waiting to restore"
        ))
    })?;
    let status = text("status")?;
    let mut gids = status_ids(&status, "Gid:");
    gids.extend(status_ids(&status, "Groups:"));
    gids.sort_unstable();
    gids.dedup();
    let flag = |key: &str| status_values(&status, key).first().copied();
    // No LSM (or one without a label for the task): nothing to keep.
    let lsm_label = std::fs::read_to_string(dir.join("attr/current"))
        .ok()
        .map(|l| l.trim_end_matches(['\n', '\0']).to_string())
        .filter(|l| !l.is_empty());
    let loginuid = std::fs::read_to_string(dir.join("loginuid"))
        .ok()
        .and_then(|l| l.trim().parse().ok());
    external.insert(EXT_ROOT_KEY.to_string(), rootfs.to_path_buf());
    Ok(Grants {
        caps,
        uids: status_ids(&status, "Uid:"),
        gids,
        no_new_privs: flag("NoNewPrivs:") == Some("1"),
        seccomp_filter: flag("Seccomp:") == Some("2"),
        lsm_label,
        loginuid,
        own_netns,
        mounts: mounts_of(&text("mountinfo")?),
        external,
    })
}

/// Whether `init`'s network namespace is not the agent's.
pub fn own_netns(proc: &Path, init: i32) -> Result<bool> {
    Ok(container::ns_inode(proc, &init.to_string(), "net")?
        != container::ns_inode(proc, "self", "net")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_caps_is_an_option_of_the_init() {
        assert_eq!(
            keep_caps(b"/dev/.kata-cr-init\0--restore\0--keep-caps\0a80425fb\0--\0sh\0"),
            Some(0xa804_25fb)
        );
        assert_eq!(
            keep_caps(b"/dev/.kata-cr-init\0--restore\0--\0--keep-caps\0ff\0"),
            None
        );
        assert_eq!(keep_caps(b"/dev/.kata-cr-init\0--keep-caps\0"), None);
        assert_eq!(keep_caps(b"/dev/.kata-cr-init\0--keep-caps\0zz\0"), None);
    }

    #[test]
    fn grants_from_a_fake_proc() {
        let proc = tempfile::tempdir().unwrap();
        let d = proc.path().join("7");
        std::fs::create_dir_all(d.join("attr")).unwrap();
        std::fs::write(
            d.join("cmdline"),
            b"/dev/.kata-cr-init\0--restore\0--keep-caps\0ff\0--\0sh\0",
        )
        .unwrap();
        std::fs::write(
            d.join("status"),
            "Name:\tinit\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nGroups:\t5 100 \nNoNewPrivs:\t1\nSeccomp:\t2\n",
        )
        .unwrap();
        std::fs::write(d.join("attr/current"), "cri-default (enforce)\n").unwrap();
        std::fs::write(d.join("loginuid"), "4294967295").unwrap();
        std::fs::write(
            d.join("mountinfo"),
            "127 55 0:51 / / rw,relatime - overlay overlay rw\n\
             134 127 0:64 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro\n",
        )
        .unwrap();
        let g = read(proc.path(), 7, Path::new("/r"), true, BTreeMap::new()).unwrap();
        assert_eq!(g.caps, 0xff);
        assert_eq!(g.uids, [1000]);
        assert_eq!(g.gids, [5, 100]);
        assert!(g.no_new_privs && g.seccomp_filter && g.own_netns);
        assert_eq!(g.lsm_label.as_deref(), Some("cri-default (enforce)"));
        assert_eq!(g.loginuid, Some(u32::MAX));
        assert_eq!(g.mounts[1].mountpoint, "/sys");
        assert_eq!(g.mounts[1].flags, 0xf);
        assert_eq!(g.mounts[1].parent, 127);
        assert_eq!(g.external.get("rootfs"), Some(&PathBuf::from("/r")));
    }
}
