//! Export of stored events: JSON Lines (one event per line, with body and
//! attempts, the API's record shape) or HAR 1.2 (each event as a request
//! with the target's last answer), for the filters of `GET /api/events`.

use serde_json::{Value, json};

use crate::error::Result;
use crate::event::{Attempt, Event, EventState};
use crate::store::Store;

/// The most events one export returns; narrow the filter for more.
pub const MAX_EXPORT: usize = 10_000;

/// The most bytes one export builds (it is built in memory): senders choose
/// the bodies, and JSON can grow a body sixfold (`\u0000`).
pub const MAX_EXPORT_BYTES: usize = 128 << 20;

/// Exports built or being sent at once: each takes up to about four times
/// [`MAX_EXPORT_BYTES`] while it is built, and keeps its text until the
/// client has read it, so sixteen at once took 6.9 GB.
pub const AT_ONCE: usize = 2;

/// How long an export waits for its turn before it is refused (`503`).
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// The export of `ids` (oldest first) as JSON Lines or HAR (`har`), built
/// from the newest until it has passed `budget` bytes (the event that
/// crosses it is the last one taken), so a cut keeps the newest events as
/// the count cap and `limit` do. Also returns the oldest event exported
/// when older ones were left out for the budget: the cursor to go on from.
pub fn build(
    s: &Store,
    ids: &[String],
    har: bool,
    base: &str,
    budget: usize,
) -> Result<(String, Option<String>)> {
    let mut lines = Vec::new();
    let mut entries = Vec::new();
    let mut size = 0;
    let mut oldest = None;
    let mut left_out = false;
    for id in ids.iter().rev() {
        if size >= budget {
            left_out = true;
            break;
        }
        let Some((ev, body, attempts)) = s.event_full(id)? else {
            continue;
        };
        if har {
            let answer = target_answer(s, &ev, &attempts)?;
            let entry = har_entry(&ev, &body, answer.as_ref(), base);
            size += entry.to_string().len();
            entries.push(entry);
        } else {
            let line = jsonl_line(&ev, &body, &attempts);
            size += line.len();
            lines.push(line);
        }
        oldest = Some(id);
    }
    let text = if har {
        entries.reverse();
        har_document(entries).to_string()
    } else {
        lines.iter().rev().map(String::as_str).collect()
    };
    Ok((text, oldest.filter(|_| left_out).cloned()))
}

fn jsonl_line(ev: &Event, body: &[u8], attempts: &[Attempt]) -> String {
    let mut line = ev.to_api(Some(body), Some(attempts)).to_string();
    line.push('\n');
    line
}

fn har_headers(h: &[(String, Vec<u8>)]) -> Value {
    h.iter()
        .map(|(n, v)| json!({ "name": n, "value": String::from_utf8_lossy(v) }))
        .collect::<Vec<_>>()
        .into()
}

