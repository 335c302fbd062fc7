#!/usr/bin/env python3
"""Writes vectors.json: signature test cases whose expected verdicts come from
the providers' official libraries, for `src/signature/mod.rs` to check.

Setup (versions pinned in requirements.txt and package.json):

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    npm install            # @octokit/webhooks-methods, @shopify/shopify-api
    apt-get install php-cli   # optional, see WooCommerce below
    .venv/bin/python generate.py

Who judges what:
  stripe      stripe-python  WebhookSignature.verify_header
  standard    standardwebhooks  Webhook.verify
  svix        svix (python)  Webhook.verify (svix-* header names)
  slack       slack_sdk      SignatureVerifier.is_valid_request (fixed clock)
  paddle      paddle-python-sdk  Verifier.verify
  github      @octokit/webhooks-methods verify (via generate.mjs)
  shopify     @shopify/shopify-api webhooks.validate (via generate.mjs)
  woocommerce WooCommerce has no verifying library: its PHP signing
              expression `base64_encode(hash_hmac('sha256', $payload,
              $secret, true))` compared with hash_equals, run by `php` when
              installed, else the same computation with Python's hmac.

Libraries that reject with a bare `False` (slack_sdk, paddle) cannot say
why; there `stale` means "the library accepts the same request when its clock
is at the timestamp" and `missing` means "a header the library reads is
absent". Libraries that read the wall clock (stripe, standardwebhooks, svix,
paddle) are given timestamps relative to the real now at generation time; such
vectors record `ts` and `now_offset`, and the Rust test uses now = ts +
now_offset. Slack's verifier takes a clock, so its vectors have a fixed `now`.

With several secrets each is tried with the library on its own, in order, as
hookrelay does: `valid` with the first that passes, else `stale` if one
passes but for the timestamp, else the first secret's verdict.

Re-signed replays (resigned.json) — the second mode:

    .venv/bin/python generate.py --check-resigned

resigned.json is written by hookrelay, not by this script: the Rust test
tests/it/resign_vectors.rs re-signs fixed, three-days-old requests (stripe,
standard under webhook-* and svix-* names, slack, paddle) with
`signature::resign` at a fixed `now`. `--check-resigned` then judges each
entry with the official library (same judges as above, secrets in order) and
writes the result into the entry's `official` field:

    verdict          the library on `resigned_headers` + body at `now`
    secret_index     which secret it accepted (hookrelay re-signs with #0)
    original_at_ts   the library on `original_headers` at `original_ts`
    original_at_now  the library on `original_headers` at `now`
    library          "name version", e.g. "stripe 16.1.0"

`now` is fixed, so the libraries that read the wall clock (stripe and
paddle through time.time, standardwebhooks and svix through datetime.now)
have their clock replaced by `now` while they judge (see frozen_clock);
slack_sdk takes a Clock. The two original_* verdicts show the clock really
moved (valid when sent, stale three days later). Stripe entries the library
accepts also go through stripe.Webhook.construct_event. Paddle is judged with
the SDK's default maximum_variance (5 s). Entries with `svix-*` headers are
judged by svix, other `standard` entries by standardwebhooks.

Regenerating, in order (the Rust test fails while an entry lacks `official`):

    HOOKRELAY_WRITE_RESIGNED=1 cargo test --release --test it resign_vectors
    .venv/bin/python generate.py --check-resigned      # here, in tests/vectors
    cargo test --release --test it resign_vectors     # compares, must pass

The exit status is 1 when a library rejected a re-signed entry; the verdict
is still written, so the Rust test names the failing case.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from unittest import mock

import standardwebhooks
import stripe
import svix.webhooks
from paddle_billing.Notifications import Secret, Verifier
from paddle_billing.Notifications.PaddleSignature import PaddleSignature
from slack_sdk.signature import Clock, SignatureVerifier

HERE = os.path.dirname(os.path.abspath(__file__))
FIXED_NOW = 1_700_000_000
TOLERANCE = 300

BODY = b'{"id":"evt_1NgVb2","object":"event","type":"invoice.paid","data":{"object":{"amount":4200}}}'
# Valid JSON (standardwebhooks parses it) with CRLF line ends between tokens.
UNICODE_BODY = '{\r\n  "customer": "Zoë Ångström 🚀",\r\n  "note": "naïve – ☃"\r\n}\r\n'.encode()
LARGE_BODY = json.dumps(
    {"type": "bulk.export", "rows": [{"i": i, "name": f"row-{i:06d}", "pad": "x" * 80} for i in range(1000)]},
    separators=(",", ":"),
).encode()
TAMPERED = BODY.replace(b"4200", b"4201")

SECRETS = {
    "stripe": ["whsec_test_5f0c9b1e7a2d4c88b3e1", "whsec_test_rotated_91aa07c2"],
    "standard": ["whsec_" + base64.b64encode(b"hookrelay-standard-key-0").decode(),
                 "whsec_" + base64.b64encode(b"hookrelay-standard-key-1").decode()],
    "slack": ["8f742231b10e8888abcd99yyyzzz85a5", "b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6"],
    "paddle": ["pdl_ntfset_01hv8x_secret_a", "pdl_ntfset_01hv8y_secret_b"],
    "github": ["It's a Secret to Everybody", "rotated github secret"],
    "shopify": ["shpss_0123456789abcdef", "shpss_rotated_fedcba98"],
    "woocommerce": ["wc-secret-a1b2c3", "wc-secret-rotated"],
}
WRONG = "not-the-secret"
WRONG_STANDARD = "whsec_" + base64.b64encode(b"some-other-key-entirely").decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def now_real() -> int:
    return int(time.time())


# --- signing (with the libraries' own signers where they have one) --------

def stripe_header(secret, body, ts):
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=ts)


def standard_sig(secret, msg_id, ts, body):
    return standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body.decode())


def slack_sig(secret, ts, body):
    return SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)


def paddle_h1(secret, ts, body):
    return PaddleSignature.calculate_hmac(secret, f"{ts}:{body.decode()}".encode()).hexdigest()


def hmac_hex(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hmac_b64(secret, body):
    return b64(hmac.new(secret.encode(), body, hashlib.sha256).digest())


# --- judging ---------------------------------------------------------------

def combine(results):
    """Per-secret results (verdict strings) -> (expected, secret_index)."""
    for i, r in enumerate(results):
        if r == "valid":
            return "valid", i
    if "stale" in results:
        return "stale", None
    return results[0], None


def hget(headers, name):
    for n, v in headers:
        if n.lower() == name.lower():
            return v
    return None


def judge_stripe(case, now):
    body = base64.b64decode(case["body_b64"])
    out = []
    for secret in case["secrets"]:
        try:
            stripe.WebhookSignature.verify_header(body, hget(case["headers"], "Stripe-Signature"), secret, TOLERANCE)
            out.append("valid")
        except stripe.SignatureVerificationError as e:
            msg = str(e)
            if "No Stripe-Signature header" in msg:
                out.append("missing")
            elif "tolerance zone" in msg:
                out.append("stale")
            else:
                out.append("invalid")
    return combine(out)


def judge_standard_like(make):
    def judge(case, now):
        body = base64.b64decode(case["body_b64"])
        headers = dict(case["headers"])
        out = []
        for secret in case["secrets"]:
            try:
                make(secret).verify(body, headers)
                out.append("valid")
            except Exception as e:  # the libraries raise their own error type
                msg = str(e)
                if "Missing required headers" in msg:
                    out.append("missing")
                elif "too old" in msg or "too new" in msg:
                    out.append("stale")
                else:
                    out.append("invalid")
        return combine(out)
    return judge


class FixedClock(Clock):
    def __init__(self, at):
        self.at = at

    def now(self):
        return float(self.at)


def judge_slack(case, now):
    body = base64.b64decode(case["body_b64"])
    headers = dict(case["headers"])
    out = []
    for secret in case["secrets"]:
        if SignatureVerifier(secret, clock=FixedClock(now)).is_valid_request(body, headers):
            out.append("valid")
            continue
        ts = hget(case["headers"], "X-Slack-Request-Timestamp")
        sig = hget(case["headers"], "X-Slack-Signature")
        if ts is None or sig is None:
            out.append("missing")
        elif ts.isdigit() and SignatureVerifier(secret, clock=FixedClock(int(ts))).is_valid_request(body, headers):
            out.append("stale")
        else:
            out.append("invalid")
    return combine(out)


class PaddleRequest:
    def __init__(self, headers, body):
        self.headers = {n: v for n, v in headers}
        self.body = body


def judge_paddle(case, now):
    body = base64.b64decode(case["body_b64"])
    req = PaddleRequest(case["headers"], body)
    variance = case["tolerance_s"]
    out = []
    for secret in case["secrets"]:
        if Verifier(maximum_variance=variance).verify(req, Secret(secret)):
            out.append("valid")
        elif hget(case["headers"], "Paddle-Signature") is None:
            out.append("missing")
        elif Verifier(maximum_variance=variance).verify(req, Secret(secret), verify_time_drift=False):
            out.append("stale")
        else:
            out.append("invalid")
    return combine(out)


PHP = shutil.which("php")
PHP_CHECK = (
    "$p = file_get_contents($argv[1]); $s = $argv[2]; $sig = $argv[3];"
    "echo hash_equals(base64_encode(hash_hmac('sha256', $p, $s, true)), $sig) ? 'valid' : 'invalid';"
)


def judge_woocommerce(case, now):
    body = base64.b64decode(case["body_b64"])
    sig = hget(case["headers"], "X-WC-Webhook-Signature")
    if not sig:
        return "missing", None
    out = []
    for secret in case["secrets"]:
        if PHP:
            path = os.path.join(HERE, ".body.tmp")
            with open(path, "wb") as f:
                f.write(body)
            res = subprocess.run([PHP, "-r", PHP_CHECK, path, secret, sig], capture_output=True, text=True, check=True)
            os.remove(path)
            out.append(res.stdout.strip())
        else:
            out.append("valid" if hmac.compare_digest(hmac_b64(secret, body), sig) else "invalid")
    return combine(out)


JUDGES = {
    "stripe": judge_stripe,
    "standard": judge_standard_like(standardwebhooks.Webhook),
    "svix": judge_standard_like(svix.webhooks.Webhook),
    "slack": judge_slack,
    "paddle": judge_paddle,
    "woocommerce": judge_woocommerce,
}

# --- cases -----------------------------------------------------------------

cases = []


def add(name, scheme, secrets, headers, body, *, ts=None, now=None, now_offset=None, tolerance=TOLERANCE, judge=None):
    """Records a case; `judge` names the library judge when it differs from the scheme (svix)."""
    case = {
        "name": name,
        "scheme": scheme,
        "secrets": secrets,
        "headers": [[n, v] for n, v in headers],
        "body_b64": b64(body),
        "ts": ts,
        "now": now,
        "now_offset": now_offset,
        "tolerance_s": tolerance,
    }
    # Judged at once: the wall-clock libraries must see the same "now" the
    # case records.
    at = now if now is not None else ts + now_offset
    expected, index = JUDGES[judge or scheme](case, at)
    case["expected"] = expected
    if index is not None:
        case["secret_index"] = index
    cases.append(case)


def timestamped(scheme, build, *, fixed_now, multi, judge=None, tolerance=TOLERANCE):
    """The shared case list for a timestamped scheme. `build(secret_list, body, ts)` returns headers."""
    s0, s1 = SECRETS[scheme if scheme != "svix" else "standard"]
    wrong = WRONG_STANDARD if scheme in ("standard", "svix") else WRONG

    def at(delta):
        base = FIXED_NOW if fixed_now else now_real()
        ts = base + delta
        return dict(ts=ts, now=FIXED_NOW if fixed_now else None, now_offset=None if fixed_now else -delta)

    cfg_name = "standard" if scheme == "svix" else scheme
    j = judge or scheme
    t = at(0)
    add(f"{scheme}/valid", cfg_name, [s0], build([s0], BODY, t["ts"]), BODY, **t, judge=j, tolerance=tolerance)
    t = at(0)
    add(f"{scheme}/wrong_secret", cfg_name, [s0], build([wrong], BODY, t["ts"]), BODY, **t, judge=j, tolerance=tolerance)
    t = at(0)
    add(f"{scheme}/tampered_body", cfg_name, [s0], build([s0], BODY, t["ts"]), TAMPERED, **t, judge=j, tolerance=tolerance)
    t = at(-600)
    add(f"{scheme}/stale_600s_old", cfg_name, [s0], build([s0], BODY, t["ts"]), BODY, **t, judge=j, tolerance=tolerance)
    t = at(600)
    add(f"{scheme}/future_600s_ahead", cfg_name, [s0], build([s0], BODY, t["ts"]), BODY, **t, judge=j, tolerance=tolerance)
    t = at(0)
    add(f"{scheme}/unicode_crlf_body", cfg_name, [s0], build([s0], UNICODE_BODY, t["ts"]), UNICODE_BODY, **t, judge=j, tolerance=tolerance)
    t = at(0)
    add(f"{scheme}/large_100k_body", cfg_name, [s0], build([s0], LARGE_BODY, t["ts"]), LARGE_BODY, **t, judge=j, tolerance=tolerance)
    t = at(0)
    add(f"{scheme}/rotation_second_secret", cfg_name, [s0, s1], build([s1], BODY, t["ts"]), BODY, **t, judge=j, tolerance=tolerance)
    if multi:
        t = at(0)
        add(f"{scheme}/several_signatures_one_valid", cfg_name, [s0], build([wrong, s0, s1], BODY, t["ts"]), BODY, **t, judge=j, tolerance=tolerance)
    return s0


def main():
    # Stripe.
    def stripe_build(secrets, body, ts):
        sigs = [stripe_header(s, body, ts).split(",", 1)[1] for s in secrets]
        return [("Content-Type", "application/json"), ("Stripe-Signature", f"t={ts}," + ",".join(sigs))]

    s0 = timestamped("stripe", stripe_build, fixed_now=False, multi=True)
    t = now_real()
    add("stripe/missing_header", "stripe", [s0], [("Content-Type", "application/json")], BODY, ts=t, now_offset=0)
    t = now_real()
    v1 = stripe_header(s0, BODY, t).split(",", 1)[1]
    add("stripe/v0_only_is_ignored", "stripe", [s0], [("Stripe-Signature", f"t={t},v0={v1[3:]}")], BODY, ts=t, now_offset=0)
    add("stripe/v0_and_v1", "stripe", [s0], [("Stripe-Signature", f"t={t},v0=deadbeef,{v1}")], BODY, ts=t, now_offset=0)
    add("stripe/uppercase_hex", "stripe", [s0], [("Stripe-Signature", f"t={t},v1={v1[3:].upper()}")], BODY, ts=t, now_offset=0)
    add("stripe/no_timestamp", "stripe", [s0], [("Stripe-Signature", v1)], BODY, ts=t, now_offset=0)
    add("stripe/empty_v1", "stripe", [s0], [("Stripe-Signature", f"t={t},v1=")], BODY, ts=t, now_offset=0)
    t = now_real() - 299
    add("stripe/just_inside_tolerance", "stripe", [s0], stripe_build([s0], BODY, t), BODY, ts=t, now_offset=299)

    # Standard Webhooks (webhook-* names) and Svix (svix-* names).
    def std_build(prefix):
        def build(secrets, body, ts):
            msg_id = "msg_2Lp9UZtPZgRwFv0lNa8bKQ"
            sigs = [standard_sig(s, msg_id, ts, body) for s in secrets]
            return [(f"{prefix}-id", msg_id), (f"{prefix}-timestamp", str(ts)), (f"{prefix}-signature", " ".join(sigs))]
        return build

    s0 = timestamped("standard", std_build("webhook"), fixed_now=False, multi=True)
    timestamped("svix", std_build("svix"), fixed_now=False, multi=True)
    t = now_real()
    hdrs = std_build("webhook")([s0], BODY, t)
    add("standard/missing_signature", "standard", [s0], hdrs[:2], BODY, ts=t, now_offset=0)
    add("standard/missing_id", "standard", [s0], hdrs[1:], BODY, ts=t, now_offset=0)
    add("standard/v1a_entry_skipped", "standard", [s0], hdrs[:2] + [("webhook-signature", "v1a,AAAA " + hdrs[2][1])], BODY, ts=t, now_offset=0)
    add("standard/wrong_id", "standard", [s0], [("webhook-id", "msg_other")] + hdrs[1:], BODY, ts=t, now_offset=0)
    bare = s0.removeprefix("whsec_")
    add("standard/secret_without_prefix", "standard", [bare], hdrs, BODY, ts=t, now_offset=0)

    # Slack (fixed clock).
    def slack_build(secrets, body, ts):
        return [("X-Slack-Request-Timestamp", str(ts)), ("X-Slack-Signature", slack_sig(secrets[0], ts, body))]

    s0 = timestamped("slack", slack_build, fixed_now=True, multi=False)
    hdrs = slack_build([s0], BODY, FIXED_NOW - 300)
    add("slack/exactly_at_tolerance", "slack", [s0], hdrs, BODY, ts=FIXED_NOW - 300, now=FIXED_NOW)
    hdrs = slack_build([s0], BODY, FIXED_NOW - 301)
    add("slack/one_second_past_tolerance", "slack", [s0], hdrs, BODY, ts=FIXED_NOW - 301, now=FIXED_NOW)
    hdrs = slack_build([s0], BODY, FIXED_NOW + 301)
    add("slack/one_second_too_new", "slack", [s0], hdrs, BODY, ts=FIXED_NOW + 301, now=FIXED_NOW)
    hdrs = slack_build([s0], BODY, FIXED_NOW)
    add("slack/missing_signature", "slack", [s0], hdrs[:1], BODY, ts=FIXED_NOW, now=FIXED_NOW)
    add("slack/missing_timestamp", "slack", [s0], hdrs[1:], BODY, ts=FIXED_NOW, now=FIXED_NOW)
    add("slack/uppercase_hex", "slack", [s0], [hdrs[0], ("X-Slack-Signature", "v0=" + hdrs[1][1][3:].upper())], BODY, ts=FIXED_NOW, now=FIXED_NOW)

    # Paddle.
    def paddle_build(secrets, body, ts):
        return [("Paddle-Signature", f"ts={ts};" + ";".join(f"h1={paddle_h1(s, ts, body)}" for s in secrets))]

    s0 = timestamped("paddle", paddle_build, fixed_now=False, multi=True)
    t = now_real()
    add("paddle/missing_header", "paddle", [s0], [], BODY, ts=t, now_offset=0)
    t = now_real() - 60
    add("paddle/sdk_default_variance_5s", "paddle", [s0], paddle_build([s0], BODY, t), BODY, ts=t, now_offset=60, tolerance=5)

    # WooCommerce (body only).
    w0, w1 = SECRETS["woocommerce"]
    wc = lambda s, b: [("X-WC-Webhook-Topic", "order.created"), ("X-WC-Webhook-Signature", hmac_b64(s, b))]
    add("woocommerce/valid", "woocommerce", [w0], wc(w0, BODY), BODY, now=FIXED_NOW)
    add("woocommerce/wrong_secret", "woocommerce", [w0], wc(WRONG, BODY), BODY, now=FIXED_NOW)
    add("woocommerce/tampered_body", "woocommerce", [w0], wc(w0, BODY), TAMPERED, now=FIXED_NOW)
    add("woocommerce/missing_header", "woocommerce", [w0], wc(w0, BODY)[:1], BODY, now=FIXED_NOW)
    add("woocommerce/unicode_crlf_body", "woocommerce", [w0], wc(w0, UNICODE_BODY), UNICODE_BODY, now=FIXED_NOW)
    add("woocommerce/large_100k_body", "woocommerce", [w0], wc(w0, LARGE_BODY), LARGE_BODY, now=FIXED_NOW)
    add("woocommerce/rotation_second_secret", "woocommerce", [w0, w1], wc(w1, BODY), BODY, now=FIXED_NOW)

    # GitHub and Shopify: signed here, judged by the JS libraries.
    js_cases = []

    def js(name, scheme, secrets, headers, body):
        js_cases.append({"name": name, "scheme": scheme, "secrets": secrets, "headers": [[n, v] for n, v in headers],
                         "body_b64": b64(body), "ts": None, "now": FIXED_NOW, "now_offset": None,
                         "tolerance_s": TOLERANCE})

    g0, g1 = SECRETS["github"]
    gh = lambda s, b: [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                       ("X-Hub-Signature-256", "sha256=" + hmac_hex(s, b))]
    js("github/valid", "github", [g0], gh(g0, BODY), BODY)
    js("github/wrong_secret", "github", [g0], gh(WRONG, BODY), BODY)
    js("github/tampered_body", "github", [g0], gh(g0, BODY), TAMPERED)
    js("github/missing_header", "github", [g0], gh(g0, BODY)[:2], BODY)
    js("github/unicode_crlf_body", "github", [g0], gh(g0, UNICODE_BODY), UNICODE_BODY)
    js("github/large_100k_body", "github", [g0], gh(g0, LARGE_BODY), LARGE_BODY)
    js("github/rotation_second_secret", "github", [g0, g1], gh(g1, BODY), BODY)
    upper = gh(g0, BODY)
    upper[2] = ("X-Hub-Signature-256", "sha256=" + hmac_hex(g0, BODY).upper())
    js("github/uppercase_hex", "github", [g0], upper, BODY)
    js("github/no_prefix", "github", [g0], gh(g0, BODY)[:2] + [("X-Hub-Signature-256", hmac_hex(g0, BODY))], BODY)
    # The example from GitHub's documentation.
    js("github/docs_example", "github", [g0], [("X-Hub-Signature-256",
       "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")], b"Hello, World!")

    p0, p1 = SECRETS["shopify"]
    sh = lambda s, b: [("X-Shopify-Topic", "orders/create"), ("X-Shopify-Shop-Domain", "example.myshopify.com"),
                       ("X-Shopify-API-Version", "2025-10"), ("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
                       ("X-Shopify-Hmac-Sha256", hmac_b64(s, b))]
    js("shopify/valid", "shopify", [p0], sh(p0, BODY), BODY)
    js("shopify/wrong_secret", "shopify", [p0], sh(WRONG, BODY), BODY)
    js("shopify/tampered_body", "shopify", [p0], sh(p0, BODY), TAMPERED)
    js("shopify/missing_header", "shopify", [p0], sh(p0, BODY)[:4], BODY)
    js("shopify/unicode_crlf_body", "shopify", [p0], sh(p0, UNICODE_BODY), UNICODE_BODY)
    js("shopify/large_100k_body", "shopify", [p0], sh(p0, LARGE_BODY), LARGE_BODY)
    js("shopify/rotation_second_secret", "shopify", [p0, p1], sh(p1, BODY), BODY)
    ev = [("shopify-topic", "orders/create"), ("shopify-shop-domain", "example.myshopify.com"),
          ("shopify-api-version", "2025-10"), ("shopify-webhook-id", "w-1"), ("shopify-event-id", "e-1"),
          ("shopify-hmac-sha256", hmac_b64(p0, BODY))]
    js("shopify/events_header_names", "shopify", [p0], ev, BODY)

    res = subprocess.run(["node", os.path.join(HERE, "generate.mjs")], input=json.dumps({"cases": js_cases}),
                         capture_output=True, text=True, cwd=HERE)
    if res.returncode != 0:
        sys.exit(f"generate.mjs failed (run `npm install` here first):\n{res.stderr}")
    node = json.loads(res.stdout)
    cases.extend(node["cases"])

    libraries = {
        "stripe": version("stripe"),
        "standardwebhooks": version("standardwebhooks"),
        "svix": version("svix"),
        "slack_sdk": version("slack_sdk"),
        "paddle-python-sdk": version("paddle-python-sdk"),
        "@octokit/webhooks-methods": node["versions"]["octokit"],
        "@shopify/shopify-api": node["versions"]["shopify"],
        "woocommerce": (subprocess.run([PHP, "-r", "echo 'php ' . PHP_VERSION;"], capture_output=True, text=True).stdout
                        if PHP else "python hmac (php not installed)"),
    }
    doc = {
        "generated_by": "tests/vectors/generate.py",
        "generated_at": now_real(),
        "libraries": libraries,
        "cases": cases,
    }
    # The ~100 KB body is stored once and referenced, to keep the file small.
    for case in cases:
        if base64.b64decode(case["body_b64"]) == LARGE_BODY:
            del case["body_b64"]
            case["body_ref"] = "large_100k"
    doc["bodies"] = {"large_100k": b64(LARGE_BODY)}
    with open(os.path.join(HERE, "vectors.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    counts = {}
    for c in cases:
        counts[c["expected"]] = counts.get(c["expected"], 0) + 1
    print(f"wrote {len(cases)} cases: {counts}; libraries: {libraries}")


# --- re-signed replays (resigned.json, written by tests/it/resign_vectors.rs) ---

RESIGNED = os.path.join(HERE, "resigned.json")


@contextlib.contextmanager
def frozen_clock(at):
    """Makes the wall-clock libraries see `at` as now: stripe (time.time),
    paddle (`from time import time`), standardwebhooks and svix (datetime.now
    in standardwebhooks.webhooks)."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(at, tz=tz)

    paddle_verifier = sys.modules["paddle_billing.Notifications.Verifier"]
    std_module = sys.modules["standardwebhooks.webhooks"]
    with mock.patch("time.time", lambda: float(at)), \
            mock.patch.object(paddle_verifier, "time", lambda: float(at)), \
            mock.patch.object(std_module, "datetime", FrozenDatetime):
        yield


