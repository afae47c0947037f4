//! `rewrite-bundle [--restore] [--init PATH] BUNDLE`: the change the proxy
//! makes to a bundle's `config.json` before the inner shim sees it.

use std::path::PathBuf;

use super::{load_config, report};
use crate::cr::spec_rewrite::{self, InitMode};

const USAGE: &str =
    "usage: containerd-shim-kata-cr-v2 rewrite-bundle [--restore] [--init PATH] BUNDLE";

/// `rewrite-bundle ...`; returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let mut mode = InitMode::Run;
    let mut init: Option<PathBuf> = None;
    let mut bundle: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--restore" => mode = InitMode::Restore,
            "--init" => init = it.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("{USAGE}\n\nMakes kata-cr-init PID 1 of BUNDLE's config.json (restore mode with --restore), as the proxy does on Create.");
                return 0;
            }
            b if bundle.is_none() && !b.starts_with('-') => bundle = Some(PathBuf::from(b)),
            other => {
                eprintln!("kata-cr rewrite-bundle: unexpected argument {other:?}\n{USAGE}");
                return 2;
            }
        }
    }
    let Some(bundle) = bundle else {
        eprintln!("kata-cr rewrite-bundle: no BUNDLE\n{USAGE}");
        return 2;
    };
    let init = match init {
        Some(p) => Ok(p),
        None => load_config(None).and_then(|c| c.init_binary_path()),
    };
    report(init.and_then(|init| {
        let outcome = spec_rewrite::wrap_bundle(&bundle, &init, mode)?;
        Ok(format!(
            "{}: {outcome:?}",
            bundle.join("config.json").display()
        ))
    }))
}
