//! WooCommerce: `X-WC-Webhook-Signature` is the base64 HMAC-SHA256 of the
//! body, as WooCommerce computes it in PHP with
//! `base64_encode(hash_hmac('sha256', $payload, $secret, true))`.

use super::{Headers, Parsed, Reject, Scheme, SignatureConfig};

const HEADER: &str = "X-WC-Webhook-Signature";

pub(crate) struct WooCommerce;

impl Scheme for WooCommerce {
    fn name(&self) -> &'static str {
        "woocommerce"
    }

    fn detect(&self, headers: &Headers) -> bool {
        super::present(headers, HEADER)
    }

    fn parse(&self, _config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject> {
        // Receivers compare the base64 text (`hash_equals`), so do we.
        Ok(Parsed::body_base64(
            HEADER,
            super::require(headers, HEADER)?,
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
