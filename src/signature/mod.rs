//! Webhook signatures: checking a delivery against an endpoint's secrets,
//! re-signing a replay with a fresh timestamp, and signing test pings.
//!
//! This module owns the schemes (one file each, behind the [`Scheme`] trait
//! and listed once in [`REGISTRY`]), the endpoint's [`SignatureConfig`], the
//! [`Verdict`] and the human-readable [`Check`] detail. It does no I/O and
//! keeps no clock: callers pass the raw headers as received, the body bytes
//! and "now" (for a stored event, the time it was received). What to do with
//! a verdict (store it, answer `401` when enforced) is left to ingest, and
//! which provider sent a request (topic, event id) to `crate::provider`.
//!
//! Invariants:
//! - **Every comparison of a signature goes through [`ct_eq`]** (constant
//!   time, via `subtle`), and a verdict is `valid` only when one full MAC
//!   matched.
//! - **No secret value ever appears in a detail**; only its position in the
//!   list (`secret_index`), and the expected MAC only as a short prefix.
//! - The signature is judged before the timestamp: `stale` means "authentic
//!   but outside the tolerance", so a forged old request is `invalid`.

mod generic;
mod github;
mod paddle;
mod shopify;
mod slack;
mod standard;
mod stripe;
mod woocommerce;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Header pairs as stored: names as received, values as raw bytes.
pub type Headers = [(String, Vec<u8>)];

/// The outcome of checking one delivery.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// A configured secret produced one of the signatures, within tolerance.
    Valid,
    /// Malformed signature headers, or no secret produced any signature.
    Invalid,
    /// Authentic, but the signed timestamp is outside the tolerance.
    Stale,
    /// A header the scheme needs is absent or empty.
    Missing,
    /// Nothing was checked: the endpoint has no secret.
    Unchecked,
}

/// Default `tolerance_s`: five minutes, what Stripe, Slack and Standard
/// Webhooks use.
pub const DEFAULT_TOLERANCE_S: u64 = 300;

/// Every scheme name a config may use, `auto` included.
pub const SCHEMES: &[&str] = &[
    "woocommerce",
    "github",
    "stripe",
    "shopify",
    "standard",
    "slack",
    "paddle",
    "hmac-sha256",
    "auto",
];

/// Endpoint signature configuration as stored and sent in JSON, e.g.
/// `{"scheme": "stripe", "secret": "whsec_…", "tolerance_s": 300, "enforce": false}`.
///
/// `secret` (one) and `secrets` (a list, for rotation) are both accepted;
/// [`SignatureConfig::secrets`] joins them, `secret` first. The first secret
/// is the one used to sign and re-sign. `tolerance_s = 0` turns timestamp
/// checks off, as `tolerance=0` does in Stripe's and Paddle's libraries.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// One of [`SCHEMES`].
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default = "default_tolerance")]
    pub tolerance_s: u64,
    /// Whether ingest rejects requests whose verdict is not `valid`.
    #[serde(default)]
    pub enforce: bool,
    /// `hmac-sha256` only: the header carrying the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// `hmac-sha256` only: `hex` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// `hmac-sha256` only: text before the encoded MAC, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `hmac-sha256` only: a header whose value is signed as `ts.body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// `github` (and `auto`) only: also accept `X-Hub-Signature: sha1=…`
    /// when the SHA-256 header is absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_sha1: bool,
}

fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_S
}

// Written by hand rather than derived so that a config that reaches a log
// line or a panic message never prints its secrets.
impl std::fmt::Debug for SignatureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureConfig")
            .field("scheme", &self.scheme)
            .field("secrets", &format_args!("[{} redacted]", self.secrets().len()))
            .field("tolerance_s", &self.tolerance_s)
            .field("enforce", &self.enforce)
            .field("header", &self.header)
            .field("encoding", &self.encoding)
            .field("prefix", &self.prefix)
            .field("timestamp_header", &self.timestamp_header)
            .field("legacy_sha1", &self.legacy_sha1)
            .finish()
    }
}

