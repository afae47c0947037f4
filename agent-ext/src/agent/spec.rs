//! The container's OCI spec, as the runtime wrote it beside the rootfs
//! (`<rootfs>/../config.json`: the bundle in host mode, and
//! `/run/kata-containers/<cid>/config.json` in a Kata guest). criu needs the
//! runtime's bind mounts: keyed by their destination at dump, and mapped to
//! the restoring container's own sources at restore (as runc does), because a
//! restored container's sources differ (CRI: /etc/hosts of another pod).

use std::path::{Path, PathBuf};

/// A bind mount of the spec: destination in the container, source outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub destination: PathBuf,
    pub source: PathBuf,
}

/// The spec's bind mounts; none when the spec cannot be read: a dump then
/// fails on criu's "unreachable mount" error, and a restore refuses every
/// bind the image records (kata-cr maps external mounts only from the spec,
/// see [`super::restore_checks`]).
pub fn bind_mounts(rootfs: &Path) -> Vec<BindMount> {
    let Some(path) = rootfs.parent().map(|b| b.join("config.json")) else {
        return Vec::new();
    };
    std::fs::read(&path)
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .map(|spec| from_spec(&spec))
        .unwrap_or_default()
}

pub fn from_spec(spec: &serde_json::Value) -> Vec<BindMount> {
    let Some(mounts) = spec.get("mounts").and_then(|m| m.as_array()) else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|m| {
            let typ = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
            let opts = m.get("options").and_then(|o| o.as_array());
            typ == "bind"
                || opts.is_some_and(|o| {
                    o.iter()
                        .any(|v| matches!(v.as_str(), Some("bind") | Some("rbind")))
                })
        })
        .filter_map(|m| {
            let destination = PathBuf::from(m.get("destination")?.as_str()?);
            let source = PathBuf::from(m.get("source")?.as_str()?);
            (destination.is_absolute() && destination != Path::new("/")).then_some(BindMount {
                destination,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bind_mounts_of_a_cri_spec() {
        let spec = json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/cri/sb1/hosts", "options": ["rbind", "rw"]},
            {"destination": "/dev/.kata-cr-init", "source": "/usr/local/bin/kata-cr-init", "options": ["rbind", "ro"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid"]},
            {"destination": "/", "type": "bind", "source": "/x"}
        ]});
        let b = from_spec(&spec);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].destination, PathBuf::from("/etc/hosts"));
        assert_eq!(b[0].source, PathBuf::from("/var/lib/cri/sb1/hosts"));
        assert_eq!(b[1].destination, PathBuf::from("/dev/.kata-cr-init"));
    }

    #[test]
    fn unreadable_specs_give_nothing() {
        assert!(bind_mounts(Path::new("/nonexistent/rootfs")).is_empty());
        assert!(from_spec(&json!({"mounts": "x"})).is_empty());
    }
}

