//! The gallery: enrolled identities and their embeddings, persisted in SQLite, searched 1:N
//! by cosine similarity in memory.
//!
//! A gallery belongs to one encoder: embeddings of different encoders live in different spaces,
//! so the encoder's model id is written into the database when it is created and every later
//! enrolment or search with another encoder is refused.
//!
//! Templates are stored sealed (see [`key`]): the gallery is useless without its key file, a
//! changed byte or a template moved to another name is refused as tampering, and a wrong key
//! opens nothing, so it fails closed (no match, no access). The file itself is created 0600
//! and refused if other users may read it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::encode::Embedding;

pub mod key;
pub mod names;
pub mod search;
pub mod transfer;

pub use key::{Key, KeyError};
pub use names::{normalise_name, MAX_NAME_CHARS};
use search::Matrix;
pub use transfer::{Bundle, TransferError};

/// What is wrong with the disk, where SQLite's error says it is the disk's fault. A full disk
/// often reaches SQLite as a plain I/O error (mapping its WAL index fails): the file system's
/// free space tells the two apart.
fn disk_trouble(e: &rusqlite::Error, path: &Path) -> Option<&'static str> {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code()? {
        DiskFull => Some("the disk is full"),
        SystemIoFailure if no_space_left(path) => Some("the disk is full (an I/O error)"),
        SystemIoFailure => Some("the disk failed to read or write (I/O error)"),
        CannotOpen => Some("the file cannot be opened"),
        ReadOnly => Some("the file or its disk is read-only"),
        _ => None,
    }
}

/// Whether the file system holding `path` has no block left for this user.
fn no_space_left(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: statvfs fills the zeroed struct from a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c.as_ptr(), &mut st) == 0 && st.f_bavail == 0
    }
}

/// Held while an enrolment opens (and perhaps creates) a gallery: an exclusive `flock` on its
/// folder, so a second creator waits and then finds the gallery made (released when dropped). `None` where the
/// folder cannot be opened (refused with its own message further on) or locked (a file system
/// without locks: creation goes ahead unserialised, as before).
struct CreationLock {
    _folder: std::fs::File,
}

impl CreationLock {
    fn take(path: &Path) -> Option<CreationLock> {
        use std::os::fd::AsRawFd;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let folder = std::fs::File::open(dir).ok()?;
        // SAFETY: flock on a descriptor this function owns; it blocks until the lock is free.
        if unsafe { libc::flock(folder.as_raw_fd(), libc::LOCK_EX) } != 0 {
            log::warn!(
                "cannot lock {} to create a gallery in it ({}); going ahead",
                dir.display(),
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(CreationLock { _folder: folder })
    }
}

/// 1: plain little-endian f32 templates. 2: sealed templates and a key check value.
const SCHEMA_VERSION: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("gallery {path} does not exist; enrol someone first with `edgeid enroll --gallery {path} --name NAME IMAGE`")]
    Missing { path: PathBuf },
    #[error("gallery {path} is not an edgeid gallery ({reason}); point --gallery at a gallery file or a new path")]
    NotAGallery { path: PathBuf, reason: String },
    #[error("gallery {path} was built with encoder `{gallery}`, but the config uses `{config}`; its templates cannot be compared across encoders and it is left unchanged. {how}")]
    EncoderMismatch { path: PathBuf, gallery: String, config: String, how: String },
    #[error("gallery {path} cannot be re-encoded: {missing} of its templates were enrolled without their face crop (before edgeid kept them, or with gallery.keep_crops = false), so there is nothing to encode again; it is left unchanged. Keep using it with a config whose encoder is `{gallery}` (configs/mtcnn-mobileface.toml runs mobileface-256@80c1c6f0, edgeid's default encoder until 2026-11), or re-enrol its people from their photos into a new gallery")]
    NoCrops { path: PathBuf, gallery: String, missing: usize },
    #[error("gallery {path} cannot be re-encoded: {reason}; it is left unchanged")]
    Reencode { path: PathBuf, reason: String },
    #[error(
        "gallery {path}: no identity named `{name}`; `edgeid gallery list` shows who is enrolled"
    )]
    UnknownIdentity { path: PathBuf, name: String },
    #[error("gallery {path}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("gallery {path} cannot be read or written: {what}; free space on its device or check the disk, then try again (nothing was changed)")]
    Disk { path: PathBuf, what: &'static str, source: rusqlite::Error },
    /// The message is the key's (shown as this error's source).
    #[error("gallery {path}")]
    Key { path: PathBuf, source: KeyError },
    #[error("gallery {path} refused: {reason}")]
    Exposed { path: PathBuf, reason: String },
    #[error("gallery {path}: {reason}")]
    Refused { path: PathBuf, reason: String },
    #[error("gallery {path} was not sealed with key {key}: nothing in it can be read, so nobody matches; point gallery.key at the key it was created with")]
    WrongKey { path: PathBuf, key: PathBuf },
    #[error("gallery {path} already has {names:?}; remove them (`edgeid gallery remove`) or import into another gallery; nothing was imported")]
    AlreadyEnrolled { path: PathBuf, names: Vec<String> },
    /// A fleet change not newer than what the gallery holds (replayed, or rolled back).
    #[error("gallery {path} refused fleet change version {version}: it holds version {held} already, and an older change is never applied again (a replayed or rolled-back change)")]
    Stale { path: PathBuf, version: i64, held: i64 },
    #[error("gallery {path}: {what} fails its authentication check: the file was altered or damaged; restore it from a backup or an `edgeid gallery export`")]
    Tampered { path: PathBuf, what: String },
}

