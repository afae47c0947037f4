//! criu's image files as untrusted input: a streaming reader of their
//! entries and the part of protobuf's wire format kata-cr decodes.
//!
//! An image file (criu/include/magic.h, criu/image.c) is an optional
//! `IMG_COMMON_MAGIC` or `IMG_SERVICE_MAGIC`, the image's own magic (all
//! little-endian `u32`), then entries: a `u32` size and that many bytes of
//! one protobuf message. Image sets come from archives and registries, so
//! the reader never trusts a size: an entry larger than the caller's bound
//! is an error before anything is allocated for it, and a file is read one
//! entry at a time into one reused buffer, whatever its length.
//!
//! [`Fields`] walks a message's fields without copying; [`RawMessage`] is
//! an owned, editable form (the test tool that crafts hostile images and
//! the unit tests write images with it).

use std::io::Read;

use super::error::{Error, Result};

/// Magic numbers of the images kata-cr reads (criu/include/magic.h).
pub mod magic {
    /// First word of most images.
    pub const IMG_COMMON: u32 = 0x5456_4319;
    /// First word of service images (inventory, stats...).
    pub const IMG_SERVICE: u32 = 0x5510_5940;
    pub const INVENTORY: u32 = 0x5831_3116;
    pub const PSTREE: u32 = 0x5027_3030;
    pub const CORE: u32 = 0x5505_3847;
    pub const IDS: u32 = 0x5443_2030;
    pub const CREDS: u32 = 0x5402_3547;
    pub const MNTS: u32 = 0x5556_3928;
    pub const NETNS: u32 = 0x5593_3752;
    pub const PIDNS: u32 = 0x6115_7326;
    pub const FILES: u32 = 0x5630_3138;
    pub const INETSK: u32 = 0x5644_3851;
    pub const APPARMOR: u32 = 0x5942_3047;
    pub const USERNS: u32 = 0x5547_4906;
}