def resigned_judge(entry):
    """(judge key, library label) for an entry."""
    scheme = entry["scheme"]
    names = [n.lower() for n, _ in entry["original_headers"]]
    if scheme in ("standard", "svix"):
        key = "svix" if any(n.startswith("svix-") for n in names) else "standard"
    else:
        key = scheme
    dist = {"stripe": "stripe", "standard": "standardwebhooks", "svix": "svix",
            "slack": "slack_sdk", "paddle": "paddle-python-sdk"}[key]
    return key, f"{dist} {version(dist)}"


def judge_at(key, entry, headers, at):
    """The library's verdict and accepting secret for `headers` at `at`."""
    case = {
        "secrets": entry["secrets"],
        "headers": headers,
        "body_b64": entry["body_b64"],
        # Paddle's SDK default variance; the other judges use the libraries'
        # own fixed five minutes (stripe: TOLERANCE, also its default).
        "tolerance_s": 5 if key == "paddle" else TOLERANCE,
    }
    with frozen_clock(at):
        verdict, index = JUDGES[key](case, at)
        if key == "stripe" and verdict == "valid":
            # The receiver-facing API too: verify, then parse the event.
            body = base64.b64decode(entry["body_b64"])
            try:
                stripe.Webhook.construct_event(body, hget(headers, "Stripe-Signature"), entry["secrets"][index],
                                               tolerance=TOLERANCE)
            except Exception as e:  # noqa: BLE001 - recorded as the verdict
                return f"invalid (construct_event: {e})", None
    return verdict, index


