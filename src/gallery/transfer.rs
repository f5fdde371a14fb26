//! `edgeid gallery export/import`: a gallery's identities and templates, for moving them to
//! another device or key, as one file sealed under a transfer key (never in clear).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::key::{Key, KeyError};

/// The file starts with this, and the sealed JSON is bound to it.
pub const MAGIC: &[u8] = b"edgeid gallery export v1\n";

/// Everything a gallery holds, in clear (only ever in memory).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    pub model_id: String,
    pub dim: usize,
    pub identities: Vec<ExportedIdentity>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportedIdentity {
    pub name: String,
    pub created_at: i64,
    pub templates: Vec<ExportedTemplate>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportedTemplate {
    pub vector: Vec<f32>,
    pub source: String,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("export {path}")]
    Key { path: PathBuf, source: KeyError },
    #[error("export {path} cannot be written ({reason}); choose a new file name (an export is never overwritten)")]
    Write { path: PathBuf, reason: String },
    #[error("export {path} cannot be read ({reason})")]
    Read { path: PathBuf, reason: String },
    #[error("export {path} is not an edgeid gallery export; pass a file written by `edgeid gallery export`")]
    NotAnExport { path: PathBuf },
    #[error("export {path} does not open with key {key}: a different transfer key, or the file was altered; use the key it was exported with")]
    WrongKeyOrAltered { path: PathBuf, key: PathBuf },
}

impl Bundle {
    /// Seals the bundle under the transfer key at `key_path` (created 0600 if there is none)
    /// into a new file `path`, mode 0600.
    pub fn write(&self, path: &Path, key_path: &Path) -> Result<(), TransferError> {
        let key = Key::load_or_create(key_path)
            .map_err(|source| TransferError::Key { path: path.to_path_buf(), source })?;
        let json = serde_json::to_vec(self).expect("a bundle serialises");
        let write = |reason: String| TransferError::Write { path: path.to_path_buf(), reason };
        let mut file = crate::util::create_private(path).map_err(|e| write(e.to_string()))?;
        file.write_all(MAGIC)
            .and_then(|()| file.write_all(&key.seal(&json, MAGIC)))
            .and_then(|()| file.sync_all())
            .map_err(|e| write(e.to_string()))
    }

    pub fn read(path: &Path, key_path: &Path) -> Result<Bundle, TransferError> {
        let bytes = std::fs::read(path)
            .map_err(|e| TransferError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
        let key = Key::load(key_path)
            .map_err(|source| TransferError::Key { path: path.to_path_buf(), source })?;
        Bundle::from_bytes(&bytes, &key, path)
    }

    /// Opens an export's bytes (read from `path`, named in errors) with the transfer key.
    pub fn from_bytes(bytes: &[u8], key: &Key, path: &Path) -> Result<Bundle, TransferError> {
        let sealed = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| TransferError::NotAnExport { path: path.to_path_buf() })?;
        let wrong = || TransferError::WrongKeyOrAltered {
            path: path.to_path_buf(),
            key: key.path().to_path_buf(),
        };
        let json = key.open(sealed, MAGIC).ok_or_else(wrong)?;
        // Authenticated, so written by edgeid under this key: unparsable means another version.
        serde_json::from_slice(&json).map_err(|e| TransferError::Read {
            path: path.to_path_buf(),
            reason: format!("{e}; export it again with this edgeid"),
        })
    }

    /// Why this bundle cannot go into a gallery of encoder `model_id` with `dim`-value
    /// templates, if it cannot: another encoder, a name that is not valid, a template of the
    /// wrong length or with a value that is not finite (a NaN would match everyone).
    pub fn problem(&self, model_id: &str, dim: usize) -> Option<String> {
        if self.model_id != model_id || self.dim != dim {
            return Some(format!(
                "it holds templates of encoder `{}` ({} values), the gallery's is `{model_id}` ({dim})",
                self.model_id, self.dim
            ));
        }
        self.identities.iter().find_map(|i| {
            if let Err(reason) = super::names::normalise_name(&i.name) {
                return Some(format!(
                    "it holds the name {:?}, which is not valid ({reason})",
                    i.name
                ));
            }
            i.templates.iter().find_map(|t| {
                if t.vector.len() != dim {
                    Some(format!(
                        "its template of `{}` has {} values, expected {dim}",
                        i.name,
                        t.vector.len()
                    ))
                } else if !t.vector.iter().all(|x| x.is_finite()) {
                    Some(format!("its template of `{}` holds a value that is not finite", i.name))
                } else {
                    None
                }
            })
        })
    }
}
