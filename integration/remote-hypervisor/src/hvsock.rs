//! The hybrid vsock handshake of `vhost-device-vsock` (and clh, fc): connect
//! to the VMM's unix socket, write `CONNECT <port>\n`, read `OK <n>\n`; the
//! stream then reaches the guest's listener on `<port>`.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Longest reply accepted (`OK 4294967295\n` is 14 bytes).
const MAX_REPLY: usize = 64;

/// Guest `port` through the hybrid vsock at `path`, within `timeout`.
pub async fn connect(path: &Path, port: u32, timeout: Duration) -> io::Result<UnixStream> {
    match tokio::time::timeout(timeout, handshake(path, port)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer to CONNECT {port} within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

async fn handshake(path: &Path, port: u32) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(path).await?;
    s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
    // One byte at a time: what follows the newline is the guest's.
    let mut line = Vec::with_capacity(16);
    loop {
        let mut b = [0u8; 1];
        if s.read(&mut b).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("nothing listens on guest port {port} (the VMM closed the connection)"),
            ));
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > MAX_REPLY {
            break;
        }
    }
    if line.starts_with(b"OK") {
        Ok(s)
    } else {
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "CONNECT {port} answered {:?}",
                String::from_utf8_lossy(&line)
            ),
        ))
    }
}

#[cfg(test)]
pub mod tests {
    use std::path::PathBuf;

    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::UnixListener;

    use super::*;

    /// A fake VMM: answers CONNECT for `port` with OK and then echoes,
    /// closes any other port's connection at once.
    pub fn fake_vmm(path: PathBuf, port: u32) {
        let l = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut r = BufReader::new(s);
                    let mut line = String::new();
                    r.read_line(&mut line).await.unwrap();
                    if line != format!("CONNECT {port}\n") {
                        return;
                    }
                    let mut s = r.into_inner();
                    s.write_all(b"OK 1073741824\n").await.unwrap();
                    let (mut rd, mut wr) = s.split();
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                });
            }
        });
    }

    #[tokio::test]
    async fn ok_gives_the_stream_and_keeps_what_follows() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vm.vsock");
        fake_vmm(p.clone(), 1024);
        let mut s = connect(&p, 1024, Duration::from_secs(5)).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vm.vsock");
        fake_vmm(p.clone(), 1024);
        let e = connect(&p, 1029, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(e.to_string().contains("guest port 1029"), "{e}");
    }

    #[tokio::test]
    async fn a_silent_vmm_times_out() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vm.vsock");
        let _l = UnixListener::bind(&p).unwrap();
        let e = connect(&p, 1024, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
