//! `start`: decide the pod grouping, start the inner shim the way containerd
//! would have, put a proxy server in front of it, and tell containerd the
//! proxy's address in the form the inner shim used. Nothing but that answer
//! may reach stdout/stderr: containerd reads both as the answer.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use protobuf::Message;

use crate::bundle::{self, write_atomic};
use crate::config::{self, Config};
use crate::error::{Error, IoContext, Result};
use crate::proxy::serve::{self, ServeParams, LISTENER_FD};
use crate::runtime_options::{self, parse_start_stdin, ForInner, RuntimeOptions};
use crate::shim::args::ShimArgs;
use crate::shim::bootstrap::Bootstrap;
use crate::shim::bundle_state::BundleState;
use crate::shim::grouping::{self, Group};
use crate::shim::socket;

pub fn run(args: &ShimArgs) -> Result<Vec<u8>> {
    let bundle = std::env::current_dir().ctx(|| "current directory (the bundle)".into())?;
    let mut stdin = Vec::new();
    std::io::stdin()
        .read_to_end(&mut stdin)
        .ctx(|| "read runtime options from stdin".into())?;
    let spec = bundle::read_spec(&bundle)?;
    match grouping::decide(&spec)? {
        Group::Sandbox(sid) => join_sandbox(&bundle, &sid),
        Group::Own => start_proxy(args, &bundle, &stdin),
    }
}

/// A CRI container joins the proxy of its pod, as the Kata shims do: the
/// sandbox's bundle (a sibling directory) records it.
fn join_sandbox(bundle: &Path, sid: &str) -> Result<Vec<u8>> {
    let sb_bundle = bundle
        .parent()
        .ok_or_else(|| {
            Error::InvalidArgument(format!("bundle {} has no parent", bundle.display()))
        })?
        .join(sid);
    let sb = BundleState::read(&sb_bundle).map_err(|e| Error::PodNotServed {
        sandbox: sid.to_string(),
        reason: e.to_string(),
    })?;
    let mine = BundleState {
        proxy: sb.proxy.clone(),
        inner_binary: sb.inner_binary.clone(),
        inner: sb.inner.clone(),
        socket: None,
        sandbox: Some(sid.to_string()),
    };
    mine.write(bundle)?;
    write_atomic(&bundle.join("address"), sb.proxy.address.as_bytes())?;
    sb.proxy.render()
}

