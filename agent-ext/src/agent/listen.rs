//! The daemon's listening sockets.
//!
//! - `unix:///path`: the directory is created mode 0700, the socket is
//!   0600; a stale socket file is replaced (one that still accepts
//!   connections is not); the file is removed on exit.
//! - `vsock://CID:PORT` (`-1` for any CID): only connections from the host
//!   (CID 2) are accepted; others are closed at once.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::PathBuf;

use futures::StreamExt as _;
use ttrpc::asynchronous::transport::Listener;

/// The host's vsock CID: the only peer accepted on vsock.
pub const HOST_CID: u32 = 2;

/// A listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A unix socket path.
    Unix(PathBuf),
    /// A vsock CID (`u32::MAX` = any) and port.
    Vsock {
        /// Local CID to bind.
        cid: u32,
        /// Port.
        port: u32,
    },
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            ListenAddr::Vsock {
                cid: u32::MAX,
                port,
            } => write!(f, "vsock://-1:{port}"),
            ListenAddr::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
        }
    }
}

/// Parses `unix:///abs/path` or `vsock://CID:PORT`.
pub fn parse(addr: &str) -> Result<ListenAddr, String> {
    if let Some(path) = addr.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!(
                "{addr:?}: a unix address needs an absolute path (unix:///run/...)"
            ));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = addr.strip_prefix("vsock://") {
        let (cid, port) = rest
            .split_once(':')
            .ok_or_else(|| format!("{addr:?}: expected vsock://CID:PORT"))?;
        let cid = if cid == "-1" {
            u32::MAX
        } else {
            cid.parse()
                .map_err(|_| format!("{addr:?}: bad CID {cid:?}"))?
        };
        let port = port
            .parse()
            .map_err(|_| format!("{addr:?}: bad port {port:?}"))?;
        return Ok(ListenAddr::Vsock { cid, port });
    }
    Err(format!(
        "{addr:?}: expected unix:///path or vsock://CID:PORT"
    ))
}

/// Removes the socket file when dropped.
pub struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// A bound listener.
pub struct Bound {
    /// For the ttrpc server.
    pub listener: Listener,
    /// Removes the socket file (unix) when dropped.
    pub cleanup: Cleanup,
}

/// Binds `addr` (see the module documentation).
pub fn bind(addr: &ListenAddr) -> io::Result<Bound> {
    match addr {
        ListenAddr::Unix(path) => {
            if let Some(dir) = path.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            }
            match fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_socket() => {
                    // A daemon still answering there keeps its socket.
                    if std::os::unix::net::UnixStream::connect(path).is_ok() {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!("{} is in use by a running daemon", path.display()),
                        ));
                    }
                    fs::remove_file(path)?
                }
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket", path.display()),
                    ))
                }
                Err(_) => {}
            }
            let std_listener = std::os::unix::net::UnixListener::bind(path)?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
            std_listener.set_nonblocking(true)?;
            let listener = tokio::net::UnixListener::from_std(std_listener)?;
            Ok(Bound {
                listener: Listener::from(listener),
                cleanup: Cleanup(Some(path.clone())),
            })
        }
        ListenAddr::Vsock { cid, port } => {
            let listener =
                tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(*cid, *port))?;
            let accepted = futures::stream::unfold(listener, |listener| async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) if peer.cid() == HOST_CID => {
                            return Some((Ok(stream), listener))
                        }
                        Ok((_, peer)) => {
                            tracing::warn!(
                                cid = peer.cid(),
                                port = peer.port(),
                                "vsock connection from a non-host CID refused"
                            );
                        }
                        Err(e) => return Some((Err(e), listener)),
                    }
                }
            });
            Ok(Bound {
                listener: Listener::new(accepted.boxed()),
                cleanup: Cleanup(None),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_addresses() {
        assert_eq!(
            parse("unix:///run/kata-cr/agent.sock"),
            Ok(ListenAddr::Unix("/run/kata-cr/agent.sock".into()))
        );
        assert_eq!(
            parse("vsock://-1:1029"),
            Ok(ListenAddr::Vsock {
                cid: u32::MAX,
                port: 1029
            })
        );
        assert_eq!(
            parse("vsock://3:1029"),
            Ok(ListenAddr::Vsock { cid: 3, port: 1029 })
        );
        assert_eq!(
            parse("vsock://-1:1029").unwrap().to_string(),
            "vsock://-1:1029"
        );
        for bad in [
            "unix://rel",
            "vsock://x:1",
            "vsock://1",
            "tcp://1:2",
            "/path",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn vsock_binds_where_the_kernel_has_it() {
        // No vsock transport to connect through here (no VM, no
        // vsock_loopback): only the bind is exercised; the CID filter is
        // proven in a Kata guest.
        let port = 40_000 + (std::process::id() % 20_000);
        match bind(&ListenAddr::Vsock {
            cid: u32::MAX,
            port,
        }) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                eprintln!("skipped: no AF_VSOCK in this kernel")
            }
            Err(e) => panic!("vsock bind: {e}"),
        }
    }

    #[tokio::test]
    async fn unix_socket_is_private_and_served() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("sub/agent.sock");
        // A stale socket is replaced.
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let config = crate::agent::Config {
            criu: "/nonexistent/criu".into(),
            work_dir: base.path().join("work"),
            ..Default::default()
        };
        let daemon = std::sync::Arc::new(crate::agent::Daemon::new(config).unwrap());
        let bound = bind(&ListenAddr::Unix(path.clone())).unwrap();
        let err = bind(&ListenAddr::Unix(path.clone()))
            .err()
            .expect("a live socket is kept");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let mut server = ttrpc::r#async::Server::new()
            .add_listener(bound.listener)
            .register_service(crate::api::create_agent(std::sync::Arc::new(
                crate::agent::Service::new(daemon),
            )));
        server.start().await.unwrap();

        let client = crate::api::connect(&format!("unix://{}", path.display()))
            .await
            .unwrap();
        let caps = client
            .capabilities(
                crate::api::context(),
                &crate::api::CapabilitiesRequest::new(),
            )
            .await
            .unwrap();
        assert_eq!(caps.api_version, crate::api::API_VERSION);
        assert!(!caps.criu_check_ok);
        assert!(
            caps.criu_check_output.contains("criu not found"),
            "{}",
            caps.criu_check_output
        );

        // Errors arrive as statuses with their codes.
        let mut req = crate::api::CheckpointRequest::new();
        req.container_id = "c1".into();
        req.rootfs = base.path().display().to_string();
        req.image_dir = "../escape".into();
        match client.checkpoint(crate::api::context(), &req).await {
            Err(ttrpc::Error::RpcStatus(s)) => {
                assert_eq!(s.code(), ttrpc::Code::INVALID_ARGUMENT, "{s:?}")
            }
            other => panic!("{other:?}"),
        }
        req.image_dir = String::new();
        match client.checkpoint(crate::api::context(), &req).await {
            Err(ttrpc::Error::RpcStatus(s)) => {
                assert_eq!(s.code(), ttrpc::Code::NOT_FOUND, "{s:?}");
                assert!(s.message().contains(&req.rootfs), "{s:?}");
            }
            other => panic!("{other:?}"),
        }
        server.shutdown().await.unwrap();
        drop(bound.cleanup);
        assert!(!path.exists());
    }
}
