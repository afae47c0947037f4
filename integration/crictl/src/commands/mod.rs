//! One module per crictl command. Each `run` returns the exit status, or a
//! [`Fail`]: what crictl would end with.

pub mod checkpoint;
pub mod create;
pub mod exec;
pub mod images;
pub mod info;
pub mod inspect;
pub mod list;
pub mod logs;
pub mod pods;
pub mod ps;
pub mod pull;
pub mod rm;
pub mod rmi;
pub mod rmp;
pub mod runp;
pub mod start;
pub mod stats;
pub mod stop;
pub mod stopp;
pub mod version;

use clap::CommandFactory;

/// How a command fails, as crictl ends.
#[derive(Debug)]
pub enum Fail {
    /// An error crictl's logger reports as fatal; exit status 1.
    Fatal(String),
    /// `cli.Exit(message, code)`: the message alone on stderr, that exit status.
    Exit(String, i32),
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Fatal(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Fail {
        Fail::Fatal(s.into())
    }
}

pub type Outcome = Result<i32, Fail>;

/// crictl's answer to missing arguments for most commands: the command's help on
/// stdout, exit status 0.
pub fn help(command: &str) -> Outcome {
    let mut cli = crate::cli::Cli::command();
    cli.build();
    if let Some(sub) = cli.find_subcommand_mut(command) {
        print!("{}", sub.render_help());
    }
    Ok(0)
}

/// `key=value` labels of a filter flag.
pub fn labels(list: &[String]) -> Result<std::collections::HashMap<String, String>, String> {
    list.iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("incorrectly specified label: {l}"))
        })
        .collect()
}

/// A regex filter flag; empty means none.
pub fn regex(flag: &str, value: Option<&str>) -> Result<Option<regex::Regex>, String> {
    value
        .filter(|s| !s.is_empty())
        .map(|s| regex::Regex::new(s).map_err(|e| format!("--{flag}: {e}")))
        .transpose()
}

/// crictl's errors.Join of several failures: one per line.
pub fn joined(errors: Vec<String>) -> Outcome {
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Fail::Fatal(errors.join("\n")))
    }
}
