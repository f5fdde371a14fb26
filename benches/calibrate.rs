//! `edgeid calibrate`'s work after embedding, on a generated dataset: every pair of N embeddings
//! scored in blocks (`eval::dataset::all_pairs`), then the FMR 1e-4 operating point and the EER
//! found by one sort and one sweep (`eval::metrics`). 1,500 embeddings make 1.1 M pairs, 4,500
//! make 10.1 M (lfw-dev's 4,823 photos make 11.6 M). The embeddings are generated (128-D, 500 or
//! 1,500 identities of three photos each: an identity's direction plus noise), so the figure is
//! the scoring's alone: embedding the photos (one detector and one encoder pass each) is timed by
//! `cargo bench --bench pipeline` and `edgeid bench`.
//!
//! `cargo bench --bench calibrate`. Compare numbers as ratios within one run.

use criterion::{criterion_group, criterion_main, Criterion};
use edgeid::eval::dataset::all_pairs;
use edgeid::eval::metrics::{at_false_accept, equal_error_rate};

/// `n` embeddings of `n / 3` identities, deterministic.
fn generated(n: usize, dim: usize) -> (Vec<Vec<f32>>, Vec<String>) {
    let mut x = 0x2545F4914F6CDD1Du64;
    let mut normal = move || {
        // Sum of uniforms: near enough to a normal for spreading points on a sphere.
        (0..4)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f32 / (1u64 << 53) as f32 - 0.5
            })
            .sum::<f32>()
    };
    let mut embeddings = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut centre = vec![0f32; dim];
    for i in 0..n {
        if i % 3 == 0 {
            centre.iter_mut().for_each(|c| *c = normal());
        }
        embeddings.push(centre.iter().map(|c| c + 0.6 * normal()).collect());
        labels.push(format!("person{}", i / 3));
    }
    (embeddings, labels)
}

fn calibrate(c: &mut Criterion) {
    let mut group = c.benchmark_group("calibrate");
    group.sample_size(10);
    for n in [1_500usize, 4_500] {
        let (embeddings, labels) = generated(n, 128);
        let e: Vec<&[f32]> = embeddings.iter().map(Vec::as_slice).collect();
        let l: Vec<&str> = labels.iter().map(String::as_str).collect();
        let pairs = n * (n - 1) / 2;
        group.bench_function(format!("score {pairs} pairs of {n} embeddings"), |b| {
            b.iter(|| all_pairs(&e, &l))
        });
        let (genuine, impostor) = all_pairs(&e, &l);
        group.bench_function(format!("FMR 1e-4 point and EER over {pairs} pairs"), |b| {
            b.iter(|| {
                let p = at_false_accept(&genuine, &impostor, 1e-4);
                (p, equal_error_rate(&genuine, &impostor))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, calibrate);
criterion_main!(benches);
