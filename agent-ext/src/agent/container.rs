//! Finding a kata-cr container from its rootfs through `/proc`.
//!
//! The container's init is the process whose argv[0] is [`INIT_PATH`] and
//! whose root directory (`/proc/<pid>/root`) is the rootfs (same device and
//! inode). The workload is that init's child that leads its own session
//! (kata-cr-init forks it and it calls `setsid`).
//!
//! Every function takes the proc mount to read (`/proc` in the daemon) so
//! tests run on fixtures.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// argv[0] of kata-cr-init inside every kata-cr container (the contract
/// shared with the proxy, which bind-mounts it there).
pub use crate::api::INIT_PATH;

/// A running kata-cr container, as pids in the daemon's pid namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Container {
    /// The container's init (kata-cr-init).
    pub init: i32,
    /// The workload: the init's session-leader child, root of the dump.
    pub workload: i32,
}

/// The fields of `/proc/<pid>/stat` the daemon needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Parent pid.
    pub ppid: i32,
    /// Session id.
    pub session: i32,
}

/// Parses `/proc/<pid>/stat` (the command name may contain spaces and
/// parentheses: fields are counted after the last `)`).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let session = fields.next()?.parse().ok()?;
    Some(Stat { ppid, session })
}

/// argv[0] from the contents of `/proc/<pid>/cmdline`.
pub fn argv0(cmdline: &[u8]) -> &[u8] {
    cmdline.split(|&b| b == 0).next().unwrap_or_default()
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone.
pub fn stat(proc_root: &Path, pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?)
}

/// Children of every thread of `pid` (`/proc/<pid>/task/*/children`).
pub fn children(proc_root: &Path, pid: i32) -> Result<Vec<i32>> {
    let task_dir = proc_root.join(pid.to_string()).join("task");
    let tasks = fs::read_dir(&task_dir)
        .map_err(|e| Error::io(format!("reading {}", task_dir.display()), e))?;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        // A thread that exits meanwhile has no file any more: skip it.
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Finds the container whose root is `rootfs`.
pub fn find(proc_root: &Path, rootfs: &Path) -> Result<Container> {
    let init = find_init(proc_root, rootfs)?;
    let leaders: Vec<i32> = children(proc_root, init)?
        .into_iter()
        .filter(|&child| stat(proc_root, child).is_some_and(|s| s.session == child))
        .collect();
    match leaders.as_slice() {
        [] => Err(Error::NotFound(format!(
            "the kata-cr init (pid {init}) of rootfs {} has no workload (no session-leader child): it has exited",
            rootfs.display()
        ))),
        [workload] => Ok(Container { init, workload: *workload }),
        many => Err(Error::FailedPrecondition(format!(
            "the kata-cr init (pid {init}) of rootfs {} has several session-leader children {many:?}: \
             besides the container's command, a process it left behind (a daemon in a session of its \
             own, reparented to the init) runs outside the command's process tree, and kata-cr \
             checkpoints only that tree, so the daemon would be lost",
            rootfs.display()
        ))),
    }
}

/// Whether an init's `/proc/<pid>/cmdline` has `--restore` among its own
/// options (before `--`).
pub fn is_restore_mode(cmdline: &[u8]) -> bool {
    cmdline
        .split(|&b| b == 0)
        .skip(1)
        .take_while(|arg| *arg != b"--")
        .any(|arg| arg == b"--restore")
}

/// Finds the init of the container whose root is `rootfs`, which must be
/// waiting in restore mode (`--restore`, no child yet).
pub fn find_restoring(proc_root: &Path, rootfs: &Path) -> Result<i32> {
    let init = find_init(proc_root, rootfs)?;
    let cmdline = fs::read(proc_root.join(init.to_string()).join("cmdline"))
        .map_err(|e| Error::io(format!("reading the cmdline of the init {init}"), e))?;
    if !is_restore_mode(&cmdline) {
        return Err(Error::FailedPrecondition(format!(
            "the kata-cr init (pid {init}) of rootfs {} is not in restore mode (no --restore)",
            rootfs.display()
        )));
    }
    let kids = children(proc_root, init)?;
    if !kids.is_empty() {
        return Err(Error::FailedPrecondition(format!(
            "the kata-cr init (pid {init}) of rootfs {} already has children {kids:?}: \
             restored already, or something runs in the container",
            rootfs.display()
        )));
    }
    Ok(init)
}

/// The pid of `pid` in its innermost pid namespace (last `NSpid` field).
pub fn ns_pid(proc_root: &Path, pid: i32) -> Option<i32> {
    let status = fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// How the error of [`find_init`] finding no init begins.
pub const NO_INIT: &str = "no kata-cr container";

/// The kata-cr init whose root is `rootfs`.
pub fn find_init(proc_root: &Path, rootfs: &Path) -> Result<i32> {
    let root = fs::metadata(rootfs).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::NotFound(format!("rootfs {} does not exist", rootfs.display()))
        }
        _ => Error::io(format!("stat {}", rootfs.display()), e),
    })?;
    let want = (root.dev(), root.ino());

    let entries = fs::read_dir(proc_root)
        .map_err(|e| Error::io(format!("reading {}", proc_root.display()), e))?;
    let mut inits = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        // Processes come and go, and some roots are not ours to see: skip
        // what cannot be read.
        let Ok(cmdline) = fs::read(dir.join("cmdline")) else {
            continue;
        };
        if argv0(&cmdline) != INIT_PATH.as_bytes() {
            continue;
        }
        let Ok(meta) = fs::metadata(dir.join("root")) else {
            continue;
        };
        if (meta.dev(), meta.ino()) == want {
            inits.push(pid);
        }
    }
    // Right after the init forks the workload, the child still has the
    // init's argv until it execs: keep only inits whose parent is not one.
    let candidates: Vec<i32> = inits
        .iter()
        .copied()
        .filter(|&pid| stat(proc_root, pid).is_none_or(|s| !inits.contains(&s.ppid)))
        .collect();
    match candidates.as_slice() {
        [] => Err(Error::NotFound(format!(
            "{NO_INIT} (a process {INIT_PATH} with its root at {}) is running",
            rootfs.display()
        ))),
        [one] => Ok(*one),
        many => Err(Error::FailedPrecondition(format!(
            "several kata-cr inits have their root at {}: pids {many:?}",
            rootfs.display()
        ))),
    }
}

