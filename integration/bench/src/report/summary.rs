//! The report's rows: what each figure is, what it is compared with (runc,
//! or the floor measured in the same run), its target, and whether the run
//! met it.

use crate::report::data::Data;
use crate::stats;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    Us,
    Seconds,
    Ms,
    MiB,
    MiBps,
}

impl Unit {
    pub fn show(self, v: f64) -> String {
        match self {
            Unit::Us => format!("{v:.1} us"),
            Unit::Seconds if v < 1.0 => format!("{:.0} ms", v * 1e3),
            Unit::Seconds => format!("{v:.2} s"),
            Unit::Ms if v < 10.0 => format!("{v:.1} ms"),
            Unit::Ms => format!("{v:.0} ms"),
            Unit::MiB => format!("{v:.1} MiB"),
            Unit::MiBps => format!("{v:.0} MiB/s"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// kata-cr / baseline at most this.
    RatioAtMost(f64),
    /// kata-cr's figure below this, in the row's unit.
    Below(f64),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Met,
    Missed(String),
    NoTarget,
    NoData,
}

#[derive(Debug, Clone)]
pub struct Row {
    /// Stable name of the figure across runs (the history's key).
    pub key: String,
    pub figure: String,
    /// What kata-cr is compared with, and its value in the row's unit.
    pub baseline: Option<(String, f64)>,
    pub kata: Option<f64>,
    pub unit: Unit,
    /// kata-cr / baseline, or for throughputs baseline / kata-cr (how many
    /// times slower), measured within this run.
    pub ratio: Option<f64>,
    pub target: Target,
    /// How many repetitions the medians are taken over.
    pub reps: usize,
    /// kata-cr's lowest and highest repetition.
    pub range: Option<(f64, f64)>,
}

impl Row {
    fn new(key: impl Into<String>, figure: impl Into<String>, unit: Unit, target: Target) -> Row {
        Row {
            key: key.into(),
            figure: figure.into(),
            baseline: None,
            kata: None,
            unit,
            ratio: None,
            target,
            reps: 0,
            range: None,
        }
    }

    pub fn verdict(&self) -> Verdict {
        match self.target {
            Target::None => Verdict::NoTarget,
            Target::RatioAtMost(t) => match self.ratio {
                None => Verdict::NoData,
                Some(r) if r <= t => Verdict::Met,
                Some(r) => Verdict::Missed(format!("missed by {}", percent(r / t - 1.0))),
            },
            Target::Below(t) => match self.kata {
                None => Verdict::NoData,
                Some(v) if v < t => Verdict::Met,
                Some(v) => Verdict::Missed(format!(
                    "missed by {} ({})",
                    self.unit.show(v - t),
                    percent(v / t - 1.0)
                )),
            },
        }
    }

    /// The value the history keeps: the ratio where there is one.
    pub fn headline(&self) -> Option<f64> {
        self.ratio.or(self.kata)
    }
}

/// A fraction as a percentage, with a decimal where it is small.
fn percent(f: f64) -> String {
    if f < 0.1 {
        format!("{:.1}%", f * 100.0)
    } else {
        format!("{:.0}%", f * 100.0)
    }
}

fn range(v: &[f64]) -> Option<(f64, f64)> {
    let s = stats::sorted(v);
    Some((*s.first()?, *s.last()?))
}

/// A runc-vs-kata-cr row: medians over repetitions, ratio of the medians.
fn ab(d: &Data, metric: &str, param: &str, row: Row) -> Row {
    let runc = d.values(metric, "runc", param);
    let kata = d.values(metric, "kata-cr", param);
    let (r, k) = (stats::median(&runc), stats::median(&kata));
    Row {
        baseline: r.map(|v| ("runc".to_string(), v)),
        kata: k,
        ratio: r.zip(k).map(|(r, k)| k / r),
        reps: runc.len().min(kata.len()),
        range: range(&kata),
        ..row
    }
}

fn workload(param: &str) -> String {
    match param.parse::<u32>() {
        Ok(mib) => format!("{mib} MiB dirty"),
        Err(_) => param.to_string(),
    }
}

/// The staging paths, in the order the report lists them, and their names.
pub const STAGING_PATHS: [(&str, &str); 7] = [
    (
        "ctr-image-path",
        "checkpoint: ctr t checkpoint --image-path, same filesystem",
    ),
    (
        "ctr-image-path-other",
        "checkpoint: ctr t checkpoint --image-path, another mount",
    ),
    (
        "ctr-task",
        "checkpoint: ctr c checkpoint --task (containerd's temporary dir)",
    ),
    ("cri-export", "checkpoint: crictl checkpoint --export"),
    (
        "restore-ctr",
        "restore: ctr c restore (from the content store)",
    ),
    (
        "restore-archive",
        "restore: CRI create from a checkpoint archive",
    ),
    (
        "restore-oci",
        "restore: CRI create from an OCI checkpoint image",
    ),
];

pub fn rows(d: &Data) -> Vec<Row> {
    let mut rows = Vec::new();
    rows.extend(rpc_rows(d));

    for (param, what) in [
        ("1pod", "one pod"),
        ("20pods", "largest of 20 pods' proxies"),
    ] {
        let v: Vec<f64> = d
            .values("rss.kib", "kata-cr", param)
            .iter()
            .map(|k| k / 1024.0)
            .collect();
        if v.is_empty() {
            continue;
        }
        let mut r = Row::new(
            format!("rss.{param}"),
            format!("proxy RSS, {what}"),
            Unit::MiB,
            Target::Below(10.0),
        );
        r.kata = stats::sorted(&v).last().copied();
        r.reps = v.len();
        r.range = range(&v);
        rows.push(r);
    }

    if !d.values("start.s", "runc", "-").is_empty() {
        rows.push(ab(
            d,
            "start.s",
            "-",
            Row::new(
                "start",
                "container start (ctr run -d)",
                Unit::Seconds,
                Target::RatioAtMost(1.05),
            ),
        ));
    }
    for p in d.params("ckpt.s", "runc") {
        rows.push(ab(
            d,
            "ckpt.s",
            &p,
            Row::new(
                format!("ckpt.{p}"),
                format!("checkpoint, {} (ctr t checkpoint)", workload(&p)),
                Unit::Seconds,
                Target::RatioAtMost(1.0),
            ),
        ));
    }
    for p in d.params("ckpt.s", "kata-cr") {
        let (Ok(mib), Some(dd)) = (p.parse::<f64>(), d.median("dd.mibps", "dd", &p)) else {
            continue;
        };
        let Some(k) = d.median("ckpt.s", "kata-cr", &p) else {
            continue;
        };
        if mib < 256.0 {
            continue; // fixed costs dominate: shown in the plot only
        }
        let mut r = Row::new(
            format!("dump-throughput.{p}"),
            format!(
                "dump throughput, {} (vs dd into the same filesystem)",
                workload(&p)
            ),
            Unit::MiBps,
            Target::RatioAtMost(2.0),
        );
        let tp = mib / k;
        r.baseline = Some(("dd".into(), dd));
        r.kata = Some(tp);
        r.ratio = Some(dd / tp);
        r.reps = d.values("ckpt.s", "kata-cr", &p).len();
        rows.push(r);
    }
    for p in d.params("restore.s", "runc") {
        rows.push(ab(
            d,
            "restore.s",
            &p,
            Row::new(
                format!("restore.{p}"),
                format!("restore, {} (ctr c restore --live)", workload(&p)),
                Unit::Seconds,
                Target::RatioAtMost(1.15),
            ),
        ));
    }
    for p in d.params("roundtrip.s", "runc") {
        rows.push(ab(
            d,
            "roundtrip.s",
            &p,
            Row::new(
                format!("roundtrip.{p}"),
                format!("checkpoint + rm + restore, {}", workload(&p)),
                Unit::Seconds,
                Target::RatioAtMost(1.15),
            ),
        ));
    }
    for (metric, key, name) in [
        (
            "cri.ckpt.s",
            "cri.ckpt",
            "CRI checkpoint (crictl checkpoint --export)",
        ),
        (
            "cri.restore.s",
            "cri.restore",
            "CRI restore (create + start from the archive)",
        ),
    ] {
        for p in d.params(metric, "runc") {
            rows.push(ab(
                d,
                metric,
                &p,
                Row::new(
                    format!("{key}.{p}"),
                    format!("{name}, {}", workload(&p)),
                    Unit::Seconds,
                    Target::RatioAtMost(if metric == "cri.ckpt.s" { 1.0 } else { 1.15 }),
                ),
            ));
        }
    }
    for (key, name) in STAGING_PATHS {
        let v = d.values("stage.ms", "kata-cr", key);
        if v.is_empty() {
            continue;
        }
        let mut r = Row::new(
            format!("stage.{key}"),
            format!("staging 1 GiB, {name}"),
            Unit::Ms,
            Target::Below(50.0),
        );
        r.kata = stats::median(&v);
        r.reps = v.len();
        r.range = range(&v);
        rows.push(r);
    }
    if !d.values("pods.total.s", "runc", "20").is_empty() {
        rows.push(ab(
            d,
            "pods.total.s",
            "20",
            Row::new(
                "pods20.total",
                "20 pods checkpointed at once, total (crictl checkpoint --export)",
                Unit::Seconds,
                Target::RatioAtMost(1.0),
            ),
        ));
        let p99 = |rt: &str| -> Vec<f64> {
            d.by_rep("pods.each.s", rt, "20")
                .values()
                .filter_map(|v| stats::quantile(&stats::sorted(v), 0.99))
                .collect()
        };
        let (runc, kata) = (p99("runc"), p99("kata-cr"));
        let (r, k) = (stats::median(&runc), stats::median(&kata));
        let mut row = Row::new(
            "pods20.p99",
            "20 pods checkpointed at once, p99 of one pod",
            Unit::Seconds,
            Target::RatioAtMost(1.0),
        );
        row.baseline = r.map(|v| ("runc".to_string(), v));
        row.kata = k;
        row.ratio = r.zip(k).map(|(r, k)| k / r);
        row.reps = runc.len().min(kata.len());
        row.range = range(&kata);
        rows.push(row);
    }
    for p in d.params("lazy.running.s", "kata-cr") {
        let v = d.values("lazy.running.s", "kata-cr", &p);
        let mut r = Row::new(
            format!("lazy.{p}"),
            format!("lazy restore, {}: running after", workload(&p)),
            Unit::Seconds,
            Target::Below(0.5),
        );
        r.kata = stats::median(&v);
        if let Some(eager) = d.median("restore.s", "kata-cr", &p) {
            r.baseline = Some(("eager kata-cr".into(), eager));
            r.ratio = r.kata.map(|k| k / eager);
        }
        r.reps = v.len();
        r.range = range(&v);
        rows.push(r);
    }
    rows
}

/// The proxy's added latency (proxied - direct) against the floor (one
/// socket round trip), per batch, at p50 and p99; and the raw State latency.
fn rpc_rows(d: &Data) -> Vec<Row> {
    let mut rows = Vec::new();
    for (q, metric) in [("p50", "rpc.p50.us"), ("p99", "rpc.p99.us")] {
        let (dir, prox, floor) = (
            d.by_rep(metric, "direct", "State"),
            d.by_rep(metric, "proxied", "State"),
            d.by_rep(metric, "floor", "State"),
        );
        let mut added = Vec::new();
        let mut floors = Vec::new();
        let mut ratios = Vec::new();
        for (b, p) in &prox {
            let (Some(dv), Some(fv)) = (dir.get(b), floor.get(b)) else {
                continue;
            };
            let a = p[0] - dv[0];
            added.push(a);
            floors.push(fv[0]);
            ratios.push(a / fv[0]);
        }
        if added.is_empty() {
            continue;
        }
        let mut r = Row::new(
            format!("rpc.added.{q}"),
            format!("Task RPC (State) latency the proxy adds, {q}"),
            Unit::Us,
            Target::RatioAtMost(1.1),
        );
        let same: Vec<f64> = d
            .by_rep(metric, "floor-same-core", "State")
            .values()
            .map(|v| v[0])
            .collect();
        let name = match stats::median(&same) {
            Some(s) => format!("socket round trip across cores (on one core: {s:.1} us)"),
            None => "socket round trip across cores".to_string(),
        };
        r.baseline = stats::median(&floors).map(|f| (name, f));
        r.kata = stats::median(&added);
        r.ratio = stats::median(&ratios);
        r.reps = added.len();
        r.range = range(&added);
        rows.push(r);
        if q == "p50" {
            let mut s = Row::new(
                "rpc.state.p50",
                "Task RPC (State) p50, direct -> through the proxy",
                Unit::Us,
                Target::None,
            );
            let dv: Vec<f64> = dir.values().map(|v| v[0]).collect();
            let pv: Vec<f64> = prox.values().map(|v| v[0]).collect();
            s.baseline = stats::median(&dv).map(|v| ("direct".to_string(), v));
            s.kata = stats::median(&pv);
            s.ratio = s.baseline.as_ref().zip(s.kata).map(|((_, b), k)| k / b);
            s.reps = pv.len();
            s.range = range(&pv);
            rows.push(s);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn rec(metric: &str, runtime: &str, param: &str, rep: u32, value: f64) -> Record {
        Record {
            metric: metric.into(),
            runtime: runtime.into(),
            param: param.into(),
            rep,
            value,
        }
    }

    fn find<'a>(rows: &'a [Row], key: &str) -> &'a Row {
        rows.iter().find(|r| r.key == key).expect(key)
    }

    #[test]
    fn checkpoint_rows_compare_medians_with_runc() {
        let mut v = Vec::new();
        for (i, (r, k)) in [(1.0, 1.2), (2.0, 2.2), (3.0, 9.0)].iter().enumerate() {
            v.push(rec("ckpt.s", "runc", "256", i as u32 + 1, *r));
            v.push(rec("ckpt.s", "kata-cr", "256", i as u32 + 1, *k));
        }
        let rows = rows(&Data::new(v));
        let r = find(&rows, "ckpt.256");
        assert_eq!(r.baseline.as_ref().unwrap().1, 2.0);
        assert_eq!(r.kata, Some(2.2));
        assert!((r.ratio.unwrap() - 1.1).abs() < 1e-9);
        assert_eq!(r.reps, 3);
        assert_eq!(r.range, Some((1.2, 9.0)));
        assert_eq!(r.verdict(), Verdict::Missed("missed by 10%".into()));
    }

    #[test]
    fn rpc_added_latency_is_judged_against_the_floor_of_its_batch() {
        let mut v = Vec::new();
        for b in 1..=3 {
            v.push(rec("rpc.p50.us", "direct", "State", b, 100.0));
            v.push(rec("rpc.p50.us", "proxied", "State", b, 160.0));
            v.push(rec("rpc.p50.us", "floor", "State", b, 60.0));
        }
        let rows = rows(&Data::new(v));
        let r = find(&rows, "rpc.added.p50");
        assert_eq!(r.kata, Some(60.0));
        assert_eq!(r.ratio, Some(1.0));
        assert_eq!(r.verdict(), Verdict::Met);
        assert_eq!(find(&rows, "rpc.state.p50").ratio, Some(1.6));
    }

    #[test]
    fn value_targets_say_by_how_much_they_were_missed() {
        let v = vec![
            rec("stage.ms", "kata-cr", "cri-export", 1, 80.0),
            rec("stage.ms", "kata-cr", "ctr-task", 1, 2.0),
        ];
        let rows = rows(&Data::new(v));
        assert_eq!(
            find(&rows, "stage.cri-export").verdict(),
            Verdict::Missed("missed by 30 ms (60%)".into())
        );
        assert_eq!(find(&rows, "stage.ctr-task").verdict(), Verdict::Met);
    }

    #[test]
    fn throughput_is_compared_with_dd_of_the_same_size() {
        let v = vec![
            rec("ckpt.s", "runc", "1024", 1, 2.0),
            rec("ckpt.s", "kata-cr", "1024", 1, 4.0),
            rec("dd.mibps", "dd", "1024", 1, 1024.0),
            rec("ckpt.s", "kata-cr", "16", 1, 0.5),
            rec("dd.mibps", "dd", "16", 1, 1024.0),
        ];
        let rows = rows(&Data::new(v));
        let r = find(&rows, "dump-throughput.1024");
        assert_eq!(r.kata, Some(256.0));
        assert_eq!(r.ratio, Some(4.0));
        assert_eq!(r.verdict(), Verdict::Missed("missed by 100%".into()));
        assert!(rows.iter().all(|r| r.key != "dump-throughput.16"));
    }

    #[test]
    fn twenty_pods_p99_is_taken_per_round() {
        let mut v = Vec::new();
        for rep in 1..=2 {
            for i in 0..20 {
                v.push(rec(
                    "pods.each.s",
                    "runc",
                    "20",
                    rep,
                    1.0 + i as f64 / 100.0,
                ));
                v.push(rec(
                    "pods.each.s",
                    "kata-cr",
                    "20",
                    rep,
                    1.0 + i as f64 / 50.0,
                ));
            }
            v.push(rec("pods.total.s", "runc", "20", rep, 2.0));
            v.push(rec("pods.total.s", "kata-cr", "20", rep, 2.0));
        }
        let rows = rows(&Data::new(v));
        let r = find(&rows, "pods20.p99");
        assert!((r.kata.unwrap() - 1.38).abs() < 1e-9);
        assert!((r.baseline.as_ref().unwrap().1 - 1.19).abs() < 1e-9);
        assert_eq!(find(&rows, "pods20.total").ratio, Some(1.0));
    }

    #[test]
    fn units_read_well() {
        assert_eq!(Unit::Seconds.show(0.2504), "250 ms");
        assert_eq!(Unit::Seconds.show(4.4), "4.40 s");
        assert_eq!(Unit::Ms.show(3.25), "3.2 ms");
        assert_eq!(Unit::MiBps.show(231.4), "231 MiB/s");
    }
}