impl SignatureConfig {
    /// A config for `scheme` with one secret and the defaults.
    pub fn new(scheme: &str, secret: &str) -> Self {
        SignatureConfig {
            scheme: scheme.to_string(),
            secret: Some(secret.to_string()),
            secrets: Vec::new(),
            tolerance_s: DEFAULT_TOLERANCE_S,
            enforce: false,
            header: None,
            encoding: None,
            prefix: None,
            timestamp_header: None,
            legacy_sha1: false,
        }
    }

    /// All secrets, `secret` first, empty strings skipped.
    pub fn secrets(&self) -> Vec<&str> {
        self.secret
            .iter()
            .chain(self.secrets.iter())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Checks the config once, where it enters (API, TOML, CLI). Errors name
    /// the field and never quote a secret.
    pub fn validate(&self) -> Result<(), String> {
        if !SCHEMES.contains(&self.scheme.as_str()) {
            return Err(format!(
                "signature.scheme: unknown scheme `{}`; expected one of {}",
                printable(&self.scheme, 40),
                SCHEMES.join(", ")
            ));
        }
        if matches!(&self.secret, Some(s) if s.is_empty()) {
            return Err("signature.secret: must not be empty".into());
        }
        if let Some(i) = self.secrets.iter().position(String::is_empty) {
            return Err(format!("signature.secrets[{i}]: must not be empty"));
        }
        if self.secrets().is_empty() {
            return Err("signature.secret: a secret (or a `secrets` list) is required".into());
        }
        let generic = self.scheme == "hmac-sha256";
        if !generic {
            for (field, set) in [
                ("header", self.header.is_some()),
                ("encoding", self.encoding.is_some()),
                ("prefix", self.prefix.is_some()),
                ("timestamp_header", self.timestamp_header.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "signature.{field}: only used by scheme `hmac-sha256`, not `{}`",
                        self.scheme
                    ));
                }
            }
        }
        if self.legacy_sha1 && !matches!(self.scheme.as_str(), "github" | "auto") {
            return Err(format!(
                "signature.legacy_sha1: only used by scheme `github`, not `{}`",
                self.scheme
            ));
        }
        if generic {
            generic::validate(self)?;
        }
        // Standard Webhooks secrets are base64 keys; catching a bad one here
        // beats a confusing `invalid` on every delivery later.
        if matches!(self.scheme.as_str(), "standard") {
            let labelled = self
                .secret
                .iter()
                .map(|s| ("signature.secret".to_string(), s))
                .chain(
                    self.secrets
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (format!("signature.secrets[{i}]"), s)),
                );
            for (field, s) in labelled {
                if standard::key(s).is_none() {
                    return Err(format!(
                        "{field}: not a Standard Webhooks secret (`whsec_` followed by base64)"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The result of [`verify`], stored with the event.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// The scheme that judged the request; for `auto`, the one it picked.
    pub scheme: String,
    pub verdict: Verdict,
    /// One or two human-readable sentences: header, timestamp and age,
    /// received signature, expected prefix.
    pub detail: String,
    /// Position in [`SignatureConfig::secrets`] of the secret that matched.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_index: Option<usize>,
}

/// What [`resign`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resign {
    /// The full header list to send: same order, signature and timestamp
    /// headers replaced in place.
    Resigned(Vec<(String, Vec<u8>)>),
    /// Nothing changed, and why (body-only scheme, no secret, nothing signed).
    Unchanged(String),
}

/// Checks a delivery. `headers` are in received order with names as received
/// (compared case-insensitively); `now_unix` is the moment to measure the
/// timestamp against. `url` is accepted for schemes that sign the URL; none
/// of the current ones does.
pub fn verify(
    config: &SignatureConfig,
    headers: &Headers,
    body: &[u8],
    url: Option<&str>,
    now_unix: i64,
) -> Check {
    let _ = url;
    let secrets = config.secrets();
    let mut scheme_name = config.scheme.clone();
    if secrets.is_empty() {
        return Check {
            scheme: scheme_name,
            verdict: Verdict::Unchecked,
            detail: "no secret configured: signature not checked".into(),
            secret_index: None,
        };
    }
    let (scheme, picked) = match resolve(config, headers) {
        Ok(found) => found,
        Err(reject) => {
            return Check {
                scheme: scheme_name,
                verdict: reject.verdict,
                detail: reject.detail,
                secret_index: None,
            };
        }
    };
    if picked.is_some() {
        scheme_name = scheme.name().to_string();
    }
    let prefix_detail = |d: String| match &picked {
        Some(note) => format!("{note}; {d}"),
        None => d,
    };
    let parsed = match scheme.parse(config, headers) {
        Ok(p) => p,
        Err(reject) => {
            return Check {
                scheme: scheme_name,
                verdict: reject.verdict,
                detail: prefix_detail(reject.detail),
                secret_index: None,
            };
        }
    };
    let (verdict, detail, secret_index) = judge(scheme, config, &secrets, &parsed, body, now_unix);
    Check {
        scheme: scheme_name,
        verdict,
        detail: prefix_detail(detail),
        secret_index,
    }
}

/// Re-signs a replay with a fresh timestamp and the first secret. Schemes
/// that sign only the body are left alone: their signature is still valid.
pub fn resign(config: &SignatureConfig, headers: &Headers, body: &[u8], now_unix: i64) -> Resign {
    let Some(secret) = config.secrets().first().copied() else {
        return Resign::Unchanged("no secret configured: cannot re-sign".into());
    };
    let scheme = match resolve(config, headers) {
        Ok((s, _)) => s,
        Err(reject) => return Resign::Unchanged(reject.detail),
    };
    let Some(key) = scheme.key(secret) else {
        return Resign::Unchanged("the first secret is not usable as a key for this scheme".into());
    };
    match scheme.resign(config, &key, headers, body, now_unix) {
        Ok(replacements) => Resign::Resigned(replace_in_place(headers, replacements)),
        Err(why) => Resign::Unchanged(why),
    }
}

/// Headers carrying a fresh signature of `body` at `now_unix` with the first
/// secret, for test pings and tests. `msg_id` is used by schemes that sign an
/// id (Standard Webhooks). Empty when there is no secret, the secret is
/// unusable, or the scheme is `auto` (there is nothing to pick from).
pub fn sign(
    config: &SignatureConfig,
    body: &[u8],
    now_unix: i64,
    msg_id: &str,
) -> Vec<(String, Vec<u8>)> {
    let Some(secret) = config.secrets().first().copied() else {
        return Vec::new();
    };
    let Some(scheme) = by_name(&config.scheme) else {
        return Vec::new();
    };
    match scheme.key(secret) {
        Some(key) => scheme.sign(config, &key, body, now_unix, msg_id),
        None => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// The scheme trait and what schemes hand back to the shared judging code.

/// One signing convention. Schemes only parse headers and lay out the signed
/// bytes; computing and comparing MACs, secrets rotation, the timestamp
/// window and the detail text live once, in [`judge`], so every scheme gets
/// the same constant-time and never-leak-the-secret treatment.
pub(crate) trait Scheme: Sync {
    /// The config name, e.g. `stripe`.
    fn name(&self) -> &'static str;
    /// Whether the request carries this scheme's signature header; `auto`
    /// picks the first scheme in [`REGISTRY`] that says yes.
    fn detect(&self, headers: &Headers) -> bool;
    /// Reads the signature headers into candidates and the signed prefix.
    fn parse(&self, config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject>;
    /// The HMAC key for a configured secret; most schemes use its bytes.
    fn key(&self, secret: &str) -> Option<Vec<u8>> {
        Some(secret.as_bytes().to_vec())
    }
    /// Header pairs for a fresh signature.
    fn sign(
        &self,
        config: &SignatureConfig,
        key: &[u8],
        body: &[u8],
        now: i64,
        msg_id: &str,
    ) -> Vec<(String, Vec<u8>)>;
    /// Replacement header pairs for a replay at `now`, or why none are
    /// needed. The default is for schemes that sign only the body.
    fn resign(
        &self,
        config: &SignatureConfig,
        key: &[u8],
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let _ = (config, key, headers, body, now);
        Err(format!(
            "{} signs only the body: the original signature is still valid",
            self.name()
        ))
    }
}

/// Every concrete scheme, in the order `auto` tries them.
pub(crate) static REGISTRY: &[&dyn Scheme] = &[
    &standard::Standard,
    &stripe::Stripe,
    &github::GitHub,
    &shopify::Shopify,
    &woocommerce::WooCommerce,
    &slack::Slack,
    &paddle::Paddle,
    &generic::Generic,
];

fn by_name(name: &str) -> Option<&'static dyn Scheme> {
    REGISTRY.iter().copied().find(|s| s.name() == name)
}

/// Picks the scheme for this request; for `auto`, also a note saying which.
fn resolve(
    config: &SignatureConfig,
    headers: &Headers,
) -> Result<(&'static dyn Scheme, Option<String>), Reject> {
    if config.scheme == "auto" {
        return REGISTRY
            .iter()
            .copied()
            .find(|s| s.detect(headers))
            .map(|s| (s, Some(format!("auto picked {}", s.name()))))
            .ok_or_else(|| Reject::missing("auto: no known signature header present".into()));
    }
    by_name(&config.scheme).map(|s| (s, None)).ok_or_else(|| {
        // Fail closed: a config that skipped validation must not let
        // requests through as if they had been checked.
        Reject::invalid(format!(
            "configuration error: unknown scheme `{}`",
            printable(&config.scheme, 40)
        ))
    })
}

/// The hash under the HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Algo {
    Sha256,
    /// GitHub's legacy `X-Hub-Signature` only.
    Sha1,
}

/// How the expected MAC is written before comparing it with a candidate.
/// Libraries that compare the header text (Stripe, Octokit, Slack, Paddle,
/// Shopify, WooCommerce receivers) are matched by comparing text too, so an
/// upper-case hex signature is `invalid` here exactly as it is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// Lower-case hex text.
    Hex,
    /// Standard base64 text with padding.
    Base64,
    /// Raw MAC bytes; the scheme decoded the candidates itself.
    Bytes,
}

/// Which side of "now" a timestamp may stray to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Window {
    /// Only too-old is stale (Stripe's libraries accept future timestamps).
    PastOnly,
    /// Too old and too new are both stale.
    Both,
}

/// A scheme's reading of the request.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// Header that carried the signatures, named in the detail.
    pub header: String,
    pub algo: Algo,
    /// Bytes signed before the body (timestamp, id, separators).
    pub prefix: Vec<u8>,
    pub form: Form,
    /// Signatures to compare with, in the [`Form`] given.
    pub candidates: Vec<Vec<u8>>,
    /// The received signature text for the detail, as sent.
    pub received: Vec<String>,
    pub timestamp: Option<Stamp>,
    /// Scheme-specific remark for the detail (ignored entries and such).
    pub note: Option<String>,
}

/// A signed timestamp and how the scheme's official library bounds it.
#[derive(Clone, Debug)]
pub(crate) struct Stamp {
    pub unix: i64,
    pub window: Window,
    /// How the library applies the tolerance, quoted in the detail.
    pub rule: &'static str,
}

/// A request that cannot be judged: headers absent or malformed.
#[derive(Debug)]
pub(crate) struct Reject {
    pub verdict: Verdict,
    pub detail: String,
}

impl Reject {
    pub(crate) fn missing(detail: String) -> Self {
        Reject {
            verdict: Verdict::Missing,
            detail,
        }
    }
    pub(crate) fn invalid(detail: String) -> Self {
        Reject {
            verdict: Verdict::Invalid,
            detail,
        }
    }
}

/// Computes each secret's MAC once, compares it with every candidate in
/// constant time, then applies the timestamp window.
fn judge(
    scheme: &dyn Scheme,
    config: &SignatureConfig,
    secrets: &[&str],
    parsed: &Parsed,
    body: &[u8],
    now: i64,
) -> (Verdict, String, Option<usize>) {
    let mut matched = None;
    let mut expected_shown = Vec::new();
    let mut unusable = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        let Some(key) = scheme.key(secret) else {
            unusable.push(i);
            continue;
        };
        let raw = mac(parsed.algo, &key, &parsed.prefix, body);
        let expected = render(parsed.form, &raw);
        // Every candidate is compared, even after a match, so the time taken
        // does not depend on which one matched.
        let mut hit = false;
        for candidate in &parsed.candidates {
            hit |= ct_eq(&expected, candidate);
        }
        if hit && matched.is_none() {
            matched = Some(i);
        }
        expected_shown.push((i, short_expected(parsed.form, &raw)));
    }

