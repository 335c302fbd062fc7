//! The dashboard, rendered for seeded data: every page answers, shows what a
//! developer needs, and escapes hostile payloads wherever they appear (body,
//! header values, path, query, topic, endpoint name, upstream response).
//! Forms need the CSRF token and the same origin; with an admin token the
//! login page sets a session cookie.

use bytes::Bytes;
use serde_json::json;

use hookrelay::config::Config;

use crate::support::{Receiver, Reply, TestServer, send, temp_data};

const XSS: &str = "<script>alert(1)</script>";

/// A page fetched from the admin listener.
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub html: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn headers_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The CSRF token the page's forms carry.
    pub fn csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let start = self.html.find(marker).expect("page has a CSRF field") + marker.len();
        let end = self.html[start..].find('"').unwrap() + start;
        self.html[start..end].to_string()
    }

    /// The only `<script` in a page is our own script tag.
    pub fn assert_no_injected_markup(&self) {
        let lower = self.html.to_ascii_lowercase();
        assert_eq!(
            lower.matches("<script").count(),
            1,
            "only app.js may be a script:\n{}",
            self.html
        );
        assert!(lower.contains("<script src=\"/static/app.js\" defer></script>"));
        for bad in [
            "<img",
            "<svg onload",
            "<b>",
            "\"onerror",
            "\" onerror",
            "'onmouseover",
            "' onmouseover",
            "href=\"javascript:",
            "src=\"javascript:",
        ] {
            assert!(
                !lower.contains(bad),
                "{bad} leaked into the page:\n{}",
                self.html
            );
        }
    }
}

