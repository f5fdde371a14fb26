//! The frame path, built from a config: [`FramePath::step`] takes a frame (and, in the daemon,
//! its camera's tracker) to its faces, their scores and the decisions: detect → carry (a decided
//! person's face continues unencoded) → align, encode, PAD → tags → track → decide. The
//! daemon, `identify`, the operator API and the bench run every frame through it, so a stage
//! added here is added for all of them. [`Pipeline`] holds the models of its stages.

use anyhow::Context;

use crate::align::{align, sharpness, AlignedFace};
use crate::capture::Frame;
use crate::config::Config;
use crate::decide::{decide, judge, Decision, Evidence, Identities, Outcome, Policy};
use crate::detect::{self, Face, FaceDetector};
use crate::encode::{Embedding, Encoder};
use crate::gallery::Match;
use crate::heads::mad::Dmad;
use crate::heads::mad::Mad;
use crate::heads::{Pad, PadScore};
use crate::manifest::{Manifest, ModelError};
use crate::tag::{TagReport, Tagger};
use crate::track::{Glance, Sighting, Tracker};

/// One face seen in a frame, with its aligned crop and embedding.
#[derive(Debug, Clone)]
pub struct Observation {
    pub face: Face,
    pub aligned: AlignedFace,
    pub embedding: Embedding,
    /// PAD scores, when PAD is enabled.
    pub pad: Option<PadScore>,
}

pub struct Pipeline {
    pub detector: Box<dyn FaceDetector>,
    pub encoder: Encoder,
    pub pad: Option<Pad>,
    /// Morph heads, when MAD is enabled.
    pub mad: Option<Mad>,
    min_score: f32,
}

impl Pipeline {
    /// Loads every model the config names, checking each against its manifest.
    pub fn load(cfg: &Config) -> Result<Pipeline, ModelError> {
        crate::infer::gpu::configure(&cfg.gpu);
        crate::infer::cpu::configure(&cfg.cpu);
        let detector = detect::load(cfg.backend, &cfg.detector)?;
        let encoder = Encoder::load(cfg.backend, &Manifest::load(&cfg.encoder.manifest)?)?
            .with_flip(cfg.encoder.flip);
        let pad = if cfg.pad.enabled {
            let manifests =
                cfg.pad.models.iter().map(|p| Manifest::load(p)).collect::<Result<Vec<_>, _>>()?;
            Some(Pad::load(cfg.backend, &manifests, cfg.pad.fusion, &cfg.pad.logistic())?)
        } else {
            None
        };
        let mad = if cfg.mad.enabled {
            let smad =
                cfg.mad.smad.iter().map(|p| Manifest::load(p)).collect::<Result<Vec<_>, _>>()?;
            let dmad = cfg.mad.dmad.as_deref();
            Some(Mad::load(cfg.backend, &smad, dmad, encoder.model_id(), encoder.dim())?)
        } else {
            None
        };
        Ok(Pipeline { detector, encoder, pad, mad, min_score: cfg.detector.min_score() })
    }

    /// Faces scoring at least the configured `min_score`, best first.
    pub fn detect(&mut self, frame: &Frame) -> anyhow::Result<Vec<Face>> {
        let mut faces = self
            .detector
            .detect(frame)
            .with_context(|| format!("detecting faces in {}", frame.source))?;
        faces.retain(|f| f.score >= self.min_score);
        Ok(faces)
    }

    /// Aligns and encodes the given faces of a frame in one encoder batch, and scores them
    /// with the PAD heads when enabled.
    pub fn encode_faces(
        &mut self,
        frame: &Frame,
        faces: Vec<Face>,
    ) -> anyhow::Result<Vec<Observation>> {
        let spec = self.encoder.alignment().clone();
        let mut kept = Vec::new();
        for face in faces {
            // Degenerate landmarks (all on one point) cannot be aligned: skip that face.
            if let Some(aligned) = align(&frame.image, &face, &spec) {
                kept.push((face, aligned));
            }
        }
        let crops: Vec<_> = kept.iter().map(|(_, a)| &a.image).collect();
        let embeddings = self
            .encoder
            .encode(&crops)
            .with_context(|| format!("encoding faces of {}", frame.source))?;
        let mut pad: Vec<Option<PadScore>> = vec![None; kept.len()];
        if let Some(p) = &mut self.pad {
            let faces: Vec<Face> = kept.iter().map(|(f, _)| f.clone()).collect();
            let scores = p
                .score(&frame.image, &faces)
                .with_context(|| format!("PAD on {}", frame.source))?;
            pad = scores.into_iter().map(Some).collect();
        }
        Ok(kept
            .into_iter()
            .zip(embeddings)
            .zip(pad)
            .map(|(((face, aligned), embedding), pad)| Observation {
                face,
                aligned,
                embedding,
                pad,
            })
            .collect())
    }