    let mut parts = Vec::new();
    let received = match parsed.received.len() {
        0 => "no signature".to_string(),
        1 => format!("received {}", printable(&parsed.received[0], 80)),
        n => format!(
            "received {n} signatures: {}",
            parsed
                .received
                .iter()
                .take(4)
                .map(|r| printable(r, 80))
                .collect::<Vec<_>>()
                .join(", ")
                + if n > 4 { ", …" } else { "" }
        ),
    };
    parts.push(format!("{}: {received}", parsed.header));
    if let Some(note) = &parsed.note {
        parts.push(note.clone());
    }
    let stale = parsed
        .timestamp
        .as_ref()
        .map(|stamp| describe_stamp(stamp, config.tolerance_s, now, &mut parts))
        .unwrap_or(false);
    if !unusable.is_empty() {
        parts.push(format!("unusable secret(s) at index {unusable:?}"));
    }

    let verdict = match matched {
        None => {
            // The expected MAC in full is a valid signature for this body
            // under our secret: showing it would make the dashboard (or any
            // API reader) a signing oracle for attacker-chosen bodies. Eight
            // characters (32 bits in hex, 48 in base64) are enough for a
            // person to see "computed something different" and useless for
            // forging a full 256-bit MAC.
            let shown: Vec<String> = expected_shown
                .iter()
                .map(|(i, p)| format!("secret #{i} expects {p}…"))
                .collect();
            if !shown.is_empty() {
                parts.push(shown.join(", "));
            }
            parts.insert(0, "no signature matches".into());
            Verdict::Invalid
        }
        Some(i) if stale => {
            parts.insert(0, format!("signature matches secret #{i} but the timestamp is outside the tolerance"));
            Verdict::Stale
        }
        Some(i) => {
            parts.insert(0, format!("signature matches secret #{i}"));
            Verdict::Valid
        }
    };
    (verdict, parts.join("; "), matched)
}

