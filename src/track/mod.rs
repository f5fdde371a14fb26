//! Linking faces across the frames of one camera, so that a decision fuses several frames of
//! the same person instead of trusting one.
//!
//! A face continues a track when its box overlaps the track's last box and its embedding
//! agrees with the track's, or when its embedding alone is very close (the person moved fast
//! or frames were dropped). Boxes alone would hand one person's track to the next person who
//! steps into the same spot.

use crate::detect::{iou, Face};
use crate::encode::{cosine, Embedding};
use crate::resize::resize_region;
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
    /// A face on a decided track is encoded (and PAD-checked) again only every this many
    /// frames; in between, a face whose box overlaps the box it was last encoded at by
    /// `carry_iou` continues the track unencoded: its person was decided on, and encoding them
    /// again at every frame is most of a frame's work. 0 or 1: encode every face at every frame.
    pub reencode_every_frames: u64,
    pub carry_iou: f32,
    /// …and whose glance (a 16×16 grey thumbnail of the box) is at least this correlated with
    /// the glance it was last encoded with: another face that takes the spot (a photo held up
    /// in its place) is encoded at once. Measured on the 22 faces of the sample photos: the
    /// same face with its box moved by 4% correlates ≥ 0.839, two faces ≤ 0.764 (231 pairs).
    pub carry_glance: f32,
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
            reencode_every_frames: 10,
            carry_iou: 0.6,
            carry_glance: 0.82,
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
    /// The face's glance in this frame (see `TrackerConfig::carry_glance`).
    pub glance: Glance,
}

/// A face's box at a glance: 16×16 grey, zero mean, unit norm; two glances of the same face a
/// frame apart correlate near 1. Costs a box-filter shrink of the box, nothing of a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Glance(pub Vec<f32>);

const GLANCE_SIDE: u32 = 16;

impl Glance {
    /// The glance of `bbox` in `img` (clipped to the frame); empty for a box outside it.
    pub fn of(img: &image::RgbImage, bbox: &[f32; 4]) -> Glance {
        let (w, h) = (img.width() as f32, img.height() as f32);
        let x0 = bbox[0].clamp(0.0, w) as u32;
        let y0 = bbox[1].clamp(0.0, h) as u32;
        let (x1, y1) = (bbox[2].clamp(0.0, w).ceil() as u32, bbox[3].clamp(0.0, h).ceil() as u32);
        if x1 <= x0 || y1 <= y0 {
            return Glance::default();
        }
        let small = resize_region(img, [x0, y0, x1 - x0, y1 - y0], GLANCE_SIDE, GLANCE_SIDE);
        let mut grey: Vec<f32> = small
            .pixels()
            .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
            .collect();
        let mean = grey.iter().sum::<f32>() / grey.len() as f32;
        grey.iter_mut().for_each(|v| *v -= mean);
        let norm = grey.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm < 1e-3 {
            return Glance::default();
        }
        grey.iter_mut().for_each(|v| *v /= norm);
        Glance(grey)
    }

    /// Correlation of two glances, -1..1; 0 where either is empty (a flat or clipped-out box).
    pub fn similarity(&self, other: &Glance) -> f32 {
        if self.0.len() != other.0.len() {
            return 0.0;
        }
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }
}

#[derive(Debug, Clone)]
pub struct Track {
    pub id: u64,
    /// Sightings kept for the decision (at most `decide_after_frames`).
    pub sightings: Vec<Sighting>,
    /// Frames in which the track was seen, including those not kept.
    pub frames_seen: usize,
    /// Capture time (Unix ms) of the track's first frame: a decision's latency counts from it.
    pub first_ms: i64,
    pub decided: bool,
    last_box: [f32; 4],
    last_seq: u64,
    /// Where and when its face was last encoded (a carried face is not), and how it looked.
    encoded_box: [f32; 4],
    encoded_seq: u64,
    encoded_glance: Glance,
    /// Sum of the embeddings seen, for linking (direction is all that matters).
    sum: Vec<f32>,
}

impl Track {
    fn similarity(&self, e: &Embedding) -> f32 {
        cosine(&self.sum, &e.0)
    }
}

/// Denying a track on its presentation-attack evidence before it has the frames for a
/// decision: as soon as at least `frames` of its usable sightings have live scores whose mean
/// is below `below` (clearly an attack, where the threshold marks doubt). A photo held up is
/// then denied in two frames instead of five, and its track, decided, takes no second decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyDeny {
    pub frames: usize,
    pub below: f32,
}