/// One enrolled identity, as listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Identity {
    pub name: String,
    pub templates: usize,
    /// Unix seconds of the first enrolment.
    pub enrolled_at: i64,
}

/// The best identity for a probe.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Match {
    pub name: String,
    pub similarity: f32,
    /// The matched template (unit length), for heads that compare it with the probe (D-MAD).
    #[serde(skip)]
    pub reference: Vec<f32>,
}

/// One template to enrol: the embedding, where it came from, and optionally the aligned face
/// crop it was encoded from.
#[derive(Debug, Clone)]
pub struct Template {
    pub embedding: Embedding,
    pub source: String,
    pub crop: Option<Crop>,
}

/// An aligned enrolment crop, kept (sealed) so that the gallery survives an encoder change.
#[derive(Debug, Clone)]
pub struct Crop {
    /// The crop as PNG.
    pub png: Vec<u8>,
    /// The alignment it was cut with ([`alignment_key`]), bound into its seal: it can only be
    /// encoded again by an encoder that expects the same crop.
    pub alignment: String,
}

/// A short, stable description of an alignment (crop size and template points), to tell
/// whether a kept crop fits another encoder.
pub fn alignment_key(a: &crate::manifest::AlignmentSpec) -> String {
    let points: Vec<String> =
        a.template.iter().map(|p| format!("{:.2},{:.2}", p[0], p[1])).collect();
    format!("{}x{} {}", a.size[0], a.size[1], points.join(" "))
}

fn template_aad(model_id: &str, name: &str) -> Vec<u8> {
    format!("edgeid template v2\0{model_id}\0{name}").into_bytes()
}

fn check_aad(model_id: &str) -> Vec<u8> {
    format!("edgeid key check v2\0{model_id}").into_bytes()
}

fn crop_aad(name: &str, alignment: &str) -> Vec<u8> {
    format!("edgeid crop v1\0{alignment}\0{name}").into_bytes()
}

/// (template id, identity name, one column of the template) of every template, by id.
fn template_rows<T: rusqlite::types::FromSql>(
    conn: &Connection,
    column: &str,
) -> rusqlite::Result<Vec<(i64, String, T)>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT t.id, i.name, t.{column} FROM templates t JOIN identities i ON i.id = t.identity_id ORDER BY t.id"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

fn has_crop_column(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('templates')")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(names.iter().any(|n| n == "crop"))
}

/// (templates, templates without a crop).
fn crop_counts(conn: &Connection) -> rusqlite::Result<(usize, usize)> {
    let total: i64 = conn.query_row("SELECT count(*) FROM templates", [], |r| r.get(0))?;
    let missing: i64 = if has_crop_column(conn)? {
        conn.query_row("SELECT count(*) FROM templates WHERE crop IS NULL", [], |r| r.get(0))?
    } else {
        total
    };
    Ok((total as usize, missing as usize))
}

pub struct Gallery {
    conn: Connection,
    path: PathBuf,
    key: Key,
    model_id: String,
    dim: usize,
    /// Every template in memory, L2-normalised once here so that a search is one dot product
    /// per template: the identity name of each row, and the rows. The database is the source
    /// of truth.
    names: Vec<String>,
    templates: Matrix,
    /// SQLite's `data_version` when the templates were read: it moves when another connection
    /// (an `edgeid gallery remove`, an enrolment) commits, so a running daemon sees at once that
    /// its copy is out of date.
    data_version: i64,
    /// The file (device, inode) the connection opened: a backup restored by `mv` over the path
    /// is another file, which `data_version` (this file's own) never sees change.
    file_id: Option<(u64, u64)>,
}

/// The (device, inode) a path names now, if it names a file.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// How a gallery is opened: under which key, for which encoder.
#[derive(Debug, Clone)]
pub struct GalleryOptions {
    /// The key that seals its templates (created there with a new gallery).
    pub key: PathBuf,
    /// The encoder its templates must be of: its model id and embedding size.
    pub encoder: String,
    pub dim: usize,
    /// Made if it does not exist (enrolment, a new device); otherwise it must exist.
    pub create: bool,
}

impl Gallery {
    /// Opens a gallery (see [`GalleryOptions`]); commands and the daemon open theirs through
    /// [`crate::runtime::gallery`], for their config's encoder and key.
    pub fn open(path: &Path, options: &GalleryOptions) -> Result<Gallery, GalleryError> {
        let o = options;
        Self::open_with(path, &o.key, &o.encoder, o.dim, o.create, false)
    }