pub async fn get_page(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> Page {
    let (status, headers, body) = send("GET", &s.admin_url(path), headers, Bytes::new()).await;
    Page {
        status,
        headers,
        html: String::from_utf8(body.to_vec()).expect("pages are UTF-8"),
    }
}

/// Posts a form (`application/x-www-form-urlencoded`) as a browser would.
pub async fn post_form(
    s: &TestServer,
    path: &str,
    fields: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Page {
    let body = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                hookrelay::admin::dashboard::encode_component(k),
                hookrelay::admin::dashboard::encode_component(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    headers.extend_from_slice(extra);
    let (status, headers, body) =
        send("POST", &s.admin_url(path), &headers, Bytes::from(body)).await;
    Page {
        status,
        headers,
        html: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends one HTTP/1.1 request as raw bytes to the ingest listener and
/// returns the response head and body as text.
pub async fn raw_request(
    s: &TestServer,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        s.ingest,
        body.len()
    )
    .into_bytes();
    for (n, v) in headers {
        req.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    let out = crate::support::raw(s.ingest, &req, std::time::Duration::from_secs(10)).await;
    String::from_utf8_lossy(&out).into_owned()
}

pub fn event_id_of(response: &str) -> String {
    response
        .lines()
        .find_map(|l| l.strip_prefix("x-hookrelay-event: "))
        .unwrap_or_else(|| panic!("no event id in {response}"))
        .trim()
        .to_string()
}

/// Text as askama escapes it in HTML (numeric character references).
pub fn esc(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '&' => out.push_str("&#38;"),
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn origin(s: &TestServer) -> String {
    format!("http://{}", s.admin)
}

#[tokio::test]
async fn pages_render_hostile_payloads_escaped() {
    let up = Receiver::start(vec![
        Reply::status(500)
            .header("x-upstream", "<img src=x onerror=alert(2)>")
            .body(format!("upstream says {XSS}")),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "fwd", "target": up.url("/hooks"), "name": format!("shop {XSS}") }),
    )
    .await;
    s.create_endpoint(json!({ "slug": "bin" })).await;

    let body =
        json!({ "id": "evt_1", "type": format!("order.{XSS}"), XSS: "\"><svg onload=alert(3)>" })
            .to_string();
    // Sent raw, so the target keeps `'` and `$(` as a hostile sender would
    // send them (hyper refuses `<`, `>` and `"` in a request target).
    let raw = raw_request(
        &s,
        "POST",
        "/in/fwd/p'onmouseover='alert(4)'?q=javascript:alert(6)&r=$(id)",
        &[
            ("x-evil", "\"><script>alert(5)</script>"),
            ("x-github-event", "<b>push</b>"),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    assert!(
        raw.starts_with("HTTP/1.1 500"),
        "the upstream's answer comes back: {raw}"
    );
    let id = event_id_of(&raw);
    let bin_id = s
        .post_in("bin", &[], vec![0u8, 1, 2, 0xff, b'<', b'>'])
        .await
        .event_id();

    // Endpoints page: name escaped, counters, chart, failure warning.
    let p = get_page(&s, "/", &[]).await;
    assert_eq!(p.status, 200);
    assert!(p.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        p.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(
        p.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(
        p.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    p.assert_no_injected_markup();
    assert!(p.html.contains(&esc(&format!("shop {XSS}"))), "{}", p.html);
    assert!(
        p.html
            .contains("failures left before the endpoint is disabled"),
        "a failure warns"
    );
    assert!(p.html.contains("<strong>1</strong> failed"));
    assert!(
        p.html.contains("class=\"bar\""),
        "the chart has a bar for this minute"
    );
    assert!(p.html.contains("Send test ping"));

    // Events list: path and query escaped.
    let p = get_page(&s, "/events", &[]).await;
    assert_eq!(p.status, 200);
    p.assert_no_injected_markup();
    assert!(p.html.contains(&format!("/events/{id}")));
    assert!(p.html.contains(&format!("/events/{bin_id}")));
    assert!(
        p.html.contains(&esc(
            "/p'onmouseover='alert(4)'?q=javascript:alert(6)&r=$(id)"
        )),
        "{}",
        p.html
    );

    // Event detail: headers, JSON keys and values, upstream response.
    let p = get_page(&s, &format!("/events/{id}"), &[]).await;
    assert_eq!(p.status, 200);
    p.assert_no_injected_markup();
    assert!(
        p.html.contains(&esc("\"><script>alert(5)</script>")),
        "header value escaped"
    );
    assert!(
        p.html
            .contains(&format!("class=\"j-key\">{}", esc(&format!("\"{XSS}\"")))),
        "JSON key escaped and highlighted"
    );
    assert!(p.html.contains(&esc("<svg onload=alert(3)>")));
    assert!(
        p.html.contains(&esc(&format!("upstream says {XSS}"))),
        "upstream body escaped"
    );
    assert!(
        p.html.contains(&esc("<img src=x onerror=alert(2)>")),
        "upstream header escaped"
    );
    assert!(p.html.contains("x-evil"));
    assert!(p.html.contains("Copy as curl"));
    assert!(p.html.contains("--data-raw"));
    assert!(
        p.html.contains(&format!("/api/events/{id}/body")),
        "download raw link"
    );
    assert!(p.html.contains("unchecked"), "no signature configured");
    assert!(p.html.contains("#1"), "the forward attempt is listed");

    // A binary body is a hex dump.
    let p = get_page(&s, &format!("/events/{bin_id}"), &[]).await;
    assert_eq!(p.status, 200);
    assert!(p.html.contains("00 01 02 ff 3c 3e"), "{}", p.html);
    assert!(p.html.contains("binary, hex dump"));
    assert!(
        p.html.contains("base64 -d"),
        "binary curl bodies go through a file"
    );

    // The raw body is an attachment, never rendered.
    let (status, headers, raw) = send(
        "GET",
        &s.admin_url(&format!("/api/events/{id}/body")),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(&raw[..], body.as_bytes());
    let disp = headers
        .iter()
        .find(|(n, _)| n == "content-disposition")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert!(disp.unwrap().starts_with("attachment"));

    // Edit page and history.
    let p = get_page(&s, "/endpoints/fwd", &[]).await;
    assert_eq!(p.status, 200);
    p.assert_no_injected_markup();
    assert!(p.html.contains("Recent events"));
    assert!(p.html.contains(&format!("/events/{id}")));

    // Static assets.
    let css = get_page(&s, "/static/app.css", &[]).await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(css.html.contains("prefers-color-scheme: dark"));
    let js = get_page(&s, "/static/app.js", &[]).await;
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        !js.html.contains("innerHTML ="),
        "rows are built with textContent"
    );

    // Unknown things are 404 pages.
    assert_eq!(
        get_page(&s, "/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", &[])
            .await
            .status,
        404
    );
    assert_eq!(get_page(&s, "/endpoints/nope", &[]).await.status, 404);
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_the_same_origin() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "bin" })).await;
    let page = get_page(&s, "/", &[]).await;
    let token = page.csrf();
    let o = origin(&s);

    let p = post_form(&s, "/endpoints/bin/pause", &[], &[("origin", &o)]).await;
    assert_eq!(p.status, 403, "no token");
    let p = post_form(
        &s,
        "/endpoints/bin/pause",
        &[("_csrf", "0000")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 403, "wrong token");
    let p = post_form(
        &s,
        "/endpoints/bin/pause",
        &[("_csrf", &token)],
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(p.status, 403, "other origin");
    let p = post_form(
        &s,
        "/endpoints/bin/pause",
        &[("_csrf", &token)],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(p.status, 403, "cross-site fetch");
    assert_eq!(
        s.get("/api/endpoints/bin").await["status"],
        "active",
        "nothing changed"
    );

    let p = post_form(
        &s,
        "/endpoints/bin/pause",
        &[("_csrf", &token), ("back", "/")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 303);
    assert_eq!(p.header("location").as_deref(), Some("/"));
    assert_eq!(s.get("/api/endpoints/bin").await["status"], "paused");
    // The result is shown once on the next page.
    let flash = p
        .headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("hookrelay_flash="))
        .unwrap();
    let cookie = flash.split(';').next().unwrap().to_string();
    let next = get_page(&s, "/", &[("cookie", &cookie)]).await;
    assert!(next.html.contains("Paused bin"), "{}", next.html);
    assert!(
        next.headers_all("set-cookie")
            .iter()
            .any(|c| c.starts_with("hookrelay_flash=;")),
        "and cleared"
    );

    // An id or slug with a control character in it (from the URL) is a
    // page saying so, not a 500 from a Location header it cannot carry.
    for path in ["/events/a%0Ab/replay", "/endpoints/a%0Ab/delete"] {
        let p = post_form(&s, path, &[("_csrf", &token)], &[("origin", &o)]).await;
        assert!(p.status < 500, "{path}: {}", p.status);
        if let Some(to) = p.header("location") {
            assert!(to.contains("%0A"), "{path}: {to}");
        }
    }

    // The JSON API refuses other origins too (a page on the same machine
    // could otherwise replay or delete through the loopback listener).
    let (status, _, _) = send(
        "POST",
        &s.admin_url("/api/endpoints/bin/resume"),
        &[("origin", "http://localhost:3000")],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = send(
        "POST",
        &s.admin_url("/api/endpoints/bin/resume"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        status, 200,
        "clients without Origin (CLI, curl) are unaffected"
    );
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie() {
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(Config {
        data,
        admin_token: Some("s3cret-token".into()),
        ..Config::default()
    })
    .await;

    let p = get_page(&s, "/events?state=failed", &[]).await;
    assert_eq!(p.status, 303, "pages send browsers to the login");
    assert_eq!(
        p.header("location").as_deref(),
        Some("/login?next=%2Fevents%3Fstate%3Dfailed")
    );
    let (status, _, _) = send("GET", &s.admin_url("/api/endpoints"), &[], Bytes::new()).await;
    assert_eq!(status, 401, "the API still answers 401");
    assert_eq!(get_page(&s, "/static/app.css", &[]).await.status, 200);
    // A form sent once the session is gone goes to the login too (and back
    // to its page after), not to a JSON error.
    let o = origin(&s);
    let referer = format!("{o}/events/01ARZ3NDEKTSV4RRFFQ69G5FAV");
    let form = post_form(
        &s,
        "/events/01ARZ3NDEKTSV4RRFFQ69G5FAV/replay",
        &[("_csrf", "x")],
        &[("origin", &o), ("referer", &referer)],
    )
    .await;
    assert_eq!(form.status, 303, "{}", form.html);
    assert_eq!(
        form.header("location").as_deref(),
        Some("/login?next=%2Fevents%2F01ARZ3NDEKTSV4RRFFQ69G5FAV")
    );

    let login = get_page(&s, "/login?next=/events", &[]).await;
    assert_eq!(login.status, 200);
    assert!(login.html.contains("type=\"password\""));
    let token = login.csrf();
    let o = origin(&s);
    let bad = post_form(
        &s,
        "/login",
        &[("_csrf", &token), ("token", "nope"), ("next", "/events")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(bad.html.contains("not the admin token"));
    assert!(bad.header("set-cookie").is_none());

    let ok = post_form(
        &s,
        "/login",
        &[
            ("_csrf", &token),
            ("token", "s3cret-token"),
            ("next", "//evil.example/"),
        ],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(ok.status, 303);
    assert_eq!(
        ok.header("location").as_deref(),
        Some("/"),
        "never an open redirect"
    );
    let set = ok.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains("s3cret-token"),
        "the cookie does not carry the token"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    // Named by the admin port: browsers share a host's cookies across
    // ports, and two instances on one machine must not log each other out.
    let name = format!("hookrelay_session_{}=", s.admin.port());
    assert!(cookie.starts_with(&name), "{cookie}");
    let p = get_page(
        &s,
        "/",
        &[("cookie", &cookie.replacen(&name, "hookrelay_session_1=", 1))],
    )
    .await;
    assert_eq!(p.status, 303, "another instance's session lets nobody in");

    let p = get_page(&s, "/events", &[("cookie", &cookie)]).await;
    assert_eq!(p.status, 200);
    assert!(p.html.contains("Log out"));
    let (status, _, _) = send(
        "GET",
        &s.admin_url("/api/endpoints"),
        &[("cookie", &cookie)],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        status, 200,
        "the live tail's EventSource and the API accept the cookie"
    );
    let (status, _, _) = send(
        "GET",
        &s.admin_url("/api/endpoints"),
        &[("authorization", "Bearer s3cret-token")],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200, "and the bearer token still works");
    let p = get_page(&s, "/", &[("cookie", "hookrelay_session=forged")]).await;
    assert_eq!(p.status, 303);

    // A live stream let in by the session ends with it.
    let (status, _, _) = send(
        "POST",
        &s.admin_url("/api/endpoints"),
        &[
            ("authorization", "Bearer s3cret-token"),
            ("content-type", "application/json"),
        ],
        Bytes::from(r#"{"slug":"tail"}"#),
    )
    .await;
    assert_eq!(status, 201);
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = http::Request::get(s.admin_url("/api/stream"))
        .header("cookie", &cookie)
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let tail = tokio::spawn(async move {
        use http_body_util::BodyExt;
        let mut body = resp.into_body();
        let mut seen = String::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
        seen
    });

    // The forms' token is the session's: the login page's (made before
    // any session) and another session's are refused.
    let mine = get_page(&s, "/events", &[("cookie", &cookie)]).await.csrf();
    let again = post_form(
        &s,
        "/login",
        &[("_csrf", &token), ("token", "s3cret-token"), ("next", "/")],
        &[("origin", &o)],
    )
    .await;
    let other = again.header("set-cookie").unwrap();
    let other = other.split(';').next().unwrap();
    let theirs = get_page(&s, "/events", &[("cookie", other)]).await.csrf();
    assert!(mine != token && theirs != mine, "{token} {mine} {theirs}");
    for wrong in [&token, &theirs] {
        let refused = post_form(
            &s,
            "/logout",
            &[("_csrf", wrong)],
            &[("origin", &o), ("cookie", &cookie)],
        )
        .await;
        assert_eq!(refused.status, 403, "{}", refused.html);
    }

    let out = post_form(
        &s,
        "/logout",
        &[("_csrf", &mine)],
        &[("origin", &o), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // It ends at the logout, not at the next event (nothing comes here).
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), tail)
        .await
        .expect("the stream ended with its session")
        .unwrap();
    assert!(!seen.contains("event:"), "{seen}");
    let p = get_page(&s, "/events", &[("cookie", &cookie)]).await;
    assert_eq!(
        p.status, 303,
        "the server ended the session, not just the browser"
    );

    // Cookies ignore ports: the browser sends the login to the ingest
    // listener too, where it must not be stored (nor forwarded).
    let (status, _, _) = send(
        "POST",
        &s.admin_url("/api/endpoints"),
        &[
            ("authorization", "Bearer s3cret-token"),
            ("content-type", "application/json"),
        ],
        Bytes::from(json!({ "slug": "bin" }).to_string()),
    )
    .await;
    assert_eq!(status, 201);
    let id = s
        .post_in("bin", &[("cookie", &format!("theme=dark; {cookie}"))], "x")
        .await
        .event_id();
    let (_, _, ev) = send(
        "GET",
        &s.admin_url(&format!("/api/events/{id}")),
        &[("authorization", "Bearer s3cret-token")],
        Bytes::new(),
    )
    .await;
    let ev = String::from_utf8_lossy(&ev);
    assert!(ev.contains("theme=dark"), "{ev}");
    assert!(!ev.contains("hookrelay_session"), "{ev}");

    // Wrong guesses: five at once per address, then 429 without the token
    // being looked at (a right one included), answered at once. The budget
    // refills (one guess a second), so each check follows a fresh run-out,
    // and a check that met a budget just refilled is made again (bounded):
    // a server that looks at the token while throttled never passes.
    async fn bearer(url: &str, t: &str) -> u16 {
        let auth = format!("Bearer {t}");
        let started = std::time::Instant::now();
        let st = send("GET", url, &[("authorization", &auth)], Bytes::new())
            .await
            .0;
        // Not parked: a parked answer holds its connection for seconds.
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(5),
            "{st} after {took:?}"
        );
        st
    }
    /// Wrong guesses until a 429; how many were answered 401 first.
    async fn run_out(url: &str) -> usize {
        let mut wrong = 0;
        loop {
            match bearer(url, "guess-wrong").await {
                401 => wrong += 1,
                429 => return wrong,
                other => panic!("a wrong guess got {other}"),
            }
            assert!(wrong <= 20, "{wrong} wrong guesses and no 429");
        }
    }
    let url = s.admin_url("/api/endpoints");
    let started = std::time::Instant::now();
    let wrong = run_out(&url).await;
    // The wrong login above was the first of the five; any refill since
    // (one a second) adds to the rest.
    let refilled = started.elapsed().as_secs() as usize + 2;
    assert!(
        (4..=4 + refilled).contains(&wrong),
        "{wrong} wrong guesses before the 429"
    );
    let mut retried = 0;
    while bearer(&url, "s3cret-token").await != 429 {
        retried += 1;
        assert!(
            retried < 5,
            "no timing oracle: the right token is let in while out of guesses"
        );
        run_out(&url).await;
    }
    let mut retried = 0;
    loop {
        let login = get_page(&s, "/login", &[]).await;
        run_out(&url).await;
        let bad = post_form(
            &s,
            "/login",
            &[
                ("_csrf", &login.csrf()),
                ("token", "s3cret-token"),
                ("next", "/"),
            ],
            &[("origin", &o)],
        )
        .await;
        if bad.status == 429 {
            break;
        }
        retried += 1;
        assert!(
            retried < 5,
            "the login form shares the budget: {}",
            bad.status
        );
    }
}

#[tokio::test]
async fn endpoint_forms_validate_next_to_the_field() {
    let s = TestServer::start().await;
    let new = get_page(&s, "/endpoints/new", &[]).await;
    assert_eq!(new.status, 200);
    for field in [
        "slug",
        "name",
        "target",
        "mode",
        "timeout_ms",
        "failure_threshold",
        "success_codes",
        "retry",
        "sig_scheme",
        "sig_secret",
        "sig_tolerance",
        "sig_enforce",
        "resp_status",
        "resp_headers",
        "resp_body",
        "resp_delay",
        "resp_sequence",
        "notify_url",
        "mirror",
    ] {
        assert!(
            new.html.contains(&format!("name=\"{field}\"")),
            "the form has {field}"
        );
    }
    let token = new.csrf();
    let o = origin(&s);
    let form = |slug: &'static str, target: &'static str| {
        vec![
            ("_csrf", token.clone()),
            ("slug", slug.to_string()),
            ("target", target.to_string()),
            ("timeout_ms", "2500".to_string()),
            ("failure_threshold", "3".to_string()),
            ("success_codes", "2xx, 301".to_string()),
            ("retry", "5s, 1m".to_string()),
            ("resp_status", "202".to_string()),
            ("resp_headers", "x-bin: yes".to_string()),
            ("resp_body", "accepted".to_string()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let s = &s;
        let o = o.clone();
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(s, "/endpoints/new", &f, &[("origin", &o)]).await
        }
    };

    let p = post(form("Bad Slug", "")).await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("field invalid"), "the slug field is marked");
    assert!(
        p.html
            .contains("class=\"field-error\" role=\"alert\">invalid slug"),
        "{}",
        p.html
    );
    assert!(
        p.html.contains("value=\"Bad Slug\""),
        "the form keeps what was typed"
    );

    let p = post(form("ok", "ftp://x")).await;
    assert_eq!(p.status, 400);
    assert!(
        p.html.contains("field-error\" role=\"alert\">target: "),
        "{}",
        p.html
    );

    let mut bad_number = form("ok", "");
    bad_number[3].1 = "soon".into();
    let p = post(bad_number).await;
    assert!(
        p.html
            .contains(&esc("timeout_ms: \"soon\" is not a whole number")),
        "{}",
        p.html
    );

    // The API caps a bin's answer body; the form (up to 2 MiB) the same.
    let mut big_answer = form("ok", "");
    big_answer[9].1 = "x".repeat(600 * 1024);
    let p = post(big_answer).await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("response body must be at most 512 KiB"));
    let mut too_big = form("ok", "");
    too_big[9].1 = "x".repeat(3 << 20);
    let p = post(too_big).await;
    assert_eq!(p.status, 413, "a form over the limit is too large, not bad");

    let p = post(form("ok", "")).await;
    assert_eq!(p.status, 303, "{}", p.html);
    assert_eq!(p.header("location").as_deref(), Some("/endpoints/ok"));
    let ep = s.get("/api/endpoints/ok").await;
    assert_eq!(ep["timeout_ms"], 2500);
    assert_eq!(ep["failure_threshold"], 3);
    assert_eq!(ep["success_codes"], json!(["2xx", "301"]));
    assert_eq!(ep["retry"], json!(["5s", "1m"]));
    assert_eq!(ep["response"]["status"], 202);
    assert_eq!(ep["response"]["headers"], json!([["x-bin", "yes"]]));
    assert_eq!(ep["response"]["body"], "accepted");

    // Edit: a signature secret is set once and kept when left empty.
    let edit = get_page(&s, "/endpoints/ok", &[]).await;
    assert!(edit.html.contains("value=\"2500\""));
    let fields = [
        ("_csrf", token.as_str()),
        ("name", "Orders"),
        ("timeout_ms", "2500"),
        ("failure_threshold", "3"),
        ("success_codes", "2xx"),
        ("retry", "5s"),
        ("sig_scheme", "github"),
        ("sig_secret", "topsecret"),
        ("resp_status", "200"),
    ];
    let p = post_form(&s, "/endpoints/ok", &fields, &[("origin", &o)]).await;
    assert_eq!(p.status, 303, "{}", p.html);
    let ep = s.get("/api/endpoints/ok").await;
    assert_eq!(ep["name"], "Orders");
    assert_eq!(ep["signature"]["has_secret"], true);
    let edit = get_page(&s, "/endpoints/ok", &[]).await;
    assert!(!edit.html.contains("topsecret"), "secrets are never shown");
    let mut keep = fields.to_vec();
    keep.retain(|(k, _)| *k != "sig_secret");
    let p = post_form(&s, "/endpoints/ok", &keep, &[("origin", &o)]).await;
    assert_eq!(p.status, 303);
    assert_eq!(
        s.get("/api/endpoints/ok").await["signature"]["has_secret"],
        true
    );

    // Delete needs the slug typed on the confirmation page.
    let confirm = get_page(&s, "/endpoints/ok/delete", &[]).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.html.contains("Type <code>ok</code> to confirm"));
    let p = post_form(
        &s,
        "/endpoints/ok/delete",
        &[("_csrf", &token), ("confirm", "no")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 303);
    assert_eq!(
        s.api("GET", "/api/endpoints/ok", None).await.0,
        200,
        "not deleted"
    );
    let p = post_form(
        &s,
        "/endpoints/ok/delete",
        &[("_csrf", &token), ("confirm", "ok")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 303);
    assert_eq!(s.api("GET", "/api/endpoints/ok", None).await.0, 404);
}

#[tokio::test]
async fn replay_from_the_event_page() {
    let mut up = Receiver::start(vec![Reply::status(503), Reply::status(200).body("ok now")]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "fwd", "target": up.url("/in") }))
        .await;
    let id = s
        .post_in("fwd", &[("content-type", "text/plain")], "hello")
        .await
        .event_id();
    up.next().await;

    let page = get_page(&s, &format!("/events/{id}"), &[]).await;
    let token = page.csrf();
    let o = origin(&s);
    let p = post_form(
        &s,
        &format!("/events/{id}/replay"),
        &[("_csrf", &token)],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 303);
    assert_eq!(
        p.header("location"),
        Some(format!("/events/{id}?attempt=2#attempt-2"))
    );
    assert_eq!(&up.next().await.body[..], b"hello");
    let page = get_page(&s, &format!("/events/{id}?attempt=2"), &[]).await;
    assert!(page.html.contains("id=\"attempt-2\""));
    assert!(
        page.html.contains("attempt success highlight"),
        "the new attempt is marked"
    );
    assert!(page.html.contains("ok now"));
    assert!(page.html.contains("trig-replay"));

    // Re-signing needs a signature config: the relay's 422 message shows.
    let p = post_form(
        &s,
        &format!("/events/{id}/replay"),
        &[("_csrf", &token), ("resign", "1")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 303);
    let cookie = p
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = get_page(&s, &format!("/events/{id}"), &[("cookie", &cookie)]).await;
    assert!(
        page.html.contains(
            "Replay re-signed refused: resign: endpoint &#34;fwd&#34; has no signature secret"
        ),
        "{}",
        page.html
    );

    // Replay to a bad URL says why.
    let p = post_form(
        &s,
        &format!("/events/{id}/replay"),
        &[("_csrf", &token), ("target", "ftp://nope")],
        &[("origin", &o)],
    )
    .await;
    let cookie = p
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = get_page(&s, &format!("/events/{id}"), &[("cookie", &cookie)]).await;
    assert!(
        page.html.contains("Replay refused: target:"),
        "{}",
        page.html
    );
}

#[tokio::test]
async fn event_list_filters_paginate_and_count_for_bulk_replay() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "a" })).await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    // Back to back: ids made in the same millisecond still sort by arrival.
    for i in 0..5 {
        s.post_in(&format!("a/n{i}"), &[], "x").await;
    }
    s.post_in("b/only", &[], "y").await;

    let p = get_page(&s, "/events?endpoint=a&limit=2", &[]).await;
    assert_eq!(p.status, 200);
    assert!(
        p.html.contains("/n4") && p.html.contains("/n3") && !p.html.contains("/n2"),
        "newest first: {}",
        p.html
    );
    assert!(!p.html.contains("/only"));
    assert!(p.html.contains("Older »"));
    assert!(
        p.html.contains("data-live=\"on\""),
        "the first page tails live"
    );
    let start = p
        .html
        .find("href=\"/events?endpoint=a&#38;cursor=")
        .unwrap_or_else(|| panic!("next link keeps the filter: {}", p.html));
    let href = &p.html[start + 6..];
    let href = href[..href.find('"').unwrap()].replace("&#38;", "&");
    let p2 = get_page(&s, &format!("{href}&limit=2"), &[]).await;
    assert!(p2.html.contains("/n2") && p2.html.contains("/n1") && !p2.html.contains("/n4"));
    assert!(p2.html.contains("« Newest"));
    assert!(
        p2.html.contains("data-live=\"off\""),
        "older pages do not tail"
    );

    let p = get_page(&s, "/events?since=15m&method=post", &[]).await;
    assert_eq!(p.status, 200, "relative times work");
    assert!(p.html.contains("/only") && p.html.contains("/n0"));
    let p = get_page(&s, "/events?since=yesterday-ish", &[]).await;
    assert_eq!(p.status, 400);
    assert!(p.html.contains("since: "), "{}", p.html);
    // A typo in a filter's name lists nothing, and says why.
    let p = get_page(&s, "/events?endpont=a", &[]).await;
    assert_eq!(p.status, 400);
    assert!(
        p.html.contains("unknown parameter &quot;endpont&quot;")
            || p.html.contains("unknown parameter &#34;endpont&#34;"),
        "{}",
        p.html
    );
    assert!(!p.html.contains("/n0"), "no unfiltered list");

    // Replay all matching: a dry-run count first.
    let token = p.csrf();
    let o = origin(&s);
    let p = post_form(
        &s,
        "/events/replay",
        &[("_csrf", &token), ("endpoint", "a"), ("step", "count")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 200);
    assert!(
        p.html.contains("<strong>5</strong> events match"),
        "{}",
        p.html
    );
    assert!(p.html.contains("Start replay job for 5 events"));
    assert!(
        p.html.contains("name=\"rate\"") && p.html.contains("name=\"target\""),
        "the job's options: {}",
        p.html
    );
    // Bins have no target: the job runs and counts each refusal as failed.
    let p = post_form(
        &s,
        "/events/replay",
        &[("_csrf", &token), ("endpoint", "a"), ("step", "run")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    let to = p.header("location").unwrap();
    let job = to
        .strip_prefix("/replay/")
        .expect("the job's page")
        .to_string();
    let done = wait_job(&s, &job, "done").await;
    assert_eq!(
        (done["total"].as_u64(), done["failed"].as_u64()),
        (Some(5), Some(5))
    );
}

/// Polls `GET /api/replay/{job}` until the job has `status`.
async fn wait_job(s: &TestServer, job: &str, status: &str) -> serde_json::Value {
    s.job_until(job, &format!("became {status}"), |j| j["status"] == status)
        .await
}

#[tokio::test]
async fn signature_verdicts_and_checking_a_typed_secret() {
    use hookrelay::signature::{SignatureConfig, sign};
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "gh", "signature": { "scheme": "github", "secret": "right" } }),
    )
    .await;
    let body = br#"{"action":"opened"}"#;
    let signed = sign(&SignatureConfig::new("github", "right"), body, 0, "");
    let mut headers: Vec<(String, String)> = signed
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    headers.push(("x-github-event".into(), "pull_request".into()));
    headers.push(("x-github-delivery".into(), "d-1".into()));
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let id = s.post_in("gh", &h, body.to_vec()).await.event_id();
    let dup = s.post_in("gh", &h, body.to_vec()).await.event_id();

    let p = get_page(&s, &format!("/events/{id}"), &[]).await;
    assert!(
        p.html.contains("badge sig-valid"),
        "the stored verdict shows"
    );
    assert!(p.html.contains("pull_request"), "topic");
    assert!(p.html.contains("d-1"), "provider id");
    let p2 = get_page(&s, &format!("/events/{dup}"), &[]).await;
    assert!(
        p2.html
            .contains(&format!("A repeat of <a href=\"/events/{id}\">")),
        "duplicate link"
    );
    let list = get_page(&s, "/events?duplicate=true", &[]).await;
    assert!(list.html.contains(&format!("ev-{dup}")) && !list.html.contains(&format!("ev-{id}\"")));

    let token = p.csrf();
    let o = origin(&s);
    let check = |secret: &'static str| {
        let (s, token, o, id) = (&s, token.clone(), o.clone(), id.clone());
        async move {
            post_form(
                s,
                &format!("/events/{id}/verify"),
                &[("_csrf", &token), ("scheme", "auto"), ("secret", secret)],
                &[("origin", &o)],
            )
            .await
        }
    };
    let good = check("right").await;
    assert_eq!(good.status, 200);
    assert!(
        good.html
            .contains("Checked against the secret you typed: <span class=\"badge sig-valid\""),
        "{}",
        good.html
    );
    assert!(
        !good.html.contains("value=\"right\""),
        "the secret is not echoed"
    );
    let bad = check("wrong").await;
    assert!(
        bad.html
            .contains("Checked against the secret you typed: <span class=\"badge sig-invalid\"")
    );
    assert!(
        bad.html.contains("expects"),
        "expected against received: {}",
        bad.html
    );
    // An empty field checks with the endpoint's own secret, and says so.
    let stored = check("").await;
    assert!(
        stored
            .html
            .contains("Checked against the endpoint&#39;s stored secret: "),
        "{}",
        stored.html
    );
}

/// The `Set-Cookie` flash of a form's redirect, as a `Cookie` header value.
fn flash_of(p: &Page) -> String {
    p.headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("hookrelay_flash="))
        .unwrap_or_else(|| panic!("no flash cookie: {:?}", p.headers))
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Follows a form's redirect and returns the page with its flash message.
async fn after(s: &TestServer, p: &Page) -> Page {
    assert_eq!(p.status, 303, "{}", p.html);
    let to = p.header("location").expect("redirect");
    get_page(s, &to, &[("cookie", &flash_of(p))]).await
}

#[tokio::test]
async fn test_ping_from_the_endpoints_page() {
    use hookrelay::signature::{SignatureConfig, Verdict, verify};
    let mut up = Receiver::start(vec![Reply::status(200).body("pong"), Reply::status(503)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "fwd",
        "target": up.url("/hooks"),
        "signature": { "scheme": "github", "secret": "s3cret-token" }
    }))
    .await;
    s.create_endpoint(json!({ "slug": "bin" })).await;
    // A target nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/gone", dead.local_addr().unwrap());
    drop(dead);
    s.create_endpoint(json!({ "slug": "dead", "target": dead_url }))
        .await;

    let p = get_page(&s, "/", &[]).await;
    assert_eq!(p.status, 200);
    // Full ingest URLs with copy buttons.
    let ingest = format!("http://{}/in/fwd", s.ingest);
    assert!(
        p.html
            .contains(&format!("id=\"ingest-fwd\">{ingest}</code>")),
        "{}",
        p.html
    );
    assert!(p.html.contains("data-copy=\"ingest-fwd\""));
    // The ping button works for endpoints with a target, not for bins.
    let button = |slug: &str| {
        let form = format!("action=\"/endpoints/{slug}/ping\"");
        let at = p.html.find(&form).unwrap();
        let end = p.html[at..].find("</form>").unwrap() + at;
        p.html[at..end].to_string()
    };
    assert!(!button("fwd").contains("disabled"), "{}", button("fwd"));
    assert!(button("bin").contains("disabled"));

    let token = p.csrf();
    let o = origin(&s);
    let ping = |slug: &'static str| {
        let (s, token, o) = (&s, token.clone(), o.clone());
        async move {
            post_form(
                s,
                &format!("/endpoints/{slug}/ping"),
                &[("_csrf", &token), ("back", "/")],
                &[("origin", &o)],
            )
            .await
        }
    };

    // Success: the receiver gets a signed hookrelay.ping; the flash says
    // what came back and links to the ping's event.
    let p = ping("fwd").await;
    assert_eq!(p.header("location").as_deref(), Some("/"));
    let got = up.next().await;
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri, "/hooks");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["type"], "hookrelay.ping");
    assert_eq!(body["endpoint"], "fwd");
    let check = verify(
        &SignatureConfig::new("github", "s3cret-token"),
        &got.headers,
        &got.body,
        None,
        0,
    );
    assert_eq!(check.verdict, Verdict::Valid, "{}", check.detail);
    let page = after(&s, &p).await;
    let flash = format!(
        "<div class=\"flash flash-ok\" role=\"status\">Test ping to {} succeeded: HTTP 200 in ",
        up.url("/hooks")
    );
    assert!(page.html.contains(&flash), "{}", page.html);
    let at = page
        .html
        .find("Open the event »")
        .expect("a link to the event");
    let href = &page.html[..at];
    let href = &href[href.rfind("href=\"").unwrap() + 6..];
    let href = href[..href.find('"').unwrap()].replace("&#38;", "&");
    assert!(href.starts_with("/events/"), "{href}");
    assert!(href.ends_with("?attempt=1#attempt-1"), "{href}");
    let ev = get_page(&s, &href, &[]).await;
    assert_eq!(ev.status, 200);
    assert!(ev.html.contains("hookrelay.ping"), "topic");
    assert!(ev.html.contains("trig-ping"), "{}", ev.html);
    assert!(ev.html.contains("pong"), "the receiver's answer");
    // Shown once.
    let again = get_page(&s, "/", &[]).await;
    assert!(!again.html.contains("Test ping to"));

    // An error status is a failure, shown as such.
    let p = ping("fwd").await;
    up.next().await;
    let page = after(&s, &p).await;
    assert!(
        page.html.contains("flash-error") && page.html.contains("failed: HTTP 503 in "),
        "{}",
        page.html
    );

    // No answer: the error kind and detail.
    let page = after(&s, &ping("dead").await).await;
    assert!(
        page.html.contains("Test ping to http://")
            && page.html.contains("failed: no answer (connect): "),
        "{}",
        page.html
    );

    // A bin cannot be pinged: the relay's 422 message.
    let page = after(&s, &ping("bin").await).await;
    assert!(
        page.html
            .contains("Test ping for bin refused: endpoint &#34;bin&#34; is a bin"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("Open the event"));
}

#[tokio::test]
async fn replay_re_signed_from_the_event_page() {
    use hookrelay::signature::{SignatureConfig, Verdict, verify};
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "sw",
        "target": up.url("/wh"),
        "signature": { "scheme": "standard", "secret": secret }
    }))
    .await;
    s.create_endpoint(json!({
        "slug": "gh",
        "target": up.url("/gh"),
        "signature": { "scheme": "github", "secret": "s3cret-token" }
    }))
    .await;
    s.create_endpoint(json!({ "slug": "plain", "target": up.url("/plain") }))
        .await;

    // A Standard Webhooks event signed an hour ago: a plain replay would be
    // refused by the receiver's tolerance check.
    let cfg = SignatureConfig::new("standard", secret);
    let body = br#"{"type":"invoice.paid"}"#;
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 3600;
    let signed = crate::support::signed(&cfg, body, old, "msg_1");
    let h = crate::support::pairs(&signed);
    let id = s.post_in("sw", &h, body.to_vec()).await.event_id();
    up.next().await;

    let page = get_page(&s, &format!("/events/{id}"), &[]).await;
    let at = page.html.find("id=\"replay-resigned\"").unwrap();
    let button = &page.html[at..at + page.html[at..].find('>').unwrap()];
    assert!(!button.contains("disabled"), "{button}");
    assert!(
        page.html.contains("fresh <code>standard</code> signature"),
        "the page says what re-signing does"
    );
    let token = page.csrf();
    let o = origin(&s);
    let p = post_form(
        &s,
        &format!("/events/{id}/replay"),
        &[("_csrf", &token), ("resign", "1")],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(
        p.header("location"),
        Some(format!("/events/{id}?attempt=2#attempt-2"))
    );
    let got = up.next().await;
    assert_eq!(&got.body[..], body);
    let ts: i64 = got.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(ts > old + 3000, "a fresh timestamp: {ts} vs {old}");
    let check = verify(&cfg, &got.headers, &got.body, None, ts);
    assert_eq!(check.verdict, Verdict::Valid, "{}", check.detail);
    let page = after(&s, &p).await;
    assert!(
        page.html.contains(&format!(
            "Replay re-signed attempt #2 to {} succeeded: HTTP 200 in ",
            up.url("/wh")
        )),
        "{}",
        page.html
    );
    assert!(
        page.html.contains(&format!(
            "Signature: re-signed (standard) with timestamp {ts}."
        )),
        "{}",
        page.html
    );
    assert!(page.html.contains("attempt success highlight"));

    // Re-signed to another URL, from the "Replay to URL" form.
    let p = post_form(
        &s,
        &format!("/events/{id}/replay"),
        &[
            ("_csrf", &token),
            ("target", &up.url("/elsewhere")),
            ("resign", "1"),
        ],
        &[("origin", &o)],
    )
    .await;
    let got = up.next().await;
    assert_eq!(got.uri, "/elsewhere");
    assert_eq!(
        verify(&cfg, &got.headers, &got.body, None, ts).verdict,
        Verdict::Valid
    );
    assert!(after(&s, &p).await.html.contains("re-signed (standard)"));

    // A body-only scheme: sent unchanged, and the note says why.
    let gh_body = br#"{"action":"opened"}"#;
    let gh_signed = crate::support::signed(
        &SignatureConfig::new("github", "s3cret-token"),
        gh_body,
        0,
        "",
    );
    let gh_h = crate::support::pairs(&gh_signed);
    let gh_id = s.post_in("gh", &gh_h, gh_body.to_vec()).await.event_id();
    up.next().await;
    let p = post_form(
        &s,
        &format!("/events/{gh_id}/replay"),
        &[("_csrf", &token), ("resign", "1")],
        &[("origin", &o)],
    )
    .await;
    let got = up.next().await;
    assert_eq!(
        got.header("x-hub-signature-256").as_deref(),
        Some(gh_signed[0].1.as_str())
    );
    let page = after(&s, &p).await;
    assert!(
        page.html.contains("Replay re-signed attempt #2") && page.html.contains(" Signature: "),
        "{}",
        page.html
    );
    assert!(!page.html.contains("re-signed (github)"), "{}", page.html);

    // No signature config: the button is disabled and a direct POST gets
    // the relay's 422 message.
    let plain = s.post_in("plain", &[], "x").await.event_id();
    up.next().await;
    let page = get_page(&s, &format!("/events/{plain}"), &[]).await;
    let at = page.html.find("id=\"replay-resigned\"").unwrap();
    assert!(page.html[at..at + 200].contains("disabled"));
    let p = post_form(
        &s,
        &format!("/events/{plain}/replay"),
        &[("_csrf", &token), ("resign", "1")],
        &[("origin", &o)],
    )
    .await;
    let page = after(&s, &p).await;
    assert!(
        page.html.contains("Replay re-signed refused: resign: ")
            && page.html.contains("has no signature secret to sign with"),
        "{}",
        page.html
    );
    assert!(up.drain().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn ingest_urls_and_the_curl_default() {
    let up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "fwd", "target": up.url("/t") }))
        .await;
    let id = s
        .post_in("fwd/sub?x=1", &[("content-type", "text/plain")], "hi")
        .await
        .event_id();
    let p = get_page(&s, &format!("/events/{id}"), &[]).await;
    let ingest = format!("http://{}/in/fwd", s.ingest);
    assert!(
        p.html.contains(&format!("<code>{ingest}/sub?x=1</code>")),
        "the full ingest URL: {}",
        p.html
    );
    // Copy as curl goes to the ingest URL by default, with a one-click
    // switch to the target.
    assert!(
        p.html.contains(&esc(&format!("'{ingest}/sub?x=1'"))),
        "{}",
        p.html
    );
    assert!(
        p.html
            .contains("this endpoint&#39;s ingest URL: hookrelay captures it again")
    );
    let target_link = format!(
        "/events/{id}?curl_base={}#copy-as-curl",
        hookrelay::admin::dashboard::encode_component(&up.url("/t"))
    );
    assert!(
        p.html.contains(&format!("href=\"{}\"", esc(&target_link))),
        "{}",
        p.html
    );
    let p = get_page(&s, &target_link.replace("#copy-as-curl", ""), &[]).await;
    assert!(
        p.html
            .contains(&esc(&format!("'{}/sub?x=1'", up.url("/t"))))
    );
    assert!(p.html.contains(">this endpoint&#39;s ingest URL</a>"));
}

/// The fragment of a form page around `name="{field}"`: from the field's
/// `<div class="field…">` to the next one.
fn field_block(html: &str, field: &str) -> String {
    let at = html
        .find(&format!("name=\"{field}\""))
        .unwrap_or_else(|| panic!("no field {field}: {html}"));
    let start = html[..at].rfind("<div class=\"field").unwrap();
    let end = html[at..]
        .find("<div class=\"field")
        .map_or(html.len(), |e| e + at);
    html[start..end].to_string()
}

#[tokio::test]
async fn queue_and_mirror_fields_round_trip_and_validate() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    let new = get_page(&s, "/endpoints/new", &[]).await;
    for field in [
        "mode",
        "ordered",
        "max_in_flight",
        "max_queue_depth",
        "ping_on_activate",
        "mirror",
    ] {
        assert!(
            new.html.contains(&format!("name=\"{field}\"")),
            "the form has {field}"
        );
    }
    assert!(new.html.contains("value=\"4\""), "default in flight");
    assert!(new.html.contains("value=\"100000\""), "default queue depth");
    let token = new.csrf();
    let o = origin(&s);
    let target = up.url("/hooks");
    let post = |path: &'static str, extra: Vec<(&'static str, String)>| {
        let (s, o, token, target) = (&s, o.clone(), token.clone(), target.clone());
        async move {
            let mut fields = vec![
                ("_csrf", token),
                ("slug", "q".to_string()),
                ("name", "Queue".to_string()),
                ("target", target),
                ("mode", "queue".to_string()),
                ("retry", "1s".to_string()),
                ("success_codes", "2xx".to_string()),
            ];
            for (k, v) in extra {
                match fields.iter_mut().find(|(n, _)| *n == k) {
                    Some(f) => f.1 = v,
                    None => fields.push((k, v)),
                }
            }
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(s, path, &f, &[("origin", &o)]).await
        }
    };

    // Each refusal is shown next to its field, with what was typed kept.
    for (field, value, message) in [
        (
            "max_in_flight",
            "0",
            "max_in_flight: must be between 1 and 256".to_string(),
        ),
        (
            "max_in_flight",
            "many",
            esc("max_in_flight: \"many\" is not a whole number"),
        ),
        (
            "max_queue_depth",
            "0",
            "max_queue_depth: must be between 1 and 2000000 (the most hookrelay keeps queued across all endpoints)".to_string(),
        ),
        (
            "max_queue_depth",
            "-3",
            esc("max_queue_depth: \"-3\" is not a whole number"),
        ),
        ("mirror", "ftp://staging", "mirror: ".to_string()),
        (
            "mode",
            "later",
            esc("mode: \"later\" is not forward or queue"),
        ),
    ] {
        let p = post("/endpoints/new", vec![(field, value.to_string())]).await;
        assert_eq!(p.status, 400, "{field}={value}: {}", p.html);
        let block = field_block(&p.html, field);
        assert!(
            block.starts_with("<div class=\"field invalid\"")
                || block.starts_with("<div class=\"field check invalid\""),
            "{field} is marked: {block}"
        );
        assert!(
            block.contains(&format!("class=\"field-error\" role=\"alert\">{message}")),
            "{field}={value}: message next to the field: {block}"
        );
        if field != "mode" {
            assert!(
                block.contains(&format!("value=\"{}\"", esc(value))),
                "kept as typed: {block}"
            );
        }
    }
    assert_eq!(s.api("GET", "/api/endpoints/q", None).await.0, 404);

    // Created with every queue field; ping on activate pings the target.
    let mirror = Receiver::start(vec![Reply::status(200)]).await;
    let p = post(
        "/endpoints/new",
        vec![
            ("ordered", "1".into()),
            ("max_in_flight", "8".into()),
            ("max_queue_depth", "50".into()),
            ("ping_on_activate", "1".into()),
            ("mirror", mirror.url("/shadow")),
        ],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    assert!(
        flash_of(&p).len() > "hookrelay_flash=".len(),
        "a message for the next page"
    );
    let ep = s.get("/api/endpoints/q").await;
    assert_eq!(ep["mode"], "queue");
    assert_eq!(ep["ordered"], true);
    assert_eq!(ep["max_in_flight"], 8);
    assert_eq!(ep["max_queue_depth"], 50);
    assert_eq!(ep["ping_on_activate"], true);
    assert_eq!(ep["mirror"], mirror.url("/shadow"));
    let ping = tokio::time::timeout(std::time::Duration::from_secs(10), up.next())
        .await
        .expect("ping on activate reaches the target");
    assert!(
        String::from_utf8_lossy(&ping.body).contains("hookrelay.ping"),
        "{:?}",
        ping.body
    );

    // The edit page shows them; the card shows mode, mirror and queue.
    let edit = get_page(&s, "/endpoints/q", &[]).await;
    assert_eq!(edit.status, 200);
    assert!(field_block(&edit.html, "ordered").contains(" checked"));
    assert!(field_block(&edit.html, "ping_on_activate").contains(" checked"));
    assert!(field_block(&edit.html, "max_in_flight").contains("value=\"8\""));
    assert!(field_block(&edit.html, "max_queue_depth").contains("value=\"50\""));
    assert!(field_block(&edit.html, "mode").contains("value=\"queue\" selected"));
    assert!(
        edit.html.contains(&format!(
            "<code class=\"url\">{}</code>",
            mirror.url("/shadow")
        )),
        "the card shows the mirror"
    );
    assert!(
        edit.html
            .contains("href=\"/events?endpoint=q&amp;mirror_diff=true\"")
    );
    assert!(
        edit.html.contains("id=\"queue-q\""),
        "queue facts: {}",
        edit.html
    );
    assert!(edit.html.contains("limit 50"));
    assert!(edit.html.contains("ordered"));

    // Edit: unchecked boxes turn off, an empty mirror clears it, bad
    // values are refused next to the field and change nothing.
    let p = post(
        "/endpoints/q",
        vec![
            ("max_in_flight", "300".into()),
            ("max_queue_depth", "50".into()),
            ("ordered", "1".into()),
        ],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(
        field_block(&p.html, "max_in_flight").contains("max_in_flight: must be between 1 and 256"),
        "{}",
        p.html
    );
    assert_eq!(s.get("/api/endpoints/q").await["max_in_flight"], 8);
    let p = post(
        "/endpoints/q",
        vec![
            ("mode", "forward".into()),
            ("max_in_flight", "2".into()),
            ("max_queue_depth", "7".into()),
            ("mirror", String::new()),
        ],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    let ep = s.get("/api/endpoints/q").await;
    assert_eq!(ep["mode"], "forward");
    assert_eq!(ep["ordered"], false);
    assert_eq!(ep["ping_on_activate"], false);
    assert_eq!(ep["max_in_flight"], 2);
    assert_eq!(ep["max_queue_depth"], 7);
    assert_eq!(
        ep["mirror"],
        serde_json::Value::Null,
        "an empty mirror clears it"
    );
    let edit = get_page(&s, "/endpoints/q", &[]).await;
    assert!(!field_block(&edit.html, "ordered").contains(" checked"));
    assert!(
        !edit.html.contains("id=\"queue-q\""),
        "no queue facts in forward mode"
    );
}

#[tokio::test]
async fn queue_depth_and_oldest_pending_on_the_endpoint_card() {
    let s = TestServer::start().await;
    // A target nobody listens on, and a retry far away: events stay queued.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/gone", dead.local_addr().unwrap());
    drop(dead);
    s.create_endpoint(json!({
        "slug": "slow",
        "target": dead_url,
        "mode": "queue",
        "retry": ["1h"],
        "failure_threshold": 1000,
        "max_queue_depth": 4,
    }))
    .await;
    let mut first = None;
    for i in 0..3 {
        let r = s.post_in("slow", &[], format!("e{i}")).await;
        assert_eq!(r.status, 202);
        first.get_or_insert(r.event_id());
    }
    let first = first.unwrap();
    let p = get_page(&s, "/", &[]).await;
    assert_eq!(p.status, 200);
    let at = p.html.find("id=\"queue-slow\"").expect("queue facts");
    let queue = &p.html[at..at + p.html[at..].find("</dd>").unwrap()];
    assert!(
        queue.contains("<strong class=\"queue-depth\">3</strong> pending"),
        "{queue}"
    );
    assert!(queue.contains("limit 4"), "{queue}");
    assert!(
        queue.contains(&format!(
            "oldest pending arrived <a href=\"/events/{first}\""
        )),
        "the oldest is linked: {queue}"
    );
    assert!(queue.contains(" s ago</a>"), "{queue}");
    assert!(
        p.html.contains("class=\"queue bad\" id=\"queue-slow\""),
        "3 of 4 is near the limit"
    );
    assert!(p.html.contains("<dd class=\"mode\">queue"));
    assert!(p.html.contains("up to 4 in flight"));
}

#[tokio::test]
async fn bulk_replay_job_from_the_events_page() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "fwd", "target": up.url("/hooks"), "failure_threshold": 1000 }),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(s.post_in("fwd", &[], format!("b{i}")).await.event_id());
        up.next().await;
    }
    up.set_script(vec![Reply::status(200)]);
    let o = origin(&s);
    let list = get_page(&s, "/events?endpoint=fwd&state=failed", &[]).await;
    assert!(list.html.contains("action=\"/events/replay\""));
    let token = list.csrf();
    let form = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![
            ("_csrf", token.as_str()),
            ("endpoint", "fwd"),
            ("state", "failed"),
        ];
        f.extend_from_slice(extra);
        f
    };

    // The dry run: count and the oldest ids, nothing sent.
    let p = post_form(
        &s,
        "/events/replay",
        &form(&[("step", "count")]),
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.html);
    assert!(
        p.html.contains("<strong>4</strong> events match"),
        "{}",
        p.html
    );
    assert!(p.html.contains(&format!("href=\"/events/{}\"", ids[0])));
    assert!(up.drain().is_empty(), "a dry run sends nothing");

    // Bad options are refused next to their field.
    let p = post_form(
        &s,
        "/events/replay",
        &form(&[("step", "run"), ("rate", "fast")]),
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(
        field_block(&p.html, "rate")
            .contains(&esc("rate: \"fast\" is not a number of events per second")),
        "{}",
        p.html
    );
    assert!(p.html.contains("value=\"fast\""), "kept as typed");
    let p = post_form(
        &s,
        "/events/replay",
        &form(&[("step", "run"), ("rate", "0")]),
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(field_block(&p.html, "rate").contains("rate: must be between"));
    let p = post_form(
        &s,
        "/events/replay",
        &form(&[("step", "run"), ("target", "ftp://nope")]),
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 400);
    assert!(
        field_block(&p.html, "target").contains("field-error\" role=\"alert\">target: "),
        "{}",
        p.html
    );
    assert!(up.drain().is_empty());

    // A slow job (one every 4 s), cancelled from its page.
    let p = post_form(
        &s,
        "/events/replay",
        &form(&[("step", "run"), ("rate", "0.25")]),
        &[("origin", &o)],
    )
    .await;
    let page = after(&s, &p).await;
    let job = p
        .header("location")
        .unwrap()
        .strip_prefix("/replay/")
        .unwrap()
        .to_string();
    assert_eq!(page.status, 200);
    assert!(
        page.html
            .contains(&format!("Started replay job {job}: 4 events"))
    );
    page.assert_no_injected_markup();
    assert!(page.html.contains(&format!("data-job=\"{job}\"")));
    assert!(
        page.html.contains("id=\"job-total\">4</dd>"),
        "{}",
        page.html
    );
    assert!(page.html.contains("id=\"job-sent\">"));
    assert!(page.html.contains("id=\"job-succeeded\""));
    assert!(page.html.contains("id=\"job-failed\""));
    assert!(page.html.contains("0.25 per second"));
    assert!(
        page.html
            .contains(&format!("href=\"/replay/{job}\" id=\"job-refresh\""))
    );
    assert!(
        page.html
            .contains(&format!("action=\"/replay/{job}/cancel\""))
    );
    assert!(
        page.html.contains("badge job-running") || page.html.contains("badge job-queued"),
        "{}",
        page.html
    );
    // Progress shows on the page as it happens.
    let first = up.next().await;
    assert_eq!(&first.body[..], b"b0", "oldest first");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let p = get_page(&s, &format!("/replay/{job}"), &[]).await;
        if p.html.contains("id=\"job-sent\">1</dd>") {
            assert!(p.html.contains("id=\"job-succeeded\" class=\"ok\">1</dd>"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", p.html);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Cancel needs the token.
    let p = post_form(&s, &format!("/replay/{job}/cancel"), &[], &[("origin", &o)]).await;
    assert_eq!(p.status, 403);
    let p = post_form(
        &s,
        &format!("/replay/{job}/cancel"),
        &[("_csrf", &token)],
        &[("origin", &o)],
    )
    .await;
    let page = after(&s, &p).await;
    assert!(
        page.html
            .contains(&format!("Cancelled replay job {job} after 1 of 4 events")),
        "{}",
        page.html
    );
    assert!(page.html.contains("badge job-cancelled"));
    assert!(
        page.html.contains("<span id=\"job-skipped\">3</span>"),
        "the events a cancel left unsent: {}",
        page.html
    );
    assert!(
        !page
            .html
            .contains(&format!("action=\"/replay/{job}/cancel\"")),
        "no Cancel once it ended"
    );
    let j = s.get(&format!("/api/replay/{job}")).await;
    assert_eq!(j["status"], "cancelled");
    // Nothing signals that a job sends no more: the receiver is watched
    // until a second past the moment the next event was due (4 s after the
    // first, at 0.25/s), when a job still running would have sent it.
    let due = first.at + std::time::Duration::from_secs(5);
    let late = tokio::time::timeout_at(due.into(), up.rx.recv()).await;
    assert!(late.is_err(), "sent after the cancel: {late:?}");
    // Cancelling again says it had ended.
    let p = post_form(
        &s,
        &format!("/replay/{job}/cancel"),
        &[("_csrf", &token)],
        &[("origin", &o)],
    )
    .await;
    assert!(
        after(&s, &p)
            .await
            .html
            .contains("had already ended (cancelled)")
    );

    // A job to another URL runs to the end; the page and the lists show it.
    let mut other = Receiver::start(vec![Reply::status(200)]).await;
    let to = other.url("/dev");
    let p = post_form(
        &s,
        "/events/replay",
        &[
            ("_csrf", token.as_str()),
            ("endpoint", "fwd"),
            ("step", "run"),
            ("target", to.as_str()),
        ],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    let job2 = p
        .header("location")
        .unwrap()
        .strip_prefix("/replay/")
        .unwrap()
        .to_string();
    let done = wait_job(&s, &job2, "done").await;
    assert_eq!(done["succeeded"], 4);
    let bodies: Vec<String> = (0..4)
        .map(|_| String::from_utf8_lossy(&other.rx.try_recv().unwrap().body).into_owned())
        .collect();
    assert_eq!(bodies, ["b0", "b1", "b2", "b3"], "oldest first");
    let page = get_page(&s, &format!("/replay/{job2}"), &[]).await;
    assert!(page.html.contains("badge job-done"));
    assert!(page.html.contains("id=\"job-sent\">4</dd>"));
    assert!(
        page.html
            .contains("id=\"job-succeeded\" class=\"ok\">4</dd>")
    );
    assert!(
        page.html
            .contains(&format!("<code class=\"url\">{to}</code>"))
    );
    assert!(!page.html.contains("/cancel\""), "finished: no Cancel");
    assert!(
        page.html.contains(&format!("id=\"job-row-{job}\"")),
        "other recent jobs are listed"
    );
    assert!(
        page.html.contains("href=\"/events?endpoint=fwd\""),
        "the job's filter"
    );
    let all = get_page(&s, "/replay", &[]).await;
    assert!(all.html.contains(&format!("id=\"job-row-{job}\"")));
    assert!(all.html.contains(&format!("id=\"job-row-{job2}\"")));
    let events = get_page(&s, "/events", &[]).await;
    assert!(events.html.contains(&format!("href=\"/replay/{job2}\"")));
    assert_eq!(get_page(&s, "/replay/nope", &[]).await.status, 404);
    // A job's filter is typed text: escaped on its page and in the lists.
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "q": XSS, "topic": "\"><img src=x onerror=alert(1)>" })),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let hostile = v["id"].as_str().unwrap().to_string();
    for path in [
        format!("/replay/{hostile}"),
        "/replay".to_string(),
        format!("/replay/{job}"),
    ] {
        let p = get_page(&s, &path, &[]).await;
        assert_eq!(p.status, 200);
        p.assert_no_injected_markup();
        assert!(
            p.html.contains(&esc(&format!("q={XSS}"))),
            "{path}: {}",
            p.html
        );
    }
    // The script the page relies on polls the job API (no inline script).
    let js = get_page(&s, "/static/app.js", &[]).await;
    assert!(js.html.contains("'/api/replay/' + encodeURIComponent(id)"));
}

#[tokio::test]
async fn mirror_status_beside_the_target_and_the_mirror_diff_filter() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let mut shadow = Receiver::start(vec![Reply::status(500).body("staging broke")]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "m",
        "target": up.url("/live"),
        "mirror": shadow.url("/staging"),
    }))
    .await;
    s.create_endpoint(json!({ "slug": "plain", "target": up.url("/other") }))
        .await;
    let id = s.post_in("m", &[], "copy me").await.event_id();
    let plain = s.post_in("plain", &[], "just me").await.event_id();
    up.next().await;
    up.next().await;
    shadow.next().await;
    // The mirror's answer is recorded in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.get(&format!("/api/events/{id}")).await["mirror_status"].is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "mirror attempt recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let p = get_page(&s, &format!("/events/{id}"), &[]).await;
    assert_eq!(p.status, 200);
    let at = p.html.find("id=\"answers\"").expect("answers");
    let answers = &p.html[at..at + p.html[at..].find("</dd>").unwrap()];
    assert!(
        answers.contains("target <span class=\"code\">200</span>"),
        "{answers}"
    );
    assert!(
        answers.contains("mirror <span class=\"code bad\" id=\"mirror-status\">500</span>"),
        "{answers}"
    );
    assert!(answers.contains("differs"));
    assert!(answers.contains("href=\"/events?endpoint=m&amp;mirror_diff=true\""));
    assert!(
        p.html.contains("trig-mirror"),
        "the mirror attempt in the timeline"
    );
    assert!(p.html.contains("staging broke"));
    let p2 = get_page(&s, &format!("/events/{plain}"), &[]).await;
    assert!(
        !p2.html.contains("id=\"mirror-status\""),
        "no mirror, no mirror status"
    );

    let list = get_page(&s, "/events", &[]).await;
    assert!(list.html.contains("name=\"mirror_diff\""), "the filter");
    assert!(
        list.html
            .contains("<span class=\"mirror-status differs\" title=\"mirror answered 500\">"),
        "{}",
        list.html
    );
    let diff = get_page(&s, "/events?mirror_diff=true", &[]).await;
    assert_eq!(diff.status, 200);
    assert!(diff.html.contains(&format!("id=\"ev-{id}\"")));
    assert!(!diff.html.contains(&format!("id=\"ev-{plain}\"")));
    assert!(
        diff.html.contains("data-f-mirror_diff=\"true\""),
        "the live tail knows it"
    );
    assert!(diff.html.contains("value=\"true\" selected"));
    let same = get_page(&s, "/events?mirror_diff=false", &[]).await;
    assert!(!same.html.contains(&format!("id=\"ev-{id}\"")));
    assert!(same.html.contains(&format!("id=\"ev-{plain}\"")));
    // Replay all matching keeps the filter.
    assert!(
        diff.html
            .contains("<input type=\"hidden\" name=\"mirror_diff\" value=\"true\">")
    );
}

