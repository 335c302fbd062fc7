//! Endpoints: the named routes senders post to, their validated fields, and
//! the JSON shapes the API accepts (create, patch) and returns.
//!
//! Everything that reaches an [`Endpoint`] has passed [`EndpointInput::apply`],
//! so the rest of the crate trusts its fields.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::signature::SignatureConfig;

/// The longest delay a retry schedule may hold: the queue's due times are
/// milliseconds and the jittered delay must stay a valid `Duration`.
pub const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// `[a-z0-9][a-z0-9_-]{0,63}`: safe in a URL path, a RocksDB key prefix
/// (never contains the 0x00 separator) and an HTML attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Slug> {
        let bytes = s.as_bytes();
        let ok_first = bytes
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
        if ok_first && ok_rest && bytes.len() <= 64 {
            Ok(Slug(s.to_string()))
        } else {
            Err(Error::BadRequest(format!(
                "invalid slug {s:?}: use 1 to 64 characters from a-z, 0-9, '_' and '-', starting with a letter or digit"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Slug::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Paused,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Disabled => "disabled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Forward,
    Queue,
}

/// One rule of `success_codes`: `"2xx"`, `"301"` or `"200-299"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeRule {
    Class(u16),
    Exact(u16),
    Range(u16, u16),
}

impl CodeRule {
    pub fn parse(s: &str) -> Result<CodeRule, String> {
        let s = s.trim();
        let code = |t: &str| -> Result<u16, String> {
            t.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    format!("{s:?} is not a status code, a class like 2xx, or a range like 200-299")
                })
        };
        if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            match class.parse::<u16>() {
                Ok(c @ 1..=5) if class.len() == 1 => Ok(CodeRule::Class(c)),
                _ => Err(format!("{s:?} is not a status class (1xx to 5xx)")),
            }
        } else if let Some((lo, hi)) = s.split_once('-') {
            let (lo, hi) = (code(lo)?, code(hi)?);
            if lo > hi {
                return Err(format!("range {s:?} is empty"));
            }
            Ok(CodeRule::Range(lo, hi))
        } else {
            code(s).map(CodeRule::Exact)
        }
    }

    pub fn matches(self, status: u16) -> bool {
        match self {
            CodeRule::Class(c) => status / 100 == c,
            CodeRule::Exact(c) => status == c,
            CodeRule::Range(lo, hi) => (lo..=hi).contains(&status),
        }
    }
}

impl fmt::Display for CodeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodeRule::Class(c) => write!(f, "{c}xx"),
            CodeRule::Exact(c) => write!(f, "{c}"),
            CodeRule::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

/// The status codes that count as a successful delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct SuccessCodes(pub Vec<CodeRule>);

impl Default for SuccessCodes {
    fn default() -> Self {
        SuccessCodes(vec![
            CodeRule::Class(2),
            CodeRule::Exact(301),
            CodeRule::Exact(302),
        ])
    }
}

impl SuccessCodes {
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.matches(status))
    }
}

impl TryFrom<Vec<String>> for SuccessCodes {
    type Error = String;
    fn try_from(v: Vec<String>) -> Result<Self, String> {
        if v.is_empty() {
            return Err("success_codes must name at least one code".into());
        }
        v.iter()
            .map(|s| CodeRule::parse(s))
            .collect::<Result<_, _>>()
            .map(SuccessCodes)
    }
}

impl From<SuccessCodes> for Vec<String> {
    fn from(c: SuccessCodes) -> Vec<String> {
        c.0.iter().map(|r| r.to_string()).collect()
    }
}

/// What a bin answers. `sequence` (e.g. `[500, 500, 200]`) overrides
/// `status` in turn and cycles, to exercise a sender's retries.
/// One bin response header as people type it (`Name: value`, the dashboard
/// form and `--response-header`); None without a colon.
pub fn parse_header_line(line: &str) -> Option<(String, String)> {
    let (n, v) = line.split_once(':')?;
    Some((n.trim().to_string(), v.trim().to_string()))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseSpec {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay_ms: u64,
    pub sequence: Vec<u16>,
}

impl Default for ResponseSpec {
    fn default() -> Self {
        ResponseSpec {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"ok":true}"#.into(),
            delay_ms: 0,
            sequence: Vec::new(),
        }
    }
}

