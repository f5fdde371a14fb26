//! Everyday changes to a photo (exposure, compression, scale, mirror), used to make "live
//! captures" of a face from the one photo available of it: for training and testing the morph
//! head and for the robustness tests. Each change also maps face boxes into the changed image.

use image::{imageops, RgbImage};

/// One change of a photo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Every channel times the factor.
    Brightness(f32),
    /// Re-encoded as JPEG at this quality.
    Jpeg(u8),
    /// Resized by the factor.
    Scale(f32),
    /// Mirrored left to right.
    Flip,
    /// Gamma curve `255 · (v / 255)^gamma`.
    Gamma(f32),
}

impl Change {
    /// The changes used for the morph head's "live" probes.
    pub const PROBES: [Change; 6] = [
        Change::Brightness(1.3),
        Change::Brightness(0.7),
        Change::Jpeg(35),
        Change::Scale(0.6),
        Change::Flip,
        Change::Gamma(1.5),
    ];

    pub fn apply(self, img: &RgbImage) -> RgbImage {
        let (w, h) = img.dimensions();
        match self {
            Change::Brightness(f) => map_values(img, |v| v as f32 * f),
            Change::Gamma(g) => map_values(img, |v| 255.0 * (v as f32 / 255.0).powf(g)),
            Change::Jpeg(q) => {
                let mut buf = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, q)
                    .encode_image(img)
                    .expect("encoding to memory");
                crate::capture::decode(&buf).expect("decoding our own JPEG")
            }
            Change::Scale(f) => {
                let (sw, sh) = (
                    ((w as f32 * f).round() as u32).max(1),
                    ((h as f32 * f).round() as u32).max(1),
                );
                crate::resize::resize_rgb(img, sw, sh)
            }
            Change::Flip => imageops::flip_horizontal(img),
        }
    }

    /// Where a box `[x1, y1, x2, y2]` of the original lies in the changed image of width `w`.
    pub fn map_box(self, b: &[f32; 4], w: u32) -> [f32; 4] {
        match self {
            Change::Scale(f) => b.map(|v| v * f),
            Change::Flip => [w as f32 - b[2], b[1], w as f32 - b[0], b[3]],
            _ => *b,
        }
    }
}

fn map_values(img: &RgbImage, f: impl Fn(u8) -> f32) -> RgbImage {
    let lut: Vec<u8> = (0..=255u8).map(|v| f(v).round().clamp(0.0, 255.0) as u8).collect();
    let mut out = img.clone();
    out.iter_mut().for_each(|v| *v = lut[*v as usize]);
    out
}
