//! The freezer cgroup of a container's workload (cgroup v1 `freezer` or
//! cgroup v2), found through `/proc/<pid>/cgroup` and the daemon's own
//! `/proc/self/mountinfo`.
//!
//! The engine pauses the container (freezes this cgroup) before asking for
//! a checkpoint; criu is then told to seize the already frozen tasks
//! (`--freeze-cgroup`), which leaves the cgroup frozen after the dump.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// A freezer cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// cgroup v1 freezer hierarchy (`freezer.state`).
    V1(PathBuf),
    /// cgroup v2 (`cgroup.freeze`).
    V2(PathBuf),
}

/// Freezer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running.
    Thawed,
    /// Frozen (v1 `FREEZING` counts as frozen: it is on its way).
    Frozen,
}

impl Freezer {
    /// The cgroup directory.
    pub fn dir(&self) -> &Path {
        match self {
            Freezer::V1(d) | Freezer::V2(d) => d,
        }
    }

    /// Reads the current state.
    pub fn state(&self) -> Result<State> {
        let (file, frozen): (_, fn(&str) -> bool) = match self {
            Freezer::V1(d) => (d.join("freezer.state"), |s| {
                s == "FROZEN" || s == "FREEZING"
            }),
            Freezer::V2(d) => (d.join("cgroup.freeze"), |s| s == "1"),
        };
        let text = fs::read_to_string(&file)
            .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
        Ok(if frozen(text.trim()) {
            State::Frozen
        } else {
            State::Thawed
        })
    }

    /// Whether a v1 freezer is still on its way to frozen (`FREEZING`).
    pub fn freezing(&self) -> bool {
        match self {
            Freezer::V1(d) => {
                fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FREEZING")
            }
            Freezer::V2(_) => false,
        }
    }

    /// Sets the state (used only to put back the state seen before an
    /// operation if criu left another one).
    pub fn set_state(&self, state: State) -> Result<()> {
        let (file, value) = self.state_file(state);
        fs::write(&file, value)
            .map_err(|e| Error::io(format!("writing {value} to {}", file.display()), e))
    }

    /// The file to write, and what, for `state`.
    pub fn state_file(&self, state: State) -> (PathBuf, &'static str) {
        match (self, state) {
            (Freezer::V1(d), State::Frozen) => (d.join("freezer.state"), "FROZEN"),
            (Freezer::V1(d), State::Thawed) => (d.join("freezer.state"), "THAWED"),
            (Freezer::V2(d), State::Frozen) => (d.join("cgroup.freeze"), "1"),
            (Freezer::V2(d), State::Thawed) => (d.join("cgroup.freeze"), "0"),
        }
    }
}

/// A line of `/proc/<pid>/cgroup`.
#[derive(Debug, PartialEq, Eq)]
struct Membership<'a> {
    controllers: &'a str,
    path: &'a str,
}

fn memberships(text: &str) -> impl Iterator<Item = Membership<'_>> {
    text.lines().filter_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        Some(Membership {
            controllers: parts.next()?,
            path: parts.next()?,
        })
    })
}

