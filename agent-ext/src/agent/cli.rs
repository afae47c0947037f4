//! Command line of `kata-cr-agent`.
//!
//! ```text
//! kata-cr-agent [--listen ADDR] [--criu PATH] [--work-dir DIR] [--keep N]
//!               [--restore-timeout SECS] [--dump-timeout SECS]
//!               [--max-image-file-bytes N] [--max-image-set-bytes N]
//!               [--max-image-files N] [--max-metadata-image-bytes N]
//! kata-cr-agent ctl [--addr ADDR] capabilities
//! kata-cr-agent ctl [--addr ADDR] checkpoint --id ID --rootfs PATH
//!                   [--kill] [--tcp-established] [--file-locks] [--ext-unix-sk]
//! kata-cr-agent ctl [--addr ADDR] release --id ID --rootfs PATH --image-dir NAME
//! kata-cr-agent ctl [--addr ADDR] restore --id ID --rootfs PATH --image-dir NAME
//!                   [--tcp-established] [--tcp-close] [--file-locks] [--ext-unix-sk]
//! kata-cr-agent pidns-exec --pidns-fd N [--above PID] -- PROG [ARG...]   (the daemon's own helpers)
//! kata-cr-agent criu-guard [--on-loss FILE VALUE] -- PROG [ARG...]
//! ```
//! `ADDR` is `unix:///path` or `vsock://CID:PORT` (default
//! `unix:///run/kata-cr/agent.sock`). `ctl checkpoint` leaves the workload
//! running unless `--kill`.

use std::path::PathBuf;

use super::listen::{self, ListenAddr};
use super::Config;
use crate::api;

/// What to do.
#[derive(Debug, PartialEq)]
pub enum Mode {
    /// Run the daemon.
    Serve {
        /// Daemon settings.
        config: Config,
        /// Where to listen.
        listen: ListenAddr,
    },
    /// Call a running daemon.
    Ctl {
        /// Its address.
        addr: String,
        /// The call.
        call: Call,
    },
    /// Print usage.
    Help,
    /// The daemon's helper that runs criu dump ([`super::guard`]).
    Guard {
        /// What to write where if the daemon dies first.
        on_loss: Option<super::guard::OnLoss>,
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// The daemon's helper that runs criu restore in a pid namespace
    /// ([`super::pidns`]).
    PidnsExec {
        /// Descriptor open on the pid namespace.
        pidns_fd: i32,
        /// The program's pid goes above this one (`--above`).
        above: Option<i32>,
        /// Program and arguments.
        argv: Vec<String>,
    },
}

/// A `ctl` call.
#[derive(Debug, PartialEq)]
pub enum Call {
    /// `Capabilities`.
    Capabilities,
    /// `Checkpoint`.
    Checkpoint(api::CheckpointRequest),
    /// `Restore`.
    Restore(api::RestoreRequest),
    /// `ReleaseImages`.
    Release(api::ReleaseImagesRequest),
}

impl PartialEq for Config {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.criu,
            &self.work_dir,
            self.keep,
            &self.proc_root,
            self.restore_limit,
            self.dump_limit,
            self.limits,
        ) == (
            &o.criu,
            &o.work_dir,
            o.keep,
            &o.proc_root,
            o.restore_limit,
            o.dump_limit,
            o.limits,
        )
    }
}

/// Usage text.
pub const USAGE: &str = "\
usage: kata-cr-agent [--listen ADDR] [--criu PATH] [--work-dir DIR] [--keep N]
                     [--restore-timeout SECS] [--dump-timeout SECS]
                     [--max-image-file-bytes N] [--max-image-set-bytes N]
                     [--max-image-files N] [--max-metadata-image-bytes N]
       kata-cr-agent ctl [--addr ADDR] capabilities
       kata-cr-agent ctl [--addr ADDR] checkpoint --id ID --rootfs PATH
                         [--kill] [--tcp-established] [--file-locks] [--ext-unix-sk]
       kata-cr-agent ctl [--addr ADDR] release --id ID --rootfs PATH --image-dir NAME
       kata-cr-agent ctl [--addr ADDR] restore --id ID --rootfs PATH --image-dir NAME
                         [--tcp-established] [--tcp-close] [--file-locks] [--ext-unix-sk]
ADDR: unix:///path or vsock://CID:PORT (default unix:///run/kata-cr/agent.sock;
      in a Kata guest listen on vsock://-1:1029)
