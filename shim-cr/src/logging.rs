//! Logs go where containerd collects shim logs: the `log` fifo containerd
//! creates in the bundle (it copies lines into its own log). Without a reader
//! the proxy stays silent rather than block.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tracing_subscriber::EnvFilter;

pub fn init(bundle: &Path, debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("KATA_CR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let Some(file) = open_fifo(&bundle.join("log")) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

fn open_fifo(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking open fails at once (ENXIO) when containerd is not reading.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
        .ok()?;
    // Then write in blocking mode so no line is dropped on a full pipe.
    if let Ok(bits) = fcntl(&f, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(bits) - OFlag::O_NONBLOCK;
        let _ = fcntl(&f, FcntlArg::F_SETFL(flags));
    }
    Some(f)
}
