//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]`, a hex
//! HMAC-SHA256 of `t.body` keyed with the endpoint secret used as-is (the
//! `whsec_` prefix is part of the key). The header is split the way
//! stripe-python does: items on `,`, key and value on the first `=` (the
//! value ends at a second `=`); an item named `t` or `v1` without `=` makes
//! the header malformed; `v0` and unknown items are ignored. The tolerance
//! is applied as stripe-python does: only a timestamp older than the
//! tolerance is rejected, a future one passes.

use super::{Algo, Form, Headers, Parsed, Reject, Scheme, SignatureConfig, Stamp, Window};

const HEADER: &str = "Stripe-Signature";

pub(crate) struct Stripe;

impl Scheme for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn detect(&self, headers: &Headers) -> bool {
        super::present(headers, HEADER)
    }

    fn parse(&self, _config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject> {
        let value = super::require(headers, HEADER)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        let mut ignored = 0usize;
        for item in value.split(',') {
            let mut parts = item.splitn(3, '=');
            let key = parts.next().unwrap_or_default();
            let val = parts.next();
            match (key, val) {
                ("t", Some(v)) => {
                    // stripe-python takes the first `t`.
                    if timestamp.is_none() {
                        timestamp = Some(v);
                    }
                }
                ("v1", Some(v)) => signatures.push(v),
                ("t" | "v1", None) => {
                    return Err(Reject::invalid(format!(
                        "{HEADER}: item `{}` has no value",
                        super::printable(key, 20)
                    )));
                }
                _ => ignored += 1,
            }
        }
        let Some(ts_text) = timestamp else {
            return Err(Reject::invalid(format!("{HEADER}: no `t=` timestamp")));
        };
        let ts = super::parse_unix(HEADER, ts_text)?;
        if signatures.is_empty() {
            return Err(Reject::invalid(format!(
                "{HEADER}: no `v1=` signature (other schemes such as v0 are ignored)"
            )));
        }
        Ok(Parsed {
            header: HEADER.into(),
            algo: Algo::Sha256,
            prefix: format!("{ts}.").into_bytes(),
            form: Form::Hex,
            candidates: signatures.iter().map(|s| s.as_bytes().to_vec()).collect(),
            received: signatures.iter().map(|s| format!("v1={s}")).collect(),
            timestamp: Some(Stamp {
                unix: ts,
                window: Window::PastOnly,
                rule: "as stripe-python: only older than the tolerance is rejected, future timestamps pass",
            }),
            note: (ignored > 0).then(|| format!("{ignored} other item(s) ignored")),
        })
    }

    fn sign(
        &self,
        _config: &SignatureConfig,
        key: &[u8],
        body: &[u8],
        now: i64,
        _msg_id: &str,
    ) -> Vec<(String, Vec<u8>)> {
        let mac = super::mac(Algo::Sha256, key, format!("{now}.").as_bytes(), body);
        vec![(
            HEADER.into(),
            format!("t={now},v1={}", super::hex(&mac)).into_bytes(),
        )]
    }

    fn resign(
        &self,
        config: &SignatureConfig,
        key: &[u8],
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        super::resign_when_signed(self, HEADER, config, key, headers, body, now)
    }
}