--restore-timeout, --dump-timeout: criu is killed and the operation fails
      after SECS (default 120 each; never past the caller's deadline less 10 s);
      a killed dump leaves the workload running in the freezer state found
--max-image-file-bytes: largest file of an image set, written by criu dump or
      staged for a restore (default 32 GiB)
--max-image-set-bytes: largest image set (default 64 GiB)
--max-image-files: most files in an image set (default 100000)
--max-metadata-image-bytes: largest criu image kata-cr-agent parses itself
      before a restore (files.img, core-*.img, mountpoints-*.img...), and
      of criu's log copied into a set (default 64 MiB)";

fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    args.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn count(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<u64, String> {
    value(args, flag)?
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} needs a positive number"))
}

fn seconds(
    args: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<std::time::Duration, String> {
    count(args, flag)
        .map(std::time::Duration::from_secs)
        .map_err(|_| format!("{flag} needs a number of seconds"))
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("ctl") {
        args.next();
        return parse_ctl(args);
    }
    if args.peek().map(String::as_str) == Some("pidns-exec") {
        args.next();
        return parse_pidns_exec(args);
    }
    if args.peek().map(String::as_str) == Some("criu-guard") {
        args.next();
        return parse_guard(args);
    }
    let mut config = Config::default();
    let mut listen = listen::parse(api::DEFAULT_HOST_ADDRESS)?;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = listen::parse(&value(&mut args, &arg)?)?,
            "--criu" => config.criu = PathBuf::from(value(&mut args, &arg)?),
            "--work-dir" => config.work_dir = PathBuf::from(value(&mut args, &arg)?),
            "--keep" => {
                config.keep = value(&mut args, &arg)?
                    .parse()
                    .map_err(|_| "--keep needs a number".to_string())?
            }
            "--restore-timeout" => config.restore_limit = seconds(&mut args, &arg)?,
            "--dump-timeout" => config.dump_limit = seconds(&mut args, &arg)?,
            "--max-image-file-bytes" => config.limits.file = count(&mut args, &arg)?,
            "--max-image-set-bytes" => config.limits.total = count(&mut args, &arg)?,
            "--max-image-files" => config.limits.files = count(&mut args, &arg)?,
            "--max-metadata-image-bytes" => config.limits.metadata = count(&mut args, &arg)?,
            "-h" | "--help" => return Ok(Mode::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Mode::Serve { config, listen })
}

fn parse_guard(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut on_loss = None;
    loop {
        match args.next().as_deref() {
            Some("--on-loss") => {
                let file = value(&mut args, "--on-loss")?;
                let value = value(&mut args, "--on-loss")?;
                on_loss = Some(super::guard::OnLoss {
                    file: PathBuf::from(file),
                    value,
                });
            }
            Some("--") => break,
            _ => return Err("criu-guard needs [--on-loss FILE VALUE] -- PROG".into()),
        }
    }
    let argv: Vec<String> = args.collect();
    if argv.is_empty() {
        return Err("criu-guard needs a program".into());
    }
    Ok(Mode::Guard { on_loss, argv })
}

fn parse_pidns_exec(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    if args.next().as_deref() != Some("--pidns-fd") {
        return Err("pidns-exec needs --pidns-fd N".into());
    }
    let pidns_fd = value(&mut args, "--pidns-fd")?
        .parse()
        .map_err(|_| "--pidns-fd needs a number".to_string())?;
    let mut above = None;
    loop {
        match args.next().as_deref() {
            Some("--") => break,
            Some("--above") => {
                above = Some(
                    value(&mut args, "--above")?
                        .parse()
                        .map_err(|_| "--above needs a pid".to_string())?,
                )
            }
            _ => return Err("pidns-exec needs [--above PID] -- before the program".into()),
        }
    }
    let argv: Vec<String> = args.collect();
    if argv.is_empty() {
        return Err("pidns-exec needs a program".into());
    }
    Ok(Mode::PidnsExec {
        pidns_fd,
        above,
        argv,
    })
}

fn parse_ctl(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut addr = api::DEFAULT_HOST_ADDRESS.to_string();
    let verb = loop {
        match args.next().as_deref() {
            Some("--addr") => addr = value(&mut args, "--addr")?,
            Some("-h" | "--help") => return Ok(Mode::Help),
            Some(verb) => break verb.to_string(),
            None => {
                return Err("ctl needs a verb: capabilities, checkpoint, release or restore".into())
            }
        }
    };
    let call = match verb.as_str() {
        "capabilities" => {
            if let Some(extra) = args.next() {
                return Err(format!("unknown argument {extra:?}"));
            }
            Call::Capabilities
        }
        "checkpoint" => {
            let mut req = api::CheckpointRequest::new();
            req.leave_running = true;
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--id" => req.container_id = value(&mut args, &arg)?,
                    "--rootfs" => req.rootfs = value(&mut args, &arg)?,
                    "--kill" => req.leave_running = false,
                    "--tcp-established" => req.tcp_established = true,
                    "--file-locks" => req.file_locks = true,
                    "--ext-unix-sk" => req.ext_unix_sk = true,
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
            Call::Checkpoint(req)
        }
        "restore" => {
            let mut req = api::RestoreRequest::new();
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--id" => req.container_id = value(&mut args, &arg)?,
                    "--rootfs" => req.rootfs = value(&mut args, &arg)?,
                    "--image-dir" => req.image_dir = value(&mut args, &arg)?,
                    "--tcp-established" => req.tcp_established = true,
                    "--tcp-close" => req.tcp_close = true,
                    "--file-locks" => req.file_locks = true,
                    "--ext-unix-sk" => req.ext_unix_sk = true,
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
            Call::Restore(req)
        }
        "release" => {
            let mut req = api::ReleaseImagesRequest::new();
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--id" => req.container_id = value(&mut args, &arg)?,
                    "--rootfs" => req.rootfs = value(&mut args, &arg)?,
                    "--image-dir" => req.image_dir = value(&mut args, &arg)?,
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
            Call::Release(req)
        }
        other => return Err(format!("unknown ctl verb {other:?}")),
    };
    Ok(Mode::Ctl { addr, call })
}

/// Performs a `ctl` call, printing the reply; returns the exit code (0 ok,
/// 1 the call failed, 2 cannot connect).
pub async fn ctl(addr: &str, call: Call) -> i32 {
    let client = match api::connect(addr).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kata-cr-agent ctl: {e}");
            return 2;
        }
    };
    let result = match call {
        Call::Capabilities => client
            .capabilities(api::context(), &api::CapabilitiesRequest::new())
            .await
            .map(|r| {
                println!("api_version: {}", r.api_version);
                println!("agent_version: {}", r.agent_version);
                println!("criu_version: {}", r.criu_version);
                println!("criu_check_ok: {}", r.criu_check_ok);
                println!("criu_check_output: {}", r.criu_check_output);
            }),
        Call::Checkpoint(req) => client.checkpoint(api::context(), &req).await.map(|r| {
            println!("image_dir: {}", r.image_dir);
            println!("image_dir_path: {}", r.image_dir_path);
            println!("criu_log_path: {}", r.criu_log_path);
            println!("duration_ms: {}", r.duration_ms);
            println!("files: {}", r.files.join(" "));
        }),
        Call::Release(req) => client
            .release_images(api::context(), &req)
            .await
            .map(|r| println!("removed: {}", r.removed)),
        Call::Restore(req) => client.restore(api::context(), &req).await.map(|r| {
            println!("pid: {}", r.pid);
            println!("host_pid: {}", r.host_pid);
            println!("criu_log_path: {}", r.criu_log_path);
            println!("duration_ms: {}", r.duration_ms);
        }),
    };
    match result {
        Ok(()) => 0,
        Err(ttrpc::Error::RpcStatus(s)) => {
            eprintln!("kata-cr-agent ctl: {:?}: {}", s.code(), s.message());
            1
        }
        Err(e) => {
            eprintln!("kata-cr-agent ctl: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Mode, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn serve_defaults_and_options() {
        assert_eq!(
            p("").unwrap(),
            Mode::Serve {
                config: Config::default(),
                listen: ListenAddr::Unix("/run/kata-cr/agent.sock".into())
            }
        );
        match p("--listen vsock://-1:1029 --criu /usr/sbin/criu --work-dir /w --keep 5 --restore-timeout 30 \
                 --dump-timeout 7 --max-image-file-bytes 100 --max-image-set-bytes 200 \
                 --max-image-files 3 --max-metadata-image-bytes 10").unwrap() {
            Mode::Serve { config, listen } => {
                assert_eq!(
                    listen,
                    ListenAddr::Vsock {
                        cid: u32::MAX,
                        port: 1029
                    }
                );
                assert_eq!(config.criu, PathBuf::from("/usr/sbin/criu"));
                assert_eq!(config.work_dir, PathBuf::from("/w"));
                assert_eq!(config.keep, 5);
                assert_eq!(config.restore_limit, std::time::Duration::from_secs(30));
                assert_eq!(config.dump_limit, std::time::Duration::from_secs(7));
                assert_eq!(
                    config.limits,
                    crate::agent::limits::Limits {
                        file: 100,
                        total: 200,
                        files: 3,
                        metadata: 10
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(p("--bogus").is_err());
        assert!(p("--listen").is_err());
        assert!(p("--restore-timeout 0").is_err());
        assert!(p("--restore-timeout x").is_err());
        assert!(p("--dump-timeout 0").is_err());
        assert!(p("--max-image-files -1").is_err());
    }

    #[test]
    fn criu_guard_helper() {
        assert_eq!(
            p("criu-guard --on-loss /f FROZEN -- criu dump").unwrap(),
            Mode::Guard {
                on_loss: Some(crate::agent::guard::OnLoss {
                    file: "/f".into(),
                    value: "FROZEN".into()
                }),
                argv: vec!["criu".into(), "dump".into()]
            }
        );
        assert_eq!(
            p("criu-guard -- criu").unwrap(),
            Mode::Guard {
                on_loss: None,
                argv: vec!["criu".into()]
            }
        );
        assert!(p("criu-guard --").is_err());
        assert!(p("criu-guard --on-loss /f").is_err());
        assert!(p("criu-guard criu").is_err());
    }

    #[test]
    fn pidns_exec_helper() {
        assert_eq!(
            p("pidns-exec --pidns-fd 7 -- criu restore -v4").unwrap(),
            Mode::PidnsExec {
                pidns_fd: 7,
                above: None,
                argv: vec!["criu".into(), "restore".into(), "-v4".into()]
            }
        );
        assert_eq!(
            p("pidns-exec --pidns-fd 7 --above 32772 -- criu").unwrap(),
            Mode::PidnsExec {
                pidns_fd: 7,
                above: Some(32772),
                argv: vec!["criu".into()]
            }
        );
        assert!(p("pidns-exec --pidns-fd 7 --above x -- criu").is_err());
        assert!(p("pidns-exec --pidns-fd 7 --").is_err());
        assert!(p("pidns-exec --pidns-fd x -- criu").is_err());
        assert!(p("pidns-exec criu").is_err());
    }

    #[test]
    fn ctl_calls() {
        assert_eq!(
            p("ctl capabilities").unwrap(),
            Mode::Ctl {
                addr: api::DEFAULT_HOST_ADDRESS.into(),
                call: Call::Capabilities
            }
        );
        match p("ctl --addr unix:///s checkpoint --id c1 --rootfs /r --kill --tcp-established")
            .unwrap()
        {
            Mode::Ctl {
                addr,
                call: Call::Checkpoint(req),
            } => {
                assert_eq!(addr, "unix:///s");
                assert_eq!(
                    (
                        req.container_id.as_str(),
                        req.rootfs.as_str(),
                        req.image_dir.as_str()
                    ),
                    ("c1", "/r", "")
                );
                assert!(!req.leave_running && req.tcp_established && !req.file_locks);
            }
            other => panic!("{other:?}"),
        }
        match p("ctl restore --id c2 --rootfs /r2 --image-dir img --tcp-close").unwrap() {
            Mode::Ctl {
                call: Call::Restore(req),
                ..
            } => {
                assert_eq!(
                    (
                        req.container_id.as_str(),
                        req.rootfs.as_str(),
                        req.image_dir.as_str()
                    ),
                    ("c2", "/r2", "img")
                );
                assert!(req.tcp_close && !req.tcp_established);
            }
            other => panic!("{other:?}"),
        }
        match p("ctl release --id c1 --rootfs /r --image-dir .kata-cr-x").unwrap() {
            Mode::Ctl {
                call: Call::Release(req),
                ..
            } => assert_eq!(req.image_dir, ".kata-cr-x"),
            other => panic!("{other:?}"),
        }
        assert!(p("ctl checkpoint --image-dir d").is_err());
        assert!(p("ctl").is_err());
        assert!(p("ctl restore --kill").is_err());
        assert!(p("ctl frobnicate").is_err());
    }
}
