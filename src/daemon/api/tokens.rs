//! The operator API's bearer tokens. A token is 32 random bytes shown once, when it is made
//! (`edgeid token add`); the file keeps only its SHA-256, its name and its scope, so a copy
//! of the file (a backup, a support bundle) lets nobody in. The file is read again when it
//! changes, so a token removed on the device stops working at once, without a restart.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// See decisions, the gallery's names, outputs; identify an uploaded photo.
    Read,
    /// Also enrol and remove people, and mark a decision as wrong.
    Enrol,
    /// Also reload the configuration.
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "enrol" | "enroll" => Some(Scope::Enrol),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Enrol => "enrol",
            Scope::Admin => "admin",
        }
    }
}

/// A token as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub name: String,
    pub scope: Scope,
    #[serde(skip)]
    hash: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("API tokens file {path} does not exist; make a token with `edgeid token add NAME --scope admin` (it creates the file)")]
    Missing { path: PathBuf },
    #[error("API tokens file {path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error("API tokens file {path} holds no token; make one with `edgeid token add NAME --scope admin`")]
    Empty { path: PathBuf },
    #[error("API tokens file {path} can be written by other users (mode {mode:04o}); run `chmod 600 {path}`, then check that every token in it is yours (`edgeid token list`)")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("API token name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    #[error("API tokens file {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
}

/// The tokens of one file, read again whenever the file changes.
pub struct Tokens {
    path: PathBuf,
    tokens: Vec<Token>,
    /// The file's modification time and length when it was read.
    stamp: Option<(SystemTime, u64)>,
}

impl Tokens {
    /// Reads the file; refuses a missing, empty or malformed file, or one that others can write.
    pub fn load(path: &Path) -> Result<Tokens, TokenError> {
        let mut t = Tokens { path: path.to_path_buf(), tokens: Vec::new(), stamp: None };
        t.refresh()?;
        if t.tokens.is_empty() {
            return Err(TokenError::Empty { path: path.to_path_buf() });
        }
        Ok(t)
    }

    /// Reads the file again if it changed since it was read.
    pub fn refresh(&mut self) -> Result<(), TokenError> {
        let stamp = stamp(&self.path)?;
        if Some(stamp) != self.stamp {
            self.tokens = read(&self.path)?;
            self.stamp = Some(stamp);
        }
        Ok(())
    }

    /// The token whose secret was presented, if any.
    pub fn find(&self, presented: &str) -> Option<&Token> {
        let hash: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        // Comparing hashes: how long a comparison takes says nothing about a token.
        self.tokens.iter().find(|t| t.hash == hash)
    }
}

fn stamp(path: &Path) -> Result<(SystemTime, u64), TokenError> {
    let meta = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => TokenError::Missing { path: path.to_path_buf() },
        _ => TokenError::Io { path: path.to_path_buf(), error },
    })?;
    let modified = meta.modified().map_err(|error| TokenError::Io { path: path.into(), error })?;
    Ok((modified, meta.len()))
}

/// Every token of the file: one per line, `name scope sha256-hex`; `#` starts a comment.
fn read(path: &Path) -> Result<Vec<Token>, TokenError> {
    let _ = stamp(path)?;
    if let Some(mode) = crate::util::exposed(path, 0o022) {
        return Err(TokenError::Exposed { path: path.to_path_buf(), mode });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| TokenError::Io { path: path.to_path_buf(), error })?;
    let bad = |n: usize, reason: &str| {
        TokenError::Bad {
        path: path.to_path_buf(),
        reason: format!("line {n}: {reason}; each line is `name scope sha256-hex`, as `edgeid token add` writes it"),
    }
    };
    let mut tokens: Vec<Token> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, scope, hash] = fields[..] else {
            return Err(bad(i + 1, "not three fields"));
        };
        let scope = Scope::parse(scope)
            .ok_or_else(|| bad(i + 1, "the scope is not read, enrol or admin"))?;
        let hash = crate::util::unhex(hash)
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or_else(|| bad(i + 1, "the hash is not 64 hex digits"))?;
        if tokens.iter().any(|t| t.name == name) {
            return Err(bad(i + 1, "a second token with this name"));
        }
        tokens.push(Token { name: name.to_string(), scope, hash });
    }
    Ok(tokens)
}

