//! "Copy as curl": a shell command that re-sends a stored event byte for
//! byte, safe to paste into bash or zsh whatever the payload contains.
//!
//! Quoting rules, because the payload is hostile input:
//! - every argument is single-quoted, a `'` inside becoming `'\''`; inside
//!   single quotes the shell expands nothing (`$()`, backticks, `!`, `\`);
//! - a header value with bytes that are not printable UTF-8 is written as
//!   ANSI-C `$'…'` with every byte outside `[A-Za-z0-9 ]` hex-escaped;
//! - a body that is not printable text (not UTF-8, control characters that
//!   a terminal would act on while pasting, NUL) or is large is written to a
//!   file first by `base64 -d` from a quoted heredoc, then sent with
//!   `--data-binary @file` (which keeps newlines, unlike `-d @file`); a
//!   body over [`EMBED_MAX`] is not embedded at all (the page would carry
//!   it base64-encoded): the command says to save it with "download raw";
//! - an inline body goes with `--data-raw`, for which a leading `@` is
//!   data: with `--data-binary`, a sender's body `@/home/you/.ssh/id_rsa`
//!   would make the pasted command send that file instead;
//! - the URL (path and query are the sender's) is quoted like a header.
//!
//! curl adds `User-Agent`, `Accept`, `Content-Type` (with a body) and
//! `Expect` on its own; when the stored request lacked one, the command
//! removes it with `-H 'Name:'`, so the request matches the stored one.

use base64::Engine;

use crate::event::Event;

/// Bodies above this size go through a file even when they are text, so the
/// command stays short enough to paste.
pub const INLINE_BODY_MAX: usize = 16 * 1024;

/// Bodies above this size are left out of the command, which then reads
/// the file saved with "download raw".
pub const EMBED_MAX: usize = 1024 * 1024;

/// Headers curl sends by itself unless told otherwise.
const CURL_DEFAULTS: [&str; 4] = ["user-agent", "accept", "content-type", "expect"];

/// The name "download raw" gives an event's body, which the command
/// reads when the body cannot be pasted inline.
pub fn body_file(id: &str) -> String {
    format!("hookrelay-body-{}.bin", sanitize_file_part(id))
}

/// The command that re-sends `ev` with `body` to `base_url` + the event's
/// path suffix and query, joined as a forward joins them (a target's own
/// query first). `base_url` is e.g. the endpoint's target or
/// `http://127.0.0.1:8080/in/shop`.
pub fn curl_command(ev: &Event, body: &[u8], base_url: &str) -> String {
    let url = crate::relay::join_url_text(base_url, &ev.path, ev.query.as_deref());

    // The same headers the relay forwards: hop-by-hop ones (and those named
    // by `Connection`) and `content-length` describe the old connection.
    let kept = crate::deliver::strip_hop_by_hop(&ev.headers);

    let inline = !body.is_empty() && body.len() <= INLINE_BODY_MAX && is_pasteable_text(body);
    let file = body_file(&ev.id);

    let mut out = String::new();
    if crate::capture::has_dot_segment(&ev.path) {
        out.push_str("# The path has a '.' or '..' segment: hookrelay does not forward or replay it (it would reach other paths on the target); this command sends it as received.\n");
    }
    if body.len() > EMBED_MAX {
        out.push_str(&format!(
            "# The body ({} bytes) is too large to embed: save it with \"download raw\" as {}\n",
            body.len(),
            quote(&file)
        ));
    } else if !body.is_empty() && !inline {
        out.push_str("base64 -d > ");
        out.push_str(&quote(&file));
        out.push_str(" <<'HOOKRELAY_BODY'\n");
        // The standard alphabet has no `_`, so no line can end the heredoc.
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        for chunk in b64.as_bytes().chunks(76) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("HOOKRELAY_BODY\n");
    }

    // --globoff: `[]{}` in a URL are data, not curl's globbing syntax.
    // --path-as-is: keep `/../` and `/./` as received.
    out.push_str("curl --globoff --path-as-is --silent --show-error ");
    if ev.method == "HEAD" {
        // `-X HEAD` would make curl wait for a body that never comes.
        out.push_str("--head");
    } else {
        out.push_str("-X ");
        out.push_str(&quote(&ev.method));
    }
    out.push(' ');
    out.push_str(&quote_bytes(url.as_bytes()));
    for (name, value) in &kept {
        out.push_str(" \\\n  -H ");
        if value.is_empty() {
            // `Name;` is curl's spelling of "send this header empty";
            // `Name:` would remove it.
            out.push_str(&quote_bytes(format!("{name};").as_bytes()));
        } else {
            let mut line = format!("{name}: ").into_bytes();
            line.extend_from_slice(value);
            out.push_str(&quote_bytes(&line));
        }
    }
    for default in CURL_DEFAULTS {
        if !kept.iter().any(|(n, _)| n.eq_ignore_ascii_case(default)) {
            out.push_str(" \\\n  -H ");
            out.push_str(&quote(&format!("{}:", header_case(default))));
        }
    }
    if inline {
        out.push_str(" \\\n  --data-raw ");
        out.push_str(&quote_bytes(body));
    } else if !body.is_empty() {
        out.push_str(" \\\n  --data-binary ");
        out.push_str(&quote(&format!("@{file}")));
    } else if ev.method != "HEAD"
        && ev
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-length") && v.as_slice() == b"0")
    {
        // An empty body that was sent as one (`Content-Length: 0`, as a
        // replay sends it): curl sends the header only with data.
        out.push_str(" \\\n  --data-raw ''");
    }
    out.push('\n');
    out
}

