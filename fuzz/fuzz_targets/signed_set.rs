//! Any text as a signed manifest set, checked against the key its corpus seed was signed with:
//! the signature line, the signature and the set's lines. A set or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

/// The public key of fuzz/corpus/signed_set/set.sig (its secret key was not kept).
const PUBLIC_KEY: &str = "0463ad2683f642a45aa621657418d2e70f1bc9cb7ab40823f3a8329dddc90c57";

fuzz_target!(|text: &str| {
    let _ = edgeid::trust::SignedSet::parse(
        text,
        std::path::Path::new("/etc/edgeid/set.sig"),
        PUBLIC_KEY,
    );
});
