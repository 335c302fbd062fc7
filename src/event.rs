//! Events (one inbound request as received) and attempts (one outbound try),
//! as stored, plus their JSON views for the API.
//!
//! Raw and interpreted data stay apart: headers are kept as received (order,
//! case where the protocol keeps it, raw bytes); topic, ids and verdicts are
//! derived from that copy.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Header pairs in received order; values are raw bytes.
pub type Headers = Vec<(String, Vec<u8>)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    Received,
    Delivered,
    Failed,
    Held,
    Retrying,
    Captured,
    Rejected,
}

impl EventState {
    pub const ALL: [EventState; 7] = [
        EventState::Received,
        EventState::Delivered,
        EventState::Failed,
        EventState::Held,
        EventState::Retrying,
        EventState::Captured,
        EventState::Rejected,
    ];

    /// The one-byte tag used in index keys; never reuse a value.
    pub fn tag(self) -> u8 {
        match self {
            EventState::Received => b'r',
            EventState::Delivered => b'd',
            EventState::Failed => b'f',
            EventState::Held => b'h',
            EventState::Retrying => b't',
            EventState::Captured => b'c',
            EventState::Rejected => b'x',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Received => "received",
            EventState::Delivered => "delivered",
            EventState::Failed => "failed",
            EventState::Held => "held",
            EventState::Retrying => "retrying",
            EventState::Captured => "captured",
            EventState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<EventState> {
        EventState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The signature verdict recorded with an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureRecord {
    pub scheme: String,
    pub verdict: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_index: Option<usize>,
}

/// The verdict of an event whose endpoint checks no signature: the contract
/// names it `unchecked` rather than leaving the field empty.
fn unchecked() -> serde_json::Value {
    serde_json::json!({
        "scheme": null,
        "verdict": "unchecked",
        "detail": "no signature check configured for this endpoint",
    })
}

/// One inbound request. The body is stored apart (see `store`), so listing
/// events never reads payloads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub endpoint: String,
    pub received_at: u64,
    pub method: String,
    /// The path suffix after `/in/{slug}`, starting with `/` or empty.
    pub path: String,
    pub query: Option<String>,
    #[serde(with = "raw_headers")]
    pub headers: Headers,
    pub size: u64,
    pub remote_addr: String,
    pub state: EventState,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub duplicate_of: Option<String>,
    #[serde(default)]
    pub signature: Option<SignatureRecord>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_status: Option<u16>,
    /// Deliveries to the endpoint's own target by ingest or the queue
    /// (`forward` and `retry` attempts): the retry schedule's position.
    #[serde(default)]
    pub tries: u32,
    /// The mirror's last answer (0 when it gave none), beside `last_status`.
    #[serde(default)]
    pub mirror_status: Option<u16>,
    /// Some attempt went to the endpoint's own target (a release, replay or
    /// ping included): an unanswered one is an answer to compare the
    /// mirror's with, where `tries` counts only forwards and retries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub target_tried: bool,
    /// Received for a target (forward or queue mode, held or not): owed a
    /// delivery, so a release while the endpoint has no target keeps it
    /// held instead of capturing it as a bin's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owed: bool,
    /// Received over TLS: every copy sent on says `X-Forwarded-Proto: https`.
    #[serde(default)]
    pub tls: bool,
    /// The trusted proxy (`--trusted-proxy`) it came through, when
    /// `remote_addr` is the client that proxy named: copies sent on append
    /// this address to `X-Forwarded-For`, as the hop hookrelay saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_addr: Option<String>,
    /// HTTP/2's `:authority` when no `Host` header came: the host the
    /// sender addressed, for `X-Forwarded-Host` on copies sent on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

/// Whether the endpoint's target was tried, for [`mirror_differs`]: any
/// attempt to it (`tries` counts forwards and retries, `target_tried` the
/// rest), or an answer recorded. A bin's `last_status` is its own answer,
/// no target's.
pub fn target_was_tried(
    state: EventState,
    tries: u32,
    last_status: Option<u16>,
    target_tried: bool,
) -> bool {
    state != EventState::Captured && (tries > 0 || last_status.is_some() || target_tried)
}

/// Whether the mirror answered differently from the endpoint's target
/// (the `mirror_diff` filter and the dashboard's mark). A missing answer
/// counts as 0 on both sides, so "both unreachable" is no difference; an
/// event its target has not answered yet, or a bin's (no target), has
/// nothing to differ from.
pub fn mirror_differs(mirror: Option<u16>, target: Option<u16>, tried: bool) -> bool {
    match mirror {
        Some(m) if tried => m != target.unwrap_or(0),
        _ => false,
    }
}

impl Event {
    /// See [`mirror_differs`].
    pub fn mirror_differs(&self) -> bool {
        mirror_differs(
            self.mirror_status,
            self.last_status,
            target_was_tried(self.state, self.tries, self.last_status, self.target_tried),
        )
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The JSON view of the API; `body` is text when UTF-8, else `body_base64`.
    pub fn to_api(&self, body: Option<&[u8]>, attempts: Option<&[Attempt]>) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": self.id,
            "endpoint": self.endpoint,
            "received_at": crate::time::rfc3339_ms(self.received_at),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": headers_to_api(&self.headers),
            "size": self.size,
            "remote_addr": self.remote_addr,
            "proxy_addr": self.proxy_addr,
            "state": self.state,
            "topic": self.topic,
            "external_id": self.external_id,
            "duplicate_of": self.duplicate_of,
            "signature": self.signature.as_ref().map_or_else(unchecked, |s| serde_json::json!(s)),
            "attempt_count": self.attempts,
            "last_status": self.last_status,
            "mirror_status": self.mirror_status,
        });
        let obj = v.as_object_mut().expect("object");
        if self.owed {
            obj.insert("owed".into(), true.into());
        }
        if let Some(body) = body {
            insert_body(obj, "body", body);
        }
        if let Some(attempts) = attempts {
            obj.insert(
                "attempts".into(),
                attempts
                    .iter()
                    .map(Attempt::to_api)
                    .collect::<Vec<_>>()
                    .into(),
            );
            // A detail carries the newest attempts only (see
            // `store::ATTEMPTS_SHOWN`); the older ones are a page away.
            if let Some(omitted) = attempts.first().map(|a| a.n.saturating_sub(1))
                && omitted > 0
            {
                obj.insert("attempts_omitted".into(), omitted.into());
            }
        }
        v
    }
}

/// Adds `body` (UTF-8 text) or `body_base64` to a JSON object.
pub fn insert_body(obj: &mut serde_json::Map<String, serde_json::Value>, key: &str, body: &[u8]) {
    match std::str::from_utf8(body) {
        Ok(text) => {
            obj.insert(key.into(), text.into());
        }
        Err(_) => {
            obj.insert(key.into(), serde_json::Value::Null);
            obj.insert(
                format!("{key}_base64"),
                base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .into(),
            );
        }
    }
}

/// Header pairs as `[name, value]`; a value that is not UTF-8 is shown lossily
/// (the stored bytes are unchanged and `/body`-style raw access keeps them).
pub fn headers_to_api(h: &Headers) -> serde_json::Value {
    h.iter()
        .map(|(n, v)| serde_json::json!([n, String::from_utf8_lossy(v)]))
        .collect::<Vec<_>>()
        .into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Forward,
    Retry,
    Replay,
    Release,
    Ping,
    Mirror,
}

/// Why an attempt got no HTTP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    Connect,
    Tls,
    Timeout,
    Protocol,
    Blocked,
}

/// Response bodies kept per attempt; the full length is recorded beside it.
pub const ATTEMPT_BODY_CAP: usize = 64 * 1024;

/// One outbound try of an event to a URL, and what came of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attempt {
    pub n: u32,
    pub at: u64,
    pub trigger: Trigger,
    pub url: String,
    pub status: Option<u16>,
    #[serde(with = "raw_headers")]
    pub headers: Headers,
    #[serde(with = "raw_bytes")]
    pub body: Vec<u8>,
    pub body_size: u64,
    pub body_truncated: bool,
    pub latency_ms: u64,
    pub error: Option<ErrorKind>,
    pub error_detail: Option<String>,
    pub replay_of: Option<String>,
    pub success: bool,
    /// Sent to the endpoint's own target: only such attempts are the
    /// event's answer (`last_status`) and count as the endpoint's
    /// failures; a replay to another URL is recorded beside them.
    #[serde(default = "yes")]
    pub to_target: bool,
}

