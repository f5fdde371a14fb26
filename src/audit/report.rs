//! `edgeid audit --report`: the latest audit and the audit history of the journal as Markdown,
//! with SVG charts (accuracy per task, retention over time, drift over time) beside it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::drift::METRICS;
use super::AuditReport;
use crate::plot;

fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn fmt_median(m: Option<f32>) -> String {
    m.map_or_else(|| "-".into(), |m| format!("{m:.3}"))
}

fn short(sha: &str) -> &str {
    if sha.is_empty() {
        "-"
    } else {
        &sha[..sha.len().min(12)]
    }
}

/// Writes the report of `history` (oldest first; the last one is the one described in detail)
/// to `path` and its charts beside it; returns the files written.
pub fn write(history: &[AuditReport], path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let last =
        history.last().context("the journal holds no audit yet; run `edgeid audit` first")?;
    let mut charts = plot::ReportCharts::new(path)?;

    let mut md = String::new();
    let _ = writeln!(md, "# Generalization audit\n");
    let _ = writeln!(
        md,
        "Audit of {} on the set `{}` ({} images, set sha256 {}), {} training images per class, in {:.1} s. Written by `edgeid audit --report` (edgeid {}).\n",
        when(last.time_ms),
        last.set.display(),
        last.images,
        short(&last.encoder.set_sha256),
        last.encoder.shots,
        last.seconds,
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(md, "| | model | sha256 |\n|---|---|---|");
    for (role, s) in
        [("encoder", &last.encoder), ("baseline", &last.baseline), ("floor", &last.pixels)]
    {
        let _ = writeln!(md, "| {role} | `{}` | {} |", s.model.id, short(&s.model.sha256));
    }
    let _ = writeln!(md);
    let verdict = if last.alert {
        format!(
            "**ALERT**: a task's retention is below audit.min_retention = {}",
            last.min_retention
        )
    } else {
        format!(
            "every task's retention is at or above audit.min_retention = {}",
            last.min_retention
        )
    };
    let _ = writeln!(
        md,
        "Overall retention (mean linear-probe accuracy, encoder / baseline): **{:.1}%**; {verdict}.\n",
        100.0 * last.overall_retention
    );
    let _ = writeln!(
        md,
        "| task | classes | test images | encoder: linear (NCM) | baseline: linear (NCM) | pixels: linear | retention: linear (NCM) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for ((e, b), r) in last.encoder.tasks.iter().zip(&last.baseline.tasks).zip(&last.retention) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3} ({:.3}) | {:.3} ({:.3}) | {:.3} | {:.1}% ({:.1}%){} |",
            e.task,
            e.classes,
            e.test,
            e.linear,
            e.ncm,
            b.linear,
            b.ncm,
            r.pixels,
            100.0 * r.retention,
            100.0 * r.retention_ncm,
            if r.alert { " **alert**" } else { "" }
        );
    }
    let _ = writeln!(md);
    let zero: Vec<String> = last
        .encoder
        .tasks
        .iter()
        .filter_map(|t| t.zero_shot.map(|z| format!("{} {z:.3}", t.task)))
        .collect();
    if !zero.is_empty() {
        let _ =
            writeln!(md, "Zero-shot (the prototype bank's nearest class): {}.\n", zero.join(", "));
    }
    let tasks: Vec<String> = last.retention.iter().map(|r| r.task.clone()).collect();
    let accuracy = charts.save(
        "accuracy",
        plot::bars(
            "Linear-probe accuracy per task",
            "accuracy",
            &tasks,
            &[
                (&last.encoder.model.id, last.retention.iter().map(|r| r.encoder).collect()),
                (&last.baseline.model.id, last.retention.iter().map(|r| r.baseline).collect()),
                ("pixels", last.retention.iter().map(|r| r.pixels).collect()),
            ],
            1.3,
        )?,
    )?;
    let _ = writeln!(md, "![Accuracy per task]({accuracy})\n");

    let _ = writeln!(md, "## History\n");
    let _ = writeln!(md, "| time | encoder | baseline | overall retention | lowest task | alert |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for a in history {
        let lowest = a
            .retention
            .iter()
            .min_by(|x, y| x.retention.total_cmp(&y.retention))
            .map(|r| format!("{} {:.1}%", r.task, 100.0 * r.retention))
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | `{}` | `{}` | {:.1}% | {lowest} | {} |",
            when(a.time_ms),
            a.encoder.model.id,
            a.baseline.model.id,
            100.0 * a.overall_retention,
            if a.alert { "yes" } else { "no" }
        );
    }
    let _ = writeln!(md);
    let t0 = history[0].time_ms;
    let hours = |ms: i64| (ms - t0) as f32 / 3.6e6;
    let series: Vec<(&str, Vec<(f32, f32)>)> = tasks
        .iter()
        .map(|t| {
            let points = history
                .iter()
                .filter_map(|a| {
                    let r = a.retention.iter().find(|r| &r.task == t)?;
                    Some((hours(a.time_ms), r.retention.min(r.retention_ncm)))
                })
                .collect();
            (t.as_str(), points)
        })
        .collect();
    let retention = charts.save(
        "retention",
        plot::lines(
            "Retention per task over time (lower of the two probes)",
            &format!("hours since {}", when(t0)),
            "encoder / baseline",
            &series,
            Some(("audit.min_retention", last.min_retention)),
        )?,
    )?;
    let _ = writeln!(md, "![Retention over time]({retention})\n");

    let _ = writeln!(md, "## Drift of live traffic\n");
    match &last.drift {
        None => {
            let _ = writeln!(
                md,
                "Not measured: the journal needs two windows of decisions (audit.drift_window each) first.\n"
            );
        }
        Some(d) => {
            let _ = writeln!(
                md,
                "The first {} decisions ({} to {}) against the latest {} ({} to {}), of {} journaled. Population stability index: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a large one; the alert is at {}.\n",
                d.window,
                when(d.reference_ms.0),
                when(d.reference_ms.1),
                d.window,
                when(d.current_ms.0),
                when(d.current_ms.1),
                d.decisions,
                d.alert_psi
            );
            let _ =
                writeln!(md, "| score | PSI | median then | median now | decisions then / now |");
            let _ = writeln!(md, "|---|---|---|---|---|");
            for m in &d.metrics {
                let _ = writeln!(
                    md,
                    "| {} | {:.3}{} | {} | {} | {} / {} |",
                    m.metric,
                    m.psi,
                    if m.psi >= d.alert_psi { " **alert**" } else { "" },
                    fmt_median(m.reference_median),
                    fmt_median(m.current_median),
                    m.reference_n,
                    m.current_n
                );
            }
            let _ = writeln!(md);
            let d0 = d.reference_ms.0;
            let series: Vec<(&str, Vec<(f32, f32)>)> = METRICS
                .iter()
                .enumerate()
                .map(|(k, m)| {
                    let points = d
                        .history
                        .iter()
                        .map(|(t, psi)| ((t - d0) as f32 / 3.6e6, psi[k]))
                        .collect();
                    (*m, points)
                })
                .collect();
            let drift = charts.save(
                "drift",
                plot::lines(
                    "Drift of each window against the first",
                    &format!("hours since {}", when(d0)),
                    "PSI",
                    &series,
                    Some(("audit.drift_alert_psi", d.alert_psi)),
                )?,
            )?;
            let _ = writeln!(md, "![Drift over time]({drift})\n");
        }
    }
    charts.finish(path, md)
}
