//! Re-signed replays judged by the providers' official libraries, through
//! vectors: this test re-signs fixed, days-old requests with
//! `signature::resign` at a fixed "now" and compares the result with
//! `tests/vectors/resigned.json`, in which `generate.py --check-resigned`
//! recorded what the official library said about exactly those headers.
//!
//! Regenerating (after a deliberate change to `resign` or to the cases):
//!
//! ```text
//! HOOKRELAY_WRITE_RESIGNED=1 cargo test --release --test it resign_vectors
//! cd tests/vectors && /work/sigdev/venv/bin/python generate.py --check-resigned
//! cargo test --release --test it resign_vectors
//! ```
//!
//! Step one rewrites hookrelay's part of each entry (keeping the `official`
//! result of entries whose hookrelay part did not change); step two asks the
//! official libraries and writes their verdict into `official`.

use std::path::PathBuf;

use base64::Engine;
use serde::{Deserialize, Serialize};

use hookrelay::signature::{self, Resign, SignatureConfig, Verdict};

/// The replay moment every entry is re-signed at.
const NOW: i64 = 1_700_000_000;
/// When the original requests were signed: three days before [`NOW`].
const OLD: i64 = NOW - 3 * 86_400;

const WRITE_ENV: &str = "HOOKRELAY_WRITE_RESIGNED";
const REGENERATE: &str = "regenerate with `HOOKRELAY_WRITE_RESIGNED=1 cargo test --release --test it \
     resign_vectors`, then `cd tests/vectors && /work/sigdev/venv/bin/python generate.py \
     --check-resigned` (see tests/vectors/README.md)";

/// JSON with CRLF line ends and characters outside ASCII, as the vectors use.
const UNICODE_BODY: &str =
    "{\r\n  \"customer\": \"Zoë Ångström 🚀\",\r\n  \"note\": \"naïve – ☃\"\r\n}\r\n";
const EVENT_BODY: &str = "{\"id\":\"evt_1NgVb2\",\"object\":\"event\",\"type\":\"invoice.paid\",\
     \"data\":{\"object\":{\"amount\":4200,\"memo\":\"Café ☕\\r\\nline two\"}}}";
const SLACK_FORM_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fweather\
     &text=caf%C3%A9%20M%C3%BCnchen&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678";

const STRIPE_NEW: &str = "whsec_resign_new_3b9e61c0d2a74f58";
const STRIPE_OLD: &str = "whsec_resign_old_8d1f02ab4c6e9735";
const STD_NEW: &str = "whsec_aG9va3JlbGF5LXJlc2lnbi1uZXcta2V5";
const STD_OLD: &str = "whsec_aG9va3JlbGF5LXJlc2lnbi1vbGQta2V5";
const SLACK_NEW: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_OLD: &str = "0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a";
const PADDLE_NEW: &str = "pdl_ntfset_01hv9r_resign_new";
const PADDLE_OLD: &str = "pdl_ntfset_01hv9q_resign_old";
const MSG_ID: &str = "msg_2Lp9UZtPZgRwFv0lNa8bKQ";

/// One entry of `resigned.json`. Header lists are `[name, value]` pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    name: String,
    /// hookrelay's config scheme; `svix` means `standard` under `svix-`
    /// header names, judged by the `svix` library.
    scheme: String,
    secrets: Vec<String>,
    /// When `original_headers` were signed.
    original_ts: i64,
    original_headers: Vec<(String, String)>,
    body_b64: String,
    now: i64,
    resigned_headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    official: Option<Official>,
}

/// What `generate.py --check-resigned` recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Official {
    /// The library's verdict on `resigned_headers` at `now`.
    verdict: String,
    /// `name version`, e.g. `stripe 16.1.0`.
    library: String,
    /// Which secret the library accepted (hookrelay re-signs with the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_index: Option<usize>,
    /// The library's verdict on `original_headers` at `original_ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    original_at_ts: Option<String>,
    /// The library's verdict on `original_headers` at `now`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    original_at_now: Option<String>,
}

impl Entry {
    /// Everything but the official verdict: what hookrelay produced.
    fn hookrelay_part(&self) -> Entry {
        Entry {
            official: None,
            ..self.clone()
        }
    }
}

/// A fixed original request, before re-signing.
struct Case {
    name: &'static str,
    scheme: &'static str,
    secrets: Vec<&'static str>,
    headers: Vec<(String, String)>,
    body: &'static [u8],
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/resigned.json")
}