#[tokio::test]
async fn the_chart_counts_events_and_failed_attempts_per_minute() {
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "counted" })).await;
    s.create_endpoint(json!({ "slug": "failing", "target": format!("http://127.0.0.1:{port}/") }))
        .await;
    for _ in 0..3 {
        s.post_in("counted", &[], "x").await;
    }
    s.post_in("failing", &[], "x").await;
    let (status, _, body) = send("GET", &s.admin_url("/"), &[], Bytes::new()).await;
    assert_eq!(status, 200);
    let html = String::from_utf8_lossy(&body);
    assert!(
        html.contains("over the last hour: 3 events, 0 failed attempts"),
        "{html}"
    );
    assert!(
        html.contains("over the last hour: 1 event, 1 failed attempt"),
        "{html}"
    );
}

/// The HTML parser drops one newline right after `<textarea>`: the edit
/// form puts one there, so a response body that starts with a newline
/// survives an unchanged save.
#[tokio::test]
async fn the_edit_form_keeps_a_leading_newline_in_the_response_body() {
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "nl", "response": { "status": 200, "body": "\n  indented\n" } }),
    )
    .await;
    let (st, _, page) = send("GET", &s.admin_url("/endpoints/nl"), &[], Bytes::new()).await;
    assert_eq!(st, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("rows=\"4\">\n\n  indented\n</textarea>"),
        "{}",
        &page[page.find("resp_body").unwrap_or(0)..][..200]
    );
}

