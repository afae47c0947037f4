//! Decoding of crictl's JSON config files (pod-config.json, container-config.json)
//! into the prost CRI v1 types.
//!
//! Real crictl decodes these files with Go's `encoding/json` into the generated CRI
//! structs: keys are the snake_case json tags (matched case-insensitively), enums are
//! plain numbers, and every absent field takes its zero value. The k8s-cri crate
//! derives serde on its types with the Rust (snake_case) field names but without
//! `#[serde(default)]`, so a plain `serde_json::from_value` fails on any partial file.
//!
//! Instead of hand-mapping every field, [`De`] is a small serde `Deserializer` over a
//! `serde_json::Value` that knows, from `deserialize_struct`'s field list, every field
//! of the target struct: present keys are decoded, absent ones (and JSON `null`)
//! become zero values. Keys are looked up as snake_case, lowerCamelCase (protobuf
//! JSON mapping) and finally case-insensitively (Go). Enum-typed fields (`i32` in
//! prost) accept numbers as in crictl, and additionally the proto enum names
//! (`"NODE"`), which the protobuf JSON mapping uses.

use crate::output::camel;
use k8s_cri::v1::{
    security_profile::ProfileType, ContainerConfig, MountPropagation, NamespaceMode,
    PodSandboxConfig, Protocol,
};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

type Error = serde_json::Error;

/// Resolves a proto enum name for an `i32` field.
type EnumFn = fn(&str) -> Option<i32>;

/// Reads and decodes a crictl config file: JSON, or YAML (crictl reads both).
pub fn load<T: for<'de> Deserialize<'de>>(path: &str) -> Result<T, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("config at {path} not found"))
        }
        Err(e) => return Err(format!("read {path}: {e}")),
    };
    from_str(&text).map_err(|e| format!("decode {path}: {e}"))
}

pub fn from_str<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(json_err) => match serde_yaml::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            _ => return Err(json_err.to_string()),
        },
    };
    from_value(&v).map_err(|e| e.to_string())
}

pub fn from_value<'a, T: Deserialize<'a>>(v: &'a Value) -> Result<T, Error> {
    T::deserialize(De {
        v: Some(v),
        en: None,
    })
}

/// Loads a pod config with crictl's checks: metadata with name and namespace
/// required; a missing uid gets a random one.
pub fn pod_config(path: &str) -> Result<PodSandboxConfig, String> {
    let mut c: PodSandboxConfig = load(path)?;
    check_pod(&mut c)?;
    Ok(c)
}

pub fn check_pod(c: &mut PodSandboxConfig) -> Result<(), String> {
    let m = c.metadata.as_mut().ok_or("metadata is not set")?;
    if m.uid.is_empty() {
        m.uid = random_uuid();
    }
    if m.name.is_empty() || m.namespace.is_empty() {
        return Err(format!("name or namespace is not in metadata {m:?}"));
    }
    Ok(())
}

/// Loads a container config with crictl's checks: metadata.name and image.image
/// required.
pub fn container_config(path: &str) -> Result<ContainerConfig, String> {
    let c: ContainerConfig = load(path)?;
    check_container(&c)?;
    Ok(c)
}

pub fn check_container(c: &ContainerConfig) -> Result<(), String> {
    let m = c.metadata.as_ref().ok_or("metadata is not set")?;
    if m.name.is_empty() {
        return Err(format!("name is not in metadata {m:?}"));
    }
    let i = c.image.as_ref().ok_or("image is not set")?;
    if i.image.is_empty() {
        return Err(format!("image field is not set in image {i:?}"));
    }
    Ok(())
}

/// A version 4 UUID from the kernel's random source.
fn random_uuid() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ ((std::process::id() as u128) << 64);
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn enum_for(strukt: &str, field: &str) -> Option<EnumFn> {
    fn ns(s: &str) -> Option<i32> {
        NamespaceMode::from_str_name(s).map(|e| e as i32)
    }
    fn prop(s: &str) -> Option<i32> {
        MountPropagation::from_str_name(s).map(|e| e as i32)
    }
    fn proto(s: &str) -> Option<i32> {
        Protocol::from_str_name(s).map(|e| e as i32)
    }
    fn profile(s: &str) -> Option<i32> {
        ProfileType::from_str_name(s).map(|e| e as i32)
    }
    match (strukt, field) {
        ("NamespaceOption", "network" | "pid" | "ipc") => Some(ns),
        ("UserNamespace", "mode") => Some(ns),
        ("Mount", "propagation") => Some(prop),
        ("PortMapping", "protocol") => Some(proto),
        ("SecurityProfile", "profile_type") => Some(profile),
        _ => None,
    }
}

