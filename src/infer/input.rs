//! Turning RGB pixels into model input values, as the manifest says: layout, colour order and
//! value range `(pixel - mean) * scale`.

use image::RgbImage;

use crate::manifest::{ColorOrder, InputSpec, Layout};

/// Appends one image to a batch buffer. The image must already have the model's input size.
pub fn push_image(spec: &InputSpec, img: &RgbImage, out: &mut Vec<f32>) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let chan = |c: usize| match spec.color {
        ColorOrder::RGB => c,
        ColorOrder::BGR => 2 - c,
    };
    let (mean, scale) = (
        [spec.mean.of(0), spec.mean.of(1), spec.mean.of(2)],
        [spec.scale.of(0), spec.scale.of(1), spec.scale.of(2)],
    );
    let value =
        |x: usize, y: usize, c: usize| (raw[(y * w + x) * 3 + chan(c)] as f32 - mean[c]) * scale[c];
    out.reserve(w * h * 3);
    match spec.layout {
        Layout::NHWC => {
            for y in 0..h {
                for x in 0..w {
                    for c in 0..3 {
                        out.push(value(x, y, c));
                    }
                }
            }
        }
        Layout::NWHC => {
            for x in 0..w {
                for y in 0..h {
                    for c in 0..3 {
                        out.push(value(x, y, c));
                    }
                }
            }
        }
        Layout::NCHW => {
            for c in 0..3 {
                for y in 0..h {
                    for x in 0..w {
                        out.push(value(x, y, c));
                    }
                }
            }
        }
    }
}

/// The input shape for `n` images of `width` × `height` in the manifest's layout.
pub fn batch_shape(spec: &InputSpec, n: usize, width: usize, height: usize) -> Vec<usize> {
    match spec.layout {
        Layout::NHWC => vec![n, height, width, 3],
        Layout::NWHC => vec![n, width, height, 3],
        Layout::NCHW => vec![n, 3, height, width],
    }
}

/// Reads channel `c` at spatial position (`row`, `col`) of a 4-D output map laid out like the
/// input (fully-convolutional models keep their input's layout).
pub fn map_at(
    layout: Layout,
    shape: &[usize],
    data: &[f32],
    row: usize,
    col: usize,
    c: usize,
) -> f32 {
    match layout {
        Layout::NHWC => data[(row * shape[2] + col) * shape[3] + c],
        Layout::NWHC => data[(col * shape[2] + row) * shape[3] + c],
        Layout::NCHW => data[(c * shape[2] + row) * shape[3] + col],
    }
}

/// (rows, cols) of a 4-D output map laid out like the input.
pub fn map_size(layout: Layout, shape: &[usize]) -> (usize, usize) {
    match layout {
        Layout::NHWC => (shape[1], shape[2]),
        Layout::NWHC => (shape[2], shape[1]),
        Layout::NCHW => (shape[2], shape[3]),
    }
}
