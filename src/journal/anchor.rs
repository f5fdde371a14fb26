//! The journal's chain heads, anchored outside the journal file.
//!
//! The `chain_heads` table shows records removed from the end only while it is left alone: an
//! adversarial run deleted the tail rows and that row, and the daemon appended with the removed
//! ids (outputs never delivered them; `journal verify` said intact), and dropping the chain
//! columns and table had an edited journal chained again as it stood. So each writer also
//! writes the heads to a file beside the journal (`<journal>.head`, replaced whole after every
//! append), and a writer refuses to append to, or chain again, a journal that has fewer records
//! than its anchor names, or another record where the anchor's last one was, or records and no
//! anchor at all. Whoever can remove both files can still start over; the fleet's copy (and
//! a head noted elsewhere) is what shows that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::chain::{self, Break, GENESIS};

/// Each chained table's last record id and hash, as last written.
pub type Heads = BTreeMap<String, (i64, String)>;

const MAGIC: &str = "edgeid journal heads v1";

/// Where the anchor of the journal at `journal` is kept.
pub fn path_for(journal: &Path) -> PathBuf {
    let mut name = journal.file_name().unwrap_or_default().to_owned();
    name.push(".head");
    journal.with_file_name(name)
}

/// The anchor at `path`, if there is one; an unreadable or malformed one is an error.
pub fn read(path: &Path) -> Result<Option<Heads>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("its first line is not `{MAGIC}`"));
    }
    let mut heads = Heads::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [table, id, hash] = parts[..] else {
            return Err(format!("line `{line}` is not `table last_id hash`"));
        };
        let id = id.parse::<i64>().map_err(|_| format!("line `{line}`: the id is not a number"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("line `{line}`: the hash is not 64 hex digits"));
        }
        heads.insert(table.to_string(), (id, hash.to_string()));
    }
    Ok(Some(heads))
}

/// Writes `heads` to `path` whole (a crash leaves the old anchor or the new one): a file of
/// this writer's own beside it (two writers, the daemon's and an audit's, may write at once),
/// synced, renamed over it.
pub fn write(path: &Path, heads: &Heads) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut text = format!("{MAGIC}\n");
    for (table, (id, hash)) in heads {
        text.push_str(&format!("{table} {id} {hash}\n"));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.{}.writing", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed)));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Where `table` disagrees with its anchored head `(id, hash)`: fewer records than the anchor
/// names, or another record (or none) at the anchor's id. A journal ahead of its anchor is
/// sound when the anchor's record is still there, unchanged: the anchor is written after each
/// commit, so a crash between the two, or another writer's append, leaves it one behind.
pub fn disagreement(
    conn: &Connection,
    table: &str,
    (head_id, head_hash): (i64, &str),
    anchor: &Path,
) -> rusqlite::Result<Option<Break>> {
    let (last_id, _) = chain::last(conn, table)?;
    if last_id < head_id {
        return Ok(Some(Break {
            id: last_id + 1,
            reason: format!(
                "its head anchor {} says records up to id {head_id} were written, but the last \
                 is {last_id}: records {}..={head_id} were removed from the end",
                anchor.display(),
                last_id + 1
            ),
        }));
    }
    if head_id == 0 {
        return Ok(None);
    }
    let there: Option<Option<String>> = conn
        .query_row(&format!("SELECT hash FROM {table} WHERE id = ?1"), [head_id], |r| r.get(0))
        .optional()?;
    let there = there.flatten();
    if there.as_deref() == Some(head_hash) && head_hash != GENESIS {
        return Ok(None);
    }
    Ok(Some(Break {
        id: head_id,
        reason: format!(
            "record {head_id} is not the one its head anchor {} names (hash {head_hash}): the \
             record was {}",
            anchor.display(),
            if there.is_some() { "rewritten" } else { "removed" }
        ),
    }))
}

/// The heads of a journal as it stands (its last record in each of `tables`).
pub fn heads_of(conn: &Connection, tables: &[&str]) -> rusqlite::Result<Heads> {
    tables.iter().map(|t| Ok((t.to_string(), chain::last(conn, t)?))).collect()
}
