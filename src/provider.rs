//! Sender header meanings: which provider sent a request, its topic, its
//! event id (for duplicate detection) and whether it is a provider's
//! activation ping.
//!
//! This module only reads the raw headers and body captured by ingest; it
//! decides nothing about signatures (that is `crate::signature`) and stores
//! nothing. Provider names are the signature scheme names, so `provider`
//! can also serve as the scheme `auto` would pick.

use sha2::{Digest, Sha256};

/// Header and body values longer than this are ignored rather than used as
/// a topic or an id: they become index keys, and no provider sends them.
const MAX_VALUE_LEN: usize = 512;

/// Bodies larger than this are not parsed as JSON for `type`/`id`: provider
/// events with those fields are small, and parsing is on the ingest path.
const MAX_JSON_BODY: usize = 1 << 20;

/// What the request says about where it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// A scheme name: `woocommerce`, `github`, `stripe`, `shopify`,
    /// `standard` (also Svix), `slack` or `paddle`.
    pub provider: Option<&'static str>,
    /// The event type, for filtering (`order.created`, `push`, …).
    pub topic: Option<String>,
    /// The provider's id for the event, the same on every retry.
    pub external_id: Option<String>,
    /// WooCommerce's activation ping (`webhook_id=N`, unsigned).
    pub is_ping: bool,
}

/// Reads the provenance of a request. Never fails: what is not understood
/// is left `None`.
pub fn identify(headers: &[(String, Vec<u8>)], body: &[u8]) -> Provenance {
    let get = |name: &str| text(headers, name);
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut p = Provenance::default();

    if has("X-WC-Webhook-Topic") || has("X-WC-Webhook-Signature") || has("X-WC-Webhook-Delivery-ID")
    {
        p.provider = Some("woocommerce");
        p.topic = get("X-WC-Webhook-Topic");
        // WooCommerce reuses a delivery id when it redelivers a changed
        // resource, so the body's hash tells two different payloads apart.
        p.external_id = get("X-WC-Webhook-Delivery-ID")
            .map(|id| format!("{id}:{}", &hex(&Sha256::digest(body))[..16]));
    } else if has("X-GitHub-Event") || has("X-GitHub-Delivery") || has("X-Hub-Signature-256") {
        p.provider = Some("github");
        p.topic = get("X-GitHub-Event");
        p.external_id = get("X-GitHub-Delivery");
    } else if has("X-Shopify-Topic")
        || has("X-Shopify-Hmac-Sha256")
        || has("X-Shopify-Webhook-Id")
        || has("shopify-hmac-sha256")
    {
        // Shopify's "events" webhooks drop the `X-` prefix.
        p.provider = Some("shopify");
        p.topic = get("X-Shopify-Topic").or_else(|| get("shopify-topic"));
        p.external_id = get("X-Shopify-Webhook-Id").or_else(|| get("shopify-webhook-id"));
    } else if has("Stripe-Signature") {
        p.provider = Some("stripe");
        if let Some(event) = json_head(body) {
            p.topic = event.kind;
            p.external_id = event.id;
        }
    } else if let Some(id) = get("svix-id").or_else(|| get("webhook-id")) {
        p.provider = Some("standard");
        p.external_id = Some(id);
        p.topic = json_head(body).and_then(|e| e.kind);
    } else if has("X-Slack-Signature") {
        p.provider = Some("slack");
    } else if has("Paddle-Signature") {
        p.provider = Some("paddle");
        if let Some(event) = json_head(body) {
            p.topic = event.event_type;
            p.external_id = event.event_id;
        }
    } else if is_woocommerce_ping(headers, body) {
        p.provider = Some("woocommerce");
        p.is_ping = true;
    } else if let Some(event) = json_head(body)
        && event.object.as_deref() == Some("event")
        && event.id.as_deref().is_some_and(|id| id.starts_with("evt_"))
    {
        // A Stripe event forwarded without its signature (Stripe CLI,
        // another relay) is still recognisable by its body.
        p.provider = Some("stripe");
        p.topic = event.kind;
        p.external_id = event.id;
    }
    p
}

/// WooCommerce's activation ping: an unsigned form POST of `webhook_id=N`.
fn is_woocommerce_ping(headers: &[(String, Vec<u8>)], body: &[u8]) -> bool {
    let form = text(headers, "Content-Type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    let digits = body
        .strip_prefix(b"webhook_id=")
        .is_some_and(|n| !n.is_empty() && n.len() <= 20 && n.iter().all(u8::is_ascii_digit));
    form && digits
}

/// A header's text, if present, UTF-8, non-empty and not absurdly long.
fn text(headers: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    let (_, value) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    let value = std::str::from_utf8(value).ok()?.trim();
    (!value.is_empty() && value.len() <= MAX_VALUE_LEN).then(|| value.to_string())
}

/// The few top-level fields of an event body this module reads.
#[derive(serde::Deserialize, Default)]
struct JsonHead {
    #[serde(default, rename = "type", deserialize_with = "short_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "short_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "short_string")]
    object: Option<String>,
    #[serde(default, deserialize_with = "short_string")]
    event_type: Option<String>,
    #[serde(default, deserialize_with = "short_string")]
    event_id: Option<String>,
}

/// A string field of sensible length; anything else (numbers, objects, a
/// huge string) reads as absent instead of failing the whole parse.
fn short_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    Ok(match value {
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= MAX_VALUE_LEN => Some(s),
        _ => None,
    })
}

fn json_head(body: &[u8]) -> Option<JsonHead> {
    if body.len() > MAX_JSON_BODY || body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(body).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
