//! SVG charts for the reports (evaluation, audits, benchmarks). plotters' SVG backend writes
//! text as SVG text elements, so drawing needs no font files on the device, and the charts are
//! plain files that any browser or Markdown viewer shows.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Series colours, distinguishable in print and for the common colour-vision deficiencies
/// (Okabe–Ito).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

const SIZE: (u32, u32) = (720, 420);

/// The charts of a Markdown report, written beside it as `<report stem>-<name>.svg` so that
/// the report links them by relative name.
pub struct ReportCharts {
    dir: PathBuf,
    stem: String,
    /// Every file written, the report first once [`ReportCharts::finish`] wrote it.
    pub written: Vec<PathBuf>,
}

impl ReportCharts {
    /// Creates the report's folder.
    pub fn new(report: &Path) -> anyhow::Result<ReportCharts> {
        let stem = report.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let dir = report.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the report folder {}", dir.display()))?;
        Ok(ReportCharts { dir: dir.to_path_buf(), stem, written: Vec::new() })
    }

    /// Writes one chart; returns the name to link it by.
    pub fn save(&mut self, name: &str, svg: String) -> anyhow::Result<String> {
        let file = format!("{}-{name}.svg", self.stem);
        let p = self.dir.join(&file);
        std::fs::write(&p, svg).with_context(|| format!("writing {}", p.display()))?;
        self.written.push(p);
        Ok(file)
    }

    /// Writes the report text itself; returns every file written, the report first.
    pub fn finish(mut self, report: &Path, markdown: String) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::write(report, markdown)
            .with_context(|| format!("writing the report {}", report.display()))?;
        self.written.insert(0, report.to_path_buf());
        Ok(self.written)
    }
}

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// The frame every chart shares: title, margins, room for the axis labels.
fn framed<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 18)).margin(12).x_label_area_size(40).y_label_area_size(56);
    b
}

fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn draw(
    f: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        f(&root)?;
        root.present()?;
    }
    Ok(svg)
}

