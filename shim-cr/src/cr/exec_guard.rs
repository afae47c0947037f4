//! Execs into a restored container. Its bundle spec lends the init
//! capabilities (and `setns` through the seccomp profile) to join the
//! restored workload's mount namespace (see `spec_rewrite`). Runtimes start
//! execs from that spec: Kata's agent gives every exec the container
//! process's capability sets (Kata's shim forwards none of the exec's), and
//! runc the container's seccomp profile. So an exec of a restored container
//! runs as `kata-cr-init --exec --caps B:E:P:I:A [--deny-setns] -- <args>`:
//! the sets the exec asked for, cut to what the container's original spec
//! granted (the init's `--keep-caps`), and `setns` denied again where the
//! original profile denied it. The init sets them and execs the command in
//! place.

use kata_cr_api::INIT_PATH;
use serde_json::{json, Value};

use crate::cr::spec_rewrite::caps_mask;
use crate::error::{Error, Result};

/// What an exec of a restored container must not exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecGuard {
    /// The capabilities the container's original spec granted.
    pub keep: u64,
    /// The original seccomp profile was relaxed to let the init `setns`.
    pub deny_setns: bool,
}

/// The guard of a bundle spec wrapped for restore (`None` for any other):
/// read from the init's own arguments, so a retried Create finds it too.
pub fn of_spec(spec: &Value) -> Option<ExecGuard> {
    let args: Vec<&str> = spec
        .pointer("/process/args")?
        .as_array()?
        .iter()
        .map(|a| a.as_str().unwrap_or(""))
        .collect();
    if args.first() != Some(&INIT_PATH) {
        return None;
    }
    let opts = &args[1..args.iter().position(|a| *a == "--")?];
    if !opts.contains(&"--restore") {
        return None;
    }
    let at = opts.iter().position(|a| *a == "--keep-caps")?;
    let keep = u64::from_str_radix(opts.get(at + 1)?, 16).ok()?;
    Some(ExecGuard {
        keep,
        deny_setns: opts.contains(&"--deny-setns"),
    })
}

/// Rewrites an exec's process spec (JSON) so that kata-cr-init sets its
/// capabilities first. Returns the new JSON.
pub fn guard_exec(process_json: &[u8], guard: ExecGuard) -> Result<Vec<u8>> {
    let mut process: Value = serde_json::from_slice(process_json)
        .map_err(|e| Error::InvalidArgument(format!("exec process spec: {e}")))?;
    let set = |name: &str| -> Result<u64> {
        let names = process
            .pointer(&format!("/capabilities/{name}"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        caps_mask(names)
            .map(|m| m & guard.keep)
            .map_err(|e| Error::InvalidArgument(format!("exec process spec: {e}")))
    };
    let caps = format!(
        "{:x}:{:x}:{:x}:{:x}:{:x}",
        set("bounding")?,
        set("effective")?,
        set("permitted")?,
        set("inheritable")?,
        set("ambient")?
    );
    let args = process
        .get_mut("args")
        .and_then(Value::as_array_mut)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::InvalidArgument("exec process spec has no args".into()))?;
    let mut wrapped = vec![
        json!(INIT_PATH),
        json!("--exec"),
        json!("--caps"),
        json!(caps),
    ];
    if guard.deny_setns {
        wrapped.push(json!("--deny-setns"));
    }
    wrapped.push(json!("--"));
    wrapped.append(args);
    *args = wrapped;
    serde_json::to_vec(&process).map_err(|source| Error::Json {
        context: "serialise the exec process spec".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cr::spec_rewrite::wrap_spec_for_restore;

    fn restored(seccomp: bool) -> Value {
        let mut spec = json!({
            "process": {
                "args": ["sh", "-c", "x"],
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_KILL"],
                    "effective": ["CAP_CHOWN", "CAP_KILL"],
                    "permitted": ["CAP_CHOWN", "CAP_KILL"],
                }
            },
            "linux": {}
        });
        if seccomp {
            spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []});
        }
        wrap_spec_for_restore(&mut spec, Path::new("/i")).unwrap();
        spec
    }

    #[test]
    fn the_guard_is_the_original_grant_not_the_lent_one() {
        let g = of_spec(&restored(true)).unwrap();
        assert_eq!(g.keep, (1 << 0) | (1 << 5));
        assert!(g.deny_setns);
        assert!(!of_spec(&restored(false)).unwrap().deny_setns);
        let mut plain = json!({"process": {"args": ["sh"]}});
        crate::cr::spec_rewrite::wrap_spec(&mut plain, Path::new("/i")).unwrap();
        assert_eq!(of_spec(&plain), None);
        assert_eq!(of_spec(&json!({"process": {"args": ["sh"]}})), None);
    }

    #[test]
    fn an_exec_asking_for_more_gets_the_original_grant_at_most() {
        let g = ExecGuard {
            keep: (1 << 0) | (1 << 5),
            deny_setns: true,
        };
        let exec = json!({
            "args": ["ps", "-ef"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
                "effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
                "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
            }
        });
        let out: Value =
            serde_json::from_slice(&guard_exec(&serde_json::to_vec(&exec).unwrap(), g).unwrap())
                .unwrap();
        assert_eq!(
            out["args"],
            json!([
                INIT_PATH,
                "--exec",
                "--caps",
                "21:1:21:0:0",
                "--deny-setns",
                "--",
                "ps",
                "-ef"
            ])
        );
        assert_eq!(out["cwd"], "/");
    }

    #[test]
    fn bad_exec_specs_are_refused_by_name() {
        let g = ExecGuard {
            keep: 1,
            deny_setns: false,
        };
        for bad in [
            &b"{"[..],
            br#"{"args": []}"#,
            br#"{"cwd": "/"}"#,
            br#"{"args": ["x"], "capabilities": {"bounding": ["CAP_NOPE"]}}"#,
        ] {
            let e = guard_exec(bad, g).unwrap_err();
            assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT, "{e}");
            assert!(e.to_string().contains("exec process spec"), "{e}");
        }
    }
}
