//! Where the backends keep what they measured or built on this device: `auto`'s choices and
//! TensorRT's engines beside them.

use std::path::PathBuf;

/// Where the choices are cached: `$EDGEID_BACKEND_CACHE`; else `backends.json` in systemd's
/// `$CACHE_DIRECTORY` (the unit's `CacheDirectory=edgeid`), `$XDG_CACHE_HOME/edgeid` or
/// `~/.cache/edgeid`. `None` (no home at all): measured at every start.
pub fn default_cache() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(file) = var("EDGEID_BACKEND_CACHE") {
        return Some(file);
    }
    let dir = var("CACHE_DIRECTORY")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("edgeid")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/edgeid")))?;
    Some(dir.join("backends.json"))
}
