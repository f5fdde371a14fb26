//! The central PostgreSQL database: connecting (TLS through rustls when `fleet.ca_file` is
//! set) and its versioned schema.

use std::time::Duration;

use super::error::FleetError;
use crate::config::fleet::FleetConfig;

/// The schema's migrations, in order: (version, what it adds, its SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "devices and journal records", include_str!("migrations/0001_journal_records.sql")),
    (2, "gallery changes", include_str!("migrations/0002_gallery_changes.sql")),
    (3, "views", include_str!("migrations/0003_views.sql")),
    (4, "config offers", include_str!("migrations/0004_config_offers.sql")),
    (5, "offer progress", include_str!("migrations/0005_offer_progress.sql")),
];

/// The schema version this edgeid reads and writes.
pub fn schema_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Any two migrations, from any number of devices or operators, run one after the other.
const MIGRATION_LOCK: i64 = 0x6564_6765_6964; // "edgeid"

/// Connects to `fleet.database` (password from `password_file`, TLS from `ca_file`).
pub fn connect(cfg: &FleetConfig) -> Result<postgres::Client, FleetError> {
    let setup = |why: String| FleetError::Setup { what: cfg.database.clone(), why };
    let mut pg: postgres::Config =
        cfg.database.parse().map_err(|e| setup(format!("fleet.database: {e}")))?;
    pg.connect_timeout(Duration::from_secs(5)).application_name("edgeid");
    if let Some(path) = &cfg.password_file {
        pg.password(cfg.secret("password_file", path)?);
    }
    let what = format!("{} (connecting)", cfg.database);
    match &cfg.ca_file {
        None => pg.connect(postgres::NoTls).map_err(FleetError::db(what)),
        Some(path) => {
            let tls = crate::util::tls_client_trusting(path)
                .map_err(|why| setup(format!("fleet.ca_file {}: {why}", path.display())))?;
            pg.ssl_mode(postgres::config::SslMode::Require);
            pg.connect(tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone()))
                .map_err(FleetError::db(what))
        }
    }
}

/// What a door does in the central database, and so all its role may do: read the schema
/// version, report itself (`devices`), ship its journal (`journal_records`). Every table
/// a door's connection touches is here (tests/it/fleet.rs runs a door with exactly these).
pub const DOOR_GRANTS: [(&str, &str); 3] = [
    ("edgeid_migrations", "SELECT"),
    ("devices", "SELECT, INSERT, UPDATE"),
    ("journal_records", "SELECT, INSERT"),
];

/// The role name of the door `device`: `edgeid_door_` and the name, lower-cased, with any
/// character but a-z, 0-9 and `_` as `_` (PostgreSQL names are at most 63 bytes).
pub fn door_role(device: &str) -> String {
    let name: String = device
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    format!("edgeid_door_{name}").chars().take(63).collect()
}

/// The SQL that makes `device`'s role (`LOGIN`, no password yet) with [`DOOR_GRANTS`], for the
/// schema's owner to run after `fleet migrate`.
pub fn door_role_sql(device: &str) -> String {
    let role = door_role(device);
    let mut sql = format!(
        "-- edgeid fleet door-role {device}: the role door `{device}` connects as (fleet.database's user),\n\
         -- with the rights shipping needs and no others. Run as the schema's owner, after `fleet migrate`:\n\
         --   edgeid fleet door-role {device} | psql \"<owner's connection>\"\n\
         -- then give it a password: psql -c '\\password {role}', and that password to the door (fleet.password_file).\n\
         CREATE ROLE {role} LOGIN;\n\
         GRANT USAGE ON SCHEMA public TO {role};\n"
    );
    for (table, rights) in DOOR_GRANTS {
        sql.push_str(&format!("GRANT {rights} ON {table} TO {role};\n"));
    }
    sql
}

/// The schema version the database holds (0: none).
pub fn held_version(db: &mut postgres::Client) -> Result<i32, FleetError> {
    let exists: bool = db
        .query_one("SELECT to_regclass('edgeid_migrations') IS NOT NULL", &[])
        .map_err(FleetError::db("reading its schema version"))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(db
        .query_one("SELECT coalesce(max(version), 0) FROM edgeid_migrations", &[])
        .map_err(FleetError::db("reading its schema version"))?
        .get(0))
}

/// Refuses a database whose schema is older (or newer) than this edgeid's, with the fix.
pub fn require_schema(db: &mut postgres::Client) -> Result<(), FleetError> {
    let held = held_version(db)?;
    if held != schema_version() {
        return Err(FleetError::Schema { held, needed: schema_version() });
    }
    Ok(())
}

/// Applies every migration the database lacks, each in its own transaction, under a lock
/// that serialises concurrent runs; returns the versions applied.
pub fn migrate(db: &mut postgres::Client) -> Result<Vec<(i32, &'static str)>, FleetError> {
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        let mut tx = db.transaction().map_err(FleetError::db("migrating"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(FleetError::db("migrating (taking the lock)"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS edgeid_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .map_err(FleetError::db("migrating"))?;
        let done: i64 = tx
            .query_one("SELECT count(*) FROM edgeid_migrations WHERE version = $1", &[&version])
            .map_err(FleetError::db("migrating"))?
            .get(0);
        if done > 0 {
            continue;
        }
        tx.batch_execute(sql).map_err(FleetError::db(format!("migration {version} ({name})")))?;
        tx.execute(
            "INSERT INTO edgeid_migrations (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .map_err(FleetError::db("migrating"))?;
        tx.commit().map_err(FleetError::db(format!("migration {version} ({name})")))?;
        applied.push((version, name));
    }
    let held = held_version(db)?;
    if held > schema_version() {
        return Err(FleetError::Schema { held, needed: schema_version() });
    }
    Ok(applied)
}
