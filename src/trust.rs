//! Signed manifest sets: which manifests (and, through the sha256 each one holds, which model
//! files) a device may run, signed with ed25519 by whoever ships the models.
//!
//! A manifest's own sha256 check stops a damaged or swapped model file, but not someone who
//! edits the manifest's hash too. With `trust.public_key` set, every manifest the config
//! names must be listed, unchanged, in a set signed with the matching secret key.
//!
//! The set file (`edgeid models sign`):
//!
//! ```text
//! # edgeid signed manifest set v1
//! <sha256 of the manifest file>  mobileface.toml        (relative to the set's folder)
//! ...
//! ed25519 <signature over every byte above this line, 128 hex digits>
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::util::hex;

const HEADER: &str = "# edgeid signed manifest set v1\n";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust.public_key `{0}` is not an ed25519 public key (64 hex digits, as printed by `edgeid models keygen`)")]
    BadPublicKey(String),
    #[error("signed manifest set {path} cannot be read ({reason}); sign the manifests with `edgeid models sign`")]
    Unreadable { path: PathBuf, reason: String },
    #[error("signed manifest set {path} does not verify with trust.public_key: it was altered or signed with another key; sign it again with the right key")]
    BadSignature { path: PathBuf },
    #[error(
        "manifest {manifest} is not in the signed set {set}; add it with `edgeid models sign`"
    )]
    Unlisted { manifest: PathBuf, set: PathBuf },
    #[error("manifest {manifest} changed since it was signed (sha256 {actual}, signed {signed}); restore it or sign the new one")]
    Changed { manifest: PathBuf, actual: String, signed: String },
    #[error("secret key {path}: {reason}")]
    SecretKey { path: PathBuf, reason: String },
}

/// A verified set: manifest file (as the set names it, resolved) → its sha256.
pub struct SignedSet {
    path: PathBuf,
    hashes: BTreeMap<PathBuf, String>,
}

impl SignedSet {
    /// Reads the set at `path` and checks its signature with `public_key` (hex).
    pub fn load(path: &Path, public_key: &str) -> Result<SignedSet, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrustError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        SignedSet::parse(&text, path, public_key)
    }

    /// Checks `text`, a set read from `path` (its folder anchors the names), against the
    /// public key (hex).
    pub fn parse(text: &str, path: &Path, public_key: &str) -> Result<SignedSet, TrustError> {
        let key = verifying_key(public_key)?;
        let unreadable =
            |reason: String| TrustError::Unreadable { path: path.to_path_buf(), reason };
        let body_end = text.trim_end().rfind('\n').map_or(0, |i| i + 1);
        let (body, last) = text.split_at(body_end);
        let signature: [u8; 64] = last
            .trim()
            .strip_prefix("ed25519 ")
            .and_then(unhex)
            .ok_or_else(|| unreadable("its last line is not `ed25519 <signature>`".into()))?;
        key.verify(body.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| TrustError::BadSignature { path: path.to_path_buf() })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut hashes = BTreeMap::new();
        for line in body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (sha, name) = line
                .split_once("  ")
                .ok_or_else(|| unreadable(format!("line `{line}` is not `<sha256>  <file>`")))?;
            hashes.insert(canonical(&dir.join(name)), sha.to_string());
        }
        Ok(SignedSet { path: path.to_path_buf(), hashes })
    }

    /// Refuses a manifest that is not in the set, or not as it was signed; returns the bytes
    /// that were checked, so that what runs is what was verified (the file is not read again).
    pub fn check(&self, manifest: &Path) -> Result<Vec<u8>, TrustError> {
        let signed = self.hashes.get(&canonical(manifest)).ok_or_else(|| TrustError::Unlisted {
            manifest: manifest.to_path_buf(),
            set: self.path.clone(),
        })?;
        let bytes = std::fs::read(manifest).map_err(|e| TrustError::Unreadable {
            path: manifest.to_path_buf(),
            reason: e.to_string(),
        })?;
        let actual = hex(&Sha256::digest(&bytes));
        if &actual != signed {
            return Err(TrustError::Changed {
                manifest: manifest.to_path_buf(),
                actual,
                signed: signed.clone(),
            });
        }
        Ok(bytes)
    }

    /// Writes a set of `manifests` (named relative to the set's folder) signed with the
    /// secret key file; returns the public key (hex) to put in the config.
    pub fn sign(path: &Path, manifests: &[PathBuf], secret: &Path) -> Result<String, TrustError> {
        let key = signing_key(secret)?;
        let dir = canonical(
            path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")),
        );
        let mut body = HEADER.to_string();
        let unreadable = |p: &Path, e: std::io::Error| TrustError::Unreadable {
            path: p.to_path_buf(),
            reason: e.to_string(),
        };
        for m in manifests {
            let sha = file_sha256(m).map_err(|e| unreadable(m, e))?;
            let full = canonical(m);
            let name = relative(&full, &dir);
            body.push_str(&format!("{sha}  {}\n", name.display()));
        }
        let signature = key.sign(body.as_bytes());
        body.push_str(&format!("ed25519 {}\n", hex(&signature.to_bytes())));
        std::fs::write(path, body).map_err(|e| unreadable(path, e))?;
        Ok(hex(key.verifying_key().as_bytes()))
    }
}

/// An ed25519 public key from its hex (as [`keygen`] prints it).
pub fn verifying_key(public_key: &str) -> Result<VerifyingKey, TrustError> {
    let bad_key = || TrustError::BadPublicKey(public_key.to_string());
    let key_bytes: [u8; 32] = unhex(public_key).ok_or_else(bad_key)?;
    VerifyingKey::from_bytes(&key_bytes).map_err(|_| bad_key())
}

/// Writes a new random ed25519 secret key (mode 0600, never over an existing file); returns
/// its public key (hex).
pub fn keygen(secret: &Path) -> Result<String, TrustError> {
    let err = |reason: String| TrustError::SecretKey { path: secret.to_path_buf(), reason };
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let mut file = crate::util::create_private(secret)
        .map_err(|e| err(format!("cannot be created ({e}); choose a new file name")))?;
    writeln!(file, "{}", hex(&seed)).map_err(|e| err(e.to_string()))?;
    Ok(hex(key.verifying_key().as_bytes()))
}

/// The ed25519 secret key in a file written by [`keygen`], refused if others can read it.
pub fn signing_key(path: &Path) -> Result<SigningKey, TrustError> {
    let err = |reason: String| TrustError::SecretKey { path: path.to_path_buf(), reason };
    if let Some(mode) = crate::util::exposed(path, 0o077) {
        return Err(err(format!(
            "other users can read it (mode {mode:04o}); run `chmod 600 {}`",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(format!(
            "{e}; give the secret key `edgeid models keygen --secret FILE` wrote (for the fleet: the key whose public half is fleet.public_key)"
        ))
    })?;
    let seed: [u8; 32] = unhex(text.trim())
        .ok_or_else(|| err("not 64 hex digits written by `edgeid models keygen`".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    Ok(hex(&Sha256::digest(std::fs::read(path)?)))
}

/// The path made absolute and free of `..` where the file exists (so two spellings of one
/// manifest compare equal).
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `path` relative to `dir` (both canonical), with `..` where it lies outside.
fn relative(path: &Path, dir: &Path) -> PathBuf {
    let (p, d): (Vec<_>, Vec<_>) = (path.components().collect(), dir.components().collect());
    let common = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..d.len() {
        out.push("..");
    }
    p[common..].iter().for_each(|c| out.push(c));
    out
}

/// Exactly `N` bytes from hex.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    crate::util::unhex(s)?.try_into().ok()
}
