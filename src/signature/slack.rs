//! Slack: `X-Slack-Signature: v0=<hex>` over `v0:<ts>:<body>`, with the
//! timestamp in `X-Slack-Request-Timestamp`. As in slack_sdk's
//! `SignatureVerifier`, the timestamp text is signed as received, the whole
//! `v0=…` string is compared, and a timestamp more than the tolerance away
//! from now in either direction is rejected.

use super::{Algo, Form, Headers, Parsed, Reject, Scheme, SignatureConfig, Stamp, Window};

const HEADER: &str = "X-Slack-Signature";
const TS_HEADER: &str = "X-Slack-Request-Timestamp";

pub(crate) struct Slack;

impl Scheme for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn detect(&self, headers: &Headers) -> bool {
        super::present(headers, HEADER)
    }

    fn parse(&self, _config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject> {
        let value = super::require(headers, HEADER)?;
        let ts_text = super::require(headers, TS_HEADER)?;
        let ts = super::parse_unix(TS_HEADER, ts_text)?;
        let Some(sig) = value.strip_prefix("v0=") else {
            return Err(Reject::invalid(format!(
                "{HEADER}: {} does not start with `v0=`",
                super::printable(value, 80)
            )));
        };
        Ok(Parsed {
            header: HEADER.into(),
            algo: Algo::Sha256,
            prefix: format!("v0:{ts_text}:").into_bytes(),
            form: Form::Hex,
            candidates: vec![sig.as_bytes().to_vec()],
            received: vec![value.to_string()],
            timestamp: Some(Stamp {
                unix: ts,
                window: Window::Both,
                rule: "as slack_sdk: more than the tolerance either way is rejected",
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
        let mac = super::mac(Algo::Sha256, key, format!("v0:{now}:").as_bytes(), body);
        vec![
            (TS_HEADER.into(), now.to_string().into_bytes()),
            (
                HEADER.into(),
                format!("v0={}", super::hex(&mac)).into_bytes(),
            ),
        ]
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
