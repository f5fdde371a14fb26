//! What the commands print: every report goes out through [`Out::emit`], as one JSON object per
//! line (`--json`, the report's `Serialize`) or as text (its [`Text`] below). The library's
//! report types know nothing of either; the shapes a command adds around them are the small
//! types at the end.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use edgeid::app::{EnrollReport, ImageReport, MorphReport, ReencodeReport};
use edgeid::audit::AuditReport;
use edgeid::bench::BenchReport;
use edgeid::daemon::api::tokens::{Scope, Token};
use edgeid::daemon::RunSummary;
use edgeid::eval::dataset::EvalReport;
use edgeid::eval::{Calibration, PadCalibration};
use edgeid::gallery::Identity;
use edgeid::journal::{Entry, WrongMark};
use edgeid::tag::{Tag, TagReport};

/// A report as text, one or more lines without the final newline.
pub trait Text {
    fn text(&self) -> String;
}

/// Where reports go: stdout, as JSON lines or as text.
#[derive(Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Writes one report. A reader that closed stdout early (`edgeid run | head -c 0`) wanted
    /// no more: that ends the output quietly, never a panic (println! panics on it) or an error.
    pub fn emit<T: Serialize + Text>(self, report: &T) -> anyhow::Result<()> {
        use std::io::Write;
        let text = if self.json { serde_json::to_string(report)? } else { report.text() };
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.context("writing to stdout"),
        }
    }

    /// An error: one line on stderr, and with `--json` also one JSON object on stdout
    /// (`{"error": …}`, with `"image"` for one image of several), so that a program reading
    /// the JSON stream sees the failure where it happened.
    pub fn error(self, image: Option<&std::path::Path>, e: &anyhow::Error) {
        eprintln!("{}error: {e:#}", crate::logging::error_prefix());
        if self.json {
            let error = format!("{e:#}");
            let line = match image {
                Some(image) => serde_json::json!({ "image": image, "error": error }),
                None => serde_json::json!({ "error": error }),
            };
            println!("{line}");
        }
    }

    /// Names the files a `--report` wrote, on stderr (text mode only: JSON mode keeps stderr
    /// for errors and progress).
    pub fn written(self, files: &[PathBuf]) {
        if !self.json {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            eprintln!("report written: {}", names.join(", "));
        }
    }
}

