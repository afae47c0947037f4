//! The VM's processes (qemu and its device backends): started so that they
//! cannot outlive the service, stopped with a grace period, their logs read
//! back for errors.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::error::{Error, Result};

/// How long a stopping process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

pub struct Daemon {
    pub name: &'static str,
    pub log: PathBuf,
    child: Child,
}

/// What to start.
pub struct Spec<'a> {
    pub name: &'static str,
    pub program: &'a Path,
    pub args: Vec<OsString>,
    /// stdout and stderr go there.
    pub log: PathBuf,
    /// Start inside this mount namespace (an open `/proc/<pid>/ns/mnt`).
    pub mount_ns: Option<OwnedFd>,
}

impl Daemon {
    pub fn spawn(spec: Spec<'_>) -> Result<Daemon> {
        let what = || format!("start {} ({})", spec.name, spec.program.display());
        let log = File::create(&spec.log)
            .map_err(|e| Error::io(format!("{}: create {}", what(), spec.log.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io(format!("{}: dup its log", what()), e))?;
        let mut cmd = Command::new(spec.program);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Signals meant for the service (a terminal's ^C) are not theirs.
            .process_group(0)
            .kill_on_drop(true);
        let ns = spec.mount_ns.as_ref().map(|f| f.as_raw_fd());
        // SAFETY: between fork and exec only async-signal-safe calls
        // (prctl, getppid, setns, chdir) on memory owned by this frame.
        unsafe {
            cmd.pre_exec(move || {
                // Dies with the service, even by SIGKILL: no orphan VM.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    return Err(io::Error::other("the service died while starting it"));
                }
                if let Some(fd) = ns {
                    if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::chdir(c"/".as_ptr()) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| Error::io(what(), e))?;
        Ok(Daemon {
            name: spec.name,
            log: spec.log,
            child,
        })
    }

    #[cfg(test)]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL after the grace period; reaped either way.
    pub async fn stop(mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.child.id() {
            // SAFETY: plain kill(2) of our own, not yet reaped child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        if tokio::time::timeout(GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// The last `n` lines of a log file, for error messages ("" if unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_goes_to_the_log_and_stop_ends_it() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("sh.log");
        let mut dm = Daemon::spawn(Spec {
            name: "sh",
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), "echo started; exec sleep 60".into()],
            log: log.clone(),
            mount_ns: None,
        })
        .unwrap();
        for _ in 0..100 {
            if tail(&log, 5) == "started" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(tail(&log, 5), "started");
        assert!(dm.exited().is_none());
        let pid = dm.pid().unwrap();
        dm.stop().await;
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || {
                // a recycled pid would not be our sleep
                let cmd =
                    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                !cmd.starts_with("sleep")
            }
        );
    }

    #[tokio::test]
    async fn a_missing_program_names_itself() {
        let d = tempfile::tempdir().unwrap();
        let e = Daemon::spawn(Spec {
            name: "qemu",
            program: Path::new("/nonexistent/qemu-system-x86_64"),
            args: vec![],
            log: d.path().join("q.log"),
            mount_ns: None,
        })
        .err()
        .unwrap();
        let m = e.to_string();
        assert!(
            m.contains("start qemu (/nonexistent/qemu-system-x86_64)"),
            "{m}"
        );
    }

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        std::fs::write(&p, "a\r\nb\n\n c\nd\n").unwrap();
        assert_eq!(tail(&p, 2), " c\nd");
        assert_eq!(tail(&p, 10), "a\nb\n c\nd");
        assert_eq!(tail(&d.path().join("none"), 3), "");
    }
}
