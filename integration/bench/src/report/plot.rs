//! The report's plots, PNG (plotters' bitmap backend, text with a TrueType
//! font from the system: Debian's fonts-dejavu-core).

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::report::data::Data;
use crate::report::summary::STAGING_PATHS;
use crate::stats;

pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const RUNC: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const KATA: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const BASE: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const LAZY: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const SIZE: (u32, u32) = (1000, 560);

type Res<T> = Result<T, String>;

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("plot {what}: {err}")
}

/// The RPC samples (`path<TAB>microseconds` lines) by path.
pub fn parse_samples(text: &str) -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for l in text.lines() {
        let Some((path, v)) = l.split_once('\t') else {
            continue;
        };
        let Ok(v) = v.parse::<f64>() else { continue };
        match out.iter_mut().find(|(p, _)| p == path) {
            Some((_, vs)) => vs.push(v),
            None => out.push((path.to_string(), vec![v])),
        }
    }
    out
}

/// Draws every plot the data allows into `dir`; returns (file, caption).
pub fn draw_all(
    dir: &Path,
    font: &Path,
    d: &Data,
    samples: &[(String, Vec<f64>)],
) -> Res<Vec<(String, String)>> {
    let bytes = std::fs::read(font).map_err(|err| {
        format!(
            "font {}: {err} (install fonts-dejavu-core, or pass --font)",
            font.display()
        )
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| format!("font {}: not a usable TrueType font", font.display()))?;
    let mut out = Vec::new();
    let mut add = |file: &str, caption: &str, drawn: Res<bool>| -> Res<()> {
        if drawn? {
            out.push((file.to_string(), caption.to_string()));
        }
        Ok(())
    };
    add(
        "rpc-latency.png",
        "Task RPC latency: direct, through the proxy, and the floor",
        rpc(&dir.join("rpc-latency.png"), samples),
    )?;
    add(
        "checkpoint-restore.png",
        "Checkpoint and restore time against dirty memory",
        ckpt_restore(&dir.join("checkpoint-restore.png"), d),
    )?;
    add(
        "dump-throughput.png",
        "Dump throughput against dd into the same filesystem",
        throughput(&dir.join("dump-throughput.png"), d),
    )?;
    add(
        "staging.png",
        "Staging a 1 GiB image set, every path",
        staging(&dir.join("staging.png"), d),
    )?;
    add(
        "pods.png",
        "20 pods checkpointed at once: each pod's time",
        pods(&dir.join("pods.png"), d),
    )?;
    Ok(out)
}

/// An axis label for seconds: milliseconds below one second.
fn seconds(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0} ms", v * 1e3)
    } else {
        format!("{v:.1} s")
    }
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
}

/// Cumulative distributions of the three paths' latencies.
fn rpc(path: &Path, samples: &[(String, Vec<f64>)]) -> Res<bool> {
    let get = |name: &str| {
        samples
            .iter()
            .find(|(p, _)| p == name)
            .map(|(_, v)| stats::sorted(v))
    };
    let (Some(direct), Some(proxied), Some(floor)) = (get("direct"), get("proxied"), get("floor"))
    else {
        return Ok(false);
    };
    let xmax = stats::quantile(&proxied, 0.995).unwrap_or(1.0) * 1.1;
    let p50 = |v: &[f64]| stats::quantile(v, 0.5).unwrap_or(0.0);
    let added = p50(&proxied) - p50(&direct);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(e("rpc"))?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            format!(
                "Task RPC (State): the proxy adds {added:.0} us at p50; one socket round trip costs {:.0} us",
                p50(&floor)
            ),
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..1f64)
        .map_err(e("rpc"))?;
    c.configure_mesh()
        .x_desc("latency (us)")
        .y_desc("fraction of calls")
        .label_style(("sans-serif", 15))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(e("rpc"))?;
    for (name, color, v) in [
        ("socket round trip (floor)", BASE, &floor),
        ("State, direct", RUNC, &direct),
        ("State, through the proxy", KATA, &proxied),
    ] {
        let n = v.len();
        let step = (n / 600).max(1);
        let pts: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .filter(|(i, x)| (i % step == 0 || *i == n - 1) && **x <= xmax)
            .map(|(i, x)| (*x, (i + 1) as f64 / n as f64))
            .collect();
        c.draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(e("rpc"))?
            .label(format!(
                "{name}: p50 {:.0} us, p99 {:.0} us",
                p50(v),
                stats::quantile(v, 0.99).unwrap_or(0.0)
            ))
            .legend(legend_line(color));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(e("rpc"))?;
    root.present().map_err(e("rpc"))?;
    Ok(true)
}