fn lookup<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(field) {
        return Some(v);
    }
    let c = camel(field);
    if let Some(v) = obj.get(&c) {
        return Some(v);
    }
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field) || k.eq_ignore_ascii_case(&c))
        .map(|(_, v)| v)
}

/// Deserializer over an optional JSON value; `None` (absent) and `null` mean the
/// zero value of whatever type is asked for.
#[derive(Clone, Copy)]
struct De<'a> {
    v: Option<&'a Value>,
    en: Option<EnumFn>,
}

impl<'a> De<'a> {
    fn present(&self) -> Option<&'a Value> {
        match self.v {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn int(&self) -> Result<Option<Num>, Error> {
        let Some(v) = self.present() else {
            return Ok(None);
        };
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Some(Num::I(i)))
                } else if let Some(u) = n.as_u64() {
                    Ok(Some(Num::U(u)))
                } else {
                    let f = n.as_f64().unwrap_or_default();
                    if f.fract() == 0.0 {
                        Ok(Some(Num::I(f as i64)))
                    } else {
                        Err(de::Error::custom(format!("expected an integer, got {f}")))
                    }
                }
            }
            Value::String(s) => {
                if let Ok(i) = s.trim().parse::<i64>() {
                    Ok(Some(Num::I(i)))
                } else if let Ok(u) = s.trim().parse::<u64>() {
                    Ok(Some(Num::U(u)))
                } else if let Some(i) = self.en.and_then(|f| f(s)) {
                    Ok(Some(Num::I(i as i64)))
                } else {
                    Err(de::Error::custom(format!("expected a number, got {s:?}")))
                }
            }
            Value::Bool(b) => Ok(Some(Num::I(*b as i64))),
            other => Err(de::Error::custom(format!("expected a number, got {other}"))),
        }
    }

    fn visit_int<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.int()? {
            None => visitor.visit_i64(0),
            Some(Num::I(i)) => visitor.visit_i64(i),
            Some(Num::U(u)) => visitor.visit_u64(u),
        }
    }
}

enum Num {
    I(i64),
    U(u64),
}

struct Seq<'a> {
    it: std::slice::Iter<'a, Value>,
}

impl<'a> SeqAccess<'a> for Seq<'a> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.it.next() {
            None => Ok(None),
            Some(v) => seed
                .deserialize(De {
                    v: Some(v),
                    en: None,
                })
                .map(Some),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.it.len())
    }
}

/// A JSON object as a map (labels, annotations, sysctls...).
struct ObjMap<'a> {
    it: serde_json::map::Iter<'a>,
    next: Option<&'a Value>,
}

impl<'a> MapAccess<'a> for ObjMap<'a> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.it.next() {
            None => Ok(None),
            Some((k, v)) => {
                self.next = Some(v);
                seed.deserialize(k.as_str().into_deserializer()).map(Some)
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(De {
            v: self.next.take(),
            en: None,
        })
    }
}

/// A JSON object as a struct: yields every field of the struct, present or not.
struct StructMap<'a> {
    name: &'static str,
    obj: Option<&'a Map<String, Value>>,
    fields: std::slice::Iter<'static, &'static str>,
    next: Option<De<'a>>,
}

impl<'a> MapAccess<'a> for StructMap<'a> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.fields.next() {
            None => Ok(None),
            Some(f) => {
                self.next = Some(De {
                    v: self.obj.and_then(|o| lookup(o, f)),
                    en: enum_for(self.name, f),
                });
                seed.deserialize((*f).into_deserializer()).map(Some)
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.next.take().unwrap_or(De { v: None, en: None }))
    }
}

macro_rules! ints {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            self.visit_int(visitor)
        }
    )*};
}