/// A bin's canned answer lives in every copy of its endpoint record (the
/// cache, each list page): the same cap whether it comes through the API
/// (1 MiB requests) or the dashboard (2 MiB forms).
pub const MAX_RESPONSE_BODY: usize = 512 * 1024;
const MAX_SEQUENCE: usize = 1000;

impl ResponseSpec {
    fn validate(&self) -> Result<(), String> {
        for s in std::iter::once(&self.status).chain(&self.sequence) {
            if !(200..=599).contains(s) {
                return Err(format!("response status {s} must be between 200 and 599"));
            }
        }
        for (name, value) in &self.headers {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("response header name {name:?} is not valid"))?;
            if crate::deliver::per_hop(name) {
                return Err(format!(
                    "response header {name:?} frames the message or describes the connection; hookrelay sets it"
                ));
            }
            http::HeaderValue::from_str(value)
                .map_err(|_| format!("response header value for {name:?} is not valid"))?;
        }
        if self.delay_ms > 60_000 {
            return Err("response delay_ms must be at most 60000".into());
        }
        if self.body.len() > MAX_RESPONSE_BODY {
            return Err(format!(
                "response body must be at most {} KiB",
                MAX_RESPONSE_BODY / 1024
            ));
        }
        if self.sequence.len() > MAX_SEQUENCE {
            return Err(format!(
                "response sequence must have at most {MAX_SEQUENCE} statuses"
            ));
        }
        Ok(())
    }

    /// The status for the `n`th request (0-based) this bin answers.
    pub fn status_for(&self, n: usize) -> u16 {
        if self.sequence.is_empty() {
            self.status
        } else {
            self.sequence[n % self.sequence.len()]
        }
    }
}

pub const DEFAULT_RETRY: [&str; 6] = ["5s", "5m", "30m", "2h", "5h", "10h"];

fn default_max_in_flight() -> u32 {
    4
}

fn default_max_queue_depth() -> u64 {
    100_000
}

/// An endpoint as stored. Policy state (`consecutive_failures`, disable
/// reason) lives here too, so a restart resumes the count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub slug: Slug,
    pub name: String,
    pub status: Status,
    pub target: Option<String>,
    pub mode: Mode,
    pub timeout_ms: u64,
    pub failure_threshold: u32,
    pub success_codes: SuccessCodes,
    pub retry: Vec<String>,
    pub signature: Option<SignatureConfig>,
    pub response: ResponseSpec,
    pub notify_url: Option<String>,
    pub mirror: Option<String>,
    /// Queue mode: one delivery in flight at a time, in arrival order.
    #[serde(default)]
    pub ordered: bool,
    /// Queue mode: deliveries in flight at once for this endpoint.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Queue mode: pending events before ingest answers 503 (backpressure).
    #[serde(default = "default_max_queue_depth")]
    pub max_queue_depth: u64,
    /// Send a test ping when the endpoint is created or resumed.
    #[serde(default)]
    pub ping_on_activate: bool,
    pub consecutive_failures: u32,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<u64>,
    pub created_at: u64,
    /// A release of held events was started and has not ended: a restart
    /// (after a crash, or a shutdown that stopped it) goes on with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub release_pending: bool,
}

