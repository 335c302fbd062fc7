//! Shopify: `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the raw
//! body, compared as text the way `@shopify/shopify-api` does. Shopify's
//! newer "events" webhooks send the same value as `shopify-hmac-sha256`;
//! like the library, that header wins when present. The library also
//! requires topic, domain, API version and webhook id headers before it
//! calls a webhook valid; those say nothing about authenticity, so they are
//! left to `crate::provider` here.

use super::{Headers, Parsed, Reject, Scheme, SignatureConfig};

const HEADER: &str = "X-Shopify-Hmac-Sha256";
const EVENTS_HEADER: &str = "shopify-hmac-sha256";

pub(crate) struct Shopify;

impl Scheme for Shopify {
    fn name(&self) -> &'static str {
        "shopify"
    }

    fn detect(&self, headers: &Headers) -> bool {
        super::present(headers, HEADER) || super::present(headers, EVENTS_HEADER)
    }

    fn parse(&self, _config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject> {
        let header = if super::present(headers, EVENTS_HEADER) {
            EVENTS_HEADER
        } else {
            HEADER
        };
        Ok(Parsed::body_base64(
            header,
            super::require(headers, header)?,
        ))
    }

    fn sign(
        &self,
        _config: &SignatureConfig,
        key: &[u8],
        body: &[u8],
        _now: i64,
        _msg_id: &str,
    ) -> Vec<(String, Vec<u8>)> {
        super::sign_body_base64(HEADER, key, body)
    }
}
