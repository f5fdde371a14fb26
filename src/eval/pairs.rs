//! `edgeid eval --pairs FILE`: LFW's verification protocol, so that a figure measured here can be
//! set beside a published one.
//!
//! The file is LFW's `pairs.txt`: a first line `FOLDS N` (or `N` alone, as `pairsDevTrain.txt`:
//! one fold), then for each fold `N` matched pairs (`name i j`) and `N` mismatched pairs
//! (`name1 i name2 j`), tab- or space-separated; image `i` of `name` is
//! `DIR/name/name_000i.jpg`. Accuracy is LFW's "unrestricted" 10-fold figure: for each fold the
//! threshold that is most accurate on the other folds is applied to it, and the folds' accuracies
//! are averaged. Beside it: FMR and FNMR at the configured threshold over every pair.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::metrics;
use crate::capture::load_image;
use crate::config::Config;
use crate::encode::cosine;
use crate::pipeline::Pipeline;

/// One pair of the file: two images, whether they show one person, and its fold.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub matched: bool,
    pub fold: usize,
}

/// Reads a pairs file in LFW's format, naming images under `dir`. Every line is checked: a
/// malformed line or a count that disagrees with the header is an error naming the line.
pub fn parse(text: &str, dir: &Path, file: &Path) -> anyhow::Result<(usize, Vec<Pair>)> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("pairs file {} is empty; give LFW's pairs.txt format (a line `FOLDS N`, then per fold N matched and N mismatched pairs)", file.display());
    };
    let numbers: Vec<usize> =
        header.split_whitespace().map(str::parse).collect::<Result<_, _>>().with_context(|| {
            format!(
            "pairs file {} line 1 `{header}`: expected `FOLDS N` or `N` (LFW's pairs.txt header)",
            file.display()
        )
        })?;
    let (folds, per) = match numbers[..] {
        [n] => (1, n),
        [f, n] => (f, n),
        _ => bail!(
            "pairs file {} line 1 `{header}`: expected `FOLDS N` or `N` (LFW's pairs.txt header)",
            file.display()
        ),
    };
    if folds == 0 || per == 0 {
        bail!(
            "pairs file {} line 1 `{header}`: folds and pairs per fold must be positive",
            file.display()
        );
    }
    let image = |name: &str, n: &str, line: usize| -> anyhow::Result<PathBuf> {
        let n: u32 = n.parse().ok().filter(|n| *n > 0).with_context(|| {
            format!(
                "pairs file {} line {line}: `{n}` is not an image number (1, 2, …)",
                file.display()
            )
        })?;
        // A name is a folder of `dir`, never a path out of it.
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            bail!(
                "pairs file {} line {line}: `{name}` is not a person's folder name",
                file.display()
            );
        }
        let path = dir.join(name).join(format!("{name}_{n:04}.jpg"));
        if !path.is_file() {
            bail!(
                "pairs file {} line {line}: {} does not exist (images are DIR/<name>/<name>_NNNN.jpg, as LFW's)",
                file.display(),
                path.display()
            );
        }
        Ok(path)
    };
    let mut pairs = Vec::with_capacity(folds * 2 * per);
    for (k, (i, line)) in lines.enumerate() {
        let line_no = i + 1;
        let (fold, within) = (k / (2 * per), k % (2 * per));
        if fold >= folds {
            bail!(
                "pairs file {} line {line_no}: more pairs than the header's {folds} fold(s) of {per} matched and {per} mismatched",
                file.display()
            );
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let matched = within < per;
        let pair = match (matched, &f[..]) {
            (true, [name, i, j]) => Pair {
                a: image(name, i, line_no)?,
                b: image(name, j, line_no)?,
                matched,
                fold,
            },
            (false, [n1, i, n2, j]) => Pair {
                a: image(n1, i, line_no)?,
                b: image(n2, j, line_no)?,
                matched,
                fold,
            },
            _ => bail!(
                "pairs file {} line {line_no} `{line}`: expected a {} pair (`{}`) at this place of fold {}",
                file.display(),
                if matched { "matched" } else { "mismatched" },
                if matched { "name i j" } else { "name1 i name2 j" },
                fold + 1
            ),
        };
        pairs.push(pair);
    }
    if pairs.len() != folds * 2 * per {
        bail!(
            "pairs file {} holds {} pairs where its header promises {folds} fold(s) of {per} matched and {per} mismatched ({})",
            file.display(),
            pairs.len(),
            folds * 2 * per
        );
    }
    Ok((folds, pairs))
}

