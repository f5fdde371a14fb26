//! The hash chain over a journal table's records.
//!
//! A record's hash is SHA-256 over the previous record's hash and every non-NULL column of the
//! record (name and value, typed, length-prefixed), read back generically: a column added later
//! is covered without touching this code, and, NULL in older records, leaves their hashes
//! valid. A value set to or from NULL still changes the hash. The first record chains to
//! [`GENESIS`].

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What the first record of a table chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One table's verification.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verified {
    pub table: String,
    /// Records checked (up to the first break, included).
    pub records: usize,
    /// The last record's hash: note it elsewhere to show later that nothing was rewritten or
    /// removed from the end.
    pub head: String,
    pub broken: Option<Break>,
}

/// The first record whose link does not hold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Break {
    pub id: i64,
    pub reason: String,
}

/// Computes and stores `id`'s chain columns from `prev`; returns its hash.
pub(super) fn seal(
    conn: &Connection,
    table: &str,
    id: i64,
    prev: &str,
) -> rusqlite::Result<String> {
    let hash = conn.query_row(&format!("SELECT * FROM {table} WHERE id = ?1"), [id], |row| {
        Ok(digest(table, prev, row))
    })?;
    conn.execute(
        &format!("UPDATE {table} SET prev_hash = ?1, hash = ?2 WHERE id = ?3"),
        params![prev, hash, id],
    )?;
    Ok(hash)
}

/// Walks `table` in id order and stops at the first record that was edited (its hash does not
/// match its content) or whose predecessor was edited or removed (its link does not match).
pub(super) fn verify(conn: &Connection, table: &str) -> rusqlite::Result<Verified> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    let mut v =
        Verified { table: table.to_string(), records: 0, head: GENESIS.to_string(), broken: None };
    while let Some(row) = rows.next()? {
        v.records += 1;
        let id: i64 = row.get("id")?;
        let stored_prev: Option<String> = row.get("prev_hash")?;
        let stored: Option<String> = row.get("hash")?;
        let reason = if stored_prev.as_deref() != Some(v.head.as_str()) {
            Some(if v.records == 1 {
                "the first record does not start the chain: records before it were removed".into()
            } else {
                "its link does not match the record before it: a record between them was \
                 removed, or the link edited"
                    .into()
            })
        } else if stored.as_deref() != Some(digest(table, &v.head, row).as_str()) {
            Some("its content does not match its hash: the record was edited".into())
        } else {
            None
        };
        if let Some(reason) = reason {
            v.broken = Some(Break { id, reason });
            return Ok(v);
        }
        v.head = stored.unwrap_or_default();
    }
    Ok(v)
}

/// A record as it is shipped: its place in the chain and its content (the JSON record).
#[derive(Debug, Clone, PartialEq)]
pub struct Chained {
    pub id: i64,
    pub time_ms: i64,
    pub record: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Up to `limit` records of `table` after `after`, each checked as [`verify`] checks it, the
/// first linking to `prev` (the hash of record `after` as someone else holds it): the records
/// up to the first that does not hold, and that one's break. So a reader that resumes from
/// its own copy of the chain takes only records that continue it unchanged.
pub(super) fn walk_after(
    conn: &Connection,
    table: &str,
    after: i64,
    prev: &str,
    limit: usize,
) -> rusqlite::Result<(Vec<Chained>, Option<Break>)> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT * FROM {table} WHERE id > ?1 ORDER BY id LIMIT ?2"))?;
    let mut rows = stmt.query(params![after, limit.min(i64::MAX as usize) as i64])?;
    let (mut out, mut head) = (Vec::new(), prev.to_string());
    while let Some(row) = rows.next()? {
        let id: i64 = row.get("id")?;
        let stored_prev: Option<String> = row.get("prev_hash")?;
        let stored: Option<String> = row.get("hash")?;
        let reason = if stored_prev.as_deref() != Some(head.as_str()) {
            Some(format!(
                "it does not link to record {} as shipped before: the records from there were \
                 removed, edited or rewritten after they were shipped",
                out.last().map_or(after, |c: &Chained| c.id)
            ))
        } else if stored.as_deref() != Some(digest(table, &head, row).as_str()) {
            Some("its content does not match its hash: the record was edited".into())
        } else {
            None
        };
        if let Some(reason) = reason {
            return Ok((out, Some(Break { id, reason })));
        }
        let hash = stored.unwrap_or_default();
        out.push(Chained {
            id,
            time_ms: row.get("time_ms")?,
            record: row.get("record")?,
            prev_hash: std::mem::replace(&mut head, hash.clone()),
            hash,
        });
    }
    Ok((out, None))
}