/// A journal's Unix milliseconds as a time (before 1970 read as 1970).
fn at_ms(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

fn fmt_box(b: &[f32; 4]) -> String {
    format!("[{:.0}, {:.0}, {:.0}, {:.0}]", b[0], b[1], b[2], b[3])
}

fn fmt_tags(tags: &[Tag]) -> String {
    if tags.is_empty() {
        return "no tags".into();
    }
    tags.iter().map(|t| format!("{} {:.2}", t.label, t.score)).collect::<Vec<_>>().join(", ")
}

fn lines(lines: Vec<String>) -> String {
    lines.join("\n")
}

impl Text for EnrollReport {
    fn text(&self) -> String {
        let mut out: Vec<String> = self
            .templates
            .iter()
            .map(|t| {
                let others = t.faces_in_image.saturating_sub(1);
                let note = if others > 0 {
                    format!(" ({others} smaller faces ignored)")
                } else {
                    String::new()
                };
                format!(
                    "{}: enrolled face {} score {:.3}{note}",
                    t.image,
                    fmt_box(&t.face.bbox),
                    t.face.score
                )
            })
            .collect();
        out.push(format!(
            "{} enrolled with {} template(s) in {}",
            self.name,
            self.templates.len(),
            self.gallery.display()
        ));
        lines(out)
    }
}

impl Text for ImageReport {
    fn text(&self) -> String {
        let mut out = vec![format!(
            "{} ({}×{}): {} face(s)",
            self.image,
            self.width,
            self.height,
            self.faces.len()
        )];
        if let Some(t) = &self.tags {
            out.push(format!("  tags: {}", fmt_tags(&t.tags)));
        }
        for (i, f) in self.faces.iter().enumerate() {
            let mut who = match (&f.identity, f.similarity, &f.nearest) {
                (Some(name), Some(s), _) => format!("{name} (similarity {s:.3})"),
                (None, Some(s), Some(nearest)) => {
                    format!("unknown (nearest {nearest}, similarity {s:.3})")
                }
                _ => "unknown (gallery empty)".to_string(),
            };
            if let Some(live) = f.live {
                who.push_str(&format!("  live {live:.3}"));
            }
            if let Some(b) = f.bona_fide {
                who.push_str(&format!("  bona fide {b:.3}"));
            }
            who.push_str(&format!("  → {}", f.decision.as_str()));
            if !f.reasons.is_empty() {
                who.push_str(&format!(" ({})", f.reasons.join(", ")));
            }
            let marks: Vec<String> =
                f.face.landmarks.iter().map(|p| format!("({:.0},{:.0})", p[0], p[1])).collect();
            out.push(format!(
                "  #{:<2} {} score {:.3}  {}  landmarks {}",
                i + 1,
                fmt_box(&f.face.bbox),
                f.face.score,
                who,
                marks.join(" ")
            ));
        }
        lines(out)
    }
}

impl Text for EvalReport {
    fn text(&self) -> String {
        let c = &self.counts;
        let mut out = vec![format!(
            "{}: {} identities, {} images; failure to acquire {:.1}% ({}), to enrol {:.1}% ({})",
            self.dataset.display(),
            c.identities,
            c.images,
            100.0 * c.fta_rate,
            c.not_acquired.len(),
            100.0 * c.fte_rate,
            c.not_enrolled.len()
        )];
        let v = &self.verification;
        out.push(format!(
            "verification: {} genuine, {} impostor pairs; at {}: FMR {:.4}, FNMR {:.4}; EER {:.4} at {:.3}",
            v.genuine, v.impostor, v.threshold, v.fmr, v.fnmr, v.eer, v.eer_threshold
        ));
        for p in &v.at_fmr {
            let note = if p.supported { "" } else { " (too few impostor pairs to show this rate)" };
            out.push(format!(
                "  FNMR at FMR {:e}: {:.4} (threshold {:.3}, {} impostor pairs){note}",
                p.target, p.false_reject, p.threshold, p.comparisons
            ));
        }
        let i = &self.identification;
        out.push(format!(
            "identification: {} enrolled, {} mated and {} non-mated searches; at {}: FNIR {:.4}, FPIR {:.4}",
            i.enrolled, i.mated_searches, i.non_mated_searches, i.threshold, i.fnir, i.fpir
        ));
        if let Some(p) = &self.pad {
            out.extend(pad_lines(p));
        }
        if let Some(m) = &self.morphs {
            out.push(format!(
                "morphs: {}, MMPMR {:.4}; D-EER {} ({} bona fide, {} morph pairs)",
                m.morphs,
                m.mmpmr,
                m.dmad_eer.map(|e| format!("{e:.4}")).unwrap_or_else(|| "n/a".into()),
                m.dmad_bona_fide_pairs,
                m.dmad_morph_pairs
            ));
        }
        lines(out)
    }
}

impl Text for AuditReport {
    fn text(&self) -> String {
        let mut out = vec![format!(
            "audit of {} against {} on {} images ({} per class to train), {:.1} s{}",
            self.encoder.model.id,
            self.baseline.model.id,
            self.images,
            self.encoder.shots,
            self.seconds,
            if self.baseline_cached { "; baseline scores from the journal" } else { "" }
        )];
        out.push("  task        encoder (NCM)    baseline (NCM)   pixels  retention (NCM)".into());
        for t in &self.retention {
            out.push(format!(
                "  {:<10}  {:.3} ({:.3})    {:.3} ({:.3})    {:.3}   {:5.1}% ({:5.1}%){}",
                t.task,
                t.encoder,
                t.encoder_ncm,
                t.baseline,
                t.baseline_ncm,
                t.pixels,
                100.0 * t.retention,
                100.0 * t.retention_ncm,
                if t.alert { "  ALERT" } else { "" }
            ));
        }
        for t in self.encoder.tasks.iter().filter(|t| t.zero_shot.is_some()) {
            out.push(format!("  zero-shot {:<10} {:.3}", t.task, t.zero_shot.unwrap_or_default()));
        }
        out.push(format!(
            "  overall retention {:.1}% (linear probe; alert below {:.0}% on any task, either probe){}",
            100.0 * self.overall_retention,
            100.0 * self.min_retention,
            if self.alert { ": ALERT" } else { "" }
        ));
        match &self.drift {
            None => out.push("  drift: not enough decisions journaled yet".into()),
            Some(d) => {
                for m in &d.metrics {
                    let median =
                        |m: Option<f32>| m.map_or_else(|| "-".into(), |m| format!("{m:.3}"));
                    out.push(format!(
                        "  drift {:<15} PSI {:.3} (median {} then, {} now){}",
                        m.metric,
                        m.psi,
                        median(m.reference_median),
                        median(m.current_median),
                        if m.psi >= d.alert_psi { "  ALERT" } else { "" }
                    ));
                }
            }
        }
        lines(out)
    }
}

impl Text for edgeid::eval::pairs::PairsReport {
    fn text(&self) -> String {
        let mut out = vec![format!(
            "{} on {}: {} matched and {} mismatched pairs in {} fold(s); {} image(s) without a face (their pairs count as non-matches)",
            self.pairs_file.display(),
            self.dataset.display(),
            self.matched,
            self.mismatched,
            self.folds,
            self.not_acquired.len()
        )];
        out.push(format!(
            "accuracy {:.2}% ± {:.2}% (mean of the folds, each at the threshold chosen on the others; ± its standard error)",
            100.0 * self.accuracy,
            100.0 * self.accuracy_se
        ));
        out.push(format!(
            "at {} ({}): FMR {:.4} of {}, FNMR {:.4} of {}; EER {:.4}",
            self.threshold,
            self.encoder,
            self.fmr,
            self.mismatched,
            self.fnmr,
            self.matched,
            self.eer
        ));
        out.join("\n")
    }
}

impl Text for Calibration {
    fn text(&self) -> String {
        format!(
            "{}: recognition.match_threshold {} -> {:.4} (FMR {:.2e}, FNMR {:.4} on {} impostor and {} genuine pairs)",
            self.config.display(),
            self.previous_threshold,
            self.threshold,
            self.point.false_accept,
            self.point.false_reject,
            self.point.comparisons,
            self.genuine
        )
    }
}

impl Text for edgeid::capture::record::Recording {
    fn text(&self) -> String {
        format!(
            "{} frame(s) of `{}` ({} {}) written to {} in {:.1} s ({} skipped between them)",
            self.files.len(),
            self.source,
            self.label,
            self.subject,
            self.folder.display(),
            self.seconds,
            self.skipped
        )
    }
}

/// `edgeid models list`: one model a line.
#[derive(Serialize)]
#[serde(transparent)]
pub struct ModelList(pub Vec<edgeid::runtime::ModelLicence>);

impl Text for ModelList {
    fn text(&self) -> String {
        let mut out = Vec::new();
        for m in &self.0 {
            out.push(format!(
                "{}  {}  {}  sha256 {}  licence {}{}",
                m.id,
                m.role,
                m.file.display(),
                m.sha256,
                m.licence,
                if m.commercial_use { "" } else { " (NOT known to allow commercial use)" }
            ));
            if let Some(note) = &m.licence_note {
                out.push(format!("    {note}"));
            }
            if let Some(source) = &m.source {
                out.push(format!("    from {source}"));
            }
        }
        lines(out)
    }
}

impl Text for PadCalibration {
    fn text(&self) -> String {
        let mut out = vec![format!(
            "{}: pad.threshold {} -> {:.4} ({})",
            self.config.display(),
            self.previous_threshold,
            self.threshold,
            self.target
        )];
        if let Some(f) = &self.fusion {
            let weights: Vec<String> =
                f.weights.iter().map(|(id, w)| format!("{id} {w:.4}")).collect();
            out.push(format!(
                "  fusion: logistic, bias {:.4}, weights {}",
                f.bias,
                weights.join(", ")
            ));
        }
        out.extend(pad_lines(&self.rates));
        lines(out)
    }
}

/// A PAD report's rates: the fused score's, then each head's, with the counts behind them.
fn pad_lines(p: &edgeid::eval::pad::Pad) -> Vec<String> {
    let unit = if p.track_frames > 1 {
        format!("tracks of up to {} captures", p.track_frames)
    } else {
        "captures".to_string()
    };
    let attacks: Vec<String> = p.attacks.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let mut out = vec![format!(
        "PAD at {} on {unit}: {} bona fide, attacks {}",
        p.at_threshold.threshold,
        p.bona_fide,
        attacks.join(", ")
    )];
    let line = |name: &str,
                r: &edgeid::eval::metrics::PadRates,
                eer: f32,
                at: &[edgeid::eval::metrics::OperatingPoint]| {
        let apcer: Vec<String> =
            r.apcer.iter().map(|(k, a)| format!("{k} {:.2}%", 100.0 * a)).collect();
        let points: Vec<String> = at
            .iter()
            .map(|o| {
                format!("BPCER {:.2}% at APCER {:.0}%", 100.0 * o.false_reject, 100.0 * o.target)
            })
            .collect();
        format!(
            "  {name}: BPCER {:.2}%, APCER {}, ACER {:.2}%, EER {:.2}%; {}",
            100.0 * r.bpcer,
            apcer.join(" "),
            100.0 * r.acer,
            100.0 * eer,
            points.join(", ")
        )
    };
    out.push(line("fused", &p.at_threshold, p.eer, &p.at_apcer));
    for h in &p.heads {
        out.push(line(&h.name, &h.at_threshold, h.eer, &h.at_apcer));
    }
    out
}

impl Text for BenchReport {
    fn text(&self) -> String {
        edgeid::bench::report::markdown(self, None).trim_end_matches('\n').to_string()
    }
}

/// `edgeid morph`: the morph made, and the two photos it came from.
#[derive(Serialize)]
#[serde(transparent)]
pub struct Morphed<'a> {
    pub report: &'a MorphReport,
    #[serde(skip)]
    pub a: &'a Path,
    #[serde(skip)]
    pub b: &'a Path,
}