impl Endpoint {
    /// The URLs hookrelay sends to for this endpoint, by field name.
    pub fn urls(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("target", self.target.as_deref()),
            ("mirror", self.mirror.as_deref()),
            ("notify_url", self.notify_url.as_deref()),
        ]
    }

    pub fn new(slug: Slug, now_ms: u64) -> Endpoint {
        let stamp = crate::time::rfc3339_ms(now_ms);
        let (date, time) = stamp.split_once('T').unwrap_or((&stamp, ""));
        let time = time.get(..8).unwrap_or(time);
        Endpoint {
            slug,
            name: format!("Endpoint created on {date} @ {time}"),
            status: Status::Active,
            target: None,
            mode: Mode::Forward,
            timeout_ms: 10_000,
            failure_threshold: 5,
            success_codes: SuccessCodes::default(),
            retry: DEFAULT_RETRY.iter().map(|s| s.to_string()).collect(),
            signature: None,
            response: ResponseSpec::default(),
            notify_url: None,
            mirror: None,
            ordered: false,
            max_in_flight: default_max_in_flight(),
            max_queue_depth: default_max_queue_depth(),
            ping_on_activate: false,
            consecutive_failures: 0,
            disabled_reason: None,
            disabled_at: None,
            created_at: now_ms,
            release_pending: false,
        }
    }

    pub fn is_bin(&self) -> bool {
        self.target.is_none()
    }

    /// Failures left before the policy disables the endpoint.
    pub fn failures_left(&self) -> u32 {
        (self.failure_threshold + 1).saturating_sub(self.consecutive_failures)
    }

    /// The JSON the API returns: secrets never leave, only `has_secret`.
    pub fn to_api(&self, counts: &Counts) -> serde_json::Value {
        let signature = self.signature.as_ref().map(|cfg| cfg.to_api());
        serde_json::json!({
            "slug": self.slug,
            "name": self.name,
            "status": self.status,
            "target": self.target,
            "mode": self.mode,
            "timeout_ms": self.timeout_ms,
            "failure_threshold": self.failure_threshold,
            "success_codes": self.success_codes,
            "retry": self.retry,
            "signature": signature,
            "has_secret": self.signature.as_ref().is_some_and(|c| !c.secrets().is_empty()),
            "response": self.response,
            "notify_url": self.notify_url,
            "mirror": self.mirror,
            "ordered": self.ordered,
            "max_in_flight": self.max_in_flight,
            "max_queue_depth": self.max_queue_depth,
            "ping_on_activate": self.ping_on_activate,
            "consecutive_failures": self.consecutive_failures,
            "failures_left": self.failures_left(),
            "disabled_reason": self.disabled_reason,
            "disabled_at": self.disabled_at.map(crate::time::rfc3339_ms),
            "created_at": crate::time::rfc3339_ms(self.created_at),
            "counts": counts,
            "ingest_path": format!("/in/{}", self.slug),
        })
    }
}

/// Per-endpoint counters, kept by the store with a merge operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub received: i64,
    pub delivered: i64,
    pub failed: i64,
    pub held: i64,
}

/// The fields a create or patch may carry; absent fields keep their value,
/// `null` clears the optional ones (`double_option`) and is refused for the
/// others (`refuse_null`). Unknown fields are refused so a typo never
/// silently does nothing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    #[serde(default, deserialize_with = "refuse_null::slug")]
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "refuse_null::name")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "refuse_null::status")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "double_option")]
    pub target: Option<Option<String>>,
    #[serde(default, deserialize_with = "refuse_null::mode")]
    pub mode: Option<Mode>,
    #[serde(default, deserialize_with = "refuse_null::timeout_ms")]
    pub timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "refuse_null::failure_threshold")]
    pub failure_threshold: Option<u32>,
    #[serde(default, deserialize_with = "refuse_null::success_codes")]
    pub success_codes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "refuse_null::retry")]
    pub retry: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub signature: Option<Option<crate::signature::SignaturePatch>>,
    #[serde(default, deserialize_with = "refuse_null::response")]
    pub response: Option<ResponseSpec>,
    #[serde(default, deserialize_with = "double_option")]
    pub notify_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub mirror: Option<Option<String>>,
    #[serde(default, deserialize_with = "refuse_null::ordered")]
    pub ordered: Option<bool>,
    #[serde(default, deserialize_with = "refuse_null::max_in_flight")]
    pub max_in_flight: Option<u32>,
    #[serde(default, deserialize_with = "refuse_null::max_queue_depth")]
    pub max_queue_depth: Option<u64>,
    #[serde(default, deserialize_with = "refuse_null::ping_on_activate")]
    pub ping_on_activate: Option<bool>,
}

