//! The frame path from pixels to embeddings: detect → align → encode, built from a config.

use anyhow::Context;

use crate::align::{align, AlignedFace};
use crate::capture::Frame;
use crate::config::Config;
use crate::decide::Policy;
use crate::detect::{self, Face, FaceDetector};
use crate::encode::{Embedding, Encoder};
use crate::heads::mad::Dmad;
use crate::heads::mad::Mad;
use crate::heads::{Pad, PadScore};
use crate::manifest::{Manifest, ModelError};
use crate::tag::Tagger;

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
        let encoder = Encoder::load(cfg.backend, &Manifest::load(&cfg.encoder.manifest)?)?;
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
pub fn policy(cfg: &Config, encoder: &str, detector: &str, dmad: Option<Dmad>) -> Policy {
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