/// A typed secret checks what the endpoint checks: the endpoint's
/// hmac-sha256 header fills in what the form does not carry (it used to be
/// "invalid — not checked: signature.header: required"; without one the
/// default header is checked), and a check that cannot run is
/// "unchecked", not a verdict of "invalid".
#[tokio::test]
async fn a_typed_secret_uses_the_endpoints_signature_settings() {
    use hookrelay::signature::SignatureConfig;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "hm",
        "signature": { "scheme": "hmac-sha256", "secret": "a", "header": "X-Sig" },
    }))
    .await;
    let mut cfg = SignatureConfig::new("hmac-sha256", "a");
    cfg.header = Some("X-Sig".into());
    let body = b"{\"n\":1}";
    let headers = crate::support::signed(&cfg, body, 0, "");
    let h = crate::support::pairs(&headers);
    let id = s.post_in("hm", &h, &body[..]).await.event_id();

    let (st, v) = s
        .api(
            "POST",
            &format!("/api/events/{id}/verify"),
            Some(json!({ "secret": "a" })),
        )
        .await;
    assert_eq!((st, &v["verdict"]), (200, &json!("valid")), "{v}");

    let p = get_page(&s, &format!("/events/{id}"), &[]).await;
    // The endpoint's own scheme is the one preselected: with `auto` first,
    // the right secret read "missing" (auto cannot detect a generic HMAC).
    assert!(
        p.html.contains("<option value=\"hmac-sha256\" selected>"),
        "{}",
        p.html
    );
    assert!(!p.html.contains("<option value=\"auto\" selected>"));
    let (token, o) = (p.csrf(), origin(&s));
    for (scheme, secret, want) in [
        ("hmac-sha256", "a", "sig-valid"),
        ("", "a", "sig-valid"),
        ("hmac-sha256", "b", "sig-invalid"),
        // Slack's headers are absent: a verdict on the event.
        ("slack", "a", "sig-missing"),
        // No such scheme: nothing was checked.
        ("no-such-scheme", "a", "sig-unchecked"),
    ] {
        let page = post_form(
            &s,
            &format!("/events/{id}/verify"),
            &[("_csrf", &token), ("scheme", scheme), ("secret", secret)],
            &[("origin", &o)],
        )
        .await;
        assert_eq!(page.status, 200);
        assert!(
            page.html.contains(&format!(
                "Checked against the secret you typed: <span class=\"badge {want}\""
            )),
            "{scheme}/{secret}: {}",
            page.html
        );
    }

    // An endpoint that checks nothing: the form carries hmac-sha256's own
    // settings (header, encoding, prefix), kept filled in after the check.
    s.create_endpoint(json!({ "slug": "plain" })).await;
    let mut cfg = SignatureConfig::new("hmac-sha256", "p-secret");
    cfg.header = Some("X-Other-Sig".into());
    cfg.encoding = Some("base64".into());
    cfg.prefix = Some("sha256=".into());
    let headers = crate::support::signed(&cfg, body, 0, "");
    let h = crate::support::pairs(&headers);
    let id = s.post_in("plain", &h, &body[..]).await.event_id();
    let page = |fields: &'static [(&'static str, &'static str)]| {
        let (s, token, o, id) = (&s, token.clone(), o.clone(), id.clone());
        async move {
            let mut form = vec![
                ("_csrf", token.as_str()),
                ("scheme", "hmac-sha256"),
                ("secret", "p-secret"),
            ];
            form.extend_from_slice(fields);
            post_form(s, &format!("/events/{id}/verify"), &form, &[("origin", &o)]).await
        }
    };
    let typed = page(&[
        ("header", "X-Other-Sig"),
        ("encoding", "base64"),
        ("prefix", "sha256="),
    ])
    .await;
    assert!(
        typed
            .html
            .contains("Checked against the secret you typed: <span class=\"badge sig-valid\""),
        "{}",
        typed.html
    );
    assert!(
        typed.html.contains("value=\"X-Other-Sig\""),
        "kept filled in"
    );
    // Without them (and none on the endpoint) the defaults are checked:
    // hex in `X-Signature`, which this sender did not send (hunt #21: the
    // header had no default, though the docs gave it one).
    let defaults = page(&[]).await;
    assert!(
        defaults
            .html
            .contains("Checked against the secret you typed: <span class=\"badge sig-missing\"")
            && defaults.html.contains("X-Signature"),
        "{}",
        defaults.html
    );
}

