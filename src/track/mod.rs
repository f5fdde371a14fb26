//! Linking faces across the frames of one camera, so that a decision fuses several frames of
//! the same person instead of trusting one.
//!
//! A face continues a track when its box overlaps the track's last box and its embedding
//! agrees with the track's, or when its embedding alone is very close (the person moved fast
//! or frames were dropped). Boxes alone would hand one person's track to the next person who
//! steps into the same spot.

use crate::detect::{iou, Face};
use crate::encode::{cosine, Embedding};
use serde::Deserialize;

/// Linking faces across frames and fusing them into one decision per person.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// A face continues a track if its box overlaps the track's last box by this IoU…
    pub iou_min: f32,
    /// …and its embedding is at least this similar to the track's; or, whatever the boxes,
    /// if it is at least `relink_similarity` similar (the person moved fast or a frame dropped).
    pub link_similarity: f32,
    pub relink_similarity: f32,
    /// A track unseen for this many frames of its camera has ended.
    pub max_missed_frames: u64,
    /// Decide as soon as a track holds this many usable frames (a person at the door should
    /// not wait until they leave).
    pub decide_after_frames: usize,
    /// A track that ends with fewer usable frames is denied as `low_quality`.
    pub min_frames: usize,
    /// Frames where the face is narrower than this (pixels) are not usable.
    pub min_face_px: f32,
    /// Frames whose aligned face is blurrier than this (variance of the Laplacian) are not usable.
    pub min_sharpness: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            iou_min: 0.3,
            link_similarity: 0.3,
            relink_similarity: 0.6,
            max_missed_frames: 3,
            decide_after_frames: 5,
            min_frames: 2,
            min_face_px: 40.0,
            min_sharpness: 10.0,
        }
    }
}

/// One face in one frame, with what the decision needs of it.
#[derive(Debug, Clone)]
pub struct Sighting {
    pub face: Face,
    pub embedding: Embedding,
    /// Variance of the Laplacian of the aligned crop (higher is sharper).
    pub sharpness: f32,
    pub seq: u64,
    pub timestamp_ms: i64,
    /// The aligned face crop, kept only when the journal is configured to store crops.
    pub crop: Option<image::RgbImage>,
    /// Fused PAD live score, when PAD runs.
    pub live: Option<f32>,
    /// Tags of the frame, when the daemon tags frames.
    pub tags: Option<Vec<crate::tag::Tag>>,
}

#[derive(Debug, Clone)]
pub struct Track {
    pub id: u64,
    /// Sightings kept for the decision (at most `decide_after_frames`).
    pub sightings: Vec<Sighting>,
    /// Frames in which the track was seen, including those not kept.
    pub frames_seen: usize,
    pub decided: bool,
    last_box: [f32; 4],
    last_seq: u64,
    /// Sum of the embeddings seen, for linking (direction is all that matters).
    sum: Vec<f32>,
}

impl Track {
    fn similarity(&self, e: &Embedding) -> f32 {
        cosine(&self.sum, &e.0)
    }
}

pub struct Tracker {
    params: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(params: TrackerConfig) -> Tracker {
        Tracker { params, tracks: Vec::new(), next_id: 1 }
    }

    pub fn set_params(&mut self, params: TrackerConfig) {
        self.params = params;
    }

