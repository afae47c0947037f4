//! Every run's headline figures (a ratio where the row has one), kept in
//! `history.tsv` as `run<TAB>key<TAB>value`, so that the report and the
//! README quote ranges across runs.

use crate::report::summary::Row;

#[derive(Default)]
pub struct History {
    /// (run, key, value) in file order.
    lines: Vec<(String, String, f64)>,
}

impl History {
    /// Reads the file; lines it cannot read are dropped (the history is a
    /// convenience, each run's own figures stand without it).
    pub fn parse(text: &str) -> History {
        let lines = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let (run, key, v) = (f.next()?, f.next()?, f.next()?);
                Some((run.to_string(), key.to_string(), v.parse().ok()?))
            })
            .collect();
        History { lines }
    }

    /// Adds a run's figures unless that run is already in; says whether it
    /// added them.
    pub fn add_run(&mut self, run: &str, rows: &[Row]) -> bool {
        if self.lines.iter().any(|(r, _, _)| r == run) {
            return false;
        }
        for row in rows {
            if let Some(v) = row.headline() {
                self.lines.push((run.to_string(), row.key.clone(), v));
            }
        }
        true
    }

    pub fn to_tsv(&self) -> String {
        self.lines
            .iter()
            .map(|(r, k, v)| format!("{r}\t{k}\t{v}\n"))
            .collect()
    }

    pub fn runs(&self) -> usize {
        let mut runs: Vec<&str> = self.lines.iter().map(|(r, _, _)| r.as_str()).collect();
        runs.dedup();
        runs.len()
    }

    /// For `key`: how many runs have it, and its lowest and highest value.
    pub fn range(&self, key: &str) -> Option<(usize, f64, f64)> {
        let v: Vec<f64> = self
            .lines
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, v)| *v)
            .collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (!v.is_empty()).then_some((v.len(), lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summary::{Target, Unit};

    fn row(key: &str, ratio: f64) -> Row {
        Row {
            key: key.into(),
            figure: key.into(),
            baseline: None,
            kata: Some(9.0),
            unit: Unit::Seconds,
            ratio: Some(ratio),
            target: Target::None,
            reps: 1,
            range: None,
        }
    }

    #[test]
    fn runs_are_added_once_and_ranged() {
        let mut h = History::default();
        assert!(h.add_run("r1", &[row("ckpt.16", 1.2)]));
        assert!(!h.add_run("r1", &[row("ckpt.16", 9.0)]));
        let mut h = History::parse(&h.to_tsv());
        assert!(h.add_run("r2", &[row("ckpt.16", 0.9)]));
        assert_eq!(h.runs(), 2);
        assert_eq!(h.range("ckpt.16"), Some((2, 0.9, 1.2)));
        assert_eq!(h.range("ckpt.1"), None);
    }
}
