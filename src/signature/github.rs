//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body. Like
//! `@octokit/webhooks-methods`, the whole header text is compared, so only
//! the exact `sha256=` prefix and lower-case hex match. The SHA-1
//! `X-Hub-Signature: sha1=<hex>` is checked only when `legacy_sha1` is set
//! and the SHA-256 header is absent.

use super::{Algo, Form, Headers, Parsed, Reject, Scheme, SignatureConfig};

const HEADER_256: &str = "X-Hub-Signature-256";
const HEADER_SHA1: &str = "X-Hub-Signature";

pub(crate) struct GitHub;

impl Scheme for GitHub {
    fn name(&self) -> &'static str {
        "github"
    }

    fn detect(&self, headers: &Headers) -> bool {
        super::present(headers, HEADER_256) || super::present(headers, HEADER_SHA1)
    }

    fn parse(&self, config: &SignatureConfig, headers: &Headers) -> Result<Parsed, Reject> {
        let (header, tag, algo) = if super::present(headers, HEADER_256) {
            (HEADER_256, "sha256=", Algo::Sha256)
        } else if config.legacy_sha1 && super::present(headers, HEADER_SHA1) {
            (HEADER_SHA1, "sha1=", Algo::Sha1)
        } else {
            let mut reject = super::require(headers, HEADER_256).unwrap_err();
            if super::present(headers, HEADER_SHA1) {
                reject.detail.push_str(&format!(
                    " ({HEADER_SHA1} is present; set legacy_sha1 to check it)"
                ));
            }
            return Err(reject);
        };
        let value = super::require(headers, header)?;
        // Stripping the exact tag and comparing the rest as text is the same
        // test as Octokit's comparison of the whole string.
        let Some(sig) = value.strip_prefix(tag) else {
            return Err(Reject::invalid(format!(
                "{header}: {} does not start with `{tag}`",
                super::printable(value, 80)
            )));
        };
        Ok(Parsed {
            header: header.into(),
            algo,
            prefix: Vec::new(),
            form: Form::Hex,
            candidates: vec![sig.as_bytes().to_vec()],
            received: vec![value.to_string()],
            timestamp: None,
            note: (algo == Algo::Sha1).then(|| "legacy SHA-1 signature".to_string()),
        })
    }

    fn sign(
        &self,
        config: &SignatureConfig,
        key: &[u8],
        body: &[u8],
        _now: i64,
        _msg_id: &str,
    ) -> Vec<(String, Vec<u8>)> {
        let mac = super::mac(Algo::Sha256, key, b"", body);
        let mut out = vec![(
            HEADER_256.to_string(),
            format!("sha256={}", super::hex(&mac)).into_bytes(),
        )];
        if config.legacy_sha1 {
            let mac1 = super::mac(Algo::Sha1, key, b"", body);
            out.push((
                HEADER_SHA1.to_string(),
                format!("sha1={}", super::hex(&mac1)).into_bytes(),
            ));
        }
        out
    }
}