impl Text for Morphed<'_> {
    fn text(&self) -> String {
        let r = self.report;
        format!(
            "{}: morph of {} face {} and {} face {}, alpha {}",
            r.output.display(),
            self.a.display(),
            fmt_box(&r.face_a.bbox),
            self.b.display(),
            fmt_box(&r.face_b.bbox),
            r.alpha
        )
    }
}

impl Text for ReencodeReport {
    fn text(&self) -> String {
        if self.templates == 0 && self.from == self.to {
            format!("{}: already encoded with {}", self.gallery.display(), self.to)
        } else {
            format!(
                "{}: {} template(s) of {} identities re-encoded from {} to {}",
                self.gallery.display(),
                self.templates,
                self.identities,
                self.from,
                self.to
            )
        }
    }
}

impl Text for Entry {
    fn text(&self) -> String {
        let d = &self.decision;
        let t = at_ms(d.time_ms);
        let who = match &d.identity {
            Some(name) if d.reasons.is_empty() => name.to_string(),
            Some(name) => format!("{name}, {}", d.reasons.join(", ")),
            None => d.reasons.join(", "),
        };
        let live = d.live.map(|l| format!(" live {l:.3}")).unwrap_or_default();
        let bona_fide = d.bona_fide.map(|b| format!(" bona fide {b:.3}")).unwrap_or_default();
        let sim = d.similarity.map(|s| format!(" similarity {s:.3}")).unwrap_or_default();
        format!(
            "#{} {} {} track {} {} {}{}{}{} ({} frames)",
            self.id,
            humantime::format_rfc3339_millis(t),
            d.camera,
            d.track_id,
            d.outcome.as_str(),
            who,
            sim,
            live,
            bona_fide,
            d.frames_used
        )
    }
}

