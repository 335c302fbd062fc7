//! Signature verification throughput: `hookrelay::signature::verify` for a
//! valid request of every scheme (and `auto`), at a 2 KB body (a typical
//! webhook) and a 1 MB body (a large Shopify or GitHub payload), reported as
//! bytes per second. `direct-hmac` is one bare HMAC-SHA256 over the same body
//! with the `hmac` crate: the ratio of a scheme to it is the cost of header
//! parsing, rotation bookkeeping and the detail text on top of the hash.
//!
//! Run: `cargo bench --bench signature` (add `-- --warm-up-time 1
//! --measurement-time 2` for a quick pass).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use hookrelay::signature::{SignatureConfig, Verdict, sign, verify};
use sha2::Sha256;

const NOW: i64 = 1_700_000_000;
const SIZES: &[(&str, usize)] = &[("2KB", 2 * 1024), ("1MB", 1024 * 1024)];

/// A valid config for each scheme, signed with its own `sign`.
fn configs() -> Vec<(String, SignatureConfig)> {
    let mut out: Vec<(String, SignatureConfig)> = [
        ("woocommerce", "wc-secret"),
        ("github", "gh-secret"),
        ("stripe", "whsec_stripe_secret"),
        ("shopify", "shpss_secret"),
        ("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("slack", "slack-secret"),
        ("paddle", "pdl_secret"),
    ]
    .iter()
    .map(|(scheme, secret)| (scheme.to_string(), SignatureConfig::new(scheme, secret)))
    .collect();
    let mut generic = SignatureConfig::new("hmac-sha256", "generic-secret");
    generic.header = Some("X-Signature".into());
    generic.timestamp_header = Some("X-Timestamp".into());
    out.push(("hmac-sha256".into(), generic));
    // `auto` over Standard Webhooks headers: the detection cost on top.
    let mut auto = SignatureConfig::new("auto", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    auto.scheme = "auto".into();
    out.push(("auto(standard)".into(), auto));
    out
}

fn body(len: usize) -> Vec<u8> {
    // JSON-ish filler; the content does not change HMAC cost.
    let unit = br#"{"id":12345,"name":"widget","price":"19.99"},"#;
    unit.iter().copied().cycle().take(len).collect()
}

fn bench(c: &mut Criterion) {
    for &(label, len) in SIZES {
        let body = body(len);
        let mut group = c.benchmark_group(format!("verify/{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        if len >= 1024 * 1024 {
            group.sample_size(20);
        }

        group.bench_function("direct-hmac", |b| {
            b.iter(|| {
                let mut mac = Hmac::<Sha256>::new_from_slice(b"direct-secret").unwrap();
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes())
            })
        });

        for (name, cfg) in configs() {
            let signer = if cfg.scheme == "auto" {
                SignatureConfig::new("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            } else {
                cfg.clone()
            };
            let headers = sign(&signer, &body, NOW, "msg_bench");
            // Guard against benchmarking the fast path of a rejection.
            assert_eq!(
                verify(&cfg, &headers, &body, None, NOW).verdict,
                Verdict::Valid,
                "{name}"
            );
            group.bench_with_input(
                BenchmarkId::from_parameter(&name),
                &headers,
                |b, headers| {
                    b.iter(|| {
                        verify(
                            black_box(&cfg),
                            black_box(headers),
                            black_box(&body),
                            None,
                            NOW,
                        )
                    })
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
