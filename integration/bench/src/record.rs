//! The raw results of a benchmark run: one measurement per line of
//! `raw.tsv`, `metric<TAB>runtime<TAB>param<TAB>rep<TAB>value`, written by
//! the run's scripts (integration/bench/lib.sh `record`) and by the
//! measuring subcommands, read by the report.

use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub metric: String,
    pub runtime: String,
    pub param: String,
    pub rep: u32,
    pub value: f64,
}

pub fn append(path: &Path, r: &Record) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(
        f,
        "{}\t{}\t{}\t{}\t{}",
        r.metric, r.runtime, r.param, r.rep, r.value
    )
}

/// Parses `raw.tsv`; a malformed line is an error naming it (a figure from
/// a half-written line is no figure).
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || format!("raw.tsv line {}: {line:?}", i + 1);
        if f.len() != 5 {
            return Err(bad());
        }
        let value: f64 = f[4].parse().map_err(|_| bad())?;
        if !value.is_finite() {
            return Err(bad());
        }
        out.push(Record {
            metric: f[0].into(),
            runtime: f[1].into(),
            param: f[2].into(),
            rep: f[3].parse().map_err(|_| bad())?,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("raw.tsv");
        let r = Record {
            metric: "ckpt.s".into(),
            runtime: "runc".into(),
            param: "256".into(),
            rep: 2,
            value: 1.25,
        };
        append(&p, &r).unwrap();
        append(&p, &r).unwrap();
        let got = parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(got, vec![r.clone(), r]);
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert!(parse("ckpt.s\trunc\t256\t1\n").is_err());
        assert!(parse("ckpt.s\trunc\t256\t1\tfast\n").is_err());
        assert!(parse("ckpt.s\trunc\t256\tx\t1\n").is_err());
        assert!(parse("ckpt.s\trunc\t256\t1\tNaN\n").is_err());
        assert_eq!(parse("# comment\n\n").unwrap(), vec![]);
    }
}
