//! The one change kata-cr makes to a container before the inner shim sees
//! it: `kata-cr-init` becomes PID 1 (a read-only bind mount of the host
//! binary, the original `process.args` after `--`). The init keeps the
//! workload a session leader in its own subtree, which is what criu dumps and
//! restores. Only the bundle's `config.json` (what the inner shim reads)
//! changes; containerd's stored spec, from which exec specs and checkpoints
//! are made, stays as the user wrote it. The file is edited as JSON so every
//! field kata-cr does not know survives.

use std::path::Path;

// Where the init appears inside the container: in its /dev tmpfs, so that
// the bind mount's mount point is never part of the rootfs's writable layer.
// A rootfs diff that carried it (CRI's rootfs-diff.tar, applied over the new
// container's rootfs after Create) would replace the mount point under the
// new container's bind mount.
use kata_cr_api::INIT_PATH;
use serde_json::{json, Value};

use crate::bundle;
use crate::error::{Error, Result};

/// What the rewrite did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Wrapped,
    /// A CRI sandbox (pause) container: never checkpointed, left alone.
    Sandbox,
    /// Already wrapped (a retried Create).
    AlreadyWrapped,
}

/// How the init runs the container's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    /// Fork and run it.
    Run,
    /// Wait for kata-cr-agent to restore it as the init's child.
    Restore,
}

