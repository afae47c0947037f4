//! The remote command protocol over SPDY/3.1 (crictl's default transport, client-go's
//! SPDY executor): an HTTP/1.1 upgrade, then one SPDY stream per channel, opened by
//! the client with a `streamtype` header (`error`, `stdin`, `stdout`, `stderr`,
//! `resize`). The end of stdin is the stdin stream's FIN, which is what closes the
//! command's stdin; the error stream carries the command's `metav1.Status`.
//!
//! Only what this client needs of SPDY: SYN_STREAM (header blocks zlib-compressed
//! in one context per connection, flushed per frame; no preset dictionary, which
//! zlib readers take as "none used"), SYN_REPLY and HEADERS (header blocks skipped),
//! DATA, PING (answered), RST_STREAM (that stream ends) and GOAWAY (the session
//! ends).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{Channel, Session};

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// The largest frame payload the header's 24-bit length allows.
const MAX_DATA: usize = 0x00ff_ffff;

/// A SPDY frame as read.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Control {
        kind: u16,
        flags: u8,
        data: Vec<u8>,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

/// Encodes a control frame.
fn control(kind: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(data);
    f
}

/// Encodes a data frame.
pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

/// The uncompressed SPDY/3 header block: pair count, then length-prefixed names
/// (lower case) and values.
fn header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        for s in [k.to_ascii_lowercase().as_str(), v] {
            b.extend_from_slice(&(s.len() as u32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
    }
    b
}

/// SPDY's header compression: one zlib stream per connection and direction.
struct Headers {
    z: flate2::Compress,
}

impl Headers {
    fn new() -> Headers {
        Headers {
            z: flate2::Compress::new(flate2::Compression::default(), true),
        }
    }

    fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = block;
        loop {
            out.reserve(256);
            let before = self.z.total_in();
            self.z
                .compress_vec(input, &mut out, flate2::FlushCompress::Sync)
                .map_err(|e| format!("compress SPDY headers: {e}"))?;
            input = &input[(self.z.total_in() - before) as usize..];
            // done once the input is in and the flush left room to spare
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    fn syn_stream(&mut self, id: u32, headers: &[(&str, &str)]) -> Result<Vec<u8>, String> {
        let mut d = Vec::new();
        d.extend_from_slice(&id.to_be_bytes());
        d.extend_from_slice(&0u32.to_be_bytes()); // associated-to
        d.extend_from_slice(&[0, 0]); // priority, slot
        d.extend(self.compress(&header_block(headers))?);
        Ok(control(SYN_STREAM, 0, &d))
    }
}

/// Reads one frame.
pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h).await?;
    let flags = h[4];
    let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    if h[0] & 0x80 != 0 {
        Ok(Frame::Control {
            kind: u16::from_be_bytes([h[2], h[3]]),
            flags,
            data: payload,
        })
    } else {
        Ok(Frame::Data {
            stream: u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff,
            flags,
            data: payload,
        })
    }
}

/// Upgrades to SPDY/3.1 at `url` (`http://host:port/path`) offering the remote
/// command protocols; returns the connection, the chosen protocol and any SPDY bytes
/// read past the response.
async fn upgrade(url: &str) -> Result<(TcpStream, String, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("exec URL {url:?}: only http:// streaming servers are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut conn = TcpStream::connect(host)
        .await
        .map_err(|e| format!("connect to the streaming server {host}: {e}"))?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
         X-Stream-Protocol-Version: v3.channel.k8s.io\r\n\
         X-Stream-Protocol-Version: v2.channel.k8s.io\r\n\
         X-Stream-Protocol-Version: channel.k8s.io\r\n\
         Content-Length: 0\r\n\r\n"
    );
    conn.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("streaming server {host}: {e}"))?;
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 4096];
        let n = conn
            .read(&mut chunk)
            .await
            .map_err(|e| format!("streaming server {host}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "streaming server {host}: connection closed during the upgrade"
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(format!(
                "streaming server {host}: response headers too long"
            ));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 101 ") {
        let body = String::from_utf8_lossy(&buf[end..]).trim().to_string();
        return Err(format!("unable to upgrade connection: {status} {body}")
            .trim()
            .to_string());
    }
    let proto = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("X-Stream-Protocol-Version")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok((conn, proto, buf[end..].to_vec()))
}

