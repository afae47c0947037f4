//! Durations as Go's `time.ParseDuration` reads them (crictl's duration flags): a
//! sequence of decimal numbers with units ns, us (µs), ms, s, m, h ("2s", "1m30s",
//! "1.5h"); "0" alone needs no unit. A negative one reads as zero (crictl then uses
//! its default).

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("time: {why} in duration {s:?}");
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if let Some(abs) = rest.strip_prefix('-') {
        // valid in Go; no use as a time limit: crictl takes it for "unset"
        return parse(abs).map(|_| Duration::ZERO);
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad("invalid duration"));
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().map_err(|_| bad("invalid duration"))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "" => return Err(bad("missing unit")),
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(bad(&format!("unknown unit {u:?}"))),
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        // as in Go: a bare number other than 0 has no unit
        assert!(parse("10").unwrap_err().contains("missing unit"));
        assert!(parse("5x").is_err());
        assert!(parse("").is_err());
        assert_eq!(parse("-1s").unwrap(), Duration::ZERO);
    }
}