pub struct Tracker {
    params: TrackerConfig,
    early: Option<EarlyDeny>,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(params: TrackerConfig) -> Tracker {
        Tracker { params, early: None, tracks: Vec::new(), next_id: 1 }
    }

    /// The tracker with (or without) an early denial on PAD evidence.
    pub fn with_early_deny(mut self, early: Option<EarlyDeny>) -> Tracker {
        self.early = early;
        self
    }

    pub fn set_params(&mut self, params: TrackerConfig, early: Option<EarlyDeny>) {
        self.params = params;
        self.early = early;
    }

    /// Number of live tracks.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Before encoding the faces of frame `seq` (with their `glances`): which of them continue
    /// a decided track without being encoded (see `reencode_every_frames`). Those tracks are
    /// marked seen at this frame (and take no other face of it); the faces left `false` go on
    /// to be encoded and given to `update`, as every face was before. Best overlaps first.
    pub fn carry(&mut self, seq: u64, faces: &[Face], glances: &[Glance]) -> Vec<bool> {
        let p = &self.params;
        let mut carried = vec![false; faces.len()];
        if p.reencode_every_frames <= 1 || self.restarted(seq) {
            return carried;
        }
        let mut pairs = Vec::new();
        for (fi, f) in faces.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate() {
                let fresh = seq.saturating_sub(t.encoded_seq) < p.reencode_every_frames;
                let overlap = iou(&t.encoded_box, &f.bbox);
                let alike = || t.encoded_glance.similarity(&glances[fi]) >= p.carry_glance;
                if t.decided && t.last_seq < seq && fresh && overlap >= p.carry_iou && alike() {
                    pairs.push((overlap, fi, ti));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut taken = vec![false; self.tracks.len()];
        for (_, fi, ti) in pairs {
            if !carried[fi] && !taken[ti] {
                (carried[fi], taken[ti]) = (true, true);
                let t = &mut self.tracks[ti];
                (t.last_box, t.last_seq) = (faces[fi].bbox, seq);
                t.frames_seen += 1;
            }
        }
        carried
    }

    /// Adds the sightings of frame `seq`; returns the tracks due for a decision: those that
    /// just reached `decide_after_frames`, and those that ended undecided. A track already
    /// seen at `seq` (carried) takes none of them.
    pub fn update(&mut self, seq: u64, sightings: Vec<Sighting>) -> Vec<Track> {
        // A source that counts its frames from 0 again (a camera reopened after a failure)
        // ends every track: their frame numbers no longer compare, and a track that never ends
        // would keep its person from being decided on again.
        let mut due = if self.restarted(seq) { self.flush() } else { Vec::new() };
        let (p, early) = (&self.params, self.early);
        // Greedy assignment, best (IoU + similarity) pairs first.
        let mut pairs = Vec::new();
        for (si, s) in sightings.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate().filter(|(_, t)| t.last_seq < seq) {
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
        for (s, assigned) in sightings.into_iter().zip(sighting_track) {
            let ti = match assigned {
                Some(ti) => ti,
                None => {
                    self.tracks.push(Track {
                        id: self.next_id,
                        sightings: Vec::new(),
                        frames_seen: 0,
                        first_ms: s.timestamp_ms,
                        decided: false,
                        last_box: s.face.bbox,
                        last_seq: seq,
                        encoded_box: s.face.bbox,
                        encoded_seq: seq,
                        encoded_glance: Glance::default(),
                        sum: vec![0.0; s.embedding.0.len()],
                    });
                    self.next_id += 1;
                    self.tracks.len() - 1
                }
            };
            let t = &mut self.tracks[ti];
            (t.last_box, t.last_seq) = (s.face.bbox, seq);
            (t.encoded_box, t.encoded_seq) = (s.face.bbox, seq);
            t.encoded_glance.clone_from(&s.glance);
            t.frames_seen += 1;
            t.sum.iter_mut().zip(&s.embedding.0).for_each(|(a, b)| *a += b);
            if !t.decided {
                t.sightings.push(s);
                if usable(&t.sightings, p) >= p.decide_after_frames
                    || attack_evident(&t.sightings, p, early)
                {
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

    /// Whether frame `seq` comes before a frame already seen: the source restarted its count.
    fn restarted(&self, seq: u64) -> bool {
        self.tracks.iter().any(|t| t.last_seq > seq)
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

/// The live scores of a track's usable sightings, in order: what its liveness is decided on.
pub fn live_scores(sightings: &[Sighting], p: &TrackerConfig) -> Vec<f32> {
    sightings.iter().filter(|s| is_usable(s, p)).filter_map(|s| s.live).collect()
}

/// Whether the usable sightings so far show an attack clearly enough to deny now (see
/// [`EarlyDeny`]); never with fewer than the frames a decision needs (`min_frames`).
fn attack_evident(sightings: &[Sighting], p: &TrackerConfig, early: Option<EarlyDeny>) -> bool {
    let Some(e) = early else { return false };
    let lives = live_scores(sightings, p);
    lives.len() >= e.frames.max(p.min_frames).max(1)
        && lives.iter().sum::<f32>() / (lives.len() as f32) < e.below
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
            glance: Glance(vec![1.0]),
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

    /// A decided person's face skips the encoder while it stays in place and looks the same,
    /// for `reencode_every_frames - 1` frames at a time; a face that moved, changed or belongs
    /// to an undecided track is encoded as before, and a carried track takes no other face.
    #[test]
    fn decided_faces_are_carried_until_they_change_or_are_due() {
        let params = TrackerConfig {
            decide_after_frames: 2,
            reencode_every_frames: 3,
            ..TrackerConfig::default()
        };
        let mut t = Tracker::new(params);
        let a = [1.0, 0.0];
        let face = |x: f32| sighting(x, a, 0).face;
        let seen = Glance(vec![1.0]);
        // Undecided: nothing is carried.
        assert_eq!(t.carry(0, &[face(0.0)], std::slice::from_ref(&seen)), [false]);
        assert!(t.update(0, vec![sighting(0.0, a, 0)]).is_empty());
        assert_eq!(t.carry(1, &[face(0.0)], std::slice::from_ref(&seen)), [false]);
        assert_eq!(t.update(1, vec![sighting(0.0, a, 1)]).len(), 1, "decided at frame 1");
        // Frames 2 and 3 carried (encoded at 1, every 3), frame 4 due for encoding.
        for seq in 2..=3 {
            assert_eq!(
                t.carry(seq, &[face(2.0)], std::slice::from_ref(&seen)),
                [true],
                "frame {seq}"
            );
            // The carried track takes no sighting of the same frame: a second face there
            // starts its own track.
            assert!(t.update(seq, vec![]).is_empty());
        }
        assert_eq!(t.carry(4, &[face(2.0)], std::slice::from_ref(&seen)), [false], "due again");
        assert!(t.update(4, vec![sighting(2.0, a, 4)]).is_empty());
        assert_eq!(t.len(), 1, "the encoded face continued the track");
        assert_eq!(t.carry(5, &[face(2.0)], std::slice::from_ref(&seen)), [true]);
        // Moved by 60 px of 100 (IoU 0.25), or looking different: encoded.
        assert_eq!(t.carry(6, &[face(62.0)], std::slice::from_ref(&seen)), [false]);
        assert_eq!(t.carry(6, &[face(2.0)], &[Glance(vec![-1.0])]), [false]);
        // Two faces on one decided track: only one is carried.
        assert_eq!(
            t.carry(6, &[face(2.0), face(3.0)], &[seen.clone(), seen.clone()]),
            [true, false]
        );
        assert!(t.update(6, vec![sighting(3.0, [0.0, 1.0], 6)]).is_empty());
        assert_eq!(t.len(), 2, "the other face started a track of its own");
        // Every frame encoded when carrying is off.
        let off = TrackerConfig { reencode_every_frames: 0, ..TrackerConfig::default() };
        t.set_params(off, None);
        assert_eq!(t.carry(7, &[face(2.0)], std::slice::from_ref(&seen)), [false]);
    }

    /// Regression: a camera reopened after a failure counts its frames from 0 again, and its
    /// tracks (last seen at a higher frame number) never ended: the person of a decided track
    /// was not decided on again for as many frames as the camera had delivered.
    #[test]
    fn regression_a_source_that_restarts_its_count_ends_its_tracks() {
        let params = TrackerConfig { decide_after_frames: 2, ..TrackerConfig::default() };
        let mut t = Tracker::new(params);
        let a = [1.0, 0.0];
        assert!(t.update(500, vec![sighting(0.0, a, 500)]).is_empty());
        assert_eq!(t.update(501, vec![sighting(0.0, a, 501)]).len(), 1);
        assert!(t.update(502, vec![sighting(300.0, [0.0, 1.0], 502)]).is_empty());
        // Reopened: frame 0. The undecided track is due (ended), the decided one gone, and the
        // person is a new track, decided again after two frames.
        let due = t.update(0, vec![sighting(0.0, a, 0)]);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].sightings[0].seq, 502);
        assert_eq!(t.len(), 1);
        assert_eq!(t.update(1, vec![sighting(0.0, a, 1)]).len(), 1, "decided again");
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