pub fn wrap_bundle(bundle: &Path, init_host_path: &Path, mode: InitMode) -> Result<Outcome> {
    let mut spec = bundle::read_spec(bundle)?;
    let outcome = match mode {
        InitMode::Run => wrap_spec(&mut spec, init_host_path)?,
        InitMode::Restore => wrap_spec_for_restore(&mut spec, init_host_path)?,
    };
    if outcome == Outcome::Wrapped {
        bundle::write_spec(bundle, &spec)?;
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

/// Capabilities the init needs for one moment in restore mode: to join the
/// restored workload's mount namespace (SYS_ADMIN, SYS_CHROOT) and to cut
/// its bounding set afterwards (SETPCAP). It drops them right after.
pub const LENT_CAPS: &[&str] = &["CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_SETPCAP"];

/// Restore mode: the init waits for the agent, joins the restored
/// workload's mount namespace with capabilities lent here, forbids `setns`
/// again when the spec had a seccomp profile, and keeps exactly the
/// original permitted set (`--keep-caps`).
pub fn wrap_spec_for_restore(spec: &mut Value, init_host_path: &Path) -> Result<Outcome> {
    let keep = caps_mask(
        spec.pointer("/process/capabilities/permitted")
            .or_else(|| spec.pointer("/process/capabilities/bounding"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
    )?;
    let outcome = wrap_spec(spec, init_host_path)?;
    if outcome != Outcome::Wrapped {
        return Ok(outcome);
    }
    let seccomp = spec.pointer("/linux/seccomp").is_some_and(|s| !s.is_null());
    let args = spec
        .pointer_mut("/process/args")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| Error::InvalidArgument("config.json has no process.args".into()))?;
    let mut flags = vec![
        json!("--restore"),
        json!("--keep-caps"),
        json!(format!("{keep:x}")),
    ];
    if seccomp {
        flags.push(json!("--deny-setns"));
    }
    // [init, "--", cmd...] -> [init, flags..., "--", cmd...]
    args.splice(1..1, flags);
    lend_caps(spec);
    if seccomp {
        allow_setns(spec);
    }
    Ok(outcome)
}

fn lend_caps(spec: &mut Value) {
    let Some(process) = spec.get_mut("process").and_then(Value::as_object_mut) else {
        return;
    };
    let caps = process.entry("capabilities").or_insert_with(|| json!({}));
    for set in ["bounding", "effective", "permitted"] {
        let list = caps
            .as_object_mut()
            .map(|c| c.entry(set).or_insert_with(|| json!([])));
        if let Some(Value::Array(list)) = list {
            for cap in LENT_CAPS {
                if !list.iter().any(|c| c.as_str() == Some(cap)) {
                    list.push(json!(cap));
                }
            }
        }
    }
}

/// Let `setns` through the bundle's seccomp profile (the init forbids it
/// again with `--deny-setns` once it has joined the workload).
fn allow_setns(spec: &mut Value) {
    let Some(seccomp) = spec
        .pointer_mut("/linux/seccomp")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let syscalls = seccomp.entry("syscalls").or_insert_with(|| json!([]));
    if let Value::Array(rules) = syscalls {
        for r in rules.iter_mut() {
            if let Some(Value::Array(names)) = r.get_mut("names") {
                names.retain(|n| n.as_str() != Some("setns"));
            }
        }
        rules.retain(|r| {
            r.get("names")
                .and_then(Value::as_array)
                .is_none_or(|n| !n.is_empty())
        });
        rules.push(json!({"names": ["setns"], "action": "SCMP_ACT_ALLOW"}));
    }
}

/// Linux capability numbers, by OCI name.
const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub fn caps_mask(names: &[Value]) -> Result<u64> {
    let mut mask = 0u64;
    for n in names {
        let name = n
            .as_str()
            .ok_or_else(|| Error::InvalidArgument(format!("capability {n} is not a string")))?;
        let bit = CAP_NAMES
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::InvalidArgument(format!("unknown capability {name}")))?;
        mask |= 1 << bit;
    }
    Ok(mask)
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
    fn restore_mode_lends_caps_and_keeps_the_original_mask() {
        let mut s = spec();
        s["process"]["capabilities"] = json!({"bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"]});
        s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["setns", "read"], "action": "SCMP_ACT_ERRNO"},
                         {"names": ["setns"], "action": "SCMP_ACT_KILL"}]});
        assert_eq!(
            wrap_spec_for_restore(&mut s, Path::new("/i")).unwrap(),
            Outcome::Wrapped
        );
        // CAP_CHOWN = 0, CAP_KILL = 5
        assert_eq!(
            s["process"]["args"],
            json!([
                INIT_PATH,
                "--restore",
                "--keep-caps",
                "21",
                "--deny-setns",
                "--",
                "sh",
                "-c",
                "echo hi"
            ])
        );
        for set in ["bounding", "effective", "permitted"] {
            let l = s["process"]["capabilities"][set].as_array().unwrap();
            assert!(
                l.contains(&json!("CAP_SYS_ADMIN")) && l.contains(&json!("CAP_SYS_CHROOT")),
                "{set}"
            );
        }
        let rules = s["linux"]["seccomp"]["syscalls"].as_array().unwrap();
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(rules[0]["names"], json!(["read"]));
        assert_eq!(
            rules[1],
            json!({"names": ["setns"], "action": "SCMP_ACT_ALLOW"})
        );
    }

    #[test]
    fn restore_mode_without_seccomp_does_not_deny_setns() {
        let mut s = spec();
        wrap_spec_for_restore(&mut s, Path::new("/i")).unwrap();
        assert_eq!(s["process"]["args"][1], "--restore");
        assert_eq!(s["process"]["args"][3], "0");
        assert!(!s["process"]["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--deny-setns")));
    }

    #[test]
    fn capability_names_map_to_kernel_numbers() {
        assert_eq!(caps_mask(&[json!("CAP_SYS_ADMIN")]).unwrap(), 1 << 21);
        assert_eq!(
            caps_mask(&[json!("CAP_CHECKPOINT_RESTORE")]).unwrap(),
            1 << 40
        );
        assert!(caps_mask(&[json!("CAP_NOPE")])
            .unwrap_err()
            .to_string()
            .contains("CAP_NOPE"));
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
        wrap_bundle(dir.path(), Path::new("/i"), InitMode::Run).unwrap();
        let back: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(back["process"]["args"][0], INIT_PATH);
    }
}
