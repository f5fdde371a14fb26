//! `edgeid eval`: runs the configured pipeline over a labelled folder and reports the standard
//! error rates.
//!
//! Layout: `DIR/<identity>/*.jpg|png` (bona fide captures), optionally
//! `DIR/attacks/<kind>/*.jpg|png` (presentation attacks) and `DIR/morphs/<A>+<B>[~note].jpg|png`
//! (morphs of identities A and B). The largest face of each image is used; an image without one
//! is a failure to acquire, an identity whose first image fails is a failure to enrol.
//!
//! Protocols: verification compares every pair of acquired bona fide images. Identification
//! enrols the first image of each identity of the first half (sorted by name) and searches with
//! every other image: those of enrolled identities are mated searches, the rest non-mated.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::metrics::{self, OperatingPoint, Search};
use super::pad::{self, PadCapture};
use crate::capture::load_image;
use crate::config::Config;
use crate::encode::cosine;
use crate::pipeline::Pipeline;

/// One acquired image.
struct Sample {
    identity: String,
    embedding: Vec<f32>,
}

/// How `evaluate` measures.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// PAD on tracks of this many consecutive captures of one sequence (0 or 1: each
    /// capture alone); see [`super::pad`].
    pub track_frames: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub identities: usize,
    pub images: usize,
    /// Images in which no face was found (failure to acquire), by path.
    pub not_acquired: Vec<String>,
    /// Identities whose first image gave no face (failure to enrol).
    pub not_enrolled: Vec<String>,
    pub fta_rate: f32,
    pub fte_rate: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub genuine: usize,
    pub impostor: usize,
    pub threshold: f32,
    pub fmr: f32,
    pub fnmr: f32,
    pub eer: f32,
    pub eer_threshold: f32,
    /// FNMR at FMR = 1e-2, 1e-3, 1e-4, each with the comparisons that support it.
    pub at_fmr: Vec<OperatingPoint>,
    /// The scores themselves, for plots and re-analysis (not in the JSON output: a folder of
    /// 5,000 photos has 12 million of them).
    #[serde(skip)]
    pub genuine_scores: Vec<f32>,
    #[serde(skip)]
    pub impostor_scores: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Identification {
    pub enrolled: usize,
    pub mated_searches: usize,
    pub non_mated_searches: usize,
    pub threshold: f32,
    pub fnir: f32,
    pub fpir: f32,
}

