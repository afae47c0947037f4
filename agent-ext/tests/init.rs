//! End-to-end tests of `kata-cr-init`, run directly (not as PID 1: the init
//! then makes itself a child subreaper), and as PID 1 of a new pid namespace
//! (`as_pid1_*`, `restore_mode_*`): those need root and fail, saying so, when
//! run without it (`make unit` runs them; run it as root).

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const INIT: &str = env!("CARGO_BIN_EXE_kata-cr-init");
const TIMEOUT: Duration = Duration::from_secs(10);

/// `kata-cr-init -- <args...>` with null stdin and piped stdout/stderr.
fn init(args: &[&str]) -> Command {
    let mut cmd = Command::new(INIT);
    cmd.arg("--")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn sh(script: &str) -> Command {
    init(&["sh", "-c", script])
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Waits for `child` (killing it after [`TIMEOUT`]) and collects its output.
fn finish(mut child: Child) -> Finished {
    let stdout = child.stdout.take().map(read_all_in_thread);
    let stderr = child.stderr.take().map(read_all_in_thread);
    let status = wait_timeout(&mut child);
    let collect =
        |h: Option<thread::JoinHandle<String>>| h.map(|h| h.join().unwrap()).unwrap_or_default();
    Finished {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

fn read_all_in_thread<R: std::io::Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

fn wait_timeout(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("init did not exit within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn run(mut cmd: Command) -> Finished {
    finish(cmd.spawn().unwrap())
}

/// Reads lines from the workload's stdout until `want`.
fn expect_line(out: &mut BufReader<ChildStdout>, want: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "EOF before {want:?}");
        if line.trim_end() == want {
            return;
        }
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32)
}

/// `/proc/<pid>/stat` fields after the command name: index 0 is the state
/// (stat field 3), 1 ppid, 2 pgrp, 3 session, 4 tty_nr, 5 tpgid.
fn stat_fields(stat: &str) -> (i32, Vec<String>) {
    let pid = stat.split_whitespace().next().unwrap().parse().unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    (pid, rest.split_whitespace().map(str::to_owned).collect())
}

/// (pid, state) of the processes whose parent is `parent`.
fn children_of(parent: Pid) -> Vec<(i32, String)> {
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.parse::<i32>().is_err() {
            continue;
        }
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (pid, fields) = stat_fields(&stat);
        if fields[1] == parent.as_raw().to_string() {
            children.push((pid, fields[0].clone()));
        }
    }
    children
}

#[test]
fn exit_code_passes_through_silently() {
    for code in [0, 3, 255] {
        let out = run(sh(&format!("exit {code}")));
        assert_eq!(out.status.code(), Some(code));
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr, "");
    }
}

#[test]
fn killed_workload_gives_128_plus_signal() {
    let out = run(sh("kill -KILL $$"));
    assert_eq!(out.status.code(), Some(137));
    assert_eq!(out.stderr, "");
}

#[test]
fn sigterm_is_forwarded_to_a_trapping_workload() {
    let mut child = sh("trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done")
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    kill(pid_of(&child), Signal::SIGTERM).unwrap();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(42), "{}", out.stderr);
}

#[test]
fn sigterm_kills_a_workload_without_handler() {
    let mut child = sh("echo ready; exec sleep 10").spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    kill(pid_of(&child), Signal::SIGTERM).unwrap();
    assert_eq!(finish(child).status.code(), Some(143));
}

#[test]
fn sigusr1_is_forwarded() {
    let mut child =
        sh("trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 0.1; done")
            .spawn()
            .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    kill(pid_of(&child), Signal::SIGUSR1).unwrap();
    expect_line(&mut out, "got-usr1");
    assert_eq!(finish(child).status.code(), Some(7));
}