/// The result of the protocol.
#[derive(Debug, Clone, Serialize)]
pub struct PairsReport {
    pub dataset: PathBuf,
    pub pairs_file: PathBuf,
    pub encoder: String,
    pub folds: usize,
    pub matched: usize,
    pub mismatched: usize,
    /// Images in which no face was found: their pairs score -1 (a non-match), as an
    /// unrestricted protocol counts every pair.
    pub not_acquired: Vec<String>,
    /// Mean accuracy over the folds, each at the threshold chosen on the other folds.
    pub accuracy: f32,
    /// Standard error of that mean (the folds' standard deviation / √folds), as LFW reports.
    pub accuracy_se: f32,
    pub fold_accuracy: Vec<f32>,
    pub fold_threshold: Vec<f32>,
    /// The configured `recognition.match_threshold` and the error rates there over every pair.
    pub threshold: f32,
    pub fmr: f32,
    pub fnmr: f32,
    pub eer: f32,
}

/// Accuracy of `scores` (score, matched) at `t`: matched pairs at or above it, mismatched below.
fn accuracy(scores: &[(f32, bool)], t: f32) -> f32 {
    let right = scores.iter().filter(|(s, m)| (*s >= t) == *m).count();
    right as f32 / scores.len().max(1) as f32
}

/// The most accurate threshold on `scores`: candidates are midpoints between neighbouring
/// distinct scores (and one below and above them all); the lowest of equally accurate ones.
fn best_threshold(scores: &[(f32, bool)]) -> f32 {
    let mut s: Vec<f32> = scores.iter().map(|p| p.0).collect();
    s.sort_by(f32::total_cmp);
    s.dedup();
    let mut candidates = vec![s.first().map_or(0.0, |v| v - 1e-3)];
    candidates.extend(s.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    candidates.push(s.last().map_or(0.0, |v| v + 1e-3));
    let mut best = (f32::NEG_INFINITY, 0.0);
    for t in candidates {
        let a = accuracy(scores, t);
        if a > best.0 {
            best = (a, t);
        }
    }
    best.1
}

/// Ten-fold (or n-fold) accuracy: per fold, the threshold chosen on the others. Returns each
/// fold's accuracy and threshold. With one fold, the threshold is chosen on that fold itself.
pub fn fold_accuracy(scores: &[(f32, bool, usize)], folds: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut acc, mut thr) = (Vec::new(), Vec::new());
    for k in 0..folds {
        let test: Vec<(f32, bool)> =
            scores.iter().filter(|p| p.2 == k).map(|p| (p.0, p.1)).collect();
        let train: Vec<(f32, bool)> = if folds == 1 {
            test.clone()
        } else {
            scores.iter().filter(|p| p.2 != k).map(|p| (p.0, p.1)).collect()
        };
        let t = best_threshold(&train);
        acc.push(accuracy(&test, t));
        thr.push(t);
    }
    (acc, thr)
}

