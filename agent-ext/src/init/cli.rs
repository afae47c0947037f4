//! Command line of the init:
//!
//! ```text
//! kata-cr-init -- <command> [<arg>...]
//! kata-cr-init --restore --keep-caps <hex> [--deny-setns] -- <command> [<arg>...]
//! kata-cr-init --exec --caps <B:E:P:I:A> [--deny-setns] -- <command> [<arg>...]
//! ```
//!
//! Options come before `--`; anything else there is rejected, so that an
//! option added later cannot be mistaken for a command.
//!
//! - `--restore`: [`Mode::Restore`], wait for `kata-cr-agent` to restore the
//!   workload instead of running the command (kept for `/proc/1/cmdline`).
//! - `--keep-caps <hex>` (restore mode, required): the capabilities the
//!   container's original spec granted, as a mask (bit n = capability n,
//!   `0x` prefix optional). Once the init has joined the restored workload's
//!   mount namespace, every capability set of the init (effective,
//!   permitted, inheritable, bounding, ambient) is cut down to it.
//! - `--deny-setns` (restore mode): after joining, install a seccomp filter
//!   that fails `setns` with `EPERM` (for a spec whose seccomp profile
//!   forbade `setns` and was relaxed for the init's one call).
//! - `--exec`: [`Mode::Exec`], set the capability sets `--caps` gives
//!   (bounding, effective, permitted, inheritable, ambient masks in hex,
//!   `:`-separated), deny `setns` if asked, and exec the command in place.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt as _;

use super::Error;

/// What the init does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Fork and exec the command, forward signals, reap, exit with its status.
    Run(Command),
    /// Adopt a workload that `kata-cr-agent` restores as the init's child,
    /// then supervise it as in [`Mode::Run`].
    Restore(RestoreOptions),
    /// Set an exec'd process's capabilities, then exec the command.
    Exec(ExecOptions),
}

/// Options of [`Mode::Exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// The sets the process gets (each cut to what it holds).
    pub caps: super::caps::Full,
    /// Forbid `setns` with a seccomp filter before the exec.
    pub deny_setns: bool,
    /// The command.
    pub command: Command,
}

/// Parses `B:E:P:I:A` (hex masks).
pub fn parse_full(text: &str) -> Result<super::caps::Full, Error> {
    let parts: Vec<&str> = text.split(':').collect();
    let [b, e, p, i, a] = parts[..] else {
        return Err(Error::Usage(format!(
            "bad capability sets {text:?} (want B:E:P:I:A)"
        )));
    };
    Ok(super::caps::Full {
        bounding: parse_caps(b)?,
        effective: parse_caps(e)?,
        permitted: parse_caps(p)?,
        inheritable: parse_caps(i)?,
        ambient: parse_caps(a)?,
    })
}

/// Options of [`Mode::Restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Capabilities the init keeps once the workload is adopted.
    pub keep_caps: u64,
    /// Forbid `setns` with a seccomp filter once the workload is adopted.
    pub deny_setns: bool,
    /// The original command (not run).
    pub command: Command,
}

/// The workload's command line, ready for `execvp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    argv: Vec<CString>,
}

impl Command {
    /// Builds a command; `argv` must not be empty.
    pub fn new(argv: Vec<CString>) -> Result<Self, Error> {
        if argv.is_empty() {
            return Err(Error::Usage("no command after `--`".into()));
        }
        Ok(Command { argv })
    }

    /// The program to look up and run (`argv[0]`).
    pub fn program(&self) -> &CString {
        &self.argv[0]
    }

    /// All arguments, `argv[0]` included.
    pub fn argv(&self) -> &[CString] {
        &self.argv
    }
}

/// Parses a capability mask: hexadecimal, `0x` prefix optional.
pub fn parse_caps(text: &str) -> Result<u64, Error> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() || digits.len() > 16 {
        return Err(Error::Usage(format!("bad capability mask {text:?}")));
    }
    u64::from_str_radix(digits, 16)
        .map_err(|_| Error::Usage(format!("bad capability mask {text:?}")))
}

