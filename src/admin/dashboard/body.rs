//! How a payload is shown: JSON pretty-printed and highlighted, UTF-8 text
//! as text, anything else as a hex dump.
//!
//! The output is data for the templates (spans with a class and the text
//! they cover), never HTML: askama escapes every piece when it renders, so
//! a payload cannot become markup. The JSON printer walks the original text
//! rather than a parsed `serde_json::Value`, which would reorder keys and
//! reformat numbers — the developer must see what was sent.

use serde::de::IgnoredAny;

/// Largest body pretty-printed as JSON; bigger ones are shown as text.
pub const JSON_MAX: usize = 512 * 1024;
/// Largest part of a text body shown inline (the rest is in "download raw").
pub const TEXT_MAX: usize = 256 * 1024;
/// Largest part of a binary body shown as a hex dump.
pub const HEX_MAX: usize = 16 * 1024;
/// Pieces the JSON printer emits before it gives up (the body is then shown
/// as text): each is an element of the page, and a sender could pack half a
/// million into a body of `JSON_MAX` bytes.
const MAX_SPANS: usize = 50_000;
/// Nesting levels that indent further; deeper ones line up at this depth,
/// so indentation cannot multiply a body's size on the page.
const MAX_INDENT: usize = 32;

/// One highlighted piece of a JSON document. `class` is one of `key`,
/// `str`, `num`, `lit` (true/false/null), `punct`, or empty for whitespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub class: &'static str,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexRow {
    pub offset: String,
    pub hex: String,
    pub ascii: String,
}

/// A body ready for the templates.
#[derive(Clone, Debug, Default)]
pub struct BodyView {
    /// `empty`, `json`, `text` or `hex`.
    pub kind: &'static str,
    pub spans: Vec<Span>,
    pub text: String,
    pub hex: Vec<HexRow>,
    /// Bytes in the whole body.
    pub size: usize,
    /// True when only a prefix is shown.
    pub truncated: bool,
}

impl BodyView {
    pub fn new(body: &[u8]) -> BodyView {
        BodyView::of_start(body, false)
    }

