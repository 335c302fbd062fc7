//! `hookrelay tail`: follows `/api/stream` and prints a line per new event
//! and attempt (`--json`: the stream's JSON, one object per line).

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
    let resp = r
        .client()
        .stream(&url, &headers)
        .await
        .map_err(|f| format!("cannot reach hookrelay: {}", f.detail))?;
    if !resp.status().is_success() {
        let hint = match resp.status().as_u16() {
            401 => "; pass --token or set HOOKRELAY_ADMIN_TOKEN",
            _ => "",
        };
        return Err(format!("stream refused: HTTP {}{hint}", resp.status()));
    }
    let mut body = resp.into_body();
    // Bytes until a line is whole: a character split across two chunks
    // would otherwise be decoded as two replacement characters.
    let mut buf: Vec<u8> = Vec::new();
    let (mut kind, mut data) = (String::new(), String::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the connection to hookrelay was lost: {e}"))?;
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
                print_item(&kind, &data, args.json);
                kind.clear();
                data.clear();
            }
        }
    }
    eprintln!("hookrelay closed the stream (it is shutting down)");
    Ok(ExitCode::SUCCESS)
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
            v["path"].as_str().unwrap_or(""),
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
        other => say!("({other}) {data}"),
    }
}