/// Adds the timestamp sentence to `parts`; true when outside tolerance.
fn describe_stamp(stamp: &Stamp, tolerance: u64, now: i64, parts: &mut Vec<String>) -> bool {
    let age = now.saturating_sub(stamp.unix);
    let when = if age >= 0 {
        format!("{age} s old")
    } else {
        format!("{} s in the future", age.unsigned_abs())
    };
    if tolerance == 0 {
        parts.push(format!(
            "timestamp {} is {when} (tolerance 0: not checked)",
            stamp.unix
        ));
        return false;
    }
    let tol = i64::try_from(tolerance).unwrap_or(i64::MAX);
    let stale = age > tol || (stamp.window == Window::Both && age < -tol);
    parts.push(format!(
        "timestamp {} is {when} (tolerance {tolerance} s; {})",
        stamp.unix, stamp.rule
    ));
    stale
}

// ---------------------------------------------------------------------------
// Shared helpers for the scheme files.

/// HMAC of `prefix || body`; streamed so a large body is not copied.
pub(crate) fn mac(algo: Algo, key: &[u8], prefix: &[u8], body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    match algo {
        Algo::Sha256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            m.update(prefix);
            m.update(body);
            m.finalize().into_bytes().to_vec()
        }
        Algo::Sha1 => {
            let mut m = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
            m.update(prefix);
            m.update(body);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn render(form: Form, raw: &[u8]) -> Vec<u8> {
    match form {
        Form::Hex => hex(raw).into_bytes(),
        Form::Base64 => B64.encode(raw).into_bytes(),
        Form::Bytes => raw.to_vec(),
    }
}

fn short_expected(form: Form, raw: &[u8]) -> String {
    let text = match form {
        Form::Hex => hex(raw),
        Form::Base64 | Form::Bytes => B64.encode(raw),
    };
    text.chars().take(8).collect()
}

/// Constant-time equality; lengths are public (they are fixed per scheme).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Hex of either case; `None` on odd length or a non-hex character.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Standard-alphabet base64 with or without padding (secrets are often
/// pasted unpadded; Standard Webhooks' own library pads them itself).
pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).ok()
}

