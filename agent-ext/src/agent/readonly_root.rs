//! Read-only roots across a restore.
//!
//! The runtime mounted the restoring init's root as the container's spec
//! asks: read-only for `root.readonly` (`ctr run --read-only`, CRI
//! `readonly_rootfs`). criu restores the workload into a mount namespace of
//! its own making, whose root mount must keep that flag. criu before 4.2
//! drops the root mount's flags (criu issue #2632, fixed in 4.2 by
//! "mount-v2: restore root mount flags"; seen here with Debian trixie's
//! 4.1.1, under runc as under kata-cr): the restored workload, and every
//! process exec'd beside it, could write the root the container was given
//! read-only. Such a restore is refused before criu runs, so that the
//! container's read-only view is never weakened, not even for a moment.

use std::path::Path;

use super::error::{Error, Result};

/// The first criu release that restores the root mount's flags.
pub const KEEPS_ROOT_FLAGS: (u32, u32) = (4, 2);

/// Whether the mount on `/` in a `/proc/<pid>/mountinfo` is read-only (the
/// last one, should several be stacked there).
pub fn root_is_read_only(mountinfo: &str) -> bool {
    mountinfo
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let mount_point = f.nth(4)?;
            let options = f.next()?;
            (mount_point == "/").then_some(options)
        })
        .next_back()
        .is_some_and(|opts| opts.split(',').any(|o| o == "ro"))
}

/// Whether criu `version` ("4.1.1", "4.2", "4.2-rc1") restores the root
/// mount's flags; a version that cannot be read is not trusted to.
pub fn criu_keeps_root_flags(version: &str) -> bool {
    let mut nums = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (nums.next().flatten(), nums.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= KEEPS_ROOT_FLAGS,
        _ => false,
    }
}

/// Whether the root of `init` (as the runtime mounted it) is read-only.
pub fn init_root_is_read_only(proc: &Path, init: i32) -> Result<bool> {
    let path = proc.join(init.to_string()).join("mountinfo");
    let mountinfo = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(root_is_read_only(&mountinfo))
}

/// Refuses the restore of container `id`, whose root is read-only, when
/// criu (`criu_version`) would restore that root writable.
pub fn refuse_unless_criu_keeps_it(id: &str, criu_version: &str) -> Result<()> {
    if criu_keeps_root_flags(criu_version) {
        return Ok(());
    }
    let (major, minor) = KEEPS_ROOT_FLAGS;
    Err(Error::FailedPrecondition(format!(
        "container {id} has a read-only root, and criu {criu_version} would restore it writable \
         (criu restores the root mount's flags from {major}.{minor} on; criu issue #2632): kata-cr \
         refuses this restore rather than give the workload a root it may write. Install criu \
         >= {major}.{minor} where kata-cr-agent runs"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
178 96 0:54 / / ro,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
180 178 0:72 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
189 178 0:76 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
";

    #[test]
    fn the_root_flag_comes_from_the_root_mount_only() {
        assert!(root_is_read_only(MOUNTINFO));
        let rw = MOUNTINFO.replacen("/ / ro,relatime", "/ / rw,relatime", 1);
        assert!(
            !root_is_read_only(&rw),
            "a read-only /sys is not a read-only root"
        );
        // "ro" must be an option of its own, not part of another one
        assert!(!root_is_read_only(
            "1 0 0:1 / / rw,errors=remount-ro - ext4 /dev/x rw\n"
        ));
        // stacked on /: the top one counts
        let stacked = format!("{MOUNTINFO}200 178 0:99 / / rw,relatime - tmpfs t rw\n");
        assert!(!root_is_read_only(&stacked));
        assert!(!root_is_read_only(""));
    }

    #[test]
    fn criu_keeps_root_flags_from_4_2() {
        for v in ["4.2", "4.2.1", "4.3", "5.0", "4.2-rc1", "10.1"] {
            assert!(criu_keeps_root_flags(v), "{v}");
        }
        for v in ["4.1.1", "4.1", "3.19", "3.17.1", "", "dev", "4"] {
            assert!(!criu_keeps_root_flags(v), "{v}");
        }
    }

    #[test]
    fn a_read_only_root_with_an_old_criu_is_refused() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc.path().join("7")).unwrap();
        std::fs::write(proc.path().join("7/mountinfo"), MOUNTINFO).unwrap();
        assert!(init_root_is_read_only(proc.path(), 7).unwrap());
        assert!(
            init_root_is_read_only(proc.path(), 8).is_err(),
            "no such init"
        );
        let e = refuse_unless_criu_keeps_it("c1", "4.1.1").unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition(_)), "{e}");
        let msg = e.to_string();
        for part in ["c1", "read-only root", "criu 4.1.1", "#2632", ">= 4.2"] {
            assert!(msg.contains(part), "{part:?} in {msg}");
        }
        refuse_unless_criu_keeps_it("c1", "4.2.1").unwrap();
    }
}
