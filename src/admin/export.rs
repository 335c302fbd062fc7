//! Export of stored events: JSON Lines (one event per line, with body and
//! attempts, the API's record shape) or HAR 1.2 (each event as a request
//! with the target's last answer), for the filters of `GET /api/events`.

use serde_json::{Value, json};

use crate::event::{Attempt, Event, Trigger};

/// The most events one export returns; narrow the filter for more.
pub const MAX_EXPORT: usize = 10_000;

pub fn jsonl_line(ev: &Event, body: &[u8], attempts: &[Attempt]) -> String {
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

fn har_content(body: &[u8], mime: &str) -> Value {
    use base64::Engine;
    match std::str::from_utf8(body) {
        Ok(text) => json!({ "size": body.len(), "mimeType": mime, "text": text }),
        Err(_) => json!({
            "size": body.len(),
            "mimeType": mime,
            "text": base64::engine::general_purpose::STANDARD.encode(body),
            "encoding": "base64",
        }),
    }
}

/// One HAR entry: the request as received at `base` (the ingest URL) and
/// the endpoint target's last answer, when there was one.
pub fn har_entry(ev: &Event, body: &[u8], attempts: &[Attempt], base: &str) -> Value {
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
    let answer = attempts.iter().rev().find(|a| a.trigger != Trigger::Mirror);
    let response = match answer {
        Some(a) => {
            let rmime = a
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            json!({
                "status": a.status.unwrap_or(0),
                "statusText": a.error.map(|e| format!("{e:?}")).unwrap_or_default(),
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": har_headers(&a.headers),
                "content": har_content(&a.body, &rmime),
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": a.body_size,
            })
        }
        None => json!({
            "status": 0, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
            "content": { "size": 0, "mimeType": "" }, "redirectURL": "", "headersSize": -1, "bodySize": -1,
        }),
    };
    json!({
        "startedDateTime": crate::time::rfc3339_ms(ev.received_at),
        "time": answer.map(|a| a.latency_ms).unwrap_or(0),
        "request": {
            "method": ev.method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": har_headers(&ev.headers),
            "queryString": query,
            "postData": har_content(body, &mime),
            "headersSize": -1,
            "bodySize": body.len(),
        },
        "response": response,
        "cache": {},
        "timings": { "send": 0, "wait": answer.map(|a| a.latency_ms).unwrap_or(0), "receive": 0 },
        "comment": format!("hookrelay event {} ({})", ev.id, ev.state.as_str()),
    })
}

pub fn har_document(entries: Vec<Value>) -> Value {
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "hookrelay", "version": env!("CARGO_PKG_VERSION") },
            "entries": entries,
        }
    })
}