    /// Number of live tracks.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Adds the sightings of frame `seq`; returns the tracks due for a decision: those that
    /// just reached `decide_after_frames`, and those that ended undecided.
    pub fn update(&mut self, seq: u64, sightings: Vec<Sighting>) -> Vec<Track> {
        let p = &self.params;
        // Greedy assignment, best (IoU + similarity) pairs first.
        let mut pairs = Vec::new();
        for (si, s) in sightings.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate() {
                let overlap = iou(&t.last_box, &s.face.bbox);
                let sim = t.similarity(&s.embedding);
                if (overlap >= p.iou_min && sim >= p.link_similarity) || sim >= p.relink_similarity
                {
                    pairs.push((overlap + sim, si, ti));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut sighting_track = vec![None; sightings.len()];
        let mut track_taken = vec![false; self.tracks.len()];
        for (_, si, ti) in pairs {
            if sighting_track[si].is_none() && !track_taken[ti] {
                sighting_track[si] = Some(ti);
                track_taken[ti] = true;
            }
        }
        let mut due = Vec::new();
        for (s, assigned) in sightings.into_iter().zip(sighting_track) {
            let ti = match assigned {
                Some(ti) => ti,
                None => {
                    self.tracks.push(Track {
                        id: self.next_id,
                        sightings: Vec::new(),
                        frames_seen: 0,
                        decided: false,
                        last_box: s.face.bbox,
                        last_seq: seq,
                        sum: vec![0.0; s.embedding.0.len()],
                    });
                    self.next_id += 1;
                    self.tracks.len() - 1
                }
            };
            let t = &mut self.tracks[ti];
            t.last_box = s.face.bbox;
            t.last_seq = seq;
            t.frames_seen += 1;
            t.sum.iter_mut().zip(&s.embedding.0).for_each(|(a, b)| *a += b);
            if !t.decided {
                t.sightings.push(s);
                if usable(&t.sightings, p) >= p.decide_after_frames {
                    t.decided = true;
                    due.push(t.clone());
                } else if t.sightings.len() > p.decide_after_frames + UNUSABLE_KEPT {
                    // Someone who never becomes usable (too small, blurred) would otherwise
                    // grow the track, crops and all, for as long as they stand there: keep
                    // every usable sighting (fewer than decide_after_frames) and the latest
                    // unusable ones.
                    if let Some(i) = t.sightings.iter().position(|s| !is_usable(s, p)) {
                        t.sightings.remove(i);
                    }
                }
            }
        }
        let max_missed = p.max_missed_frames;
        let (ended, live): (Vec<Track>, Vec<Track>) =
            self.tracks.drain(..).partition(|t| seq.saturating_sub(t.last_seq) > max_missed);
        self.tracks = live;
        due.extend(ended.into_iter().filter(|t| !t.decided));
        // A decided track keeps linking its person (so they are not decided on again) but
        // needs no more sightings.
        for t in self.tracks.iter_mut().filter(|t| t.decided) {
            t.sightings.clear();
        }
        due
    }

    /// Ends every track (the source ended or the daemon stops); returns the undecided ones.
    pub fn flush(&mut self) -> Vec<Track> {
        self.tracks.drain(..).filter(|t| !t.decided).collect()
    }
}

/// Sightings good enough to decide on: face wide enough and sharp enough.
/// Unusable sightings an undecided track keeps (the most recent), beside its usable ones.
pub const UNUSABLE_KEPT: usize = 16;

pub fn usable(sightings: &[Sighting], p: &TrackerConfig) -> usize {
    sightings.iter().filter(|s| is_usable(s, p)).count()
}

pub fn is_usable(s: &Sighting, p: &TrackerConfig) -> bool {
    s.face.width() >= p.min_face_px && s.sharpness >= p.min_sharpness
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(x: f32, e: [f32; 2], seq: u64) -> Sighting {
        Sighting {
            tags: None,
            face: Face {
                bbox: [x, 0.0, x + 100.0, 100.0],
                score: 0.99,
                landmarks: [[0.0; 2]; 5],
                points: Default::default(),
            },
            embedding: Embedding(e.to_vec()),
            sharpness: 100.0,
            seq,
            timestamp_ms: 0,
            crop: None,
            live: None,
        }
    }

    #[test]
    fn links_by_box_and_embedding_and_decides_after_n_frames() {
        let params = TrackerConfig {
            decide_after_frames: 3,
            max_missed_frames: 1,
            ..TrackerConfig::default()
        };
        let mut t = Tracker::new(params);
        let (a, b) = ([1.0, 0.0], [0.0, 1.0]);
        assert!(t.update(0, vec![sighting(0.0, a, 0), sighting(500.0, b, 0)]).is_empty());
        // Same spots, same people, slightly moved.
        assert!(t.update(1, vec![sighting(10.0, a, 1), sighting(490.0, b, 1)]).is_empty());
        let due = t.update(2, vec![sighting(20.0, a, 2), sighting(480.0, b, 2)]);
        assert_eq!(due.len(), 2);
        assert!(due.iter().all(|d| d.sightings.len() == 3));
        assert_eq!(t.len(), 2);
        // Another person in the first spot starts a new track; the old ones end unseen and,
        // being decided, are not due again.
        let c = [-1.0, 0.0];
        assert!(t.update(3, vec![sighting(20.0, c, 3)]).is_empty());
        assert!(t.update(4, vec![sighting(20.0, c, 4)]).is_empty());
        assert_eq!(t.len(), 1);
        let rest = t.flush();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].sightings.len(), 2);
        assert_eq!(rest[0].id, 3);
    }

    /// Regression: a person who never became usable grew their track by one sighting (with
    /// its crop) per frame for as long as they stood there.
    #[test]
    fn regression_an_undecided_track_stays_bounded() {
        let params = TrackerConfig { decide_after_frames: 5, ..TrackerConfig::default() };
        let mut t = Tracker::new(params.clone());
        let blurred = |seq| Sighting { sharpness: 0.0, ..sighting(0.0, [1.0, 0.0], seq) };
        for seq in 0..1000 {
            // Two usable frames early on, then only blurred ones.
            let s =
                if seq == 3 || seq == 7 { sighting(0.0, [1.0, 0.0], seq) } else { blurred(seq) };
            assert!(t.update(seq, vec![s]).is_empty());
        }
        let rest = t.flush();
        assert_eq!(rest.len(), 1);
        let kept = &rest[0].sightings;
        assert_eq!(kept.len(), 5 + UNUSABLE_KEPT, "bounded");
        assert_eq!(usable(kept, &params), 2, "every usable sighting kept");
        assert_eq!(kept.last().unwrap().seq, 999, "the latest kept");
        assert_eq!(rest[0].frames_seen, 1000);
    }
}
