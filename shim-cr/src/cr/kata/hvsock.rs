//! Hybrid vsock (clh, firecracker, dragonball; vhost-device-vsock): the VMM
//! exposes the guest's vsock as a unix socket on the host. A client connects,
//! writes `CONNECT <port>\n` and reads one line; `OK <host port>\n` means the
//! stream now reaches the guest's listener on `<port>`. This is what Kata's
//! own shims and `kata-runtime exec` do.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{Error, Result};

/// Longest handshake reply read before giving up (`OK 4294967295\n` is 14).
const MAX_REPLY: usize = 128;

/// Connects to guest `port` through the hybrid vsock at `path`. The whole
/// exchange is bounded by `timeout` (a VMM that accepts but never answers
/// must not hang a checkpoint).
pub async fn connect(path: &Path, port: u32, timeout: Duration) -> Result<UnixStream> {
    let where_ = || format!("hybrid vsock {} port {port}", path.display());
    match tokio::time::timeout(timeout, handshake(path, port)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(HandshakeError::Io(ctx, e))) => Err(Error::io(format!("{}: {ctx}", where_()), e)),
        Ok(Err(HandshakeError::Refused(line))) => Err(Error::Kata {
            what: where_(),
            reason: format!("the VMM refused the connection ({line:?}); is kata-cr-agent running in the guest and listening on vsock port {port}?"),
        }),
        Ok(Err(HandshakeError::Closed)) => Err(Error::Kata {
            what: where_(),
            reason: "the VMM closed the connection before answering CONNECT (nothing listens on that guest port?)".into(),
        }),
        Err(_) => Err(Error::Kata {
            what: where_(),
            reason: format!("no answer to CONNECT within {} ms", timeout.as_millis()),
        }),
    }
}

enum HandshakeError {
    Io(&'static str, std::io::Error),
    Refused(String),
    Closed,
}

async fn handshake(path: &Path, port: u32) -> std::result::Result<UnixStream, HandshakeError> {
    let mut s = UnixStream::connect(path)
        .await
        .map_err(|e| HandshakeError::Io("connect", e))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())
        .await
        .map_err(|e| HandshakeError::Io("write CONNECT", e))?;
    // Byte by byte: whatever follows the newline already belongs to the
    // guest's service and must stay in the stream.
    let mut line = Vec::with_capacity(16);
    loop {
        let mut b = [0u8; 1];
        let n = s
            .read(&mut b)
            .await
            .map_err(|e| HandshakeError::Io("read the CONNECT reply", e))?;
        if n == 0 {
            return Err(if line.is_empty() {
                HandshakeError::Closed
            } else {
                HandshakeError::Refused(String::from_utf8_lossy(&line).into_owned())
            });
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > MAX_REPLY {
            return Err(HandshakeError::Refused(format!(
                "{}...",
                String::from_utf8_lossy(&line)
            )));
        }
    }
    if line.starts_with(b"OK") {
        Ok(s)
    } else {
        Err(HandshakeError::Refused(
            String::from_utf8_lossy(&line).trim_end().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::UnixListener;

    use super::*;

    /// A fake VMM: accepts one connection, checks the CONNECT line, answers
    /// `reply` (then echoes once if `echo`), or stays silent.
    async fn fake_vmm(reply: Option<&'static [u8]>, echo: bool) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.vsock");
        let l = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert_eq!(line, "CONNECT 1029\n");
            let mut s = r.into_inner();
            match reply {
                Some(bytes) => s.write_all(bytes).await.unwrap(),
                None => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
            }
            if echo {
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
            }
        });
        (dir, path)
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn ok_hands_over_the_stream() {
        let (_d, path) = fake_vmm(Some(b"OK 1073741824\n"), true).await;
        let mut s = connect(&path, 1029, T).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[tokio::test]
    async fn bytes_after_ok_stay_in_the_stream() {
        let (_d, path) = fake_vmm(Some(b"OK 5\nhello"), false).await;
        let mut s = connect(&path, 1029, T).await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[tokio::test]
    async fn error_line_is_reported() {
        let (_d, path) = fake_vmm(Some(b"FAILURE\n"), false).await;
        let e = connect(&path, 1029, T).await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
        assert!(e.to_string().contains("FAILURE"), "{e}");
        assert!(e.to_string().contains("port 1029"), "{e}");
    }

    #[tokio::test]
    async fn eof_before_any_answer() {
        let (_d, path) = fake_vmm(Some(b""), false).await;
        let e = connect(&path, 1029, T).await.unwrap_err();
        assert!(e.to_string().contains("closed the connection"), "{e}");
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        let (_d, path) = fake_vmm(Some(&[0xff; 300]), false).await;
        let e = connect(&path, 1029, T).await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
        assert!(e.to_string().contains("refused"), "{e}");
        let (_d, path) = fake_vmm(Some(b"HTTP/1.1 400 Bad Request\r\n"), false).await;
        let e = connect(&path, 1029, T).await.unwrap_err();
        assert!(e.to_string().contains("HTTP/1.1 400"), "{e}");
    }

    #[tokio::test]
    async fn silent_vmm_times_out() {
        let (_d, path) = fake_vmm(None, false).await;
        let e = connect(&path, 1029, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no answer to CONNECT"), "{e}");
    }

    #[tokio::test]
    async fn missing_socket_names_it() {
        let e = connect(Path::new("/nonexistent/vm.vsock"), 1029, T)
            .await
            .unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::NOT_FOUND);
        assert!(e.to_string().contains("/nonexistent/vm.vsock"), "{e}");
    }
}