/// Writes the file anew (owner-only), replacing it in one rename.
fn write(path: &Path, tokens: &[Token]) -> Result<(), TokenError> {
    use std::io::Write;
    let io = |error| TokenError::Io { path: path.to_path_buf(), error };
    let mut text = String::from(
        "# edgeid operator API tokens: name scope sha256(token). Managed by `edgeid token`.\n",
    );
    for t in tokens {
        text.push_str(&format!("{} {} {}\n", t.name, t.scope.as_str(), crate::util::hex(&t.hash)));
    }
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut file = crate::util::create_private(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The tokens in the file, or none when it does not exist yet.
fn existing(path: &Path) -> Result<Vec<Token>, TokenError> {
    match read(path) {
        Err(TokenError::Missing { .. }) => Ok(Vec::new()),
        other => other,
    }
}

/// Makes a token named `name` with `scope`, adds its hash to the file (created if missing),
/// and returns the token: the only time it is shown.
pub fn add(path: &Path, name: &str, scope: Scope) -> Result<String, TokenError> {
    let bad = |reason: &str| TokenError::BadName { name: name.to_string(), reason: reason.into() };
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(bad("use 1 to 64 letters, digits, '-', '_', '.' or '@'"));
    }
    let mut tokens = existing(path)?;
    if tokens.iter().any(|t| t.name == name) {
        return Err(bad("a token has this name already; remove it first or pick another name"));
    }
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let token = format!("eid_{}", crate::util::hex(&secret));
    let hash = Sha256::digest(token.as_bytes()).into();
    tokens.push(Token { name: name.to_string(), scope, hash });
    write(path, &tokens)?;
    Ok(token)
}

/// Removes the token named `name`; false if there was none.
pub fn remove(path: &Path, name: &str) -> Result<bool, TokenError> {
    let mut tokens = existing(path)?;
    let before = tokens.len();
    tokens.retain(|t| t.name != name);
    if tokens.len() == before {
        return Ok(false);
    }
    write(path, &tokens)?;
    Ok(true)
}

/// The tokens' names and scopes.
pub fn list(path: &Path) -> Result<Vec<Token>, TokenError> {
    read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_secret_and_its_file_keeps_only_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let admin = add(&path, "ops", Scope::Admin).unwrap();
        let reader = add(&path, "wall-screen", Scope::Read).unwrap();
        assert!(admin.starts_with("eid_") && admin.len() == 4 + 64 && admin != reader);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&admin[4..]) && !text.contains(&reader[4..]), "{text}");
        let tokens = Tokens::load(&path).unwrap();
        assert_eq!(
            tokens.find(&admin).map(|t| (t.name.as_str(), t.scope)),
            Some(("ops", Scope::Admin))
        );
        assert_eq!(tokens.find(&reader).map(|t| t.scope), Some(Scope::Read));
        assert!(tokens.find("eid_00").is_none() && tokens.find("").is_none());
        assert!(Scope::Admin > Scope::Enrol && Scope::Enrol > Scope::Read);
        assert!(matches!(add(&path, "ops", Scope::Read), Err(TokenError::BadName { .. })));
        assert!(matches!(add(&path, "a b", Scope::Read), Err(TokenError::BadName { .. })));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_removed_token_stops_working_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let a = add(&path, "a", Scope::Enrol).unwrap();
        let b = add(&path, "b", Scope::Read).unwrap();
        let mut tokens = Tokens::load(&path).unwrap();
        assert!(tokens.find(&a).is_some());
        // A later modification time even on a coarse clock: the length changes too.
        assert!(remove(&path, "a").unwrap());
        assert!(!remove(&path, "a").unwrap());
        tokens.refresh().unwrap();
        assert!(tokens.find(&a).is_none() && tokens.find(&b).is_some());
    }

    #[test]
    fn a_bad_tokens_file_is_refused_with_the_line_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        assert!(matches!(Tokens::load(&path), Err(TokenError::Missing { .. })));
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(Tokens::load(&path), Err(TokenError::Empty { .. })));
        std::fs::write(&path, "ops admin 1234\n").unwrap();
        let e = Tokens::load(&path).err().unwrap().to_string();
        assert!(e.contains("line 1: the hash is not 64 hex digits"), "{e}");
        std::fs::write(&path, format!("ops root {}\n", "ab".repeat(32))).unwrap();
        let e = Tokens::load(&path).err().unwrap().to_string();
        assert!(e.contains("the scope is not read, enrol or admin"), "{e}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&path, format!("ops admin {}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = Tokens::load(&path).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
