//! TCP connections in an image set, and whether they can come back where
//! the restore puts them.
//!
//! criu restores a dumped connection by binding a new socket to the dumped
//! local address (TCP repair). In a network namespace without that address
//! (a pod moved to a new network) the bind fails and the whole restore with
//! it; `--tcp-close` restores such sockets closed instead, and the
//! application sees the connection end as if the peer had reset it. So the
//! restore reads the connected TCP sockets from the images and tries their
//! local addresses in the container's network namespace first.
//!
//! The images come from a checkpoint the caller chose: the parser takes any
//! bytes, bounds every length and never panics.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd as _;

use super::error::{Error, Result};

/// criu's image magics (criu/include/magic.h).
const IMG_COMMON_MAGIC: u32 = 0x5456_4319;
const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;
const FILES_MAGIC: u32 = 0x5630_3138;
const INETSK_MAGIC: u32 = 0x5644_3851;

/// `file_entry.isk` (images/fdinfo.proto).
const FILE_ENTRY_ISK: u32 = 4;
const IPPROTO_TCP: u64 = 6;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;

/// A connected TCP socket of an image set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The socket's own address (what criu binds at restore).
    pub local: SocketAddr,
    /// The peer's.
    pub remote: SocketAddr,
}

/// The connected TCP sockets (criu's `tcp_connection`: TCP with a peer
/// port) in `files.img` (criu 3.x+) or a separate `inetsk.img` (older).
pub fn connections(files_img: Option<&[u8]>, inetsk_img: Option<&[u8]>) -> Result<Vec<Connection>> {
    let mut out = Vec::new();
    if let Some(data) = files_img {
        for entry in entries(data, FILES_MAGIC, "files.img")? {
            for (field, value) in fields(entry, "files.img")? {
                if let (FILE_ENTRY_ISK, Value::Bytes(isk)) = (field, value) {
                    out.extend(connection(isk)?);
                }
            }
        }
    }
    if let Some(data) = inetsk_img {
        for entry in entries(data, INETSK_MAGIC, "inetsk.img")? {
            out.extend(connection(entry)?);
        }
    }
    Ok(out)
}

/// The local addresses of `conns` that cannot be bound in the network
/// namespace `netns` (`None`: the daemon's own), each once.
pub fn unbindable(netns: Option<&File>, conns: &[Connection]) -> Result<Vec<IpAddr>> {
    let addrs: BTreeSet<IpAddr> = conns.iter().map(|c| c.local.ip()).collect();
    if addrs.is_empty() {
        return Ok(Vec::new());
    }
    let ns = netns.map(|f| f.as_raw_fd());
    // setns(CLONE_NEWNET) changes the calling thread only: a thread of its
    // own keeps the daemon's runtime threads in the daemon's namespace.
    std::thread::scope(|s| {
        s.spawn(move || -> Result<Vec<IpAddr>> {
            if let Some(fd) = ns {
                // SAFETY: plain syscall on a descriptor the caller keeps open.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(Error::io(
                        "joining the container's network namespace",
                        std::io::Error::last_os_error(),
                    ));
                }
            }
            Ok(addrs
                .into_iter()
                .filter(|a| !bindable(*a))
                .collect::<Vec<_>>())
        })
        .join()
        .map_err(|_| {
            Error::io(
                "probing addresses",
                std::io::Error::other("thread panicked"),
            )
        })?
    })
}

/// Whether a socket can bind `addr` here: only "no such address" says no;
/// anything else is criu's to report.
fn bindable(addr: IpAddr) -> bool {
    match TcpListener::bind(SocketAddr::new(addr, 0)) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::EADDRNOTAVAIL),
    }
}

/// How the restore treats the dumped connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// criu --tcp-established.
    pub established: bool,
    /// criu --tcp-close.
    pub close: bool,
}

/// `allow`: the caller lets dumped connections come back (request
/// `tcp_established`); `force_close`: the caller wants them closed
/// (request `tcp_close`). With neither, criu refuses an image set holding
/// connections, naming the option, as runc's restore does.
pub fn plan(conns: &[Connection], missing: &[IpAddr], allow: bool, force_close: bool) -> Plan {
    if conns.is_empty() {
        return Plan {
            established: false,
            close: force_close,
        };
    }
    if force_close || (allow && !missing.is_empty()) {
        return Plan {
            established: false,
            close: true,
        };
    }
    Plan {
        established: allow,
        close: false,
    }
}

