//! The generic `hmac-sha256` scheme for senders without a scheme of their
//! own: HMAC-SHA256 of the body (or of `ts.body` when `timestamp_header` is
//! set) in a configured header (`X-Signature` by default), hex or base64, after an optional prefix such
//! as `sha256=`. The received value is decoded before comparing, so hex of
//! either case and base64 with or without padding are accepted.

use super::{Algo, Form, Headers, Parsed, Reject, Scheme, SignatureConfig, Stamp, Window};

pub(crate) struct Generic;

/// The header when none is configured: the name most such senders use.
pub(crate) const DEFAULT_HEADER: &str = "X-Signature";

fn header(config: &SignatureConfig) -> &str {
    config.header.as_deref().unwrap_or(DEFAULT_HEADER)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Hex,
    Base64,
}

fn encoding(config: &SignatureConfig) -> Option<Encoding> {
    match config.encoding.as_deref() {
        None | Some("hex") => Some(Encoding::Hex),
        Some("base64") => Some(Encoding::Base64),
        Some(_) => None,
    }
}

/// An HTTP header name: one or more token characters (RFC 9110).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The `hmac-sha256` part of [`SignatureConfig::validate`].
pub(crate) fn validate(config: &SignatureConfig) -> Result<(), String> {
    match config.header.as_deref() {
        Some(h) if !is_header_name(h) => {
            return Err(format!(
                "signature.header: `{}` is not a valid header name",
                super::printable(h, 40)
            ));
        }
        _ => {}
    }
    if encoding(config).is_none() {
        return Err("signature.encoding: must be `hex` or `base64`".into());
    }
    if let Some(h) = config
        .timestamp_header
        .as_deref()
        .filter(|h| !is_header_name(h))
    {
        return Err(format!(
            "signature.timestamp_header: `{}` is not a valid header name",
            super::printable(h, 40)
        ));
    }
    if config.prefix.as_deref().is_some_and(|p| p.len() > 64) {
        return Err("signature.prefix: at most 64 characters".into());
    }
    Ok(())
}

impl Scheme for Generic {
    fn name(&self) -> &'static str {
        "hmac-sha256"
    }

    /// Never picked by `auto`: there is no header to recognise it by.
    fn detect(&self, _headers: &Headers) -> bool {
        false
    }

    fn parse(&self, config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject> {
        validate(config).map_err(|e| Reject::invalid(format!("configuration error: {e}")))?;
        let header = header(config);
        let enc = encoding(config).unwrap_or(Encoding::Hex);
        let value = super::require(headers, header)?;
        let (prefix, timestamp) = match config.timestamp_header.as_deref() {
            Some(ts_name) => {
                let ts_text = super::require(headers, ts_name)?;
                let ts = super::parse_unix(ts_name, ts_text)?;
                let stamp = Stamp {
                    unix: ts,
                    window: Window::Both,
                    rule: "either way is rejected",
                };
                (format!("{ts_text}.").into_bytes(), Some(stamp))
            }
            None => (Vec::new(), None),
        };
        let tag = config.prefix.as_deref().unwrap_or("");
        let Some(encoded) = value.strip_prefix(tag) else {
            return Err(Reject::invalid(format!(
                "{header}: {} does not start with `{}`",
                super::printable(value, 80),
                super::printable(tag, 64)
            )));
        };
        let decoded = match enc {
            Encoding::Hex => super::unhex(encoded),
            Encoding::Base64 => super::unb64(encoded),
        };
        let Some(decoded) = decoded else {
            return Err(Reject::invalid(format!(
                "{header}: {} is not {}",
                super::printable(value, 80),
                if enc == Encoding::Hex {
                    "hex"
                } else {
                    "base64"
                }
            )));
        };
        Ok(Parsed {
            header: header.to_string(),
            algo: Algo::Sha256,
            prefix,
            // Expected shown in the encoding received, to compare by eye.
            form: if enc == Encoding::Hex {
                Form::HexBytes
            } else {
                Form::Bytes
            },
            candidates: vec![decoded],
            received: vec![value.to_string()],
            timestamp,
            note: None,
        })
    }

    fn sign(
        &self,
        config: &SignatureConfig,
        key: &[u8],
        body: &[u8],
        now: i64,
        _msg_id: &str,
    ) -> Vec<(String, Vec<u8>)> {
        let header = header(config);
        let mut out = Vec::new();
        let prefix = match config.timestamp_header.as_deref() {
            Some(ts_name) => {
                out.push((ts_name.to_string(), now.to_string().into_bytes()));
                format!("{now}.")
            }
            None => String::new(),
        };
        let mac = super::mac(Algo::Sha256, key, prefix.as_bytes(), body);
        let encoded = match encoding(config) {
            Some(Encoding::Base64) => super::b64(&mac),
            _ => super::hex(&mac),
        };
        let tag = config.prefix.as_deref().unwrap_or("");
        out.push((header.to_string(), format!("{tag}{encoded}").into_bytes()));
        out
    }

    fn resign(
        &self,
        config: &SignatureConfig,
        key: &[u8],
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        if config.timestamp_header.is_none() {
            return Err(
                "hmac-sha256 without timestamp_header signs only the body: the original signature is still valid"
                    .into(),
            );
        }
        let header = header(config);
        super::resign_when_signed(self, header, config, key, headers, body, now)
    }
}