/// Job-control and terminal signals are forwarded too; the init neither
/// stops nor dies on them.
#[test]
fn every_catchable_signal_is_forwarded_not_acted_on() {
    let signals = [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR2,
        Signal::SIGPIPE,
        Signal::SIGALRM,
        Signal::SIGWINCH,
        Signal::SIGCONT,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ];
    let mut numbers: Vec<i32> = signals.iter().map(|s| *s as i32).collect();
    // Real-time signals too.
    numbers.extend([libc::SIGRTMIN(), libc::SIGRTMAX()]);
    let traps: String = numbers
        .iter()
        .map(|n| format!("trap 'echo got-{n}' {n}; "))
        .collect();
    let script = format!("{traps} trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    let mut child = sh(&script).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    for n in numbers {
        // SAFETY: plain syscall.
        assert_eq!(unsafe { libc::kill(child.id() as i32, n) }, 0);
        expect_line(&mut out, &format!("got-{n}"));
    }
    kill(pid_of(&child), Signal::SIGTERM).unwrap();
    assert_eq!(finish(child).status.code(), Some(0));
}

/// Signal 32, which glibc reserves and leaves out of its "all signals"
/// sets, is forwarded too: the workload (no handler) dies of it.
#[test]
fn libc_reserved_signal_is_forwarded() {
    let mut child = sh("echo ready; exec sleep 10").spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(child.id() as i32, 32) }, 0);
    assert_eq!(finish(child).status.code(), Some(128 + 32));
}

#[test]
fn stdin_passes_through() {
    let mut cmd = init(&["cat"]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, "hi\n");
}

#[test]
fn command_not_found_exits_127() {
    for cmd in ["kata-cr-no-such-command", "/nonexistent/kata-cr"] {
        let out = run(init(&[cmd]));
        assert_eq!(out.status.code(), Some(127));
        assert_eq!(
            out.stderr,
            format!("kata-cr-init: exec {cmd}: No such file or directory\n")
        );
    }
}

#[test]
fn command_not_executable_exits_126() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script");
    fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let script = script.to_str().unwrap();
    let out = run(init(&[script]));
    assert_eq!(out.status.code(), Some(126));
    assert_eq!(
        out.stderr,
        format!("kata-cr-init: exec {script}: Permission denied\n")
    );
}

#[test]
fn usage_errors_exit_120() {
    for args in [&[][..], &["sh"][..], &["--"][..]] {
        let out = run({
            let mut cmd = Command::new(INIT);
            cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd
        });
        assert_eq!(out.status.code(), Some(120), "{args:?}");
        assert!(out.stderr.starts_with("kata-cr-init: "), "{}", out.stderr);
    }
}

#[test]
fn workload_is_a_session_leader_child() {
    let child = init(&["cat", "/proc/self/stat"]).spawn().unwrap();
    let init_pid = child.id().to_string();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0));
    let (pid, fields) = stat_fields(&out.stdout);
    assert_eq!(fields[1], init_pid, "parent is the init");
    assert_eq!(fields[2], pid.to_string(), "process group leader");
    assert_eq!(fields[3], pid.to_string(), "session leader");
}

