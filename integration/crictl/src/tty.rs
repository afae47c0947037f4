//! The local terminal of `crictl exec -it`: raw mode while the session lasts (put
//! back when [`Raw`] is dropped) and its size for the remote terminal.

use std::io::IsTerminal;

use rustix::termios::{self, OptionalActions, Termios};

/// The terminal on stdin in raw mode; dropping it restores the previous mode.
pub struct Raw {
    saved: Termios,
}

impl Raw {
    pub fn enter() -> Result<Raw, String> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).map_err(|e| format!("get terminal mode: {e}"))?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)
            .map_err(|e| format!("set terminal to raw mode: {e}"))?;
        Ok(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Whether stdin is a terminal (crictl: `input is not a terminal` otherwise).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// (width, height) of the terminal on stdout, else stdin.
pub fn size() -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    Some((ws.ws_col, ws.ws_row))
}