fn yes() -> bool {
    true
}

impl Attempt {
    pub fn to_api(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "n": self.n,
            "at": crate::time::rfc3339_ms(self.at),
            "trigger": self.trigger,
            "url": self.url,
            "status": self.status,
            "headers": headers_to_api(&self.headers),
            "body_size": self.body_size,
            "body_truncated": self.body_truncated,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "error_detail": self.error_detail,
            "replay_of": self.replay_of,
            "success": self.success,
            "to_target": self.to_target,
        });
        // The kept start of a longer answer may end inside a character:
        // shown as text up to it, not as base64 for want of its last bytes.
        let body = match std::str::from_utf8(&self.body) {
            Err(e) if self.body_truncated && e.error_len().is_none() => {
                &self.body[..e.valid_up_to()]
            }
            _ => &self.body[..],
        };
        insert_body(v.as_object_mut().expect("object"), "body", body);
        v
    }
}

/// Stores header values as text when they are UTF-8 and as `{"b64": …}`
/// otherwise, so the common case stays readable and nothing is lost.
mod raw_headers {
    use super::Headers;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Bin { b64: String },
    }

    /// [`Value`] borrowing its text: every stored event and outcome
    /// serializes its headers, and a copy of each value showed in profiles.
    #[derive(Serialize)]
    #[serde(untagged)]
    enum ValueRef<'a> {
        Text(&'a str),
        Bin { b64: String },
    }

    pub fn serialize<S: Serializer>(h: &Headers, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(h.len()))?;
        for (n, v) in h {
            let value = match std::str::from_utf8(v) {
                Ok(t) => ValueRef::Text(t),
                Err(_) => ValueRef::Bin {
                    b64: base64::engine::general_purpose::STANDARD.encode(v),
                },
            };
            seq.serialize_element(&(n.as_str(), value))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
        use base64::Engine;
        let pairs: Vec<(String, Value)> = Vec::deserialize(d)?;
        pairs
            .into_iter()
            .map(|(n, v)| {
                let bytes = match v {
                    Value::Text(t) => t.into_bytes(),
                    Value::Bin { b64 } => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(serde::de::Error::custom)?,
                };
                Ok((n, bytes))
            })
            .collect()
    }
}

