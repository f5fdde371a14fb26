//! The fleet's secret files (the database's and the broker's passwords): refused when others
//! can read them.

use super::error::FleetError;
use crate::config::fleet::FleetConfig;

impl FleetConfig {
    /// The secret in `path` (the setting `key`), refused if others can read it.
    pub(super) fn secret(&self, key: &str, path: &std::path::Path) -> Result<String, FleetError> {
        crate::util::read_secret(path)
            .map_err(|why| FleetError::Key { what: format!("{key} {}", path.display()), why })
    }
}