    /// `cut`: `body` is the start of a longer one (an attempt keeps the
    /// first 64 KiB of an answer), so a character cut at its end does not
    /// make it binary.
    pub fn of_start(body: &[u8], cut: bool) -> BodyView {
        let size = body.len();
        if body.is_empty() {
            return BodyView {
                kind: "empty",
                ..Default::default()
            };
        }
        if size <= JSON_MAX
            && let Some(spans) = highlight_json(body)
        {
            return BodyView {
                kind: "json",
                spans,
                size,
                ..Default::default()
            };
        }
        let prefix = &body[..size.min(TEXT_MAX)];
        // A prefix cut mid-character is still text: trim the partial tail.
        let text = match std::str::from_utf8(prefix) {
            Ok(t) => Some(t),
            Err(e) if e.error_len().is_none() && (cut || size > TEXT_MAX) => {
                std::str::from_utf8(&prefix[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        if let Some(t) = text {
            return BodyView {
                kind: "text",
                text: crate::text::visible(t).into_owned(),
                size,
                truncated: size > t.len(),
                ..Default::default()
            };
        }
        let shown = &body[..size.min(HEX_MAX)];
        BodyView {
            kind: "hex",
            hex: hex_dump(shown),
            size,
            truncated: size > shown.len(),
            ..Default::default()
        }
    }
}

/// Highlighted, indented JSON, or `None` when `body` is not one JSON document.
pub fn highlight_json(body: &[u8]) -> Option<Vec<Span>> {
    // Validate first, so the printer below may assume well-formed input.
    serde_json::from_slice::<IgnoredAny>(body).ok()?;
    let text = std::str::from_utf8(body).ok()?;
    let bytes = text.as_bytes();
    let mut out: Vec<Span> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let push = |out: &mut Vec<Span>, class: &'static str, t: &str| {
        out.push(Span {
            class,
            text: crate::text::visible(t).into_owned(),
        });
    };
    let newline = |out: &mut Vec<Span>, depth: usize| {
        out.push(Span {
            class: "",
            text: format!("\n{}", "  ".repeat(depth.min(MAX_INDENT))),
        });
    };
    while i < bytes.len() {
        if out.len() > MAX_SPANS {
            return None;
        }
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                let j = skip_ws(bytes, i + 1);
                if bytes.get(j) == Some(&close) {
                    push(&mut out, "punct", &text[i..=i]);
                    push(&mut out, "punct", &text[j..=j]);
                    i = j + 1;
                } else {
                    push(&mut out, "punct", &text[i..=i]);
                    depth += 1;
                    newline(&mut out, depth);
                    i += 1;
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                push(&mut out, "punct", &text[i..=i]);
                i += 1;
            }
            b',' => {
                push(&mut out, "punct", ",");
                newline(&mut out, depth);
                i += 1;
            }
            b':' => {
                push(&mut out, "punct", ":");
                push(&mut out, "", " ");
                i += 1;
            }
            b'"' => {
                let end = string_end(bytes, i);
                let is_key = bytes.get(skip_ws(bytes, end)) == Some(&b':');
                push(&mut out, if is_key { "key" } else { "str" }, &text[i..end]);
                i = end;
            }
            b't' | b'f' | b'n' => {
                let len = match c {
                    b't' => 4,
                    b'f' => 5,
                    _ => 4,
                };
                push(&mut out, "lit", &text[i..i + len]);
                i += len;
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                if i == start {
                    // Unreachable for validated JSON; never loop forever.
                    return None;
                }
                push(&mut out, "num", &text[start..i]);
            }
        }
    }
    Some(out)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index after the closing quote of the string starting at `start`.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Rows of 16 bytes: offset, hex pairs, and printable ASCII (others as `.`).
pub fn hex_dump(b: &[u8]) -> Vec<HexRow> {
    b.chunks(16)
        .enumerate()
        .map(|(row, chunk)| {
            let mut hex = String::with_capacity(48);
            for (i, byte) in chunk.iter().enumerate() {
                if i == 8 {
                    hex.push(' ');
                }
                hex.push_str(&format!("{byte:02x} "));
            }
            let ascii = chunk
                .iter()
                .map(|&c| {
                    if c.is_ascii_graphic() || c == b' ' {
                        c as char
                    } else {
                        '.'
                    }
                })
                .collect();
            HexRow {
                offset: format!("{:08x}", row * 16),
                hex: hex.trim_end().to_string(),
                ascii,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(spans: &[Span]) -> String {
        spans.iter().map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn json_keeps_order_and_literals() {
        let check = |input: &str, want: &str| {
            let spans = highlight_json(input.as_bytes()).expect("valid JSON");
            assert_eq!(flat(&spans), want, "{input}");
        };
        check(
            r#"{"z":1,"a":[1.50,true,null],"e":{}}"#,
            "{\n  \"z\": 1,\n  \"a\": [\n    1.50,\n    true,\n    null\n  ],\n  \"e\": {}\n}",
        );
        check(r#""a\"b""#, r#""a\"b""#);
        check("[ ]", "[]");
        check("12345678901234567890", "12345678901234567890");
        assert!(highlight_json(b"{").is_none());
        assert!(highlight_json(b"<script>").is_none());
    }

    #[test]
    fn keys_and_strings_are_told_apart() {
        let spans = highlight_json(br#"{"k" : "v"}"#).unwrap();
        let classes: Vec<(&str, &str)> = spans
            .iter()
            .filter(|s| !s.class.is_empty())
            .map(|s| (s.class, s.text.as_str()))
            .collect();
        assert_eq!(
            classes,
            [
                ("punct", "{"),
                ("key", "\"k\""),
                ("punct", ":"),
                ("str", "\"v\""),
                ("punct", "}")
            ]
        );
    }

    #[test]
    fn a_hostile_json_body_cannot_blow_up_the_page() {
        // 120 levels deep, then ~250,000 values: shown as text, not as half
        // a million indented pieces.
        let mut doc = "[".repeat(120);
        doc.push_str(&"1,".repeat(250_000));
        doc.push('1');
        doc.push_str(&"]".repeat(120));
        assert!(doc.len() <= JSON_MAX);
        let view = BodyView::new(doc.as_bytes());
        assert_eq!(view.kind, "text");
        assert!(view.text.len() <= TEXT_MAX);
        // Deep but small: printed, indentation capped.
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let spans = highlight_json(deep.as_bytes()).unwrap();
        let widest = spans.iter().map(|s| s.text.len()).max().unwrap();
        assert_eq!(widest, 1 + 2 * MAX_INDENT);
    }

    #[test]
    fn views() {
        assert_eq!(BodyView::new(b"").kind, "empty");
        assert_eq!(BodyView::new(b"{\"a\":1}").kind, "json");
        assert_eq!(BodyView::new(b"a=1&b=<x>").kind, "text");
        let bin = BodyView::new(b"\x00\x01\xffABC");
        assert_eq!(bin.kind, "hex");
        assert_eq!(
            bin.hex[0],
            HexRow {
                offset: "00000000".into(),
                hex: "00 01 ff 41 42 43".into(),
                ascii: "...ABC".into()
            }
        );
    }
}