/// `null` for a field that has no "none": refused with the field's name,
/// where serde alone would read it as absent and keep the value.
macro_rules! refuse_null {
    ($($field:ident),* $(,)?) => {
        mod refuse_null {
            use serde::de::{Deserialize, Deserializer, Error};
            $(pub fn $field<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Option<T>, D::Error> {
                Option::<T>::deserialize(d)?.map(Some).ok_or_else(|| {
                    D::Error::custom(concat!(
                        stringify!($field),
                        ": null is not a value for this field (leave it out to keep \
                         the current value; null clears only target, signature, \
                         notify_url and mirror)"
                    ))
                })
            })*
        }
    };
}
refuse_null!(
    slug,
    name,
    status,
    mode,
    timeout_ms,
    failure_threshold,
    success_codes,
    retry,
    response,
    ordered,
    max_in_flight,
    max_queue_depth,
    ping_on_activate,
);

/// Distinguishes an absent field (keep) from an explicit `null` (clear).
pub(crate) fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Checks that `url` is an absolute http(s) URL with a host.
pub fn validate_url(field: &str, url: &str) -> Result<(), String> {
    // A notify URL carries its secret in the path (Slack, Discord): an
    // error, logged at start, shows up to the host only.
    let shown = {
        let start = url.find("://").map_or(0, |i| i + 3);
        match url[start..].find('/') {
            Some(j) if field == "notify_url" => format!("{}/…", &url[..start + j]),
            _ => url.to_string(),
        }
    };
    // http's parser lets other bytes through; sent on the wire or shown on
    // a page they would not be what they look like.
    if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{field}: {:?} holds {:?}: a URL is printable ASCII (a host in its xn-- form, the rest percent-encoded)",
            crate::text::visible(&shown),
            c
        ));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("{field}: {shown:?} is not a valid URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "{field}: {shown:?} must start with http:// or https://"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{field}: {shown:?} has no host"));
    }
    // Not sent by the HTTP client, and the URL is logged and shown on every
    // attempt: a password in it would only leak.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "{field}: a user or password in the URL (user:pass@host) is not supported: it would not be sent, and the URL is shown in logs, attempts and exports"
        ));
    }
    // What follows the host's last `:` (an IPv6 literal's are inside `[]`);
    // empty means the scheme's port.
    let port = uri
        .authority()
        .and_then(|a| a.as_str().rsplit_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.contains(']') && !p.is_empty());
    if let Some(port) = port
        && !(port.bytes().all(|b| b.is_ascii_digit()) && matches!(port.parse::<u16>(), Ok(1..)))
    {
        return Err(format!(
            "{field}: {shown:?} has port {port:?}; a port is 1 to 65535"
        ));
    }
    // A fragment is never sent; the path suffix and query of each event
    // would land behind it and be dropped with it.
    if url.contains('#') {
        return Err(format!(
            "{field}: {shown:?} has a fragment (#…), which is never sent; drop it"
        ));
    }
    Ok(())
}