/// Runs the session over SPDY (see [`super::exec`]).
pub async fn exec(url: &str, s: Session) -> Result<Vec<u8>, String> {
    let (conn, proto, early) = upgrade(url).await?;
    crate::logrus::debug(&format!("exec stream {url}: SPDY/3.1, protocol {proto:?}"));
    if proto != "v4.channel.k8s.io" {
        return Err(format!(
            "the streaming server chose no remote command protocol this crictl speaks (got {proto:?})"
        ));
    }
    let (rd, mut wr) = conn.into_split();
    let mut rd = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(early), rd);
    // Streams, in client-go's order; client stream ids are odd.
    let mut kinds = vec![Channel::Error];
    if s.stdin {
        kinds.push(Channel::Stdin);
    }
    kinds.push(Channel::Stdout);
    if !s.tty {
        kinds.push(Channel::Stderr);
    }
    if s.tty {
        kinds.push(Channel::Resize);
    }
    let id_of = |k: Channel| kinds.iter().position(|c| *c == k).map(|i| 2 * i as u32 + 1);
    let mut z = Headers::new();
    let mut hello = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        hello.extend(z.syn_stream(2 * i as u32 + 1, &[("streamtype", k.name())])?);
    }
    wr.write_all(&hello)
        .await
        .map_err(|e| format!("exec stream: {e}"))?;
    // Everything written after the streams are open goes through one queue.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut replies = 0;
    let mut pumps_started = false;
    let (error_id, stdout_id, stderr_id) = (
        id_of(Channel::Error),
        id_of(Channel::Stdout),
        id_of(Channel::Stderr),
    );
    let mut open_outputs = [stdout_id, stderr_id].iter().flatten().count();
    let mut error_open = true;
    let mut status = Vec::new();
    while error_open || open_outputs > 0 {
        let frame = match read_frame(&mut rd).await {
            Ok(f) => f,
            // the server ends the session by closing the connection
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("exec stream: {e}")),
        };
        match frame {
            Frame::Control {
                kind: SYN_REPLY, ..
            } => {
                replies += 1;
                if replies == kinds.len() && !pumps_started {
                    pumps_started = true;
                    if let Some(id) = id_of(Channel::Stdin) {
                        tokio::spawn(super::pump_stdin(tx.clone(), move |chunk| match chunk {
                            Some(d) => d
                                .chunks(MAX_DATA)
                                .map(|c| data(id, 0, c))
                                .collect::<Vec<_>>()
                                .concat(),
                            None => data(id, FLAG_FIN, &[]),
                        }));
                    }
                    if let Some(id) = id_of(Channel::Resize) {
                        tokio::spawn(super::pump_resizes(tx.clone(), move |json| {
                            data(id, 0, json.as_bytes())
                        }));
                    }
                }
            }
            Frame::Control {
                kind: PING,
                data: d,
                ..
            } => {
                let _ = tx.send(control(PING, 0, &d)).await;
            }
            // the server resets its streams as it closes the session: a stream
            // reset is a stream ended
            Frame::Control {
                kind: RST_STREAM,
                data: d,
                ..
            } => {
                let stream = d
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff);
                if stream == error_id {
                    error_open = false;
                } else if stream.is_some() && (stream == stdout_id || stream == stderr_id) {
                    open_outputs = open_outputs.saturating_sub(1);
                }
            }
            Frame::Control { kind: GOAWAY, .. } => break,
            Frame::Control { .. } => {}
            Frame::Data {
                stream,
                flags,
                data: d,
            } => {
                let fin = flags & FLAG_FIN != 0;
                if Some(stream) == stdout_id {
                    write_out(&mut std::io::stdout(), &d);
                } else if Some(stream) == stderr_id {
                    write_out(&mut std::io::stderr(), &d);
                } else if Some(stream) == error_id {
                    status.extend_from_slice(&d);
                    if fin {
                        error_open = false;
                    }
                    continue;
                }
                if fin && (Some(stream) == stdout_id || Some(stream) == stderr_id) {
                    open_outputs = open_outputs.saturating_sub(1);
                }
            }
        }
    }
    drop(tx);
    writer.abort();
    Ok(status)
}

fn write_out(w: &mut impl std::io::Write, d: &[u8]) {
    let _ = w.write_all(d);
    let _ = w.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn frames() {
        assert_eq!(
            data(3, FLAG_FIN, b"hi"),
            [0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(
            control(PING, 0, &[0, 0, 0, 7]),
            [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7]
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut bytes =
            std::io::Cursor::new([data(5, 1, b"out"), control(GOAWAY, 0, &[0; 8])].concat());
        let (a, b) = rt.block_on(async {
            (
                read_frame(&mut bytes).await.unwrap(),
                read_frame(&mut bytes).await.unwrap(),
            )
        });
        assert_eq!(
            a,
            Frame::Data {
                stream: 5,
                flags: 1,
                data: b"out".to_vec()
            }
        );
        assert_eq!(
            b,
            Frame::Control {
                kind: GOAWAY,
                flags: 0,
                data: vec![0; 8]
            }
        );
    }

    #[test]
    fn syn_stream_headers_inflate_in_one_zlib_stream() {
        let mut z = Headers::new();
        let f1 = z.syn_stream(1, &[("streamType", "error")]).unwrap();
        let f3 = z.syn_stream(3, &[("streamtype", "stdout")]).unwrap();
        assert_eq!(&f1[..4], &[0x80, 3, 0, 1]);
        assert_eq!(&f1[8..12], &1u32.to_be_bytes());
        // the blocks of both frames are one zlib stream, as a SPDY reader inflates it
        let stream = [&f1[18..], &f3[18..]].concat();
        let mut d = flate2::read::ZlibDecoder::new(&stream[..]);
        let mut out = Vec::new();
        let _ = d.read_to_end(&mut out); // stops at the end of the flushed data
        let want = [
            header_block(&[("streamtype", "error")]),
            header_block(&[("streamtype", "stdout")]),
        ]
        .concat();
        assert_eq!(out, want);
    }
}