impl<'a> de::Deserializer<'a> for De<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_unit(),
            Some(Value::Bool(b)) => visitor.visit_bool(*b),
            Some(Value::Number(_)) => match self.int() {
                Ok(_) => self.visit_int(visitor),
                Err(_) => self.deserialize_f64(visitor),
            },
            Some(Value::String(s)) => visitor.visit_borrowed_str(s),
            Some(Value::Array(a)) => visitor.visit_seq(Seq { it: a.iter() }),
            Some(Value::Object(o)) => visitor.visit_map(ObjMap {
                it: o.iter(),
                next: None,
            }),
            Some(Value::Null) => unreachable!(),
        }
    }

    ints!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
          deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64);

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_f64(0.0),
            Some(Value::Number(n)) => visitor.visit_f64(n.as_f64().unwrap_or_default()),
            Some(Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(_) => Err(de::Error::custom(format!("expected a number, got {s:?}"))),
            },
            Some(other) => Err(de::Error::custom(format!("expected a number, got {other}"))),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_bool(false),
            Some(Value::Bool(b)) => visitor.visit_bool(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => {
                visitor.visit_bool(s == "true")
            }
            Some(other) => Err(de::Error::custom(format!(
                "expected a boolean, got {other}"
            ))),
        }
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_borrowed_str(""),
            Some(Value::String(s)) => visitor.visit_borrowed_str(s),
            Some(other) => Err(de::Error::custom(format!("expected a string, got {other}"))),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_none(),
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.present() {
            None => visitor.visit_seq(Seq { it: [].iter() }),
            Some(Value::Array(a)) => visitor.visit_seq(Seq { it: a.iter() }),
            Some(other) => Err(de::Error::custom(format!("expected an array, got {other}"))),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self.present() {
            None => visitor.visit_map(ObjMap {
                it: EMPTY.get_or_init(Map::new).iter(),
                next: None,
            }),
            Some(Value::Object(o)) => visitor.visit_map(ObjMap {
                it: o.iter(),
                next: None,
            }),
            Some(other) => Err(de::Error::custom(format!(
                "expected an object, got {other}"
            ))),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let obj = match self.present() {
            None => None,
            Some(Value::Object(o)) => Some(o),
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "{name}: expected an object, got {other}"
                )))
            }
        };
        visitor.visit_map(StructMap {
            name,
            obj,
            fields: fields.iter(),
            next: None,
        })
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!(
            "{name}: unsupported oneof field"
        )))
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // crictl docs/crictl.md "Run pod sandbox with config file".
    const POD_CONFIG: &str = r#"{
    "metadata": {
        "name": "nginx-sandbox",
        "namespace": "default",
        "attempt": 1,
        "uid": "hdishd83djaidwnduwk28bcsb"
    },
    "log_directory": "/tmp",
    "linux": {
    }
}"#;

    // crictl docs/crictl.md "Create container in a pod sandbox with config file".
    const CONTAINER_CONFIG: &str = r#"{
  "metadata": {
      "name": "busybox"
  },
  "image":{
      "image": "busybox"
  },
  "command": [
      "top"
  ],
  "log_path":"busybox.log",
  "linux": {
  }
}"#;

    // crictl docs/examples pod-config.json (fuller example, host network).
    const POD_FULL: &str = r#"{
    "metadata": {
        "name": "nginx-sandbox",
        "namespace": "default",
        "attempt": 1,
        "uid": "hdishd83djaidwnduwk28bcsb"
    },
    "hostname": "nginx-host",
    "log_directory": "/tmp",
    "dns_config": {
        "servers": ["8.8.8.8"],
        "searches": ["example.com"],
        "options": ["ndots:5"]
    },
    "port_mappings": [
        {"protocol": 0, "container_port": 80, "host_port": 8080, "host_ip": "127.0.0.1"}
    ],
    "labels": {"app": "nginx"},
    "annotations": {"io.kubernetes.cri.untrusted-workload": "false"},
    "linux": {
        "cgroup_parent": "/kata-cr/pod1",
        "sysctls": {"net.ipv4.ip_forward": "1"},
        "security_context": {
            "namespace_options": {
                "network": 2,
                "pid": 1,
                "ipc": 0
            },
            "privileged": true,
            "run_as_user": {"value": 0},
            "supplemental_groups": [1, 2]
        }
    }
}"#;

    const CONTAINER_FULL: &str = r#"{
    "metadata": {"name": "redis", "attempt": 2},
    "image": {"image": "localhost:5000/busybox:latest"},
    "command": ["/bin/sh", "-c"],
    "args": ["sleep 1000"],
    "working_dir": "/data",
    "envs": [
        {"key": "PATH", "value": "/usr/bin:/bin"},
        {"key": "FOO", "value": "bar"}
    ],
    "mounts": [
        {"container_path": "/data", "host_path": "/tmp/data", "readonly": true},
        {"container_path": "/scratch", "host_path": "/tmp/scratch", "propagation": 2}
    ],
    "labels": {"tier": "backend"},
    "annotations": {"pod": "redis"},
    "log_path": "redis/0.log",
    "stdin": false,
    "stdin_once": false,
    "tty": true,
    "linux": {
        "resources": {
            "cpu_period": 100000,
            "cpu_quota": 50000,
            "cpu_shares": 512,
            "memory_limit_in_bytes": 268435456,
            "oom_score_adj": 30,
            "cpuset_cpus": "0",
            "cpuset_mems": "0"
        },
        "security_context": {
            "privileged": false,
            "capabilities": {
                "add_capabilities": ["SYS_ADMIN", "NET_ADMIN"],
                "drop_capabilities": ["MKNOD"]
            },
            "run_as_user": {"value": 1000},
            "readonly_rootfs": true,
            "namespace_options": {"network": 2, "pid": 1}
        }
    }
}"#;

    #[test]
    fn docs_pod_config() {
        let p: PodSandboxConfig = from_str(POD_CONFIG).unwrap();
        let m = p.metadata.unwrap();
        assert_eq!(m.name, "nginx-sandbox");
        assert_eq!(m.namespace, "default");
        assert_eq!(m.attempt, 1);
        assert_eq!(m.uid, "hdishd83djaidwnduwk28bcsb");
        assert_eq!(p.log_directory, "/tmp");
        let linux = p.linux.unwrap();
        assert!(linux.security_context.is_none());
        assert_eq!(linux.cgroup_parent, "");
        assert!(p.dns_config.is_none());
        assert!(p.port_mappings.is_empty());
        assert!(p.labels.is_empty());
    }

    #[test]
    fn docs_container_config() {
        let c: ContainerConfig = from_str(CONTAINER_CONFIG).unwrap();
        assert_eq!(c.metadata.unwrap().name, "busybox");
        assert_eq!(c.image.unwrap().image, "busybox");
        assert_eq!(c.command, vec!["top"]);
        assert_eq!(c.log_path, "busybox.log");
        assert!(c.linux.is_some());
        assert!(c.args.is_empty());
        assert!(!c.tty);
    }

    #[test]
    fn host_network_pod() {
        let p: PodSandboxConfig = from_str(POD_FULL).unwrap();
        assert_eq!(p.hostname, "nginx-host");
        let dns = p.dns_config.unwrap();
        assert_eq!(dns.servers, vec!["8.8.8.8"]);
        assert_eq!(dns.searches, vec!["example.com"]);
        assert_eq!(dns.options, vec!["ndots:5"]);
        let pm = &p.port_mappings[0];
        assert_eq!((pm.container_port, pm.host_port), (80, 8080));
        assert_eq!(pm.host_ip, "127.0.0.1");
        assert_eq!(p.labels["app"], "nginx");
        assert_eq!(
            p.annotations["io.kubernetes.cri.untrusted-workload"],
            "false"
        );
        let linux = p.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/kata-cr/pod1");
        assert_eq!(linux.sysctls["net.ipv4.ip_forward"], "1");
        let sc = linux.security_context.unwrap();
        assert!(sc.privileged);
        assert_eq!(sc.run_as_user.unwrap().value, 0);
        assert_eq!(sc.supplemental_groups, vec![1, 2]);
        let ns = sc.namespace_options.unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Container as i32);
        assert_eq!(ns.ipc, NamespaceMode::Pod as i32);
    }

    #[test]
    fn full_container_config() {
        let c: ContainerConfig = from_str(CONTAINER_FULL).unwrap();
        let m = c.metadata.unwrap();
        assert_eq!((m.name.as_str(), m.attempt), ("redis", 2));
        assert_eq!(c.image.unwrap().image, "localhost:5000/busybox:latest");
        assert_eq!(c.command, vec!["/bin/sh", "-c"]);
        assert_eq!(c.args, vec!["sleep 1000"]);
        assert_eq!(c.working_dir, "/data");
        assert_eq!(c.envs.len(), 2);
        assert_eq!(
            (c.envs[1].key.as_str(), c.envs[1].value.as_str()),
            ("FOO", "bar")
        );
        assert_eq!(c.mounts[0].container_path, "/data");
        assert_eq!(c.mounts[0].host_path, "/tmp/data");
        assert!(c.mounts[0].readonly);
        assert!(!c.mounts[1].readonly);
        assert_eq!(
            c.mounts[1].propagation,
            MountPropagation::PropagationBidirectional as i32
        );
        assert_eq!(c.labels["tier"], "backend");
        assert_eq!(c.annotations["pod"], "redis");
        assert_eq!(c.log_path, "redis/0.log");
        assert!(c.tty && !c.stdin);
        let linux = c.linux.unwrap();
        let r = linux.resources.unwrap();
        assert_eq!(r.cpu_period, 100000);
        assert_eq!(r.cpu_quota, 50000);
        assert_eq!(r.cpu_shares, 512);
        assert_eq!(r.memory_limit_in_bytes, 268435456);
        assert_eq!(r.oom_score_adj, 30);
        assert_eq!(r.cpuset_cpus, "0");
        let sc = linux.security_context.unwrap();
        assert!(!sc.privileged);
        assert!(sc.readonly_rootfs);
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.add_capabilities, vec!["SYS_ADMIN", "NET_ADMIN"]);
        assert_eq!(caps.drop_capabilities, vec!["MKNOD"]);
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        let ns = sc.namespace_options.unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Container as i32);
    }

    #[test]
    fn camel_case_and_enum_names() {
        let p: PodSandboxConfig = from_str(
            r#"{"metadata": {"name": "p", "uid": "u", "namespace": "n"},
                "logDirectory": "/var/log/pods/x",
                "linux": {"cgroupParent": "cg", "securityContext":
                  {"namespaceOptions": {"network": "NODE", "pid": "CONTAINER"},
                   "runAsUser": {"value": "1000"}}}}"#,
        )
        .unwrap();
        assert_eq!(p.log_directory, "/var/log/pods/x");
        let linux = p.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "cg");
        let sc = linux.security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        let ns = sc.namespace_options.unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Container as i32);
    }

    #[test]
    fn nulls_and_case_insensitive_keys() {
        let c: ContainerConfig = from_str(
            r#"{"Metadata": {"Name": "x"}, "image": null, "command": null,
                "Log_Path": "l", "linux": {"security_context": null}}"#,
        )
        .unwrap();
        assert_eq!(c.metadata.unwrap().name, "x");
        assert!(c.image.is_none());
        assert!(c.command.is_empty());
        assert_eq!(c.log_path, "l");
        assert!(c.linux.unwrap().security_context.is_none());
    }

    #[test]
    fn yaml_and_checks() {
        let mut p: PodSandboxConfig = from_str(
            "metadata:\n  name: y\n  namespace: default\nlinux:\n  security_context:\n    namespace_options:\n      network: 2\n",
        )
        .unwrap();
        check_pod(&mut p).unwrap();
        let m = p.metadata.as_ref().unwrap();
        assert_eq!(m.uid.len(), 36);
        assert_eq!(&m.uid[14..15], "4");
        let ns = p
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);

        let mut no_ns: PodSandboxConfig = from_str(r#"{"metadata": {"name": "x"}}"#).unwrap();
        assert!(check_pod(&mut no_ns).is_err());
        let mut no_md: PodSandboxConfig = from_str("{}").unwrap();
        assert!(check_pod(&mut no_md).is_err());

        let c: ContainerConfig = from_str(CONTAINER_CONFIG).unwrap();
        check_container(&c).unwrap();
        let no_image: ContainerConfig = from_str(r#"{"metadata": {"name": "x"}}"#).unwrap();
        assert!(check_container(&no_image).is_err());
        assert!(from_str::<ContainerConfig>("[1, 2]").is_err());
    }

    #[test]
    fn type_errors_are_reported() {
        assert!(from_str::<ContainerConfig>(r#"{"command": "top"}"#).is_err());
        assert!(from_str::<ContainerConfig>(r#"{"tty": 3}"#).is_err());
        assert!(from_str::<PodSandboxConfig>(
            r#"{"linux": {"security_context": {"namespace_options": {"network": "BOGUS"}}}}"#
        )
        .is_err());
    }
}