/// (MiB, median, lowest, highest).
type SizePoint = (f64, f64, f64, f64);

/// The [`SizePoint`]s of `metric` for `runtime`, numeric params.
fn by_size(d: &Data, metric: &str, runtime: &str) -> Vec<SizePoint> {
    let mut v: Vec<SizePoint> = d
        .params(metric, runtime)
        .iter()
        .filter_map(|p| {
            let mib: f64 = p.parse().ok()?;
            let vals = stats::sorted(&d.values(metric, runtime, p));
            Some((mib, stats::median(&vals)?, vals[0], *vals.last()?))
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

fn ckpt_restore(path: &Path, d: &Data) -> Res<bool> {
    let panels = [
        (
            "checkpoint (ctr t checkpoint)",
            "ckpt.s",
            vec![("runc", "runc", RUNC), ("kata-cr", "kata-cr", KATA)],
        ),
        (
            "restore (ctr c restore --live)",
            "restore.s",
            vec![("runc", "runc", RUNC), ("kata-cr", "kata-cr", KATA)],
        ),
    ];
    if by_size(d, "ckpt.s", "runc").is_empty() {
        return Ok(false);
    }
    let root = BitMapBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(e("checkpoint-restore"))?;
    let halves = root.split_evenly((1, 2));
    for (area, (title, metric, series)) in halves.iter().zip(panels) {
        let mut all: Vec<(&str, RGBColor, Vec<SizePoint>)> = series
            .iter()
            .map(|(label, rt, c)| (*label, *c, by_size(d, metric, rt)))
            .collect();
        if metric == "restore.s" {
            all.push((
                "kata-cr lazy (running)",
                LAZY,
                by_size(d, "lazy.running.s", "kata-cr"),
            ));
        }
        let ys: Vec<f64> = all
            .iter()
            .flat_map(|(_, _, v)| v.iter().flat_map(|p| [p.2, p.3]))
            .collect();
        if ys.is_empty() {
            continue;
        }
        let lo = ys.iter().copied().fold(f64::INFINITY, f64::min) * 0.7;
        let hi = ys.iter().copied().fold(0.0, f64::max) * 1.5;
        let mut c = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((0.7f64..1500f64).log_scale(), (lo..hi).log_scale())
            .map_err(e("checkpoint-restore"))?;
        c.configure_mesh()
            .x_desc("dirty memory (MiB)")
            .y_desc("time")
            .label_style(("sans-serif", 14))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_labels(12)
            .y_label_formatter(&|v| seconds(*v))
            .draw()
            .map_err(e("checkpoint-restore"))?;
        for (label, color, pts) in all {
            if pts.is_empty() {
                continue;
            }
            c.draw_series(pts.iter().map(|(x, m, l, h)| {
                ErrorBar::new_vertical(*x, *l, *m, *h, color.stroke_width(1), 8)
            }))
            .map_err(e("checkpoint-restore"))?;
            c.draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))
            .map_err(e("checkpoint-restore"))?
            .label(label)
            .legend(legend_line(color));
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(e("checkpoint-restore"))?;
    }
    root.present().map_err(e("checkpoint-restore"))?;
    Ok(true)
}

fn throughput(path: &Path, d: &Data) -> Res<bool> {
    let tp = |rt: &str| -> Vec<(f64, f64)> {
        by_size(d, "ckpt.s", rt)
            .iter()
            .map(|(mib, s, _, _)| (*mib, mib / s))
            .collect()
    };
    let dd: Vec<(f64, f64)> = by_size(d, "dd.mibps", "dd")
        .iter()
        .map(|(mib, v, _, _)| (*mib, *v))
        .collect();
    let (runc, kata) = (tp("runc"), tp("kata-cr"));
    if kata.is_empty() || dd.is_empty() {
        return Ok(false);
    }
    let hi = runc
        .iter()
        .chain(&kata)
        .chain(&dd)
        .map(|p| p.1)
        .fold(0.0, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(e("throughput"))?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "Checkpoint throughput (dirty memory / checkpoint time) and page-cache write bandwidth",
            ("sans-serif", 19),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0.7f64..1500f64).log_scale(), 0f64..hi)
        .map_err(e("throughput"))?;
    c.configure_mesh()
        .x_desc("dirty memory (MiB)")
        .y_desc("MiB/s")
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(e("throughput"))?;
    let half: Vec<(f64, f64)> = dd.iter().map(|(x, v)| (*x, v / 2.0)).collect();
    for (label, color, pts, w) in [
        ("dd into the same filesystem", BASE, dd, 2),
        ("target: half of dd", RGBColor(0x98, 0xdf, 0x8a), half, 1),
        ("runc", RUNC, runc, 2),
        ("kata-cr", KATA, kata, 2),
    ] {
        c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(w)))
            .map_err(e("throughput"))?
            .label(label)
            .legend(legend_line(color));
        c.draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(e("throughput"))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(e("throughput"))?;
    root.present().map_err(e("throughput"))?;
    Ok(true)
}

