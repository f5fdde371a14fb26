fn main() -> anyhow::Result<()> {
    let mut cfg = edgeid::config::Config::load(std::path::Path::new("configs/default.toml"))?;
    cfg.detector.mirror_landmarks = false;
    let mut off = edgeid::pipeline::Pipeline::load(&cfg)?;
    cfg.detector.mirror_landmarks = true;
    let mut on = edgeid::pipeline::Pipeline::load(&cfg)?;
    let (mut dx, mut dy, mut n) = (0.0, 0.0, 0.0);
    for f in std::env::args().skip(1) {
        let frame = edgeid::capture::load_image(std::path::Path::new(&f))?;
        let a = off.detect(&frame)?;
        let b = on.detect(&frame)?;
        for (x, y) in a.iter().zip(&b) {
            for i in 0..5 {
                dx += y.landmarks[i][0] - x.landmarks[i][0];
                dy += y.landmarks[i][1] - x.landmarks[i][1];
                n += 1.0;
            }
        }
    }
    println!("mean shift on-off: dx {:.3} dy {:.3}", dx / n, dy / n);
    Ok(())
}
