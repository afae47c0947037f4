//! Operator subcommands of `containerd-shim-kata-cr-v2`, running the
//! proxy's own code paths outside containerd: `doctor` (what a host lacks),
//! `guest` (kata-cr-agent in a Kata sandbox, as the proxy reaches it) and
//! `rewrite-bundle` (the proxy's change to a bundle).

pub mod doctor;
pub mod guest;
pub mod rewrite_bundle;

use crate::config::{self, Config};
use crate::error::{Error, Result};

/// Prints the outcome; returns the exit status.
fn report(r: Result<String>) -> i32 {
    match r {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            // The status's message (its code's name, then the cause): what
            // the agent said, without ttrpc's debug rendering of a status.
            eprintln!("kata-cr: {}", e.to_status().message());
            1
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))
}

/// kata-cr's configuration: `path`, else `$KATA_CR_CONFIG`, else the default.
fn load_config(path: Option<&str>) -> Result<Config> {
    let env_path = std::env::var(config::ENV_PATH).ok();
    Config::resolve(path.or(env_path.as_deref()), None)
}
