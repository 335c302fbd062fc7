//! Standard Webhooks (and Svix, which uses `svix-` header names):
//! `webhook-signature: v1,<base64> [v1,<base64>…]` over `id.timestamp.body`,
//! keyed with the secret after `whsec_`, base64-decoded. As in the
//! `svix` library, each `svix-` header wins over its `webhook-` twin. As in
//! `standardwebhooks`, a timestamp more than the tolerance away from now in
//! either direction is rejected, entries other than `v1` are skipped, and
//! the decoded bytes are compared.

use super::{Algo, Form, Headers, Parsed, Reject, Scheme, SignatureConfig, Stamp, Window};

pub(crate) struct Standard;

/// The header actually used for `field` (`id`, `timestamp`, `signature`).
fn name_for(headers: &Headers, field: &str) -> String {
    let svix = format!("svix-{field}");
    if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&svix)) {
        svix
    } else {
        format!("webhook-{field}")
    }
}

/// The HMAC key of a Standard Webhooks secret.
pub(crate) fn key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    super::unb64(encoded).filter(|k| !k.is_empty())
}

impl Scheme for Standard {
    fn name(&self) -> &'static str {
        "standard"
    }

    fn detect(&self, headers: &Headers) -> bool {
        super::present(headers, "webhook-signature") || super::present(headers, "svix-signature")
    }

    fn parse(&self, _config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject> {
        let sig_name = name_for(headers, "signature");
        let id_name = name_for(headers, "id");
        let ts_name = name_for(headers, "timestamp");
        let id = super::require(headers, &id_name)?;
        let ts_text = super::require(headers, &ts_name)?;
        let value = super::require(headers, &sig_name)?;
        let ts = super::parse_unix(&ts_name, ts_text)?;

        let mut candidates = Vec::new();
        let mut received = Vec::new();
        let mut skipped = 0usize;
        for entry in value.split(' ') {
            let mut parts = entry.split(',');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("v1"), Some(sig), None) => match super::unb64_strict(sig) {
                    Some(bytes) => {
                        candidates.push(bytes);
                        received.push(entry.to_string());
                    }
                    None => skipped += 1,
                },
                _ => skipped += 1,
            }
        }
        if candidates.is_empty() {
            return Err(Reject::invalid(format!(
                "{sig_name}: no well-formed `v1,<base64>` signature in {}",
                super::printable(value, 80)
            )));
        }
        let mut prefix = Vec::with_capacity(id.len() + ts_text.len() + 2);
        prefix.extend_from_slice(id.as_bytes());
        prefix.extend_from_slice(format!(".{ts}.").as_bytes());
        Ok(Parsed {
            header: sig_name,
            algo: Algo::Sha256,
            prefix,
            form: Form::Bytes,
            candidates,
            received,
            timestamp: Some(Stamp {
                unix: ts,
                window: Window::Both,
                rule: "as standardwebhooks: too old and too new are both rejected",
            }),
            note: (skipped > 0).then(|| {
                format!(
                    "{skipped} entry(ies) skipped (not v1 or malformed); id {}",
                    super::printable(id, 64)
                )
            }),
        })
    }

    fn key(&self, secret: &str) -> Option<Vec<u8>> {
        key(secret)
    }

    fn sign(
        &self,
        _config: &SignatureConfig,
        key: &[u8],
        body: &[u8],
        now: i64,
        msg_id: &str,
    ) -> Vec<(String, Vec<u8>)> {
        vec![
            ("webhook-id".into(), msg_id.as_bytes().to_vec()),
            ("webhook-timestamp".into(), now.to_string().into_bytes()),
            (
                "webhook-signature".into(),
                signature(key, msg_id, now, body),
            ),
        ]
    }

    fn resign(
        &self,
        _config: &SignatureConfig,
        key: &[u8],
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let sig_name = name_for(headers, "signature");
        if !super::present(headers, &sig_name) {
            return Err(format!("no {sig_name} header: nothing to re-sign"));
        }
        // The id is part of the signed content and is how receivers
        // deduplicate, so it is kept as sent.
        let id_name = name_for(headers, "id");
        let id = super::require(headers, &id_name)
            .map_err(|r| format!("cannot re-sign: {}", r.detail))?;
        // A sender may set both families (Svix sends `svix-*` and
        // `webhook-*`): each signature present is replaced, or a receiver
        // reading the other family would still see the old one.
        let mut out = Vec::new();
        for family in ["svix", "webhook"] {
            let sig = format!("{family}-signature");
            if !super::present(headers, &sig) {
                continue;
            }
            let own_id = super::require(headers, &format!("{family}-id")).unwrap_or(id);
            out.push((format!("{family}-timestamp"), now.to_string().into_bytes()));
            out.push((sig, signature(key, own_id, now, body)));
        }
        Ok(out)
    }
}

fn signature(key: &[u8], id: &str, now: i64, body: &[u8]) -> Vec<u8> {
    let prefix = format!("{id}.{now}.");
    let mac = super::mac(Algo::Sha256, key, prefix.as_bytes(), body);
    format!("v1,{}", super::b64(&mac)).into_bytes()
}