    /// Opens a gallery of plain templates (schema 1, written before templates were sealed) and
    /// seals them in place under its key (created if there is none), in one transaction: the
    /// explicit step `edgeid gallery seal` takes. Returns the gallery and how many templates
    /// were sealed. A gallery already sealed is opened as it is (0).
    pub fn seal_plain(
        path: &Path,
        key_path: &Path,
        model_id: &str,
        dim: usize,
    ) -> Result<(Gallery, usize), GalleryError> {
        let before = Gallery::stored_schema(path)?;
        let g = Self::open_with(path, key_path, model_id, dim, false, true)?;
        let sealed = if before == "1" { g.len() } else { 0 };
        Ok((g, sealed))
    }

    fn stored_schema(path: &Path) -> Result<String, GalleryError> {
        if !path.exists() {
            return Err(GalleryError::Missing { path: path.to_path_buf() });
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| GalleryError::Sqlite { path: path.to_path_buf(), source })?;
        conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).map_err(
            |e| GalleryError::NotAGallery { path: path.to_path_buf(), reason: e.to_string() },
        )
    }

    /// `seal_plain`: whether plain templates in an existing file may be sealed (only on the
    /// explicit command; a new gallery is sealed as it is created).
    fn open_with(
        path: &Path,
        key_path: &Path,
        model_id: &str,
        dim: usize,
        create: bool,
        seal_plain: bool,
    ) -> Result<Gallery, GalleryError> {
        if !path.exists() && !create {
            return Err(GalleryError::Missing { path: path.to_path_buf() });
        }
        // Two first enrolments at once: the second waits until the first has created the
        // file, its tables and its key, then opens what it made (it used to meet an empty
        // file or a half-made schema and fail with SQLite's words). Every enrolment takes the
        // lock, not only one that finds no file: the second could find the file the first had
        // just made, still at schema 1, and refuse it as a planted one.
        let _creating = if create { CreationLock::take(path) } else { None };
        let exists = path.exists();
        let sql = |source| GalleryError::Sqlite { path: path.to_path_buf(), source };
        let not_gallery =
            |reason: String| GalleryError::NotAGallery { path: path.to_path_buf(), reason };
        // A full disk or a failing one is not a foreign file: say so.
        let read_error = |e: rusqlite::Error| match disk_trouble(&e, path) {
            Some(what) => GalleryError::Disk { path: path.to_path_buf(), what, source: e },
            None => not_gallery(e.to_string()),
        };
        // An empty file is not an empty gallery: taking it for a new one would make a new key
        // and hide that the gallery was lost.
        if exists && std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            return Err(not_gallery(
                "the file is empty (0 bytes); restore the gallery from a backup or an `edgeid gallery export`, or delete the file to start a new gallery".into(),
            ));
        }
        if !exists {
            // The folder is not made here: made by whoever runs this command, it would belong
            // to them, and the daemon's user could not write there (or a typo would start a
            // new gallery somewhere unseen).
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
                return Err(GalleryError::Refused {
                    path: path.to_path_buf(),
                    reason: format!(
                        "its folder {} does not exist; create it first, owned by the user the daemon runs as (`install -d -m 700 -o edgeid -g edgeid {}`), or choose another --gallery",
                        dir.display(),
                        dir.display()
                    ),
                });
            }
            // Created here, owner-only, before SQLite opens it (its WAL files take this mode).
            crate::util::create_private(path)
                .map_err(|e| not_gallery(format!("cannot create it: {e}")))?;
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sql)?;
        // Another enrolment, a removal or the daemon's check may hold the file for a moment.
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sql)?;
        // Reading the schema is the first access to the file: a non-database fails here.
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get(0),
            )
            .map_err(read_error)?;
        if tables == 0 {
            let others: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| not_gallery(e.to_string()))?;
            if others > 0 {
                return Err(not_gallery("a SQLite database of something else".into()));
            }
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 BEGIN;
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE identities (
                     id INTEGER PRIMARY KEY,
                     name TEXT NOT NULL UNIQUE,
                     created_at INTEGER NOT NULL);
                 CREATE TABLE templates (
                     id INTEGER PRIMARY KEY,
                     identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
                     model_id TEXT NOT NULL,
                     vector BLOB NOT NULL,
                     source TEXT NOT NULL,
                     created_at INTEGER NOT NULL,
                     crop BLOB);
                 COMMIT;",
            )
            .map_err(sql)?;
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', '1'), ('model_id', ?1), ('dim', ?2)",
                params![model_id, dim.to_string()],
            )
            .map_err(sql)?;
        }
        // secure_delete: a removed identity's templates are overwritten, not left in free pages.
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;").map_err(sql)?;
        let meta = |key: &str| -> Result<String, GalleryError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(|e| not_gallery(e.to_string()))?
                .ok_or_else(|| not_gallery(format!("its meta table has no `{key}`")))
        };
        let schema = meta("schema")?;
        // Plain templates in a file that existed: an old gallery, or one whose schema was set
        // back to 1 with a template planted in it. Sealing them on open would vouch for
        // whatever is there; only the explicit command does.
        if schema == "1" && exists && !seal_plain {
            return Err(GalleryError::Refused {
                path: path.to_path_buf(),
                reason: format!(
                    "it holds plain, unsealed templates (schema 1): written by an edgeid from before templates were sealed, or set back to schema 1 by someone who could write the file (a way to plant a template). Nothing was read from it. If it is your gallery as you enrolled it, seal it with `edgeid gallery seal --gallery {}`",
                    path.display()
                ),
            });
        }
        let stored_model = meta("model_id")?;
        if stored_model != model_id {
            let (templates, missing) = crop_counts(&conn).map_err(sql)?;
            let how = if templates > 0 && missing == 0 {
                format!("It keeps the face crops it was enrolled from: re-encode it under this config with `edgeid gallery reencode --gallery {}` (all or nothing), or keep using it with a config whose encoder is `{stored_model}`", path.display())
            } else {
                format!("It holds no face crops to encode again: keep using it with a config whose encoder is `{stored_model}` (configs/mtcnn-mobileface.toml runs mobileface-256@80c1c6f0, edgeid's default encoder until 2026-11), or re-enrol its people from their photos into a new gallery under this config")
            };
            return Err(GalleryError::EncoderMismatch {
                path: path.to_path_buf(),
                gallery: stored_model,
                config: model_id.to_string(),
                how,
            });
        }
        // Galleries from before enrolment crops were kept gain the (empty) column.
        if !has_crop_column(&conn).map_err(sql)? {
            conn.execute_batch("ALTER TABLE templates ADD COLUMN crop BLOB").map_err(sql)?;
        }
        // Checked once the file is known to be a gallery (another file gets that message).
        crate::util::check_private(path)
            .map_err(|reason| GalleryError::Exposed { path: path.to_path_buf(), reason })?;
        let key = if schema == "1" { Key::load_or_create(key_path) } else { Key::load(key_path) }
            .map_err(|source| GalleryError::Key { path: path.to_path_buf(), source })?;
        if schema == "1" && exists && key.has_sealed() {
            return Err(GalleryError::Refused {
                path: path.to_path_buf(),
                reason: format!(
                    "it says its templates are plain (schema 1), but its key {} has sealed it before: the gallery was set back, which is a way to plant a template. Nothing was read or sealed; restore the gallery from a backup or an `edgeid gallery export`",
                    key_path.display()
                ),
            });
        }
        let mut gallery = Gallery {
            conn,
            path: path.to_path_buf(),
            key,
            model_id: model_id.to_string(),
            dim,
            names: Vec::new(),
            templates: Matrix::new(dim),
            data_version: 0,
            file_id: file_id(path),
        };
        match schema.as_str() {
            "1" => gallery.seal_plain_templates()?,
            "2" => {}
            other => {
                return Err(not_gallery(format!(
                    "schema {other}, this edgeid reads up to {SCHEMA_VERSION}: use a newer edgeid"
                )))
            }
        }
        let check: Vec<u8> = gallery
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get::<_, String>(0)
            })
            .map(|hex| crate::util::unhex(&hex).unwrap_or_default())
            .map_err(|e| not_gallery(format!("no key check: {e}")))?;
        if gallery.key.open(&check, &gallery.check_aad()).is_none() {
            return Err(GalleryError::WrongKey {
                path: path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        // From here the gallery is sealed under this key: the key records it (once), so that
        // setting the gallery back to schema 1 is refused from now on.
        if let Err(e) = gallery.key.mark_sealed() {
            log::warn!("gallery {}: {e}; a gallery set back to plain templates could not be told from an old one", path.display());
        }
        gallery.reload()?;
        Ok(gallery)
    }

    /// A stored template of `name` in clear, checked for tampering and size.
    fn open_template(&self, name: &str, sealed: &[u8]) -> Result<Vec<f32>, GalleryError> {
        let blob = self.key.open(sealed, &self.template_aad(name)).ok_or_else(|| {
            GalleryError::Tampered {
                path: self.path.clone(),
                what: format!("a template of `{name}`"),
            }
        })?;
        if blob.len() != self.dim * 4 {
            return Err(GalleryError::NotAGallery {
                path: self.path.clone(),
                reason: format!(
                    "a template of `{name}` has {} bytes, expected {}",
                    blob.len(),
                    self.dim * 4
                ),
            });
        }
        let v: Vec<f32> =
            blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(GalleryError::NotAGallery {
                path: self.path.clone(),
                reason: format!("a template of `{name}` holds a non-finite value (NaN or infinity); restore the gallery from a backup or an `edgeid gallery export`"),
            });
        }
        Ok(v)
    }

    /// What a template of `name` is bound to: sealed for one encoder and one identity.
    fn template_aad(&self, name: &str) -> Vec<u8> {
        template_aad(&self.model_id, name)
    }

    fn check_aad(&self) -> Vec<u8> {
        check_aad(&self.model_id)
    }

    /// Schema 1 (a new file, or one written before templates were sealed) to 2: every
    /// template sealed and the key check written, in one transaction.
    fn seal_plain_templates(&mut self) -> Result<(), GalleryError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.sql(e))?;
        let rows: Vec<(i64, String, Vec<u8>)> =
            template_rows(&tx, "vector").map_err(|e| self.sql(e))?;
        if let Some((_, name, bytes)) = rows.iter().find(|(_, _, b)| b.len() != self.dim * 4) {
            return Err(GalleryError::Refused {
                path: self.path.clone(),
                reason: format!(
                    "a template of `{name}` is not a plain template ({} bytes, {} expected): the gallery was sealed once and its schema set back to 1; nothing was sealed. Restore it from a backup",
                    bytes.len(),
                    self.dim * 4
                ),
            });
        }
        for (id, name, plain) in &rows {
            let sealed = self.key.seal(plain, &self.template_aad(name));
            tx.execute("UPDATE templates SET vector = ?1 WHERE id = ?2", params![sealed, id])
                .map_err(|e| self.sql(e))?;
        }
        let check = self.key.seal(b"edgeid", &self.check_aad());
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('key_check', ?1), ('schema', ?2)",
            params![crate::util::hex(&check), SCHEMA_VERSION.to_string()],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        if !rows.is_empty() {
            log::info!("gallery {}: {} template(s) sealed", self.path.display(), rows.len());
        }
        Ok(())
    }

    fn sql(&self, source: rusqlite::Error) -> GalleryError {
        match disk_trouble(&source, &self.path) {
            Some(what) => GalleryError::Disk { path: self.path.clone(), what, source },
            None => GalleryError::Sqlite { path: self.path.clone(), source },
        }
    }

    /// Whether the gallery's path now names another file than the one open (replaced by a
    /// rename, as restoring a backup does, or removed): only opening the path again sees it.
    pub fn replaced_on_disk(&self) -> bool {
        file_id(&self.path) != self.file_id
    }

    /// Drops the templates held in memory, so that nobody matches: what a daemon does while
    /// the gallery it should use cannot be read (fail closed, never the old copy granting).
    pub fn forget(&mut self) {
        self.names.clear();
        self.templates = Matrix::new(self.dim);
    }

    /// Whether another connection changed the gallery since its templates were read.
    pub fn changed_on_disk(&self) -> Result<bool, GalleryError> {
        Ok(self.read_data_version()? != self.data_version)
    }

    fn read_data_version(&self) -> Result<i64, GalleryError> {
        self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(|e| self.sql(e))
    }

    /// Reads every template into memory.
    pub fn reload(&mut self) -> Result<(), GalleryError> {
        // Taken first: a change committed while reading shows at the next check. Kept even if
        // the reading fails, so a damaged file is reported once per change, not per frame.
        self.data_version = self.read_data_version()?;
        let mut stmt = self
            .conn
            .prepare("SELECT i.name, t.vector FROM templates t JOIN identities i ON i.id = t.identity_id")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| self.sql(e))?;
        let (mut names, mut templates) = (Vec::new(), Matrix::new(self.dim));
        for row in rows {
            let (name, sealed) = row.map_err(|e| self.sql(e))?;
            let v = self.open_template(&name, &sealed)?;
            templates.push(&unit(v));
            names.push(name);
        }
        drop(stmt);
        (self.names, self.templates) = (names, templates);
        Ok(())
    }

    /// Enrols embeddings under a name in one transaction: either all are stored or none.
    pub fn enroll(
        &mut self,
        name: &str,
        embeddings: &[(Embedding, String)],
    ) -> Result<(), GalleryError> {
        let templates: Vec<Template> = embeddings
            .iter()
            .map(|(embedding, source)| Template {
                embedding: embedding.clone(),
                source: source.clone(),
                crop: None,
            })
            .collect();
        self.enroll_templates(name, &templates)
    }

    /// Enrols templates under a name in one transaction: either all are stored or none. A
    /// template's crop is kept sealed beside it, so that the gallery can be encoded again
    /// under another encoder ([`Gallery::reencode`]).
    pub fn enroll_templates(
        &mut self,
        name: &str,
        templates: &[Template],
    ) -> Result<(), GalleryError> {
        // A NaN template would sort above every score (`total_cmp`) and hide the real best
        // match: refused before anything is stored.
        if let Some(t) = templates.iter().find(|t| t.embedding.0.iter().any(|x| !x.is_finite())) {
            return Err(GalleryError::Refused {
                path: self.path.clone(),
                reason: format!(
                    "the template of `{name}` from {} holds a non-finite value (NaN or infinity); the encoder's output is broken, nothing was enrolled",
                    t.source
                ),
            });
        }
        let now = unix_now();
        let aad = self.template_aad(name);
        let sealed: Vec<Vec<u8>> = templates
            .iter()
            .map(|t| {
                let bytes: Vec<u8> = t.embedding.0.iter().flat_map(|x| x.to_le_bytes()).collect();
                self.key.seal(&bytes, &aad)
            })
            .collect();
        let crops: Vec<Option<Vec<u8>>> = templates
            .iter()
            .map(|t| t.crop.as_ref().map(|c| self.key.seal(&c.png, &crop_aad(name, &c.alignment))))
            .collect();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| GalleryError::Sqlite { path: self.path.clone(), source: e })?;
        let result = (|| {
            tx.execute(
                "INSERT OR IGNORE INTO identities (name, created_at) VALUES (?1, ?2)",
                params![name, now],
            )?;
            let id: i64 =
                tx.query_row("SELECT id FROM identities WHERE name = ?1", [name], |r| r.get(0))?;
            for ((t, blob), crop) in templates.iter().zip(&sealed).zip(&crops) {
                tx.execute(
                    "INSERT INTO templates (identity_id, model_id, vector, source, created_at, crop) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, self.model_id, blob, t.source, now, crop],
                )?;
            }
            Ok(())
        })();
        result.and_then(|()| tx.commit()).map_err(|e| self.sql(e))?;
        for t in templates {
            self.templates.push(&unit(t.embedding.0.clone()));
            self.names.push(name.to_string());
        }
        Ok(())
    }

    /// The version of the fleet's gallery changes this gallery holds (0: none applied).
    pub fn fleet_version(&self) -> Result<i64, GalleryError> {
        fleet_version(&self.conn).map_err(|e| self.sql(e))
    }

    /// The fleet version of a gallery file, read without opening it for use (no key needed);
    /// 0 for a gallery that holds none, or no gallery.
    pub fn stored_fleet_version(path: &Path) -> Result<i64, GalleryError> {
        if !path.exists() {
            return Ok(0);
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| GalleryError::Sqlite { path: path.to_path_buf(), source })?;
        fleet_version(&conn)
            .map_err(|source| GalleryError::Sqlite { path: path.to_path_buf(), source })
    }

    /// Applies version `version` of the fleet's gallery changes in one transaction: `name`'s
    /// identity replaced by `templates` (`Some`), or removed (`None`; a name not held is no
    /// error), and the gallery's fleet version set to `version`. A version not above the one
    /// held is refused ([`GalleryError::Stale`]) and changes nothing: an old change replayed
    /// cannot bring back someone removed since.
    pub fn apply_versioned(
        &mut self,
        version: i64,
        name: &str,
        templates: Option<&[Template]>,
    ) -> Result<(), GalleryError> {
        if let Some(t) = templates.into_iter().flatten().find(|t| {
            t.embedding.0.len() != self.dim || t.embedding.0.iter().any(|x| !x.is_finite())
        }) {
            return Err(GalleryError::Refused {
                path: self.path.clone(),
                reason: format!("a template of `{name}` from {} has {} values or a non-finite one; the gallery's encoder gives {} finite values", t.source, t.embedding.0.len(), self.dim),
            });
        }
        let now = unix_now();
        let aad = self.template_aad(name);
        let sealed: Vec<(Vec<u8>, &str)> = templates
            .into_iter()
            .flatten()
            .map(|t| {
                let bytes: Vec<u8> = t.embedding.0.iter().flat_map(|x| x.to_le_bytes()).collect();
                (self.key.seal(&bytes, &aad), t.source.as_str())
            })
            .collect();
        let tx = self.conn.unchecked_transaction().map_err(|e| self.sql(e))?;
        let held = fleet_version(&tx).map_err(|e| self.sql(e))?;
        if version <= held {
            return Err(GalleryError::Stale { path: self.path.clone(), version, held });
        }
        let result = (|| {
            tx.execute("DELETE FROM identities WHERE name = ?1", [name])?;
            if templates.is_some() {
                tx.execute(
                    "INSERT INTO identities (name, created_at) VALUES (?1, ?2)",
                    params![name, now],
                )?;
                let id = tx.last_insert_rowid();
                for (blob, source) in &sealed {
                    tx.execute(
                        "INSERT INTO templates (identity_id, model_id, vector, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, self.model_id, blob, source, now],
                    )?;
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('fleet_version', ?1)",
                [version.to_string()],
            )?;
            Ok(())
        })();
        result.and_then(|()| tx.commit()).map_err(|e| self.sql(e))?;
        self.reload()
    }

    /// The encoder model id and embedding size a gallery file was built with, read without
    /// opening it for use (no key needed).
    pub fn stored_encoder(path: &Path) -> Result<(String, usize), GalleryError> {
        if !path.exists() {
            return Err(GalleryError::Missing { path: path.to_path_buf() });
        }
        let not_gallery =
            |reason: String| GalleryError::NotAGallery { path: path.to_path_buf(), reason };
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| not_gallery(e.to_string()))?;
        let meta = |key: &str| -> Result<String, GalleryError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .map_err(|e| not_gallery(format!("no `{key}` in its meta table: {e}")))
        };
        let model = meta("model_id")?;
        let dim =
            meta("dim")?.parse().map_err(|_| not_gallery("its `dim` is not a number".into()))?;
        Ok((model, dim))
    }

    /// Encodes every template again from its kept crop under another encoder (`model_id`,
    /// `dim`, whose alignment must be the one the crops were cut with), in one transaction:
    /// every template and the gallery's encoder change together, or nothing does. Returns the
    /// number of templates re-encoded.
    pub fn reencode(
        &mut self,
        model_id: &str,
        dim: usize,
        alignment: &str,
        mut encode: impl FnMut(&image::RgbImage) -> anyhow::Result<Embedding>,
    ) -> Result<usize, GalleryError> {
        let refuse = |reason: String| GalleryError::Reencode { path: self.path.clone(), reason };
        let rows: Vec<(i64, String, Option<Vec<u8>>)> =
            template_rows(&self.conn, "crop").map_err(|e| self.sql(e))?;
        let missing = rows.iter().filter(|r| r.2.is_none()).count();
        if missing > 0 {
            return Err(GalleryError::NoCrops {
                path: self.path.clone(),
                gallery: self.model_id.clone(),
                missing,
            });
        }
        // Everything is computed before the transaction opens: a crop that fails to open or
        // encode leaves the file as it was.
        let mut updates = Vec::with_capacity(rows.len());
        for (id, name, sealed) in &rows {
            let png = self
                .key
                .open(sealed.as_deref().expect("checked above"), &crop_aad(name, alignment))
                .ok_or_else(|| {
                    refuse(format!("a crop of `{name}` was not cut for the new encoder's alignment ({alignment}), or fails its authentication check"))
                })?;
            let crop = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
                .map_err(|e| refuse(format!("a crop of `{name}` does not decode: {e}")))?
                .to_rgb8();
            let e =
                encode(&crop).map_err(|e| refuse(format!("encoding a crop of `{name}`: {e:#}")))?;
            if e.0.len() != dim {
                return Err(refuse(format!(
                    "the encoder gave {} values, its manifest says {dim}",
                    e.0.len()
                )));
            }
            let bytes: Vec<u8> = e.0.iter().flat_map(|x| x.to_le_bytes()).collect();
            updates.push((*id, self.key.seal(&bytes, &template_aad(model_id, name))));
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.sql(e))?;
        for (id, blob) in &updates {
            tx.execute(
                "UPDATE templates SET vector = ?1, model_id = ?2 WHERE id = ?3",
                params![blob, model_id, id],
            )
            .map_err(|e| self.sql(e))?;
        }
        let check = self.key.seal(b"edgeid", &check_aad(model_id));
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('model_id', ?1), ('dim', ?2), ('key_check', ?3)",
            params![model_id, dim.to_string(), crate::util::hex(&check)],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        self.model_id = model_id.to_string();
        self.dim = dim;
        self.reload()?;
        Ok(updates.len())
    }

    /// Every identity with its templates in clear, for `edgeid gallery export`.
    pub fn export(&self) -> Result<Bundle, GalleryError> {
        let mut identities: Vec<transfer::ExportedIdentity> = Vec::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT i.name, i.created_at, t.vector, t.source, t.created_at FROM identities i
                 LEFT JOIN templates t ON t.identity_id = i.id ORDER BY i.name, t.id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        for row in rows {
            let (name, created_at, sealed, source, t_created) = row.map_err(|e| self.sql(e))?;
            if identities.last().is_none_or(|i| i.name != name) {
                identities.push(transfer::ExportedIdentity {
                    name: name.clone(),
                    created_at,
                    templates: Vec::new(),
                });
            }
            if let Some(sealed) = sealed {
                let vector = self.open_template(&name, &sealed)?;
                identities.last_mut().expect("pushed").templates.push(transfer::ExportedTemplate {
                    vector,
                    source: source.unwrap_or_default(),
                    created_at: t_created.unwrap_or(created_at),
                });
            }
        }
        Ok(Bundle { model_id: self.model_id.clone(), dim: self.dim, identities })
    }

    /// Adds every identity of an export, in one transaction: refused as a whole if the export
    /// is for another encoder or names someone already enrolled here.
    pub fn import(&mut self, bundle: &Bundle) -> Result<usize, GalleryError> {
        if bundle.model_id != self.model_id || bundle.dim != self.dim {
            return Err(GalleryError::EncoderMismatch {
                path: self.path.clone(),
                gallery: self.model_id.clone(),
                config: format!("{} (the export's)", bundle.model_id),
                how: "Import it into a gallery of the export's encoder".into(),
            });
        }
        if let Some(problem) = bundle.problem(&self.model_id, self.dim) {
            return Err(GalleryError::Refused {
                path: self.path.clone(),
                reason: format!("the export cannot be imported: {problem}; nothing was imported"),
            });
        }
        let here: Vec<String> = self.list()?.into_iter().map(|i| i.name).collect();
        let clash: Vec<String> = bundle
            .identities
            .iter()
            .filter(|i| here.contains(&i.name))
            .map(|i| i.name.clone())
            .collect();
        if !clash.is_empty() {
            return Err(GalleryError::AlreadyEnrolled { path: self.path.clone(), names: clash });
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.sql(e))?;
        let mut n = 0;
        for ident in &bundle.identities {
            tx.execute(
                "INSERT INTO identities (name, created_at) VALUES (?1, ?2)",
                params![ident.name, ident.created_at],
            )
            .map_err(|e| self.sql(e))?;
            let id = tx.last_insert_rowid();
            let aad = self.template_aad(&ident.name);
            for t in &ident.templates {
                let bytes: Vec<u8> = t.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                tx.execute(
                    "INSERT INTO templates (identity_id, model_id, vector, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, self.model_id, self.key.seal(&bytes, &aad), t.source, t.created_at],
                )
                .map_err(|e| self.sql(e))?;
                n += 1;
            }
        }
        tx.commit().map_err(|e| self.sql(e))?;
        self.reload()?;
        Ok(n)
    }

    /// The identity whose closest template is most similar to `probe`, if any is enrolled.
    pub fn best_match(&self, probe: &Embedding) -> Option<Match> {
        let probe = unit(probe.0.clone());
        if probe.len() != self.dim {
            return None;
        }
        self.templates.best(&probe).map(|(i, similarity)| Match {
            name: self.names[i].clone(),
            // Two unit vectors' dot product in f32 rounds past 1 for the same face (1.0000002):
            // a cosine is shown, and compared, as one.
            similarity: similarity.clamp(-1.0, 1.0),
            reference: self.templates.row(i).to_vec(),
        })
    }

    /// Every identity with a template at or above `threshold` against `probe`, best first,
    /// one match (its best template) per identity.
    pub fn identities_matching(&self, probe: &Embedding, threshold: f32) -> Vec<Match> {
        let probe = unit(probe.0.clone());
        let mut best: Vec<Match> = Vec::new();
        if probe.len() != self.dim {
            return best;
        }
        for (i, similarity) in self.templates.scores(&probe).into_iter().enumerate() {
            let similarity = similarity.clamp(-1.0, 1.0);
            if similarity < threshold {
                continue;
            }
            let (name, v) = (&self.names[i], self.templates.row(i));
            match best.iter_mut().find(|m| &m.name == name) {
                Some(m) if m.similarity >= similarity => {}
                Some(m) => (m.similarity, m.reference) = (similarity, v.to_vec()),
                None => best.push(Match { name: name.clone(), similarity, reference: v.to_vec() }),
            }
        }
        best.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        best
    }

    pub fn list(&self) -> Result<Vec<Identity>, GalleryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT i.name, count(t.id), i.created_at FROM identities i
                 LEFT JOIN templates t ON t.identity_id = i.id GROUP BY i.id ORDER BY i.name",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Identity {
                    name: r.get(0)?,
                    templates: r.get::<_, i64>(1)? as usize,
                    enrolled_at: r.get(2)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Removes an identity and all its templates.
    pub fn remove(&mut self, name: &str) -> Result<(), GalleryError> {
        let n = self
            .conn
            .execute("DELETE FROM identities WHERE name = ?1", [name])
            .map_err(|e| self.sql(e))?;
        if n == 0 {
            return Err(GalleryError::UnknownIdentity {
                path: self.path.clone(),
                name: name.to_string(),
            });
        }
        let keep: Vec<bool> = self.names.iter().map(|n| n != name).collect();
        self.templates.retain(|i| keep[i]);
        self.names.retain(|n| n != name);
        Ok(())
    }

    /// The encoder id its templates are of.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of templates (an identity may have several).
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }
}

/// The `fleet_version` in a gallery's meta table (0 when it holds none).
fn fleet_version(conn: &Connection) -> rusqlite::Result<i64> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'fleet_version'", [], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// The vector scaled to unit length (a zero vector stays zero and matches nothing).
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_printable_nfc_and_bounded() {
        assert_eq!(normalise_name("  Zoë Ann ").unwrap(), "Zoë Ann");
        // "e" + combining diaeresis is the same name as the precomposed "ë".
        assert_eq!(normalise_name("Zoe\u{308}").unwrap(), "Zoë");
        for bad in ["", "   ", "eve\ngranted alice", "\u{1b}[2Jeve", "ali\u{202E}ce", "a\u{200B}b"]
        {
            assert!(normalise_name(bad).is_err(), "{bad:?}");
        }
        assert!(normalise_name(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(normalise_name(&"x".repeat(MAX_NAME_CHARS + 1)).unwrap_err().contains("101"));
    }
}