def check_resigned():
    try:
        with open(RESIGNED) as f:
            entries = json.load(f)
    except FileNotFoundError:
        sys.exit(f"{RESIGNED} not found: write it first with "
                 "`HOOKRELAY_WRITE_RESIGNED=1 cargo test --release --test it resign_vectors`")
    rejected = []
    for entry in entries:
        key, library = resigned_judge(entry)
        verdict, index = judge_at(key, entry, entry["resigned_headers"], entry["now"])
        at_ts, _ = judge_at(key, entry, entry["original_headers"], entry["original_ts"])
        at_now, _ = judge_at(key, entry, entry["original_headers"], entry["now"])
        official = {"verdict": verdict, "library": library}
        if index is not None:
            official["secret_index"] = index
        official["original_at_ts"] = at_ts
        official["original_at_now"] = at_now
        entry["official"] = official
        print(f"{entry['name']:45} {library:26} re-signed: {verdict} (secret #{index}); "
              f"original: {at_ts} when sent, {at_now} at now")
        if verdict != "valid":
            rejected.append(entry["name"])
    with open(RESIGNED, "w") as f:
        json.dump(entries, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if rejected:
        sys.exit(f"the official library rejected hookrelay's re-signed headers: {', '.join(rejected)}")
    print(f"all {len(entries)} re-signed entries accepted; wrote {RESIGNED}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-resigned"]:
        check_resigned()
    elif sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [--check-resigned]")
    else:
        main()