/// A cgroup mount from mountinfo: (mount root, mount point, fstype, super options).
#[derive(Debug, PartialEq, Eq)]
struct CgroupMount {
    root: String,
    mount_point: PathBuf,
    v2: bool,
    options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            out.push(
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0'),
            );
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let fstype = *right.first()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(CgroupMount {
                root: unescape(left.get(3)?),
                mount_point: PathBuf::from(unescape(left.get(4)?)),
                v2: fstype == "cgroup2",
                options: right.get(2).copied().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// Joins a cgroup path under a mount whose root is `root`.
fn under_mount(mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        path.trim_start_matches('/')
    } else {
        path.strip_prefix(mount.root.as_str())?
            .trim_start_matches('/')
    };
    Some(if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    })
}

/// Finds the freezer cgroup from the texts of `/proc/<pid>/cgroup` and the
/// daemon's mountinfo. v1 freezer wins when both exist (that is what
/// freezes the tasks on a hybrid system).
pub fn find_freezer(proc_cgroup: &str, mountinfo: &str) -> Option<Freezer> {
    let mounts = cgroup_mounts(mountinfo);
    let members: Vec<Membership> = memberships(proc_cgroup).collect();
    if let Some(m) = members
        .iter()
        .find(|m| m.controllers.split(',').any(|c| c == "freezer"))
    {
        let mount = mounts
            .iter()
            .find(|mt| !mt.v2 && mt.options.split(',').any(|o| o == "freezer"))?;
        return under_mount(mount, m.path).map(Freezer::V1);
    }
    let m = members.iter().find(|m| m.controllers.is_empty())?;
    let mount = mounts.iter().find(|mt| mt.v2)?;
    under_mount(mount, m.path).map(Freezer::V2)
}

/// The freezer cgroup of `pid`, if the daemon can see one.
pub fn freezer_of(proc_root: &Path, pid: i32) -> Result<Option<Freezer>> {
    let cg_path = proc_root.join(pid.to_string()).join("cgroup");
    let cg = fs::read_to_string(&cg_path)
        .map_err(|e| Error::io(format!("reading {}", cg_path.display()), e))?;
    let mi_path = proc_root.join("self").join("mountinfo");
    let mi = fs::read_to_string(&mi_path)
        .map_err(|e| Error::io(format!("reading {}", mi_path.display()), e))?;
    Ok(find_freezer(&cg, &mi).filter(|f| f.dir().is_dir()))
}

/// Every cgroup directory `proc_cgroup` names that the daemon's mountinfo
/// has mounted (one per v1 hierarchy, plus the v2 one), deduplicated.
pub fn find_all(proc_cgroup: &str, mountinfo: &str) -> Vec<PathBuf> {
    let mounts = cgroup_mounts(mountinfo);
    let mut dirs = Vec::new();
    for m in memberships(proc_cgroup) {
        let mount = if m.controllers.is_empty() {
            mounts.iter().find(|mt| mt.v2)
        } else {
            mounts.iter().find(|mt| {
                !mt.v2
                    && m.controllers
                        .split(',')
                        .all(|c| mt.options.split(',').any(|o| o == c))
            })
        };
        if let Some(dir) = mount.and_then(|mt| under_mount(mt, m.path)) {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// The `cgroup.procs` files of every cgroup of `pid` the daemon can see: a
/// process that writes `0` to each joins `pid`'s cgroups.
pub fn procs_files_of(proc_root: &Path, pid: i32) -> Result<Vec<PathBuf>> {
    let cg_path = proc_root.join(pid.to_string()).join("cgroup");
    let cg = fs::read_to_string(&cg_path)
        .map_err(|e| Error::io(format!("reading {}", cg_path.display()), e))?;
    let mi_path = proc_root.join("self").join("mountinfo");
    let mi = fs::read_to_string(&mi_path)
        .map_err(|e| Error::io(format!("reading {}", mi_path.display()), e))?;
    Ok(find_all(&cg, &mi)
        .into_iter()
        .map(|d| d.join("cgroup.procs"))
        .filter(|f| f.exists())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hierarchy_of_a_process() {
        let mi = "\
30 24 0:26 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
31 24 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
32 24 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 24 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let cg = "4:freezer:/default/c1\n3:cpu,cpuacct:/default/c1\n\
                  2:name=systemd:/x\n1:memory:/unmounted\n0::/u\n";
        assert_eq!(
            find_all(cg, mi),
            [
                PathBuf::from("/sys/fs/cgroup/freezer/default/c1"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/default/c1"),
                PathBuf::from("/sys/fs/cgroup/systemd/x"),
                PathBuf::from("/sys/fs/cgroup/unified/u"),
            ]
        );
    }

    const MOUNTINFO_V1: &str = "\
24 1 0:21 / /sys/fs/cgroup rw,relatime - tmpfs cgroup rw,mode=755
30 24 0:26 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
31 24 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn v1_freezer_path_from_proc_cgroup() {
        let cg = "9:name=systemd:/\n6:freezer:/default/c1\n4:memory:/x\n0::/\n";
        assert_eq!(
            find_freezer(cg, MOUNTINFO_V1),
            Some(Freezer::V1(PathBuf::from(
                "/sys/fs/cgroup/freezer/default/c1"
            )))
        );
    }

    #[test]
    fn v1_mount_with_a_root_strips_it() {
        let mi = "30 24 0:26 /kubepods /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n";
        let cg = "6:freezer:/kubepods/pod1/c1\n";
        assert_eq!(
            find_freezer(cg, mi),
            Some(Freezer::V1(PathBuf::from("/sys/fs/cgroup/freezer/pod1/c1")))
        );
        // Outside the mount's root: not reachable.
        assert_eq!(find_freezer("6:freezer:/elsewhere\n", mi), None);
    }

    #[test]
    fn v2_unified_path() {
        let mi = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            find_freezer("0::/system.slice/c1\n", mi),
            Some(Freezer::V2(PathBuf::from("/sys/fs/cgroup/system.slice/c1")))
        );
    }

    #[test]
    fn escaped_mount_points() {
        assert_eq!(unescape(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape(r"/plain\"), "/plain\\");
    }

    #[test]
    fn state_roundtrip_on_a_fake_v1_dir() {
        let dir = tempfile::tempdir().unwrap();
        let f = Freezer::V1(dir.path().to_path_buf());
        fs::write(dir.path().join("freezer.state"), "FROZEN\n").unwrap();
        assert_eq!(f.state().unwrap(), State::Frozen);
        f.set_state(State::Thawed).unwrap();
        assert_eq!(f.state().unwrap(), State::Thawed);
    }
}
