//! The fleet's secret files (the database's and the broker's passwords): refused when others
//! can read them.

use super::error::FleetError;
use crate::config::fleet::FleetConfig;

impl FleetConfig {
    /// The secret in `path` (the setting `key`), refused if others can read it.
    pub(super) fn secret(&self, key: &str, path: &std::path::Path) -> Result<String, FleetError> {
        let err = |why: String| FleetError::Key { what: format!("{key} {}", path.display()), why };
        if let Some(mode) = crate::util::exposed(path, 0o077) {
            return Err(err(format!(
                "other users can read it (mode {mode:04o}); run `chmod 600 {}` and change the password if others could read it",
                path.display()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot be read ({e})")))?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    }
}
