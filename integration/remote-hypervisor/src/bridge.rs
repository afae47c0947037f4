//! The agent socket CreateVM returns: Kata's shim dials it as a plain unix
//! socket and speaks ttrpc at once (`remote://` agent URL, no handshake), so
//! each connection is carried to the guest's port 1024 through the hybrid
//! vsock. Connections made before the guest is up wait for it.

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::hvsock;
use crate::vm::AGENT_PORT;

/// Where the sandbox's guest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    Booting,
    Up,
    /// Stopped or failed: connections are closed.
    Gone,
}

/// Carries connections while it lives; dropping it closes the listener and
/// every connection.
pub struct Bridge {
    task: JoinHandle<()>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Bridge {
    pub fn start(
        listener: UnixListener,
        hvsock: PathBuf,
        guest: watch::Receiver<Guest>,
        sandbox: String,
    ) -> Bridge {
        Bridge {
            task: tokio::spawn(run(listener, hvsock, guest, sandbox)),
        }
    }
}

async fn run(
    listener: UnixListener,
    hvsock: PathBuf,
    guest: watch::Receiver<Guest>,
    sandbox: String,
) {
    // Dropped with this task: aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    conns.spawn(carry(s, hvsock.clone(), guest.clone(), sandbox.clone()));
                }
                Err(e) => {
                    tracing::warn!(sandbox, error = %e, "agent socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn carry(
    mut host: UnixStream,
    hvsock: PathBuf,
    mut guest: watch::Receiver<Guest>,
    sandbox: String,
) {
    match guest.wait_for(|g| *g != Guest::Booting).await {
        Ok(g) if *g == Guest::Up => {}
        _ => return,
    }
    let mut vm = match hvsock::connect(&hvsock, AGENT_PORT, Duration::from_secs(10)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(sandbox, error = %e, "cannot reach the guest's agent");
            return;
        }
    };
    let _ = tokio::io::copy_bidirectional(&mut host, &mut vm).await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::hvsock::tests::fake_vmm;

    #[tokio::test]
    async fn connections_wait_for_the_guest_then_reach_port_1024() {
        let d = tempfile::tempdir().unwrap();
        let vm = d.path().join("vm.vsock");
        let agent = d.path().join("agent.sock");
        let (tx, rx) = watch::channel(Guest::Booting);
        let _b = Bridge::start(
            UnixListener::bind(&agent).unwrap(),
            vm.clone(),
            rx,
            "sb".into(),
        );
        let mut c = UnixStream::connect(&agent).await.unwrap();
        c.write_all(b"early").await.unwrap();
        // the VMM appears only now
        fake_vmm(vm, AGENT_PORT);
        tx.send(Guest::Up).unwrap();
        let mut buf = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"early");
    }

    #[tokio::test]
    async fn a_gone_guest_closes_connections_and_dropping_closes_the_socket() {
        let d = tempfile::tempdir().unwrap();
        let agent = d.path().join("agent.sock");
        let (tx, rx) = watch::channel(Guest::Booting);
        let b = Bridge::start(
            UnixListener::bind(&agent).unwrap(),
            d.path().join("vm.vsock"),
            rx,
            "sb".into(),
        );
        let mut c = UnixStream::connect(&agent).await.unwrap();
        tx.send(Guest::Gone).unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
        drop(b);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(UnixStream::connect(&agent).await.is_err());
    }
}
