//! crictl's messages on stderr, in the form its logger (logrus) gives them: on a
//! terminal `FATA[0000] message`, otherwise `time="..." level=fatal msg="message"`
//! with the message quoted when it needs to be.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// `--debug`: debug lines are printed too.
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub fn debug(msg: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        line("debug", "DEBU", msg);
    }
}

pub fn fatal(msg: &str) {
    line("fatal", "FATA", msg);
}
pub fn error(msg: &str) {
    line("error", "ERRO", msg);
}
pub fn warn(msg: &str) {
    line("warning", "WARN", msg);
}
pub fn info(msg: &str) {
    line("info", "INFO", msg);
}

fn line(level: &str, tag: &str, msg: &str) {
    let _ = std::io::stdout().flush();
    let mut err = std::io::stderr();
    let text = if err.is_terminal() {
        format!("{tag}[0000] {msg}\n")
    } else {
        format_line(&now_rfc3339(), level, msg)
    };
    let _ = err.write_all(text.as_bytes());
}

/// `time="T" level=L msg=M`, M quoted as logrus does (Go's %q) unless it is a plain
/// word.
pub fn format_line(time: &str, level: &str, msg: &str) -> String {
    format!("time=\"{time}\" level={level} msg={}\n", quote(msg))
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@' | '^' | '+')
        });
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Local time is what logrus prints; UTC here (no time zone database needed) in
/// the same RFC 3339 form.
fn now_rfc3339() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let full = crate::output::rfc3339_nano(Some(ns));
    // seconds precision, as logrus' default
    match full.find('.') {
        Some(dot) => format!("{}Z", &full[..dot]),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logrus_text_form() {
        assert_eq!(
            format_line("2026-01-01T00:00:00Z", "fatal", "creating container: rpc error: code = NotFound desc = \"x\" not found"),
            "time=\"2026-01-01T00:00:00Z\" level=fatal msg=\"creating container: rpc error: code = NotFound desc = \\\"x\\\" not found\"\n"
        );
        assert_eq!(
            format_line("T", "info", "done"),
            "time=\"T\" level=info msg=done\n"
        );
    }
}
