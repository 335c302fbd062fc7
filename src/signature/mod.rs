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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

impl Verdict {
    /// The verdict named by [`Verdict::as_str`].
    pub fn parse(s: &str) -> Option<Verdict> {
        [
            Verdict::Valid,
            Verdict::Invalid,
            Verdict::Stale,
            Verdict::Missing,
            Verdict::Unchecked,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// The name stored on events and shown everywhere (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Stale => "stale",
            Verdict::Missing => "missing",
            Verdict::Unchecked => "unchecked",
        }
    }
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

/// Whether `scheme` signs a timestamp (so `tolerance_s` applies): the
/// generic scheme only with a timestamp header; `auto` with whichever
/// timestamped scheme a sender uses.
pub fn has_timestamp(scheme: &str, timestamp_header: bool) -> bool {
    match scheme {
        "stripe" | "standard" | "slack" | "paddle" | "auto" => true,
        "hmac-sha256" => timestamp_header,
        _ => false,
    }
}

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
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets().len()),
            )
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

/// A signature config as a create or an edit gives it: a field left out
/// keeps the stored value. `secret` and `secrets` are one setting: giving
/// either replaces every stored secret, giving neither keeps them (they are
/// never read back, so an edit could not send them again). `null` clears
/// the `hmac-sha256` fields and is refused for the others. A new scheme
/// keeps `enforce` and the secrets; its other settings (the tolerance, a
/// GitHub's `legacy_sha1`, hmac-sha256's header and encoding) start from
/// their defaults unless given.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturePatch {
    #[serde(default, deserialize_with = "not_null")]
    pub scheme: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub secret: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub secrets: Option<Vec<String>>,
    #[serde(default, deserialize_with = "not_null")]
    pub tolerance_s: Option<u64>,
    #[serde(default, deserialize_with = "not_null")]
    pub enforce: Option<bool>,
    #[serde(default, deserialize_with = "crate::endpoint::double_option")]
    pub header: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::endpoint::double_option")]
    pub encoding: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::endpoint::double_option")]
    pub prefix: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::endpoint::double_option")]
    pub timestamp_header: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    pub legacy_sha1: Option<bool>,
}

/// A present field's value; `null` refused (a `"secret": null` taken as
/// "keep" would check the stored secret where the caller meant another).
fn not_null<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    <Option<T> as serde::Deserialize>::deserialize(d)?.map(Some).ok_or_else(|| {
        D::Error::custom(
            "null is not a value for this signature field (leave it out to keep the stored value; null clears only header, encoding, prefix and timestamp_header)",
        )
    })
}

impl std::fmt::Debug for SignaturePatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignaturePatch")
            .field("scheme", &self.scheme)
            .field(
                "secrets",
                &(self.secret.iter().count() + self.secrets.as_ref().map_or(0, Vec::len)),
            )
            .field("tolerance_s", &self.tolerance_s)
            .field("enforce", &self.enforce)
            .finish_non_exhaustive()
    }
}

impl SignaturePatch {
    /// Whether it gives secrets (replacing the stored ones).
    pub fn gives_secrets(&self) -> bool {
        self.secret.is_some() || self.secrets.is_some()
    }

    /// The patch as a whole setting, as a config file's table is: what it
    /// leaves out is the default, not the stored value — except the
    /// secrets, kept when it names none. (TOML has no `null` to clear a
    /// field, and a line taken out of the file must not live on.)
    pub fn whole(self) -> SignaturePatch {
        SignaturePatch {
            tolerance_s: Some(self.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S)),
            enforce: Some(self.enforce.unwrap_or(false)),
            header: Some(self.header.flatten()),
            encoding: Some(self.encoding.flatten()),
            prefix: Some(self.prefix.flatten()),
            timestamp_header: Some(self.timestamp_header.flatten()),
            legacy_sha1: Some(self.legacy_sha1.unwrap_or(false)),
            ..self
        }
    }

    /// The config `self` makes of `old` (none yet: the defaults), checked.
    /// Secrets it gives are checked as text too; stored ones are not
    /// judged again by rules newer than they are.
    pub fn apply(self, old: Option<&SignatureConfig>) -> Result<SignatureConfig, String> {
        let scheme = match (self.scheme, old) {
            (Some(s), _) => s,
            (None, Some(old)) => old.scheme.clone(),
            (None, None) => return Err("signature.scheme: required".into()),
        };
        // Only settings that fit the scheme now in force are carried over.
        let kept = old.filter(|o| o.scheme == scheme);
        let given = self.secret.is_some() || self.secrets.is_some();
        let (secret, secrets) = match (self.secret, self.secrets) {
            (None, None) => match old {
                Some(o) => (o.secret.clone(), o.secrets.clone()),
                None => (None, Vec::new()),
            },
            (secret, secrets) => (secret, secrets.unwrap_or_default()),
        };
        let carried = |new: Option<Option<String>>,
                       old: fn(&SignatureConfig) -> &Option<String>| {
            new.unwrap_or_else(|| kept.and_then(|k| old(k).clone()))
        };
        let config = SignatureConfig {
            legacy_sha1: self
                .legacy_sha1
                .unwrap_or_else(|| kept.is_some_and(|k| k.legacy_sha1)),
            header: carried(self.header, |k| &k.header),
            encoding: carried(self.encoding, |k| &k.encoding),
            prefix: carried(self.prefix, |k| &k.prefix),
            timestamp_header: carried(self.timestamp_header, |k| &k.timestamp_header),
            // Not across schemes: a 0 (checks off) chosen for one scheme
            // must not quietly switch off another's replay window.
            tolerance_s: self
                .tolerance_s
                .or(kept.map(|k| k.tolerance_s))
                .unwrap_or(DEFAULT_TOLERANCE_S),
            enforce: self.enforce.or(old.map(|o| o.enforce)).unwrap_or(false),
            scheme,
            secret,
            secrets,
        };
        config.validate()?;
        if given {
            config.check_secret_text()?;
        }
        Ok(config)
    }
}

