//! A reader of tar streams that holds nothing it reads to the size the
//! stream claims: headers are 512-byte blocks, PAX records and GNU long
//! names are read into memory only up to [`MAX_META`]. It parses the forms
//! Go's `archive/tar` writes (containerd's diffs): ustar, PAX (`path`,
//! `linkpath`, `size`, `uid`, `gid`, `mtime`) and GNU long names; numbers
//! in octal or base-256. It interprets nothing: what an entry may do to a
//! filesystem is [`super::rootfs_diff`]'s to judge.

use std::io::Read;

use super::error::{Error, Result};

/// The most a PAX header or a GNU long name may hold.
pub const MAX_META: u64 = 1 << 20;

const BLOCK: usize = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
    /// Any other type flag.
    Other(u8),
}

/// One entry's header, with its PAX and GNU extensions folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub link: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
}

/// Reads entries one after the other; the caller reads an entry's data
/// through [`Reader::data`] before asking for the next.
pub struct Reader<R: Read> {
    inner: R,
    /// Unread data of the current entry, then its padding.
    left: u64,
    pad: u64,
    done: bool,
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("not a valid tar stream: {what}"))
}

fn io(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad("it ends in the middle of an entry"),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => bad(e),
        _ => Error::io("read the tar stream", e),
    }
}

/// A numeric field: octal text, or base-256 (high bit of the first byte).
fn number(field: &[u8], what: &str) -> Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(bad(format!("negative {what}")));
        }
        let mut v: u64 = (field[0] & 0x3f) as u64;
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(b as u64))
                .ok_or_else(|| bad(format!("{what} too large")))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| bad(format!("{what} is not a number")))?;
    u64::from_str_radix(s, 8).map_err(|_| bad(format!("{what} {s:?} is not an octal number")))
}

fn text(field: &[u8]) -> Result<String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8(field[..end].to_vec()).map_err(|_| bad("a name is not UTF-8"))
}

fn id(v: u64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| bad(format!("{what} {v} out of range")))
}

/// Overrides a PAX header sets for the next entry.
#[derive(Default)]
struct Pax {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<i64>,
}

