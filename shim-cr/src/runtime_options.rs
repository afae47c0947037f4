//! `runtimeoptions.v1.Options`, the runtime options containerd sends a
//! non-runc runtime (CRI `options = { ConfigPath = ... }`, ctr
//! `--runtime-config-path`), generated from `proto/runtimeoptions.proto`
//! (containerd-shim-protos does not ship it), and how kata-cr hands them on
//! to the inner shim.

use protobuf::well_known_types::any::Any;
use protobuf::Message;

use crate::config::Config;
use crate::error::Result;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/protos/mod.rs"));
}

pub use generated::runtimeoptions::Options as RuntimeOptions;

pub const TYPE_URL: &str = "runtimeoptions.v1.Options";

impl RuntimeOptions {
    pub fn is_runtime_options(any: &Any) -> bool {
        any.type_url.trim_start_matches('/').ends_with(TYPE_URL)
    }

    /// The options inside `any`, if it holds runtime options.
    pub fn from_any(any: &Any) -> Result<Option<Self>> {
        if !Self::is_runtime_options(any) {
            return Ok(None);
        }
        Ok(Some(Self::parse_from_bytes(&any.value)?))
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

pub fn for_inner(any: &Any, opts: &RuntimeOptions, cfg: &Config) -> Result<ForInner> {
    let mut o = opts.clone();
    if !o.config_path.is_empty() && o.config_path == cfg.source {
        o.config_path = cfg.inner.config_path.clone();
    }
    if o.config_path.is_empty() && o.config_body.is_empty() {
        return Ok(ForInner::Removed);
    }
    if &o == opts {
        return Ok(ForInner::Unchanged);
    }
    let mut a = any.clone();
    a.value = o.write_to_bytes()?;
    Ok(ForInner::Replaced(a))
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

/// Whether `raw` is a marshalled Any that names no type: what containerd's
/// restore sends as options, and what Kata refuses (`type with url : not
/// found`), so kata-cr sends nothing in its place.
pub fn is_empty_any(raw: &[u8]) -> bool {
    !raw.is_empty() && Any::parse_from_bytes(raw).is_ok_and(|a| a.type_url.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(type_url: &str, config_path: &str, config_body: &[u8]) -> RuntimeOptions {
        let mut o = RuntimeOptions::new();
        o.type_url = type_url.into();
        o.config_path = config_path.into();
        o.config_body = config_body.to_vec();
        o
    }

    #[test]
    fn round_trip_and_any_detection() {
        let o = options("io.containerd.kata.v2", "/etc/kata-cr/config.toml", b"x");
        let back = RuntimeOptions::parse_from_bytes(&o.write_to_bytes().unwrap()).unwrap();
        assert_eq!(back, o);
        let mut any = Any::new();
        any.type_url = "runtimeoptions.v1.Options".into();
        any.value = o.write_to_bytes().unwrap();
        assert_eq!(RuntimeOptions::from_any(&any).unwrap(), Some(o));
        any.type_url = "containerd.runc.v1.Options".into();
        assert_eq!(RuntimeOptions::from_any(&any).unwrap(), None);
    }

    #[test]
    fn the_wire_format_is_containerds() {
        // Field 2 (config_path), length 2, "/p"; an unknown field 9 survives.
        let wire = [0x12, 2, b'/', b'p', 0x48, 7];
        let o = RuntimeOptions::parse_from_bytes(&wire).unwrap();
        assert_eq!(o.config_path, "/p");
        assert_eq!(o.write_to_bytes().unwrap(), wire);
        let bad = RuntimeOptions::parse_from_bytes(&[0x12, 9, b'/']).unwrap_err();
        let e: crate::error::Error = bad.into();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT);
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
        any.value = o.write_to_bytes().unwrap();
        any
    }

    #[test]
    fn our_config_path_is_swapped_for_the_inner_one() {
        let o = options("", "/etc/kata-cr/config.toml", b"");
        let c = cfg("/etc/kata-cr/config.toml", "/opt/kata/configuration.toml");
        let ForInner::Replaced(a) = for_inner(&any_of(&o), &o, &c).unwrap() else {
            panic!("not replaced");
        };
        assert_eq!(a.type_url, TYPE_URL);
        let back = RuntimeOptions::from_any(&a).unwrap().unwrap();
        assert_eq!(back.config_path, "/opt/kata/configuration.toml");
        let c = cfg("/etc/kata-cr/config.toml", "");
        assert_eq!(for_inner(&any_of(&o), &o, &c).unwrap(), ForInner::Removed);
    }

    #[test]
    fn foreign_options_pass_unchanged() {
        let o = options("", "/opt/kata/other.toml", b"");
        let c = cfg("/etc/kata-cr/config.toml", "/x");
        assert_eq!(for_inner(&any_of(&o), &o, &c).unwrap(), ForInner::Unchanged);
    }

    #[test]
    fn stdin_forms() {
        assert!(parse_start_stdin(b"").is_none());
        let mut any = Any::new();
        any.type_url = "runtimeoptions.v1.Options".into();
        let bytes = any.write_to_bytes().unwrap();
        assert!(parse_start_stdin(&bytes).is_some());
    }

    #[test]
    fn empty_any_is_recognised() {
        assert!(!is_empty_any(b""));
        let mut any = Any::new();
        any.value = b"\x0a\x01x".to_vec();
        assert!(is_empty_any(&any.write_to_bytes().unwrap()));
        any.type_url = TYPE_URL.into();
        assert!(!is_empty_any(&any.write_to_bytes().unwrap()));
        assert!(!is_empty_any(b"\xff\xff"));
    }
}