/// A body as HAR text: UTF-8 as it is, anything else base64 (`encoding`).
/// `cut`: `body` is the start of a longer one, so a character cut at its
/// end does not make it binary.
fn har_text(body: &[u8], mime: &str, cut: bool) -> serde_json::Map<String, Value> {
    use base64::Engine;
    let text = match std::str::from_utf8(body) {
        Ok(t) => Some(t),
        Err(e) if cut && e.error_len().is_none() => {
            std::str::from_utf8(&body[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    let mut out = serde_json::Map::new();
    out.insert("mimeType".into(), mime.into());
    match text {
        Some(t) => {
            out.insert("text".into(), t.into());
        }
        None => {
            out.insert(
                "text".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .into(),
            );
            out.insert("encoding".into(), "base64".into());
        }
    }
    out
}

/// HAR `cookies` from the `cookie` lines of a request (`a=1; b=2`) or the
/// `set-cookie` lines of an answer (its first pair each).
fn har_cookies(headers: &[(String, Vec<u8>)], set_cookie: bool) -> Value {
    let name = if set_cookie { "set-cookie" } else { "cookie" };
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| {
            let line = String::from_utf8_lossy(v).into_owned();
            let pairs: Vec<String> = if set_cookie {
                line.split(';').take(1).map(str::to_string).collect()
            } else {
                line.split(';').map(str::to_string).collect()
            };
            pairs
        })
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            Some(json!({ "name": n, "value": v }))
        })
        .collect::<Vec<_>>()
        .into()
}

/// One HAR entry: the request as received at `base` (the ingest URL) and
/// the endpoint target's last answer, when there was one.
/// The target's last answer to `ev`: among the newest attempts a detail
/// carries, else further back a page at a time (an event replayed to other
/// URLs many times after its delivery).
fn target_answer(s: &Store, ev: &Event, attempts: &[Attempt]) -> Result<Option<Attempt>> {
    if let Some(a) = attempts.iter().rev().find(|a| a.to_target) {
        return Ok(Some(a.clone()));
    }
    let Some(oldest) = attempts.first() else {
        return Ok(None);
    };
    for a in s.attempts_back(&ev.id, Some(oldest.n)) {
        let a = a?;
        if a.to_target {
            return Ok(Some(a));
        }
    }
    Ok(None)
}

fn har_entry(ev: &Event, body: &[u8], answer: Option<&Attempt>, base: &str) -> Value {
    let mime = ev
        .header("content-type")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_else(|| "application/octet-stream".into());
    let url = format!(
        "{base}/in/{}{}{}",
        ev.endpoint,
        ev.path,
        ev.query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    );
    let query: Vec<Value> = ev
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            json!({ "name": n, "value": v })
        })
        .collect();
    // The event's answer: its target's last (a mirror's or a replay's to
    // another URL is not), or for a bin what it answered itself.
    let response = match answer {
        Some(a) => {
            let rmime = a
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let mut content = har_text(&a.body, &rmime, a.body_truncated);
            content.insert("size".into(), a.body_size.into());
            if a.body_truncated {
                content.insert(
                    "comment".into(),
                    format!(
                        "hookrelay keeps the first {} bytes of an answer: the rest of its {} bytes is not stored",
                        a.body.len(),
                        a.body_size
                    )
                    .into(),
                );
            }
            json!({
                "status": a.status.unwrap_or(0),
                "statusText": a.error.map(|e| format!("{e:?}")).unwrap_or_default(),
                "httpVersion": "HTTP/1.1",
                "cookies": har_cookies(&a.headers, true),
                "headers": har_headers(&a.headers),
                "content": content,
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": a.body_size,
            })
        }
        None => {
            // What hookrelay itself answered the sender, where no target
            // did (the headers and body of a bin's answer are not kept per
            // event: its settings may have changed since).
            let (status, text) = match ev.state {
                EventState::Held => (202, "held by hookrelay"),
                EventState::Rejected => (401, "refused by hookrelay: signature"),
                _ => (ev.last_status.unwrap_or(0), ""),
            };
            json!({
                "status": status, "statusText": text, "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
                "content": { "size": 0, "mimeType": "" }, "redirectURL": "", "headersSize": -1, "bodySize": -1,
            })
        }
    };
    let mut request = json!({
        "method": ev.method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": har_cookies(&ev.headers, false),
        "headers": har_headers(&ev.headers),
        "queryString": query,
        "headersSize": -1,
        "bodySize": body.len(),
    });
    // A request without a body has no `postData` (a made-up one would
    // have an importer send a body and a type the sender did not).
    if !body.is_empty() {
        request["postData"] = har_text(body, &mime, false).into();
    }
    json!({
        "startedDateTime": crate::time::rfc3339_ms(ev.received_at),
        "time": answer.map(|a| a.latency_ms).unwrap_or(0),
        "request": request,
        "response": response,
        "cache": {},
        "timings": { "send": 0, "wait": answer.map(|a| a.latency_ms).unwrap_or(0), "receive": 0 },
        "comment": format!("hookrelay event {} ({})", ev.id, ev.state.as_str()),
    })
}

fn har_document(entries: Vec<Value>) -> Value {
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "hookrelay", "version": env!("CARGO_PKG_VERSION") },
            "entries": entries,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventState;
    use crate::store::Durability;

    /// A stored bin event whose body is `n` NUL bytes (6n bytes in JSON).
    fn store_nuls(s: &Store, n: usize) -> String {
        let ev: Event = serde_json::from_value(json!({
            "id": Store::new_id(), "endpoint": "b", "received_at": 0, "method": "POST",
            "path": "", "query": null, "headers": [], "size": n, "remote_addr": "127.0.0.1:1",
            "state": EventState::Captured,
        }))
        .unwrap();
        s.insert_event(ev, &vec![0u8; n]).unwrap().id
    }

    /// A cut by size keeps the newest events, as the count cap and `limit`
    /// do, stops after the event that crosses the budget, and names the
    /// oldest one taken: the cursor for the older rest.
    #[test]
    fn an_export_cut_by_size_keeps_the_newest_and_says_where_to_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Durability::Buffered).unwrap();
        let ids: Vec<String> = (0..4).map(|_| store_nuls(&s, 1000)).collect();
        for har in [false, true] {
            // 6,000 bytes an event: the second taken crosses 10,000.
            let (text, cursor) = build(&s, &ids, har, "http://x", 10_000).unwrap();
            assert_eq!(cursor.as_deref(), Some(ids[2].as_str()), "har={har}");
            let at = |id: &String| text.find(id.as_str());
            assert!(at(&ids[0]).is_none() && at(&ids[1]).is_none(), "har={har}");
            assert!(at(&ids[2]) < at(&ids[3]), "har={har}: oldest first");
            assert!(at(&ids[2]).is_some(), "har={har}");
            let (text, cursor) = build(&s, &ids, har, "http://x", 1 << 20).unwrap();
            assert_eq!(cursor, None, "har={har}");
            assert!(ids.iter().all(|id| text.contains(id.as_str())), "har={har}");
        }
    }
}