/// Strict standard base64 (canonical padding), for received signatures.
pub(crate) fn unb64_strict(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

/// A header looked up case-insensitively (first occurrence wins).
pub(crate) enum Lookup<'a> {
    Absent,
    Empty,
    NotText,
    Text(&'a str),
}

pub(crate) fn lookup<'a>(headers: &'a Headers, name: &str) -> Lookup<'a> {
    let Some((_, value)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
        return Lookup::Absent;
    };
    match std::str::from_utf8(value) {
        // Surrounding whitespace is HTTP framing, not part of the value.
        Ok(text) => match text.trim_matches([' ', '\t']) {
            "" => Lookup::Empty,
            t => Lookup::Text(t),
        },
        Err(_) => Lookup::NotText,
    }
}

/// Whether a header is present with a non-empty value.
pub(crate) fn present(headers: &Headers, name: &str) -> bool {
    !matches!(lookup(headers, name), Lookup::Absent | Lookup::Empty)
}

/// The text of a required header: absent or empty is `missing`, bytes that
/// are not UTF-8 are `invalid`.
pub(crate) fn require<'a>(headers: &'a Headers, name: &str) -> Result<&'a str, Reject> {
    match lookup(headers, name) {
        Lookup::Absent => Err(Reject::missing(format!("{name} header absent"))),
        Lookup::Empty => Err(Reject::missing(format!("{name} header is empty"))),
        Lookup::NotText => Err(Reject::invalid(format!("{name} header is not UTF-8 text"))),
        Lookup::Text(t) => Ok(t),
    }
}