fn connection(isk: &[u8]) -> Result<Option<Connection>> {
    let (mut family, mut proto, mut sport, mut dport) = (0u64, 0u64, 0u64, 0u64);
    let (mut src, mut dst) = (Vec::new(), Vec::new());
    for (field, value) in fields(isk, "inet socket entry")? {
        match (field, value) {
            (3, Value::Varint(v)) => family = v,
            (5, Value::Varint(v)) => proto = v,
            (7, Value::Varint(v)) => sport = v,
            (8, Value::Varint(v)) => dport = v,
            (11, v) => words(v, &mut src)?,
            (12, v) => words(v, &mut dst)?,
            _ => {}
        }
    }
    if proto != IPPROTO_TCP || dport == 0 {
        return Ok(None);
    }
    let (Some(l), Some(r)) = (ip(family, &src), ip(family, &dst)) else {
        return Err(Error::InvalidArgument(format!(
            "files.img: a TCP connection with a malformed address (family {family}, {} and {} words)",
            src.len(),
            dst.len()
        )));
    };
    let port = |p: u64| u16::try_from(p).unwrap_or(0);
    Ok(Some(Connection {
        local: SocketAddr::new(l, port(sport)),
        remote: SocketAddr::new(r, port(dport)),
    }))
}

/// criu keeps an address as the kernel's `__be32` words, taken as host
/// integers: their native bytes are the address's bytes.
fn ip(family: u64, w: &[u32]) -> Option<IpAddr> {
    match (family, w.len()) {
        (AF_INET, 1) => Some(IpAddr::V4(Ipv4Addr::from(w[0].to_ne_bytes()))),
        (AF_INET6, 4) => {
            let mut b = [0u8; 16];
            for (i, x) in w.iter().enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(&x.to_ne_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

fn words(v: Value<'_>, out: &mut Vec<u32>) -> Result<()> {
    match v {
        Value::Varint(x) => out.push(x as u32),
        // packed
        Value::Bytes(mut b) => {
            while !b.is_empty() {
                let (x, n) = varint(b).ok_or_else(|| bad("inet socket entry"))?;
                out.push(x as u32);
                b = &b[n..];
            }
        }
        Value::Fixed => {}
    }
    Ok(())
}

/// The protobuf entries of a criu image: magic(s), then `u32` size +
/// message, repeated.
fn entries<'a>(data: &'a [u8], magic: u32, what: &str) -> Result<Vec<&'a [u8]>> {
    let u32_at = |i: usize| -> Option<u32> {
        data.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut pos = match u32_at(0) {
        Some(IMG_COMMON_MAGIC) | Some(IMG_SERVICE_MAGIC) => 4,
        _ => 0,
    };
    if u32_at(pos) != Some(magic) {
        return Err(Error::InvalidArgument(format!(
            "{what} is not a criu image of that kind (magic {:#x?})",
            u32_at(pos)
        )));
    }
    pos += 4;
    let mut out = Vec::new();
    while pos < data.len() {
        let size = u32_at(pos).ok_or_else(|| bad(what))? as usize;
        let entry = data
            .get(pos + 4..pos.saturating_add(4).saturating_add(size))
            .ok_or_else(|| bad(what))?;
        out.push(entry);
        pos += 4 + size;
    }
    Ok(out)
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn fields<'a>(mut b: &'a [u8], what: &str) -> Result<Vec<(u32, Value<'a>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (key, n) = varint(b).ok_or_else(|| bad(what))?;
        b = &b[n..];
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => {
                let (v, n) = varint(b).ok_or_else(|| bad(what))?;
                b = &b[n..];
                Value::Varint(v)
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                b = b.get(n..).ok_or_else(|| bad(what))?;
                Value::Fixed
            }
            2 => {
                let (len, n) = varint(b).ok_or_else(|| bad(what))?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| l.checked_add(n))
                    .ok_or_else(|| bad(what))?;
                let v = b.get(n..end).ok_or_else(|| bad(what))?;
                b = &b[end..];
                Value::Bytes(v)
            }
            _ => return Err(bad(what)),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn bad(what: &str) -> Error {
    Error::InvalidArgument(format!("{what}: truncated or malformed criu image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn vfield(out: &mut Vec<u8>, f: u32, v: u64) {
        put_varint(out, u64::from(f) << 3);
        put_varint(out, v);
    }
    fn bfield(out: &mut Vec<u8>, f: u32, b: &[u8]) {
        put_varint(out, u64::from(f) << 3 | 2);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    fn isk(family: u64, proto: u64, sport: u64, dport: u64, src: &[u32], dst: &[u32]) -> Vec<u8> {
        let mut m = Vec::new();
        vfield(&mut m, 1, 7);
        vfield(&mut m, 3, family);
        vfield(&mut m, 5, proto);
        vfield(&mut m, 6, 1);
        vfield(&mut m, 7, sport);
        vfield(&mut m, 8, dport);
        for w in src {
            vfield(&mut m, 11, u64::from(*w));
        }
        for w in dst {
            vfield(&mut m, 12, u64::from(*w));
        }
        bfield(&mut m, 13, &[8, 0]); // fown: ignored
        m
    }
    fn image(magic: u32, msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut d = IMG_COMMON_MAGIC.to_le_bytes().to_vec();
        d.extend(magic.to_le_bytes());
        for m in msgs {
            d.extend((m.len() as u32).to_le_bytes());
            d.extend(m);
        }
        d
    }
    fn be(a: [u8; 4]) -> u32 {
        u32::from_ne_bytes(a)
    }

    #[test]
    fn connected_tcp_sockets_are_read_from_files_img() {
        let conn = isk(
            2,
            6,
            40000,
            18090,
            &[be([10, 99, 0, 2])],
            &[be([10, 99, 0, 1])],
        );
        let listener = isk(2, 6, 18090, 0, &[be([0, 0, 0, 0])], &[be([0, 0, 0, 0])]);
        let udp = isk(2, 17, 5353, 53, &[be([10, 0, 0, 1])], &[be([10, 0, 0, 2])]);
        let v6 = isk(
            10,
            6,
            1,
            2,
            &[0, 0, 0, be([0, 0, 0, 1])],
            &[0, 0, 0, be([0, 0, 0, 1])],
        );
        let mut files = Vec::new();
        let mut reg = Vec::new();
        vfield(&mut reg, 1, 1); // type REG, no isk
        files.push(reg);
        for m in [conn, listener, udp, v6] {
            let mut fe = Vec::new();
            vfield(&mut fe, 1, 2);
            bfield(&mut fe, FILE_ENTRY_ISK, &m);
            files.push(fe);
        }
        let got = connections(Some(&image(FILES_MAGIC, &files)), None).unwrap();
        assert_eq!(
            got,
            vec![
                Connection {
                    local: "10.99.0.2:40000".parse().unwrap(),
                    remote: "10.99.0.1:18090".parse().unwrap()
                },
                Connection {
                    local: "[::1]:1".parse().unwrap(),
                    remote: "[::1]:2".parse().unwrap()
                },
            ]
        );
        // The older layout: inet sockets in an image of their own.
        let old = isk(2, 6, 1, 2, &[be([127, 0, 0, 1])], &[be([127, 0, 0, 1])]);
        let got = connections(None, Some(&image(INETSK_MAGIC, &[old]))).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(connections(None, None).unwrap(), vec![]);
    }

    #[test]
    fn hostile_images_are_errors_not_panics() {
        let good = image(FILES_MAGIC, &[vec![8, 2]]);
        assert!(connections(Some(&good), None).is_ok());
        // every truncation of a valid image
        let conn = isk(2, 6, 1, 2, &[be([1, 2, 3, 4])], &[be([5, 6, 7, 8])]);
        let mut fe = Vec::new();
        bfield(&mut fe, FILE_ENTRY_ISK, &conn);
        let full = image(FILES_MAGIC, &[fe]);
        for n in 0..full.len() {
            let _ = connections(Some(&full[..n]), None);
        }
        assert!(connections(Some(&image(INETSK_MAGIC, &[])), None).is_err());
        let mut huge = image(FILES_MAGIC, &[]);
        huge.extend(u32::MAX.to_le_bytes());
        assert!(connections(Some(&huge), None).is_err());
        // a varint length beyond the buffer
        let mut m = vec![(FILE_ENTRY_ISK << 3 | 2) as u8];
        m.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(connections(Some(&image(FILES_MAGIC, &[m])), None).is_err());
        // a connection with a v4 family and a v6-sized address
        let odd = isk(2, 6, 1, 2, &[1, 2, 3, 4], &[1]);
        let mut fe = Vec::new();
        bfield(&mut fe, FILE_ENTRY_ISK, &odd);
        let e = connections(Some(&image(FILES_MAGIC, &[fe])), None).unwrap_err();
        assert!(e.to_string().contains("malformed address"), "{e}");
    }

    #[test]
    fn the_plan_restores_connections_where_their_address_exists() {
        let c = vec![Connection {
            local: "10.99.0.2:40000".parse().unwrap(),
            remote: "10.99.0.1:18090".parse().unwrap(),
        }];
        let gone = vec!["10.99.0.2".parse().unwrap()];
        let est = Plan {
            established: true,
            close: false,
        };
        let close = Plan {
            established: false,
            close: true,
        };
        assert_eq!(plan(&c, &[], true, false), est);
        assert_eq!(plan(&c, &gone, true, false), close);
        assert_eq!(plan(&c, &[], true, true), close);
        // not allowed: criu refuses, naming --tcp-established
        assert_eq!(plan(&c, &[], false, false), Plan::default());
        // nothing connected: no option needed
        assert_eq!(plan(&[], &[], true, false), Plan::default());
    }

    #[test]
    fn loopback_binds_and_a_foreign_address_does_not() {
        let c = |ip: &str| Connection {
            local: SocketAddr::new(ip.parse().unwrap(), 1),
            remote: "127.0.0.1:2".parse().unwrap(),
        };
        // TEST-NET-3 is assigned to no interface of a test machine.
        let missing = unbindable(None, &[c("127.0.0.1"), c("203.0.113.77")]).unwrap();
        assert_eq!(missing, vec!["203.0.113.77".parse::<IpAddr>().unwrap()]);
    }
}
