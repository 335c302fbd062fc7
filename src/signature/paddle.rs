//! Paddle Billing: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=…]`, a hex
//! HMAC-SHA256 of `ts:body`. Parsed as paddle-python-sdk does: items on
//! `;`, items without `=` skipped, an item with more than one `=` or an
//! unknown key makes the header malformed, the last `ts` wins. The SDK
//! rejects a timestamp more than its `maximum_variance` away in either
//! direction; here that variance is the endpoint's `tolerance_s` (the SDK's
//! own default is 5 s, too tight for checking stored events).

use super::{Algo, Form, Headers, Parsed, Reject, Scheme, SignatureConfig, Stamp, Window};

const HEADER: &str = "Paddle-Signature";

pub(crate) struct Paddle;

impl Scheme for Paddle {
    fn name(&self) -> &'static str {
        "paddle"
    }

    fn detect(&self, headers: &Headers) -> bool {
        super::present(headers, HEADER)
    }

    fn parse(&self, _config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject> {
        let value = super::require(headers, HEADER)?;
        let mut ts_text = None;
        let mut signatures = Vec::new();
        for item in value.split(';') {
            let Some((key, val)) = item.split_once('=') else {
                continue;
            };
            if val.contains('=') {
                return Err(Reject::invalid(format!(
                    "{HEADER}: item `{}` has more than one `=`",
                    super::printable(item, 40)
                )));
            }
            match key {
                "ts" => ts_text = Some(val),
                "h1" => signatures.push(val),
                other => {
                    return Err(Reject::invalid(format!(
                        "{HEADER}: unknown key `{}`",
                        super::printable(other, 20)
                    )));
                }
            }
        }
        let Some(ts_text) = ts_text else {
            return Err(Reject::invalid(format!("{HEADER}: no `ts=` timestamp")));
        };
        let ts = super::parse_unix(HEADER, ts_text)?;
        if signatures.is_empty() {
            return Err(Reject::invalid(format!("{HEADER}: no `h1=` signature")));
        }
        Ok(Parsed {
            header: HEADER.into(),
            algo: Algo::Sha256,
            prefix: format!("{ts}:").into_bytes(),
            form: Form::Hex,
            candidates: signatures.iter().map(|s| s.as_bytes().to_vec()).collect(),
            received: signatures.iter().map(|s| format!("h1={s}")).collect(),
            timestamp: Some(Stamp {
                unix: ts,
                window: Window::Both,
                rule: "as paddle-python-sdk's maximum_variance: either way is rejected",
            }),
            note: None,
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
        let mac = super::mac(Algo::Sha256, key, format!("{now}:").as_bytes(), body);
        vec![(
            HEADER.into(),
            format!("ts={now};h1={}", super::hex(&mac)).into_bytes(),
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