impl Text for Identity {
    fn text(&self) -> String {
        let t = at_ms(self.enrolled_at.saturating_mul(1000));
        format!(
            "{}\t{} template(s)\tsince {}",
            self.name,
            self.templates,
            humantime::format_rfc3339_seconds(t)
        )
    }
}

impl Text for RunSummary {
    fn text(&self) -> String {
        let mut out: Vec<String> = self
            .cameras
            .iter()
            .map(|c| {
                let age = c
                    .frame_age_ms
                    .map(|a| {
                        format!("; capture to queue: median {} ms, at most {} ms", a.median, a.max)
                    })
                    .unwrap_or_default();
                format!(
                    "{}: {} frames in, {} processed, {} dropped, {} undecodable{age}",
                    c.camera, c.frames_in, c.frames_processed, c.frames_dropped, c.frames_bad
                )
            })
            .collect();
        out.push(format!("{} decision(s) journaled in {:.1} s", self.decisions, self.seconds));
        if let Some(l) = self.decision_latency_ms {
            out.push(format!(
                "first frame to journaled decision: median {} ms, at most {} ms",
                l.median, l.max
            ));
        }
        lines(out)
    }
}

/// `edgeid tag`: one image's tags.
#[derive(Serialize)]
pub struct Tagged<'a> {
    pub image: String,
    pub tags: &'a TagReport,
}

