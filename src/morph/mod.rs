//! Face morphs, made the way real morphing attacks are made, so that the morph-attack heads can
//! be trained and tested on something real: both faces are brought onto one portrait frame by
//! their landmarks, the geometry is averaged (landmark positions blended by `alpha`), each face
//! is warped piecewise-affinely onto that average geometry, and the two are cross-dissolved.
//!
//! MTCNN gives five landmarks, not the 68 of dlib-style morphing tools, so the warp pins the
//! eyes, nose and mouth corners and lets a fixed ring around the face and the image border
//! hold the rest: the inner face is aligned, the outline (jaw, hair) can show double edges, as
//! in low-effort morphs.

use delaunator::{triangulate, Point};
use image::RgbImage;

use crate::align::{bilinear, Similarity};
use crate::detect::{Face, LandmarkSet};

/// How a morph is made.
#[derive(Debug, Clone, Copy)]
pub struct MorphOptions {
    /// Share of face B in the result: 0 is A, 1 is B, 0.5 the usual attack.
    pub alpha: f32,
    /// Portrait size in pixels.
    pub width: u32,
    pub height: u32,
}

impl Default for MorphOptions {
    fn default() -> Self {
        MorphOptions { alpha: 0.5, width: 240, height: 300 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MorphError {
    #[error("alpha = {0} is outside 0..1")]
    Alpha(f32),
    #[error("the portrait must be at least 64×64 pixels")]
    Size,
    #[error("the landmarks of face {0} are degenerate (all on one point); use another photo")]
    Landmarks(char),
}

/// Makes a morph of face `fa` of image `a` and face `fb` of image `b`. `template` is where the
/// five landmarks go in a `crop` × `crop` square (the encoder's alignment template); the
/// portrait places that square at its centre, scaled to 75% of its width.
pub fn morph(
    a: &RgbImage,
    fa: &Face,
    b: &RgbImage,
    fb: &Face,
    template: &[[f32; 2]],
    crop: [usize; 2],
    opts: MorphOptions,
) -> Result<RgbImage, MorphError> {
    if !(0.0..=1.0).contains(&opts.alpha) {
        return Err(MorphError::Alpha(opts.alpha));
    }
    if opts.width < 64 || opts.height < 64 {
        return Err(MorphError::Size);
    }
    let (w, h) = (opts.width as f32, opts.height as f32);
    let s = 0.75 * w / crop[0] as f32;
    let (ox, oy) = ((w - crop[0] as f32 * s) / 2.0, (h - crop[1] as f32 * s) / 2.0);
    let canon: Vec<[f32; 2]> = template.iter().map(|p| [p[0] * s + ox, p[1] * s + oy]).collect();

    // A detector without mouth corners gives the mouth centre: then both faces (and the
    // template) use it, so that every point of the warp is distinct and matched.
    let centre = fa.points == LandmarkSet::MouthCentre || fb.points == LandmarkSet::MouthCentre;
    let points = |l: &[[f32; 2]]| -> Vec<[f32; 2]> {
        if centre {
            let m = [(l[3][0] + l[4][0]) / 2.0, (l[3][1] + l[4][1]) / 2.0];
            vec![l[0], l[1], l[2], m]
        } else {
            l.to_vec()
        }
    };
    let canon = points(&canon);
    let (la, lb) = (points(&fa.landmarks), points(&fb.landmarks));
    let ta = Similarity::estimate(&la, &canon).ok_or(MorphError::Landmarks('A'))?;
    let tb = Similarity::estimate(&lb, &canon).ok_or(MorphError::Landmarks('B'))?;
    let project = |t: &Similarity, pts: &[[f32; 2]]| -> Vec<[f64; 2]> {
        pts.iter().map(|p| t.apply([p[0] as f64, p[1] as f64])).collect()
    };
    // Landmarks of each face in the portrait, then the fixed points (same for both).
    let fixed = anchor_points(&canon, w as f64, h as f64);
    let mut pa = project(&ta, &la);
    let mut pb = project(&tb, &lb);
    pa.extend(&fixed);
    pb.extend(&fixed);
    let al = opts.alpha as f64;
    let pm: Vec<[f64; 2]> = pa
        .iter()
        .zip(&pb)
        .map(|(p, q)| [p[0] * (1.0 - al) + q[0] * al, p[1] * (1.0 - al) + q[1] * al])
        .collect();

    let points: Vec<Point> = pm.iter().map(|p| Point { x: p[0], y: p[1] }).collect();
    let tri = triangulate(&points);
    let (ia, ib) = (ta.inverse(), tb.inverse());
    let mut out = RgbImage::new(opts.width, opts.height);
    let mut done = vec![false; (opts.width * opts.height) as usize];
    for t in tri.triangles.chunks_exact(3) {
        let [m0, m1, m2] = [pm[t[0]], pm[t[1]], pm[t[2]]];
        let det = (m1[1] - m2[1]) * (m0[0] - m2[0]) + (m2[0] - m1[0]) * (m0[1] - m2[1]);
        if det.abs() < 1e-9 {
            continue;
        }
        let x0 = m0[0].min(m1[0]).min(m2[0]).floor().max(0.0) as u32;
        let x1 = (m0[0].max(m1[0]).max(m2[0]).ceil() as u32).min(opts.width - 1);
        let y0 = m0[1].min(m1[1]).min(m2[1]).floor().max(0.0) as u32;
        let y1 = (m0[1].max(m1[1]).max(m2[1]).ceil() as u32).min(opts.height - 1);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let i = (y * opts.width + x) as usize;
                if done[i] {
                    continue;
                }
                let (px, py) = (x as f64, y as f64);
                let l0 = ((m1[1] - m2[1]) * (px - m2[0]) + (m2[0] - m1[0]) * (py - m2[1])) / det;
                let l1 = ((m2[1] - m0[1]) * (px - m2[0]) + (m0[0] - m2[0]) * (py - m2[1])) / det;
                let l2 = 1.0 - l0 - l1;
                if l0 < -1e-6 || l1 < -1e-6 || l2 < -1e-6 {
                    continue;
                }
                done[i] = true;
                let at = |p: &[[f64; 2]]| {
                    [
                        l0 * p[t[0]][0] + l1 * p[t[1]][0] + l2 * p[t[2]][0],
                        l0 * p[t[0]][1] + l1 * p[t[1]][1] + l2 * p[t[2]][1],
                    ]
                };
                // Portrait position in each face's own geometry, then back into its photo.
                let [ax, ay] = ia.apply(at(&pa));
                let [bx, by] = ib.apply(at(&pb));
                let ca = bilinear(a, ax, ay);
                let cb = bilinear(b, bx, by);
                out.put_pixel(
                    x,
                    y,
                    image::Rgb(std::array::from_fn(|c| {
                        (ca[c] * (1.0 - al) + cb[c] * al).round().clamp(0.0, 255.0) as u8
                    })),
                );
            }
        }
    }
    Ok(out)
}

/// Points that stay put: a ring around the face (so the warp is confined to it) and the
/// portrait's border (so the triangulation covers every pixel).
fn anchor_points(canon: &[[f32; 2]], w: f64, h: f64) -> Vec<[f64; 2]> {
    let n = canon.len() as f64;
    let cx = canon.iter().map(|p| p[0] as f64).sum::<f64>() / n;
    let cy = canon.iter().map(|p| p[1] as f64).sum::<f64>() / n;
    let eye = ((canon[1][0] - canon[0][0]) as f64).abs().max(1.0);
    let (rx, ry) = (eye * 1.6, eye * 2.1);
    let mut pts: Vec<[f64; 2]> = (0..16)
        .map(|k| {
            let t = k as f64 * std::f64::consts::TAU / 16.0;
            [cx + rx * t.cos(), cy + ry * t.sin()]
        })
        .collect();
    let (xm, ym) = (w - 1.0, h - 1.0);
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        pts.extend([[f * xm, 0.0], [f * xm, ym]]);
        if i > 0 && i < 4 {
            pts.extend([[0.0, f * ym], [xm, f * ym]]);
        }
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(landmarks: [[f32; 2]; 5]) -> Face {
        Face { bbox: [0.0, 0.0, 100.0, 100.0], score: 1.0, landmarks, points: Default::default() }
    }

    const TEMPLATE: [[f32; 2]; 5] =
        [[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]];

    #[test]
    fn alpha_zero_is_face_a_on_the_portrait_and_one_is_face_b() {
        let a = RgbImage::from_pixel(300, 300, image::Rgb([200, 10, 10]));
        let b = RgbImage::from_pixel(300, 300, image::Rgb([10, 10, 200]));
        let lm = TEMPLATE.map(|p| [p[0] + 100.0, p[1] + 100.0]);
        let at = |alpha: f32| {
            let opts = MorphOptions { alpha, width: 120, height: 150 };
            morph(&a, &face(lm), &b, &face(lm), &TEMPLATE, [112, 112], opts).unwrap()
        };
        assert_eq!(at(0.0).get_pixel(60, 75).0, [200, 10, 10]);
        assert_eq!(at(1.0).get_pixel(60, 75).0, [10, 10, 200]);
        let m = at(0.5);
        // Every pixel is covered by the triangulation and blended half and half.
        assert!(m.pixels().all(|p| p.0 == [105, 10, 105]), "{:?}", m.get_pixel(0, 0));
    }

    #[test]
    fn bad_options_and_degenerate_landmarks_are_refused() {
        let img = RgbImage::new(50, 50);
        let lm = TEMPLATE;
        let opts = MorphOptions::default();
        let bad = MorphOptions { alpha: 1.5, ..opts };
        assert_eq!(
            morph(&img, &face(lm), &img, &face(lm), &TEMPLATE, [112, 112], bad),
            Err(MorphError::Alpha(1.5))
        );
        let flat = face([[5.0, 5.0]; 5]);
        assert_eq!(
            morph(&img, &flat, &img, &face(lm), &TEMPLATE, [112, 112], opts),
            Err(MorphError::Landmarks('A'))
        );
    }
}
