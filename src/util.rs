//! The bottom layer: small helpers every other layer may use and that use nothing of edgeid —
//! hexadecimal (sha256 digests, keys, signatures), files only their owner can read (keys,
//! galleries, exported bundles), and TOML errors as one line (configs, manifests).

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Lower-case hexadecimal of a digest, as manifests write sha256.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string (surrounding whitespace ignored), `None` if it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
}

/// Creates a new file only its owner can read and write (never over an existing one).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

/// Writes `bytes` to `path` whole or not at all: a file beside it, synced, renamed over it (a
/// crash leaves the old file or the new one, never half of one).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".writing");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes).and_then(|()| file.sync_all())?;
    std::fs::rename(&tmp, path)
}

/// The file's mode if it grants any of the `mask` bits (0o077: group or others; 0o007:
/// others).
pub fn exposed(path: &Path, mask: u32) -> Option<u32> {
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    (mode & mask != 0).then_some(mode)
}

/// Refuses a file that other users may read or write.
pub fn check_private(path: &Path) -> Result<(), String> {
    if let Some(mode) = exposed(path, 0o007) {
        return Err(format!(
            "other users can access it (mode {mode:04o}); run `chmod 600 {}`",
            path.display()
        ));
    }
    Ok(())
}

/// The text of a secret file (a password), trailing newlines dropped: refused, with the fix,
/// where group or others can read it or it cannot be read.
pub fn read_secret(path: &Path) -> Result<String, String> {
    if let Some(mode) = exposed(path, 0o077) {
        return Err(format!(
            "other users can read it (mode {mode:04o}); run `chmod 600 {}` and change the secret if others could read it",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read ({e})"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// toml's error as one line with its line number (its Display spans several lines with a
/// source excerpt, which reads badly in a log).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let source = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("{message} (line {line}: `{source}`)")
        }
        None => message,
    }
}

/// A setting outside what it allows: `key = value`, and what is allowed. Each stage checks its own
/// settings with [`check_range`]; the config names the file around it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfRange {
    pub key: String,
    pub value: String,
    pub allowed: String,
}

/// `Ok` if `value` is finite and `ok(value)`, else the [`OutOfRange`] naming `key`.
pub fn check_range(
    key: &str,
    value: f32,
    ok: impl Fn(f32) -> bool,
    allowed: &str,
) -> Result<(), OutOfRange> {
    if value.is_finite() && ok(value) {
        Ok(())
    } else {
        Err(OutOfRange { key: key.into(), value: value.to_string(), allowed: allowed.into() })
    }
}

/// What serde's error in a table that was re-serialised on its own says, with the offending
/// line named as `<table>.<line>` (serde's own message loses the key of an error inside an
/// enum or a flattened table).
pub fn table_error(table: &str, text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let line = e
        .span()
        .and_then(|s| text.lines().nth(text[..s.start.min(text.len())].matches('\n').count()))
        .unwrap_or("")
        .trim();
    if line.is_empty() {
        message
    } else {
        format!("{message} at `{table}.{line}`")
    }
}

/// The certificates of a PEM file (a chain, or CA certificates), DER-encoded; an error that
/// says why when the file cannot be read or holds none.
pub fn pem_certs(
    path: &Path,
) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, String> {
    use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// A TLS client (rustls with ring, TLS 1.2 and 1.3) that trusts only the CA certificates of
/// the PEM file at `ca`: for a broker, database or receiver on a private CA. `Err` says why.
pub fn tls_client_trusting(
    ca: &Path,
) -> Result<std::sync::Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for der in pem_certs(ca)? {
        roots.add(der).map_err(|e| e.to_string())?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes = [0u8, 1, 0x7f, 0xab, 0xff];
        assert_eq!(hex(&bytes), "00017fabff");
        assert_eq!(unhex(" 00017FABFF\n").unwrap(), bytes);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