fn config_scheme(scheme: &str) -> &str {
    if scheme == "svix" { "standard" } else { scheme }
}

/// hookrelay's own signature of `body` at `ts` with `secret`, as strings.
fn signed(scheme: &str, secret: &str, body: &[u8], ts: i64) -> Vec<(String, String)> {
    let cfg = SignatureConfig::new(config_scheme(scheme), secret);
    let out = crate::support::signed(&cfg, body, ts, MSG_ID);
    assert!(!out.is_empty(), "{scheme}: nothing signed");
    out
}

fn value<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
}

fn pair(n: &str, v: &str) -> (String, String) {
    (n.to_string(), v.to_string())
}

/// Standard Webhooks / Svix originals, with `family` header names spelt as
/// a sender might (`Webhook-Id` or `svix-id`).
fn standard_cases(family: &'static str) -> Vec<Case> {
    let cap = |field: &str| -> String {
        if family == "webhook" {
            let mut f = field.chars();
            let first = f.next().unwrap().to_ascii_uppercase();
            format!("Webhook-{first}{}", f.as_str())
        } else {
            format!("svix-{field}")
        }
    };
    let scheme = if family == "webhook" {
        "standard"
    } else {
        "svix"
    };
    let one = |secret: &str, body: &[u8], extra_sig: &str| {
        let sig = value(&signed("standard", secret, body, OLD), "webhook-signature").to_string();
        vec![
            pair("Content-Type", "application/json"),
            pair(&cap("id"), MSG_ID),
            pair(&cap("timestamp"), &OLD.to_string()),
            pair(&cap("signature"), &format!("{sig}{extra_sig}")),
            pair("User-Agent", "Svix-Webhooks/1.62.0"),
        ]
    };
    vec![
        Case {
            name: if family == "webhook" {
                "standard/unicode_crlf_body"
            } else {
                "svix/unicode_crlf_body"
            },
            scheme,
            secrets: vec![STD_NEW],
            headers: one(STD_NEW, UNICODE_BODY.as_bytes(), ""),
            body: UNICODE_BODY.as_bytes(),
        },
        Case {
            name: if family == "webhook" {
                "standard/rotation_two_signatures"
            } else {
                "svix/rotation_two_signatures"
            },
            scheme,
            secrets: vec![STD_NEW, STD_OLD],
            // Signed with the old secret only, plus a second entry that
            // matches no secret.
            headers: one(
                STD_OLD,
                EVENT_BODY.as_bytes(),
                " v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            ),
            body: EVENT_BODY.as_bytes(),
        },
    ]
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // Stripe.
    let sig = value(
        &signed("stripe", STRIPE_NEW, UNICODE_BODY.as_bytes(), OLD),
        "Stripe-Signature",
    )
    .to_string();
    out.push(Case {
        name: "stripe/unicode_crlf_body",
        scheme: "stripe",
        secrets: vec![STRIPE_NEW],
        headers: vec![
            pair("Content-Type", "application/json; charset=utf-8"),
            pair("Cache-Control", "no-cache"),
            pair(
                "User-Agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            ),
            pair(
                "Stripe-Signature",
                &format!(
                    "{sig},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
                ),
            ),
            pair("Accept", "*/*; q=0.5, application/xml"),
        ],
        body: UNICODE_BODY.as_bytes(),
    });
    let old_v1 = value(
        &signed("stripe", STRIPE_OLD, EVENT_BODY.as_bytes(), OLD),
        "Stripe-Signature",
    )
    .split_once(',')
    .unwrap()
    .1
    .to_string();
    out.push(Case {
        name: "stripe/rotation_lowercase_name",
        scheme: "stripe",
        secrets: vec![STRIPE_NEW, STRIPE_OLD],
        headers: vec![
            pair("content-type", "application/json; charset=utf-8"),
            pair(
                "stripe-signature",
                &format!(
                    "t={OLD},{old_v1},v1=0000000000000000000000000000000000000000000000000000000000000000"
                ),
            ),
        ],
        body: EVENT_BODY.as_bytes(),
    });

    out.extend(standard_cases("webhook"));
    out.extend(standard_cases("svix"));

    // Slack.
    let mut hdrs = vec![pair("Content-Type", "application/json")];
    hdrs.extend(signed("slack", SLACK_NEW, UNICODE_BODY.as_bytes(), OLD));
    hdrs.push(pair(
        "User-Agent",
        "Slackbot 1.0 (+https://api.slack.com/robots)",
    ));
    out.push(Case {
        name: "slack/unicode_crlf_body",
        scheme: "slack",
        secrets: vec![SLACK_NEW],
        headers: hdrs,
        body: UNICODE_BODY.as_bytes(),
    });
    let old = signed("slack", SLACK_OLD, SLACK_FORM_BODY.as_bytes(), OLD);
    out.push(Case {
        name: "slack/rotation_form_body_lowercase_names",
        scheme: "slack",
        secrets: vec![SLACK_NEW, SLACK_OLD],
        headers: vec![
            pair("content-type", "application/x-www-form-urlencoded"),
            pair("x-slack-signature", value(&old, "X-Slack-Signature")),
            pair(
                "x-slack-request-timestamp",
                value(&old, "X-Slack-Request-Timestamp"),
            ),
        ],
        body: SLACK_FORM_BODY.as_bytes(),
    });

    // Paddle.
    let sig = value(
        &signed("paddle", PADDLE_NEW, UNICODE_BODY.as_bytes(), OLD),
        "Paddle-Signature",
    )
    .to_string();
    out.push(Case {
        name: "paddle/unicode_crlf_body",
        scheme: "paddle",
        secrets: vec![PADDLE_NEW],
        headers: vec![
            pair("Content-Type", "application/json"),
            pair("Paddle-Signature", &sig),
            pair("Paddle-Version", "1"),
        ],
        body: UNICODE_BODY.as_bytes(),
    });
    let sig = value(
        &signed("paddle", PADDLE_OLD, EVENT_BODY.as_bytes(), OLD),
        "Paddle-Signature",
    )
    .to_string();
    out.push(Case {
        name: "paddle/rotation_two_h1",
        scheme: "paddle",
        secrets: vec![PADDLE_NEW, PADDLE_OLD],
        headers: vec![
            pair("Content-Type", "application/json"),
            pair(
                "Paddle-Signature",
                &format!(
                    "{sig};h1=1111111111111111111111111111111111111111111111111111111111111111"
                ),
            ),
        ],
        body: EVENT_BODY.as_bytes(),
    });
    out
}

/// Re-signs one case with hookrelay and checks what must hold whatever the
/// libraries say: same names in the same order, the id kept, the body not
/// touched, only signature and timestamp headers changed.
fn resign_case(case: &Case) -> Entry {
    let mut cfg = SignatureConfig::new(config_scheme(case.scheme), case.secrets[0]);
    cfg.secrets = case.secrets[1..].iter().map(|s| s.to_string()).collect();
    cfg.validate().unwrap();
    let headers: Vec<(String, Vec<u8>)> = case
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
        .collect();
    let body = case.body.to_vec();

    // The original is authentic but old: stale now, valid when it was sent.
    let then = signature::verify(&cfg, &headers, &body, None, OLD);
    assert_eq!(
        then.verdict,
        Verdict::Valid,
        "{}: {}",
        case.name,
        then.detail
    );
    let before = signature::verify(&cfg, &headers, &body, None, NOW);
    assert_eq!(
        before.verdict,
        Verdict::Stale,
        "{}: {}",
        case.name,
        before.detail
    );

    let Resign::Resigned(new, _) = signature::resign(&cfg, &headers, &body, None, OLD, NOW) else {
        panic!("{}: not re-signed", case.name);
    };
    assert_eq!(body, case.body, "{}: body bytes changed", case.name);
    let new: Vec<(String, String)> = new
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8(v).unwrap()))
        .collect();

    let names = |h: &[(String, String)]| h.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&new),
        names(&case.headers),
        "{}: header names or order changed",
        case.name
    );
    let changes: &[&str] = match case.scheme {
        "stripe" => &["stripe-signature"],
        "standard" => &["webhook-timestamp", "webhook-signature"],
        "svix" => &["svix-timestamp", "svix-signature"],
        "slack" => &["x-slack-request-timestamp", "x-slack-signature"],
        "paddle" => &["paddle-signature"],
        other => panic!("unknown scheme {other}"),
    };
    for ((name, was), (_, now)) in case.headers.iter().zip(&new) {
        if changes.contains(&name.to_ascii_lowercase().as_str()) {
            assert_ne!(was, now, "{}: {name} not replaced", case.name);
        } else {
            assert_eq!(was, now, "{}: {name} changed", case.name);
        }
    }
    for id in ["webhook-id", "svix-id"] {
        if let Some((_, v)) = new.iter().find(|(n, _)| n.eq_ignore_ascii_case(id)) {
            assert_eq!(v, MSG_ID, "{}: {id} changed", case.name);
        }
    }
    if matches!(case.scheme, "standard" | "svix") {
        assert!(
            new.iter()
                .any(|(n, v)| n.to_ascii_lowercase().ends_with("-id") && v == MSG_ID),
            "{}: id header lost",
            case.name
        );
    }

    let raw: Vec<(String, Vec<u8>)> = new
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
        .collect();
    let after = signature::verify(&cfg, &raw, &body, None, NOW);
    assert_eq!(
        after.verdict,
        Verdict::Valid,
        "{}: {}",
        case.name,
        after.detail
    );
    assert_eq!(after.secret_index, Some(0), "{}", case.name);

    Entry {
        name: case.name.to_string(),
        scheme: case.scheme.to_string(),
        secrets: case.secrets.iter().map(|s| s.to_string()).collect(),
        original_ts: OLD,
        original_headers: case.headers.clone(),
        body_b64: base64::engine::general_purpose::STANDARD.encode(case.body),
        now: NOW,
        resigned_headers: new,
        official: None,
    }
}