fn parse_pax(data: &[u8]) -> Result<Pax> {
    let mut pax = Pax::default();
    let mut rest = data;
    while !rest.is_empty() {
        // "<len> <key>=<value>\n", len counting the whole record.
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("a PAX record has no length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a PAX record's length is not a number"))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad("a PAX record's length does not match it"));
        }
        let rec = &rest[sp + 1..len - 1];
        rest = &rest[len..];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("a PAX record has no '='"))?;
        let (key, value) = (&rec[..eq], &rec[eq + 1..]);
        let value_text =
            || String::from_utf8(value.to_vec()).map_err(|_| bad("a PAX value is not UTF-8"));
        let value_num = |what: &str| -> Result<u64> {
            value_text()?
                .parse()
                .map_err(|_| bad(format!("PAX {what} is not a number")))
        };
        match key {
            b"path" => pax.path = Some(value_text()?),
            b"linkpath" => pax.link = Some(value_text()?),
            b"size" => pax.size = Some(value_num("size")?),
            b"uid" => pax.uid = Some(value_num("uid")?),
            b"gid" => pax.gid = Some(value_num("gid")?),
            b"mtime" => {
                let t = value_text()?;
                let secs = t.split('.').next().unwrap_or("");
                pax.mtime = Some(secs.parse().map_err(|_| bad("PAX mtime is not a number"))?);
            }
            // Times, xattrs, vendor records: nothing kata-cr applies.
            _ => {}
        }
    }
    Ok(pax)
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            left: 0,
            pad: 0,
            done: false,
        }
    }

    /// The current entry's data (what [`Reader::next_entry`] returned last).
    pub fn data(&mut self) -> impl Read + '_ {
        Counted {
            r: &mut self.inner,
            left: &mut self.left,
        }
    }

    fn skip_rest(&mut self) -> Result<()> {
        let n = self.left + self.pad;
        let copied =
            std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink()).map_err(io)?;
        if copied != n {
            return Err(bad("it ends in the middle of an entry"));
        }
        self.left = 0;
        self.pad = 0;
        Ok(())
    }

    fn block(&mut self) -> Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut b[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(bad("it ends in the middle of a header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(Some(b))
    }

    fn read_meta(&mut self, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_META {
            return Err(bad(format!(
                "a {what} of {size} bytes (kata-cr reads at most {MAX_META})"
            )));
        }
        let mut v = vec![0u8; size as usize];
        self.inner.read_exact(&mut v).map_err(io)?;
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        std::io::copy(&mut (&mut self.inner).take(pad), &mut std::io::sink()).map_err(io)?;
        Ok(v)
    }

    /// The next entry, `None` at the end of the archive (two zero blocks,
    /// or the end of the stream after at least one).
    pub fn next_entry(&mut self) -> Result<Option<Header>> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pax = Pax::default();
        let (mut long_name, mut long_link) = (None, None);
        loop {
            let Some(b) = self.block()? else {
                return Err(bad("it ends without an end-of-archive marker"));
            };
            if b.iter().all(|&x| x == 0) {
                // The second zero block may be missing in the wild.
                let _ = self.block();
                self.done = true;
                return Ok(None);
            }
            let sum = number(&b[148..156], "checksum")?;
            let computed: u64 = b
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    if (148..156).contains(&i) {
                        b' ' as u64
                    } else {
                        x as u64
                    }
                })
                .sum();
            if sum != computed {
                return Err(bad("a header's checksum does not match"));
            }
            let flag = b[156];
            let size = number(&b[124..136], "size")?;
            match flag {
                b'x' => {
                    let data = self.read_meta(size, "PAX header")?;
                    let p = parse_pax(&data)?;
                    pax = Pax {
                        path: p.path.or(pax.path),
                        link: p.link.or(pax.link),
                        size: p.size.or(pax.size),
                        uid: p.uid.or(pax.uid),
                        gid: p.gid.or(pax.gid),
                        mtime: p.mtime.or(pax.mtime),
                    };
                    continue;
                }
                b'g' => {
                    // Global PAX headers: ignored, as containerd does.
                    self.read_meta(size, "global PAX header")?;
                    continue;
                }
                b'L' | b'K' => {
                    let data = self.read_meta(size, "GNU long name")?;
                    let s = text(&data)?;
                    if flag == b'L' {
                        long_name = Some(s);
                    } else {
                        long_link = Some(s);
                    }
                    continue;
                }
                _ => {}
            }
            let ustar = &b[257..263] == b"ustar\0" || &b[257..263] == b"ustar ";
            let mut name = text(&b[0..100])?;
            if ustar && &b[257..263] == b"ustar\0" {
                let prefix = text(&b[345..500])?;
                if !prefix.is_empty() {
                    name = format!("{prefix}/{name}");
                }
            }
            let kind = match flag {
                b'0' | 0 | b'7' => Kind::File,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' => Kind::Dir,
                b'6' => Kind::Fifo,
                f => Kind::Other(f),
            };
            let size = pax.size.unwrap_or(size);
            let h = Header {
                name: pax.path.or(long_name).unwrap_or(name),
                link: pax
                    .link
                    .or(long_link)
                    .map_or_else(|| text(&b[157..257]), Ok)?,
                kind,
                mode: number(&b[100..108], "mode")? as u32 & 0o7777,
                uid: id(
                    pax.uid.map_or_else(|| number(&b[108..116], "uid"), Ok)?,
                    "uid",
                )?,
                gid: id(
                    pax.gid.map_or_else(|| number(&b[116..124], "gid"), Ok)?,
                    "gid",
                )?,
                size,
                mtime: pax
                    .mtime
                    .map_or_else(|| number(&b[136..148], "mtime").map(|v| v as i64), Ok)?,
            };
            // Only regular files carry data; a link's size field is not
            // data to skip in Go's writer, nor in POSIX.
            let data = match h.kind {
                Kind::File | Kind::Other(_) => size,
                _ => 0,
            };
            self.left = data;
            self.pad = (BLOCK as u64 - data % BLOCK as u64) % BLOCK as u64;
            return Ok(Some(h));
        }
    }
}