/// A page size in the URL is kept by "Older" (it fell back to 50).
#[tokio::test]
async fn older_keeps_the_page_size() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "pg" })).await;
    for i in 0..5 {
        s.post_in("pg", &[], format!("{i}")).await;
    }
    let p = get_page(&s, "/events?endpoint=pg&limit=2", &[]).await;
    assert_eq!(p.status, 200);
    let older = p
        .html
        .split("href=\"")
        .map(|h| {
            h.split('"')
                .next()
                .unwrap()
                .replace("&#38;", "&")
                .replace("&amp;", "&")
        })
        .find(|h| h.contains("cursor="))
        .expect("an Older link");
    assert!(older.contains("limit=2"), "{older}");
    // The filter form keeps it too (a new filter went back to 50).
    assert!(
        p.html
            .contains("<input type=\"hidden\" name=\"limit\" value=\"2\">"),
        "{}",
        p.html
    );
    let next = get_page(&s, &older, &[]).await;
    assert_eq!(next.html.matches("<tr id=\"ev-").count(), 2, "{older}");
}

/// Saving the edit form changes the status only when the user changed it
/// on the page: a rename must not undo a pause (or a disable by the
/// policy) that happened while the page was open.
#[tokio::test]
async fn saving_the_edit_form_keeps_a_status_changed_meanwhile() {
    let up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "ef", "target": up.url("/") }))
        .await;
    let page = get_page(&s, "/endpoints/ef", &[]).await;
    assert!(
        page.html.contains("name=\"status_was\" value=\"active\""),
        "{}",
        page.html
    );
    let (token, o) = (page.csrf(), origin(&s));
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/ef",
            Some(json!({ "status": "paused" })),
        )
        .await;
    assert_eq!(st, 200);
    let target = up.url("/");
    let save = |name: &'static str, status: &'static str, was: &'static str| {
        let (s, o, token, target) = (&s, o.clone(), token.clone(), target.clone());
        async move {
            let fields = [
                ("_csrf", token.as_str()),
                ("name", name),
                ("status", status),
                ("status_was", was),
                ("target", target.as_str()),
                ("success_codes", "2xx, 301, 302"),
                ("retry", "5s"),
            ];
            post_form(s, "/endpoints/ef", &fields, &[("origin", &o)]).await
        }
    };
    let p = save("Renamed", "active", "active").await;
    assert_eq!(p.status, 303, "{}", p.html);
    let ep = s.get("/api/endpoints/ef").await;
    assert_eq!(ep["name"], "Renamed");
    assert_eq!(ep["status"], "paused", "the rename resumed it: {ep}");
    // A change made on the page is applied.
    let p = save("Renamed", "active", "paused").await;
    assert_eq!(p.status, 303, "{}", p.html);
    assert_eq!(s.get("/api/endpoints/ef").await["status"], "active");
}

