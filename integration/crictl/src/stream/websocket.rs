//! The remote command protocol over a WebSocket (`crictl exec --transport
//! websocket`), subprotocol `v5.channel.k8s.io` or, from a server without it (as
//! containerd 2.1's), `v4.channel.k8s.io`. Each binary message starts with its
//! channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds `[255,
//! channel]` to close one, which is how the end of stdin reaches the command. v4
//! cannot say it: there, the command's stdin stays open until it ends by itself.

use std::io::Write;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::Session;

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// Runs the session; returns what the error channel said.
pub async fn exec(url: &str, s: Session) -> Result<Vec<u8>, String> {
    let ws_url = match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => format!("ws://{url}"),
    };
    let mut req = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("exec URL {url:?}: {e}"))?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| format!("connect to the streaming server {url:?}: {e}"))?;
    let proto = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    crate::logrus::debug(&format!("exec stream {url}: WebSocket, protocol {proto:?}"));
    if proto != V5 && proto != V4 {
        return Err(format!(
            "the streaming server chose no remote command protocol this crictl speaks (got {proto:?})"
        ));
    }
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(Message::binary(m)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    if s.tty {
        tokio::spawn(super::pump_resizes(tx.clone(), |json| {
            [&[RESIZE][..], json.as_bytes()].concat()
        }));
    }
    if s.stdin {
        let can_close = proto == V5;
        tokio::spawn(super::pump_stdin(tx.clone(), move |chunk| match chunk {
            Some(d) => [&[STDIN][..], d].concat(),
            None if can_close => vec![CLOSE, STDIN],
            None => Vec::new(),
        }));
    }
    let mut status = Vec::new();
    while let Some(msg) = source.next().await {
        let data = match msg {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => return Err(format!("exec stream: {e}")),
        };
        let Some((&ch, payload)) = data.split_first() else {
            continue;
        };
        match ch {
            STDOUT => write_out(&mut std::io::stdout(), payload),
            STDERR => write_out(&mut std::io::stderr(), payload),
            ERROR => status.extend_from_slice(payload),
            _ => {}
        }
    }
    drop(tx);
    writer.abort();
    Ok(status)
}

fn write_out(w: &mut impl Write, data: &[u8]) {
    let _ = w.write_all(data);
    let _ = w.flush();
}