/// An entry's data: at most its size, and an error if the stream ends first.
struct Counted<'a, R: Read> {
    r: &'a mut R,
    left: &'a mut u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if *self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(*self.left).unwrap_or(usize::MAX));
        let n = self.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        *self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A test archive builder: ustar headers, PAX for long names.
    #[derive(Default)]
    pub struct Tar(pub Vec<u8>);

    impl Tar {
        pub fn header(&mut self, name: &str, flag: u8, mode: u32, size: u64, link: &str) {
            let mut b = [0u8; BLOCK];
            b[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
            let oct = |b: &mut [u8], v: u64| {
                let s = format!("{:0w$o}\0", v, w = b.len() - 1);
                if s.len() == b.len() {
                    b.copy_from_slice(s.as_bytes());
                } else {
                    // base-256, as GNU and Go write numbers too large for octal
                    b.fill(0);
                    b[0] = 0x80;
                    let n = b.len();
                    b[n - 8..].copy_from_slice(&v.to_be_bytes());
                }
            };
            oct(&mut b[100..108], mode as u64);
            // The test's own ids: unit tests need not run as root.
            oct(&mut b[108..116], nix::unistd::geteuid().as_raw() as u64);
            oct(&mut b[116..124], nix::unistd::getegid().as_raw() as u64);
            oct(&mut b[124..136], size);
            oct(&mut b[136..148], 1_700_000_000);
            b[156] = flag;
            b[157..157 + link.len()].copy_from_slice(link.as_bytes());
            b[257..263].copy_from_slice(b"ustar\0");
            b[263..265].copy_from_slice(b"00");
            b[148..156].copy_from_slice(b"        ");
            let sum: u64 = b.iter().map(|&x| x as u64).sum();
            let s = format!("{sum:06o}\0 ");
            b[148..156].copy_from_slice(s.as_bytes());
            self.0.extend_from_slice(&b);
        }

        fn data(&mut self, d: &[u8]) {
            self.0.extend_from_slice(d);
            let pad = (BLOCK - d.len() % BLOCK) % BLOCK;
            self.0.extend(std::iter::repeat_n(0u8, pad));
        }

        pub fn pax(mut self, records: &[(&str, &str)]) -> Self {
            let mut body = Vec::new();
            for (k, v) in records {
                let core = format!(" {k}={v}\n");
                let mut len = core.len() + 1;
                while format!("{len}{core}").len() != len {
                    len += 1;
                }
                body.extend_from_slice(format!("{len}{core}").as_bytes());
            }
            self.header("PaxHeader", b'x', 0o644, body.len() as u64, "");
            self.data(&body);
            self
        }

        pub fn file(mut self, name: &str, mode: u32, d: &[u8]) -> Self {
            self.header(name, b'0', mode, d.len() as u64, "");
            self.data(d);
            self
        }

        /// A header claiming `size` bytes, followed by nothing.
        pub fn file_claiming(mut self, name: &str, size: u64) -> Self {
            self.header(name, b'0', 0o644, size, "");
            self
        }

        pub fn dir(mut self, name: &str, mode: u32) -> Self {
            self.header(name, b'5', mode, 0, "");
            self
        }

        pub fn symlink(mut self, name: &str, target: &str) -> Self {
            self.header(name, b'2', 0o777, 0, target);
            self
        }

        pub fn hardlink(mut self, name: &str, target: &str) -> Self {
            self.header(name, b'1', 0o644, 0, target);
            self
        }

        pub fn node(mut self, name: &str, flag: u8) -> Self {
            self.header(name, flag, 0o666, 0, "");
            self
        }

        pub fn end(mut self) -> Vec<u8> {
            self.0.extend_from_slice(&[0u8; 2 * BLOCK]);
            self.0
        }
    }

    fn all(bytes: &[u8]) -> Result<Vec<(Header, Vec<u8>)>> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(h) = r.next_entry()? {
            let mut d = Vec::new();
            r.data().read_to_end(&mut d).map_err(io)?;
            out.push((h, d));
        }
        Ok(out)
    }

    #[test]
    fn reads_ustar_pax_and_data() {
        let long = format!("d/{}", "n".repeat(150));
        let t = Tar::default()
            .dir("d/", 0o755)
            .file("d/a", 0o4755, b"hello")
            .pax(&[("path", &long), ("uid", "1000")])
            .file("ignored", 0o600, &[1u8; 700])
            .symlink("d/l", "/etc/passwd")
            .end();
        let e = all(&t).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!((e[0].0.kind, e[0].0.name.as_str()), (Kind::Dir, "d/"));
        assert_eq!((e[1].0.mode, e[1].1.as_slice()), (0o4755, &b"hello"[..]));
        assert_eq!(e[2].0.name, long);
        assert_eq!((e[2].0.uid, e[2].1.len()), (1000, 700));
        assert_eq!(
            (e[3].0.kind, e[3].0.link.as_str()),
            (Kind::Symlink, "/etc/passwd")
        );
    }

    #[test]
    fn unread_data_is_skipped() {
        let t = Tar::default()
            .file("a", 0o644, &[7u8; 1000])
            .file("b", 0o644, b"x")
            .end();
        let mut r = Reader::new(&t[..]);
        assert_eq!(r.next_entry().unwrap().unwrap().name, "a");
        assert_eq!(r.next_entry().unwrap().unwrap().name, "b");
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn truncated_and_corrupt_streams_are_refused() {
        let t = Tar::default().file_claiming("a", 10_000).end();
        let e = all(&t).unwrap_err();
        assert!(e.to_string().contains("ends in the middle"), "{e}");
        let mut t = Tar::default().file("a", 0o644, b"x").end();
        t[0] = b'b';
        let e = all(&t).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        let t = Tar::default().file("a", 0o644, b"x").0;
        assert!(all(&t).unwrap_err().to_string().contains("end-of-archive"));
    }

    #[test]
    fn huge_pax_headers_are_not_read_into_memory() {
        let mut t = Tar::default();
        t.header("PaxHeader", b'x', 0o644, 1 << 40, "");
        let e = all(&t.0).unwrap_err();
        assert!(e.to_string().contains("PAX header"), "{e}");
    }
}