impl EndpointInput {
    /// The URLs this input sets, by field name ([`Endpoint::urls`]).
    pub fn urls(&self) -> [(&'static str, Option<&str>); 3] {
        fn set(u: &Option<Option<String>>) -> Option<&str> {
            u.as_ref()?.as_deref()
        }
        [
            ("target", set(&self.target)),
            ("mirror", set(&self.mirror)),
            ("notify_url", set(&self.notify_url)),
        ]
    }

    /// Applies the input to `ep`, validating every field. Errors name the field.
    pub fn apply(self, ep: &mut Endpoint) -> Result<()> {
        let bad = Error::BadRequest;
        if let Some(name) = self.name {
            if name.trim().is_empty() || name.chars().count() > 200 {
                return Err(bad("name: must be 1 to 200 characters".into()));
            }
            // A terminal would act on an escape sequence in `endpoint list`.
            if name.chars().any(char::is_control) {
                return Err(bad("name: must not contain control characters".into()));
            }
            ep.name = name;
        }
        if let Some(target) = self.target {
            if let Some(t) = &target {
                validate_url("target", t).map_err(bad)?;
            }
            ep.target = target;
        }
        if let Some(mode) = self.mode {
            ep.mode = mode;
        }
        if let Some(o) = self.ordered {
            ep.ordered = o;
        }
        if let Some(n) = self.max_in_flight {
            if !(1..=256).contains(&n) {
                return Err(bad("max_in_flight: must be between 1 and 256".into()));
            }
            ep.max_in_flight = n;
        }
        if let Some(n) = self.max_queue_depth {
            if n == 0 || n > crate::queue::TOTAL_MAX as u64 {
                return Err(bad(format!(
                    "max_queue_depth: must be between 1 and {} (the most hookrelay keeps queued across all endpoints)",
                    crate::queue::TOTAL_MAX
                )));
            }
            ep.max_queue_depth = n;
        }
        if let Some(p) = self.ping_on_activate {
            ep.ping_on_activate = p;
        }
        if let Some(t) = self.timeout_ms {
            if !(1..=300_000).contains(&t) {
                return Err(bad("timeout_ms: must be between 1 and 300000".into()));
            }
            ep.timeout_ms = t;
        }
        if let Some(t) = self.failure_threshold {
            if t > 1000 {
                return Err(bad("failure_threshold: must be at most 1000".into()));
            }
            ep.failure_threshold = t;
        }
        if let Some(codes) = self.success_codes {
            ep.success_codes =
                SuccessCodes::try_from(codes).map_err(|e| bad(format!("success_codes: {e}")))?;
        }
        if let Some(retry) = self.retry {
            // Stored as the schedule is shown: "5s, 1m" from a command line
            // is ["5s", "1m"].
            let retry: Vec<String> = retry.into_iter().map(|r| r.trim().to_string()).collect();
            if retry.is_empty() || retry.len() > 50 {
                return Err(bad("retry: give 1 to 50 durations such as \"5s\"".into()));
            }
            for r in &retry {
                let d = humantime::parse_duration(r).map_err(|_| {
                    bad(format!("retry: {r:?} is not a duration such as 5s, 5m, 2h"))
                })?;
                if d > MAX_RETRY_DELAY {
                    return Err(bad(format!("retry: {r:?} is longer than 30 days")));
                }
            }
            ep.retry = retry;
        }
        if let Some(sig) = self.signature {
            // `"signature": null` removes the check, secrets and all.
            ep.signature = match sig {
                Some(patch) => Some(patch.apply(ep.signature.as_ref()).map_err(bad)?),
                None => None,
            };
        }
        if let Some(resp) = self.response {
            resp.validate().map_err(|e| bad(format!("response: {e}")))?;
            ep.response = resp;
        }
        if let Some(n) = self.notify_url {
            if let Some(u) = &n {
                validate_url("notify_url", u).map_err(bad)?;
            }
            ep.notify_url = n;
        }
        if let Some(m) = self.mirror {
            if let Some(u) = &m {
                validate_url("mirror", u).map_err(bad)?;
            }
            ep.mirror = m;
        }
        if let Some(status) = self.status {
            set_status(ep, status, None, crate::time::now_ms());
        }
        Ok(())
    }
}

/// Changes the status; resuming clears the failure count and the reason.
pub fn set_status(ep: &mut Endpoint, status: Status, reason: Option<String>, now_ms: u64) {
    match status {
        Status::Active => {
            ep.consecutive_failures = 0;
            ep.disabled_reason = None;
            ep.disabled_at = None;
        }
        Status::Disabled => {
            ep.disabled_reason = Some(reason.unwrap_or_else(|| "disabled by hand".into()));
            ep.disabled_at = Some(now_ms);
        }
        // Paused is not disabled any more: the disable's reason goes, the
        // count stays (resuming resets it).
        Status::Paused => {
            ep.disabled_reason = None;
            ep.disabled_at = None;
        }
    }
    ep.status = status;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notify_url_refused_shows_its_host_not_its_secret_path() {
        for url in [
            "ftp://hooks.slack.com/services/T0/B0/supersecretpath1",
            "https://hooks.slack.com:99999/services/T0/B0/supersecretpath1",
            "https://hooks.slack.com/services/T0/B0/supersecret path1",
        ] {
            let err = validate_url("notify_url", url).unwrap_err();
            assert!(
                err.contains("hooks.slack.com") && !err.contains("supersecret"),
                "{err}"
            );
        }
        let err = validate_url("target", "ftp://a.example/path").unwrap_err();
        assert!(err.contains("ftp://a.example/path"), "{err}");
    }

    #[test]
    fn null_clears_the_optional_fields_and_is_refused_for_the_rest() {
        for field in ["target", "signature", "notify_url", "mirror"] {
            let input: EndpointInput =
                serde_json::from_value(serde_json::json!({ field: null })).unwrap();
            let cleared = match field {
                "target" => input.target == Some(None),
                "signature" => matches!(input.signature, Some(None)),
                "notify_url" => input.notify_url == Some(None),
                _ => input.mirror == Some(None),
            };
            assert!(cleared, "{field}: {input:?}");
        }
        for field in [
            "slug",
            "name",
            "status",
            "mode",
            "timeout_ms",
            "failure_threshold",
            "success_codes",
            "retry",
            "response",
            "ordered",
            "max_in_flight",
            "max_queue_depth",
            "ping_on_activate",
        ] {
            let err = serde_json::from_value::<EndpointInput>(serde_json::json!({ field: null }))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{field}: null is not a value for this field")),
                "{field}: {err}"
            );
        }
    }

