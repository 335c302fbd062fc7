//! Text from senders shown to people (dashboard, CLI): which characters
//! can make it read as something else.

use std::borrow::Cow;

/// Bidirectional embeddings, overrides, isolates and marks: a right-to-left
/// override displays "invoice\u{202e}fdp.exe" as "invoice" followed by
/// "exe.pdf", and reorders whatever follows it; in a pasted command it makes
/// what is read differ from what runs ("Trojan Source").
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
    )
}

/// Characters that show as nothing (zero-width spaces and joiners, a
/// byte-order mark, a soft hyphen, a word joiner) or as a line break
/// (U+2028, U+2029): text holding one is not what it looks like.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{00ad}' | '\u{2028}' | '\u{2029}'
    )
}

/// `s` with every character `hostile` says is hostile replaced by `show(c)`;
/// borrowed when there is none.
pub fn replace_chars(
    s: &str,
    hostile: impl Fn(char) -> bool,
    show: impl Fn(char) -> String,
) -> Cow<'_, str> {
    if !s.chars().any(&hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hostile(c) {
            out.push_str(&show(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// For pages: bidirectional controls shown as `⟨U+202E⟩`, so a payload
/// cannot reorder what is displayed around them, and other control
/// characters but line breaks and tabs the same way (a browser drops a NUL
/// or an ESC: `abc\0def` showed as `abcdef`); the stored bytes are
/// unchanged.
pub fn visible(s: &str) -> Cow<'_, str> {
    replace_chars(
        s,
        |c| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_bidi_control(c),
        |c| format!("⟨U+{:04X}⟩", c as u32),
    )
}

/// A size for people: `512 B`, `1.5 KiB`, `23.4 MiB`, `2.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_are_shown() {
        assert_eq!(visible("plain"), Cow::Borrowed("plain"));
        assert_eq!(visible("a\u{202e}b\u{2066}c"), "a⟨U+202E⟩b⟨U+2066⟩c");
        assert_eq!(visible("a\0b\u{1b}c\u{7f}"), "a⟨U+0000⟩b⟨U+001B⟩c⟨U+007F⟩");
        assert_eq!(visible("l1\r\n\tl2"), Cow::Borrowed("l1\r\n\tl2"));
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }
}
