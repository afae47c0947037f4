//! A run's measurements, looked up by what they measure.

use std::collections::BTreeMap;

use crate::record::Record;
use crate::stats;

pub struct Data {
    records: Vec<Record>,
}

impl Data {
    pub fn new(records: Vec<Record>) -> Self {
        Data { records }
    }

    /// Every value of `metric` for `runtime` and `param`, all repetitions.
    pub fn values(&self, metric: &str, runtime: &str, param: &str) -> Vec<f64> {
        self.records
            .iter()
            .filter(|r| r.metric == metric && r.runtime == runtime && r.param == param)
            .map(|r| r.value)
            .collect()
    }

    /// The values grouped by repetition.
    pub fn by_rep(&self, metric: &str, runtime: &str, param: &str) -> BTreeMap<u32, Vec<f64>> {
        let mut m: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
        for r in self
            .records
            .iter()
            .filter(|r| r.metric == metric && r.runtime == runtime && r.param == param)
        {
            m.entry(r.rep).or_default().push(r.value);
        }
        m
    }

    /// The median over repetitions.
    pub fn median(&self, metric: &str, runtime: &str, param: &str) -> Option<f64> {
        stats::median(&self.values(metric, runtime, param))
    }

    /// The params `metric` was measured at for `runtime`, in first-seen order.
    pub fn params(&self, metric: &str, runtime: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.records {
            if r.metric == metric && r.runtime == runtime && !out.contains(&r.param) {
                out.push(r.param.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(metric: &str, runtime: &str, param: &str, rep: u32, value: f64) -> Record {
        Record {
            metric: metric.into(),
            runtime: runtime.into(),
            param: param.into(),
            rep,
            value,
        }
    }

    #[test]
    fn lookups_select_by_metric_runtime_and_param() {
        let d = Data::new(vec![
            rec("ckpt.s", "runc", "16", 1, 1.0),
            rec("ckpt.s", "runc", "16", 2, 3.0),
            rec("ckpt.s", "runc", "16", 3, 2.0),
            rec("ckpt.s", "kata-cr", "16", 1, 9.0),
            rec("ckpt.s", "runc", "256", 1, 5.0),
        ]);
        assert_eq!(d.median("ckpt.s", "runc", "16"), Some(2.0));
        assert_eq!(d.values("ckpt.s", "kata-cr", "16"), vec![9.0]);
        assert_eq!(d.params("ckpt.s", "runc"), vec!["16", "256"]);
        assert_eq!(d.by_rep("ckpt.s", "runc", "16").len(), 3);
        assert_eq!(d.median("ckpt.s", "runc", "1"), None);
    }
}