fn staging(path: &Path, d: &Data) -> Res<bool> {
    let bars: Vec<(&str, f64)> = STAGING_PATHS
        .iter()
        .filter_map(|(key, name)| Some((*name, d.median("stage.ms", "kata-cr", key)?)))
        .collect();
    if bars.is_empty() {
        return Ok(false);
    }
    let n = bars.len() as i32;
    let hi = bars.iter().map(|b| b.1).fold(100.0, f64::max) * 8.0;
    let root = BitMapBackend::new(path, (1200, 120 + 60 * bars.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(e("staging"))?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "Staging a 1 GiB image set (median; target < 50 ms, the dashed line)",
            ("sans-serif", 19),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(470)
        .build_cartesian_2d((0.1f64..hi).log_scale(), (0..n - 1).into_segmented())
        .map_err(e("staging"))?;
    let names: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
    c.configure_mesh()
        .disable_y_mesh()
        .x_desc("milliseconds")
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(e("staging"))?;
    c.draw_series(bars.iter().enumerate().map(|(i, (_, ms))| {
        let color = if *ms < 50.0 { BASE } else { KATA };
        let mut bar = Rectangle::new(
            [
                (0.1, SegmentValue::Exact(i as i32)),
                (*ms, SegmentValue::Exact(i as i32 + 1)),
            ],
            color.mix(0.8).filled(),
        );
        bar.set_margin(8, 8, 0, 0);
        bar
    }))
    .map_err(e("staging"))?;
    c.draw_series(bars.iter().enumerate().map(|(i, (_, ms))| {
        Text::new(
            if *ms < 10.0 {
                format!("{ms:.1} ms")
            } else {
                format!("{ms:.0} ms")
            },
            (ms * 1.1, SegmentValue::CenterOf(i as i32)),
            ("sans-serif", 14),
        )
    }))
    .map_err(e("staging"))?;
    c.draw_series(DashedLineSeries::new(
        [
            (50.0, SegmentValue::Exact(0)),
            (50.0, SegmentValue::Exact(n)),
        ],
        6,
        4,
        BLACK.stroke_width(1),
    ))
    .map_err(e("staging"))?;
    root.present().map_err(e("staging"))?;
    Ok(true)
}

fn pods(path: &Path, d: &Data) -> Res<bool> {
    let each = |rt: &str| stats::sorted(&d.values("pods.each.s", rt, "20"));
    let (runc, kata) = (each("runc"), each("kata-cr"));
    if runc.is_empty() || kata.is_empty() {
        return Ok(false);
    }
    let total = |rt: &str| d.median("pods.total.s", rt, "20").unwrap_or(0.0);
    let hi = runc.iter().chain(&kata).copied().fold(0.0, f64::max) * 1.15;
    let n = runc.len().max(kata.len());
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(e("pods"))?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            format!(
                "20 pods checkpointed at once: total {:.2} s runc, {:.2} s kata-cr (median)",
                total("runc"),
                total("kata-cr")
            ),
            ("sans-serif", 19),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..hi)
        .map_err(e("pods"))?;
    c.configure_mesh()
        .x_desc(format!("fraction of pods ({n} checkpoints, every round)"))
        .y_desc("seconds, one pod's checkpoint")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e("pods"))?;
    for (label, color, v) in [("runc", RUNC, runc), ("kata-cr", KATA, kata)] {
        let k = v.len() as f64;
        let pts: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .map(|(i, s)| ((i + 1) as f64 / k, *s))
            .collect();
        c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(e("pods"))?
            .label(label)
            .legend(legend_line(color));
        c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(e("pods"))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(e("pods"))?;
    root.present().map_err(e("pods"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn samples_group_by_path() {
        let s = parse_samples("direct\t100.5\nproxied\t150\ndirect\t99\nbad line\nfloor\tx\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], ("direct".to_string(), vec![100.5, 99.0]));
    }

    /// Every plot renders from a small run's data (needs the font).
    #[test]
    fn plots_render_when_the_font_is_there() {
        if !Path::new(DEFAULT_FONT).exists() {
            eprintln!("skipped: no {DEFAULT_FONT}");
            return;
        }
        let mut v = Vec::new();
        let mut rec = |m: &str, rt: &str, p: &str, rep: u32, value: f64| {
            v.push(Record {
                metric: m.into(),
                runtime: rt.into(),
                param: p.into(),
                rep,
                value,
            })
        };
        for (i, mib) in ["1", "16", "256", "1024"].iter().enumerate() {
            for rep in 1..=3 {
                let f = (i + 1) as f64 * (1.0 + rep as f64 / 10.0);
                rec("ckpt.s", "runc", mib, rep, 0.2 * f);
                rec("ckpt.s", "kata-cr", mib, rep, 0.25 * f);
                rec("restore.s", "runc", mib, rep, 0.3 * f);
                rec("restore.s", "kata-cr", mib, rep, 0.35 * f);
                rec("dd.mibps", "dd", mib, rep, 1500.0);
            }
        }
        for (k, _) in STAGING_PATHS {
            rec("stage.ms", "kata-cr", k, 1, 12.0);
        }
        for i in 0..20 {
            rec("pods.each.s", "runc", "20", 1, 1.0 + i as f64 / 20.0);
            rec("pods.each.s", "kata-cr", "20", 1, 1.1 + i as f64 / 20.0);
        }
        rec("pods.total.s", "runc", "20", 1, 2.0);
        rec("pods.total.s", "kata-cr", "20", 1, 2.1);
        let samples = vec![
            (
                "direct".to_string(),
                (0..300).map(|i| 100.0 + i as f64 / 10.0).collect(),
            ),
            (
                "proxied".to_string(),
                (0..300).map(|i| 160.0 + i as f64 / 10.0).collect(),
            ),
            (
                "floor".to_string(),
                (0..300).map(|i| 55.0 + i as f64 / 10.0).collect(),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let drawn = draw_all(dir.path(), Path::new(DEFAULT_FONT), &Data::new(v), &samples).unwrap();
        assert_eq!(drawn.len(), 5, "{drawn:?}");
        for (f, _) in drawn {
            let len = std::fs::metadata(dir.path().join(&f)).unwrap().len();
            assert!(len > 5000, "{f}: {len} bytes");
        }
    }
}
