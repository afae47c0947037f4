//! `kata-cr-agent`: see [`agent_ext::agent`].

use agent_ext::agent::cli::{self, Mode};

fn main() {
    let mode = match cli::parse(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kata-cr-agent: {e}\n{}", cli::USAGE);
            std::process::exit(64);
        }
    };
    // The helper must stay single-threaded (setns into a pid namespace,
    // clone3): handled before the async runtime exists.
    if let Mode::PidnsExec {
        pidns_fd,
        above,
        argv,
    } = &mode
    {
        std::process::exit(agent_ext::agent::pidns::main(*pidns_fd, *above, argv));
    }
    if let Mode::Guard { on_loss, argv } = &mode {
        std::process::exit(agent_ext::agent::guard::main(on_loss.as_ref(), argv));
    }
    // Colours only for a person at a terminal: journald, the guest's kernel
    // log and files get plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kata-cr-agent: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        match mode {
            Mode::Help => {
                println!("{}", cli::USAGE);
                0
            }
            Mode::Ctl { addr, call } => cli::ctl(&addr, call).await,
            Mode::PidnsExec { .. } | Mode::Guard { .. } => {
                unreachable!("handled before the runtime starts")
            }
            Mode::Serve { config, listen } => {
                match agent_ext::agent::serve(config, &listen).await {
                    Ok(()) => 0,
                    Err(e) => {
                        tracing::error!(error = %e, "kata-cr-agent failed");
                        1
                    }
                }
            }
        }
    });
    std::process::exit(code);
}