    /// Detects, aligns and encodes every face of a frame.
    pub fn observe(&mut self, frame: &Frame) -> anyhow::Result<Vec<Observation>> {
        let faces = self.detect(frame)?;
        self.encode_faces(frame, faces)
    }
}

/// The decision policy a config asks for, with the ids of the models in use and the D-MAD head.
fn policy(cfg: &Config, encoder: &str, detector: &str, dmad: Option<Dmad>) -> Policy {
    Policy {
        match_threshold: cfg.recognition.match_threshold,
        require_match: cfg.policy.require_match,
        require_live: cfg.policy.require_live.then_some(cfg.pad.threshold),
        require_bona_fide: cfg.policy.require_bona_fide.then_some(cfg.mad.threshold),
        dmad,
        tracker: cfg.tracker.clone(),
        encoder: encoder.to_string(),
        detector: detector.to_string(),
    }
}

/// The taggers a config asks for (`[tagger]`), in its encoder's space.
pub fn tagger(cfg: &Config) -> anyhow::Result<Tagger> {
    crate::infer::gpu::configure(&cfg.gpu);
    crate::infer::cpu::configure(&cfg.cpu);
    Tagger::load(&cfg.tagger, cfg.backend, &cfg.encoder.manifest, &cfg.path)
}

/// One face of a frame judged alone (identification, the operator API): the nearest identity,
/// and the policy's verdict on this face.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub best: Option<Match>,
    /// The nearest identity when at or above the match threshold.
    pub identity: Option<String>,
    pub bona_fide: Option<f32>,
    pub decision: Outcome,
    pub reasons: Vec<String>,
}

/// What one frame gave.
#[derive(Debug)]
pub struct FrameResult {
    /// The faces encoded at this frame, with their PAD scores.
    pub faces: Vec<Observation>,
    /// Without a tracker: each face judged alone, in the order of `faces`.
    pub verdicts: Vec<Verdict>,
    /// With a tracker: faces that continued a decided track unencoded, and the decisions due.
    pub carried: usize,
    pub decisions: Vec<Decision>,
    /// The frame's tags, with a tagger (in the daemon, only for a frame with a face in it).
    pub tags: Option<TagReport>,
    /// Seconds taken: detection; alignment, encoding and PAD; tagging.
    pub detect_s: f64,
    pub encode_s: f64,
    pub tag_s: f64,
}

/// The one frame path: the models, the taggers and the policy a frame is decided with.
pub struct FramePath {
    pub pipeline: Pipeline,
    pub tagger: Option<Tagger>,
    pub policy: Policy,
    /// Keep each usable face's aligned crop with its track (`daemon.store_crops`).
    pub keep_crops: bool,
}

impl FramePath {
    /// The path a config describes, around loaded models (and a tagger, when frames are tagged).
    pub fn new(cfg: &Config, pipeline: Pipeline, tagger: Option<Tagger>) -> FramePath {
        let policy = policy_of(cfg, &pipeline);
        FramePath { pipeline, tagger, policy, keep_crops: cfg.daemon.store_crops }
    }

    /// The thresholds and requirements of `cfg` (a reload), with the same models.
    pub fn set_config(&mut self, cfg: &Config) {
        self.policy = policy_of(cfg, &self.pipeline);
        self.keep_crops = cfg.daemon.store_crops;
    }