/// One line of `/proc/<pid>/mountinfo` that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount id.
    pub id: u32,
    /// Parent's mount id.
    pub parent: u32,
    /// `major:minor` of the mounted filesystem.
    pub dev: String,
    /// The mount's root within its filesystem.
    pub root: PathBuf,
    /// Where it is mounted (relative to the process's root).
    pub mountpoint: PathBuf,
    /// Per-mount options (`rw,nosuid,...`).
    pub options: String,
    pub fstype: String,
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            Some(MountInfo {
                id: f.first()?.parse().ok()?,
                parent: f.get(1)?.parse().ok()?,
                dev: f.get(2)?.to_string(),
                root: PathBuf::from(unescape(f.get(3)?)),
                mountpoint: PathBuf::from(unescape(f.get(4)?)),
                options: f.get(5)?.to_string(),
                fstype: fstype.to_string(),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The container's cgroup (v1 and v2) mounts: each is a bind of a
/// sub-directory of the host's cgroup filesystem, named after the container,
/// so a restored container (another id, another pod) has other sources.
pub fn cgroup_mounts(container: &[MountInfo]) -> Vec<&MountInfo> {
    container
        .iter()
        .filter(|m| (m.fstype == "cgroup" || m.fstype == "cgroup2") && m.root != Path::new("/"))
        .collect()
}

/// Where `m` (a mount of the container) is on the agent's side: the agent's
/// own mount of the same filesystem with root `/`, plus `m`'s root.
pub fn host_source(m: &MountInfo, own: &[MountInfo]) -> Option<PathBuf> {
    let base = own
        .iter()
        .find(|o| o.dev == m.dev && o.root == Path::new("/"))?;
    Some(base.mountpoint.join(m.root.strip_prefix("/").ok()?))
}

/// The cgroup mount points of the process `pid` (dump: keys).
pub fn cgroup_mountpoints(proc_root: &Path, pid: i32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("mountinfo"))
        .unwrap_or_default();
    cgroup_mounts(&parse_mountinfo(&text))
        .into_iter()
        .map(|m| m.mountpoint.clone())
        .collect()
}

/// The cgroup mounts of the process `pid`, each with its source as the agent
/// sees it (restore: the maps for the dump's keys).
pub fn cgroup_maps(proc_root: &Path, pid: i32) -> Vec<(PathBuf, PathBuf)> {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let theirs = parse_mountinfo(&read(&proc_root.join(pid.to_string()).join("mountinfo")));
    let own = parse_mountinfo(&read(&proc_root.join("self/mountinfo")));
    cgroup_mounts(&theirs)
        .into_iter()
        .filter_map(|m| Some((m.mountpoint.clone(), host_source(m, &own)?)))
        .collect()
}

#[cfg(test)]
mod mountinfo_tests {
    use super::*;

    const CONTAINER: &str = "\
1210 1200 0:93 / / rw,relatime - overlay overlay rw,lowerdir=/a
1230 1229 0:33 /k8s.io/c2 /sys/fs/cgroup/cpu ro,nosuid - cgroup cgroup rw,cpu
1231 1229 0:34 /k8s.io/c2 /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
1232 1229 0:35 / /sys/fs/cgroup/unified ro - cgroup2 cgroup2 rw
1240 1210 0:60 /sb1/hosts /etc/hosts rw - ext4 /dev/vda rw
";
    const HOST: &str = "\
30 20 0:33 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
31 20 0:34 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";

    #[test]
    fn cgroup_binds_map_to_the_host_paths() {
        let c = parse_mountinfo(CONTAINER);
        let own = parse_mountinfo(HOST);
        let cg = cgroup_mounts(&c);
        assert_eq!(
            cg.len(),
            2,
            "the whole-filesystem cgroup2 mount is not a bind"
        );
        assert_eq!(cg[0].mountpoint, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(
            host_source(cg[1], &own),
            Some(PathBuf::from("/sys/fs/cgroup/memory/k8s.io/c2"))
        );
    }
}

/// The image-set file that records the workload's stdio (runc's name).
pub const DESCRIPTORS: &str = "descriptors.json";

/// `descriptors.json`: what fds 0, 1, 2 of `pid` were (`pipe:[ino]`,
/// `/dev/null`...), a JSON array of three strings.
pub fn stdio_of(proc_root: &Path, pid: i32) -> String {
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(
                proc_root
                    .join(pid.to_string())
                    .join("fd")
                    .join(fd.to_string()),
            )
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
        })
        .collect();
    serde_json::to_string(&fds).expect("strings serialise")
}

/// The stdio entries of a `descriptors.json` that criu must be given anew
/// (pipes to the old runtime): `(fd, key)`.
pub fn inheritable_stdio(descriptors: &[u8]) -> Vec<(i32, String)> {
    serde_json::from_slice::<Vec<String>>(descriptors)
        .unwrap_or_default()
        .into_iter()
        .take(3)
        .enumerate()
        .filter(|(_, d)| d.starts_with("pipe:"))
        .map(|(i, d)| (i as i32, d))
        .collect()
}

#[cfg(test)]
mod stdio_tests {
    use super::*;

    #[test]
    fn only_pipes_are_handed_over() {
        let d = br#"["/dev/null","pipe:[123]","pipe:[124]"]"#;
        assert_eq!(
            inheritable_stdio(d),
            vec![(1, "pipe:[123]".to_string()), (2, "pipe:[124]".to_string())]
        );
        assert!(inheritable_stdio(b"garbage").is_empty());
    }
}
