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
//! bytes, bounds every length, reads the files entry by entry and never
//! panics.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Read as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd as _;

use super::criu_image::{fields, magic, repeated_varints, EntryReader, Value};
use super::error::{Error, Result};
use super::image_claims::Source;
use super::limits::{Limits, MAX_ENTRY};

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
/// port) in `files.img` (criu 3.x+) or a separate `inetsk.img` (older),
/// read entry by entry, each file within `limits.metadata`.
pub fn connections(src: &dyn Source, limits: &Limits) -> Result<Vec<Connection>> {
    let mut out = Vec::new();
    for (name, magic) in [("files.img", magic::FILES), ("inetsk.img", magic::INETSK)] {
        let Some((input, size)) = src.open(name)? else {
            continue;
        };
        let what = format!("{}/{name}", src.what());
        limits.check_metadata(&src.what(), name, size)?;
        let mut r = EntryReader::new(
            BufReader::new(input.take(size)),
            magic,
            what.clone(),
            MAX_ENTRY,
        )?;
        while let Some(entry) = r.next_entry()? {
            if magic == magic::INETSK {
                out.extend(connection(entry, &what)?);
                continue;
            }
            for f in fields(entry) {
                let (field, value) = f.map_err(|_| bad(&what))?;
                if let (FILE_ENTRY_ISK, Value::Bytes(isk)) = (field, value) {
                    out.extend(connection(isk, &what)?);
                }
            }
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
    let ns = netns.map(|f| f.as_fd());
    // setns(CLONE_NEWNET) changes the calling thread only: a thread of its
    // own keeps the daemon's runtime threads in the daemon's namespace.
    std::thread::scope(|s| {
        s.spawn(move || -> Result<Vec<IpAddr>> {
            if let Some(fd) = ns {
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::io("joining the container's network namespace", e))?;
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

fn connection(isk: &[u8], what: &str) -> Result<Option<Connection>> {
    let (mut family, mut proto, mut sport, mut dport) = (0u64, 0u64, 0u64, 0u64);
    let (mut src, mut dst) = (Vec::new(), Vec::new());
    for f in fields(isk) {
        let (field, value) = f.map_err(|_| bad(what))?;
        match (field, value) {
            (3, Value::Varint(v)) => family = v,
            (5, Value::Varint(v)) => proto = v,
            (7, Value::Varint(v)) => sport = v,
            (8, Value::Varint(v)) => dport = v,
            (11, v) => repeated_varints(v, &mut src).map_err(|_| bad(what))?,
            (12, v) => repeated_varints(v, &mut dst).map_err(|_| bad(what))?,
            _ => {}
        }
    }
    if proto != IPPROTO_TCP || dport == 0 {
        return Ok(None);
    }
    let (Some(l), Some(r)) = (ip(family, &src), ip(family, &dst)) else {
        return Err(Error::InvalidArgument(format!(
            "{what}: a TCP connection with a malformed address (family {family}, {} and {} words)",
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
fn ip(family: u64, w: &[u64]) -> Option<IpAddr> {
    let word = |x: u64| u32::try_from(x).ok().map(u32::to_ne_bytes);
    match (family, w.len()) {
        (AF_INET, 1) => Some(IpAddr::V4(Ipv4Addr::from(word(w[0])?))),
        (AF_INET6, 4) => {
            let mut b = [0u8; 16];
            for (i, x) in w.iter().enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(*x)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
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
        let mut d = magic::IMG_COMMON.to_le_bytes().to_vec();
        d.extend(magic.to_le_bytes());
        for m in msgs {
            d.extend((m.len() as u32).to_le_bytes());
            d.extend(m);
        }
        d
    }
    fn connections_in(files: Option<&[u8]>, inetsk: Option<&[u8]>) -> Result<Vec<Connection>> {
        let mut src = crate::agent::image_claims::MemSource::default();
        if let Some(f) = files {
            src.0.insert("files.img".into(), f.to_vec());
        }
        if let Some(i) = inetsk {
            src.0.insert("inetsk.img".into(), i.to_vec());
        }
        connections(&src, &Limits::default())
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
        let got = connections_in(Some(&image(magic::FILES, &files)), None).unwrap();
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
        let got = connections_in(None, Some(&image(magic::INETSK, &[old]))).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(connections_in(None, None).unwrap(), vec![]);
    }

    #[test]
    fn hostile_images_are_errors_not_panics() {
        let good = image(magic::FILES, &[vec![8, 2]]);
        assert!(connections_in(Some(&good), None).is_ok());
        // every truncation of a valid image
        let conn = isk(2, 6, 1, 2, &[be([1, 2, 3, 4])], &[be([5, 6, 7, 8])]);
        let mut fe = Vec::new();
        bfield(&mut fe, FILE_ENTRY_ISK, &conn);
        let full = image(magic::FILES, &[fe]);
        for n in 0..full.len() {
            let _ = connections_in(Some(&full[..n]), None);
        }
        assert!(connections_in(Some(&image(magic::INETSK, &[])), None).is_err());
        let mut huge = image(magic::FILES, &[]);
        huge.extend(u32::MAX.to_le_bytes());
        assert!(connections_in(Some(&huge), None).is_err());
        // a varint length beyond the buffer
        let mut m = vec![(FILE_ENTRY_ISK << 3 | 2) as u8];
        m.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(connections_in(Some(&image(magic::FILES, &[m])), None).is_err());
        // a connection with a v4 family and a v6-sized address
        let odd = isk(2, 6, 1, 2, &[1, 2, 3, 4], &[1]);
        let mut fe = Vec::new();
        bfield(&mut fe, FILE_ENTRY_ISK, &odd);
        let e = connections_in(Some(&image(magic::FILES, &[fe])), None).unwrap_err();
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
