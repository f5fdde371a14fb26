//! The decision journal: every decision in SQLite, WAL mode, one transaction per decision with
//! `synchronous = FULL`, so a decision that was committed survives a crash, a SIGKILL or a
//! power cut. No image is stored unless `daemon.store_crops` asks for the face crop: only
//! scores, names and the models and thresholds used.
//!
//! The journal is tamper-evident: every decision and audit record carries the hash of the one
//! before it in its table (see [`chain`]), so `edgeid journal verify` finds the first record
//! that was edited or removed. Anyone who can write the file can also recompute the whole
//! chain; the head hash, noted somewhere else (a ticket, a central log), is what proves that
//! did not happen, and it also shows records removed from the end.

use std::path::{Path, PathBuf};

use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use serde::Serialize;
use sha2::Digest;

use crate::decide::Decision;

pub mod anchor;
pub mod chain;

pub use chain::{Break, Chained, Verified};

/// The tables whose records are chained, and shipped (`edgeid ship`).
pub const CHAINED_TABLES: [&str; 2] = CHAINED;

/// The tables whose records are chained.
const CHAINED: [&str; 2] = ["decisions", "audits"];

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path} does not exist; it is created by `edgeid run` (see daemon.journal in the config)")]
    Missing { path: PathBuf },
    #[error("journal {path} is not an edgeid journal ({reason}); point daemon.journal at a journal file or a new path")]
    NotAJournal { path: PathBuf, reason: String },
    #[error("journal {path}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    /// The hash chain does not hold (a record edited or removed): nothing is appended to it.
    #[error("journal {path} fails verification: {table} record {id}: {reason}. Nothing is appended to a journal whose chain is broken: move the file aside (keep it as evidence; `edgeid journal verify` reads it) and start again, which creates a new one")]
    Broken { path: PathBuf, table: String, id: i64, reason: String },
    /// Records, and no anchor of their heads beside them (see [`anchor`]).
    #[error("journal {path} holds records but no head anchor {}: if an edgeid from before 2026-12-07 wrote it (they kept none), check it with `edgeid journal verify` and accept it as it stands with `edgeid journal anchor`; otherwise the anchor was removed, and records removed from the end would not show: keep both as evidence and start a new journal", anchor::path_for(path).display())]
    Unanchored { path: PathBuf },
    /// The anchor says the journal held records, and there is no journal.
    #[error("journal {path} is missing, but its head anchor {} says it held records up to id {last_id}: it was removed or moved. Restore it (with its anchor), or move the anchor aside as evidence to start a new journal", anchor::path_for(path).display())]
    Removed { path: PathBuf, last_id: i64 },
    #[error("journal head anchor {}: {reason}; restore it from a backup, or move it and the journal aside as evidence and start a new journal", anchor::path_for(path).display())]
    BadAnchor { path: PathBuf, reason: String },
    /// The file the writer holds is no longer the one at its path (removed, or replaced).
    #[error("journal {path} {reason} while edgeid held it open: decisions written now would go to a file nobody can read. No decision is taken; restore the journal and its anchor, then restart edgeid")]
    Gone { path: PathBuf, reason: String },
}

/// A journaled decision with its row id.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: i64,
    #[serde(flatten)]
    pub decision: Decision,
}

/// An operator's mark that a decision was wrong (a stranger let in, a member kept out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WrongMark {
    pub decision_id: i64,
    pub time_ms: i64,
    /// The API token's name that marked it.
    pub marked_by: String,
    pub note: String,
    /// Who it really was, when the operator knows.
    pub truth: Option<String>,
}

pub struct Journal {
    conn: Connection,
    path: PathBuf,
    /// A writer's chain heads as it last wrote them (`None` for a reader): what the anchor file
    /// must hold, should it go missing while the writer runs.
    heads: Option<std::cell::RefCell<anchor::Heads>>,
    /// The device and inode of the file at `path` when a writer opened it.
    place: Option<(u64, u64)>,
}

/// Whether `table` has a column `column` (journals of older versions lack some).
fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
        [column],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The device and inode of the file at `path`.
