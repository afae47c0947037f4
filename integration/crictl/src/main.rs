//! `crictl`: a CRI v1 client with crictl 1.36's syntax and behaviour, for the commands
//! checkpoint/restore work uses (crictl itself is not packaged in Debian). A script
//! written for crictl runs unchanged: same flags, outputs, exit statuses, error texts
//! (in crictl's logger's form) and defaults (the 2 s time limit). README.md lists
//! what it leaves out.
//!
//! Layout: [`cli`] the command line (clap, plus Go's flag conventions); [`ctx`]
//! endpoints, connections and each call's deadline; [`commands`] one module per
//! command; [`stream`] and [`tty`] the streaming exec session; [`config`] crictl's
//! pod and container config files; [`output`] its output formats; [`logrus`] its
//! messages on stderr.

mod cli;
mod client;
mod commands;
mod config;
mod ctx;
mod duration;
mod logrus;
mod output;
mod stream;
mod tty;

use std::io::Write;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use commands::{Fail, Outcome};
use ctx::{Ctx, FileConfig, DEFAULT_TIMEOUT};

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            logrus::fatal(&format!("tokio runtime: {e}"));
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(run(argv)) {
        Ok(c) => c,
        Err(Fail::Fatal(e)) => {
            logrus::fatal(&e);
            1
        }
        Err(Fail::Exit(msg, code)) => {
            let _ = std::io::stdout().flush();
            eprintln!("{msg}");
            code
        }
    };
    let _ = std::io::stdout().flush();
    // Exit at once, the runtime not dropped: dropping it would wait for a thread
    // still blocked reading stdin (exec -i on a terminal).
    std::process::exit(code);
}

async fn run(argv: Vec<String>) -> Outcome {
    let argv = cli::normalize(&argv, &Cli::command());
    let cli = match Cli::try_parse_from(std::iter::once("crictl".to_string()).chain(argv)) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            let code = match e.kind() {
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 1,
            };
            let _ = e.print();
            return Ok(code);
        }
    };
    logrus::set_debug(cli.debug);
    if cli.version {
        println!("crictl version kata-cr-{}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let Some(command) = cli.command else {
        print!("{}", Cli::command().render_help());
        return Ok(0);
    };
    let config_path = cli
        .config
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/etc/crictl.yaml".into());
    let file = match FileConfig::load(&config_path) {
        Ok(f) => f.unwrap_or_default(),
        // crictl stops on a bad config file only when it was named
        Err(e) if cli.config.is_some() => return Err(Fail::Fatal(e)),
        Err(_) => FileConfig::default(),
    };
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let runtime_ep = nonempty(cli.runtime_endpoint).or(file.runtime_endpoint);
    let image_ep = nonempty(cli.image_endpoint).or(file.image_endpoint);
    let timeout = match cli.timeout {
        // set, but zero or negative: the default
        Some(t) if t.is_zero() => DEFAULT_TIMEOUT,
        Some(t) => t,
        None => file.timeout.unwrap_or(DEFAULT_TIMEOUT),
    };
    let mut ctx = Ctx::new(runtime_ep, image_ep, timeout, file.pull_image_on_create);
    let c = &mut ctx;
    match command {
        Command::Runp(a) => commands::runp::run(c, a).await,
        Command::Create(a) => commands::create::run(c, a).await,
        Command::Start(a) => commands::start::run(c, a).await,
        Command::Stop(a) => commands::stop::run(c, a).await,
        Command::Rm(a) => commands::rm::run(c, a).await,
        Command::Stopp(a) => commands::stopp::run(c, a).await,
        Command::Rmp(a) => commands::rmp::run(c, a).await,
        Command::Ps(a) => commands::ps::run(c, a).await,
        Command::Pods(a) => commands::pods::run(c, a).await,
        Command::Inspect(a) => commands::inspect::containers(c, a).await,
        Command::Inspectp(a) => commands::inspect::pods(c, a).await,
        Command::Exec(a) => commands::exec::run(c, a).await,
        Command::Checkpoint(a) => commands::checkpoint::run(c, a).await,
        Command::Pull(a) => commands::pull::run(c, a).await,
        Command::Images(a) => commands::images::run(c, a).await,
        Command::Rmi(a) => commands::rmi::run(c, a).await,
        Command::Logs(a) => commands::logs::run(c, a).await,
        Command::Stats(a) => commands::stats::run(c, a).await,
        Command::Version => commands::version::run(c).await,
        Command::Info(a) => commands::info::run(c, a).await,
    }
}
