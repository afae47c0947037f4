//! `guest SANDBOX capabilities|checkpoint|restore ...`: talk to
//! kata-cr-agent in a Kata sandbox's guest exactly as the proxy does (the
//! Kata shim's management socket, vsock or hybrid vsock, the guest rootfs
//! path, staging through the rootfs's upperdir). For diagnosing a sandbox,
//! and the proof of the Kata side in a real VM (`integration/vm`).

use std::path::{Path, PathBuf};

use kata_cr_api as api;

use super::{load_config, report, runtime};
use crate::config::AgentMode;
use crate::cr::agent::AgentBackend;
use crate::cr::container::{check_id, Container};
use crate::error::{Error, Result};

const GUEST_USAGE: &str = "usage: containerd-shim-kata-cr-v2 guest [--config PATH] SANDBOX VERB ...
  capabilities                                     kata-cr-agent's and criu's state in the guest
  checkpoint CONTAINER --upperdir DIR --to DIR [--exit]
                                                   dump CONTAINER (left running unless --exit) and
                                                   move the image set from its rootfs upperdir to DIR
  restore CONTAINER --upperdir DIR --from DIR      stage the image set in DIR into the upperdir and
                                                   restore it into CONTAINER, whose init waits in
                                                   restore mode";

/// `guest ...`; returns the exit status.
pub fn run(args: &[String]) -> i32 {
    match parse_guest(args) {
        Ok(Some(cmd)) => report(runtime().and_then(|rt| rt.block_on(cmd.run()))),
        Ok(None) => {
            println!("{GUEST_USAGE}");
            0
        }
        Err(e) => {
            eprintln!("kata-cr guest: {e}\n{GUEST_USAGE}");
            2
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verb {
    Capabilities,
    Checkpoint {
        container: String,
        upperdir: PathBuf,
        to: PathBuf,
        exit: bool,
    },
    Restore {
        container: String,
        upperdir: PathBuf,
        from: PathBuf,
    },
}

#[derive(Debug, PartialEq, Eq)]
struct GuestCmd {
    config: Option<String>,
    sandbox: String,
    verb: Verb,
}

/// `None` for --help.
fn parse_guest(args: &[String]) -> std::result::Result<Option<GuestCmd>, String> {
    let mut config = None;
    let mut positional = Vec::new();
    let (mut upperdir, mut to, mut from, mut exit) = (None, None, None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--config" => config = Some(value("--config")?),
            "--upperdir" => upperdir = Some(PathBuf::from(value("--upperdir")?)),
            "--to" => to = Some(PathBuf::from(value("--to")?)),
            "--from" => from = Some(PathBuf::from(value("--from")?)),
            "--exit" => exit = true,
            o if o.starts_with('-') => return Err(format!("unknown option {o:?}")),
            p => positional.push(p.to_string()),
        }
    }
    let need = |what: Option<PathBuf>, flag: &str, verb: &str| {
        what.ok_or_else(|| format!("{verb} needs {flag} DIR"))
    };
    let verb = match positional.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [_, "capabilities"] => Verb::Capabilities,
        [_, "checkpoint", c] => Verb::Checkpoint {
            container: c.to_string(),
            upperdir: need(upperdir, "--upperdir", "checkpoint")?,
            to: need(to, "--to", "checkpoint")?,
            exit,
        },
        [_, "restore", c] => Verb::Restore {
            container: c.to_string(),
            upperdir: need(upperdir, "--upperdir", "restore")?,
            from: need(from, "--from", "restore")?,
        },
        [] => return Err("no SANDBOX".into()),
        _ => return Err(format!("cannot make sense of {positional:?}")),
    };
    Ok(Some(GuestCmd {
        config,
        sandbox: positional[0].clone(),
        verb,
    }))
}

impl GuestCmd {
    async fn run(self) -> Result<String> {
        let mut cfg = load_config(self.config.as_deref())?;
        // Whatever the file says about the proxy's own pods, this talks to a
        // Kata guest.
        cfg.agent.mode = AgentMode::Kata;
        let backend = AgentBackend::from_config(&cfg).for_sandbox(&self.sandbox);
        let sid = self.sandbox.as_str();
        match self.verb {
            Verb::Capabilities => capabilities(&backend, sid).await,
            Verb::Checkpoint {
                container,
                upperdir,
                to,
                exit,
            } => {
                let c = container_at(&container, upperdir)?;
                // criu's options as the proxy takes them for a CRI checkpoint:
                // kata-cr's [criu] settings.
                let want = crate::cr::checkpoint::Wanted {
                    exit,
                    tcp_established: cfg.criu.tcp_established,
                    ext_unix_sk: cfg.criu.ext_unix_sk,
                    file_locks: cfg.criu.file_locks,
                };
                checkpoint(&backend, sid, &c, want, &to).await
            }
            Verb::Restore {
                container,
                upperdir,
                from,
            } => {
                let c = container_at(&container, upperdir)?;
                let name = crate::cr::restore::prepare(&backend, &c, &from).await?;
                let pid = crate::cr::restore::restore(&backend, &c, &name).await?;
                Ok(format!(
                    "restored {container} in sandbox {sid}: workload pid {pid} in the guest"
                ))
            }
        }
    }
}

async fn capabilities(backend: &AgentBackend, sid: &str) -> Result<String> {
    let client = backend.connect().await?;
    let caps = client
        .capabilities(
            api::context_with_timeout(backend.timeout),
            &api::CapabilitiesRequest::new(),
        )
        .await
        .map_err(|e| {
            Error::from(e).context(format!("sandbox {sid}: kata-cr-agent capabilities"))
        })?;
    Ok(format!(
        "sandbox {sid}: kata-cr-agent {} (api {}), criu {}, criu check: {}\n{}",
        caps.agent_version,
        caps.api_version,
        if caps.criu_version.is_empty() {
            "missing"
        } else {
            &caps.criu_version
        },
        if caps.criu_check_ok { "ok" } else { "FAILED" },
        caps.criu_check_output.trim_end()
    ))
}

async fn checkpoint(
    backend: &AgentBackend,
    sid: &str,
    c: &Container,
    want: crate::cr::checkpoint::Wanted,
    to: &Path,
) -> Result<String> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(format!("create {}", to.display()), e))?;
    let upper = c.upperdir.clone().unwrap_or_default();
    let (dumped, staged, dump_ms) =
        crate::cr::checkpoint::dump_and_stage(backend, c, want, &upper, to).await?;
    Ok(format!(
        "checkpoint of {} in sandbox {sid}: {} files, {} bytes in {} ({:?}; dump {dump_ms} ms; guest criu log {})",
        c.id,
        staged.files.len(),
        staged.bytes,
        to.display(),
        staged.method,
        dumped.criu_log_path
    ))
}

