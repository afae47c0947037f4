//! The one change kata-cr makes to a container before the inner shim sees
//! it: `kata-cr-init` becomes PID 1 (a read-only bind mount of the host
//! binary, the original `process.args` after `--`). The init keeps the
//! workload a session leader in its own subtree, which is what criu dumps and
//! restores. Only the bundle's `config.json` (what the inner shim reads)
//! changes; containerd's stored spec, from which exec specs and checkpoints
//! are made, stays as the user wrote it. The file is edited as JSON so every
//! field kata-cr does not know survives.

use std::path::Path;

use serde_json::{json, Value};

use crate::bundle_state::write_atomic;
use crate::error::{Error, Result};
use crate::grouping;

/// Where the init appears inside the container.
pub const INIT_PATH: &str = "/.kata-cr/init";

/// What the rewrite did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Wrapped,
    /// A CRI sandbox (pause) container: never checkpointed, left alone.
    Sandbox,
    /// Already wrapped (a retried Create).
    AlreadyWrapped,
}

pub fn wrap_bundle(bundle: &Path, init_host_path: &Path) -> Result<Outcome> {
    let mut spec = grouping::read_spec(bundle)?;
    let outcome = wrap_spec(&mut spec, init_host_path)?;
    if outcome == Outcome::Wrapped {
        let data = serde_json::to_vec(&spec).expect("JSON value serialises");
        write_atomic(&bundle.join("config.json"), &data)?;
    }
    Ok(outcome)
}

pub fn wrap_spec(spec: &mut Value, init_host_path: &Path) -> Result<Outcome> {
    let ctype = spec
        .pointer("/annotations/io.kubernetes.cri.container-type")
        .or_else(|| spec.pointer("/annotations/io.kubernetes.cri-o.ContainerType"))
        .and_then(Value::as_str);
    if ctype == Some("sandbox") {
        return Ok(Outcome::Sandbox);
    }
    let args = spec
        .pointer_mut("/process/args")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| Error::InvalidArgument("config.json has no process.args".into()))?;
    if args.is_empty() {
        return Err(Error::InvalidArgument(
            "config.json process.args is empty".into(),
        ));
    }
    if args.first().and_then(Value::as_str) == Some(INIT_PATH) {
        return Ok(Outcome::AlreadyWrapped);
    }
    let mut wrapped = vec![json!(INIT_PATH), json!("--")];
    wrapped.append(args);
    *args = wrapped;

    let mount = json!({
        "destination": INIT_PATH,
        "type": "bind",
        "source": init_host_path.to_string_lossy(),
        "options": ["rbind", "ro", "nosuid", "nodev"],
    });
    match spec.get_mut("mounts").and_then(Value::as_array_mut) {
        Some(m) => m.push(mount),
        None => {
            spec.as_object_mut()
                .ok_or_else(|| Error::InvalidArgument("config.json is not an object".into()))?
                .insert("mounts".into(), json!([mount]));
        }
    }
    Ok(Outcome::Wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["sh", "-c", "echo hi"], "terminal": false, "x-unknown": 1},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"namespaces": [{"type": "pid"}]},
            "vendorField": {"keep": true}
        })
    }

    #[test]
    fn init_wraps_the_args_and_is_mounted_read_only() {
        let mut s = spec();
        assert_eq!(
            wrap_spec(&mut s, Path::new("/usr/local/bin/kata-cr-init")).unwrap(),
            Outcome::Wrapped
        );
        assert_eq!(
            s["process"]["args"],
            json!([INIT_PATH, "--", "sh", "-c", "echo hi"])
        );
        let m = &s["mounts"][1];
        assert_eq!(m["destination"], INIT_PATH);
        assert_eq!(m["source"], "/usr/local/bin/kata-cr-init");
        assert!(m["options"].as_array().unwrap().contains(&json!("ro")));
        // Fields kata-cr does not know survive.
        assert_eq!(s["vendorField"]["keep"], true);
        assert_eq!(s["process"]["x-unknown"], 1);
    }

    #[test]
    fn sandbox_and_rewrapped_specs_are_left_alone() {
        let mut sb = spec();
        sb["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"});
        let before = sb.clone();
        assert_eq!(
            wrap_spec(&mut sb, Path::new("/i")).unwrap(),
            Outcome::Sandbox
        );
        assert_eq!(sb, before);
        let mut s = spec();
        wrap_spec(&mut s, Path::new("/i")).unwrap();
        let once = s.clone();
        assert_eq!(
            wrap_spec(&mut s, Path::new("/i")).unwrap(),
            Outcome::AlreadyWrapped
        );
        assert_eq!(s, once);
    }

    #[test]
    fn missing_args_are_an_error() {
        let mut s = json!({"process": {}});
        assert!(wrap_spec(&mut s, Path::new("/i"))
            .unwrap_err()
            .to_string()
            .contains("process.args"));
        let mut s = json!({"process": {"args": []}});
        assert!(wrap_spec(&mut s, Path::new("/i")).is_err());
    }

    #[test]
    fn bundle_file_is_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), spec().to_string()).unwrap();
        wrap_bundle(dir.path(), Path::new("/i")).unwrap();
        let back: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(back["process"]["args"][0], INIT_PATH);
    }
}