fn committed() -> Option<Vec<Entry>> {
    let text = match std::fs::read_to_string(path()) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{}: {e}", path().display()),
    };
    Some(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}; {REGENERATE}", path().display())),
    )
}

#[test]
fn resigned_replays_match_what_the_official_libraries_accepted() {
    let produced: Vec<Entry> = cases().iter().map(resign_case).collect();
    let schemes: Vec<&str> = produced.iter().map(|e| e.scheme.as_str()).collect();
    for s in ["stripe", "standard", "svix", "slack", "paddle"] {
        assert!(schemes.contains(&s), "no case for {s}");
    }
    let old = committed().unwrap_or_default();

    if std::env::var(WRITE_ENV).as_deref() == Ok("1") {
        let mut pending = 0;
        let out: Vec<Entry> = produced
            .into_iter()
            .map(|mut e| {
                e.official = old
                    .iter()
                    .find(|o| o.hookrelay_part() == e)
                    .and_then(|o| o.official.clone());
                pending += usize::from(e.official.is_none());
                e
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&out).unwrap();
        text.push('\n');
        std::fs::write(path(), text).unwrap();
        eprintln!(
            "wrote {} entries to {}; {pending} await the official check: \
             cd tests/vectors && /work/sigdev/venv/bin/python generate.py --check-resigned",
            out.len(),
            path().display()
        );
        return;
    }

    assert!(
        !old.is_empty(),
        "{} is missing or empty; {REGENERATE}",
        path().display()
    );
    let names = |v: &[Entry]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&old),
        names(&produced),
        "the committed entries are not this test's cases; {REGENERATE}"
    );
    for (committed, ours) in old.iter().zip(&produced) {
        let name = &ours.name;
        // (a) Determinism: byte for byte what was committed and checked.
        assert_eq!(
            committed.original_headers, ours.original_headers,
            "{name}: original request changed; {REGENERATE}"
        );
        assert_eq!(
            committed.body_b64, ours.body_b64,
            "{name}: body changed; {REGENERATE}"
        );
        assert_eq!(
            committed.resigned_headers, ours.resigned_headers,
            "{name}: hookrelay's re-signed headers differ from the committed ones; \
             if the change is intended, {REGENERATE}"
        );
        assert_eq!(
            committed.hookrelay_part(),
            *ours,
            "{name}: entry differs; {REGENERATE}"
        );
        // (b) The official library accepted exactly these headers.
        let Some(official) = &committed.official else {
            panic!(
                "{name}: no `official` verdict: the official library never checked this \
                 entry; run `cd tests/vectors && /work/sigdev/venv/bin/python generate.py \
                 --check-resigned` and commit resigned.json"
            );
        };
        assert_eq!(
            official.verdict, "valid",
            "{name}: {} rejected hookrelay's re-signed headers: {official:?}",
            official.library
        );
        assert!(!official.library.is_empty(), "{name}: no library recorded");
        assert_eq!(
            official.secret_index,
            Some(0),
            "{name}: re-signing uses the first secret"
        );
        // The library's clock really was at `now`: the original request it
        // accepted when sent is outside its window at `now`.
        assert_eq!(
            official.original_at_ts.as_deref(),
            Some("valid"),
            "{name}: {official:?}"
        );
        assert_eq!(
            official.original_at_now.as_deref(),
            Some("stale"),
            "{name}: {official:?}"
        );
    }
}