/// Parses the arguments after the init's own `argv[0]`.
pub fn parse<I>(args: I) -> Result<Mode, Error>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let mut restore = false;
    let mut exec = false;
    let mut exec_caps = None;
    let mut keep_caps = None;
    let mut deny_setns = false;
    loop {
        let Some(arg) = args.next() else {
            return Err(Error::Usage("missing `--` and command".into()));
        };
        match arg.to_str() {
            Some("--") => break,
            Some("--restore") => restore = true,
            Some("--deny-setns") => deny_setns = true,
            Some("--exec") => exec = true,
            Some("--caps") => {
                let value = args
                    .next()
                    .ok_or_else(|| Error::Usage("--caps needs a value".into()))?;
                exec_caps = Some(parse_full(&value.to_string_lossy())?);
            }
            Some("--keep-caps") => {
                let value = args
                    .next()
                    .ok_or_else(|| Error::Usage("--keep-caps needs a value".into()))?;
                keep_caps = Some(parse_caps(&value.to_string_lossy())?);
            }
            _ => {
                return Err(Error::Usage(format!(
                    "unknown option {:?}",
                    arg.to_string_lossy()
                )))
            }
        }
    }
    let argv = args
        .map(|arg| {
            // execve arguments cannot contain NUL, so this only fails for
            // callers other than a runtime.
            CString::new(arg.into_vec())
                .map_err(|_| Error::Usage("argument contains a NUL byte".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let command = Command::new(argv)?;
    if exec {
        if restore || keep_caps.is_some() {
            return Err(Error::Usage("--exec goes without --restore".into()));
        }
        let caps = exec_caps.ok_or_else(|| Error::Usage("--exec needs --caps".into()))?;
        return Ok(Mode::Exec(ExecOptions {
            caps,
            deny_setns,
            command,
        }));
    }
    if exec_caps.is_some() {
        return Err(Error::Usage("--caps needs --exec".into()));
    }
    if !restore {
        if keep_caps.is_some() || deny_setns {
            return Err(Error::Usage(
                "--keep-caps and --deny-setns need --restore".into(),
            ));
        }
        return Ok(Mode::Run(command));
    }
    let keep_caps = keep_caps.ok_or_else(|| {
        Error::Usage("--restore needs --keep-caps (the original spec's capabilities)".into())
    })?;
    Ok(Mode::Restore(RestoreOptions {
        keep_caps,
        deny_setns,
        command,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Mode, Error> {
        parse(args.iter().map(OsString::from))
    }

    fn cstrings(args: &[&str]) -> Vec<CString> {
        args.iter().map(|a| CString::new(*a).unwrap()).collect()
    }

    #[test]
    fn run_mode_keeps_args_verbatim() {
        let mode = parse_strs(&["--", "sh", "-c", "echo -- x", "--"]).unwrap();
        let Mode::Run(command) = mode else {
            panic!("{mode:?}")
        };
        assert_eq!(command.argv(), cstrings(&["sh", "-c", "echo -- x", "--"]));
        assert_eq!(command.program().as_bytes(), b"sh");
    }

    #[test]
    fn non_utf8_args_pass_through() {
        let arg = OsString::from_vec(vec![0xff, b'a']);
        let Mode::Run(command) = parse([OsString::from("--"), arg]).unwrap() else {
            panic!("not run mode")
        };
        assert_eq!(command.argv()[0].as_bytes(), [0xff, b'a']);
    }

    #[test]
    fn usage_errors() {
        for args in [
            &[][..],
            &["--"][..],
            &["sh"][..],
            &["-x", "--", "sh"][..],
            &["--restore", "--", "sh"][..],
            &["--restore", "--keep-caps", "--", "sh"][..],
            &["--restore", "--keep-caps", "xyz", "--", "sh"][..],
            &["--restore", "--keep-caps", "1ffffffffffffffff", "--", "sh"][..],
            &["--keep-caps", "ff", "--", "sh"][..],
            &["--deny-setns", "--", "sh"][..],
            &["--restore", "--keep-caps", "ff"][..],
            &["--exec", "--", "sh"][..],
            &["--exec", "--caps", "1:2:3:4", "--", "sh"][..],
            &["--exec", "--caps", "1:2:3:4:x", "--", "sh"][..],
            &["--caps", "1:2:3:4:5", "--", "sh"][..],
            &[
                "--exec",
                "--restore",
                "--keep-caps",
                "1",
                "--caps",
                "1:2:3:4:5",
                "--",
                "sh",
            ][..],
        ] {
            let err = parse_strs(args).unwrap_err();
            assert_eq!(err.exit_code(), 120, "{args:?}: {err}");
        }
    }

    #[test]
    fn restore_mode_with_caps_and_seccomp() {
        let mode = parse_strs(&[
            "--restore",
            "--keep-caps",
            "0x00000000a80425fb",
            "--deny-setns",
            "--",
            "sh",
            "-c",
            "x",
        ])
        .unwrap();
        assert_eq!(
            mode,
            Mode::Restore(RestoreOptions {
                keep_caps: 0xa80425fb,
                deny_setns: true,
                command: Command::new(cstrings(&["sh", "-c", "x"])).unwrap(),
            })
        );
        let Mode::Restore(opts) =
            parse_strs(&["--keep-caps", "0", "--restore", "--", "sh"]).unwrap()
        else {
            panic!("not restore mode")
        };
        assert_eq!((opts.keep_caps, opts.deny_setns), (0, false));
    }

    #[test]
    fn exec_mode_with_five_sets() {
        let mode = parse_strs(&[
            "--exec",
            "--caps",
            "a80425fb:a80425fb:a80425fb:0:0",
            "--deny-setns",
            "--",
            "ps",
        ])
        .unwrap();
        assert_eq!(
            mode,
            Mode::Exec(ExecOptions {
                caps: super::super::caps::Full {
                    bounding: 0xa80425fb,
                    effective: 0xa80425fb,
                    permitted: 0xa80425fb,
                    inheritable: 0,
                    ambient: 0,
                },
                deny_setns: true,
                command: Command::new(cstrings(&["ps"])).unwrap(),
            })
        );
    }
}