/// The id and hash of `table`'s last record as the table holds it ((0, GENESIS) when empty).
pub(super) fn last(conn: &Connection, table: &str) -> rusqlite::Result<(i64, String)> {
    Ok(conn
        .query_row(&format!("SELECT id, hash FROM {table} ORDER BY id DESC LIMIT 1"), [], |r| {
            Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default()))
        })
        .optional()?
        .unwrap_or((0, GENESIS.to_string())))
}

/// A table without chain columns (written before records were chained and never opened for
/// writing since, or its columns removed): nothing in it can be vouched for, so it is broken at
/// its first record.
pub(super) fn unchained(conn: &Connection, table: &str) -> rusqlite::Result<Verified> {
    let (records, first): (i64, Option<i64>) =
        conn.query_row(&format!("SELECT count(*), min(id) FROM {table}"), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(Verified {
        table: table.to_string(),
        records: records as usize,
        head: GENESIS.to_string(),
        broken: first.map(|id| Break {
            id,
            reason:
                "the table has no chain columns: it was never chained, or its chain was removed"
                    .into(),
        }),
    })
}

/// Where `table`'s last record is not the one its chain head (table `chain_heads`, updated
/// with every append) names: records were removed from the end, or the head rewritten. `None`
/// where they agree or the journal predates chain heads.
pub(super) fn head_mismatch(conn: &Connection, table: &str) -> rusqlite::Result<Option<Break>> {
    if !heads_kept(conn)? {
        return Ok(None);
    }
    let head: Option<(i64, String)> = conn
        .query_row("SELECT last_id, head FROM chain_heads WHERE tbl = ?1", [table], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((head_id, head_hash)) = head else { return Ok(None) };
    let (last_id, last_hash) = last(conn, table)?;
    if (last_id, last_hash.as_str()) == (head_id, head_hash.as_str()) {
        return Ok(None);
    }
    let reason = if last_id < head_id {
        format!(
            "the journal wrote records up to id {head_id} but its last is {last_id}: records \
             {}..={head_id} were removed from the end",
            last_id + 1
        )
    } else {
        format!(
            "the last record (id {last_id}) is not the one the chain head names (id {head_id}, \
             hash {head_hash}): the end of the table or the head was rewritten"
        )
    };
    let id = if last_id == head_id { last_id } else { last_id.min(head_id) + 1 };
    Ok(Some(Break { id, reason }))
}

/// Whether the journal keeps chain heads (journals written since 2026-12 do).
pub(super) fn heads_kept(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'chain_heads'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn digest(table: &str, prev: &str, row: &rusqlite::Row) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"edgeid journal chain v1");
    field(table.as_bytes());
    field(prev.as_bytes());
    let stmt = row.as_ref();
    // A crop recorded with its digest is covered by the digest, not its bytes, so that the crop
    // can be removed (retention) and the record still verifies. Crops from before the digest
    // column are covered by their bytes, as they were chained.
    let crop_digested = stmt
        .column_index("crop_sha256")
        .is_ok_and(|i| !matches!(row.get_ref(i), Ok(ValueRef::Null)));
    for i in 0..stmt.column_count() {
        let name = stmt.column_name(i).unwrap_or_default();
        let value = row.get_ref(i);
        if name == "prev_hash" || name == "hash" || matches!(value, Ok(ValueRef::Null)) {
            continue;
        }
        if name == "crop" && crop_digested {
            continue;
        }
        field(name.as_bytes());
        match value {
            Ok(ValueRef::Null) | Err(_) => field(b"n"),
            Ok(ValueRef::Integer(x)) => {
                field(b"i");
                field(&x.to_le_bytes())
            }
            Ok(ValueRef::Real(x)) => {
                field(b"r");
                field(&x.to_le_bytes())
            }
            Ok(ValueRef::Text(t)) => {
                field(b"t");
                field(t)
            }
            Ok(ValueRef::Blob(b)) => {
                field(b"b");
                field(b)
            }
        }
    }
    crate::util::hex(&h.finalize())
}
