//! `containerd-shim-kata-cr-v2`: checkpoint/restore for Kata Containers as a
//! proxy in front of the unmodified inner shim.
//!
//! `shim` is the start/delete protocol, `proxy` the server it launches,
//! `cr` checkpoint and restore, `tools` the operator subcommands
//! (dependencies point that way: shim -> proxy -> cr, tools -> cr). Beside
//! them: `config`, `error`, `logging`, `bundle` (the bundle's files),
//! `runtime_options` and `blocking` (work off the proxy's runtime).

mod blocking;
mod bundle;
mod config;
mod cr;
mod error;
mod logging;
mod proxy;
mod runtime_options;
mod shim;
mod tools;

use std::io::Write;

fn main() {
    let mut argv = std::env::args().skip(1);
    let first = argv.next();
    if first.as_deref() == Some(proxy::serve::ACTION) {
        let json = argv.next().unwrap_or_default();
        std::process::exit(match proxy::serve::run(&json) {
            Ok(()) => 0,
            Err(_) => 1,
        });
    }
    let subcommand: Option<fn(&[String]) -> i32> = match first.as_deref() {
        Some("doctor") => Some(tools::doctor::run),
        Some("guest") => Some(tools::guest::run),
        Some("rewrite-bundle") => Some(tools::rewrite_bundle::run),
        _ => None,
    };
    if let Some(run) = subcommand {
        let rest: Vec<String> = argv.collect();
        std::process::exit(run(&rest));
    }
    let args = match shim::args::ShimArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => fail(&e),
    };
    if args.version {
        println!("containerd-shim-kata-cr-v2 {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let out = match args.action.as_str() {
        "start" => shim::start::run(&args),
        "delete" => shim::delete::run(&args),
        other => Err(error::Error::InvalidArgument(format!(
            "unsupported action {other:?} (want start or delete)"
        ))),
    };
    match out {
        Ok(bytes) => {
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(&bytes);
            let _ = so.flush();
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &error::Error) -> ! {
    eprintln!("kata-cr: {e}");
    std::process::exit(1)
}
