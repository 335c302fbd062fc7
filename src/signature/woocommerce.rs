//! WooCommerce: `X-WC-Webhook-Signature` is the base64 HMAC-SHA256 of the
//! body, as WooCommerce computes it in PHP with
//! `base64_encode(hash_hmac('sha256', $payload, $secret, true))`.

use super::{Algo, Form, Headers, Parsed, Reject, Scheme, SignatureConfig};

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
        let value = super::require(headers, HEADER)?;
        // Receivers compare the base64 text (`hash_equals`), so do we.
        Ok(Parsed {
            header: HEADER.into(),
            algo: Algo::Sha256,
            prefix: Vec::new(),
            form: Form::Base64,
            candidates: vec![value.as_bytes().to_vec()],
            received: vec![value.to_string()],
            timestamp: None,
            note: None,
        })
    }

    fn sign(
        &self,
        _config: &SignatureConfig,
        key: &[u8],
        body: &[u8],
        _now: i64,
        _msg_id: &str,
    ) -> Vec<(String, Vec<u8>)> {
        let mac = super::mac(Algo::Sha256, key, b"", body);
        vec![(HEADER.into(), super::b64(&mac).into_bytes())]
    }
}