/// "Replay all matching" replays what its count found: events arriving
/// between the count and "Start" are not added to the job.
#[tokio::test]
async fn a_bulk_replay_from_the_page_replays_what_was_counted() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "bp" })).await;
    for i in 0..2 {
        assert_eq!(s.post_in("bp", &[], format!("{i}")).await.status, 200);
    }
    let list = get_page(&s, "/events?endpoint=bp&since=1h", &[]).await;
    let (token, o) = (list.csrf(), origin(&s));
    let count = post_form(
        &s,
        "/events/replay",
        &[
            ("_csrf", token.as_str()),
            ("endpoint", "bp"),
            ("since", "1h"),
            ("step", "count"),
        ],
        &[("origin", &o)],
    )
    .await;
    assert!(
        count.html.contains("<strong>2</strong> events match"),
        "{}",
        count.html
    );
    let hidden = |name: &str| {
        let marker = format!("<input type=\"hidden\" name=\"{name}\" value=\"");
        let at = count
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name}: {}", count.html));
        let rest = &count.html[at + marker.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let (since, upto) = (hidden("since"), hidden("upto"));
    assert_ne!(since, "1h", "a relative bound is pinned at the count");
    for i in 2..5 {
        assert_eq!(s.post_in("bp", &[], format!("{i}")).await.status, 200);
    }
    let run = post_form(
        &s,
        "/events/replay",
        &[
            ("_csrf", token.as_str()),
            ("endpoint", "bp"),
            ("since", since.as_str()),
            ("upto", upto.as_str()),
            ("step", "run"),
            ("target", "http://127.0.0.1:9/"),
        ],
        &[("origin", &o)],
    )
    .await;
    assert_eq!(run.status, 303, "{}", run.html);
    let job = run.header("location").unwrap();
    let job = job.strip_prefix("/replay/").unwrap();
    assert_eq!(s.get(&format!("/api/replay/{job}")).await["total"], 2);
}