impl Text for Tagged<'_> {
    fn text(&self) -> String {
        format!("{}: {}", self.image, fmt_tags(&self.tags.tags))
    }
}

/// `edgeid prototypes build`: the bank written (its vectors are in the file, not printed).
#[derive(Serialize)]
#[serde(transparent)]
pub struct BankWritten<'a> {
    pub bank: &'a edgeid::tag::PrototypeBank,
    #[serde(skip)]
    pub file: &'a Path,
}

impl Text for BankWritten<'_> {
    fn text(&self) -> String {
        let mut out: Vec<String> = self
            .bank
            .prototypes
            .iter()
            .map(|p| format!("{}: {} example(s)", p.label, p.examples))
            .collect();
        out.push(format!("wrote {} (encoder {})", self.file.display(), self.bank.encoder));
        lines(out)
    }
}

/// `gallery export` / `gallery import`: identities and templates moved, and the file written
/// or the gallery that received them. `what` ("exported" or "imported") is the JSON key of the
/// identity count.
pub struct Transfer<'a> {
    pub what: &'static str,
    pub identities: usize,
    pub templates: usize,
    pub file: &'a Path,
}

impl Serialize for Transfer<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({ self.what: self.identities, "templates": self.templates, "file": self.file })
            .serialize(s)
    }
}

impl Text for Transfer<'_> {
    fn text(&self) -> String {
        format!(
            "{} {} identities ({} templates): {}",
            self.what,
            self.identities,
            self.templates,
            self.file.display()
        )
    }
}

/// `gallery remove`.
#[derive(Serialize)]
pub struct Removed<'a> {
    pub removed: &'a str,
    #[serde(skip)]
    pub gallery: &'a Path,
}

impl Text for Removed<'_> {
    fn text(&self) -> String {
        format!("removed {} from {}", self.removed, self.gallery.display())
    }
}

/// `gallery seal`.
#[derive(Serialize)]
pub struct Sealed<'a> {
    pub sealed: usize,
    #[serde(skip)]
    pub gallery: &'a Path,
}

impl Text for Sealed<'_> {
    fn text(&self) -> String {
        format!("{}: {} plain template(s) sealed", self.gallery.display(), self.sealed)
    }
}

/// `models keygen` / `models sign`: what was written and the public key for `[trust]`.
#[derive(Serialize)]
pub struct PublicKey {
    pub public_key: String,
    #[serde(skip)]
    pub what: String,
}

impl Text for PublicKey {
    fn text(&self) -> String {
        format!(
            "{}\npublic key (for trust.public_key or fleet.public_key, whichever this key signs for): {}",
            self.what, self.public_key
        )
    }
}

/// `token add`: the new token, shown this once.
#[derive(Serialize)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub scope: Scope,
    pub token: &'a str,
}

/// The token alone on stdout (so that `T=$(edgeid token add …)` captures it and nothing else);
/// what was done goes to stderr (see main).
impl Text for NewToken<'_> {
    fn text(&self) -> String {
        self.token.to_string()
    }
}

