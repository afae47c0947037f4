//! The command line containerd gives a v2 shim, parsed the way Go's `flag`
//! package does (`-name value`, `-name=value`, `--name`), keeping the raw
//! argument list so it can be handed to the inner shim unchanged.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimArgs {
    pub namespace: String,
    pub id: String,
    pub address: String,
    pub publish_binary: String,
    pub bundle: Option<String>,
    pub socket: Option<String>,
    pub debug: bool,
    pub version: bool,
    /// `start`, `delete`, or empty (serve mode of Go shims; unused here).
    pub action: String,
    /// Everything after the program name, exactly as received.
    pub raw: Vec<String>,
}

const VALUE_FLAGS: &[&str] = &[
    "namespace",
    "id",
    "address",
    "publish-binary",
    "bundle",
    "socket",
];
const BOOL_FLAGS: &[&str] = &["debug", "v", "version"];

impl ShimArgs {
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self> {
        let raw: Vec<String> = args.into_iter().collect();
        let mut out = ShimArgs {
            raw: raw.clone(),
            ..Default::default()
        };
        let mut it = raw.iter();
        while let Some(arg) = it.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                // Go's flag stops at the first non-flag argument.
                out.action = arg.clone();
                break;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            if BOOL_FLAGS.contains(&name) {
                let on = inline.as_deref().map(|v| v != "false").unwrap_or(true);
                match name {
                    "debug" => out.debug = on,
                    _ => out.version = on,
                }
                continue;
            }
            if !VALUE_FLAGS.contains(&name) {
                return Err(Error::InvalidArgument(format!("unknown flag -{name}")));
            }
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| Error::InvalidArgument(format!("flag -{name} needs a value")))?,
            };
            match name {
                "namespace" => out.namespace = value,
                "id" => out.id = value,
                "address" => out.address = value,
                "publish-binary" => out.publish_binary = value,
                "bundle" => out.bundle = Some(value),
                _ => out.socket = Some(value),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ShimArgs {
        ShimArgs::parse(s.split_whitespace().map(String::from)).unwrap()
    }

    #[test]
    fn start_line_as_containerd_sends_it() {
        let a = parse("-namespace k8s.io -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id abc -debug start");
        assert_eq!(a.namespace, "k8s.io");
        assert_eq!(a.id, "abc");
        assert_eq!(a.address, "/run/containerd/containerd.sock");
        assert_eq!(a.publish_binary, "/usr/bin/containerd");
        assert!(a.debug);
        assert_eq!(a.action, "start");
        assert_eq!(a.raw.len(), 10);
    }

    #[test]
    fn delete_line_with_equals_form() {
        let a = parse("--namespace=default -id=x -bundle /b delete");
        assert_eq!(a.namespace, "default");
        assert_eq!(a.bundle.as_deref(), Some("/b"));
        assert_eq!(a.action, "delete");
        assert!(!a.debug);
    }

    #[test]
    fn unknown_flag_and_missing_value_are_named() {
        let e = ShimArgs::parse(["-bogus".to_string()]).unwrap_err();
        assert!(e.to_string().contains("-bogus"));
        let e = ShimArgs::parse(["-id".to_string()]).unwrap_err();
        assert!(e.to_string().contains("-id"));
    }
}