    /// Runs one frame. With the camera's `tracker` (the daemon): faces of decided people that
    /// stayed put are carried unencoded, the others encoded and tracked, and the tracks due
    /// are decided. Without (one photo): every face is encoded and judged alone. `who` is where
    /// faces are looked for.
    pub fn step(
        &mut self,
        frame: &Frame,
        tracker: Option<&mut Tracker>,
        who: &dyn Identities,
    ) -> anyhow::Result<FrameResult> {
        let t0 = std::time::Instant::now();
        let faces = self.pipeline.detect(frame)?;
        let t1 = std::time::Instant::now();
        let (mut tracker, mut carried) = (tracker, 0);
        let encode: Vec<Face> = match tracker.as_deref_mut() {
            Some(tracker) => {
                // Faces of people already decided on are encoded only now and then.
                let glances: Vec<Glance> =
                    faces.iter().map(|f| Glance::of(&frame.image, &f.bbox)).collect();
                let carry = tracker.carry(frame.seq, &faces, &glances);
                carried = carry.iter().filter(|c| **c).count();
                faces.into_iter().zip(carry).filter(|(_, c)| !c).map(|(f, _)| f).collect()
            }
            None => faces,
        };
        let observations = self.pipeline.encode_faces(frame, encode)?;
        let t2 = std::time::Instant::now();
        // In the daemon, tags only where someone is: they go with that person's decision.
        let tags = match &mut self.tagger {
            Some(t) if tracker.is_none() || !observations.is_empty() => {
                Some(t.tag(&frame.image).with_context(|| format!("tagging {}", frame.source))?)
            }
            _ => None,
        };
        let tag_s = t2.elapsed().as_secs_f64();
        let mut result = FrameResult {
            faces: Vec::new(),
            verdicts: Vec::new(),
            carried,
            decisions: Vec::new(),
            tags,
            detect_s: (t1 - t0).as_secs_f64(),
            encode_s: (t2 - t1).as_secs_f64(),
            tag_s,
        };
        match tracker {
            Some(tracker) => {
                let tags = result.tags.as_ref().map(|r| r.tags.clone());
                let sightings = observations
                    .iter()
                    .map(|o| Sighting {
                        sharpness: sharpness(&o.aligned.image),
                        crop: self.keep_crops.then(|| o.aligned.image.clone()),
                        live: o.pad.as_ref().map(|p| p.live),
                        tags: tags.clone(),
                        glance: Glance::of(&frame.image, &o.face.bbox),
                        face: o.face.clone(),
                        embedding: o.embedding.clone(),
                        seq: frame.seq,
                        timestamp_ms: frame.timestamp_ms,
                    })
                    .collect();
                let due = tracker.update(frame.seq, sightings);
                result.decisions =
                    due.iter().map(|t| decide(t, &frame.source, who, &self.policy)).collect();
            }
            None => {
                result.verdicts = observations.iter().map(|o| self.judge(o, who)).collect();
            }
        }
        result.faces = observations;
        Ok(result)
    }

    /// Decides every open track of a camera that stops (or whose source ended).
    pub fn flush(
        &self,
        tracker: &mut Tracker,
        camera: &str,
        who: &dyn Identities,
    ) -> Vec<Decision> {
        tracker.flush().iter().map(|t| decide(t, camera, who, &self.policy)).collect()
    }

    /// One face judged alone: the policy's verdict on its own evidence.
    fn judge(&self, o: &Observation, who: &dyn Identities) -> Verdict {
        let best = who.best_match(&o.embedding);
        let identity = best
            .as_ref()
            .filter(|m| m.similarity >= self.policy.match_threshold)
            .map(|m| m.name.clone());
        let bona_fide =
            best.as_ref().and_then(|m| self.policy.bona_fide(&m.reference, &o.embedding.0));
        let evidence = Evidence {
            usable: true,
            similarity: best.as_ref().map(|m| m.similarity),
            live: o.pad.as_ref().map(|p| p.live),
            bona_fide,
        };
        let (decision, reasons) = judge(evidence, &self.policy);
        Verdict { best, identity, bona_fide, decision, reasons }
    }
}

/// The policy of a config, with the ids of the loaded models and their D-MAD head.
fn policy_of(cfg: &Config, pipeline: &Pipeline) -> Policy {
    let dmad = pipeline.mad.as_ref().and_then(|m| m.dmad.clone());
    policy(cfg, pipeline.encoder.model_id(), pipeline.detector.model_id(), dmad)
}