/// A field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, string, sub-message or packed repeated scalars.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The value of a varint field; `None` for another wire type.
    pub fn varint(self) -> Option<u64> {
        match self {
            Value::Varint(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes of a length-delimited field; `None` for another wire type.
    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Decodes a base-128 varint at the start of `b`: the value and its length.
/// At most 10 bytes are looked at; a longer or unterminated one is `None`.
pub fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The fields of one protobuf message, in wire order. Yields an error (once,
/// then ends) at the first malformed byte.
pub struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Iterates over the fields of `msg`.
pub fn fields(msg: &[u8]) -> Fields<'_> {
    Fields {
        rest: msg,
        failed: false,
    }
}

/// Why a message could not be decoded (the caller names the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl<'a> Iterator for Fields<'a> {
    type Item = std::result::Result<(u32, Value<'a>), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.field();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> std::result::Result<(u32, Value<'a>), Malformed> {
        let b = self.rest;
        let (key, n) = varint(b).ok_or(Malformed)?;
        let b = &b[n..];
        let number = u32::try_from(key >> 3).map_err(|_| Malformed)?;
        if number == 0 {
            return Err(Malformed);
        }
        let (value, rest) = match key & 7 {
            0 => {
                let (v, n) = varint(b).ok_or(Malformed)?;
                (Value::Varint(v), &b[n..])
            }
            1 => {
                let w = b.get(..8).ok_or(Malformed)?;
                let v = u64::from_le_bytes(w.try_into().map_err(|_| Malformed)?);
                (Value::Fixed64(v), &b[8..])
            }
            2 => {
                let (len, n) = varint(b).ok_or(Malformed)?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| l.checked_add(n))
                    .ok_or(Malformed)?;
                let v = b.get(n..end).ok_or(Malformed)?;
                (Value::Bytes(v), &b[end..])
            }
            5 => {
                let w = b.get(..4).ok_or(Malformed)?;
                let v = u32::from_le_bytes(w.try_into().map_err(|_| Malformed)?);
                (Value::Fixed32(v), &b[4..])
            }
            // 3 and 4 are deprecated groups, which no criu image uses.
            _ => return Err(Malformed),
        };
        self.rest = rest;
        Ok((number, value))
    }
}

/// The values of a repeated integer field occurrence, packed or not.
pub fn repeated_varints(v: Value<'_>, out: &mut Vec<u64>) -> std::result::Result<(), Malformed> {
    match v {
        Value::Varint(x) => out.push(x),
        Value::Bytes(mut b) => {
            while !b.is_empty() {
                let (x, n) = varint(b).ok_or(Malformed)?;
                out.push(x);
                b = &b[n..];
            }
        }
        Value::Fixed32(x) => out.push(u64::from(x)),
        Value::Fixed64(x) => out.push(x),
    }
    Ok(())
}

/// Reads an image file one entry at a time.
pub struct EntryReader<R> {
    input: R,
    what: String,
    max_entry: usize,
    buf: Vec<u8>,
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on EOF before the first one.
fn read_exact_or_eof(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<R: Read> EntryReader<R> {
    /// Checks the header of the image read from `input` (its magic must be
    /// `magic`); entries longer than `max_entry` bytes will be refused.
    /// `what` names the image in errors.
    pub fn new(
        mut input: R,
        magic: u32,
        what: impl Into<String>,
        max_entry: usize,
    ) -> Result<Self> {
        let what = what.into();
        let mut word = [0u8; 4];
        let mut read_word = |input: &mut R| -> Result<u32> {
            match read_exact_or_eof(input, &mut word) {
                Ok(true) => Ok(u32::from_le_bytes(word)),
                Ok(false) => Err(Error::InvalidArgument(format!(
                    "{what}: empty file, not a criu image"
                ))),
                Err(e) => Err(read_error(&what, e)),
            }
        };
        let mut first = read_word(&mut input)?;
        if first == magic::IMG_COMMON || first == magic::IMG_SERVICE {
            first = read_word(&mut input)?;
        }
        if first != magic {
            return Err(Error::InvalidArgument(format!(
                "{what}: not the criu image it should be (magic {first:#010x}, want {magic:#010x})"
            )));
        }
        Ok(EntryReader {
            input,
            what,
            max_entry,
            buf: Vec::new(),
        })
    }

    /// The next entry, or `None` at the end of the file.
    pub fn next_entry(&mut self) -> Result<Option<&[u8]>> {
        let mut size = [0u8; 4];
        match read_exact_or_eof(&mut self.input, &mut size) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err(read_error(&self.what, e)),
        }
        let size = u32::from_le_bytes(size) as usize;
        if size > self.max_entry {
            return Err(Error::InvalidArgument(format!(
                "{}: an entry of {size} bytes, over the {} bytes kata-cr accepts for one entry",
                self.what, self.max_entry
            )));
        }
        self.buf.clear();
        self.buf.resize(size, 0);
        match read_exact_or_eof(&mut self.input, &mut self.buf) {
            Ok(true) => Ok(Some(&self.buf)),
            Ok(false) if size == 0 => Ok(Some(&self.buf)),
            Ok(false) => Err(truncated(&self.what)),
            Err(e) => Err(read_error(&self.what, e)),
        }
    }

    /// The image's name, for errors.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// An error about this image's content.
    pub fn malformed(&self, detail: &str) -> Error {
        Error::InvalidArgument(format!("{}: malformed criu image ({detail})", self.what))
    }
}

fn truncated(what: &str) -> Error {
    Error::InvalidArgument(format!("{what}: truncated criu image"))
}

fn read_error(what: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => truncated(what),
        _ => Error::io(format!("reading {what}"), e),
    }
}

/// A message as an editable list of fields, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawMessage {
    /// `(number, value)`; values of wire type 2 own their bytes.
    pub fields: Vec<(u32, RawValue)>,
}

/// An owned field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
    Fixed32(u32),
}

impl RawMessage {
    /// Decodes `msg`.
    pub fn parse(msg: &[u8]) -> std::result::Result<Self, Malformed> {
        let mut out = RawMessage::default();
        for f in fields(msg) {
            let (n, v) = f?;
            out.fields.push((
                n,
                match v {
                    Value::Varint(x) => RawValue::Varint(x),
                    Value::Fixed64(x) => RawValue::Fixed64(x),
                    Value::Bytes(b) => RawValue::Bytes(b.to_vec()),
                    Value::Fixed32(x) => RawValue::Fixed32(x),
                },
            ));
        }
        Ok(out)
    }

    /// The first value of field `n`.
    pub fn get(&self, n: u32) -> Option<&RawValue> {
        self.fields.iter().find(|(f, _)| *f == n).map(|(_, v)| v)
    }

