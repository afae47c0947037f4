//! The streaming side of `crictl exec` (without -s): the runtime's streaming server
//! (the URL of the CRI Exec call) speaks Kubernetes' remote command protocol, over
//! SPDY/3.1 ([`spdy`], crictl's default `--transport spdy`) or a WebSocket
//! ([`websocket`], `--transport websocket`). Channels: stdin, stdout, stderr, the
//! error channel (a JSON `metav1.Status` when the command ends) and terminal resizes
//! (`{"Width":W,"Height":H}`).

pub mod spdy;
pub mod websocket;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::tty;

/// One channel of a session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Channel {
    Stdin,
    Stdout,
    Stderr,
    Error,
    Resize,
}

impl Channel {
    /// Its SPDY `streamtype`.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Stdin => "stdin",
            Channel::Stdout => "stdout",
            Channel::Stderr => "stderr",
            Channel::Error => "error",
            Channel::Resize => "resize",
        }
    }
}

/// What the session carries: stdin when `stdin`, a terminal when `tty` (then no
/// separate stderr).
#[derive(Clone, Copy)]
pub struct Session {
    pub stdin: bool,
    pub tty: bool,
}

/// Runs the exec session at `url` with this process's stdio (the terminal in raw
/// mode for a tty session). Ok when the command exited 0; otherwise the error
/// crictl reports (`command terminated with exit code N` for a non-zero exit).
pub async fn exec(url: &str, transport: &str, s: Session) -> Result<(), String> {
    let _raw = if s.tty {
        Some(tty::Raw::enter()?)
    } else {
        None
    };
    let status = match transport {
        "websocket" => websocket::exec(url, s).await?,
        _ => spdy::exec(url, s).await?,
    };
    outcome(&status)
}

/// Forwards this process's stdin: each chunk, then the end (`None`), encoded by
/// `frame` and queued on `tx`.
pub async fn pump_stdin(tx: mpsc::Sender<Vec<u8>>, frame: impl Fn(Option<&[u8]>) -> Vec<u8>) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(frame(Some(&buf[..n]))).await.is_err() {
                    return;
                }
            }
        }
    }
    let end = frame(None);
    if !end.is_empty() {
        let _ = tx.send(end).await;
    }
}

/// Sends the terminal's size now and on every SIGWINCH, as JSON encoded by `frame`.
pub async fn pump_resizes(tx: mpsc::Sender<Vec<u8>>, frame: impl Fn(&str) -> Vec<u8>) {
    let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    loop {
        if let Some((w, h)) = tty::size() {
            if tx
                .send(frame(&format!("{{\"Width\":{w},\"Height\":{h}}}\n")))
                .await
                .is_err()
            {
                return;
            }
        }
        if winch.recv().await.is_none() {
            return;
        }
    }
}

/// What the error channel said, as client-go's v4 decoder reads it.
pub fn outcome(status: &[u8]) -> Result<(), String> {
    if status.is_empty() {
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_slice(status).map_err(|e| {
        format!(
            "error stream protocol error: {e} in {:?}",
            String::from_utf8_lossy(status)
        )
    })?;
    match v["status"].as_str() {
        Some("Success") => Ok(()),
        Some("Failure") if v["reason"] == "NonZeroExitCode" => {
            let causes = v["details"]["causes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in causes {
                if c["reason"] == "ExitCode" {
                    let m = c["message"].as_str().unwrap_or("");
                    let code: u8 = m.parse().map_err(|_| {
                        format!("error stream protocol error: invalid exit code value {m:?}")
                    })?;
                    return Err(format!("command terminated with exit code {code}"));
                }
            }
            Err("error stream protocol error: no ExitCode cause given".into())
        }
        Some("Failure") => Err(v["message"].as_str().unwrap_or("").to_string()),
        _ => Err("error stream protocol error: unknown error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_channel() {
        assert_eq!(outcome(b""), Ok(()));
        assert_eq!(outcome(br#"{"metadata":{},"status":"Success"}"#), Ok(()));
        let exit3 = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(
            outcome(exit3),
            Err("command terminated with exit code 3".into())
        );
        let failed = br#"{"metadata":{},"status":"Failure","message":"failed to exec in container: no such file"}"#;
        assert_eq!(
            outcome(failed),
            Err("failed to exec in container: no such file".into())
        );
        assert!(outcome(b"garbage")
            .unwrap_err()
            .starts_with("error stream protocol error"));
    }
}
