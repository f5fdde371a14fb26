fn main() -> anyhow::Result<()> {
    let cfg = edgeid::config::Config::load(std::path::Path::new("configs/default.toml"))?;
    let mut p = edgeid::pipeline::Pipeline::load(&cfg)?;
    for f in std::env::args().skip(1) {
        let frame = edgeid::capture::load_image(std::path::Path::new(&f))?;
        let t = std::time::Instant::now();
        let faces = p.detector.detect(&frame)?;
        println!("{f}: {} faces in {:?}", faces.len(), t.elapsed());
        for x in &faces {
            println!(
                "  {:?} {:.4} {:?}",
                x.bbox.map(|v| v.round()),
                x.score,
                x.landmarks.map(|p| p.map(|v| v.round()))
            );
        }
    }
    Ok(())
}