    /// A string or bytes field, as text.
    pub fn get_str(&self, n: u32) -> Option<String> {
        match self.get(n)? {
            RawValue::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Removes every occurrence of field `n`.
    pub fn remove(&mut self, n: u32) -> &mut Self {
        self.fields.retain(|(f, _)| *f != n);
        self
    }

    /// Sets field `n` to `v` (replacing every occurrence; appended if absent).
    pub fn set(&mut self, n: u32, v: RawValue) -> &mut Self {
        match self.fields.iter().position(|(f, _)| *f == n) {
            Some(i) => {
                self.fields[i].1 = v;
                let mut seen = false;
                self.fields.retain(|(f, _)| {
                    if *f != n {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
            }
            None => self.fields.push((n, v)),
        }
        self
    }

    /// Appends one occurrence of field `n` (a repeated field).
    pub fn push(&mut self, n: u32, v: RawValue) -> &mut Self {
        self.fields.push((n, v));
        self
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in &self.fields {
            let key = u64::from(*n) << 3;
            match v {
                RawValue::Varint(x) => {
                    put_varint(&mut out, key);
                    put_varint(&mut out, *x);
                }
                RawValue::Fixed64(x) => {
                    put_varint(&mut out, key | 1);
                    out.extend_from_slice(&x.to_le_bytes());
                }
                RawValue::Bytes(b) => {
                    put_varint(&mut out, key | 2);
                    put_varint(&mut out, b.len() as u64);
                    out.extend_from_slice(b);
                }
                RawValue::Fixed32(x) => {
                    put_varint(&mut out, key | 5);
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        out
    }
}

/// Appends the varint encoding of `v`.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
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

/// A whole image file: `IMG_COMMON_MAGIC`, `magic`, the entries.
pub fn encode_image<'a>(magic: u32, entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = magic::IMG_COMMON.to_le_bytes().to_vec();
    out.extend_from_slice(&magic.to_le_bytes());
    for e in entries {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> RawMessage {
        let mut m = RawMessage::default();
        m.push(1, RawValue::Varint(300))
            .push(2, RawValue::Bytes(b"/dev/shm".to_vec()))
            .push(3, RawValue::Fixed32(7))
            .push(4, RawValue::Fixed64(u64::MAX));
        m
    }

    #[test]
    fn messages_round_trip_and_edit() {
        let m = msg();
        let back = RawMessage::parse(&m.encode()).unwrap();
        assert_eq!(back, m);
        let mut e = back;
        e.set(2, RawValue::Bytes(b"/host".to_vec()))
            .remove(3)
            .set(9, RawValue::Varint(1));
        assert_eq!(e.get_str(2).as_deref(), Some("/host"));
        assert!(e.get(3).is_none());
        assert_eq!(e.get(9), Some(&RawValue::Varint(1)));
    }

    #[test]
    fn an_image_is_read_entry_by_entry() {
        let a = msg().encode();
        let b = vec![8, 1];
        let img = encode_image(magic::MNTS, [a.as_slice(), b.as_slice(), &[]]);
        let mut r =
            EntryReader::new(img.as_slice(), magic::MNTS, "mountpoints-1.img", 1024).unwrap();
        assert_eq!(r.next_entry().unwrap(), Some(a.as_slice()));
        assert_eq!(r.next_entry().unwrap(), Some(b.as_slice()));
        assert_eq!(r.next_entry().unwrap(), Some(&[][..]));
        assert_eq!(r.next_entry().unwrap(), None);
        // Without the common magic (older images), too.
        let bare = &img[4..];
        let mut r = EntryReader::new(bare, magic::MNTS, "x", 1024).unwrap();
        assert!(r.next_entry().unwrap().is_some());
    }

    #[test]
    fn bad_headers_sizes_and_truncations_are_errors_naming_the_image() {
        let a = msg().encode();
        let img = encode_image(magic::CORE, [a.as_slice()]);
        let err = EntryReader::new(img.as_slice(), magic::MNTS, "mountpoints-1.img", 1024)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("mountpoints-1.img: not the criu image"),
            "{err}"
        );
        for n in 0..img.len() {
            let r = EntryReader::new(&img[..n], magic::CORE, "core-1.img", 1024);
            if let Ok(mut r) = r {
                let got = r.next_entry();
                if n == 8 {
                    assert!(matches!(got, Ok(None)));
                } else {
                    let e = got.err().unwrap();
                    assert!(e.to_string().contains("truncated"), "{n}: {e}");
                }
            }
        }
        let mut huge = encode_image(magic::CORE, []);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut r = EntryReader::new(huge.as_slice(), magic::CORE, "core-1.img", 1 << 20).unwrap();
        let e = r.next_entry().err().unwrap();
        assert!(e.to_string().contains("over the 1048576 bytes"), "{e}");
    }

    #[test]
    fn malformed_fields_end_the_walk_with_an_error() {
        // A length beyond the message, a group, field number 0, a varint
        // that never ends.
        for bad in [
            &[0x12, 0x05, b'a'][..],
            &[0x0b],
            &[0x00, 0x01],
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ] {
            let got: Vec<_> = fields(bad).collect();
            assert_eq!(got.last(), Some(&Err(Malformed)), "{bad:x?}");
            assert_eq!(got.iter().filter(|r| r.is_err()).count(), 1);
        }
        let mut out = Vec::new();
        repeated_varints(Value::Bytes(&[0xff, 0xff, 0x03, 0x01]), &mut out).unwrap();
        assert_eq!(out, [0xffff, 1]);
        assert!(repeated_varints(Value::Bytes(&[0xff]), &mut out).is_err());
    }
}