impl Text for Token {
    fn text(&self) -> String {
        format!("{}\t{}", self.name, self.scope.as_str())
    }
}

impl Text for WrongMark {
    fn text(&self) -> String {
        let t = at_ms(self.time_ms);
        format!(
            "decision {}\tmarked wrong by {} at {}\ttruth: {}\t{}",
            self.decision_id,
            self.marked_by,
            humantime::format_rfc3339_seconds(t),
            self.truth.as_deref().map(edgeid::gallery::names::one_line).unwrap_or("?".into()),
            edgeid::gallery::names::one_line(&self.note)
        )
    }
}

impl Text for edgeid::fleet::ship::Round {
    fn text(&self) -> String {
        let shipped: Vec<String> = self.shipped.iter().map(|(t, n)| format!("{n} {t}")).collect();
        let mut s =
            format!("shipped {}; {} decision(s) not held centrally", shipped.join(", "), self.lag);
        if let Some(p) = &self.problem {
            s.push_str(&format!("\nproblem: {p}"));
        }
        s
    }
}

impl Text for edgeid::fleet::status::Fleet {
    fn text(&self) -> String {
        let mut lines = vec![format!(
            "{} device(s); gallery changes published up to version {}, config offers up to {}",
            self.devices.len(),
            self.gallery_published,
            self.config_published
        )];
        lines.push("device\tlast contact\tgallery\tconfig\tdecisions\taudits\tlag\tchains".into());
        for d in &self.devices {
            let since = humantime::format_duration(std::time::Duration::from_secs(
                d.since_contact_s.max(0.0) as u64,
            ));
            let chains = if d.problems.is_empty() { "verified" } else { "PROBLEM" };
            let config = match d.config_version {
                0 => "own".to_string(),
                v => format!("offer {v}"),
            };
            lines.push(format!(
                "{}\t{since} ago\tv{}\t{config}\t{}\t{}\t{}\t{chains}",
                d.device, d.gallery_version, d.decisions, d.audits, d.lag
            ));
            for p in &d.problems {
                lines.push(format!("  {}: {p}", d.device));
            }
            if let Some(r) = &d.config_refused {
                lines.push(format!("  {}: refused config {r}", d.device));
            }
            if let Some(c) = &d.config_checking {
                lines.push(format!("  {}: checking config {c}", d.device));
            }
        }
        lines.join("\n")
    }
}

impl Text for edgeid::fleet::change::Published {
    fn text(&self) -> String {
        format!(
            "gallery change {}: {} `{}`, published on {}",
            self.version,
            self.op.as_str(),
            self.name,
            self.topic
        )
    }
}

/// `fleet migrate`: the migrations applied now, and the schema version held.
#[derive(Serialize)]
pub struct Migrated {
    pub applied: Vec<(i32, &'static str)>,
    pub schema: i32,
    /// The transport key (created if it was missing): copy it to every device.
    pub transport_key: Option<PathBuf>,
}

impl Text for Migrated {
    fn text(&self) -> String {
        let mut lines: Vec<String> =
            self.applied.iter().map(|(v, n)| format!("applied migration {v}: {n}")).collect();
        lines.push(format!("schema version {}", self.schema));
        if let Some(key) = &self.transport_key {
            lines.push(format!(
                "gallery changes are sealed under {}: copy it to every device (fleet.transport_key, mode 0600)",
                key.display()
            ));
        }
        lines.join("\n")
    }
}

/// `fleet republish`: how many changes went to the broker again, and the config offer.
#[derive(Serialize)]
pub struct Republished {
    pub changes: usize,
    pub config_offer: Option<i64>,
}

impl Text for Republished {
    fn text(&self) -> String {
        let offer = match self.config_offer {
            Some(v) => format!(", config offer {v}"),
            None => String::new(),
        };
        format!("{} gallery change(s){offer} published again (retained)", self.changes)
    }
}

impl Text for edgeid::fleet::offer::Published {
    fn text(&self) -> String {
        format!(
            "config offer {}: {} ({} bytes), published on {}",
            self.version,
            self.files.join(", "),
            self.bytes,
            self.topic
        )
    }
}