/// A container known only by id and the host side of its rootfs.
fn container_at(id: &str, upperdir: PathBuf) -> Result<Container> {
    check_id("container", id)?;
    if !upperdir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "--upperdir {}: not a directory",
            upperdir.display()
        )));
    }
    Ok(Container {
        id: id.to_string(),
        bundle: Path::new("/").join(id),
        upperdir: Some(upperdir),
        exec_guard: None,
        checkpoint: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn guest_verbs_parse() {
        let c = parse_guest(&args("sb1 capabilities")).unwrap().unwrap();
        assert_eq!(c.sandbox, "sb1");
        assert_eq!(c.verb, Verb::Capabilities);
        let c = parse_guest(&args(
            "--config /k.toml sb checkpoint c1 --upperdir /u --to /out --exit",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.config.as_deref(), Some("/k.toml"));
        assert_eq!(
            c.verb,
            Verb::Checkpoint {
                container: "c1".into(),
                upperdir: "/u".into(),
                to: "/out".into(),
                exit: true
            }
        );
        let c = parse_guest(&args("sb restore c2 --from /in --upperdir /u2"))
            .unwrap()
            .unwrap();
        assert_eq!(
            c.verb,
            Verb::Restore {
                container: "c2".into(),
                upperdir: "/u2".into(),
                from: "/in".into()
            }
        );
        assert_eq!(parse_guest(&args("--help")).unwrap(), None);
    }

    #[test]
    fn guest_usage_errors_say_what_is_missing() {
        let e = parse_guest(&args("sb checkpoint c1 --to /out")).unwrap_err();
        assert!(e.contains("--upperdir"), "{e}");
        let e = parse_guest(&args("sb restore c1 --upperdir /u")).unwrap_err();
        assert!(e.contains("--from"), "{e}");
        assert!(parse_guest(&args("")).unwrap_err().contains("SANDBOX"));
        assert!(parse_guest(&args("sb frobnicate")).is_err());
        assert!(parse_guest(&args("sb capabilities --bogus")).is_err());
        assert!(parse_guest(&args("sb checkpoint c1 --to"))
            .unwrap_err()
            .contains("--to"));
    }

    #[test]
    fn hostile_container_ids_and_missing_upperdirs_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = container_at("../etc", d.path().into()).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT);
        let e = container_at("c1", d.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let c = container_at("c1", d.path().into()).unwrap();
        assert_eq!(c.upperdir.as_deref(), Some(d.path()));
    }
}
