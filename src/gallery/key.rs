//! Templates at rest: a 256-bit key in a file only its owner can read, and ChaCha20-Poly1305
//! (authenticated) over each template, so a copied gallery reveals no template and a changed
//! byte is caught instead of silently moving a match.
//!
//! Every sealed value carries its own random 96-bit nonce (`nonce ‖ ciphertext ‖ tag`) and is
//! bound to associated data naming what it is (the encoder and identity of a template), so a
//! template moved to another identity's row fails to open as well.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

const NONCE: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key {path} does not exist; restore it from where it was backed up (templates sealed under it cannot be read without it)")]
    Missing { path: PathBuf },
    #[error("key {path} can be read by other users (mode {mode:04o}); run `chmod 600 {path}` and check who saw it")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("key {path} is not an edgeid key ({reason}); point at the key file written by edgeid (64 hex digits)")]
    NotAKey { path: PathBuf, reason: String },
    #[error("key {path} cannot be created: {error}")]
    Create { path: PathBuf, error: std::io::Error },
}

/// A 256-bit ChaCha20-Poly1305 key read from (or written to) a key file.
///
/// The file is the key's 64 hex digits, then, once a gallery sealed under it has been opened, a
/// line `sealed`: the key itself records that its gallery is sealed, so a gallery set back to
/// plain templates (schema 1, a way to plant one) is refused even by `gallery seal`. Whoever can
/// write the gallery file but not the key cannot take that back.
pub struct Key {
    cipher: ChaCha20Poly1305,
    path: PathBuf,
    sealed: bool,
}

const SEALED_MARK: &str = "sealed";

impl Key {
    /// Reads a key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<Key, KeyError> {
        let meta =
            std::fs::metadata(path).map_err(|_| KeyError::Missing { path: path.to_path_buf() })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed { path: path.to_path_buf(), mode });
        }
        let not = |reason: String| KeyError::NotAKey { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| not(e.to_string()))?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let hex = lines.next().unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not(format!("{} characters, not 64 hex digits", hex.len())));
        }
        let sealed = match (lines.next(), lines.next()) {
            (None, _) => false,
            (Some(SEALED_MARK), None) => true,
            (Some(other), _) => {
                return Err(not(format!("an unexpected line `{other}` after the key")))
            }
        };
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex"))
            .collect();
        let cipher = ChaCha20Poly1305::new_from_slice(&bytes).expect("32 bytes");
        Ok(Key { cipher, path: path.to_path_buf(), sealed })
    }

    /// Whether this key has sealed a gallery (see [`Key`]).
    pub fn has_sealed(&self) -> bool {
        self.sealed
    }

    /// Records in the key file that its gallery is sealed (once; the file replaced atomically,
    /// owner-only, the key unchanged).
    pub fn mark_sealed(&mut self) -> Result<(), KeyError> {
        if self.sealed {
            return Ok(());
        }
        let create = |error| KeyError::Create { path: self.path.clone(), error };
        let text = std::fs::read_to_string(&self.path).map_err(create)?;
        let hex = text.lines().next().unwrap_or("").trim().to_string();
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".writing");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let mut file = crate::util::create_private(&tmp).map_err(create)?;
        writeln!(file, "{hex}\n{SEALED_MARK}").and_then(|()| file.sync_all()).map_err(create)?;
        std::fs::rename(&tmp, &self.path).map_err(create)?;
        self.sealed = true;
        Ok(())
    }

    /// Reads the key file, or writes a new random key there (mode 0600, never over an existing
    /// file) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Key, KeyError> {
        if path.exists() {
            return Key::load(path);
        }
        let create = |error| KeyError::Create { path: path.to_path_buf(), error };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(create)?;
        }
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        let mut file = crate::util::create_private(path).map_err(create)?;
        writeln!(file, "{}", crate::util::hex(&key)).map_err(create)?;
        file.sync_all().map_err(create)?;
        log::info!("created key {}: back it up apart from the gallery", path.display());
        Key::load(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plain`, bound to `aad`.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("ChaCha20-Poly1305 encrypts any message under 256 GiB");
        [nonce.as_slice(), &sealed].concat()
    }

    /// The plaintext of a sealed value, or `None` if it was altered, sealed under another key,
    /// or bound to other associated data.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE);
        self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_unchanged_under_their_key_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::load_or_create(&dir.path().join("a.key")).unwrap();
        let mode = std::fs::metadata(key.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = key.seal(b"template", b"alice");
        assert_eq!(sealed.len(), 12 + 8 + 16);
        assert_eq!(key.open(&sealed, b"alice").as_deref(), Some(&b"template"[..]));
        assert_ne!(key.seal(b"template", b"alice"), sealed, "a fresh nonce every time");
        assert!(key.open(&sealed, b"bob").is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(key.open(&bad, b"alice").is_none(), "byte {i}");
        }
        let other = Key::load_or_create(&dir.path().join("b.key")).unwrap();
        assert!(other.open(&sealed, b"alice").is_none());
        // Read back from its file: the same key.
        assert!(Key::load(key.path()).unwrap().open(&sealed, b"alice").is_some());
        std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(Key::load(key.path()), Err(KeyError::Exposed { mode: 0o640, .. })));
    }
}