impl SignatureConfig {
    /// The config as the API shows it: no secrets, only `has_secret` and
    /// `secret_count`; a setting left to its default shows the default.
    pub fn to_api(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.remove("secret");
            obj.remove("secrets");
            obj.insert("has_secret".into(), (!self.secrets().is_empty()).into());
            obj.insert("secret_count".into(), self.secrets().len().into());
            if self.scheme == "hmac-sha256" {
                obj.entry("header")
                    .or_insert(generic::DEFAULT_HEADER.into());
                obj.entry("encoding").or_insert("hex".into());
            }
        }
        v
    }

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

    /// Secrets as typed in: a copy-paste slip (a line break, a space at an
    /// end) would make every event `invalid` with nothing to say why.
    pub fn check_secret_text(&self) -> Result<(), String> {
        for (field, s) in self.labelled_secrets() {
            if s.chars().any(char::is_control) {
                return Err(format!(
                    "{field}: has a control character (a line break, a tab?); a signing secret is one line of text"
                ));
            }
            // A secret file saved with a byte-order mark, a zero-width
            // space pasted along: invisible, and no signature ever matches.
            if s.chars()
                .any(|c| crate::text::is_invisible(c) || crate::text::is_bidi_control(c))
            {
                return Err(format!(
                    "{field}: has an invisible character (a byte-order mark, a zero-width space?); check the copy"
                ));
            }
            if s.trim() != s {
                return Err(format!(
                    "{field}: starts or ends with a space; signing secrets never do (check the copy)"
                ));
            }
        }
        Ok(())
    }

    /// Each secret with the field that holds it, for messages.
    fn labelled_secrets(&self) -> impl Iterator<Item = (String, &String)> {
        let one = self
            .secret
            .iter()
            .map(|s| ("signature.secret".to_string(), s));
        let list = self.secrets.iter().enumerate();
        one.chain(list.map(|(i, s)| (format!("signature.secrets[{i}]"), s)))
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
        // With `auto` the sender picks the scheme: a signature captured from
        // a timestamped scheme (Stripe's `t.body`, Slack's `v0:t:body`)
        // checks again under a body-only one (GitHub, Shopify) with the
        // prefix moved into the body, so enforcing would admit old requests
        // forever.
        if self.scheme == "auto" && self.enforce {
            return Err(
                "signature.enforce: needs a named scheme; with `auto` the sender picks it, and an old request signed for a timestamped scheme could pass again as a body-only one"
                    .into(),
            );
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
            for (field, s) in self.labelled_secrets() {
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
    /// headers replaced in place; and the scheme that signed it (for
    /// `auto`, the one the sender used).
    Resigned(Vec<(String, Vec<u8>)>, &'static str),
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

/// Re-signs a replay with a fresh timestamp and the first secret (on
/// `auto`, the secret the event matches, under the scheme it was signed
/// with). Only an
/// event whose own signature was authentic on arrival (valid, or stale:
/// authentic but old) is re-signed: anything else would put the endpoint's
/// signature on a body its sender may never have signed (a forgery refused
/// at ingest). `arrived` is the verdict recorded then; without one (the
/// endpoint checked nothing then) the signature is checked now with the
/// current secrets, as of `received_unix`. Schemes that sign only the body
/// are left alone: their signature is still valid.
pub fn resign(
    config: &SignatureConfig,
    headers: &Headers,
    body: &[u8],
    arrived: Option<Verdict>,
    received_unix: i64,
    now_unix: i64,
) -> Resign {
    let secrets = config.secrets();
    let Some(first) = secrets.first().copied() else {
        return Resign::Unchanged("no secret configured: cannot re-sign".into());
    };
    let (verdict, detail) = match arrived.filter(|v| *v != Verdict::Unchecked) {
        Some(v) => (v, "as recorded on arrival".to_string()),
        None => {
            let c = verify(config, headers, body, None, received_unix);
            (c.verdict, c.detail)
        }
    };
    if !matches!(verdict, Verdict::Valid | Verdict::Stale) {
        return Resign::Unchanged(format!(
            "not re-signed: its own signature is {} ({detail}), and re-signing would vouch for a body its sender may never have signed",
            verdict.as_str(),
        ));
    }
    // With `auto` the secrets may be different providers' (one per
    // sender): the one the event matches signs again, where a named
    // scheme's first secret does (the newest, after a rotation).
    let secret = if config.scheme == "auto" {
        let matched = verify(config, headers, body, None, received_unix).secret_index;
        match matched.and_then(|i| secrets.get(i)) {
            Some(s) => *s,
            None => {
                return Resign::Unchanged(
                    "not re-signed: the secret it matched on arrival is no longer configured (an auto endpoint signs with the secret the sender used)".into(),
                );
            }
        }
    } else {
        first
    };
    let scheme = match resolve(config, headers) {
        Ok((s, _)) => s,
        Err(reject) => return Resign::Unchanged(reject.detail),
    };
    let Some(key) = scheme.key(secret) else {
        return Resign::Unchanged("the secret is not usable as a key for this scheme".into());
    };
    match scheme.resign(config, &key, headers, body, now_unix) {
        Ok(replacements) => {
            Resign::Resigned(replace_in_place(headers, replacements), scheme.name())
        }
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
    /// Raw MAC bytes; the scheme decoded the candidates itself (shown as
    /// base64).
    Bytes,
    /// Raw MAC bytes decoded from hex, shown as hex like what was received.
    HexBytes,
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

impl Parsed {
    /// One base64 HMAC-SHA256 of the body alone, compared as text (the
    /// providers' libraries compare the base64 strings).
    pub(crate) fn body_base64(header: &str, value: &str) -> Parsed {
        Parsed {
            header: header.into(),
            algo: Algo::Sha256,
            prefix: Vec::new(),
            form: Form::Base64,
            candidates: vec![value.as_bytes().to_vec()],
            received: vec![value.to_string()],
            timestamp: None,
            note: None,
        }
    }
}

/// The header a [`Parsed::body_base64`] scheme signs with.
pub(crate) fn sign_body_base64(header: &str, key: &[u8], body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mac = mac(Algo::Sha256, key, b"", body);
    vec![(header.into(), b64(&mac).into_bytes())]
}

/// `Scheme::resign` for a scheme that signs a timestamp: a fresh signature
/// at `now`, for an event that carried one in `header`.
pub(crate) fn resign_when_signed(
    scheme: &dyn Scheme,
    header: &str,
    config: &SignatureConfig,
    key: &[u8],
    headers: &Headers,
    body: &[u8],
    now: i64,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    if !present(headers, header) {
        return Err(format!("no {header} header: nothing to re-sign"));
    }
    Ok(scheme.sign(config, key, body, now, ""))
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
            parts.insert(
                0,
                format!("signature matches secret #{i} but the timestamp is outside the tolerance"),
            );
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
        Form::Bytes | Form::HexBytes => raw.to_vec(),
    }
}

fn short_expected(form: Form, raw: &[u8]) -> String {
    let text = match form {
        Form::Hex | Form::HexBytes => hex(raw),
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
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
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
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
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
mod tests {
    //! Table tests: official-library vectors, malformed input, re-signing,
    //! config validation, and a property test that random headers never
    //! panic and never verify.

    use super::*;
    use proptest::prelude::*;

    /// `tests/vectors/vectors.json`, written by `tests/vectors/generate.py`.
    #[derive(serde::Deserialize)]
    struct VectorFile {
        cases: Vec<Vector>,
        bodies: std::collections::HashMap<String, String>,
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        scheme: String,
        secrets: Vec<String>,
        headers: Vec<(String, String)>,
        body_b64: Option<String>,
        body_ref: Option<String>,
        ts: Option<i64>,
        now: Option<i64>,
        now_offset: Option<i64>,
        tolerance_s: u64,
        expected: Verdict,
        secret_index: Option<usize>,
    }

    fn load_vectors() -> Vec<(Vector, Vec<u8>)> {
        let file: VectorFile =
            serde_json::from_str(include_str!("../../tests/vectors/vectors.json")).unwrap();
        let bodies = file.bodies;
        file.cases
            .into_iter()
            .map(|v| {
                let encoded = match (&v.body_b64, &v.body_ref) {
                    (Some(b), _) => b.clone(),
                    (None, Some(r)) => bodies[r].clone(),
                    (None, None) => panic!("{}: no body", v.name),
                };
                let body = B64.decode(encoded).unwrap();
                (v, body)
            })
            .collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn config(scheme: &str, secrets: &[&str], tolerance_s: u64) -> SignatureConfig {
        SignatureConfig {
            secret: None,
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            tolerance_s,
            ..SignatureConfig::new(scheme, "")
        }
    }

    /// The one helper every table goes through: verifies and compares the
    /// verdict and the matching secret, and that no secret leaks into the
    /// detail.
    fn check(
        cfg: &SignatureConfig,
        headers: &Headers,
        body: &[u8],
        now: i64,
        expected: Verdict,
        secret_index: Option<usize>,
    ) -> Result<Check, String> {
        let got = verify(cfg, headers, body, None, now);
        for secret in cfg.secrets() {
            if secret.len() >= 6 && got.detail.contains(secret) {
                return Err(format!("detail leaks a secret: {}", got.detail));
            }
        }
        if got.verdict != expected || got.secret_index != secret_index {
            return Err(format!(
                "expected {expected:?} (secret {secret_index:?}), got {:?} (secret {:?}): {}",
                got.verdict, got.secret_index, got.detail
            ));
        }
        Ok(got)
    }

    #[test]
    fn official_library_vectors() {
        let vectors = load_vectors();
        assert!(vectors.len() >= 80, "only {} vectors", vectors.len());
        let mut failures = Vec::new();
        for (v, body) in &vectors {
            let now = v
                .now
                .unwrap_or_else(|| v.ts.unwrap() + v.now_offset.unwrap());
            let secrets: Vec<&str> = v.secrets.iter().map(String::as_str).collect();
            let cfg = config(&v.scheme, &secrets, v.tolerance_s);
            let hdrs: Vec<_> = v
                .headers
                .iter()
                .map(|(n, val)| (n.clone(), val.as_bytes().to_vec()))
                .collect();
            // standardwebhooks rejects on the timestamp before it looks at
            // the signature, so the libraries cannot attribute a stale
            // request to a secret; only the verdict is compared then.
            let index = match v.expected {
                Verdict::Stale => verify(&cfg, &hdrs, body, None, now).secret_index,
                _ => v.secret_index,
            };
            if let Err(e) = check(&cfg, &hdrs, body, now, v.expected, index) {
                failures.push(format!("{}: {e}", v.name));
            }
            // `auto` must reach the same verdict from the headers alone.
            let auto = SignatureConfig {
                scheme: "auto".into(),
                ..cfg.clone()
            };
            let got = verify(&auto, &hdrs, body, None, now);
            if got.verdict != v.expected && v.expected != Verdict::Missing {
                failures.push(format!(
                    "{} (auto): got {:?}: {}",
                    v.name, got.verdict, got.detail
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn valid_vectors_resign_to_valid_later() {
        for (v, body) in load_vectors() {
            if v.expected != Verdict::Valid {
                continue;
            }
            let secrets: Vec<&str> = v.secrets.iter().map(String::as_str).collect();
            let cfg = config(&v.scheme, &secrets, v.tolerance_s);
            let hdrs: Vec<_> = v
                .headers
                .iter()
                .map(|(n, val)| (n.clone(), val.as_bytes().to_vec()))
                .collect();
            let later = v.ts.or(v.now).unwrap() + 86_400;
            match resign(&cfg, &hdrs, &body, None, v.ts.or(v.now).unwrap(), later) {
                Resign::Resigned(new, _) => {
                    assert_eq!(new.len(), hdrs.len(), "{}", v.name);
                    for ((a, _), (b, _)) in new.iter().zip(&hdrs) {
                        assert_eq!(a, b, "{}: header order or names changed", v.name);
                    }
                    check(&cfg, &new, &body, later, Verdict::Valid, Some(0))
                        .unwrap_or_else(|e| panic!("{}: {e}", v.name));
                }
                Resign::Unchanged(why) => {
                    assert!(
                        matches!(v.scheme.as_str(), "github" | "shopify" | "woocommerce"),
                        "{}: {why}",
                        v.name
                    );
                    // Body-only: the original is still valid a day later.
                    check(&cfg, &hdrs, &body, later, Verdict::Valid, v.secret_index).unwrap();
                }
            }
        }
    }

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = b"{\"id\":\"evt_1\",\"type\":\"ping\"}";

    /// Every scheme with a config that signs, for the generic tables.
    fn all_configs() -> Vec<SignatureConfig> {
        let mut out: Vec<SignatureConfig> = [
            ("woocommerce", "wc-secret"),
            ("github", "gh-secret"),
            ("stripe", "whsec_stripe"),
            ("shopify", "shp-secret"),
            ("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("slack", "slack-secret"),
            ("paddle", "pdl-secret"),
        ]
        .iter()
        .map(|(s, k)| SignatureConfig::new(s, k))
        .collect();
        let mut generic = SignatureConfig::new("hmac-sha256", "generic-secret");
        generic.header = Some("X-Signature".into());
        generic.prefix = Some("sha256=".into());
        out.push(generic.clone());
        generic.encoding = Some("base64".into());
        generic.prefix = None;
        generic.timestamp_header = Some("X-Timestamp".into());
        out.push(generic);
        out
    }

    #[test]
    fn sign_then_verify_every_scheme() {
        for cfg in all_configs() {
            cfg.validate().unwrap();
            let signed = sign(&cfg, BODY, NOW, "msg_1");
            assert!(!signed.is_empty(), "{}", cfg.scheme);
            let got = check(&cfg, &signed, BODY, NOW + 10, Verdict::Valid, Some(0))
                .unwrap_or_else(|e| panic!("{}: {e}", cfg.scheme));
            assert!(
                got.detail.starts_with("signature matches secret #0"),
                "{}",
                got.detail
            );
            check(&cfg, &signed, b"other body", NOW, Verdict::Invalid, None)
                .unwrap_or_else(|e| panic!("{}: {e}", cfg.scheme));
            check(&cfg, &[], BODY, NOW, Verdict::Missing, None)
                .unwrap_or_else(|e| panic!("{}: {e}", cfg.scheme));
            // No secret: nothing is checked, whatever the headers say.
            let bare = config(&cfg.scheme, &[], 300);
            check(&bare, &signed, BODY, NOW, Verdict::Unchecked, None).unwrap();
        }
    }

    /// Header pairs written as text in a table.
    type Pairs<'a> = Vec<(&'a str, &'a str)>;

    #[test]
    fn malformed_headers_are_invalid_or_missing() {
        let big = "a".repeat(16 * 1024);
        let std_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        use Verdict::{Invalid, Missing};
        #[rustfmt::skip]
        let table: Vec<(&str, &str, Pairs, Verdict)> = vec![
            ("empty github", "github", vec![("X-Hub-Signature-256", "")], Missing),
            ("github sha1 only", "github", vec![("X-Hub-Signature", "sha1=00")], Missing),
            ("github short", "github", vec![("X-Hub-Signature-256", "sha256=abcd")], Invalid),
            ("github not hex", "github", vec![("X-Hub-Signature-256", "sha256=zz")], Invalid),
            ("github 16 KB", "github", vec![("X-Hub-Signature-256", &big)], Invalid),
            ("woo bad base64", "woocommerce", vec![("X-WC-Webhook-Signature", "!!!")], Invalid),
            ("shopify whitespace", "shopify", vec![("X-Shopify-Hmac-Sha256", "  ")], Missing),
            ("stripe empty", "stripe", vec![("Stripe-Signature", "")], Missing),
            ("stripe t only", "stripe", vec![("Stripe-Signature", "t=1700000000")], Invalid),
            ("stripe t no value", "stripe", vec![("Stripe-Signature", "t,v1=00")], Invalid),
            ("stripe v1 no value", "stripe", vec![("Stripe-Signature", "t=1,v1")], Invalid),
            ("stripe t text", "stripe", vec![("Stripe-Signature", "t=soon,v1=00")], Invalid),
            ("stripe t negative", "stripe", vec![("Stripe-Signature", "t=-5,v1=00")], Invalid),
            ("stripe t huge", "stripe", vec![("Stripe-Signature", "t=99999999999999999999999,v1=00")], Invalid),
            ("stripe 16 KB", "stripe", vec![("Stripe-Signature", &big)], Invalid),
            ("standard v1 empty", "standard", vec![("webhook-id", "m"), ("webhook-timestamp", "1700000000"), ("webhook-signature", "v1,")], Invalid),
            ("standard no comma", "standard", vec![("webhook-id", "m"), ("webhook-timestamp", "1700000000"), ("webhook-signature", "v1")], Invalid),
            ("standard bad base64", "standard", vec![("webhook-id", "m"), ("webhook-timestamp", "1700000000"), ("webhook-signature", "v1,@@@@")], Invalid),
            ("standard short", "standard", vec![("webhook-id", "m"), ("webhook-timestamp", "1700000000"), ("webhook-signature", "v1,AAAA")], Invalid),
            ("standard float ts", "standard", vec![("webhook-id", "m"), ("webhook-timestamp", "1700000000.5"), ("webhook-signature", "v1,AAAA")], Invalid),
            ("standard no id", "standard", vec![("webhook-timestamp", "1700000000"), ("webhook-signature", "v1,AAAA")], Missing),
            ("standard 16 KB", "standard", vec![("webhook-id", &big), ("webhook-timestamp", "1700000000"), ("webhook-signature", &big)], Invalid),
            ("slack no v0", "slack", vec![("X-Slack-Request-Timestamp", "1700000000"), ("X-Slack-Signature", "abc")], Invalid),
            ("slack ts text", "slack", vec![("X-Slack-Request-Timestamp", "now"), ("X-Slack-Signature", "v0=00")], Invalid),
            ("slack no ts", "slack", vec![("X-Slack-Signature", "v0=00")], Missing),
            ("paddle no h1", "paddle", vec![("Paddle-Signature", "ts=1700000000")], Invalid),
            ("paddle unknown key", "paddle", vec![("Paddle-Signature", "ts=1700000000;h2=00")], Invalid),
            ("paddle two equals", "paddle", vec![("Paddle-Signature", "ts=1700000000;h1=a=b")], Invalid),
            ("paddle no ts", "paddle", vec![("Paddle-Signature", "h1=00")], Invalid),
            ("auto nothing", "auto", vec![("Content-Type", "application/json")], Missing),
        ];
        for (name, scheme, pairs, expected) in table {
            let secret = if scheme == "standard" {
                std_secret
            } else {
                "tbl-s3cr3t-key"
            };
            let cfg = SignatureConfig::new(scheme, secret);
            check(&cfg, &headers(&pairs), BODY, NOW, expected, None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // Bytes that are not UTF-8 in the signature header.
        let cfg = SignatureConfig::new("github", "tbl-s3cr3t-key");
        let raw = vec![("X-Hub-Signature-256".to_string(), vec![0xff, 0xfe, b's'])];
        check(&cfg, &raw, BODY, NOW, Verdict::Invalid, None).unwrap();
    }

    #[test]
    fn github_legacy_sha1_only_when_enabled() {
        let mut cfg = SignatureConfig::new("github", "gh");
        cfg.legacy_sha1 = true;
        let signed = sign(&cfg, BODY, NOW, "");
        let sha1_only: Vec<_> = signed
            .iter()
            .filter(|(n, _)| n == "X-Hub-Signature")
            .cloned()
            .collect();
        let got = check(&cfg, &sha1_only, BODY, NOW, Verdict::Valid, Some(0)).unwrap();
        assert!(got.detail.contains("SHA-1"), "{}", got.detail);
        cfg.legacy_sha1 = false;
        let got = check(&cfg, &sha1_only, BODY, NOW, Verdict::Missing, None).unwrap();
        assert!(got.detail.contains("legacy_sha1"), "{}", got.detail);
    }

    #[test]
    fn details_say_what_was_seen() {
        let cfg = SignatureConfig::new("stripe", "whsec_abc");
        let signed = sign(&cfg, BODY, NOW - 400, "");
        let got = check(&cfg, &signed, BODY, NOW, Verdict::Stale, Some(0)).unwrap();
        assert!(got.detail.contains("400 s old"), "{}", got.detail);
        assert!(got.detail.contains("Stripe-Signature"), "{}", got.detail);
        let future = sign(&cfg, BODY, NOW + 4000, "");
        check(&cfg, &future, BODY, NOW, Verdict::Valid, Some(0)).unwrap();

        let wrong = SignatureConfig::new("stripe", "whsec_other");
        let got = check(&wrong, &signed, BODY, NOW, Verdict::Invalid, None).unwrap();
        // The expected MAC appears only as an 8-character prefix.
        let full = hex(&mac(
            Algo::Sha256,
            b"whsec_other",
            format!("{}.", NOW - 400).as_bytes(),
            BODY,
        ));
        assert!(
            got.detail
                .contains(&format!("secret #0 expects {}…", &full[..8])),
            "{}",
            got.detail
        );
        assert!(!got.detail.contains(&full[..9]), "{}", got.detail);

        let auto = SignatureConfig::new("auto", "whsec_abc");
        let got = check(&auto, &signed, BODY, NOW - 390, Verdict::Valid, Some(0)).unwrap();
        assert_eq!(got.scheme, "stripe");
        assert!(
            got.detail.starts_with("auto picked stripe"),
            "{}",
            got.detail
        );

        let mut off = SignatureConfig::new("stripe", "whsec_abc");
        off.tolerance_s = 0;
        let got = check(
            &off,
            &signed,
            BODY,
            NOW + 1_000_000,
            Verdict::Valid,
            Some(0),
        )
        .unwrap();
        assert!(got.detail.contains("not checked"), "{}", got.detail);
    }

    #[test]
    fn generic_scheme_decodes_either_case_and_padding() {
        let mut cfg = SignatureConfig::new("hmac-sha256", "k");
        cfg.header = Some("X-Sig".into());
        let mac_hex = hex(&mac(Algo::Sha256, b"k", b"", BODY));
        let upper = headers(&[("x-sig", &mac_hex.to_uppercase())]);
        check(&cfg, &upper, BODY, NOW, Verdict::Valid, Some(0)).unwrap();
        // The expected MAC is shown as hex, like what was received.
        let wrong = verify(&cfg, &headers(&[("x-sig", "e2")]), BODY, None, NOW);
        assert!(
            wrong
                .detail
                .contains(&format!("expects {}…", &mac_hex[..8])),
            "{}",
            wrong.detail
        );
        cfg.encoding = Some("base64".into());
        let unpadded = b64(&mac(Algo::Sha256, b"k", b"", BODY))
            .trim_end_matches('=')
            .to_string();
        check(
            &cfg,
            &headers(&[("X-Sig", &unpadded)]),
            BODY,
            NOW,
            Verdict::Valid,
            Some(0),
        )
        .unwrap();
        check(
            &cfg,
            &headers(&[("X-Sig", "%%%")]),
            BODY,
            NOW,
            Verdict::Invalid,
            None,
        )
        .unwrap();
    }

    /// Hunt #21: the docs and the CLI gave hmac-sha256's header a default
    /// that the scheme refused to go without.
    #[test]
    fn generic_scheme_defaults_to_x_signature_in_hex() {
        let cfg = SignatureConfig::new("hmac-sha256", "k");
        assert_eq!(cfg.validate(), Ok(()));
        let mac_hex = hex(&mac(Algo::Sha256, b"k", b"", BODY));
        let sent = headers(&[("x-signature", &mac_hex)]);
        check(&cfg, &sent, BODY, NOW, Verdict::Valid, Some(0)).unwrap();
        let signed = generic::Generic.sign(&cfg, b"k", BODY, NOW, "");
        assert_eq!(signed, [("X-Signature".to_string(), mac_hex.into_bytes())]);
        let none = verify(&cfg, &headers(&[("x-sig", "e2")]), BODY, None, NOW);
        assert_eq!(none.verdict, Verdict::Missing, "{}", none.detail);
    }

    #[test]
    fn resign_replaces_in_place_and_keeps_the_id() {
        let std_cfg = SignatureConfig::new("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        for family in ["webhook", "svix"] {
            let mut hdrs = vec![("Content-Type".to_string(), b"application/json".to_vec())];
            for (n, v) in sign(&std_cfg, BODY, NOW, "msg_keep") {
                hdrs.push((n.replace("webhook", family), v));
            }
            hdrs.push(("User-Agent".to_string(), b"Svix-Webhooks/1.0".to_vec()));
            let later = NOW + 7200;
            check(&std_cfg, &hdrs, BODY, later, Verdict::Stale, Some(0)).unwrap();
            let Resign::Resigned(new, _) = resign(&std_cfg, &hdrs, BODY, None, NOW, later) else {
                panic!("{family}: not re-signed");
            };
            let names: Vec<_> = new.iter().map(|(n, _)| n.as_str()).collect();
            let old: Vec<_> = hdrs.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, old);
            assert_eq!(new[1].1, b"msg_keep");
            assert_eq!(new[2].1, later.to_string().into_bytes());
            check(&std_cfg, &new, BODY, later, Verdict::Valid, Some(0)).unwrap();
        }

        // Stripe: extra v0 / old v1 entries are dropped, duplicates removed.
        let cfg = SignatureConfig::new("stripe", "whsec_x");
        let signed = String::from_utf8(sign(&cfg, BODY, NOW - 60, "").remove(0).1).unwrap();
        let first = format!("{signed},v1=00,v0=11");
        let hdrs = headers(&[
            ("stripe-signature", &first),
            ("Accept", "*/*"),
            ("Stripe-Signature", "t=2,v1=22"),
        ]);
        check(&cfg, &hdrs, BODY, NOW, Verdict::Valid, Some(0)).unwrap();
        let Resign::Resigned(new, _) = resign(&cfg, &hdrs, BODY, None, NOW, NOW) else {
            panic!("stripe not re-signed")
        };
        assert_eq!(new.len(), 2);
        assert_eq!(new[0].0, "stripe-signature");
        check(&cfg, &new, BODY, NOW, Verdict::Valid, Some(0)).unwrap();

        // `auto` with one secret per sender: the secret that matched signs
        // again, under the scheme the sender used (the first is another
        // provider's and would never verify at the receiver).
        let std_key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let auto = config("auto", &[std_key, "ghsecret"], 300);
        let by_stripe = SignatureConfig::new("stripe", "ghsecret");
        let hdrs = sign(&by_stripe, BODY, NOW - 60, "");
        check(&auto, &hdrs, BODY, NOW, Verdict::Valid, Some(1)).unwrap();
        let Resign::Resigned(new, scheme) = resign(&auto, &hdrs, BODY, None, NOW, NOW + 600) else {
            panic!("auto not re-signed")
        };
        assert_eq!(scheme, "stripe");
        check(&by_stripe, &new, BODY, NOW + 600, Verdict::Valid, Some(0)).unwrap();
        let recorded = Some(Verdict::Valid);
        let Resign::Resigned(again, _) = resign(&auto, &hdrs, BODY, recorded, NOW, NOW + 600)
        else {
            panic!("auto not re-signed")
        };
        assert_eq!(
            again, new,
            "the verdict recorded on arrival changes nothing"
        );
        // The secret it matched rotated out: valid as recorded, but nothing
        // to sign with that its receiver would take.
        let rotated = config("auto", &[std_key], 300);
        assert!(matches!(
            resign(&rotated, &hdrs, BODY, recorded, NOW, NOW + 600),
            Resign::Unchanged(why) if why.contains("no longer configured")
        ));

        // Body-only schemes, no secret, nothing signed: unchanged, with a reason.
        let gh = SignatureConfig::new("github", "s");
        assert!(
            matches!(resign(&gh, &sign(&gh, BODY, NOW, ""), BODY, None, NOW, NOW), Resign::Unchanged(why) if why.contains("only the body"))
        );
        let none = config("stripe", &[], 300);
        assert!(matches!(
            resign(&none, &hdrs, BODY, None, NOW, NOW),
            Resign::Unchanged(_)
        ));
        assert!(matches!(
            resign(&cfg, &[], BODY, None, NOW, NOW),
            Resign::Unchanged(_)
        ));
        let slack = SignatureConfig::new("slack", "s");
        let Resign::Resigned(new, _) = resign(
            &slack,
            &sign(&slack, BODY, NOW, ""),
            BODY,
            None,
            NOW,
            NOW + 999,
        ) else {
            panic!("slack not re-signed")
        };
        check(&slack, &new, BODY, NOW + 999, Verdict::Valid, Some(0)).unwrap();
    }

    /// Svix sends both header families: re-signing replaces both, or a
    /// receiver reading `webhook-*` would see the old, now stale, pair.
    #[test]
    fn resign_replaces_both_standard_families() {
        let cfg = SignatureConfig::new("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let mut hdrs = Vec::new();
        for (n, v) in sign(&cfg, BODY, NOW, "msg_both") {
            hdrs.push((n.replace("webhook", "svix"), v.clone()));
            hdrs.push((n, v));
        }
        let later = NOW + 7200;
        let Resign::Resigned(new, _) = resign(&cfg, &hdrs, BODY, None, NOW, later) else {
            panic!("not re-signed");
        };
        assert_eq!(new.len(), hdrs.len());
        for family in ["svix", "webhook"] {
            let only: Vec<(String, Vec<u8>)> = new
                .iter()
                .filter(|(n, _)| n.starts_with(family))
                .map(|(n, v)| (n.replace(family, "webhook"), v.clone()))
                .collect();
            check(&cfg, &only, BODY, later, Verdict::Valid, Some(0))
                .unwrap_or_else(|e| panic!("{family}: {e}"));
        }
    }

    /// A forgery (refused at ingest) or an unsigned event is never given the
    /// endpoint's signature; an authentic one that was already stale when
    /// it arrived still is (that is what re-signing is for).
    #[test]
    fn resign_only_vouches_for_what_checked_on_arrival() {
        for scheme in ["stripe", "standard", "slack", "paddle"] {
            let cfg = SignatureConfig::new(scheme, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
            let other = SignatureConfig::new(scheme, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
            let forged = sign(&other, BODY, NOW, "msg_1");
            for (hdrs, verdict) in [(forged, "invalid"), (Vec::new(), "missing")] {
                match resign(&cfg, &hdrs, BODY, None, NOW, NOW + 60) {
                    Resign::Unchanged(why) => assert!(
                        why.starts_with("not re-signed") && why.contains(verdict),
                        "{scheme}: {why}"
                    ),
                    Resign::Resigned(..) => panic!("{scheme}: a {verdict} event was re-signed"),
                }
            }
            let old = sign(&cfg, BODY, NOW - 86_400, "msg_1");
            check(&cfg, &old, BODY, NOW, Verdict::Stale, Some(0)).unwrap();
            // The verdict recorded on arrival decides, not today's secrets:
            // an event valid under a secret since rotated out is re-signed,
            // one rejected then is not, whatever checks now.
            assert!(matches!(
                resign(&other, &old, BODY, Some(Verdict::Valid), NOW, NOW + 60),
                Resign::Resigned(..)
            ));
            assert!(matches!(
                resign(&cfg, &old, BODY, Some(Verdict::Invalid), NOW, NOW + 60),
                Resign::Unchanged(why) if why.starts_with("not re-signed")
            ));
            let Resign::Resigned(new, _) = resign(&cfg, &old, BODY, None, NOW, NOW + 60) else {
                panic!("{scheme}: a stale authentic event was not re-signed");
            };
            check(&cfg, &new, BODY, NOW + 60, Verdict::Valid, Some(0)).unwrap();
        }
    }

    #[test]
    fn config_json_and_validation() {
        let one: SignatureConfig =
            serde_json::from_str(r#"{"scheme":"stripe","secret":"whsec_a"}"#).unwrap();
        assert_eq!(one.secrets(), ["whsec_a"]);
        assert_eq!(one.tolerance_s, 300);
        assert!(!one.enforce);
        let many: SignatureConfig = serde_json::from_str(
            r#"{"scheme":"github","secrets":["a","b"],"enforce":true,"tolerance_s":60}"#,
        )
        .unwrap();
        assert_eq!(many.secrets(), ["a", "b"]);
        assert!(
            serde_json::from_str::<SignatureConfig>(r#"{"scheme":"x","secret":"a","oops":1}"#)
                .is_err()
        );
        assert!(
            !format!("{many:?}").contains("\"a\""),
            "Debug must redact secrets"
        );

        let bad = |json: &str, field: &str| {
            let cfg: SignatureConfig = serde_json::from_str(json).unwrap();
            let err = cfg.validate().unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        };
        bad(r#"{"scheme":"nope","secret":"s3cr3t"}"#, "signature.scheme");
        bad(
            r#"{"scheme":"auto","secret":"s3cr3t","enforce":true}"#,
            "signature.enforce",
        );
        bad(r#"{"scheme":"stripe"}"#, "signature.secret");
        bad(r#"{"scheme":"stripe","secret":""}"#, "signature.secret");
        // Copy slips in a secret given: every event would be `invalid`,
        // with nothing to say why. A stored one is not judged again.
        let patch = |json: &str| serde_json::from_str::<SignaturePatch>(json).unwrap();
        for (json, why) in [
            (
                r#"{"scheme":"github","secret":"s3cr3t\n"}"#,
                "control character",
            ),
            (
                r#"{"scheme":"github","secret":"s3\u0000cr3t"}"#,
                "control character",
            ),
            (
                r#"{"scheme":"github","secret":"\ufeffs3cr3t"}"#,
                "invisible character",
            ),
            (
                r#"{"scheme":"github","secret":"s3\u200bcr3t"}"#,
                "invisible character",
            ),
            (
                r#"{"scheme":"github","secret":"s3cr3t\u2029"}"#,
                "invisible character",
            ),
            (
                r#"{"scheme":"github","secrets":["ok"," s3cr3t"]}"#,
                "signature.secrets[1]: starts or ends with a space",
            ),
        ] {
            let err = patch(json).apply(None).unwrap_err();
            assert!(
                err.contains(why) && !err.contains("s3cr3t"),
                "{json}: {err}"
            );
        }
        let stored: SignatureConfig =
            serde_json::from_str(r#"{"scheme":"github","secret":"old \n"}"#).unwrap();
        let edited = patch(r#"{"tolerance_s":60}"#).apply(Some(&stored)).unwrap();
        assert_eq!((edited.secrets(), edited.tolerance_s), (vec!["old \n"], 60));
        let inner = patch(r#"{"scheme":"github","secret":"It's a Secret to Everybody"}"#);
        inner.apply(None).unwrap();
        // `null` only clears what may be absent; a null secret is no "keep".
        assert!(serde_json::from_str::<SignaturePatch>(r#"{"secret":null}"#).is_err());
        assert!(serde_json::from_str::<SignaturePatch>(r#"{"prefix":null}"#).is_ok());
        // A new scheme keeps enforcement and secrets, not a tolerance of 0.
        let hmac: SignatureConfig = serde_json::from_str(
            r#"{"scheme":"hmac-sha256","secret":"k","header":"x-sig","tolerance_s":0,"enforce":true}"#,
        )
        .unwrap();
        let stripe = patch(r#"{"scheme":"stripe"}"#).apply(Some(&hmac)).unwrap();
        assert_eq!(
            (
                stripe.enforce,
                stripe.tolerance_s,
                stripe.header.clone(),
                stripe.secrets()
            ),
            (true, DEFAULT_TOLERANCE_S, None, vec!["k"])
        );
        // A config file's table is whole: a line taken out is the default.
        let gh: SignatureConfig = serde_json::from_str(
            r#"{"scheme":"github","secret":"k","legacy_sha1":true,"enforce":true,"tolerance_s":9}"#,
        )
        .unwrap();
        let file = patch(r#"{"scheme":"github"}"#)
            .whole()
            .apply(Some(&gh))
            .unwrap();
        assert_eq!(
            (
                file.enforce,
                file.legacy_sha1,
                file.tolerance_s,
                file.secrets()
            ),
            (false, false, DEFAULT_TOLERANCE_S, vec!["k"])
        );
        bad(
            r#"{"scheme":"stripe","secrets":["s3cr3t",""]}"#,
            "signature.secrets[1]",
        );
        bad(
            r#"{"scheme":"hmac-sha256","secret":"s3cr3t","header":"X Sig"}"#,
            "signature.header",
        );
        bad(
            r#"{"scheme":"hmac-sha256","secret":"s3cr3t","header":"X-Sig","encoding":"b32"}"#,
            "signature.encoding",
        );
        bad(
            r#"{"scheme":"hmac-sha256","secret":"s3cr3t","header":"X-Sig","timestamp_header":"a:b"}"#,
            "signature.timestamp_header",
        );
        bad(
            r#"{"scheme":"stripe","secret":"s3cr3t","header":"X-Sig"}"#,
            "signature.header",
        );
        bad(
            r#"{"scheme":"stripe","secret":"s3cr3t","legacy_sha1":true}"#,
            "signature.legacy_sha1",
        );
        bad(
            r#"{"scheme":"standard","secrets":["whsec_AAAA","whsec_s3cr3t!"]}"#,
            "signature.secrets[1]",
        );
        for cfg in all_configs() {
            cfg.validate().unwrap();
        }
    }

    /// Header names every scheme reads, for the property test.
    const NAMES: &[&str] = &[
        "X-WC-Webhook-Signature",
        "X-Hub-Signature-256",
        "X-Hub-Signature",
        "Stripe-Signature",
        "X-Shopify-Hmac-Sha256",
        "shopify-hmac-sha256",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
        "Paddle-Signature",
        "X-Signature",
        "X-Timestamp",
    ];

    /// Values shaped like real signature headers (to get past the first
    /// checks of each parser), plus arbitrary bytes.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            "[ -~]{0,120}".prop_map(String::into_bytes),
            "t=[0-9]{1,12}(,v[01]=[0-9a-f]{0,70}){0,4}".prop_map(String::into_bytes),
            "(v1,[A-Za-z0-9+/=]{0,50} ?){0,4}".prop_map(String::into_bytes),
            "ts=[0-9]{0,12}(;h1=[0-9a-f=]{0,66}){0,3}".prop_map(String::into_bytes),
            "(sha256=|sha1=|v0=)?[0-9a-fA-F]{0,66}".prop_map(String::into_bytes),
            "[A-Za-z0-9+/]{43}=".prop_map(String::into_bytes),
            "1700000[0-9]{3}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn random_headers_never_panic_or_verify(
            pairs in prop::collection::vec((prop::sample::select(NAMES), value()), 0..8),
            body in prop::collection::vec(any::<u8>(), 0..64),
            now in 1_699_999_000i64..1_700_001_000,
        ) {
            let hdrs: Vec<(String, Vec<u8>)> =
                pairs.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
            let mut configs = all_configs();
            configs.push(SignatureConfig::new("auto", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
            for cfg in configs {
                let got = verify(&cfg, &hdrs, &body, None, now);
                prop_assert_ne!(got.verdict, Verdict::Valid, "{}: {}", cfg.scheme, got.detail);
                prop_assert_ne!(got.verdict, Verdict::Stale, "{}: {}", cfg.scheme, got.detail);
                let _ = resign(&cfg, &hdrs, &body, None, now, now);
            }
        }
    }
}