/// A Unix timestamp in plain decimal digits. Stricter than the libraries'
/// `int()`/`float()` (no sign, spaces, `_` or fraction): senders never send
/// those, and accepting them would only widen what an attacker can vary.
pub(crate) fn parse_unix(name: &str, text: &str) -> Result<i64, Reject> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reject::invalid(format!(
            "{name} timestamp {} is not a Unix time in seconds",
            printable(text, 40)
        )));
    }
    text.parse()
        .map_err(|_| Reject::invalid(format!("{name} timestamp is out of range")))
}

/// Header text made safe and short for a detail line: control and non-ASCII
/// characters become `?`, and long values are cut.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// The header list with each replacement written over the first header of
/// that name (keeping its spelling and position), later duplicates dropped,
/// and replacements for absent headers appended.
fn replace_in_place(
    headers: &Headers,
    replacements: Vec<(String, Vec<u8>)>,
) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len() + replacements.len());
    let mut used = vec![false; replacements.len()];
    for (name, value) in headers {
        match replacements
            .iter()
            .position(|(r, _)| r.eq_ignore_ascii_case(name))
        {
            Some(i) if used[i] => {}
            Some(i) => {
                used[i] = true;
                out.push((name.clone(), replacements[i].1.clone()));
            }
            None => out.push((name.clone(), value.clone())),
        }
    }
    for (i, r) in replacements.into_iter().enumerate() {
        if !used[i] {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests;
