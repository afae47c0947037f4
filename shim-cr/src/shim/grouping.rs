//! The pod-grouping decision, made exactly as the Kata shims make it: a CRI
//! "container" joins the shim of its sandbox; anything else (a sandbox, a
//! plain ctr container) gets a shim of its own.

use serde_json::Value;

use crate::error::{Error, Result};

const CONTAINER_TYPE_KEYS: &[&str] = &[
    "io.kubernetes.cri.container-type",
    "io.kubernetes.cri-o.ContainerType",
];
const SANDBOX_ID_KEYS: &[&str] = &[
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];

#[derive(Debug, PartialEq, Eq)]
pub enum Group {
    /// Start a new proxy (and inner shim) for this id.
    Own,
    /// Join the proxy already serving this sandbox.
    Sandbox(String),
}

pub fn decide(spec: &Value) -> Result<Group> {
    let ann = spec.get("annotations");
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| ann.and_then(|a| a.get(*k)).and_then(Value::as_str))
    };
    match get(CONTAINER_TYPE_KEYS) {
        Some("container") => match get(SANDBOX_ID_KEYS) {
            Some(sid) if !sid.is_empty() => Ok(Group::Sandbox(sid.to_string())),
            _ => Err(Error::InvalidArgument(
                "container annotated as part of a pod has no sandbox id annotation".into(),
            )),
        },
        _ => Ok(Group::Own),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sandbox_and_plain_containers_get_their_own_shim() {
        assert_eq!(decide(&json!({})).unwrap(), Group::Own);
        let sb = json!({"annotations": {"io.kubernetes.cri.container-type": "sandbox",
                                         "io.kubernetes.cri.sandbox-id": "s1"}});
        assert_eq!(decide(&sb).unwrap(), Group::Own);
    }

    #[test]
    fn cri_and_crio_containers_join_their_sandbox() {
        let c = json!({"annotations": {"io.kubernetes.cri.container-type": "container",
                                        "io.kubernetes.cri.sandbox-id": "s1"}});
        assert_eq!(decide(&c).unwrap(), Group::Sandbox("s1".into()));
        let o = json!({"annotations": {"io.kubernetes.cri-o.ContainerType": "container",
                                        "io.kubernetes.cri-o.SandboxID": "s2"}});
        assert_eq!(decide(&o).unwrap(), Group::Sandbox("s2".into()));
    }

    #[test]
    fn container_without_sandbox_id_is_an_error() {
        let c = json!({"annotations": {"io.kubernetes.cri.container-type": "container"}});
        assert!(decide(&c).is_err());
    }
}
