//! `runtimeoptions.v1.Options`, the runtime options containerd sends a
//! non-runc runtime (CRI `options = { ConfigPath = ... }`, ctr
//! `--runtime-config-path`). containerd-shim-protos does not ship it, and it
//! has three fields, so it is decoded by hand here.

use protobuf::well_known_types::any::Any;
use protobuf::{CodedInputStream, CodedOutputStream, Message};

use crate::error::{Error, Result};

pub const TYPE_URL: &str = "runtimeoptions.v1.Options";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub type_url: String,
    pub config_path: String,
    pub config_body: Vec<u8>,
}

impl RuntimeOptions {
    pub fn is_runtime_options(any: &Any) -> bool {
        any.type_url.trim_start_matches('/').ends_with(TYPE_URL)
    }

    /// The options inside `any`, if it holds runtime options.
    pub fn from_any(any: &Any) -> Result<Option<Self>> {
        if !Self::is_runtime_options(any) {
            return Ok(None);
        }
        Self::decode(&any.value).map(Some)
    }

    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut out = RuntimeOptions::default();
        let mut is = CodedInputStream::from_bytes(buf);
        while let Some(tag) = is.read_raw_tag_or_eof()? {
            match tag {
                0x0a => out.type_url = is.read_string()?,
                0x12 => out.config_path = is.read_string()?,
                0x1a => out.config_body = is.read_bytes()?,
                t => {
                    let wt = protobuf::rt::WireType::new(t & 7).ok_or_else(|| {
                        Error::InvalidArgument(format!("runtime options: bad wire type in tag {t}"))
                    })?;
                    is.skip_field(wt)?
                }
            }
        }
        Ok(out)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut buf);
            if !self.type_url.is_empty() {
                os.write_string(1, &self.type_url).expect("vec write");
            }
            if !self.config_path.is_empty() {
                os.write_string(2, &self.config_path).expect("vec write");
            }
            if !self.config_body.is_empty() {
                os.write_bytes(3, &self.config_body).expect("vec write");
            }
            os.flush().expect("vec flush");
        }
        buf
    }
}

/// Decode the bytes containerd writes on a shim's stdin at `start`: a
/// marshalled `Any`, or nothing.
pub fn parse_start_stdin(buf: &[u8]) -> Option<Any> {
    if buf.is_empty() {
        return None;
    }
    Any::parse_from_bytes(buf)
        .ok()
        .filter(|a| !a.type_url.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_any_detection() {
        let o = RuntimeOptions {
            type_url: "io.containerd.kata.v2".into(),
            config_path: "/etc/kata-cr/config.toml".into(),
            config_body: b"x".to_vec(),
        };
        let back = RuntimeOptions::decode(&o.encode()).unwrap();
        assert_eq!(back, o);
        let mut any = Any::new();
        any.type_url = "runtimeoptions.v1.Options".into();
        any.value = o.encode();
        assert_eq!(RuntimeOptions::from_any(&any).unwrap(), Some(o));
        any.type_url = "containerd.runc.v1.Options".into();
        assert_eq!(RuntimeOptions::from_any(&any).unwrap(), None);
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut buf = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut buf);
            os.write_uint64(9, 7).unwrap();
            os.write_string(2, "/p").unwrap();
            os.flush().unwrap();
        }
        assert_eq!(RuntimeOptions::decode(&buf).unwrap().config_path, "/p");
    }

    #[test]
    fn stdin_forms() {
        assert!(parse_start_stdin(b"").is_none());
        let mut any = Any::new();
        any.type_url = "runtimeoptions.v1.Options".into();
        let bytes = any.write_to_bytes().unwrap();
        assert!(parse_start_stdin(&bytes).is_some());
    }
}
