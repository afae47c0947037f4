//! Flag parsing with the conventions of crictl (urfave/cli on Go's flag package):
//! `--name value`, `--name=value`, `-n value`, `-nvalue`, single-dash long names
//! (`-timeout 5`), clustered short booleans (`-aq`), `--` ends flags.

use std::collections::HashMap;

pub struct Flag {
    /// Long name first, then short aliases; all without dashes.
    pub names: &'static [&'static str],
    pub value: bool,
}

pub const fn b(names: &'static [&'static str]) -> Flag {
    Flag {
        names,
        value: false,
    }
}

pub const fn v(names: &'static [&'static str]) -> Flag {
    Flag { names, value: true }
}

#[derive(Default, Debug)]
pub struct Parsed {
    flags: HashMap<&'static str, Vec<String>>,
    pub pos: Vec<String>,
}

impl Parsed {
    pub fn has(&self, name: &str) -> bool {
        self.flags
            .get(name)
            .and_then(|v| v.last())
            .is_some_and(|v| v != "false")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .and_then(|v| v.last())
            .map(|s| s.as_str())
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.flags.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }
}

fn find<'a>(spec: &'a [Flag], name: &str) -> Option<&'a Flag> {
    spec.iter().find(|f| f.names.contains(&name))
}

/// Parses `args`. With `interleave`, flags may follow positional arguments (as most
/// crictl users write `crictl rm ID -f`); without it, the first positional argument
/// ends flag parsing (needed for `exec ID CMD -flags-of-cmd`).
pub fn parse(args: &[String], spec: &[Flag], interleave: bool) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            p.pos.extend(args[i..].iter().cloned());
            break;
        }
        if a.len() < 2 || !a.starts_with('-') {
            p.pos.push(a.clone());
            if !interleave {
                p.pos.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // Whole name (long, or single-dash long as Go accepts, or a lone short).
        if let Some(f) = find(spec, name) {
            let key = f.names[0];
            let val = if f.value {
                match inline {
                    Some(v) => v,
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| format!("flag needs an argument: {a}"))?;
                        i += 1;
                        v.clone()
                    }
                }
            } else {
                inline.unwrap_or_else(|| "true".into())
            };
            p.flags.entry(key).or_default().push(val);
            continue;
        }
        if a.starts_with("--") {
            return Err(format!("flag provided but not defined: {a}"));
        }
        // Cluster of short flags: -aq, -t5, -it.
        let chars: Vec<char> = body.chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let n = chars[j].to_string();
            let f = find(spec, &n).ok_or_else(|| format!("flag provided but not defined: -{n}"))?;
            let key = f.names[0];
            j += 1;
            if f.value {
                let rest: String = chars[j..].iter().collect();
                let rest = rest.strip_prefix('=').map(str::to_string).unwrap_or(rest);
                let val = if !rest.is_empty() {
                    rest
                } else {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("flag needs an argument: -{n}"))?;
                    i += 1;
                    v.clone()
                };
                p.flags.entry(key).or_default().push(val);
                break;
            }
            p.flags.entry(key).or_default().push("true".into());
        }
    }
    Ok(p)
}

/// Go duration ("2s", "1m30s", "500ms") or bare seconds.
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    if let Ok(secs) = s.parse::<f64>() {
        return Ok(std::time::Duration::from_secs_f64(secs.max(0.0)));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    const SPEC: &[Flag] = &[
        b(&["all", "a"]),
        b(&["quiet", "q"]),
        v(&["timeout", "t"]),
        v(&["export", "e"]),
        b(&["interactive", "i"]),
        b(&["tty"]),
    ];

    #[test]
    fn forms() {
        let p = parse(
            &s(&["-aq", "x", "--timeout=3", "-e", "f", "y", "-t5"]),
            SPEC,
            true,
        )
        .unwrap();
        assert!(p.has("all") && p.has("quiet"));
        assert_eq!(p.get("timeout"), Some("5"));
        assert_eq!(p.get("export"), Some("f"));
        assert_eq!(p.pos, vec!["x", "y"]);
        let p = parse(
            &s(&["-timeout", "7", "--export", "a=b", "--", "-a"]),
            SPEC,
            true,
        )
        .unwrap();
        assert_eq!(p.get("timeout"), Some("7"));
        assert_eq!(p.get("export"), Some("a=b"));
        assert_eq!(p.pos, vec!["-a"]);
        assert!(!p.has("all"));
    }

    #[test]
    fn stop_at_positional() {
        let p = parse(&s(&["-i", "ID", "ls", "-a"]), SPEC, false).unwrap();
        assert!(p.has("interactive") && !p.has("all"));
        assert_eq!(p.pos, vec!["ID", "ls", "-a"]);
        assert!(parse(&s(&["--bogus"]), SPEC, true).is_err());
        assert!(parse(&s(&["-e"]), SPEC, true).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("2s").unwrap().as_secs(), 2);
        assert_eq!(duration("1m30s").unwrap().as_secs(), 90);
        assert_eq!(duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(duration("10").unwrap().as_secs(), 10);
        assert!(duration("5x").is_err());
    }
}