    #[test]
    fn urls_with_a_bad_port_or_a_fragment_are_refused() {
        for ok in [
            "http://127.0.0.1:65535/x",
            "https://h/p?q=1",
            "http://[::1]:8080/",
            "http://h:/empty-port-is-the-default",
        ] {
            assert_eq!(validate_url("target", ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("http://127.0.0.1:99999/", "port \"99999\""),
            ("http://127.0.0.1:0/", "port \"0\""),
            ("http://h/#frag", "fragment"),
            ("http://h/p?q=1#f", "fragment"),
            ("http://h/\u{202e}txt.exe", "printable ASCII"),
            ("http://h/a b", "printable ASCII"),
            ("http://h:+80/", "port \"+80\""),
            ("http://user:pw@h/", "user or password"),
        ] {
            let err = validate_url("mirror", bad).unwrap_err();
            assert!(
                err.starts_with("mirror: ") && err.contains(says),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn slugs() {
        for ok in ["a", "shop", "0-x_y", &"a".repeat(64)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a b",
            "a/b",
            "é",
            &"a".repeat(65),
            "a\0",
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn success_code_rules() {
        let check = |rules: &[&str], status: u16, want: bool| {
            let codes =
                SuccessCodes::try_from(rules.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            assert_eq!(codes.contains(status), want, "{rules:?} {status}");
        };
        let default = ["2xx", "301", "302"];
        for (s, want) in [
            (200, true),
            (204, true),
            (299, true),
            (300, false),
            (301, true),
            (302, true),
            (303, false),
            (307, false),
            (308, false),
            (400, false),
            (410, false),
            (429, false),
            (500, false),
        ] {
            check(&default, s, want);
        }
        check(&["200-302"], 300, true);
        check(&["200-302"], 303, false);
        assert!(SuccessCodes::try_from(vec!["7xx".to_string()]).is_err());
        assert!(SuccessCodes::try_from(vec!["abc".to_string()]).is_err());
        assert!(SuccessCodes::try_from(vec!["300-200".to_string()]).is_err());
        assert!(SuccessCodes::try_from(Vec::<String>::new()).is_err());
    }

    #[test]
    fn default_name_has_date_and_time() {
        let ep = Endpoint::new(Slug::parse("x").unwrap(), 1_764_000_000_000);
        assert_eq!(ep.name, "Endpoint created on 2025-11-24 @ 16:00:00");
    }
}