/// Inode of a namespace of a process (`kind` as in `/proc/<pid>/ns/<kind>`;
/// `pid` may be `"self"`).
pub fn ns_inode(proc_root: &Path, pid: &str, kind: &str) -> Result<u64> {
    let path = ns_path(proc_root, pid, kind);
    fs::metadata(&path)
        .map(|m| m.ino())
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))
}

/// `/proc/<pid>/ns/<kind>`.
pub fn ns_path(proc_root: &Path, pid: &str, kind: &str) -> PathBuf {
    proc_root.join(pid).join("ns").join(kind)
}

/// The other processes of `init`'s pid namespace (seen from `proc_root`,
/// outside it), in no particular order; empty when `init` is gone.
pub fn pidns_members(proc_root: &Path, init: i32) -> Vec<i32> {
    let Ok(ns) = ns_inode(proc_root, &init.to_string(), "pid") else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != init)
        .filter(|&p| ns_inode(proc_root, &p.to_string(), "pid").ok() == Some(ns))
        .collect()
}

/// Why kata-cr cannot restore the container whose init is `init`, or
/// `None` when it can: the init must be PID 1 of a pid namespace of the
/// container's own (see [`shared_pidns_reason`]).
pub fn shared_pidns(proc_root: &Path, init: i32, id: &str) -> Option<String> {
    let agents = match (
        ns_inode(proc_root, &init.to_string(), "pid"),
        ns_inode(proc_root, "self", "pid"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    };
    shared_pidns_reason(id, ns_pid(proc_root, init), agents)
}

/// The refusal for a container whose init has pid `init_ns_pid` in its pid
/// namespace, which is kata-cr-agent's own when `agents_ns`; `None` when
/// the init is that namespace's PID 1.
///
/// criu restores the workload from inside the container's pid namespace
/// and leaves it (`--restore-detached`) to be reparented to that
/// namespace's init, which must be kata-cr-init, the process the runtime
/// waits for: in a shared namespace the workload would go to the pod's
/// PID 1 (its pause process), kata-cr-init could neither wait for it nor
/// pass on its exit status, and the pod would be left with a process no
/// runtime tracks. So the checkpoint is refused, before criu runs, rather
/// than a restore that is bound to fail.
pub fn shared_pidns_reason(id: &str, init_ns_pid: Option<i32>, agents_ns: bool) -> Option<String> {
    if init_ns_pid == Some(1) && !agents_ns {
        return None;
    }
    let whose = if agents_ns {
        "the pid namespace of kata-cr-agent (the host's, or the guest's: CRI pid mode NODE, \
         hostPID)"
    } else {
        "its pod's pid namespace (CRI pid mode POD, shareProcessNamespace: true, or ctr run \
         --with-ns pid:...)"
    };
    let at = init_ns_pid.map_or_else(|| "gone".to_string(), |p| format!("pid {p}"));
    Some(format!(
        "container {id} shares {whose}: kata-cr cannot restore it yet: a restored workload is \
         reparented to its pid namespace's PID 1, and kata-cr-init, which must adopt it, is {at} \
         there, not 1; kata-cr checkpoints and restores containers with a pid namespace of \
         their own (CRI pid mode CONTAINER, kubelet's default)"
    ))
}

/// Whether a process exists (and is not a zombie).
pub fn is_alive(proc_root: &Path, pid: i32) -> bool {
    fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with(['Z', 'X']))
        })
        .is_some_and(|dead| !dead)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn only_an_init_that_is_pid_1_of_its_own_namespace_can_be_restored() {
        assert_eq!(shared_pidns_reason("c1", Some(1), false), None);
        let pod = shared_pidns_reason("c1", Some(7), false).unwrap();
        assert!(
            pod.contains("container c1 shares its pod's pid namespace"),
            "{pod}"
        );
        assert!(pod.contains("kata-cr cannot restore it yet"), "{pod}");
        assert!(pod.contains("pid 7 there"), "{pod}");
        let host = shared_pidns_reason("c1", Some(4242), true).unwrap();
        assert!(
            host.contains("the pid namespace of kata-cr-agent"),
            "{host}"
        );
        // PID 1 of the agent's own namespace (the agent runs as a guest's
        // init) is no container's namespace either.
        assert!(shared_pidns_reason("c1", Some(1), true).is_some());
        let gone = shared_pidns_reason("c1", None, false).unwrap();
        assert!(gone.contains("is gone there"), "{gone}");
    }

    #[test]
    fn shared_namespaces_are_seen_through_proc() {
        let proc = tempfile::tempdir().unwrap();
        let add = |pid: &str, nspid: &str, ns: Option<&str>| {
            let d = proc.path().join(pid);
            fs::create_dir_all(d.join("ns")).unwrap();
            fs::write(d.join("status"), format!("Name:\tx\nNSpid:\t{nspid}\n")).unwrap();
            match ns {
                Some(other) => {
                    fs::hard_link(proc.path().join(other).join("ns/pid"), d.join("ns/pid")).unwrap()
                }
                None => fs::write(d.join("ns/pid"), "").unwrap(),
            }
        };
        add("self", "100", None);
        add("10", "10\t1", None); // PID 1 of a namespace of its own
        add("20", "20\t5", None); // pid 5 of a pod's namespace
        add("30", "30", Some("self")); // in the agent's namespace
        assert_eq!(shared_pidns(proc.path(), 10, "a"), None);
        assert!(shared_pidns(proc.path(), 20, "b")
            .unwrap()
            .contains("its pod's pid namespace"));
        assert!(shared_pidns(proc.path(), 30, "c")
            .unwrap()
            .contains("kata-cr-agent"));
    }

    #[test]
    fn pidns_members_are_the_processes_sharing_the_inits_namespace() {
        let proc = tempfile::tempdir().unwrap();
        let ns = |pid: i32| {
            let d = proc.path().join(pid.to_string()).join("ns");
            fs::create_dir_all(&d).unwrap();
            d.join("pid")
        };
        fs::write(ns(10), "").unwrap();
        fs::write(ns(99), "").unwrap(); // another namespace
        for member in [11, 4_194_303] {
            fs::hard_link(ns(10), ns(member)).unwrap();
        }
        fs::create_dir_all(proc.path().join("self")).unwrap();
        let mut got = pidns_members(proc.path(), 10);
        got.sort_unstable();
        assert_eq!(got, [11, 4_194_303]);
        assert!(pidns_members(proc.path(), 12).is_empty());
    }

    /// A fake /proc: each process gets cmdline, stat, a root symlink and
    /// task/<pid>/children.
    struct FakeProc {
        dir: tempfile::TempDir,
    }

    impl FakeProc {
        fn new() -> Self {
            FakeProc {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self) -> &Path {
            self.dir.path()
        }
        fn add(
            &self,
            pid: i32,
            ppid: i32,
            session: i32,
            argv: &[&str],
            root: &Path,
            children: &[i32],
        ) {
            let p = self.path().join(pid.to_string());
            fs::create_dir_all(p.join("task").join(pid.to_string())).unwrap();
            let mut cmdline = argv.join("\0");
            cmdline.push('\0');
            fs::write(p.join("cmdline"), cmdline).unwrap();
            fs::write(
                p.join("stat"),
                format!("{pid} (we (ird) name) S {ppid} {session} {session} 0 -1 4194560 0 0 0\n"),
            )
            .unwrap();
            symlink(root, p.join("root")).unwrap();
            let kids: Vec<String> = children.iter().map(|c| c.to_string()).collect();
            fs::write(
                p.join("task").join(pid.to_string()).join("children"),
                kids.join(" ") + " ",
            )
            .unwrap();
        }
    }

    #[test]
    fn parse_stat_counts_fields_after_the_last_parenthesis() {
        let s = parse_stat("42 (a) b) c) S 7 42 40 0 -1 0").unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 7,
                session: 40
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn argv0_stops_at_the_first_nul() {
        assert_eq!(
            argv0(b"/dev/.kata-cr-init\0--\0sh\0"),
            b"/dev/.kata-cr-init"
        );
        assert_eq!(argv0(b""), b"");
    }

    #[test]
    fn finds_the_init_by_root_and_the_session_leader_child() {
        let rootfs = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let proc = FakeProc::new();
        // Another container's init, another root.
        proc.add(10, 1, 10, &[INIT_PATH, "--", "sleep"], other.path(), &[11]);
        proc.add(11, 10, 11, &["sleep"], other.path(), &[]);
        // Ours: a helper child in the init's session and the workload.
        proc.add(
            20,
            1,
            20,
            &[INIT_PATH, "--", "sh"],
            rootfs.path(),
            &[21, 22],
        );
        proc.add(21, 20, 20, &["helper"], rootfs.path(), &[]);
        proc.add(22, 20, 22, &["sh"], rootfs.path(), &[23]);
        proc.add(23, 22, 22, &["sleep"], rootfs.path(), &[]);
        // A process with the same root that is not our init.
        proc.add(30, 1, 30, &["/bin/sh"], rootfs.path(), &[]);
        fs::create_dir(proc.path().join("self")).unwrap();

        let c = find(proc.path(), rootfs.path()).unwrap();
        assert_eq!(
            c,
            Container {
                init: 20,
                workload: 22
            }
        );
    }

    #[test]
    fn a_forked_but_not_yet_execed_workload_is_not_taken_for_the_init() {
        let rootfs = tempfile::tempdir().unwrap();
        let proc = FakeProc::new();
        proc.add(20, 1, 20, &[INIT_PATH, "--", "sh"], rootfs.path(), &[22]);
        proc.add(22, 20, 22, &[INIT_PATH, "--", "sh"], rootfs.path(), &[]);
        assert_eq!(
            find(proc.path(), rootfs.path()).unwrap(),
            Container {
                init: 20,
                workload: 22
            }
        );
    }

    #[test]
    fn unknown_rootfs_is_not_found_and_names_it() {
        let rootfs = tempfile::tempdir().unwrap();
        let proc = FakeProc::new();
        proc.add(10, 1, 10, &[INIT_PATH], Path::new("/"), &[]);
        let err = find(proc.path(), rootfs.path()).unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains(&rootfs.path().display().to_string()),
            "{err}"
        );

        let err = find(proc.path(), Path::new("/nonexistent/rootfs")).unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    }

    #[test]
    fn an_init_without_workload_is_not_found() {
        let rootfs = tempfile::tempdir().unwrap();
        let proc = FakeProc::new();
        proc.add(20, 1, 20, &[INIT_PATH], rootfs.path(), &[21]);
        proc.add(21, 20, 20, &["not-a-leader"], rootfs.path(), &[]);
        let err = find(proc.path(), rootfs.path()).unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    }

    #[test]
    fn restore_mode_is_an_option_before_the_command() {
        assert!(is_restore_mode(
            b"/dev/.kata-cr-init\0--restore\0--keep-caps\0ff\0--\0sh\0"
        ));
        assert!(!is_restore_mode(b"/dev/.kata-cr-init\0--\0sh\0--restore\0"));
        assert!(!is_restore_mode(b"/dev/.kata-cr-init\0--\0sh\0"));
    }

    #[test]
    fn finds_a_restoring_init_and_refuses_others() {
        let rootfs = tempfile::tempdir().unwrap();
        let proc = FakeProc::new();
        let argv = [INIT_PATH, "--restore", "--keep-caps", "ff", "--", "sh"];
        proc.add(20, 1, 20, &argv, rootfs.path(), &[]);
        assert_eq!(find_restoring(proc.path(), rootfs.path()).unwrap(), 20);

        let running = tempfile::tempdir().unwrap();
        proc.add(30, 1, 30, &[INIT_PATH, "--", "sh"], running.path(), &[31]);
        proc.add(31, 30, 31, &["sh"], running.path(), &[]);
        let err = find_restoring(proc.path(), running.path()).unwrap_err();
        assert!(err.to_string().contains("not in restore mode"), "{err}");

        let busy = tempfile::tempdir().unwrap();
        proc.add(40, 1, 40, &argv, busy.path(), &[41]);
        proc.add(41, 40, 41, &["sh"], busy.path(), &[]);
        let err = find_restoring(proc.path(), busy.path()).unwrap_err();
        assert!(err.to_string().contains("already has children"), "{err}");
    }

    #[test]
    fn real_proc_self_is_alive_and_has_namespaces() {
        let me = std::process::id() as i32;
        assert_eq!(ns_pid(Path::new("/proc"), me), Some(me));
        assert!(is_alive(Path::new("/proc"), me));
        assert!(ns_inode(Path::new("/proc"), "self", "pid").unwrap() > 0);
    }
}
