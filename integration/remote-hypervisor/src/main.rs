//! `kata-cr-remote-hypervisor`: Kata's remote hypervisor API served on this
//! host, so that the unmodified Kata shim and agent run without KVM (qemu
//! under TCG) in kata-cr's test bed. See [`options::USAGE`].

mod api;
mod bridge;
mod error;
mod hvsock;
mod options;
mod process;
mod server;
mod service;
mod vm;

use std::os::unix::fs::FileTypeExt as _;

use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};

use options::Mode;

fn main() {
    let opts = match options::parse(std::env::args().skip(1)) {
        Ok(Mode::Serve(o)) => *o,
        Ok(Mode::Help) => {
            print!("{}", options::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("kata-cr-remote-hypervisor: {e}\n\n{}", options::USAGE);
            std::process::exit(64);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // One thread: children die with the thread that forked them
    // (PR_SET_PDEATHSIG), so that thread must be the service's life.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kata-cr-remote-hypervisor: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(opts)) {
        eprintln!("kata-cr-remote-hypervisor: {e}");
        std::process::exit(1);
    }
}

async fn run(opts: options::Options) -> Result<(), String> {
    for (what, p) in [("--kernel", &opts.kernel), ("--initrd", &opts.initrd)] {
        if !p.is_file() {
            return Err(format!("{what} {}: no such file", p.display()));
        }
    }
    std::fs::create_dir_all(&opts.state_dir)
        .map_err(|e| format!("create {}: {e}", opts.state_dir.display()))?;
    let listener = bind(&opts.listen)?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let svc = service::Service::new(opts);
    tracing::info!(
        listen = %svc.options().listen.display(),
        kernel = %svc.options().kernel.display(),
        initrd = %svc.options().initrd.display(),
        "serving Kata's remote hypervisor API"
    );
    server::serve(listener, std::sync::Arc::clone(&svc), async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await;
    tracing::info!("stopping every VM");
    svc.stop_all().await;
    let _ = std::fs::remove_file(&svc.options().listen);
    Ok(())
}

/// The service's socket; a stale one (nobody answers) is replaced.
fn bind(path: &std::path::Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{} is served by another running service",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("remove stale {}: {e}", path.display()))?;
    }
    UnixListener::bind(path).map_err(|e| format!("bind {}: {e}", path.display()))
}
