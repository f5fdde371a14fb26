//! Any bytes as a gallery export. First byte 0: the bytes are the file (the header and the
//! sealed layer are what is reached); otherwise the rest is sealed under this run's transfer
//! key first, as an export written by edgeid would be, so the JSON and the checks an import
//! makes (`Bundle::problem`) are reached. A bundle or an error, never a panic.
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use edgeid::gallery::key::Key;
use edgeid::gallery::transfer::{Bundle, MAGIC};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("edgeid-fuzz-{}.key", std::process::id()));
        Key::load_or_create(&path).expect("a transfer key in the temporary folder")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let file = if mode == 0 { rest.to_vec() } else { [MAGIC, &key().seal(rest, MAGIC)].concat() };
    if let Ok(bundle) = Bundle::from_bytes(&file, key(), Path::new("fuzz.export")) {
        let _ = bundle.problem("mobilefacenet-192@d730d00e", 192);
    }
});
