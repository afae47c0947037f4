//! What a shim's `start` prints, in each of the forms containerd accepts: a
//! bare address (task API v2), JSON bootstrap params (2.x), or a protobuf
//! `BootstrapResult` (2.3+). The proxy answers in the form its inner shim used,
//! so containerd picks the task API version the inner shim actually serves.

use containerd_shim_protos::bootstrap_api::BootstrapResult;
use protobuf::Message;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Form {
    Bare,
    Json,
    Protobuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub form: Form,
    pub version: i32,
    pub address: String,
    pub protocol: String,
}

#[derive(Serialize, Deserialize)]
struct JsonParams {
    version: i32,
    address: String,
    protocol: String,
}

impl Bootstrap {
    pub fn parse(out: &[u8]) -> Result<Self> {
        let trimmed = trim(out);
        if trimmed.is_empty() {
            return Err(Error::InvalidArgument("empty start output".into()));
        }
        if trimmed.first() == Some(&b'{') {
            if let Ok(p) = serde_json::from_slice::<JsonParams>(trimmed) {
                return Ok(Bootstrap {
                    form: Form::Json,
                    version: p.version,
                    address: p.address,
                    protocol: p.protocol,
                });
            }
        }
        if let Ok(s) = std::str::from_utf8(trimmed) {
            if looks_like_address(s) {
                return Ok(Bootstrap {
                    form: Form::Bare,
                    version: 2,
                    address: s.to_string(),
                    protocol: "ttrpc".into(),
                });
            }
        }
        // Protobuf is tried on the untrimmed bytes: trailing bytes may be data.
        match BootstrapResult::parse_from_bytes(out) {
            Ok(r) if looks_like_address(&r.address) => Ok(Bootstrap {
                form: Form::Protobuf,
                version: r.version,
                address: r.address,
                protocol: if r.protocol.is_empty() {
                    "ttrpc".into()
                } else {
                    r.protocol
                },
            }),
            _ => Err(Error::InvalidArgument(format!(
                "unrecognised start output {:?}",
                String::from_utf8_lossy(&out[..out.len().min(200)])
            ))),
        }
    }

    /// The same bootstrap, pointing at another address.
    pub fn with_address(&self, address: &str) -> Self {
        Bootstrap {
            address: address.to_string(),
            ..self.clone()
        }
    }

    /// What containerd reads on the shim's stdout.
    pub fn render(&self) -> Result<Vec<u8>> {
        Ok(match self.form {
            Form::Bare => self.address.clone().into_bytes(),
            Form::Json => serde_json::to_vec(&JsonParams {
                version: self.version,
                address: self.address.clone(),
                protocol: self.protocol.clone(),
            })
            .map_err(|source| Error::Json {
                context: "the bootstrap answer".into(),
                source,
            })?,
            Form::Protobuf => {
                let mut r = BootstrapResult::new();
                r.version = self.version;
                r.address = self.address.clone();
                r.protocol = self.protocol.clone();
                r.write_to_bytes()?
            }
        })
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn looks_like_address(s: &str) -> bool {
    [
        "unix://",
        "vsock://",
        "hvsock://",
        "npipe://",
        "tcp://",
        "/",
    ]
    .iter()
    .any(|p| s.starts_with(p))
        && !s.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_address_is_task_api_v2() {
        let b = Bootstrap::parse(b"unix:///run/containerd/s/abc\n").unwrap();
        assert_eq!(b.form, Form::Bare);
        assert_eq!(b.version, 2);
        assert_eq!(b.with_address("unix:///x").render().unwrap(), b"unix:///x");
    }

    #[test]
    fn json_keeps_version_and_protocol() {
        let out = br#"{"version":3,"address":"unix:///run/containerd/s/f","protocol":"ttrpc"}"#;
        let b = Bootstrap::parse(out).unwrap();
        assert_eq!((b.form, b.version), (Form::Json, 3));
        let again = Bootstrap::parse(&b.with_address("unix:///p").render().unwrap()).unwrap();
        assert_eq!(again.address, "unix:///p");
        assert_eq!(again.version, 3);
    }

    #[test]
    fn protobuf_round_trips() {
        let mut r = BootstrapResult::new();
        r.version = 3;
        r.address = "unix:///run/containerd/s/q".into();
        r.protocol = "ttrpc".into();
        let b = Bootstrap::parse(&r.write_to_bytes().unwrap()).unwrap();
        assert_eq!(b.form, Form::Protobuf);
        assert_eq!(b.version, 3);
        let ours =
            BootstrapResult::parse_from_bytes(&b.with_address("unix:///o").render().unwrap())
                .unwrap();
        assert_eq!(ours.address, "unix:///o");
    }

    #[test]
    fn garbage_is_rejected_with_the_text() {
        let e = Bootstrap::parse(b"panic: something broke").unwrap_err();
        assert!(e.to_string().contains("panic: something broke"));
        assert!(Bootstrap::parse(b"  \n").is_err());
    }
}
