//! The Kata shim's management socket: an HTTP server on a unix socket per
//! sandbox (`/run/vc/sbs/<sid>/shim-monitor.sock` for the Go shim,
//! `/run/kata/<sid>/shim-monitor.sock` for runtime-rs). kata-cr asks it
//! `GET /agent-url`, one HTTP/1.1 request per connection (hyper).

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::agent_url::AgentUrl;
use crate::cr::container::check_id;
use crate::error::{Error, Result};

/// Go shim (`virtcontainers`' run dir for sandboxes).
pub const GO_ROOT: &str = "/run/vc/sbs";
/// runtime-rs (`KATA_PATH`).
pub const RUNTIME_RS_ROOT: &str = "/run/kata";
pub const SOCKET_NAME: &str = "shim-monitor.sock";
pub const AGENT_URL_PATH: &str = "/agent-url";

/// Largest response accepted (an agent URL is a few dozen bytes).
const MAX_RESPONSE: usize = 64 * 1024;

/// Where management sockets are looked for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots(pub Vec<PathBuf>);

impl Default for Roots {
    fn default() -> Self {
        Roots(vec![GO_ROOT.into(), RUNTIME_RS_ROOT.into()])
    }
}

impl Roots {
    /// The management socket of sandbox `sid`: the first root that has one.
    #[cfg(test)]
    pub fn socket(&self, sid: &str) -> Result<PathBuf> {
        self.find(sid)?.ok_or_else(|| self.missing(sid))
    }

    /// The management socket of sandbox `sid`, or None when no root has
    /// one; an id that cannot name a sandbox is an error.
    pub fn find(&self, sid: &str) -> Result<Option<PathBuf>> {
        check_id("sandbox", sid)?;
        Ok(self.candidates(sid).into_iter().find(|p| p.exists()))
    }

    /// The error for a sandbox without a management socket, naming where
    /// it was looked for.
    pub fn missing(&self, sid: &str) -> Error {
        let looked: Vec<String> = self
            .candidates(sid)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Error::Kata {
            what: "no Kata management socket".into(),
            reason: format!(
                "looked at {}; is the inner shim a Kata shim and the sandbox running?",
                looked.join(", ")
            ),
        }
    }

    fn candidates(&self, sid: &str) -> Vec<PathBuf> {
        self.0
            .iter()
            .map(|r| r.join(sid).join(SOCKET_NAME))
            .collect()
    }

    /// The Kata agent's URL for sandbox `sid`.
    #[cfg(test)]
    pub async fn agent_url(&self, sid: &str, timeout: Duration) -> Result<AgentUrl> {
        agent_url_at(&self.socket(sid)?, timeout).await
    }
}