/// Runs the protocol: each image named in the file is embedded once (its largest face).
pub fn evaluate(
    cfg: &Config,
    dir: &Path,
    pairs_file: &Path,
    progress: bool,
) -> anyhow::Result<PairsReport> {
    let text = std::fs::read_to_string(pairs_file)
        .with_context(|| format!("reading the pairs file {}", pairs_file.display()))?;
    let (folds, pairs) = parse(&text, dir, pairs_file)?;
    let mut pipeline = Pipeline::load(cfg)?;
    let mut images: Vec<&PathBuf> = pairs.iter().flat_map(|p| [&p.a, &p.b]).collect();
    images.sort();
    images.dedup();
    let bar = if progress { ProgressBar::new(images.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {eta} left")
            .expect("a valid template"),
    );
    let mut embedding: HashMap<&PathBuf, Vec<f32>> = HashMap::new();
    let mut not_acquired = Vec::new();
    for path in images {
        bar.inc(1);
        // As in a folder evaluation, an unreadable image is a failure to acquire, not the end.
        let frame = match load_image(path) {
            Ok(frame) => frame,
            Err(e) => {
                log::warn!("{e}; counted as a failure to acquire");
                not_acquired.push(path.display().to_string());
                continue;
            }
        };
        let face = super::dataset::largest_face(&mut pipeline, &frame)?;
        match face.map(|f| pipeline.encode_faces(&frame, vec![f])).transpose()? {
            Some(mut o) if !o.is_empty() => {
                embedding.insert(path, o.remove(0).embedding.0);
            }
            _ => not_acquired.push(path.display().to_string()),
        }
    }
    bar.finish_and_clear();
    let scores: Vec<(f32, bool, usize)> = pairs
        .iter()
        .map(|p| {
            let s = match (embedding.get(&p.a), embedding.get(&p.b)) {
                (Some(a), Some(b)) => cosine(a, b),
                _ => -1.0,
            };
            (s, p.matched, p.fold)
        })
        .collect();
    let (fold_acc, fold_thr) = fold_accuracy(&scores, folds);
    let mean = fold_acc.iter().sum::<f32>() / folds as f32;
    let sd = if folds > 1 {
        (fold_acc.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / (folds - 1) as f32).sqrt()
    } else {
        0.0
    };
    let genuine: Vec<f32> = scores.iter().filter(|p| p.1).map(|p| p.0).collect();
    let impostor: Vec<f32> = scores.iter().filter(|p| !p.1).map(|p| p.0).collect();
    let threshold = cfg.recognition.match_threshold;
    Ok(PairsReport {
        dataset: dir.to_path_buf(),
        pairs_file: pairs_file.to_path_buf(),
        encoder: pipeline.encoder.model_id().to_string(),
        folds,
        matched: genuine.len(),
        mismatched: impostor.len(),
        not_acquired,
        accuracy: mean,
        accuracy_se: sd / (folds as f32).sqrt(),
        fold_accuracy: fold_acc,
        fold_threshold: fold_thr,
        threshold,
        fmr: metrics::fmr(&impostor, threshold),
        fnmr: metrics::fnmr(&genuine, threshold),
        eer: metrics::equal_error_rate(&genuine, &impostor).0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_fold_accuracy_by_hand() {
        // Two folds. Fold 0: matched 0.9, 0.8; mismatched 0.1, 0.7. Fold 1: matched 0.6, 0.95;
        // mismatched 0.2, 0.3. Trained on fold 1, the best threshold lies between 0.3 and 0.6
        // (0.45): on fold 0 it accepts 0.9, 0.8, 0.7: 3 of 4 right. Trained on fold 0, between 0.7
        // and 0.8 (0.75): on fold 1 it rejects 0.6: 3 of 4 right.
        let s = [
            (0.9, true, 0),
            (0.8, true, 0),
            (0.1, false, 0),
            (0.7, false, 0),
            (0.6, true, 1),
            (0.95, true, 1),
            (0.2, false, 1),
            (0.3, false, 1),
        ];
        let (acc, thr) = fold_accuracy(&s, 2);
        assert_eq!(acc, vec![0.75, 0.75]);
        assert!((thr[0] - 0.45).abs() < 1e-6, "{thr:?}");
        assert!((thr[1] - 0.75).abs() < 1e-6, "{thr:?}");
    }

    #[test]
    fn lfw_format_is_read_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("edgeid-pairs-{}", std::process::id()));
        for (name, n) in [("Ann", 2), ("Bob", 1)] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            for i in 1..=n {
                std::fs::write(dir.join(name).join(format!("{name}_{i:04}.jpg")), b"x").unwrap();
            }
        }
        let file = Path::new("pairs.txt");
        let (folds, pairs) = parse("1\t1\nAnn\t1\t2\nAnn\t2\tBob\t1\n", &dir, file).unwrap();
        assert_eq!(folds, 1);
        assert_eq!(pairs.len(), 2);
        assert!(pairs[0].matched && !pairs[1].matched);
        assert_eq!(pairs[1].b, dir.join("Bob").join("Bob_0001.jpg"));
        // pairsDevTrain.txt's one-number header.
        assert_eq!(parse("1\nAnn 1 2\nAnn 1 Bob 1\n", &dir, file).unwrap().1.len(), 2);
        let err = |t: &str| format!("{:#}", parse(t, &dir, file).unwrap_err());
        assert!(err("1 1\nAnn 1 3\nAnn 1 Bob 1\n").contains("line 2"), "missing image");
        assert!(err("1 1\nAnn 1 Bob 1\nAnn 1 2\n").contains("expected a matched pair"));
        assert!(err("1 1\nAnn 1 2\n").contains("promises"), "too few pairs");
        assert!(err("1 1\nAnn 1 2\nAnn 1 Bob 1\nAnn 1 2\n").contains("more pairs"));
        assert!(err("ten\n").contains("FOLDS N"));
        assert!(err("1 1\n../Ann 1 2\nAnn 1 Bob 1\n").contains("not a person's folder"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
