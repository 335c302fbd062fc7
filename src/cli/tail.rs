//! `hookrelay tail`: follows `/api/stream` and prints a line per new event
//! and attempt (`--json`: the stream's JSON, one object per line); it
//! reconnects when hookrelay restarts.

use std::process::ExitCode;

use http_body_util::BodyExt;
use serde_json::Value;

use super::RemoteArgs;
use super::remote::{Remote, encode};

pub async fn run(args: &RemoteArgs, endpoint: Option<&str>) -> Result<ExitCode, String> {
    let r = Remote::new(args)?;
    // An unknown endpoint would be a stream that never says anything.
    if let Some(e) = endpoint {
        r.get(&format!(
            "/api/endpoints/{}",
            super::remote::path_segment(e)
        ))
        .await?;
    }
    let path = match endpoint {
        Some(e) => format!("/api/stream?endpoint={}", encode(e)),
        None => "/api/stream".to_string(),
    };
    let (url, headers) = r.stream_request(&path);
    // Like `tail -F`: a restart of hookrelay (or a dropped connection)
    // is waited out, not the end of the command; only a first connection
    // that fails, or a refusal, ends it.
    let mut since: Option<String> = None;
    let mut retry = 0;
    loop {
        let resp = match r.client().stream(&url, &headers).await {
            Ok(resp) => resp,
            Err(f) if since.is_none() => {
                return Err(format!("cannot reach hookrelay: {}", f.detail));
            }
            Err(_) => {
                back_off(&mut retry).await;
                continue;
            }
        };
        let status = resp.status().as_u16();
        let marked = resp.headers().contains_key(crate::admin::API_MARKER);
        if !marked && since.is_none() {
            return Err(r.not_hookrelay(status));
        }
        // Mid-restart, a proxy in front may answer 502/503 (or a page of
        // its own) for a moment: waited out like a refused connection. A
        // refusal ends it.
        if since.is_some() && (!marked || (500..600).contains(&status)) {
            back_off(&mut retry).await;
            continue;
        }
        if !resp.status().is_success() {
            let hint = match status {
                401 => "; pass --token or set HOOKRELAY_ADMIN_TOKEN",
                _ => "",
            };
            return Err(format!("stream refused: HTTP {}{hint}", resp.status()));
        }
        if let Some(t) = since.take() {
            eprintln!(
                "reconnected; what arrived meanwhile is not shown here: hookrelay events --since {t}"
            );
        }
        retry = 0;
        let why = follow(resp.into_body(), args.json).await;
        let now = crate::time::rfc3339_ms(crate::time::now_ms());
        eprintln!("{why}; reconnecting…");
        since = Some(now);
    }
}

/// Waits before the next try to reconnect, longer after each.
async fn back_off(retry: &mut usize) {
    tokio::time::sleep(RECONNECT[(*retry).min(RECONNECT.len() - 1)]).await;
    *retry += 1;
}

/// Pauses between tries to reconnect.
const RECONNECT: [std::time::Duration; 4] = [
    std::time::Duration::from_millis(500),
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(2),
    std::time::Duration::from_secs(5),
];

/// Prints the stream's items until it ends; says why it ended.
async fn follow(mut body: hyper::body::Incoming, json: bool) -> String {
    // Bytes until a line is whole: a character split across two chunks
    // would otherwise be decoded as two replacement characters.
    let mut buf: Vec<u8> = Vec::new();
    let (mut kind, mut data) = (String::new(), String::new());
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return format!("the connection to hookrelay was lost: {e}"),
        };
        let Some(chunk) = frame.data_ref() else {
            continue;
        };
        buf.extend_from_slice(chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&buf[..nl])
                .trim_end_matches('\r')
                .to_string();
            buf.drain(..=nl);
            if let Some(k) = line.strip_prefix("event:") {
                kind = k.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            } else if line.is_empty() && !data.is_empty() {
                print_item(&kind, &data, json);
                kind.clear();
                data.clear();
            }
        }
    }
    "hookrelay closed the stream (a restart?)".into()
}

fn print_item(kind: &str, data: &str, json: bool) {
    if json {
        say!("{{\"type\":{:?},\"data\":{data}}}", kind);
        return;
    }
    let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    match kind {
        "event" => say!(
            "{}  {:<7} /in/{}{}  {}  {}",
            v["received_at"].as_str().unwrap_or(""),
            v["method"].as_str().unwrap_or(""),
            v["endpoint"].as_str().unwrap_or(""),
            super::path_and_query(&v),
            v["state"].as_str().unwrap_or(""),
            v["id"].as_str().unwrap_or(""),
        ),
        "attempt" => {
            let a = &v["attempt"];
            let outcome = match (a["status"].as_u64(), a["error"].as_str()) {
                (Some(s), _) => format!("HTTP {s}"),
                (None, Some(e)) => format!("{e} error"),
                _ => "no answer".into(),
            };
            say!(
                "{}    -> {} #{} {} in {} ms  ({})",
                a["at"].as_str().unwrap_or(""),
                a["trigger"].as_str().unwrap_or(""),
                a["n"],
                outcome,
                a["latency_ms"],
                v["event"]["id"].as_str().unwrap_or(""),
            );
        }
        "lagged" => eprintln!(
            "{data} events and attempts were not shown: this terminal read more slowly than they came (hookrelay events lists them all)"
        ),
        other => say!("({other}) {data}"),
    }
}
