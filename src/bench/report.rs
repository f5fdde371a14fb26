//! The benchmark report: Markdown tables (read as well in a terminal as in a repository
//! viewer) and, with `--report`, SVG charts beside the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::BenchReport;
use crate::infer::BackendKind;
use crate::plot;

/// The report's Markdown; `charts` are the names of the stage and model charts to link.
pub fn markdown(r: &BenchReport, charts: Option<(&str, &str)>) -> String {
    let mut md = String::new();
    let d = &r.device;
    let _ = writeln!(md, "# edgeid bench\n");
    let _ = writeln!(
        md,
        "edgeid {}; `{}` ({}×{}, {} face(s)); {} timed runs per figure after a warm-up; search over {} synthetic templates; {:.0} s in all.\n",
        r.edgeid, r.image, r.width, r.height, r.faces, r.runs, r.gallery, r.seconds
    );
    let _ = writeln!(md, "| device | |\n|---|---|");
    let _ = writeln!(md, "| CPU | {} ({} logical cores, {}) |", d.cpu, d.cores, d.arch);
    let _ = writeln!(md, "| CPU features | {} |", or_dash(&d.cpu_features.join(", ")));
    let _ = writeln!(
        md,
        "| GPU | {} |",
        if d.gpus.is_empty() { "none".into() } else { d.gpus.join(", ") }
    );
    let _ = writeln!(md, "| OS | {} |", d.os);
    let _ = writeln!(md, "| onnxruntime | {} |\n", d.onnxruntime.as_deref().unwrap_or("-"));

    let _ = writeln!(md, "## Per stage of a frame (ms)\n");
    let _ = writeln!(md, "| backend | stage | p50 | p95 | p99 |\n|---|---|---:|---:|---:|");
    for b in &r.backends {
        for s in &b.stages {
            let _ = writeln!(
                md,
                "| {} | {} | {:.3} | {:.3} | {:.3} |",
                b.backend.name(),
                s.stage,
                s.p50_ms,
                s.p95_ms,
                s.p99_ms
            );
        }
    }
    let _ = writeln!(md, "\n| backend | frames/s (1 / frame p50) | first frame (ms; detect, align, encode, PAD; second frame) | load all models (ms) | peak RSS (MiB) | GPU memory (MiB) |\n|---|---:|---:|---:|---:|---:|");
    for b in &r.backends {
        // An optional figure (PAD off, no GPU, no /proc) shows as "-".
        let opt = |m: Option<f64>| m.map_or_else(|| "-".into(), |m| format!("{m:.1}"));
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.1} ({:.1}, {:.1}, {:.1}, {}; {:.1}) | {:.0} | {} | {} |",
            b.backend.name(),
            b.fps,
            b.first_frame_ms,
            b.first_detect_ms,
            b.first_align_ms,
            b.first_encode_ms,
            opt(b.first_pad_ms),
            b.second_frame_ms,
            b.load_ms,
            opt(b.peak_rss_mib),
            opt(b.gpu_mib)
        );
    }
    if r.backends.iter().any(|b| !b.throughput.is_empty()) {
        let _ = writeln!(md, "\n| backend | cameras | frames/s, all cameras |\n|---|---:|---:|");
        for b in &r.backends {
            for t in &b.throughput {
                let _ = writeln!(md, "| {} | {} | {:.1} |", b.backend.name(), t.streams, t.fps);
            }
        }
    }
    let _ = writeln!(md, "\nalign, encode, PAD and search cover every face of the photo; frame is detect + align + encode + PAD + search, as the daemon runs it.");
    if let Some((stages, _)) = charts {
        let _ = writeln!(md, "\n![per-stage p50]({stages})");
    }

    if !r.models.is_empty() {
        let _ = writeln!(md, "\n## Per model (ms, batch 1)\n");
        let _ = writeln!(
            md,
            "| model | precision | input | backend | load | first run | p50 | p95 | p99 | tract ÷ this | source ÷ this |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        let tract = tract_p50(r);
        for m in &r.models {
            let ratio =
                |of: Option<f64>| of.map_or_else(|| "-".into(), |t| format!("{:.2}", t / m.p50_ms));
            let source = m.derived_from.as_ref().and_then(|id| {
                r.models.iter().find(|s| &s.model == id && s.backend == m.backend).map(|s| s.p50_ms)
            });
            let _ = writeln!(
                md,
                "| {} | {} | {:?} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
                m.model,
                m.precision,
                m.input,
                m.backend.name(),
                m.load_ms,
                m.first_run_ms,
                m.p50_ms,
                m.p95_ms,
                m.p99_ms,
                ratio(tract.get(&m.model).copied()),
                ratio(source)
            );
        }
        let _ = writeln!(
            md,
            "\n\"first run\": the model's first run after load (on a GPU, after the warm-up the load runs); \"tract ÷ this\": how many times faster than tract on the same model; \"source ÷ this\": how many times faster than the model it was derived from (`derived_from`: a graph rewritten by models/tools/tune.py from its source, an int8 model from its fp32 one) on the same backend."
        );
        if let Some((_, models)) = charts {
            let _ = writeln!(md, "\n![per-model speed relative to tract]({models})");
        }
    }

    if !r.auto.is_empty() {
        let _ = writeln!(md, "\n## Backend `auto`: the choice per model\n");
        let _ = writeln!(md, "| model | chosen | measured (median ms) |\n|---|---|---|");
        for c in &r.auto {
            let timings: Vec<String> = c
                .timings
                .iter()
                .map(|t| format!("{} {:.3}", t.backend.name(), t.median_ms))
                .collect();
            let from = if c.cached { " (from the cache)" } else { "" };
            let _ = writeln!(
                md,
                "| {} | {}{from} | {} |",
                c.model,
                c.backend.name(),
                timings.join(", ")
            );
        }
    }
    md
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn tract_p50(r: &BenchReport) -> BTreeMap<String, f64> {
    r.models
        .iter()
        .filter(|m| m.backend == BackendKind::Tract)
        .map(|m| (m.model.clone(), m.p50_ms))
        .collect()
}

/// Writes the Markdown report to `path` and its two charts beside it; returns every file.
pub fn write(r: &BenchReport, path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut charts = plot::ReportCharts::new(path)?;
    let stage_names: Vec<String> = r
        .backends
        .first()
        .map(|b| b.stages.iter().map(|s| s.stage.clone()).collect())
        .unwrap_or_default();
    let series: Vec<(&str, Vec<f32>)> = r
        .backends
        .iter()
        .map(|b| {
            let v = stage_names
                .iter()
                .map(|n| b.stages.iter().find(|s| &s.stage == n).map_or(0.0, |s| s.p50_ms as f32))
                .collect();
            (b.backend.name(), v)
        })
        .collect();
    let max = series.iter().flat_map(|s| s.1.iter().copied()).fold(0f32, f32::max) * 1.25;
    let stages = charts.save(
        "stages",
        plot::bars("Per-stage latency, p50", "ms", &stage_names, &series, max.max(1e-3))?,
    )?;

    let tract = tract_p50(r);
    let mut model_names: Vec<String> = Vec::new();
    for m in &r.models {
        if !model_names.contains(&m.model) {
            model_names.push(m.model.clone());
        }
    }
    let mut backends: Vec<BackendKind> = Vec::new();
    for m in &r.models {
        if !backends.contains(&m.backend) {
            backends.push(m.backend);
        }
    }
    let series: Vec<(&str, Vec<f32>)> = backends
        .iter()
        .map(|b| {
            let v = model_names
                .iter()
                .map(|n| {
                    let m = r.models.iter().find(|m| &m.model == n && m.backend == *b);
                    match (m, tract.get(n)) {
                        (Some(m), Some(t)) => (t / m.p50_ms) as f32,
                        _ => 0.0,
                    }
                })
                .collect();
            (b.name(), v)
        })
        .collect();
    let short: Vec<String> =
        model_names.iter().map(|n| n.split('@').next().unwrap_or(n).to_string()).collect();
    let max = series.iter().flat_map(|s| s.1.iter().copied()).fold(1f32, f32::max) * 1.3;
    let models = charts.save(
        "models",
        plot::bars(
            "Per-model speed relative to tract (tract p50 ÷ p50; higher is faster)",
            "× tract",
            &short,
            &series,
            max,
        )?,
    )?;
    charts.finish(path, markdown(r, Some((&stages, &models))))
}
