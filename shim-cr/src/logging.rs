//! Logs go where containerd collects shim logs: the `log` fifo containerd
//! creates in the bundle (it copies lines into its own log). Without a reader
//! the proxy stays silent rather than block.

use std::fs::File;
use std::path::Path;

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
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    // Then write in blocking mode so no line is dropped on a full pipe.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
    Some(f)
}
