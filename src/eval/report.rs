//! The evaluation report an integrator hands to an auditor: Markdown tables with SVG charts
//! (DET curve, score histograms) written next to it, so it reads on any device or in a
//! repository viewer without a server.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::dataset::EvalReport;
use super::metrics;
use crate::plot;

/// A rate as a percentage with the counts behind it, so that a reader sees how much evidence
/// each figure rests on.
fn rate(r: f32, of: usize) -> String {
    let k = (r * of as f32).round() as usize;
    format!("{:.2}% ({k} of {of})", 100.0 * r)
}

fn threshold(t: f32) -> String {
    if t.is_finite() {
        format!("{t:.4}")
    } else {
        "above every score".into()
    }
}

/// Writes the report to `path` (Markdown) and its charts beside it as `<stem>-<chart>.svg`;
/// returns every file written.
pub fn write(r: &EvalReport, path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut charts = plot::ReportCharts::new(path)?;

    let v = &r.verification;
    let c = &r.counts;
    let mut md = String::new();
    let _ = writeln!(md, "# Evaluation report\n");
    let _ = writeln!(
        md,
        "Dataset `{}`: {} identities, {} images. Encoder `{}`. Written by `edgeid eval --report` (edgeid {}).\n",
        r.dataset.display(),
        c.identities,
        c.images,
        r.encoder,
        env!("CARGO_PKG_VERSION")
    );

    let _ = writeln!(md, "## Acquisition and enrolment\n");
    let _ = writeln!(md, "| | rate |\n|---|---|");
    let _ = writeln!(md, "| failure to acquire (no face found) | {} |", rate(c.fta_rate, c.images));
    let _ = writeln!(md, "| failure to enrol | {} |\n", rate(c.fte_rate, c.identities));
    for p in &c.not_acquired {
        let _ = writeln!(md, "- not acquired: `{p}`");
    }
    for p in &c.not_enrolled {
        let _ = writeln!(md, "- not enrolled: `{p}`");
    }
    if !c.not_acquired.is_empty() || !c.not_enrolled.is_empty() {
        md.push('\n');
    }

    let _ = writeln!(md, "## Verification (1:1)\n");
    let _ = writeln!(
        md,
        "Every pair of acquired images: {} genuine and {} impostor comparisons. A comparison is accepted at a cosine similarity at or above the threshold.\n",
        v.genuine, v.impostor
    );
    let floor = {
        let n = v.genuine.max(v.impostor).max(1) as f32;
        10f32.powf((1.0 / n).log10().floor()).min(0.1)
    };
    let curve: Vec<(f32, f32)> = metrics::det(&v.genuine_scores, &v.impostor_scores)
        .iter()
        .map(|p| (p.fmr, p.fnmr))
        .collect();
    let marks = vec![
        (format!("threshold {:.3}", v.threshold), v.fmr, v.fnmr),
        (format!("EER {:.2}% at {:.3}", 100.0 * v.eer, v.eer_threshold), v.eer, v.eer),
    ];
    let det = charts
        .save("det", plot::det("DET curve, verification", &[("encoder", curve)], &marks, floor)?)?;
    let scores = charts.save(
        "scores",
        plot::histogram(
            "Verification scores",
            "cosine similarity",
            &[("genuine", &v.genuine_scores), ("impostor", &v.impostor_scores)],
            Some(("threshold", v.threshold)),
        )?,
    )?;
    let _ = writeln!(md, "![DET curve]({det})\n\n![Score histograms]({scores})\n");
    let _ = writeln!(
        md,
        "Rates below {floor:.0e} (zero among them) are drawn on the axis: with {} impostor and {} genuine pairs no smaller rate can be shown.\n",
        v.impostor, v.genuine
    );
    let _ = writeln!(md, "| threshold | FMR | FNMR |\n|---|---|---|");
    let mut grid: Vec<f32> = (4..=14).map(|k| k as f32 * 0.05).collect();
    grid.extend([v.threshold, v.eer_threshold]);
    grid.sort_by(f32::total_cmp);
    grid.dedup_by(|a, b| (*a - *b).abs() < 1e-4);
    for t in grid {
        let note = if (t - v.threshold).abs() < 1e-4 {
            " (configured)"
        } else if (t - v.eer_threshold).abs() < 1e-4 {
            " (EER)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {t:.4}{note} | {} | {} |",
            rate(metrics::fmr(&v.impostor_scores, t), v.impostor),
            rate(metrics::fnmr(&v.genuine_scores, t), v.genuine)
        );
    }
    let _ =
        writeln!(md, "\nEqual error rate: **{:.2}%** at {:.4}.\n", 100.0 * v.eer, v.eer_threshold);
    let _ = writeln!(
        md,
        "| target FMR | threshold | FMR reached | FNMR | impostor pairs | resolvable |\n|---|---|---|---|---|---|"
    );
    for p in &v.at_fmr {
        let _ = writeln!(
            md,
            "| {:.0e} | {} | {} | {} | {} | {} |",
            p.target,
            threshold(p.threshold),
            rate(p.false_accept, p.comparisons),
            rate(p.false_reject, v.genuine),
            p.comparisons,
            if p.supported {
                "yes".to_string()
            } else {
                format!("no: needs at least {:.0}", (1.0 / p.target).ceil())
            }
        );
    }
    md.push('\n');

    let i = &r.identification;
    let _ = writeln!(md, "## Identification (1:N)\n");
    let _ = writeln!(
        md,
        "The first image of each identity in the first half (by name) enrolled; every other image searched. At threshold {:.4}:\n",
        i.threshold
    );
    let _ = writeln!(md, "| enrolled | mated searches | non-mated searches | FNIR | FPIR |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} |\n",
        i.enrolled,
        i.mated_searches,
        i.non_mated_searches,
        rate(i.fnir, i.mated_searches),
        rate(i.fpir, i.non_mated_searches)
    );

    let _ = writeln!(md, "## Presentation attacks (ISO/IEC 30107-3)\n");
    match &r.pad {
        None => {
            let _ = writeln!(md, "No PAD head is configured.\n");
        }
        Some(p) => {
            let a = &p.at_threshold;
            let unit = if p.track_frames > 1 {
                format!(
                    "tracks of up to {} consecutive captures of one sequence (their mean score, as the daemon decides)",
                    p.track_frames
                )
            } else {
                "single captures".to_string()
            };
            let _ = writeln!(md, "At the PAD threshold {:.3}, on {unit}; the fused score and each head alone at the same threshold:\n", a.threshold);
            let mut head = "| | fused |".to_string();
            let mut rule = "|---|---|".to_string();
            for h in &p.heads {
                head.push_str(&format!(" {} |", h.name));
                rule.push_str("---|");
            }
            let _ = writeln!(md, "{head}\n{rule}");
            let row = |md: &mut String, name: &str, cell: &dyn Fn(&PadRatesView) -> String| {
                let mut line = format!("| {name} | {} |", cell(&PadRatesView::fused(p)));
                for h in &p.heads {
                    line.push_str(&format!(" {} |", cell(&PadRatesView::head(h))));
                }
                let _ = writeln!(md, "{line}");
            };
            row(&mut md, "BPCER (bona fide rejected)", &|v| rate(v.rates.bpcer, p.bona_fide));
            for (i, (kind, n)) in p.attacks.iter().enumerate() {
                row(&mut md, &format!("APCER {kind}"), &|v| rate(v.rates.apcer[i].1, *n));
            }
            if !p.attacks.is_empty() {
                row(&mut md, "ACER", &|v| format!("{:.2}%", 100.0 * v.rates.acer));
                row(&mut md, "EER (attacks pooled)", &|v| format!("{:.2}%", 100.0 * v.eer));
                for (i, target) in [0.05f32, 0.10].iter().enumerate() {
                    row(
                        &mut md,
                        &format!("BPCER at APCER {:.0}% (every kind)", 100.0 * target),
                        &|v| {
                            let o = &v.at_apcer[i];
                            format!(
                                "{} (threshold {})",
                                rate(o.false_reject, p.bona_fide),
                                threshold(o.threshold)
                            )
                        },
                    );
                }
            }
            md.push('\n');
            if p.attacks.is_empty() {
                let _ = writeln!(
                    md,
                    "The dataset has no attack images (`attacks/<kind>/`), so APCER is not measured; only the bona fide side is.\n"
                );
            }
            let mut series: Vec<(&str, &[f32])> = vec![("bona fide", &p.bona_fide_scores)];
            series.extend(p.attack_scores.iter().map(|(k, s)| (k.as_str(), s.as_slice())));
            let pad = charts.save(
                "pad",
                plot::histogram(
                    "Liveness scores",
                    "liveness score",
                    &series,
                    Some(("PAD threshold", a.threshold)),
                )?,
            )?;
            let _ = writeln!(md, "![Liveness scores]({pad})\n");
        }
    }

    let _ = writeln!(md, "## Morphing attacks\n");
    match &r.morphs {
        None => {
            let _ = writeln!(md, "The dataset has no morphs (`morphs/<A>+<B>.jpg`).\n");
        }
        Some(m) => {
            let _ = writeln!(
                md,
                "MMPMR at {:.4}: **{}**: morphs whose median similarity to each contributor's images reaches the threshold for every contributor.\n",
                v.threshold,
                rate(m.mmpmr, m.morphs)
            );
            let _ = writeln!(md, "| morph | similarity to contributors | matches all |");
            let _ = writeln!(md, "|---|---|---|");
            for s in &m.per_morph {
                let scores: Vec<String> =
                    s.contributors.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
                let all = !s.contributors.is_empty()
                    && s.contributors.iter().all(|(_, score)| *score >= v.threshold);
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} |",
                    s.name,
                    scores.join(", "),
                    if all { "yes" } else { "no" }
                );
            }
            md.push('\n');
            match m.dmad_eer {
                None => {
                    let _ = writeln!(md, "No D-MAD head is configured, or no pairs to score.\n");
                }
                Some(eer) => {
                    let _ = writeln!(
                        md,
                        "D-MAD (reference vs probe): D-EER **{:.2}%** over {} bona fide and {} morph pairs.\n",
                        100.0 * eer,
                        m.dmad_bona_fide_pairs,
                        m.dmad_morph_pairs
                    );
                    let dmad = charts.save(
                        "dmad",
                        plot::histogram(
                            "D-MAD bona fide scores",
                            "bona fide score",
                            &[
                                ("bona fide pairs", &m.dmad_bona_fide_scores),
                                ("morph pairs", &m.dmad_morph_scores),
                            ],
                            None,
                        )?,
                    )?;
                    let _ = writeln!(md, "![D-MAD scores]({dmad})\n");
                }
            }
        }
    }

    charts.finish(path, md)
}

/// The rates of one column of the PAD table (the fused score or a head).
struct PadRatesView<'a> {
    rates: &'a crate::eval::metrics::PadRates,
    eer: f32,
    at_apcer: &'a [crate::eval::metrics::OperatingPoint],
}

impl<'a> PadRatesView<'a> {
    fn fused(p: &'a crate::eval::pad::Pad) -> Self {
        PadRatesView { rates: &p.at_threshold, eer: p.eer, at_apcer: &p.at_apcer }
    }

    fn head(h: &'a crate::eval::pad::PadMeasure) -> Self {
        PadRatesView { rates: &h.at_threshold, eer: h.eer, at_apcer: &h.at_apcer }
    }
}
