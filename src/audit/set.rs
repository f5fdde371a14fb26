//! The audit set: general images by task and class, `<set>/<task>/<class>/*.png|jpg`, with a
//! hash over every file so that audits on different sets are never compared.

use std::path::{Path, PathBuf};

use image::RgbImage;
use sha2::{Digest, Sha256};

/// Why an audit could not run: its set, or no `[audit]` in the config.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit set {path} {message}")]
    Set { path: PathBuf, message: String },
    #[error("config {0} has no [audit] table; add one (configs/default.toml has an example) to run audits")]
    NotConfigured(PathBuf),
}

/// One classification task of the set.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub classes: Vec<String>,
    /// (class index, image) in class order, each class's files sorted by name; decoded once
    /// here (720 small images, a few MB) so that every model of an audit reuses them.
    pub images: Vec<(usize, RgbImage)>,
}

#[derive(Debug, Clone)]
pub struct AuditSet {
    pub root: PathBuf,
    pub tasks: Vec<Task>,
    /// sha256 over every file's relative path and bytes, in order.
    pub sha256: String,
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let unreadable = |e: std::io::Error| AuditError::Set {
        path: dir.to_path_buf(),
        message: format!("cannot be read ({e})"),
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

impl AuditSet {
    /// Reads the layout and hashes every image. A task needs at least two classes, and each
    /// class more images than `shots` (so that something is left to test on).
    pub fn load(root: &Path, shots: usize) -> Result<AuditSet, AuditError> {
        let bad =
            |path: &Path, message: String| AuditError::Set { path: path.to_path_buf(), message };
        if !root.is_dir() {
            return Err(bad(root, "is not a folder; set audit.set to the audit set (models/audit-set, built by tools/make_audit_set.py)".into()));
        }
        let mut hasher = Sha256::new();
        let mut tasks = Vec::new();
        for task_dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
            let name = task_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let mut classes = Vec::new();
            let mut images = Vec::new();
            for class_dir in sorted_entries(&task_dir)?.into_iter().filter(|p| p.is_dir()) {
                let files: Vec<PathBuf> =
                    sorted_entries(&class_dir)?.into_iter().filter(|p| is_image(p)).collect();
                if files.len() <= shots {
                    return Err(bad(&class_dir, format!("holds {} images; the probe trains on audit.shots = {shots} per class and needs more to test on", files.len())));
                }
                for f in &files {
                    let bytes =
                        std::fs::read(f).map_err(|e| bad(f, format!("cannot be read ({e})")))?;
                    let rel =
                        f.strip_prefix(root).unwrap_or(f).to_string_lossy().replace('\\', "/");
                    hasher.update(rel.as_bytes());
                    hasher.update([0]);
                    hasher.update(&bytes);
                    let image = image::load_from_memory(&bytes).map_err(|e| {
                        bad(f, format!("is not a readable image ({e}); rebuild the set with tools/make_audit_set.py"))
                    })?;
                    images.push((classes.len(), image.to_rgb8()));
                }
                classes
                    .push(class_dir.file_name().unwrap_or_default().to_string_lossy().into_owned());
            }
            if classes.len() < 2 {
                return Err(bad(&task_dir, "needs at least two class folders".into()));
            }
            tasks.push(Task { name, classes, images });
        }
        if tasks.is_empty() {
            return Err(bad(root, "has no task folders (<set>/<task>/<class>/*.png)".into()));
        }
        let sha256 = crate::util::hex(&hasher.finalize());
        Ok(AuditSet { root: root.to_path_buf(), tasks, sha256 })
    }

    pub fn images(&self) -> usize {
        self.tasks.iter().map(|t| t.images.len()).sum()
    }
}
