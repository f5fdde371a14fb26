//! The one frame path (`pipeline::FramePath`) alone, without the daemon's threads or queues:
//! the frames the daemon would take, one after another, through one path and one tracker.

use crate::common;

use common::{data, root};
use edgeid::capture::load_image;
use edgeid::decide::Outcome;
use edgeid::runtime::{self, Open};
use edgeid::track::Tracker;

/// The bundled replay (the six photos, each held 4 frames) with alice (sample2) enrolled,
/// under the previous default's models: the decisions the daemon journals for it
/// (`daemon::replay_journals_one_decision_per_person`), taken here by calling the frame path
/// frame by frame: 20 people, alice granted in sample1 and sample2, two faces of sample6
/// denied as presentation attacks after 2 frames, the other 16 unknown.
#[test]
fn the_frame_path_decides_the_replay_as_the_daemon_does() {
    let cfg = common::legacy_config();
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.db");
    edgeid::app::enroll(&cfg, &g, "alice", &[data("sample2.jpg")]).unwrap();
    let gallery = runtime::gallery(&cfg, &g, Open::Existing).unwrap();
    let mut path = runtime::frame_path(&cfg, false).unwrap();
    let mut tracker = Tracker::new(cfg.tracker.clone()).with_early_deny(cfg.early_deny());
    let list = std::fs::read_to_string(data("replay.txt")).unwrap();
    let mut decisions = Vec::new();
    let photos = list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    for (seq, line) in photos.enumerate() {
        let mut frame = load_image(&root().join("tests/data").join(line)).unwrap();
        (frame.seq, frame.source) = (seq as u64, "replay".to_string());
        let result = path.step(&frame, Some(&mut tracker), &gallery).unwrap();
        assert!(result.verdicts.is_empty(), "with a tracker, faces are decided as tracks");
        decisions.extend(result.decisions);
    }
    decisions.extend(path.flush(&mut tracker, "replay", &gallery));
    assert_eq!(decisions.len(), 20);
    let granted: Vec<_> = decisions.iter().filter(|d| d.outcome == Outcome::Granted).collect();
    assert_eq!(granted.len(), 2);
    assert!(granted.iter().all(|d| d.identity.as_deref() == Some("alice")));
    let attacks: Vec<_> =
        decisions.iter().filter(|d| d.reasons.contains(&"presentation_attack".into())).collect();
    assert_eq!(attacks.len(), 2);
    assert!(attacks.iter().all(|d| d.frames_used == 2), "denied early");
    let unknown = decisions.iter().filter(|d| d.reasons == ["unknown"]).count();
    assert_eq!(unknown, 16);
    assert!(decisions.iter().all(|d| d.camera == "replay"));

    // One photo alone: each face judged by itself, as `identify` reports it.
    let frame = load_image(&data("sample1.jpg")).unwrap();
    let alone = path.step(&frame, None, &gallery).unwrap();
    assert_eq!((alone.faces.len(), alone.verdicts.len(), alone.decisions.len()), (3, 3, 0));
    let named: Vec<_> = alone.verdicts.iter().filter_map(|v| v.identity.as_deref()).collect();
    assert_eq!(named, ["alice"]);
    let report = edgeid::app::Identifier::new(&cfg, &g, None)
        .unwrap()
        .identify(&data("sample1.jpg"))
        .unwrap();
    for (face, (o, v)) in report.faces.iter().zip(alone.faces.iter().zip(&alone.verdicts)) {
        assert_eq!(face.face.bbox, o.face.bbox);
        assert_eq!((face.decision, &face.reasons), (v.decision, &v.reasons));
        assert_eq!(face.live, o.pad.as_ref().map(|p| p.live));
    }
}
