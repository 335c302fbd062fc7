//! Calls to a running server's admin API for the client commands.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use super::RemoteArgs;
use crate::deliver::guard::TargetGuard;
use crate::deliver::{Client, Failure, Outbound, Reply};
use crate::event::ErrorKind;

/// The most of one admin answer the CLI reads: far above what a target may
/// send back (an event with a 25 MiB body is ~34 MB of JSON, an export up
/// to ~128 MiB).
const MAX_ANSWER: usize = 512 << 20;
/// How long one admin request may take: a replay may first wait for the
/// queue's attempt of its event (up to the endpoint's 300 s timeout + 5 s)
/// and then make its own (up to 300 s more).
const TIMEOUT: Duration = Duration::from_secs(660);

pub struct Remote {
    client: Client,
    base: String,
    token: Option<String>,
}

impl Remote {
    pub fn new(args: &RemoteArgs) -> Result<Remote, String> {
        let base = args.server.trim_end_matches('/').to_string();
        // Said as the user wrote it, before any path is appended to it.
        let url = base.parse::<http::Uri>().ok();
        if !url
            .as_ref()
            .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        {
            return Err(format!(
                "--server / HOOKRELAY_SERVER: {:?} is not an http:// or https:// URL of hookrelay's admin listener (such as http://127.0.0.1:8081)",
                args.server
            ));
        }
        // A path is kept as a prefix (a proxy in front may mount the API
        // under one); a query or fragment would end up before `/api/…`.
        if args.server.contains(['?', '#']) {
            return Err(format!(
                "--server / HOOKRELAY_SERVER: {:?} has a query or fragment: give the admin listener's URL only (such as http://127.0.0.1:8081, or https://proxy.example/hookrelay behind a proxy)",
                args.server
            ));
        }
        let authority = url
            .as_ref()
            .and_then(|u| u.authority())
            .map_or("", |a| a.as_str());
        // Not printed back: the URL is in every error message.
        if authority.contains('@') {
            return Err(
                "--server / HOOKRELAY_SERVER: a user or password in the URL is not used (and would be printed in messages): give the admin token with --token or HOOKRELAY_ADMIN_TOKEN".into(),
            );
        }
        // `http::Uri` takes a port it cannot read (`:99999`, `:`) as none,
        // and the client then went to port 80, with the token.
        let port = match authority.rfind(']') {
            Some(i) => authority[i + 1..].strip_prefix(':'),
            None => authority.rsplit_once(':').map(|(_, p)| p),
        };
        if port.is_some_and(|p| p.parse::<u16>().map_or(true, |n| n == 0)) {
            return Err(format!(
                "--server / HOOKRELAY_SERVER: {:?} has no valid port (1-65535)",
                args.server
            ));
        }
        Ok(Remote {
            client: Client::new(None, 0, TargetGuard::off())?,
            base,
            token: args.token.clone(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, String> {
        self.send("GET", path, None).await
    }

    /// Sends a request and returns the JSON answer; an error status becomes
    /// the API's `error` message.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let reply = self.request(method, path, body).await?;
        self.answer(reply)
    }

    /// A GET for following something that outlives a restart of hookrelay
    /// (a bulk job): `None` while hookrelay is away — no connection, a cut
    /// one, a `5xx`, or a proxy in front answering for it — so the caller
    /// can try again; a refusal is still an error.
    pub async fn get_unless_away(&self, path: &str) -> Result<Option<Value>, String> {
        let Ok(reply) = self.client.send(self.outbound("GET", path, None)?).await.0 else {
            return Ok(None);
        };
        if !marked(&reply) || reply.status >= 500 {
            return Ok(None);
        }
        self.answer(reply).map(Some)
    }

    /// An answer's JSON; an error status becomes the API's `error` message.
    fn answer(&self, reply: Reply) -> Result<Value, String> {
        if reply.status >= 300 {
            return Err(self.refusal(&reply));
        }
        Ok(if reply.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&reply.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&reply.body).into()))
        })
    }

    /// A GET of an export: its text, and when the server cut it at its cap,
    /// the cursor the older events follow with (`None` for none).
    pub async fn get_export(&self, path: &str) -> Result<(String, Option<String>), String> {
        let reply = self.request("GET", path, None).await?;
        let header = |name: &str| {
            reply
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        if reply.status >= 300 {
            return Err(self.refusal(&reply));
        }
        let next = match header("x-hookrelay-truncated").as_deref() {
            Some("true") => Some(header("x-hookrelay-next-cursor").unwrap_or_default()),
            _ => None,
        };
        Ok((String::from_utf8_lossy(&reply.body).into_owned(), next))
    }

    /// A GET whose answer goes to `take` piece by piece as it arrives,
    /// however long it is and takes (backups); returns its length. An
    /// answer cut short is an error.
    pub async fn download(
        &self,
        path: &str,
        mut take: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, String> {
        use http_body_util::BodyExt;
        let (url, mut headers) = self.stream_request(path);
        headers[0].1 = b"*/*".to_vec();
        let resp = self
            .client
            .stream(&url, &headers)
            .await
            .map_err(|f| self.unreachable(f))?;
        let status = resp.status().as_u16();
        let head: crate::event::Headers = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        let mut body = resp.into_body();
        if status >= 300 {
            // An error document: short, read whole.
            let text = http_body_util::Limited::new(body, 1 << 20)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let reply = Reply {
                status,
                reason: None,
                headers: head,
                body_size: text.len() as u64,
                body: text,
                rest: None,
            };
            if !marked(&reply) {
                return Err(self.not_hookrelay(status));
            }
            return Err(self.refusal(&reply));
        }
        if !head
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(crate::admin::API_MARKER))
        {
            return Err(self.not_hookrelay(status));
        }
        let mut written = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                format!("the download from hookrelay was cut short after {written} bytes: {e}")
            })?;
            if let Some(chunk) = frame.data_ref() {
                take(chunk)?;
                written += chunk.len() as u64;
            }
        }
        Ok(written)
    }

    /// An answer that is not the API's success as the user reads it: the
    /// API's `error` message, or the answer itself when it is a short line
    /// of text (a page, such as a proxy's HTML, is not printed whole). A
    /// redirect (the dashboard's login) or a 404 without the API's error
    /// means the path in `--server` is not the admin listener's.
    fn refusal(&self, reply: &Reply) -> String {
        let status = reply.status;
        let text = String::from_utf8_lossy(&reply.body);
        let api_error = serde_json::from_slice::<Value>(&reply.body).ok();
        let msg = match &api_error {
            Some(v) => v["error"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_string),
            None if text.len() <= 200 && !text.contains(['<', '\n']) && !text.is_empty() => {
                text.into_owned()
            }
            None => "refused".to_string(),
        };
        let wrong_path = format!(
            "; check the path in --server or HOOKRELAY_SERVER ({}): hookrelay's API is under /api",
            self.base
        );
        let hint = match status {
            401 => "; pass --token or set HOOKRELAY_ADMIN_TOKEN".to_string(),
            300..=399 => {
                let to = reply
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("location"))
                    .map(|(_, v)| format!(" to {}", String::from_utf8_lossy(v)))
                    .unwrap_or_default();
                return format!("redirected{to} (HTTP {status}), not an API answer{wrong_path}");
            }
            404 if api_error.is_none() => wrong_path,
            _ => String::new(),
        };
        format!("{msg} (HTTP {status}){hint}")
    }

    /// The URL and headers of a streaming request (`tail`).
    pub fn stream_request(&self, path: &str) -> (String, Vec<(String, Vec<u8>)>) {
        let mut headers = vec![("accept".to_string(), b"text/event-stream".to_vec())];
        if let Some(t) = &self.token {
            headers.push(("authorization".into(), format!("Bearer {t}").into_bytes()));
        }
        (format!("{}{path}", self.base), headers)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, String> {
        let out = self.outbound(method, path, body)?;
        let reply = self
            .client
            .send(out)
            .await
            .0
            .map_err(|f| self.unreachable(f))?;
        if !marked(&reply) {
            return Err(self.not_hookrelay(reply.status));
        }
        Ok(reply)
    }

    fn outbound(&self, method: &str, path: &str, body: Option<Value>) -> Result<Outbound, String> {
        let (url, mut headers) = self.stream_request(path);
        headers[0].1 = b"application/json".to_vec();
        if body.is_some() {
            headers.push(("content-type".into(), b"application/json".to_vec()));
        }
        Ok(Outbound {
            method: Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?,
            url: url
                .parse()
                .map_err(|_| format!("--server: {url:?} is not a URL"))?,
            headers,
            body: body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
            timeout: TIMEOUT,
            answer: crate::deliver::Answer::Whole(MAX_ANSWER),
        })
    }

    /// Something answered at `--server`, but not hookrelay's admin API (a
    /// wrong port, a login page of a proxy in front).
    pub fn not_hookrelay(&self, status: u16) -> String {
        format!(
            "{} answered HTTP {status} but is not hookrelay's admin API (no {} header): check --server or HOOKRELAY_SERVER",
            self.base,
            crate::admin::API_MARKER
        )
    }

    fn unreachable(&self, f: Failure) -> String {
        let hint = if f.kind == ErrorKind::Connect {
            " (is `hookrelay serve` running there? --server or HOOKRELAY_SERVER)"
        } else {
            ""
        };
        format!(
            "cannot reach hookrelay at {}: {}{hint}",
            self.base, f.detail
        )
    }
}

/// Did hookrelay's admin API answer (see [`crate::admin::API_MARKER`])?
fn marked(reply: &Reply) -> bool {
    reply
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(crate::admin::API_MARKER))
}

/// Percent-encodes a value for a URL query or path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn path_segment(s: &str) -> String {
    encode(s)
}

pub fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
