//! `kata-cr-bench report --dir DIR`: turns a run's measurements
//! (`DIR/raw.tsv`, `DIR/meta.tsv`, `DIR/rpc-samples.tsv`, written by
//! integration/bench/run.sh) into one table, printed and written as
//! `DIR/report.md`, with the plots beside it (`DIR/*.png`), and appends the
//! run's headline figures to `DIR/history.tsv` so that the report can show
//! the range of every figure across runs, not one run's luck.

pub mod data;
pub mod history;
pub mod markdown;
pub mod plot;
pub mod summary;

use std::path::PathBuf;

use crate::record;

const USAGE: &str = "usage: kata-cr-bench report --dir DIR [--font TTF]";

pub fn main(args: &[String]) -> Result<(), String> {
    let mut dir = None;
    let mut font = PathBuf::from(plot::DEFAULT_FONT);
    let mut a = args.iter();
    while let Some(flag) = a.next() {
        let v = a.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(v)),
            "--font" => font = PathBuf::from(v),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    let dir = dir.ok_or(USAGE)?;
    let read = |name: &str| std::fs::read_to_string(dir.join(name));
    let raw = read("raw.tsv").map_err(|e| format!("{}/raw.tsv: {e}", dir.display()))?;
    let data = data::Data::new(record::parse(&raw)?);
    let meta = markdown::Meta::parse(&read("meta.tsv").unwrap_or_default());
    let samples = plot::parse_samples(&read("rpc-samples.tsv").unwrap_or_default());

    let rows = summary::rows(&data);
    if rows.is_empty() {
        return Err(format!("{}/raw.tsv holds no figure", dir.display()));
    }
    let hist_path = dir.join("history.tsv");
    let mut hist =
        history::History::parse(&std::fs::read_to_string(&hist_path).unwrap_or_default());
    let run_id = meta.run_id();
    if hist.add_run(&run_id, &rows) {
        std::fs::write(&hist_path, hist.to_tsv())
            .map_err(|e| format!("{}: {e}", hist_path.display()))?;
    }
    let plots = plot::draw_all(&dir, &font, &data, &samples)?;
    let failures = read("failures.txt").unwrap_or_default();
    let md = markdown::render(&meta, &rows, &hist, &plots, &failures);
    std::fs::write(dir.join("report.md"), &md)
        .map_err(|e| format!("{}/report.md: {e}", dir.display()))?;
    print!("{}", markdown::table(&rows));
    if !failures.is_empty() {
        println!("\nFailed and tried again (failures.txt):\n{failures}");
    }
    println!(
        "\nreport: {}/report.md ({} plots; history of {} runs)",
        dir.display(),
        plots.len(),
        hist.runs()
    );
    Ok(())
}
