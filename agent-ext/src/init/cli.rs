//! Command line of the init: `kata-cr-init [<option>...] -- <command> [<arg>...]`.
//!
//! No option exists yet; everything before `--` is rejected so that options
//! added later (a restore mode) cannot be mistaken for a command.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt as _;

use super::Error;

/// What the init does. Each mode is a variant; a restore mode (supervising
/// a workload CRIU restored instead of forking one) will be another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Fork and exec the command, forward signals, reap, exit with its status.
    Run(Command),
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

/// Parses the arguments after the init's own `argv[0]`.
pub fn parse<I>(args: I) -> Result<Mode, Error>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    match args.next() {
        Some(first) if first == "--" => {}
        Some(first) => {
            return Err(Error::Usage(format!(
                "unknown option {:?}",
                first.to_string_lossy()
            )))
        }
        None => return Err(Error::Usage("missing `--` and command".into())),
    }
    let argv = args
        .map(|arg| {
            // execve arguments cannot contain NUL, so this only fails for
            // callers other than a runtime.
            CString::new(arg.into_vec())
                .map_err(|_| Error::Usage("argument contains a NUL byte".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Command::new(argv).map(Mode::Run)
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
        let Mode::Run(command) = mode;
        assert_eq!(command.argv(), cstrings(&["sh", "-c", "echo -- x", "--"]));
        assert_eq!(command.program().as_bytes(), b"sh");
    }

    #[test]
    fn non_utf8_args_pass_through() {
        let arg = OsString::from_vec(vec![0xff, b'a']);
        let Mode::Run(command) = parse([OsString::from("--"), arg]).unwrap();
        assert_eq!(command.argv()[0].as_bytes(), [0xff, b'a']);
    }

    #[test]
    fn usage_errors() {
        for args in [&[][..], &["--"][..], &["sh"][..], &["-x", "--", "sh"][..]] {
            let err = parse_strs(args).unwrap_err();
            assert_eq!(err.exit_code(), 120, "{args:?}: {err}");
        }
    }
}