fn place_of(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl Journal {
    /// Opens the journal for writing, creating it if needed. Refused where it disagrees with
    /// its head anchor, or holds records without one (see [`anchor`]).
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        Journal::open_with(path, true, None)
    }

    /// Opens a journal that has no head anchor (one written before they were kept) for writing,
    /// after verifying its chains, and anchors its heads as they stand. An existing anchor is
    /// checked as by [`Journal::open`], never replaced.
    pub fn accept_unanchored(path: &Path) -> Result<(Journal, Vec<Verified>), JournalError> {
        if !path.exists() {
            return Err(JournalError::Missing { path: path.to_path_buf() });
        }
        let mut verified = Vec::new();
        let journal = Journal::open_with(path, true, Some(&mut verified))?;
        // Verified on the way in where it was anchored now; an anchored one is checked here.
        if verified.is_empty() {
            verified = journal.verify()?;
        }
        Ok((journal, verified))
    }

    /// Opens an existing journal to read decisions and write beside them: outputs' cursors
    /// (`outputs`) and operators' marks (the operator API). No decision is written through
    /// it. The daemon's writer has created those tables by then.
    pub fn open_side(path: &Path) -> Result<Journal, JournalError> {
        let j = Journal::open_existing(path)?;
        j.conn.pragma_update(None, "query_only", false).map_err(|e| j.sql(e))?;
        Ok(j)
    }

    /// The last record output `name` has dealt with, if it ever ran.
    pub fn cursor(&self, name: &str) -> Result<Option<i64>, JournalError> {
        self.conn
            .query_row("SELECT last_id FROM output_cursors WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Marks every record up to `id` dealt with by output `name` (committed at once).
    pub fn set_cursor(&self, name: &str, id: i64) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT INTO output_cursors (name, last_id) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET last_id = excluded.last_id",
                params![name, id],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Opens an existing journal for reading.
    pub fn open_existing(path: &Path) -> Result<Journal, JournalError> {
        if !path.exists() {
            return Err(JournalError::Missing { path: path.to_path_buf() });
        }
        Journal::open_with(path, false, None)
    }

    /// `accepted`: a journal with records and no anchor is verified into it and anchored,
    /// instead of refused.
    fn open_with(
        path: &Path,
        create: bool,
        accepted: Option<&mut Vec<Verified>>,
    ) -> Result<Journal, JournalError> {
        let not = |reason: String| JournalError::NotAJournal { path: path.to_path_buf(), reason };
        let anchor_path = anchor::path_for(path);
        let anchored = anchor::read(&anchor_path)
            .map_err(|reason| JournalError::BadAnchor { path: path.to_path_buf(), reason })?;
        if create && !path.exists() {
            // A new journal where an anchor says one was: it was removed, not never made.
            if let Some(last_id) = anchored
                .as_ref()
                .and_then(|h| h.values().map(|(id, _)| *id).max())
                .filter(|&n| n > 0)
            {
                return Err(JournalError::Removed { path: path.to_path_buf(), last_id });
            }
        }
        if create {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| not(format!("cannot create its folder: {e}")))?;
            }
            // Owner-only from the start (SQLite gives its WAL files the same mode): the journal
            // names people and when they came and went.
            if !path.exists() {
                crate::util::create_private(path)
                    .map_err(|e| not(format!("cannot create it: {e}")))?;
            }
        }
        let flags = if create {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|source| JournalError::Sqlite { path: path.to_path_buf(), source })?;
        // The daemon's writer and an audit (or `edgeid journal`) may hold the file at once; WAL
        // lets them, and a writer waits its turn instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|source| JournalError::Sqlite { path: path.to_path_buf(), source })?;
        let has_table: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'decisions'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| not(e.to_string()))?;
        if has_table == 0 {
            let others: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| not(e.to_string()))?;
            if others > 0 || !create {
                return Err(not("it has no decisions table".into()));
            }
        }
        if !create {
            // Reading (tail, export, verify) never writes: no schema, no chaining of records
            // found unchained. Verifying used to chain such a table as it stood, so removing a
            // table's chain columns made `verify` seal whatever had been edited.
            conn.pragma_update(None, "query_only", true)
                .map_err(|source| JournalError::Sqlite { path: path.to_path_buf(), source })?;
            return Ok(Journal { conn, path: path.to_path_buf(), heads: None, place: None });
        }
        // Chain heads are kept since 2026-12: a journal that has them (or an anchor) was
        // chained from its start, so a table of it without chain columns had them removed (see
        // `upgrade`).
        let had_heads =
            chain::heads_kept(&conn).map_err(|e| not(e.to_string()))? || anchored.is_some();
        // secure_delete: freed space is zeroed, so a record rewritten when it is chained (or a
        // crop deleted) leaves no stale copy in the file.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS decisions (
                 id INTEGER PRIMARY KEY,
                 time_ms INTEGER NOT NULL,
                 camera TEXT NOT NULL,
                 track_id INTEGER NOT NULL,
                 outcome TEXT NOT NULL,
                 reason TEXT,
                 identity TEXT,
                 similarity REAL,
                 record TEXT NOT NULL,
                 crop BLOB,
                 prev_hash TEXT,
                 hash TEXT,
                 crop_sha256 TEXT);
             CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time_ms);
             CREATE TABLE IF NOT EXISTS audits (
                 id INTEGER PRIMARY KEY,
                 time_ms INTEGER NOT NULL,
                 encoder TEXT NOT NULL,
                 alert INTEGER NOT NULL,
                 record TEXT NOT NULL,
                 prev_hash TEXT,
                 hash TEXT);
             CREATE TABLE IF NOT EXISTS audit_scores (
                 key TEXT PRIMARY KEY,
                 scores TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS chain_heads (
                 tbl TEXT PRIMARY KEY,
                 last_id INTEGER NOT NULL,
                 head TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS output_cursors (
                 name TEXT PRIMARY KEY,
                 last_id INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS wrong_marks (
                 id INTEGER PRIMARY KEY,
                 decision_id INTEGER NOT NULL,
                 time_ms INTEGER NOT NULL,
                 marked_by TEXT NOT NULL,
                 note TEXT NOT NULL,
                 truth TEXT);",
        )
        .map_err(|source| JournalError::Sqlite { path: path.to_path_buf(), source })?;
        if !has_column(&conn, "decisions", "crop_sha256").map_err(|e| not(e.to_string()))? {
            // Journals from before crop retention: the column, NULL in their records, leaves
            // their hashes as they were.
            conn.execute_batch("ALTER TABLE decisions ADD COLUMN crop_sha256 TEXT")
                .map_err(|source| JournalError::Sqlite { path: path.to_path_buf(), source })?;
        }
        let place = place_of(path).map_err(|e| not(format!("cannot read its inode: {e}")))?;
        let mut journal =
            Journal { conn, path: path.to_path_buf(), heads: None, place: Some(place) };
        for table in CHAINED {
            journal.upgrade(table, had_heads)?;
            // A journal from before chain heads were kept starts from its last record as it is.
            journal
                .conn
                .execute(
                    &format!(
                        "INSERT OR IGNORE INTO chain_heads (tbl, last_id, head)
                         SELECT '{table}', coalesce(max(id), 0),
                                coalesce((SELECT hash FROM {table} ORDER BY id DESC LIMIT 1), ?1)
                         FROM {table}"
                    ),
                    [chain::GENESIS],
                )
                .map_err(|e| journal.sql(e))?;
        }
        let heads = match anchored {
            Some(heads) => {
                journal.check_anchor(&heads)?;
                heads
            }
            None => {
                let records: i64 = CHAINED
                    .iter()
                    .map(|t| {
                        journal.conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| {
                            r.get::<_, i64>(0)
                        })
                    })
                    .sum::<rusqlite::Result<i64>>()
                    .map_err(|e| journal.sql(e))?;
                if records > 0 {
                    // Accepted only as it stands, sound: an anchor never vouches for an edit.
                    let out = accepted
                        .ok_or_else(|| JournalError::Unanchored { path: path.to_path_buf() })?;
                    *out = journal.ensure_sound()?;
                }
                anchor::heads_of(&journal.conn, &CHAINED).map_err(|e| journal.sql(e))?
            }
        };
        journal.heads = Some(std::cell::RefCell::new(heads));
        journal.write_anchor(None)?;
        Ok(journal)
    }

    /// Refuses the journal where a table disagrees with its anchored head.
    fn check_anchor(&self, heads: &anchor::Heads) -> Result<(), JournalError> {
        let anchor_path = anchor::path_for(&self.path);
        for table in CHAINED {
            let Some((id, hash)) = heads.get(table) else { continue };
            if let Some(b) = anchor::disagreement(&self.conn, table, (*id, hash), &anchor_path)
                .map_err(|e| self.sql(e))?
            {
                return Err(JournalError::Broken {
                    path: self.path.clone(),
                    table: table.to_string(),
                    id: b.id,
                    reason: b.reason,
                });
            }
        }
        Ok(())
    }

    /// Writes the writer's heads to the anchor, `table`'s set to `head` first.
    fn write_anchor(&self, head: Option<(&str, i64, &str)>) -> Result<(), JournalError> {
        let Some(heads) = &self.heads else { return Ok(()) };
        let mut heads = heads.borrow_mut();
        if let Some((table, id, hash)) = head {
            heads.insert(table.to_string(), (id, hash.to_string()));
        }
        anchor::write(&anchor::path_for(&self.path), &heads).map_err(|e| JournalError::BadAnchor {
            path: self.path.clone(),
            reason: format!("cannot write it: {e}"),
        })
    }

    /// Whether the file this writer holds is still the one at its path: a journal removed (or
    /// replaced) under a running daemon would take decisions nobody can read.
    pub fn in_place(&self) -> Result<(), JournalError> {
        let Some(place) = self.place else { return Ok(()) };
        let gone = |reason: &str| {
            Err(JournalError::Gone { path: self.path.clone(), reason: reason.to_string() })
        };
        match place_of(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone("was removed"),
            Err(e) => gone(&format!("cannot be looked at ({e})")),
            Ok(now) if now != place => gone("was replaced by another file"),
            Ok(_) => Ok(()),
        }
    }

    /// Verifies every chain and refuses a journal whose chain is broken, so that the daemon
    /// never appends to one (an appended record would chain onto whatever was edited, and
    /// records removed from the end would leave no trace). Returns what was verified.
    pub fn ensure_sound(&self) -> Result<Vec<Verified>, JournalError> {
        let tables = self.verify()?;
        if let Some((t, b)) = tables.iter().find_map(|t| t.broken.as_ref().map(|b| (t, b))) {
            return Err(JournalError::Broken {
                path: self.path.clone(),
                table: t.table.clone(),
                id: b.id,
                reason: b.reason.clone(),
            });
        }
        Ok(tables)
    }

    /// A journal written before records were chained gets the two columns, and its records
    /// are chained as they stand (once, in one transaction). In a journal that keeps chain
    /// heads (`had_heads`), missing columns were removed: refused, never chained again (that
    /// would seal whatever had been edited).
    fn upgrade(&self, table: &str, had_heads: bool) -> Result<(), JournalError> {
        if has_column(&self.conn, table, "hash").map_err(|e| self.sql(e))? {
            return Ok(());
        }
        if had_heads {
            let v = chain::unchained(&self.conn, table).map_err(|e| self.sql(e))?;
            if let Some(b) = v.broken {
                return Err(JournalError::Broken {
                    path: self.path.clone(),
                    table: table.to_string(),
                    id: b.id,
                    reason: b.reason,
                });
            }
        }
        let path = self.path.clone();
        let sql = |source| JournalError::Sqlite { path: path.clone(), source };
        let tx =
            Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(sql)?;
        tx.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN prev_hash TEXT; ALTER TABLE {table} ADD COLUMN hash TEXT;"
        ))
        .map_err(sql)?;
        let ids: Vec<i64> = {
            let mut stmt =
                tx.prepare(&format!("SELECT id FROM {table} ORDER BY id")).map_err(sql)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(sql)?;
            rows.collect::<Result<_, _>>().map_err(sql)?
        };
        let mut prev = chain::GENESIS.to_string();
        for id in ids {
            prev = chain::seal(&tx, table, id, &prev).map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Inserts one record with `insert` (which must not set `id`, `prev_hash` or `hash`) and
    /// chains it to the table's last record, in one transaction that holds the write lock from
    /// the start, so two writers cannot chain onto the same record.
    fn append_chained(
        &self,
        table: &str,
        insert: impl FnOnce(&Transaction) -> rusqlite::Result<()>,
    ) -> Result<i64, JournalError> {
        let path = self.path.clone();
        let sql = |source| JournalError::Sqlite { path: path.clone(), source };
        self.in_place()?;
        let tx =
            Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(sql)?;
        // The last record must be the one the chain head names, and the one its anchor outside
        // the file names (or a later one: another writer's): otherwise records were removed
        // from the end, and the new record would take a removed one's id and hide the cut. An
        // anchor removed while this writer runs is checked as this writer last wrote it.
        let anchor_path = anchor::path_for(&self.path);
        let anchored = match anchor::read(&anchor_path) {
            Ok(Some(heads)) => Some(heads),
            Ok(None) => self.heads.as_ref().map(|h| h.borrow().clone()),
            Err(reason) => return Err(JournalError::BadAnchor { path: self.path.clone(), reason }),
        };
        let head = anchored.as_ref().and_then(|h| h.get(table)).cloned();
        let broken = match chain::head_mismatch(&tx, table).map_err(sql)? {
            Some(b) => Some(b),
            None => match &head {
                Some((id, hash)) => {
                    anchor::disagreement(&tx, table, (*id, hash), &anchor_path).map_err(sql)?
                }
                None => None,
            },
        };
        if let Some(b) = broken {
            return Err(JournalError::Broken {
                path: self.path.clone(),
                table: table.to_string(),
                id: b.id,
                reason: b.reason,
            });
        }
        let prev: String = tx
            .query_row(&format!("SELECT hash FROM {table} ORDER BY id DESC LIMIT 1"), [], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()
            .map_err(sql)?
            .flatten()
            .unwrap_or_else(|| chain::GENESIS.to_string());
        insert(&tx).map_err(sql)?;
        let id = tx.last_insert_rowid();
        let hash = chain::seal(&tx, table, id, &prev).map_err(sql)?;
        tx.execute(
            "INSERT OR REPLACE INTO chain_heads (tbl, last_id, head) VALUES (?1, ?2, ?3)",
            params![table, id, hash],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        self.write_anchor(Some((table, id, &hash)))?;
        Ok(id)
    }

    /// Walks every chained table and reports the first broken link of each.
    pub fn verify(&self) -> Result<Vec<Verified>, JournalError> {
        let anchor_path = anchor::path_for(&self.path);
        let anchored = anchor::read(&anchor_path)
            .map_err(|reason| JournalError::BadAnchor { path: self.path.clone(), reason })?;
        CHAINED
            .iter()
            .map(|t| {
                let column = |name: &str| has_column(&self.conn, t, name).map_err(|e| self.sql(e));
                let (has_id, has_hash) = (column("id")?, column("hash")?);
                if has_id && !has_hash {
                    return chain::unchained(&self.conn, t).map_err(|e| self.sql(e));
                }
                if !has_id {
                    // A journal from before this table existed.
                    return Ok(Verified {
                        table: t.to_string(),
                        records: 0,
                        head: chain::GENESIS.to_string(),
                        broken: None,
                    });
                }
                let mut v = chain::verify(&self.conn, t).map_err(|e| self.sql(e))?;
                if v.broken.is_none() {
                    v.broken = chain::head_mismatch(&self.conn, t).map_err(|e| self.sql(e))?;
                }
                if let (None, Some((id, hash))) =
                    (&v.broken, anchored.as_ref().and_then(|h| h.get(*t)))
                {
                    v.broken = anchor::disagreement(&self.conn, t, (*id, hash), &anchor_path)
                        .map_err(|e| self.sql(e))?;
                }
                Ok(v)
            })
            .collect()
    }

    /// Up to `limit` records of the chained `table` after record `after`, checked against
    /// `prev` (that record's hash as the reader holds it) and their own hashes: the records
    /// that continue the chain unchanged, and the first that does not (see `chain::walk_after`).
    pub fn chained_after(
        &self,
        table: &str,
        after: i64,
        prev: &str,
        limit: usize,
    ) -> Result<(Vec<Chained>, Option<Break>), JournalError> {
        assert!(CHAINED.contains(&table), "{table} is not a chained table");
        chain::walk_after(&self.conn, table, after, prev, limit).map_err(|e| self.sql(e))
    }

    /// The id and hash of the chained `table`'s last record, as the table holds it.
    pub fn last_record(&self, table: &str) -> Result<(i64, String), JournalError> {
        assert!(CHAINED.contains(&table), "{table} is not a chained table");
        chain::last(&self.conn, table).map_err(|e| self.sql(e))
    }

    /// Records a generalization audit (its full report as JSON); returns its id.
    pub fn append_audit(
        &self,
        time_ms: i64,
        encoder: &str,
        alert: bool,
        record: &str,
    ) -> Result<i64, JournalError> {
        self.append_chained("audits", |tx| {
            tx.execute(
                "INSERT INTO audits (time_ms, encoder, alert, record) VALUES (?1, ?2, ?3, ?4)",
                params![time_ms, encoder, alert as i64, record],
            )
            .map(drop)
        })
    }

    /// Every audit's report (JSON), oldest first.
    pub fn audits(&self) -> Result<Vec<String>, JournalError> {
        let mut stmt =
            self.conn.prepare("SELECT record FROM audits ORDER BY id").map_err(|e| self.sql(e))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// A model's audit scores kept under `key` (model hash, set hash, shots), if any.
    pub fn cached_scores(&self, key: &str) -> Result<Option<String>, JournalError> {
        self.conn
            .query_row("SELECT scores FROM audit_scores WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(e))
    }

    pub fn cache_scores(&self, key: &str, scores: &str) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO audit_scores (key, scores) VALUES (?1, ?2)",
                params![key, scores],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    fn sql(&self, source: rusqlite::Error) -> JournalError {
        JournalError::Sqlite { path: self.path.clone(), source }
    }

    /// Appends and commits one decision; returns its id.
    pub fn append(&self, d: &Decision) -> Result<i64, JournalError> {
        let record = serde_json::to_string(d).expect("a decision serialises");
        self.append_chained("decisions", |tx| {
            tx.execute(
                "INSERT INTO decisions (time_ms, camera, track_id, outcome, reason, identity, similarity, record, crop, crop_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    d.time_ms,
                    d.camera,
                    d.track_id as i64,
                    d.outcome.as_str(),
                    (!d.reasons.is_empty()).then(|| d.reasons.join(",")),
                    d.identity,
                    d.similarity.map(|s| s as f64),
                    record,
                    d.crop_png,
                    d.crop_png.as_ref().map(|png| crate::util::hex(&sha2::Sha256::digest(png)))
                ],
            )
            .map(drop)
        })
    }

    /// Removes stored face crops taken before `before_ms`, then the oldest ones until the rest
    /// take at most `max_bytes`. Only crops recorded with their digest are removed (a record's
    /// hash covers the digest, so it still verifies); the freed pages are zeroed
    /// (`secure_delete`) and reused by later crops, so the file stops growing. Returns the
    /// crops removed and the bytes they took.
    pub fn prune_crops(
        &self,
        before_ms: i64,
        max_bytes: u64,
    ) -> Result<(usize, u64), JournalError> {
        let path = self.path.clone();
        let sql = |source| JournalError::Sqlite { path: path.clone(), source };
        let tx =
            Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(sql)?;
        let kept = "crop IS NOT NULL AND crop_sha256 IS NOT NULL";
        let (mut n, mut bytes): (i64, i64) = tx
            .query_row(
                &format!("SELECT count(*), coalesce(sum(length(crop)), 0) FROM decisions WHERE {kept} AND time_ms < ?1"),
                [before_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql)?;
        tx.execute(
            &format!("UPDATE decisions SET crop = NULL WHERE {kept} AND time_ms < ?1"),
            [before_ms],
        )
        .map_err(sql)?;
        let total: i64 = tx
            .query_row(
                &format!("SELECT coalesce(sum(length(crop)), 0) FROM decisions WHERE {kept}"),
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let mut over = total - max_bytes as i64;
        if over > 0 {
            let oldest: Vec<(i64, i64)> = {
                let mut stmt = tx
                    .prepare(&format!(
                        "SELECT id, length(crop) FROM decisions WHERE {kept} ORDER BY id"
                    ))
                    .map_err(sql)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(sql)?;
                rows.collect::<Result<_, _>>().map_err(sql)?
            };
            for (id, len) in oldest {
                if over <= 0 {
                    break;
                }
                tx.execute("UPDATE decisions SET crop = NULL WHERE id = ?1", [id]).map_err(sql)?;
                (n, bytes, over) = (n + 1, bytes + len, over - len);
            }
        }
        tx.commit().map_err(sql)?;
        Ok((n as usize, bytes as u64))
    }

    /// Decisions at or after `since_ms`, oldest first.
    pub fn since(&self, since_ms: i64) -> Result<Vec<Entry>, JournalError> {
        self.query("SELECT id, record FROM decisions WHERE time_ms >= ?1 ORDER BY id", [since_ms])
    }

    /// Up to `limit` decisions after record `id`, oldest first: what a reader that has seen
    /// everything up to `id` reads next. Record ids only grow (the chain forbids reuse), so
    /// unlike times, which several records can share, an id is an exact place to resume from.
    pub fn after(&self, id: i64, limit: usize) -> Result<Vec<Entry>, JournalError> {
        self.query(
            "SELECT id, record FROM decisions WHERE id > ?1 ORDER BY id LIMIT ?2",
            params![id, limit.min(i64::MAX as usize) as i64],
        )
    }

    /// The id of the last decision (0 when there is none).
    pub fn last_id(&self) -> Result<i64, JournalError> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) FROM decisions", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    /// The last `n` decisions, oldest first.
    pub fn tail(&self, n: usize) -> Result<Vec<Entry>, JournalError> {
        let mut rows = self.query(
            "SELECT id, record FROM decisions ORDER BY id DESC LIMIT ?1",
            [n.min(i64::MAX as usize) as i64],
        )?;
        rows.reverse();
        Ok(rows)
    }

    /// The decisions a `SELECT id, record …` finds (statements cached: `after` runs every
    /// 100 ms for each output).
    fn query(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Entry>, JournalError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(args, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.sql(e))?;
        rows.map(|r| r.map_err(|e| self.sql(e)).and_then(|(id, record)| self.entry(id, &record)))
            .collect()
    }

    fn entry(&self, id: i64, record: &str) -> Result<Entry, JournalError> {
        let decision = serde_json::from_str(record).map_err(|e| JournalError::NotAJournal {
            path: self.path.clone(),
            reason: format!("record {id} is not a decision record: {e}"),
        })?;
        Ok(Entry { id, decision })
    }

    /// `PRAGMA integrity_check`: "ok" for a sound file.
    pub fn integrity_check(&self) -> Result<String, JournalError> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| self.sql(e))
    }

    /// Records an operator's word that decision `id` was wrong (`truth`: who it really was,
    /// if known), kept for calibration beside the chained decisions, which stay as they were.
    /// `None` when there is no decision `id`.
    pub fn mark_wrong(
        &self,
        id: i64,
        marked_by: &str,
        note: &str,
        truth: Option<&str>,
    ) -> Result<Option<WrongMark>, JournalError> {
        let exists: i64 = self
            .conn
            .query_row("SELECT count(*) FROM decisions WHERE id = ?1", [id], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if exists == 0 {
            return Ok(None);
        }
        let time_ms = crate::clock::now_ms();
        self.conn
            .execute(
                "INSERT INTO wrong_marks (decision_id, time_ms, marked_by, note, truth)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, time_ms, marked_by, note, truth],
            )
            .map_err(|e| self.sql(e))?;
        let mark = WrongMark {
            decision_id: id,
            time_ms,
            marked_by: marked_by.to_string(),
            note: note.to_string(),
            truth: truth.map(str::to_string),
        };
        Ok(Some(mark))
    }

    /// The marks on decisions `from..=to`, oldest first (none in a journal from before marks).
    pub fn wrong_marks(&self, from: i64, to: i64) -> Result<Vec<WrongMark>, JournalError> {
        let has_table: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'wrong_marks'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        if has_table == 0 {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT decision_id, time_ms, marked_by, note, truth FROM wrong_marks
                 WHERE decision_id BETWEEN ?1 AND ?2 ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([from, to], |r| {
                Ok(WrongMark {
                    decision_id: r.get(0)?,
                    time_ms: r.get(1)?,
                    marked_by: r.get(2)?,
                    note: r.get(3)?,
                    truth: r.get(4)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.map(|r| r.map_err(|e| self.sql(e))).collect()
    }

    /// The face crop stored with decision `id` (PNG), if any.
    pub fn crop(&self, id: i64) -> Result<Option<Vec<u8>>, JournalError> {
        self.conn
            .query_row("SELECT crop FROM decisions WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sql(e))
    }

    /// Decisions that carry a stored face crop.
    pub fn crops_stored(&self) -> Result<i64, JournalError> {
        self.conn
            .query_row("SELECT count(*) FROM decisions WHERE crop IS NOT NULL", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    pub fn count(&self) -> Result<i64, JournalError> {
        self.conn
            .query_row("SELECT count(*) FROM decisions", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }
}
