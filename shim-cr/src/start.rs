//! `start`: decide the pod grouping, start the inner shim the way containerd
//! would have, put a proxy server in front of it, and tell containerd the
//! proxy's address in the form the inner shim used. Nothing but that answer
//! may reach stdout/stderr: containerd reads both as the answer.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use protobuf::Message;

use crate::args::ShimArgs;
use crate::bootstrap::Bootstrap;
use crate::bundle_state::{write_atomic, BundleState};
use crate::config::{self, Config};
use crate::error::{Error, IoContext, Result};
use crate::grouping::{self, Group};
use crate::runtime_options::{parse_start_stdin, RuntimeOptions};
use crate::serve::ServeParams;
use crate::socket;

/// The fd number the listening socket has in the server process.
pub const LISTENER_FD: i32 = 3;

pub fn run(args: &ShimArgs) -> Result<Vec<u8>> {
    let bundle = std::env::current_dir().ctx(|| "current directory (the bundle)".into())?;
    let mut stdin = Vec::new();
    std::io::stdin()
        .read_to_end(&mut stdin)
        .ctx(|| "read runtime options from stdin".into())?;
    let spec = grouping::read_spec(&bundle)?;
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
    let sb = BundleState::read(&sb_bundle).map_err(|e| {
        Error::FailedPrecondition(format!(
            "sandbox {sid} is not served by kata-cr ({e}); run the pod with the kata-cr runtime"
        ))
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
    Ok(sb.proxy.render())
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
    let inner_stdin = inner_start_stdin(stdin, any.as_ref(), options.as_ref(), &cfg);

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
        inner: inner.clone(),
        debug: args.debug,
        config: cfg.clone(),
    };
    let exe = std::env::current_exe().ctx(|| "locate own executable".into())?;
    let json = serde_json::to_string(&params).expect("plain struct serialises");
    let lfd = listener.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg(crate::SERVE_ACTION)
        .arg(json)
        .current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
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
    let child = cmd.spawn().map_err(|e| {
        let _ = std::fs::remove_file(&sock);
        Error::io("spawn proxy server", e)
    })?;
    // The server owns the socket now; our copy closes with us.
    let _ = listener.into_raw_fd();
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
        // SAFETY: plain kill of the child we just spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = std::fs::remove_file(&sock);
        return Err(e);
    }
    Ok(proxy.render())
}

/// The runtime options the inner shim gets: ours, with kata-cr's own config
/// path replaced by the inner shim's (or removed), an Any with an empty type
/// URL (which Kata refuses) dropped, everything else as sent.
fn inner_start_stdin(
    raw: &[u8],
    any: Option<&protobuf::well_known_types::any::Any>,
    options: Option<&RuntimeOptions>,
    cfg: &Config,
) -> Vec<u8> {
    match (any, options) {
        (Some(any), Some(opts)) => match rewrite_options(opts, cfg) {
            Some(o) => {
                let mut a = any.clone();
                a.value = o.encode();
                a.write_to_bytes().expect("plain message serialises")
            }
            None => Vec::new(),
        },
        (None, _) if is_empty_any(raw) => Vec::new(),
        _ => raw.to_vec(),
    }
}

/// Whether `raw` is a marshalled Any that names no type.
fn is_empty_any(raw: &[u8]) -> bool {
    !raw.is_empty()
        && protobuf::well_known_types::any::Any::parse_from_bytes(raw)
            .is_ok_and(|a| a.type_url.is_empty())
}

/// Replace kata-cr's config path in runtime options by the inner shim's.
/// `None` when nothing is left to send.
pub fn rewrite_options(opts: &RuntimeOptions, cfg: &Config) -> Option<RuntimeOptions> {
    let mut o = opts.clone();
    if !o.config_path.is_empty() && o.config_path == cfg.source {
        o.config_path = cfg.inner.config_path.clone();
    }
    if o.config_path.is_empty() && o.config_body.is_empty() {
        return None;
    }
    Some(o)
}

fn kill_inner(bundle: &Path) {
    let pid_file: PathBuf = bundle.join("shim.pid");
    if let Ok(s) = std::fs::read_to_string(pid_file) {
        if let Ok(pid) = s.trim().parse::<i32>() {
            if pid > 1 {
                // SAFETY: signalling a pid the inner shim wrote for us.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(source: &str, inner_path: &str) -> Config {
        Config {
            source: source.into(),
            inner: crate::config::Inner {
                config_path: inner_path.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn our_config_path_is_swapped_for_the_inner_one() {
        let o = RuntimeOptions {
            config_path: "/etc/kata-cr/config.toml".into(),
            ..Default::default()
        };
        let c = cfg("/etc/kata-cr/config.toml", "/opt/kata/configuration.toml");
        assert_eq!(
            rewrite_options(&o, &c).unwrap().config_path,
            "/opt/kata/configuration.toml"
        );
        assert_eq!(
            rewrite_options(&o, &cfg("/etc/kata-cr/config.toml", "")),
            None
        );
    }

    #[test]
    fn an_empty_options_any_is_not_passed_to_the_inner_start() {
        let c = cfg("/etc/kata-cr/config.toml", "");
        let mut any = protobuf::well_known_types::any::Any::new();
        any.value = b"\x0a\x01x".to_vec();
        let raw = any.write_to_bytes().unwrap();
        let parsed = crate::runtime_options::parse_start_stdin(&raw);
        assert!(parsed.is_none());
        assert_eq!(inner_start_stdin(&raw, None, None, &c), Vec::<u8>::new());
        // what kata-cr does not understand still goes through as it came
        assert_eq!(inner_start_stdin(b"\xff\xff", None, None, &c), b"\xff\xff");
        any.type_url = "containerd.runc.v1.Options".into();
        let raw = any.write_to_bytes().unwrap();
        let parsed = crate::runtime_options::parse_start_stdin(&raw);
        assert_eq!(inner_start_stdin(&raw, parsed.as_ref(), None, &c), raw);
    }

    #[test]
    fn foreign_options_pass_unchanged() {
        let o = RuntimeOptions {
            config_path: "/opt/kata/other.toml".into(),
            ..Default::default()
        };
        let c = cfg("/etc/kata-cr/config.toml", "/x");
        assert_eq!(rewrite_options(&o, &c), Some(o));
    }
}