/// Bidirectional controls from a payload are shown, not obeyed: a
/// right-to-left override displayed "invoice\u{202e}fdp.exe" as "invoice"
/// then "exe.pdf", and reordered the JSON after it.
#[tokio::test]
async fn bidi_controls_in_a_payload_are_shown_not_obeyed() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "bd" })).await;
    let json_id = s
        .post_in(
            "bd",
            &[("content-type", "application/json")],
            "{\"file\":\"invoice\u{202e}fdp.exe\"}",
        )
        .await
        .event_id();
    let text_id = s
        .post_in("bd", &[], "report \u{2067}gnp.exe")
        .await
        .event_id();
    // Raw bytes: the query and a topic header carry one too.
    let req = "POST /in/bd/p?q=\u{202e}v HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\u{202e}evil\r\nX-GitHub-Delivery: d\u{202e}1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx";
    let out =
        crate::support::raw(s.ingest, req.as_bytes(), std::time::Duration::from_secs(5)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let raw_id = event_id_of(&out);
    let list = get_page(&s, "/events?endpoint=bd", &[]).await;
    assert!(list.html.contains("push⟨U+202E⟩evil"), "{}", list.html);
    assert!(list.html.contains("/p?q=⟨U+202E⟩v"), "{}", list.html);
    assert!(!list.html.contains('\u{202e}'), "a raw control in the list");
    let page = get_page(&s, &format!("/events/{raw_id}"), &[]).await;
    assert!(page.html.contains(">push⟨U+202E⟩evil</a>"), "{}", page.html);
    assert!(page.html.contains("d⟨U+202E⟩1"), "the provider id");
    assert!(!page.html.contains('\u{202e}'), "a raw control on the page");
    for (id, shown) in [
        (json_id, "invoice⟨U+202E⟩fdp.exe"),
        (text_id, "report ⟨U+2067⟩gnp.exe"),
    ] {
        let p = get_page(&s, &format!("/events/{id}"), &[]).await;
        assert_eq!(p.status, 200);
        assert!(p.html.contains(shown), "{shown}: {}", p.html);
        assert!(
            !p.html.contains(['\u{202e}', '\u{2067}']),
            "a raw control on the page"
        );
        let raw = crate::support::send(
            "GET",
            &s.admin_url(&format!("/api/events/{id}/body")),
            &[],
            Bytes::new(),
        )
        .await
        .2;
        assert!(
            String::from_utf8_lossy(&raw).contains(['\u{202e}', '\u{2067}']),
            "the stored bytes are unchanged"
        );
    }
    // What an admin types: a name is shown the same way on every page; a
    // URL must be printable ASCII.
    s.create_endpoint(json!({ "slug": "bn", "name": "Shop \u{202e}kcab" }))
        .await;
    for path in ["/", "/endpoints/bn", "/endpoints/bn/delete"] {
        let p = get_page(&s, path, &[]).await;
        assert_eq!(p.status, 200, "{path}");
        assert!(p.html.contains("Shop ⟨U+202E⟩kcab"), "{path}: {}", p.html);
        assert!(
            !p.html.contains("<h1>Shop \u{202e}") && !p.html.contains("<h2>Shop \u{202e}"),
            "{path}: a raw control in a heading"
        );
    }
    let (st, v) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "bu", "target": "http://h/\u{202e}exe.txt" })),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("printable ASCII"),
        "{v}"
    );
}

