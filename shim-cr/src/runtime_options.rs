//! `runtimeoptions.v1.Options`, the runtime options containerd sends a
//! non-runc runtime (CRI `options = { ConfigPath = ... }`, ctr
//! `--runtime-config-path`). containerd-shim-protos does not ship it, and it
//! has three fields, so it is decoded by hand here.

use protobuf::well_known_types::any::Any;
use protobuf::{CodedInputStream, CodedOutputStream, Message};

use crate::config::Config;
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

/// What the inner shim gets in place of runtime options `any` (holding
/// `opts`): kata-cr's own config path is swapped for the inner shim's
/// (`[inner] config_path`), or removed; anything else passes unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum ForInner {
    Unchanged,
    Replaced(Any),
    /// Nothing is left to send.
    Removed,
}

pub fn for_inner(any: &Any, opts: &RuntimeOptions, cfg: &Config) -> ForInner {
    let mut o = opts.clone();
    if !o.config_path.is_empty() && o.config_path == cfg.source {
        o.config_path = cfg.inner.config_path.clone();
    }
    if o.config_path.is_empty() && o.config_body.is_empty() {
        return ForInner::Removed;
    }
    if &o == opts {
        return ForInner::Unchanged;
    }
    let mut a = any.clone();
    a.value = o.encode();
    ForInner::Replaced(a)
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

    fn cfg(source: &str, inner_path: &str) -> Config {
        Config {
            source: source.into(),
            inner: crate::config::Inner {
                config_path: inner_path.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn any_of(o: &RuntimeOptions) -> Any {
        let mut any = Any::new();
        any.type_url = TYPE_URL.into();
        any.value = o.encode();
        any
    }

    #[test]
    fn our_config_path_is_swapped_for_the_inner_one() {
        let o = RuntimeOptions {
            config_path: "/etc/kata-cr/config.toml".into(),
            ..Default::default()
        };
        let c = cfg("/etc/kata-cr/config.toml", "/opt/kata/configuration.toml");
        let ForInner::Replaced(a) = for_inner(&any_of(&o), &o, &c) else {
            panic!("not replaced");
        };
        assert_eq!(a.type_url, TYPE_URL);
        let back = RuntimeOptions::from_any(&a).unwrap().unwrap();
        assert_eq!(back.config_path, "/opt/kata/configuration.toml");
        let c = cfg("/etc/kata-cr/config.toml", "");
        assert_eq!(for_inner(&any_of(&o), &o, &c), ForInner::Removed);
    }

    #[test]
    fn foreign_options_pass_unchanged() {
        let o = RuntimeOptions {
            config_path: "/opt/kata/other.toml".into(),
            ..Default::default()
        };
        let c = cfg("/etc/kata-cr/config.toml", "/x");
        assert_eq!(for_inner(&any_of(&o), &o, &c), ForInner::Unchanged);
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