/// One morph and its median similarity to each contributor's images.
#[derive(Debug, Clone, Serialize)]
pub struct MorphScores {
    pub name: String,
    pub contributors: Vec<(String, f32)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Morphs {
    pub morphs: usize,
    /// Mated morph presentation match rate at the match threshold: share of morphs whose
    /// median score against each contributor's images is at or above it for every contributor.
    pub mmpmr: f32,
    /// D-MAD error rates (bona fide: first image of an identity against its others; attacks: each
    /// morph against its contributors' images), when a D-MAD head is loaded.
    pub dmad_eer: Option<f32>,
    pub dmad_bona_fide_pairs: usize,
    pub dmad_morph_pairs: usize,
    pub per_morph: Vec<MorphScores>,
    /// D-MAD bona fide scores of both kinds of pairs, for plots and re-analysis.
    pub dmad_bona_fide_scores: Vec<f32>,
    pub dmad_morph_scores: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub dataset: PathBuf,
    pub encoder: String,
    pub counts: Counts,
    pub verification: Verification,
    pub identification: Identification,
    pub pad: Option<pad::Pad>,
    pub morphs: Option<Morphs>,
    /// Every capture's PAD scores (bona fide and attacks), for calibration and re-analysis.
    pub pad_captures: Vec<PadCapture>,
}

fn images_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn subdirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the dataset folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The largest face the pipeline finds in a frame: the one an evaluation measures.
pub(crate) fn largest_face(
    pipeline: &mut Pipeline,
    frame: &crate::capture::Frame,
) -> anyhow::Result<Option<crate::detect::Face>> {
    Ok(pipeline.detect(frame)?.into_iter().max_by(|a, b| a.area().total_cmp(&b.area())))
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

/// Runs the evaluation. `progress` draws a progress bar on stderr.
pub fn evaluate(cfg: &Config, dir: &Path, progress: bool) -> anyhow::Result<EvalReport> {
    evaluate_with(cfg, dir, &EvalOptions::default(), progress)
}

/// [`evaluate`] with options.
pub fn evaluate_with(
    cfg: &Config,
    dir: &Path,
    options: &EvalOptions,
    progress: bool,
) -> anyhow::Result<EvalReport> {
    let mut pipeline = Pipeline::load(cfg)?;
    let dmad = pipeline.mad.as_ref().and_then(|m| m.dmad.clone());
    let identity_dirs: Vec<PathBuf> = subdirs(dir)?
        .into_iter()
        .filter(|p| !matches!(name_of(p).as_str(), "attacks" | "morphs"))
        .collect();
    anyhow::ensure!(
        !identity_dirs.is_empty(),
        "dataset {} has no identity folders; lay it out as DIR/<identity>/*.jpg",
        dir.display()
    );
    let mut jobs: Vec<(String, PathBuf)> = Vec::new();
    for d in &identity_dirs {
        jobs.extend(images_in(d)?.into_iter().map(|p| (name_of(d), p)));
    }
    let attack_dirs =
        if dir.join("attacks").is_dir() { subdirs(&dir.join("attacks"))? } else { vec![] };
    for d in &attack_dirs {
        jobs.extend(images_in(d)?.into_iter().map(|p| (format!("attacks/{}", name_of(d)), p)));
    }
    let morph_files =
        if dir.join("morphs").is_dir() { images_in(&dir.join("morphs"))? } else { vec![] };
    jobs.extend(morph_files.iter().map(|p| ("morphs".to_string(), p.clone())));

    let bar = if progress { ProgressBar::new(jobs.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {eta} left {msg}")
            .expect("a valid template"),
    );
    let mut samples: Vec<Sample> = Vec::new();
    let mut pad_captures: Vec<PadCapture> = Vec::new();
    let mut morphs: Vec<(String, Vec<String>, Vec<f32>)> = Vec::new();
    let mut not_acquired = Vec::new();
    let mut first_failed: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (label, path) in &jobs {
        bar.inc(1);
        // A file that cannot be read or decoded is a failure to acquire, as a capture that
        // yields no face would be: the evaluation goes on with the rest.
        let frame = match load_image(path) {
            Ok(frame) => Some(frame),
            Err(e) => {
                log::warn!("{e}; counted as a failure to acquire");
                None
            }
        };
        let largest = match &frame {
            Some(f) => largest_face(&mut pipeline, f)?,
            None => None,
        };
        let first_of_identity = !label.contains('/') && label != "morphs" && !seen.contains(label);
        if first_of_identity {
            seen.push(label.clone());
        }
        let Some(face) = largest else {
            not_acquired.push(path.display().to_string());
            if first_of_identity {
                first_failed.push(label.clone());
            }
            continue;
        };
        let frame = frame.expect("a face was found in it");
        let Some(o) = pipeline.encode_faces(&frame, vec![face])?.pop() else {
            not_acquired.push(path.display().to_string());
            continue;
        };
        let attack = label.strip_prefix("attacks/").map(str::to_string);
        // Bona fide PAD scores come from the identities' acquired images, as their pairs do.
        let counted = attack.is_some() || (label != "morphs" && !first_failed.contains(label));
        if let Some(p) = o.pad.filter(|_| counted) {
            let capture = PadCapture {
                path: path.clone(),
                attack: attack.clone(),
                heads: p.heads,
                live: p.live,
            };
            pad_captures.push(capture);
        }
        if label == "morphs" {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let names = stem.split('~').next().unwrap_or("");
            let who = names.split('+').map(str::to_string).collect();
            morphs.push((stem.to_string(), who, o.embedding.0));
        } else if attack.is_none() && !first_failed.contains(label) {
            samples.push(Sample { identity: label.clone(), embedding: o.embedding.0 });
        }
    }
    bar.finish_and_clear();

    let threshold = cfg.recognition.match_threshold;
    // Verification: every pair.
    let labels: Vec<&str> = samples.iter().map(|s| s.identity.as_str()).collect();
    let embeddings: Vec<&[f32]> = samples.iter().map(|s| s.embedding.as_slice()).collect();
    let (mut genuine, mut impostor) = all_pairs(&embeddings, &labels);
    // Sorted once here: the EER, the three operating points and calibrate's each sort a copy,
    // which then costs a pass instead of a sort of millions of scores.
    genuine.sort_unstable_by(f32::total_cmp);
    impostor.sort_unstable_by(f32::total_cmp);
    let (eer, eer_threshold) = metrics::equal_error_rate(&genuine, &impostor);
    let verification = Verification {
        genuine: genuine.len(),
        impostor: impostor.len(),
        threshold,
        fmr: metrics::fmr(&impostor, threshold),
        fnmr: metrics::fnmr(&genuine, threshold),
        eer,
        eer_threshold,
        at_fmr: [1e-2, 1e-3, 1e-4]
            .iter()
            .map(|t| metrics::at_false_accept(&genuine, &impostor, *t))
            .collect(),
        genuine_scores: genuine,
        impostor_scores: impostor,
    };

    // Identification: the first half of the identities enrolled with their first image.
    let names: Vec<String> = {
        let mut n: Vec<String> = samples.iter().map(|s| s.identity.clone()).collect();
        n.dedup();
        n
    };
    let enrolled: Vec<&str> = names[..names.len().div_ceil(2)].iter().map(String::as_str).collect();
    let mut references: Vec<(&str, &[f32])> = Vec::new();
    let mut searches = Vec::new();
    for s in &samples {
        let is_enrolled = enrolled.contains(&s.identity.as_str());
        if is_enrolled && !references.iter().any(|r| r.0 == s.identity) {
            references.push((&s.identity, &s.embedding));
            continue;
        }
        let best = references
            .iter()
            .map(|(n, e)| (*n, cosine(e, &s.embedding)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((name, score)) = best {
            searches.push(Search { mated: is_enrolled, correct: name == s.identity, score });
        }
    }
    let identification = Identification {
        enrolled: references.len(),
        mated_searches: searches.iter().filter(|s| s.mated).count(),
        non_mated_searches: searches.iter().filter(|s| !s.mated).count(),
        threshold,
        fnir: metrics::fnir(&searches, threshold),
        fpir: metrics::fpir(&searches, threshold),
    };

    let pad = pad::report(&pad_captures, cfg.pad.threshold, options.track_frames);

    let morphs_report = (!morphs.is_empty()).then(|| {
        fn of<'a>(samples: &'a [Sample], name: &'a str) -> impl Iterator<Item = &'a Sample> {
            samples.iter().filter(move |s| s.identity == name)
        }
        let median = |mut v: Vec<f32>| {
            v.sort_by(f32::total_cmp);
            if v.is_empty() {
                f32::NEG_INFINITY
            } else {
                v[v.len() / 2]
            }
        };
        let scores: Vec<Vec<f32>> = morphs
            .iter()
            .map(|(_, who, e)| {
                who.iter()
                    .map(|n| median(of(&samples, n).map(|s| cosine(e, &s.embedding)).collect()))
                    .collect()
            })
            .collect();
        let (mut bf, mut at) = (Vec::new(), Vec::new());
        if let Some(head) = &dmad {
            for name in &names {
                let imgs: Vec<&Sample> = of(&samples, name).collect();
                for probe in imgs.iter().skip(1) {
                    bf.extend(head.score(&imgs[0].embedding, &probe.embedding).ok());
                }
            }
            for (_, who, e) in &morphs {
                for n in who {
                    for probe in of(&samples, n) {
                        at.extend(head.score(e, &probe.embedding).ok());
                    }
                }
            }
        }
        Morphs {
            morphs: morphs.len(),
            mmpmr: metrics::mmpmr(&scores, threshold),
            dmad_eer: (!bf.is_empty() && !at.is_empty())
                .then(|| metrics::equal_error_rate(&bf, &at).0),
            dmad_bona_fide_pairs: bf.len(),
            dmad_morph_pairs: at.len(),
            per_morph: morphs
                .iter()
                .zip(&scores)
                .map(|((name, who, _), s)| MorphScores {
                    name: name.clone(),
                    contributors: who.iter().cloned().zip(s.iter().copied()).collect(),
                })
                .collect(),
            dmad_bona_fide_scores: bf,
            dmad_morph_scores: at,
        }
    });

    let n_images = jobs.len();
    Ok(EvalReport {
        dataset: dir.to_path_buf(),
        encoder: pipeline.encoder.model_id().to_string(),
        counts: Counts {
            identities: identity_dirs.len(),
            images: n_images,
            fta_rate: not_acquired.len() as f32 / n_images.max(1) as f32,
            fte_rate: first_failed.len() as f32 / identity_dirs.len() as f32,
            not_acquired,
            not_enrolled: first_failed,
        },
        verification,
        identification,
        pad,
        morphs: morphs_report,
        pad_captures,
    })
}

/// The cosine similarity of every pair of `embeddings`, split by whether the two `labels` agree
/// (genuine) or not (impostor), in a fixed order. Each embedding is normalised once and the
/// triangle of the similarity matrix is scored in blocks of rows on every core: 10.1 M pairs of
/// 128-D embeddings take ~0.45 s on 2 cores (`cargo bench --bench calibrate`).
pub fn all_pairs(embeddings: &[&[f32]], labels: &[&str]) -> (Vec<f32>, Vec<f32>) {
    const BLOCK: usize = 32;
    let n = embeddings.len();
    let dim = embeddings.first().map_or(0, |e| e.len());
    let mut matrix = vec![0f32; n * dim];
    for (row, e) in matrix.chunks_exact_mut(dim.max(1)).zip(embeddings) {
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        if e.len() == dim && norm > 0.0 {
            row.iter_mut().zip(e.iter()).for_each(|(r, x)| *r = x / norm);
        }
    }
    let blocks = n.div_ceil(BLOCK);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parts: Vec<(usize, Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
        let workers =
            std::thread::available_parallelism().map_or(1, |p| p.get()).min(blocks.max(1));
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if b >= blocks {
                            return done;
                        }
                        let (mut g, mut i) = (Vec::new(), Vec::new());
                        for r in b * BLOCK..((b + 1) * BLOCK).min(n) {
                            let a = &matrix[r * dim..(r + 1) * dim];
                            for c in r + 1..n {
                                let s: f32 = a
                                    .iter()
                                    .zip(&matrix[c * dim..(c + 1) * dim])
                                    .map(|(x, y)| x * y)
                                    .sum();
                                if labels[r] == labels[c] {
                                    g.push(s);
                                } else {
                                    i.push(s);
                                }
                            }
                        }
                        done.push((b, g, i));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a scoring thread panicked")).collect()
    });
    parts.sort_by_key(|p| p.0);
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (_, g, i) in parts {
        genuine.extend(g);
        impostor.extend(i);
    }
    (genuine, impostor)
}