fn start_proxy(args: &ShimArgs, bundle: &Path, stdin: &[u8]) -> Result<Vec<u8>> {
    let any = parse_start_stdin(stdin);
    let options = match &any {
        Some(a) => RuntimeOptions::from_any(a)?,
        None => None,
    };
    let env_path = std::env::var(config::ENV_PATH).ok();
    let cfg = Config::resolve(
        env_path.as_deref(),
        options.as_ref().map(|o| o.config_path.as_str()),
    )?;
    let inner_binary = cfg.inner_binary_path()?;
    let inner_stdin = inner_start_stdin(stdin, any.as_ref(), options.as_ref(), &cfg)?;

    let out = Command::new(&inner_binary)
        .args(&args.raw)
        .current_dir(bundle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            // The inner shim may not read stdin at all; a broken pipe is fine.
            if let Some(mut i) = child.stdin.take() {
                let _ = i.write_all(&inner_stdin);
            }
            child.wait_with_output()
        })
        .map_err(|e| Error::InnerShim {
            binary: inner_binary.display().to_string(),
            reason: format!("start: {e}"),
        })?;
    if !out.status.success() {
        return Err(Error::InnerShim {
            binary: inner_binary.display().to_string(),
            reason: format!(
                "start failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let inner = Bootstrap::parse(&out.stdout).map_err(|e| Error::InnerShim {
        binary: inner_binary.display().to_string(),
        reason: e.to_string(),
    })?;

    match launch_server(args, bundle, &cfg, &inner, &inner_binary) {
        Ok(answer) => Ok(answer),
        Err(e) => {
            // Leave no inner shim behind that containerd does not know of.
            kill_inner(bundle);
            Err(e)
        }
    }
}

fn launch_server(
    args: &ShimArgs,
    bundle: &Path,
    cfg: &Config,
    inner: &Bootstrap,
    inner_binary: &Path,
) -> Result<Vec<u8>> {
    let sock = socket::socket_path(
        Path::new(socket::SOCKET_DIR),
        &args.address,
        &args.namespace,
        &args.id,
    );
    let listener = socket::bind(&sock)?;
    let proxy = inner.with_address(&socket::to_address(&sock));
    let params = ServeParams {
        id: args.id.clone(),
        namespace: args.namespace.clone(),
        bundle: bundle.to_path_buf(),
        socket: sock.clone(),
        inner_address: inner.address.clone(),
        inner_version: inner.version,
        debug: args.debug,
        config: cfg.clone(),
        config_source: cfg.source.clone(),
    };
    let child = spawn_server(&params, listener).inspect_err(|_| {
        let _ = std::fs::remove_file(&sock);
    })?;
    let state = BundleState {
        proxy: proxy.clone(),
        inner_binary: inner_binary.to_path_buf(),
        inner: Some(inner.clone()),
        socket: Some(sock.clone()),
        sandbox: None,
    };
    let written = state
        .write(bundle)
        .and_then(|_| write_atomic(&bundle.join("address"), proxy.address.as_bytes()));
    if let Err(e) = written {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = std::fs::remove_file(&sock);
        return Err(e);
    }
    proxy.render()
}

/// Starts the proxy server in its own session, in the bundle, with the
/// listening socket as its fd [`LISTENER_FD`]; the server owns it then.
fn spawn_server(params: &ServeParams, listener: UnixListener) -> Result<std::process::Child> {
    let exe = std::env::current_exe().ctx(|| "locate own executable".into())?;
    let json = serde_json::to_string(params).map_err(|source| Error::Json {
        context: "serialise the server's parameters".into(),
        source,
    })?;
    let lfd = listener.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg(serve::ACTION)
        .arg(json)
        .current_dir(&params.bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe syscalls. The fcntl and dup2 act on raw fd
    // numbers: in the child there is no OwnedFd for fd 3 to hand to nix's
    // dup2, so they go to libc directly.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            // dup2 onto itself keeps FD_CLOEXEC: clear it explicitly then.
            let rc = if lfd == LISTENER_FD {
                libc::fcntl(lfd, libc::F_SETFD, 0)
            } else {
                libc::dup2(lfd, LISTENER_FD)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| Error::io("spawn proxy server", e))
}

/// The runtime options the inner shim gets on stdin: ours, with kata-cr's
/// own config path replaced by the inner shim's (or removed), an Any with an
/// empty type URL (which Kata refuses) dropped, everything else as sent.
fn inner_start_stdin(
    raw: &[u8],
    any: Option<&protobuf::well_known_types::any::Any>,
    options: Option<&RuntimeOptions>,
    cfg: &Config,
) -> Result<Vec<u8>> {
    let (Some(any), Some(opts)) = (any, options) else {
        if any.is_none() && runtime_options::is_empty_any(raw) {
            return Ok(Vec::new());
        }
        return Ok(raw.to_vec());
    };
    Ok(match runtime_options::for_inner(any, opts, cfg)? {
        ForInner::Unchanged => raw.to_vec(),
        ForInner::Replaced(a) => a.write_to_bytes()?,
        ForInner::Removed => Vec::new(),
    })
}

fn kill_inner(bundle: &Path) {
    let pid_file: PathBuf = bundle.join("shim.pid");
    if let Ok(s) = std::fs::read_to_string(pid_file) {
        if let Ok(pid) = s.trim().parse::<i32>() {
            if pid > 1 {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// containerd's restore sends an options Any with an empty type URL;
    /// Kata's Create and start refuse it (`type with url : not found`).
    #[test]
    fn an_empty_options_any_is_not_passed_to_the_inner_start() {
        let c = Config::default();
        let mut any = protobuf::well_known_types::any::Any::new();
        any.value = b"\x0a\x01x".to_vec();
        let raw = any.write_to_bytes().unwrap();
        assert!(parse_start_stdin(&raw).is_none());
        assert_eq!(
            inner_start_stdin(&raw, None, None, &c).unwrap(),
            Vec::<u8>::new()
        );
        // what kata-cr does not understand still goes through as it came
        assert_eq!(
            inner_start_stdin(b"\xff\xff", None, None, &c).unwrap(),
            b"\xff\xff"
        );
        any.type_url = "containerd.runc.v1.Options".into();
        let raw = any.write_to_bytes().unwrap();
        let parsed = parse_start_stdin(&raw);
        assert_eq!(
            inner_start_stdin(&raw, parsed.as_ref(), None, &c).unwrap(),
            raw
        );
    }
}