/// Overlaid histograms of score lists, each normalised to its own count (so a few hundred
/// genuine pairs and thousands of impostor pairs share one axis), with an optional vertical
/// marker (a threshold).
pub fn histogram(
    title: &str,
    x_desc: &str,
    series: &[(&str, &[f32])],
    marker: Option<(&str, f32)>,
) -> anyhow::Result<String> {
    const BINS: usize = 40;
    let finite = || series.iter().flat_map(|s| s.1.iter().copied()).filter(|v| v.is_finite());
    let mut lo = finite().fold(f32::INFINITY, f32::min);
    let mut hi = finite().fold(f32::NEG_INFINITY, f32::max);
    if let Some((_, m)) = marker {
        (lo, hi) = (lo.min(m), hi.max(m));
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-6 {
        (lo, hi) = (lo - 0.05, hi + 0.05);
    }
    let width = (hi - lo) / BINS as f32;
    let shares: Vec<Vec<f32>> = series
        .iter()
        .map(|(_, values)| {
            let mut bins = [0f32; BINS];
            for v in values.iter().filter(|v| v.is_finite()) {
                bins[(((v - lo) / width) as usize).min(BINS - 1)] += 1.0;
            }
            let n = values.len().max(1) as f32;
            bins.iter().map(|b| b / n).collect()
        })
        .collect();
    let top = shares.iter().flatten().copied().fold(0.0, f32::max).max(0.01) * 1.1;
    draw(|root| {
        let mut chart = framed(root, title).build_cartesian_2d(lo..hi, 0f32..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc("share of the series")
            .draw()?;
        for (i, ((label, values), share)) in series.iter().zip(&shares).enumerate() {
            let c = colour(i);
            chart
                .draw_series(share.iter().enumerate().filter(|(_, s)| **s > 0.0).map(|(b, s)| {
                    let x0 = lo + b as f32 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, *s)], c.mix(0.45).filled())
                }))?
                .label(format!("{label} ({})", values.len()))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        if let Some((name, m)) = marker {
            chart
                .draw_series(LineSeries::new([(m, 0.0), (m, top)], BLACK.stroke_width(2)))?
                .label(format!("{name} {m:.3}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK.stroke_width(2)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
}

/// A DET curve: false reject against false accept rate, both on log axes from `floor` to 1.
/// Rates below `floor` (zero among them) are drawn on the axis, as a DET plot of finitely many
/// comparisons must.
pub fn det(
    title: &str,
    curves: &[(&str, Vec<(f32, f32)>)],
    marks: &[(String, f32, f32)],
    floor: f32,
) -> anyhow::Result<String> {
    let clamp = |(a, r): (f32, f32)| (a.max(floor), r.max(floor));
    draw(|root| {
        let mut chart = framed(root, title)
            .build_cartesian_2d((floor..1f32).log_scale(), (floor..1f32).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("false match rate (FMR)")
            .y_desc("false non-match rate (FNMR)")
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        // The line FMR = FNMR: where a curve crosses it lies the equal error rate.
        chart
            .draw_series(LineSeries::new([(floor, floor), (1.0, 1.0)], RGBColor(150, 150, 150)))?
            .label("FMR = FNMR")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], RGBColor(150, 150, 150)));
        for (i, (label, points)) in curves.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(points.iter().copied().map(clamp), c.stroke_width(2)))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], c.stroke_width(2)));
        }
        for (i, (label, a, r)) in marks.iter().enumerate() {
            let c = colour(curves.len() + i);
            chart
                .draw_series([Circle::new(clamp((*a, *r)), 5, c.filled())])?
                .label(label.as_str())
                .legend(move |(x, y)| Circle::new((x + 6, y), 5, c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// Grouped bars: one group per category, one bar per series, on a linear axis from 0 to `max`
/// (accuracies, latencies); the legend sits top right, so leave room above the tallest bar.
pub fn bars(
    title: &str,
    y_desc: &str,
    categories: &[String],
    series: &[(&str, Vec<f32>)],
    max: f32,
) -> anyhow::Result<String> {
    let n = categories.len().max(1);
    let k = series.len().max(1) as f32;
    draw(|root| {
        let mut chart = framed(root, title).build_cartesian_2d(0f32..n as f32, 0f32..max)?;
        chart.configure_mesh().disable_x_mesh().x_labels(0).y_desc(y_desc).draw()?;
        for (j, (label, values)) in series.iter().enumerate() {
            let c = colour(j);
            chart
                .draw_series(values.iter().enumerate().map(|(i, v)| {
                    let x0 = i as f32 + 0.1 + 0.8 * j as f32 / k;
                    Rectangle::new([(x0, 0.0), (x0 + 0.8 / k, v.clamp(0.0, max))], c.filled())
                }))?
                .label(*label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        // Category names under their groups, placed in pixels (plotters labels a numeric axis
        // at round numbers, not at group centres).
        let style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Center, VPos::Top));
        // Names wider than their group (~7 px a character) go on two staggered rows.
        let group_px = chart.backend_coord(&(1.0, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0;
        let stagger = categories.iter().any(|c| c.chars().count() as i32 * 7 > group_px);
        let width = root.dim_in_pixel().0 as i32;
        for (i, name) in categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f32 + 0.5, 0.0));
            // A name at either end is moved inwards so that it is not cut at the image's edge.
            let half = name.chars().count() as i32 * 7 / 2 + 2;
            let x = x.clamp(half.min(width / 2), (width - half).max(width / 2));
            let dy = if stagger && i % 2 == 1 { 22 } else { 6 };
            root.draw(&Text::new(name.clone(), (x, y + dy), style.clone()))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// Lines over a numeric x axis, with an optional horizontal reference line (an alert level).
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(&str, Vec<(f32, f32)>)],
    reference: Option<(&str, f32)>,
) -> anyhow::Result<String> {
    let all = || {
        series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let (mut x0, mut x1) = (
        all().map(|p| p.0).fold(f32::INFINITY, f32::min),
        all().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max),
    );
    let mut y1 = all().map(|p| p.1).fold(0f32, f32::max);
    if let Some((_, r)) = reference {
        y1 = y1.max(r);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-6 {
        x1 = x0 + 1.0;
    }
    let y1 = (y1 * 1.15).max(0.1);
    draw(|root| {
        let mut chart = framed(root, title).build_cartesian_2d(x0..x1, 0f32..y1)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
        for (i, (label, points)) in series.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], c.stroke_width(2)));
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
        }
        if let Some((name, r)) = reference {
            chart
                .draw_series(LineSeries::new([(x0, r), (x1, r)], BLACK.stroke_width(1)))?
                .label(format!("{name} {r}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
}
