//! Why the fleet's work failed: each error names the thing and the fix.

/// Why the fleet's work failed; each names the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("fleet database {what}: {why}; check fleet.database and that the server runs and takes this device's connections (nothing is lost: the device ships from where the database's copy ends once it is back)")]
    Database { what: String, why: String },
    #[error("fleet database {what}: {why}")]
    Setup { what: String, why: String },
    #[error("fleet database holds schema version {held}, this edgeid needs {needed}; run `edgeid fleet migrate` with the database owner's config")]
    Schema { held: i32, needed: i32 },
    #[error("fleet gallery holds no identity named `{name}` ({why}); nothing was published. Enrolled: {enrolled}")]
    NotEnrolled { name: String, why: String, enrolled: String },
    #[error("fleet broker {broker}: {why}")]
    Broker { broker: String, why: String },
    #[error("fleet {what}: {why}")]
    Key { what: String, why: String },
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Gallery(#[from] crate::gallery::GalleryError),
}

impl FleetError {
    pub(super) fn db(what: impl Into<String>) -> impl FnOnce(postgres::Error) -> FleetError {
        let what = what.into();
        move |e| FleetError::Database { what, why: postgres_why(&e) }
    }
}

/// A PostgreSQL error in one line: the server's message, or the client's error and its causes
/// (a refused connection, a certificate that does not verify).
fn postgres_why(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut why = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        why.push_str(&format!(": {s}"));
        source = s.source();
    }
    why
}
