//! The report as markdown: the run's table (printed by `make bench` too),
//! the ranges across runs from the history, and the plots.

use std::fmt::Write;

use crate::report::history::History;
use crate::report::summary::{Row, Target, Verdict};

/// What run.sh wrote about the run (`key<TAB>value` lines): when, which
/// commit, the bed's versions, the machine's load.
#[derive(Default)]
pub struct Meta {
    pairs: Vec<(String, String)>,
}

impl Meta {
    pub fn parse(text: &str) -> Meta {
        Meta {
            pairs: text
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The run's name in the history: its start time and commit.
    pub fn run_id(&self) -> String {
        format!(
            "{}@{}",
            self.get("started").unwrap_or("unknown"),
            self.get("rev").unwrap_or("unknown")
        )
    }
}

fn verdict(r: &Row) -> String {
    match r.verdict() {
        Verdict::Met => "met".into(),
        Verdict::Missed(by) => format!("**{by}**"),
        Verdict::NoTarget => String::new(),
        Verdict::NoData => "no data".into(),
    }
}

fn target(r: &Row) -> String {
    match r.target {
        Target::RatioAtMost(t) => format!("ratio <= {t}"),
        Target::Below(t) => format!("< {}", r.unit.show(t)),
        Target::None => String::new(),
    }
}

/// The run's table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| figure | compared with | kata-cr (lowest-highest of n) | ratio | target | verdict | n |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let base = r
            .baseline
            .as_ref()
            .map(|(n, v)| format!("{n} {}", r.unit.show(*v)))
            .unwrap_or_default();
        let kata = match (r.kata, r.range) {
            (Some(k), Some((lo, hi))) if r.reps > 1 => {
                format!(
                    "{} ({}-{})",
                    r.unit.show(k),
                    r.unit.show(lo),
                    r.unit.show(hi)
                )
            }
            (Some(k), _) => r.unit.show(k),
            (None, _) => "-".into(),
        };
        let ratio = r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {base} | {kata} | {ratio} | {} | {} | {} |",
            r.figure,
            target(r),
            verdict(r),
            r.reps
        );
    }
    s
}

/// Each figure's range across every run in the history.
fn across_runs(rows: &[Row], hist: &History) -> String {
    let mut s = String::from("| figure | runs | lowest | highest |\n| --- | --- | --- | --- |\n");
    for r in rows {
        let Some((n, lo, hi)) = hist.range(&r.key) else {
            continue;
        };
        let show = |v: f64| match r.ratio {
            Some(_) => format!("{v:.2}"),
            None => r.unit.show(v),
        };
        let what = if r.ratio.is_some() { "ratio" } else { "value" };
        let _ = writeln!(
            s,
            "| {} ({what}) | {n} | {} | {} |",
            r.figure,
            show(lo),
            show(hi)
        );
    }
    s
}

pub fn render(
    meta: &Meta,
    rows: &[Row],
    hist: &History,
    plots: &[(String, String)],
    failures: &str,
) -> String {
    let mut s = String::from("# kata-cr benchmark report\n\n");
    let m = |k: &str| meta.get(k).unwrap_or("?").to_string();
    let _ = writeln!(
        s,
        "Run {} (commit {}), {} s; containerd {}, runc {}, criu {}, kernel {}.",
        m("started"),
        m("rev"),
        m("duration_s"),
        m("containerd"),
        m("runc"),
        m("criu"),
        m("kernel")
    );
    let _ = writeln!(
        s,
        "Machine: {} cores; load average {} at the start, {} at the end. \
         The machine is shared: figures taken while others compile are noisy, \
         so every ratio compares runs made within this one run, interleaved \
         where the workload allows.\n",
        m("cores"),
        m("load_start"),
        m("load_end")
    );
    s += "Each figure is the median of its repetitions (n); the range is kata-cr's \
          lowest and highest repetition. Ratios are kata-cr / runc (or / the floor \
          measured in the same run; for throughputs, how many times slower than \
          `dd` into the same filesystem).\n\n";
    s += &table(rows);
    if !failures.is_empty() {
        s += "\nOperations that failed during the run and were tried again (no figure \
              comes from a failed attempt):\n\n```\n";
        s += failures;
        s += "```\n";
    }
    let _ = writeln!(
        s,
        "\n## Across runs ({} runs in history.tsv)\n",
        hist.runs()
    );
    s += &across_runs(rows, hist);
    s += "\n## Plots\n\n";
    for (file, caption) in plots {
        let _ = writeln!(s, "### {caption}\n\n![{caption}]({file})\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summary::Unit;

    #[test]
    fn missed_targets_say_so_in_the_table() {
        let r = Row {
            key: "ckpt.256".into(),
            figure: "checkpoint, 256 MiB dirty".into(),
            baseline: Some(("runc".into(), 1.0)),
            kata: Some(1.5),
            unit: Unit::Seconds,
            ratio: Some(1.5),
            target: Target::RatioAtMost(1.0),
            reps: 3,
            range: Some((1.4, 1.9)),
        };
        let t = table(&[r]);
        assert!(t.contains("| checkpoint, 256 MiB dirty | runc 1.00 s | 1.50 s (1.40 s-1.90 s) | 1.50 | ratio <= 1 | **missed by 50%** | 3 |"), "{t}");
    }

    #[test]
    fn meta_names_the_run() {
        let m = Meta::parse("started\t2026-12-01T10:00:00Z\nrev\tabc1234\n");
        assert_eq!(m.run_id(), "2026-12-01T10:00:00Z@abc1234");
        assert_eq!(Meta::parse("").run_id(), "unknown@unknown");
    }
}