/// True when `body` can sit inside single quotes in a pasted command: UTF-8
/// with no control characters but newline. Tabs (completion), carriage
/// returns and escape sequences act on an interactive terminal as it is
/// pasted, so they go through the file path.
pub fn is_pasteable_text(body: &[u8]) -> bool {
    match std::str::from_utf8(body) {
        Ok(s) => !s
            .chars()
            .any(|c| (c.is_control() && c != '\n') || crate::text::is_bidi_control(c)),
        Err(_) => false,
    }
}

/// Single-quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes raw bytes: single quotes when they are pasteable text, else
/// ANSI-C `$'…'` with hex escapes (bash, zsh, ksh).
pub fn quote_bytes(b: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(b)
        && is_pasteable_text(b)
    {
        return quote(s);
    }
    let mut out = String::from("$'");
    for &byte in b {
        if byte.is_ascii_alphanumeric() || byte == b' ' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('\'');
    out
}

fn header_case(lower: &str) -> String {
    lower
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn sanitize_file_part(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(headers: &[(&str, &[u8])], path: &str, query: Option<&str>) -> Event {
        // From JSON, so fields added later with serde defaults need no change.
        let mut ev: Event = serde_json::from_value(serde_json::json!({
            "id": "01KAAAAAAAAAAAAAAAAAAAAAAA",
            "endpoint": "shop",
            "received_at": 0,
            "method": "POST",
            "path": path,
            "query": query,
            "headers": [],
            "size": 0,
            "remote_addr": "127.0.0.1:1",
            "state": "captured",
        }))
        .expect("event JSON");
        ev.headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        ev
    }

    #[test]
    fn quoting() {
        let check = |input: &str, want: &str| assert_eq!(quote(input), want, "{input:?}");
        check("plain", "'plain'");
        check("it's", "'it'\\''s'");
        check("$(id) `id` \\ !x", "'$(id) `id` \\ !x'");
        check("a\nb", "'a\nb'");
        let check_bytes =
            |input: &[u8], want: &str| assert_eq!(quote_bytes(input), want, "{input:?}");
        check_bytes(b"ok 1", "'ok 1'");
        check_bytes(b"\xff'x", "$'\\xff\\x27x'");
        check_bytes(b"a\tb", "$'a\\x09b'");
        check_bytes(b"\x1b[31m", "$'\\x1b\\x5b31m'");
    }

    #[test]
    fn command_shape() {
        let ev = event(
            &[
                ("host", b"proxy"),
                ("content-type", b"application/json"),
                ("x-q", b"it's $(x)"),
                ("x-empty", b""),
                ("content-length", b"2"),
            ],
            "/a b",
            Some("x=1&y='"),
        );
        let cmd = curl_command(&ev, b"{}", "http://h:1/in/cap");
        assert_eq!(
            cmd,
            "curl --globoff --path-as-is --silent --show-error -X 'POST' 'http://h:1/in/cap/a b?x=1&y='\\''' \
             \\\n  -H 'content-type: application/json' \\\n  -H 'x-q: it'\\''s $(x)' \\\n  -H 'x-empty;' \
             \\\n  -H 'User-Agent:' \\\n  -H 'Accept:' \\\n  -H 'Expect:' \\\n  --data-raw '{}'\n"
        );
    }

    /// Hunt #19: the target's own query went between its path and the
    /// event's suffix (`/hook?key=S/sub?a=1`); an empty body sent with
    /// `Content-Length: 0` lost the header; a lowercase `head` became HEAD.
    #[test]
    fn the_url_is_joined_as_a_forward_joins_it() {
        let ev = event(&[("content-length", b"0")], "/sub", Some("a=1"));
        let cmd = curl_command(&ev, b"", "http://h:1/hook?key=S");
        assert!(cmd.contains(" 'http://h:1/hook/sub?key=S&a=1'"), "{cmd}");
        assert!(cmd.ends_with(" \\\n  --data-raw ''\n"), "{cmd}");
        let no_length = event(&[], "", None);
        assert!(!curl_command(&no_length, b"", "http://h/in/x").contains("--data"));
        let mut head = event(&[], "", None);
        head.method = "head".into();
        assert!(curl_command(&head, b"", "http://h/in/x").contains("-X 'head'"));
        let dots = event(&[], "/a/%2e%2e/b", None);
        assert!(
            curl_command(&dots, b"", "http://h/in/x")
                .starts_with("# The path has a '.' or '..' segment"),
        );
    }

    /// The path and query are the sender's: a bidi override in them must
    /// not make the pasted command read differently from what runs.
    #[test]
    fn a_url_with_control_or_bidi_characters_is_hex_quoted() {
        let ev = event(&[], "/a\u{202E}b", Some("x=\u{1b}[2J"));
        let cmd = curl_command(&ev, b"", "http://h/in/x");
        assert!(
            cmd.contains("$'http\\x3a\\x2f\\x2fh\\x2fin\\x2fx\\x2fa\\xe2\\x80\\xaeb"),
            "{cmd}"
        );
        assert!(
            !cmd.contains('\u{202E}') && !cmd.contains('\u{1b}'),
            "{cmd}"
        );
    }

    #[test]
    fn binary_bodies_go_through_a_file() {
        let ev = event(&[], "", None);
        let cmd = curl_command(&ev, b"\x00\x01\xffa\n", "http://h/in/x");
        assert!(cmd.starts_with("base64 -d > 'hookrelay-body-01KAAAAAAAAAAAAAAAAAAAAAAA.bin' <<'HOOKRELAY_BODY'\nAAH/YQo=\nHOOKRELAY_BODY\n"), "{cmd}");
        assert!(
            cmd.ends_with("--data-binary '@hookrelay-body-01KAAAAAAAAAAAAAAAAAAAAAAA.bin'\n"),
            "{cmd}"
        );
        assert!(!cmd.contains("\n  -d "), "never curl's -d");
    }

    #[test]
    fn huge_bodies_are_not_embedded() {
        let ev = event(&[], "", None);
        let body = vec![b'a'; EMBED_MAX + 1];
        let cmd = curl_command(&ev, &body, "http://h/in/x");
        assert!(cmd.len() < 2048, "{} bytes", cmd.len());
        assert!(
            cmd.starts_with("# The body (1048577 bytes) is too large"),
            "{cmd}"
        );
        assert!(
            cmd.ends_with("--data-binary '@hookrelay-body-01KAAAAAAAAAAAAAAAAAAAAAAA.bin'\n"),
            "{cmd}"
        );
    }
}