/// Bytes as base64 text inside stored JSON records.
mod raw_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_bytes() {
        let ev = Event {
            id: "01".into(),
            endpoint: "a".into(),
            received_at: 1,
            method: "POST".into(),
            path: String::new(),
            query: None,
            headers: vec![
                ("X-A".into(), b"1".to_vec()),
                ("x-bin".into(), vec![0xff, 0xfe, b'a']),
                ("X-A".into(), b"2".to_vec()),
            ],
            size: 0,
            remote_addr: "127.0.0.1:1".into(),
            state: EventState::Received,
            topic: None,
            external_id: None,
            duplicate_of: None,
            signature: None,
            attempts: 0,
            last_status: None,
            tries: 0,
            mirror_status: None,
            target_tried: false,
            owed: false,
            tls: false,
            proxy_addr: None,
            authority: None,
        };
        let json = serde_json::to_vec(&ev).unwrap();
        let back: Event = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.headers, ev.headers);
    }

    /// The kept start of a long text answer that ends inside a character
    /// is text up to it; bytes that are not UTF-8 anywhere else, or in a
    /// whole body, are base64 as ever.
    #[test]
    fn a_cut_text_answer_stays_text() {
        let attempt = |body: Vec<u8>, truncated: bool| Attempt {
            n: 1,
            at: 0,
            trigger: Trigger::Forward,
            url: "http://t/".into(),
            status: Some(200),
            headers: Vec::new(),
            body,
            body_size: 1 << 20,
            body_truncated: truncated,
            latency_ms: 1,
            error: None,
            error_detail: None,
            replay_of: None,
            success: true,
            to_target: true,
        };
        let euro = "€".repeat(3);
        let cut = euro.as_bytes()[..8].to_vec();
        let v = attempt(cut.clone(), true).to_api();
        assert_eq!(v["body"], "€€", "{v}");
        assert!(v.get("body_base64").is_none(), "{v}");
        let v = attempt(cut, false).to_api();
        assert!(v["body_base64"].is_string(), "{v}");
        let v = attempt(vec![0xff, b'a', b'b'], true).to_api();
        assert!(v["body_base64"].is_string(), "{v}");
    }

    #[test]
    fn state_tags_are_unique() {
        let mut tags: Vec<u8> = EventState::ALL.iter().map(|s| s.tag()).collect();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), EventState::ALL.len());
        for s in EventState::ALL {
            assert_eq!(EventState::parse(s.as_str()), Some(s));
        }
    }
}
