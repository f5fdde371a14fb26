//! Identity names: what a person is enrolled, listed, removed and granted as. One form per
//! name (NFC), nothing that renders as another name.

/// The longest name a gallery takes, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A name as the gallery stores it: trimmed, Unicode NFC (so that one name typed two ways is
/// one identity), at most [`MAX_NAME_CHARS`] characters, and printable: no control characters
/// (newlines and terminal escapes would forge log and `journal tail` lines) and no invisible
/// formatting characters (bidirectional overrides, zero-width characters) that make one name
/// look like another. `Err` says why.
pub fn normalise_name(name: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    let name: String = name.trim().nfc().collect();
    if name.is_empty() {
        return Err("it is empty".into());
    }
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(format!("it has {n} characters"));
    }
    let invisible = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
    if let Some(c) = name.chars().find(|&c| c.is_control() || invisible(c)) {
        return Err(format!("it holds the control or formatting character U+{:04X}", c as u32));
    }
    Ok(name)
}
