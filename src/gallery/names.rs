//! Identity names: what a person is enrolled, listed, removed and granted as. One form per
//! name (NFC), nothing that renders as another name.

/// The longest name a gallery takes, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A name as the gallery stores it: trimmed, Unicode NFC (so that one name typed two ways is
/// one identity), at most [`MAX_NAME_CHARS`] characters, and made of characters that show: by
/// Unicode general category, no control (newlines and terminal escapes would forge log and
/// `journal tail` lines), format (bidirectional marks, zero-width characters, soft hyphen, tag
/// characters), surrogate, private-use or unassigned character, no line or paragraph separator
/// and no space but U+0020; and no default-ignorable or blank-rendering character (Hangul
/// fillers, variation selectors, the blank Braille pattern), which draw nothing, so that
/// `al­ice` cannot show as `alice`. `Err` says why.
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
    if let Some(c) = name.chars().find(|&c| !shows(c)) {
        return Err(format!(
            "it holds U+{:04X}, a control, formatting, separator, private-use or blank character that shows as nothing or as something else",
            c as u32
        ));
    }
    Ok(name)
}

/// Whether a character draws something of its own in a name (or is the plain space).
fn shows(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    if c == ' ' {
        return true;
    }
    let hidden_category = matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::Surrogate
            | G::PrivateUse
            | G::Unassigned
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::SpaceSeparator
    );
    // Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties) outside the categories
    // above, and the blank Braille pattern: letters and marks that render as nothing.
    let ignorable = matches!(c,
        '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}');
    !(hidden_category || ignorable)
}

/// Free text an operator typed (a mark's note, who it really was) as one line that cannot
/// forge another: each control, format or separator character written as `\u{…}`.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c == ' ' || shows(c) { c.to_string() } else { c.escape_unicode().to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_show_as_other_names_are_refused() {
        for bad in [
            "al\u{AD}ice",      // soft hyphen
            "ali\u{61C}ce",     // Arabic letter mark
            "alice\u{2028}bob", // line separator
            "ali\u{2029}ce",    // paragraph separator
            "alice\u{E0041}",   // a tag character
            "\u{3164}\u{3164}", // Hangul fillers only
            "\u{2800}",         // blank Braille pattern
            "al\u{E000}ice",    // private use
            "al\u{A0}ice",      // no-break space
            "al\u{200D}ice",    // zero-width joiner
            "alice\u{FE0F}",    // variation selector
            "a\nb",
        ] {
            assert!(normalise_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["alice", "Mary Ann", "José", "Zoë", "李小龍", "O'Brien-Smith", "محمد"]
        {
            assert_eq!(normalise_name(good).as_deref(), Ok(good), "{good:?}");
        }
        // One name typed two ways (NFD) is the same identity.
        assert_eq!(normalise_name("Jose\u{301}").unwrap(), "José");
        assert_eq!(one_line("a\nb\u{1B}[2J"), "a\\u{a}b\\u{1b}[2J");
    }
}