/// Addresses a user may type or reload: a page that is not there gets an
/// error page (the API keeps JSON), and a form's address opened with GET
/// leads to the page the form is on.
#[tokio::test]
async fn wrong_page_addresses_get_pages() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "wp" })).await;
    let id = s.post_in("wp", &[], "x").await.event_id();
    let p = get_page(&s, "/endpoints", &[]).await;
    assert_eq!(p.status, 404);
    assert!(p.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        p.html.contains("There is no page at /endpoints."),
        "{}",
        p.html
    );
    let (st, v) = s.api("GET", "/api/nope", None).await;
    assert_eq!((st, v["error"].as_str()), (404, Some("no such route")));
    let p = get_page(&s, &format!("/events/{id}/verify"), &[]).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.header("location"), Some(format!("/events/{id}")));
    let p = get_page(&s, "/events/%FF", &[]).await;
    assert_eq!(p.status, 400);
    assert!(p.header("content-type").unwrap().starts_with("text/html"));
}

/// An event whose delivery got no answer says so, not "none yet".
#[tokio::test]
async fn an_unanswered_delivery_reads_no_answer() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "na", "target": format!("http://{closed}/") }))
        .await;
    let id = s.post_in("na", &[], "x").await.event_id();
    let p = get_page(&s, &format!("/events/{id}"), &[]).await;
    assert!(p.html.contains("target: no answer"), "{}", p.html);
    assert!(!p.html.contains("target: none yet"));
}

/// `/` shows 50 endpoint cards a page, searchable and filtered by status,
/// and each card's actions come back to the page they were on.
#[tokio::test]
async fn the_endpoints_page_pages_searches_and_filters() {
    let s = TestServer::start().await;
    for i in 0..60 {
        let name = if i % 10 == 0 { "Orders shop" } else { "Other" };
        s.create_endpoint(json!({ "slug": format!("ep-{i:02}"), "name": name }))
            .await;
    }
    s.api(
        "PATCH",
        "/api/endpoints/ep-07",
        Some(json!({ "status": "paused" })),
    )
    .await;
    let cards = |p: &Page| p.html.matches("<article class=\"card endpoint\"").count();

    let first = get_page(&s, "/", &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(cards(&first), 50);
    assert!(first.html.contains("id=\"endpoint-ep-49\""));
    assert!(!first.html.contains("id=\"endpoint-ep-50\""));
    assert!(
        first.html.contains("Endpoints 1–50 of 60."),
        "{}",
        first.html
    );
    assert!(first.html.contains("href=\"/?page=2\" rel=\"next\""));
    assert!(first.html.contains(">paused (1)</option>"));

    let second = get_page(&s, "/?page=2", &[]).await;
    assert_eq!(cards(&second), 10);
    assert!(second.html.contains("id=\"endpoint-ep-59\""));
    assert!(second.html.contains("Endpoints 51–60 of 60."));
    assert!(second.html.contains("href=\"/\" rel=\"prev\""));
    assert!(!second.html.contains("rel=\"next\""));
    assert!(
        second.html.contains("name=\"back\" value=\"/?page=2\""),
        "an action on page 2 comes back to page 2"
    );
    let beyond = get_page(&s, "/?page=99", &[]).await;
    assert_eq!(cards(&beyond), 10, "a page past the end shows the last");

    let search = get_page(&s, "/?q=ORDERS", &[]).await;
    assert_eq!(cards(&search), 6, "names match without case");
    assert!(
        search
            .html
            .contains("Endpoints 1–6 of 6 matching (60 in all).")
    );
    let by_slug = get_page(&s, "/?q=ep-3", &[]).await;
    assert_eq!(cards(&by_slug), 10);
    let paused = get_page(&s, "/?status=paused", &[]).await;
    assert_eq!(cards(&paused), 1);
    assert!(paused.html.contains("id=\"endpoint-ep-07\""));
    let none = get_page(&s, "/?q=%3Cscript%3E", &[]).await;
    assert_eq!(cards(&none), 0);
    assert!(none.html.contains("No endpoint matches."));
    assert!(
        none.html.contains("value=\"&#60;script&#62;\"")
            || none.html.contains("value=\"&lt;script&gt;\""),
        "the search is shown escaped"
    );
}