/// The Kata agent's URL, asked of the management socket `sock`.
pub async fn agent_url_at(sock: &Path, timeout: Duration) -> Result<AgentUrl> {
    let resp = get(sock, AGENT_URL_PATH, timeout).await?;
    let body = String::from_utf8_lossy(&resp.body);
    if resp.status != 200 {
        return Err(Error::Kata {
            what: format!("GET {AGENT_URL_PATH} on {}", sock.display()),
            reason: format!("HTTP {}: {}", resp.status, body.trim()),
        });
    }
    AgentUrl::parse(&body).map_err(|e| e.context(format!("{}", sock.display())))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET uri` over the unix socket at `sock`, bounded by `timeout`.
pub async fn get(sock: &Path, uri: &str, timeout: Duration) -> Result<Response> {
    let what = || format!("GET {uri} on {}", sock.display());
    match tokio::time::timeout(timeout, exchange(sock, uri)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(Exchange::Connect(e))) => Err(Error::io(what(), e)),
        Ok(Err(Exchange::Http(reason))) => Err(Error::Kata {
            what: what(),
            reason,
        }),
        Err(_) => Err(Error::Kata {
            what: what(),
            reason: format!("no response within {} ms", timeout.as_millis()),
        }),
    }
}

enum Exchange {
    Connect(std::io::Error),
    Http(String),
}

async fn exchange(sock: &Path, uri: &str) -> std::result::Result<Response, Exchange> {
    let http = |e: &dyn std::fmt::Display| Exchange::Http(e.to_string());
    let stream = UnixStream::connect(sock).await.map_err(Exchange::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(&e))?;
    // The connection is driven beside the request and dropped with it.
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(uri)
        .header(HOST, "localhost")
        .header(USER_AGENT, "kata-cr")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(&e))?;
    let answer = async {
        let resp = sender.send_request(req).await.map_err(|e| http(&e))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| http(&*e))?
            .to_bytes()
            .to_vec();
        Ok(Response { status, body })
    }
    .await;
    conn.abort();
    answer
}

#[cfg(test)]
pub(crate) mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    use super::*;

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// A fake Kata management server at `<root>/<sid>/shim-monitor.sock`:
    /// checks the request line and answers `reply` to every connection.
    pub(crate) fn serve(root: &Path, sid: &str, reply: Vec<u8>) -> PathBuf {
        let dir = root.join(sid);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(SOCKET_NAME);
        let l = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while find(&req, b"\r\n\r\n").is_none() {
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        req.extend_from_slice(&buf[..n]);
                    }
                    let req = String::from_utf8(req).unwrap();
                    let path = req.split_whitespace().nth(1).unwrap_or_default();
                    if path == AGENT_URL_PATH {
                        s.write_all(&reply).await.unwrap();
                    } else {
                        s.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\nURL NOT FOUND",
                        )
                        .await
                        .unwrap();
                    }
                });
            }
        });
        path
    }

    pub(crate) fn ok(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    const T: Duration = Duration::from_secs(5);

    fn roots(base: &Path) -> Roots {
        Roots(vec![base.join("vc/sbs"), base.join("kata")])
    }

    #[tokio::test]
    async fn go_shim_socket() {
        let d = tempfile::tempdir().unwrap();
        serve(&d.path().join("vc/sbs"), "sb1", ok("vsock://3:1024"));
        let url = roots(d.path()).agent_url("sb1", T).await.unwrap();
        assert_eq!(
            url,
            AgentUrl::Vsock {
                cid: 3,
                port: Some(1024)
            }
        );
    }

    #[tokio::test]
    async fn runtime_rs_socket_with_a_chunked_body() {
        let d = tempfile::tempdir().unwrap();
        let body = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\nhvsock://\r\n19\r\n/run/kata/sb2/kata.hvsock\r\n0\r\n\r\n";
        serve(&d.path().join("kata"), "sb2", body.to_vec());
        let url = roots(d.path()).agent_url("sb2", T).await.unwrap();
        assert_eq!(
            url,
            AgentUrl::HybridVsock {
                path: "/run/kata/sb2/kata.hvsock".into(),
                port: None
            }
        );
    }

    #[tokio::test]
    async fn first_root_wins() {
        let d = tempfile::tempdir().unwrap();
        serve(&d.path().join("vc/sbs"), "sb", ok("vsock://3:1024"));
        serve(&d.path().join("kata"), "sb", ok("vsock://4"));
        let url = roots(d.path()).agent_url("sb", T).await.unwrap();
        assert!(matches!(url, AgentUrl::Vsock { cid: 3, .. }), "{url:?}");
    }

    #[tokio::test]
    async fn server_error_is_reported_with_its_body() {
        let d = tempfile::tempdir().unwrap();
        let reply =
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 15\r\n\r\nagent not ready"
                .to_vec();
        serve(&d.path().join("vc/sbs"), "sb", reply);
        let e = roots(d.path()).agent_url("sb", T).await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
        assert!(e.to_string().contains("HTTP 500: agent not ready"), "{e}");
    }

    #[tokio::test]
    async fn empty_url_from_runtime_rs_is_explained() {
        let d = tempfile::tempdir().unwrap();
        serve(&d.path().join("kata"), "sb", ok(""));
        let e = roots(d.path()).agent_url("sb", T).await.unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        assert!(e.to_string().contains("shim-monitor.sock"), "{e}");
    }

    #[tokio::test]
    async fn other_paths_get_a_404() {
        let d = tempfile::tempdir().unwrap();
        let sock = serve(&d.path().join("kata"), "sb", ok("vsock://3"));
        let r = get(&sock, "/metrics", T).await.unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"URL NOT FOUND");
    }

    #[tokio::test]
    async fn no_socket_names_both_places() {
        let d = tempfile::tempdir().unwrap();
        let e = roots(d.path()).agent_url("nope", T).await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
        let m = e.to_string();
        assert!(m.contains("vc/sbs/nope/shim-monitor.sock"), "{m}");
        assert!(m.contains("kata/nope/shim-monitor.sock"), "{m}");
        let e = roots(d.path()).socket("../x").unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT);
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("kata/sb");
        std::fs::create_dir_all(&dir).unwrap();
        let l = UnixListener::bind(dir.join(SOCKET_NAME)).unwrap();
        let _keep = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let e = roots(d.path())
            .agent_url("sb", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no response within"), "{e}");
    }

    #[tokio::test]
    async fn malformed_responses() {
        let d = tempfile::tempdir().unwrap();
        let roots = d.path().join("kata");
        for (sid, reply) in [
            ("closed", &b""[..]),
            ("ssh", b"SSH-2.0-x\r\n\r\n"),
            (
                "short",
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nvsock",
            ),
        ] {
            let sock = serve(&roots, sid, reply.to_vec());
            let e = get(&sock, AGENT_URL_PATH, T).await.unwrap_err();
            assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION, "{sid}: {e}");
            assert!(e.to_string().contains("GET /agent-url"), "{sid}: {e}");
        }
        // No length, closed connection: the rest is the body.
        let sock = serve(
            &roots,
            "old",
            b"HTTP/1.0 200 OK\r\n\r\nvsock://3:1024".to_vec(),
        );
        let r = get(&sock, AGENT_URL_PATH, T).await.unwrap();
        assert_eq!(r.body, b"vsock://3:1024");
    }

    #[tokio::test]
    async fn oversized_responses_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let body = "x".repeat(MAX_RESPONSE + 1);
        let sock = serve(d.path(), "big", ok(&body));
        let e = get(&sock, AGENT_URL_PATH, T).await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION, "{e}");
    }
}