#[test]
fn orphans_are_reaped() {
    // The subshell exits at once, so its `sleep 0.3` is orphaned and
    // reparented to the init; it must disappear (not stay a zombie) while
    // the workload still runs.
    let mut child = sh("echo $$; (sleep 0.3 &) ; exec sleep 3 >/dev/null")
        .spawn()
        .unwrap();
    let init_pid = pid_of(&child);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let workload: i32 = line.trim().parse().unwrap();
    let orphans = || -> Vec<(i32, String)> {
        children_of(init_pid)
            .into_iter()
            .filter(|(pid, _)| *pid != workload)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut seen_orphan = false;
    let mut left = Vec::new();
    while Instant::now() < deadline {
        left = orphans();
        seen_orphan |= !left.is_empty();
        if seen_orphan && left.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(seen_orphan, "no orphan was reparented to the init");
    assert!(left.is_empty(), "orphan not reaped: {left:?}");
    assert!(
        children_of(init_pid)
            .iter()
            .any(|(pid, _)| *pid == workload),
        "the workload was still running"
    );
    kill(init_pid, Signal::SIGTERM).unwrap();
    assert_eq!(finish(child).status.code(), Some(143));
}

#[test]
fn workload_gets_original_mask_and_default_dispositions() {
    let mut cmd = init(&["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]);
    // The runtime's mask is restored: start the init with SIGUSR1 blocked.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0));
    // SIGUSR1 (10) is bit 9; nothing ignored (the init itself ignores
    // SIGPIPE, as every Rust program does).
    assert_eq!(
        out.stdout,
        "SigBlk:\t0000000000000200\nSigIgn:\t0000000000000000\n"
    );
}

/// A pseudo-terminal whose fds are close-on-exec, so that other tests
/// spawning processes in parallel do not keep the slave open.
struct Pty {
    master: PtyMaster,
    slave: fs::File,
}

fn open_pty() -> Pty {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname_r(&master).unwrap();
    let slave = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(name)
        .unwrap();
    Pty { master, slave }
}

/// Starts the init like a runtime with `terminal: true`: session leader,
/// the pty slave as controlling terminal and stdio. Returns the child and
/// a channel of what the pty master reads.
fn spawn_on_pty(args: &[&str]) -> (Child, PtyMaster, mpsc::Receiver<Vec<u8>>) {
    let pty = open_pty();
    let mut cmd = Command::new(INIT);
    cmd.arg("--")
        .args(args)
        .stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(pty.slave.try_clone().unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(cmd);
    drop(pty.slave);
    let reader = nix::unistd::dup(&pty.master).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = fs::File::from(reader);
        let mut buf = [0u8; 4096];
        // Ends with EIO once every slave fd is closed.
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    (child, pty.master, rx)
}

/// Collects pty output until it contains `want` (or the reader ends).
fn pty_read_until(rx: &mpsc::Receiver<Vec<u8>>, want: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => out.extend(chunk),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("timeout waiting for {want:?}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn terminal_is_handed_to_the_workload() {
    // The workload's stat, then the init's ($PPID); "end" marks the end.
    let (mut child, _master, rx) = spawn_on_pty(&[
        "sh",
        "-c",
        "cat /proc/$$/stat; cat /proc/$PPID/stat; echo end",
    ]);
    let out = pty_read_until(&rx, "end");
    let status = wait_timeout(&mut child);
    assert_eq!(status.code(), Some(0), "{out}");
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let (pid, workload) = stat_fields(lines[0]);
    let (init_pid, init) = stat_fields(lines[1]);
    assert_eq!(init_pid, child.id() as i32);
    assert_eq!(workload[1], init_pid.to_string(), "parent is the init");
    assert_eq!(workload[3], pid.to_string(), "session leader");
    assert_ne!(workload[4], "0", "has a controlling terminal");
    assert_eq!(
        workload[5],
        pid.to_string(),
        "is the foreground process group"
    );
    assert_eq!(init[4], "0", "the init gave its terminal up");
    assert_eq!(init[5], "-1", "the init has no foreground process group");
}

#[test]
fn ctrl_c_on_the_terminal_reaches_the_workload() {
    let (mut child, mut master, rx) =
        spawn_on_pty(&["sh", "-c", "test -t 0 && echo ready; exec sleep 10"]);
    pty_read_until(&rx, "ready");
    master.write_all(b"\x03").unwrap();
    assert_eq!(wait_timeout(&mut child).code(), Some(130));
}

/// Fails the calling test, saying why, unless it runs as root: the tests that
/// start the init as PID 1 of a new pid namespace cannot run otherwise, and a
/// test that silently does not run proves nothing.
fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it runs kata-cr-init as PID 1 of a new pid namespace): \
         run `make unit` (or cargo test) as root"
    );
}

/// `unshare(1)` running the init as PID 1 of a new pid namespace, as in a
/// container (see [`require_root`]).
fn init_as_pid1(script: &str) -> Command {
    require_root();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--mount-proc",
        INIT,
        "--",
        "sh",
        "-c",
        script,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn as_pid1_workload_is_pid2_and_orphans_are_reaped() {
    // The orphan's pid comes back through a pipe that it holds until it exits;
    // then the script waits (at most 5 s) until the init has reaped it, and
    // lists what is left: a zombie there means the init did not reap.
    let script = "read -r pid comm state ppid rest < /proc/$$/stat; echo $pid $ppid; \
                  o=$( (sleep 0.1 & echo $!) ); echo orphan $o; \
                  i=0; while [ -e /proc/$o ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; \
                  cat /proc/[0-9]*/stat; exit 9";
    let out = run(init_as_pid1(script));
    assert_eq!(out.status.code(), Some(9), "{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("2 1"),
        "workload is PID 2, child of PID 1"
    );
    let orphan: i32 = lines
        .next()
        .and_then(|l| l.strip_prefix("orphan "))
        .and_then(|p| p.parse().ok())
        .expect("the orphan's pid");
    let stats: Vec<_> = lines.map(stat_fields).collect();
    assert!(
        stats.iter().all(|(pid, _)| *pid != orphan),
        "orphan {orphan} not reaped: {stats:?}"
    );
    assert!(stats.iter().any(|(pid, _)| *pid == 1), "{stats:?}");
    assert!(
        stats.iter().all(|(_, f)| f[0] != "Z"),
        "zombie left: {stats:?}"
    );
}

#[test]
fn as_pid1_signals_from_outside_are_forwarded() {
    let mut child = init_as_pid1("trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done")
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    // The init is the only child of unshare.
    let (init_pid, _) = children_of(pid_of(&child))[0];
    kill(Pid::from_raw(init_pid), Signal::SIGTERM).unwrap();
    assert_eq!(finish(child).status.code(), Some(42));
}

#[test]
fn as_pid1_signals_the_workload_leaves_at_default_are_dropped_like_for_pid1() {
    // Without kata-cr the workload would be PID 1, and the kernel drops
    // signals it does not handle (this shell leaves HUP and TERM at their
    // default). The init must behave the same; a handled signal (USR1 here)
    // still gets through.
    //
    // No sleep decides it: the init reads its signals one at a time, lowest
    // number first, and forwards in that order. SIGRTMAX, sent last and
    // handled by the workload, is its barrier: once the workload has echoed
    // it, the init has dealt with HUP and TERM, and had it forwarded either,
    // the workload would have died of it before echoing.
    let barrier = libc::SIGRTMAX();
    let mut child = init_as_pid1(&format!(
        "trap 'exit 43' USR1; trap 'echo barrier' {barrier}; echo ready; \
         while :; do sleep 0.1; done"
    ))
    .spawn()
    .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "ready");
    let (init_pid, _) = children_of(pid_of(&child))[0];
    let init = Pid::from_raw(init_pid);
    kill(init, Signal::SIGHUP).unwrap();
    kill(init, Signal::SIGTERM).unwrap();
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(init_pid, barrier) }, 0);
    expect_line(&mut out, "barrier");
    assert!(
        child.try_wait().unwrap().is_none(),
        "HUP/TERM ended the workload"
    );
    kill(init, Signal::SIGUSR1).unwrap();
    assert_eq!(finish(child).status.code(), Some(43));
}

/// Kernel number of the restore notification (`agent_ext::init::RESTORE_SIGNAL`).
const RESTORE_SIGNAL: i32 = agent_ext::init::RESTORE_SIGNAL;

/// `unshare(1)` running, as PID 1 of a new pid namespace, a shell that
/// starts a stand-in for a restored workload (a session leader in its own
/// mount namespace) and prints its pid, then execs the init in restore mode
/// keeping only `keep_caps`.
fn restore_mode_as_pid1(keep_caps: &str, workload: &str) -> Command {
    let script = format!(
        "setsid unshare --mount --propagation private sh -c '{workload}' & echo $!; \
         exec {INIT} --restore --keep-caps {keep_caps} -- original command"
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits until `pid` runs the init with the restore signal blocked (the
/// agent does the same before it notifies).
fn wait_for_restore_mode(pid: Pid) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        if cmdline.starts_with(INIT.as_bytes()) && blocked & (1 << (RESTORE_SIGNAL - 1)) != 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pid} never entered restore mode"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// `sigqueue(pid, RESTORE_SIGNAL, value)`, as kata-cr-agent notifies.
fn notify(pid: Pid, value: i32) {
    let sigval = libc::sigval {
        sival_ptr: value as isize as *mut libc::c_void,
    };
    // SAFETY: plain libc call.
    assert_eq!(
        unsafe { libc::sigqueue(pid.as_raw(), RESTORE_SIGNAL, sigval) },
        0
    );
}

/// Polls `cond` until it holds; fails the test naming `what` after [`TIMEOUT`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn status_field(pid: i32, key: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap()
}

/// The init (child of unshare) and the workload's pid in the namespace.
fn start_restore_mode(cmd: &mut Command) -> (Child, Pid, i32) {
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let ns_pid: i32 = line.trim().parse().unwrap();
    let (init_pid, _) = children_of(pid_of(&child))[0];
    let init = Pid::from_raw(init_pid);
    wait_for_restore_mode(init);
    (child, init, ns_pid)
}

#[test]
fn restore_mode_adopts_the_workload_joins_its_mounts_and_drops_capabilities() {
    // CAP_CHOWN (0) and CAP_KILL (5) only.
    let (child, init, ns_pid) =
        start_restore_mode(&mut restore_mode_as_pid1("0x21", "exec sleep 30"));
    let workload = loop {
        // The workload (unshare exec'ing sh exec'ing sleep) is the init's child.
        if let Some(&(pid, _)) = children_of(init).first() {
            if fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() == "sleep\n" {
                break pid;
            }
        }
        thread::sleep(Duration::from_millis(10));
    };
    let mnt = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_ne!(mnt(init.as_raw()), mnt(workload));
    // A notification naming a process that is not the init's child (here
    // the init itself) is ignored; the init keeps waiting. No sleep decides
    // it: queued real-time signals arrive in order, so the init reads this
    // one before the next; had it stopped waiting on it, it would never join
    // the workload's mounts below, and its stderr says it ignored it.
    notify(init, 1);
    notify(init, ns_pid);
    wait_until("the init joined the workload's mounts", || {
        mnt(init.as_raw()) == mnt(workload)
    });
    // The capabilities are cut right after the join.
    let caps =
        || ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:"].map(|k| status_field(init.as_raw(), k));
    let want = [
        "0000000000000021",
        "0000000000000021",
        "0000000000000021",
        "0000000000000000",
    ]
    .map(String::from);
    wait_until("the init kept only CAP_CHOWN and CAP_KILL", || {
        caps() == want
    });
    kill(Pid::from_raw(workload), Signal::SIGTERM).unwrap();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(128 + 15), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("ignoring restore notification for pid 1"),
        "{}",
        out.stderr
    );
}

#[test]
fn restore_mode_exits_125_when_the_agent_reports_a_failure() {
    let (child, init, _) = start_restore_mode(&mut restore_mode_as_pid1("0", "exec sleep 30"));
    // Signals from outside are dropped while waiting, as for a PID 1 without
    // handler. No sleep needed: TERM is pending before the notification and
    // the init reads lower signal numbers first; had it acted on TERM, it
    // would exit 143, not 125.
    kill(init, Signal::SIGTERM).unwrap();
    notify(init, 0);
    let out = finish(child);
    assert_eq!(out.status.code(), Some(125), "{}", out.stderr);
    assert!(out.stderr.contains("restore failed"), "{}", out.stderr);
}
