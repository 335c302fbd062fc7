//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (fantoccini). It loads the pages, applies a filter, watches
//! a live-tail row arrive after a POST to the ingest port, pauses the tail,
//! opens an event and replays it, and checks that ~50 hostile payloads — in
//! bodies, JSON keys, header values, topics, paths, queries and upstream
//! responses — execute nothing and inject no markup. Screenshots of the main
//! pages are saved to a directory the test prints.
//!
//! Chromium and chromedriver are required: the test fails when they are
//! missing (`apt-get install chromium chromium-driver`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};

use crate::support::{Receiver, Reply, TestServer, send};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Every wait in this test is bounded by this.
const WAIT: Duration = Duration::from_secs(15);

/// Each payload tries to set `window.__pwned` or the document title.
fn payloads() -> Vec<String> {
    let js = "window.__pwned=1;document.title='pwned'";
    let p = [
        format!("<script>{js}</script>"),
        format!("<SCRIPT SRC=data:text/javascript,{js}></SCRIPT>"),
        format!("<img src=x onerror=\"{js}\">"),
        format!("<img src=x onerror={js}>"),
        format!("\"><img src=x onerror={js}>"),
        format!("'><img src=x onerror={js}>"),
        format!("\"><svg onload={js}>"),
        format!("<svg/onload={js}>"),
        format!("<svg><script>{js}</script></svg>"),
        format!("javascript:{js}"),
        format!("JaVaScRiPt:{js}"),
        format!("<a href=\"javascript:{js}\">click</a>"),
        format!("<iframe src=\"javascript:{js}\"></iframe>"),
        format!("<iframe srcdoc=\"<script>parent.{js}</script>\"></iframe>"),
        format!("<body onload={js}>"),
        format!("<details open ontoggle={js}>"),
        format!("<input autofocus onfocus={js}>"),
        format!("<select autofocus onfocus={js}>"),
        format!("<textarea autofocus onfocus={js}>"),
        format!("<video><source onerror={js}></video>"),
        format!("<audio src=x onerror={js}>"),
        format!("<object data=\"javascript:{js}\"></object>"),
        format!("<embed src=\"javascript:{js}\">"),
        format!("<marquee onstart={js}>"),
        format!("<math><mtext><table><mglyph><style><img src=x onerror={js}>"),
        format!("</textarea><script>{js}</script>"),
        format!("</pre><script>{js}</script>"),
        format!("</title><script>{js}</script>"),
        format!("</td></tr></table><script>{js}</script>"),
        format!("--><script>{js}</script><!--"),
        format!("<![CDATA[<script>{js}</script>]]>"),
        format!("<base href=\"javascript:/a/-{js}///\">"),
        format!("<meta http-equiv=\"refresh\" content=\"0;url=javascript:{js}\">"),
        format!("<link rel=import href=\"data:text/html,<script>{js}</script>\">"),
        format!("<form action=\"javascript:{js}\"><button>x</button></form>"),
        format!("<div style=\"background:url(javascript:{js})\">"),
        format!("<style>@import 'javascript:{js}';</style>"),
        format!("\" onmouseover=\"{js}\" x=\""),
        format!("' onmouseover='{js}' x='"),
        format!("\" autofocus onfocus=\"{js}\" x=\""),
        format!("</script><script>{js}</script>"),
        format!("${{{js}}}"),
        format!("{{{{constructor.constructor('{js}')()}}}}"),
        format!("\u{2028}\u{2029}<script>{js}</script>"),
        format!("%3Cscript%3E{js}%3C/script%3E"),
        format!("&lt;script&gt;{js}&lt;/script&gt;"),
        format!("<scr<script>ipt>{js}</scr</script>ipt>"),
        format!("<isindex type=image src=1 onerror={js}>"),
        format!("<xss id=x tabindex=1 onfocusin={js}></xss>"),
        format!(
            "<img src=\"x\" onerror=\"eval(atob('{}'))\">",
            "d2luZG93Ll9fcHduZWQ9MQ=="
        ),
    ];
    p.to_vec()
}

/// Header values cannot carry CR/LF or non-visible bytes; everything else
/// goes through as is.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Path and query characters a request target may carry (`<>"` are refused
/// by hyper; `'`, `(`, `:`, `=`, `;`, `&` and `$` are not).
fn target_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "'()*:=;$!,.-_~@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

struct Driver {
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
    client: Client,
}

impl Driver {
    async fn start() -> Driver {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: apt-get install chromium"
        );
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: apt-get install chromium-driver"
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&url),
        )
        .await
        .expect("a browser session within 60 s")
        .expect("chromedriver starts chromium");
        Driver {
            child,
            _profile: profile,
            client,
        }
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.child.kill().await;
    }
}

/// `target/screenshots` in the checkout, whatever `CARGO_TARGET_DIR` is
/// (the build cache lives outside the clone), so CI keeps them as artifacts.
fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

/// Nothing ran and nothing was injected: no `__pwned`, the title is ours,
/// no element carries an event-handler attribute, no `javascript:` link,
/// no image or frame exists.
async fn assert_clean(c: &Client, what: &str) {
    let v = c
        .execute(
            r#"
            const all = Array.from(document.querySelectorAll('*'));
            return {
              pwned: typeof window.__pwned !== 'undefined',
              title: document.title,
              handlers: all.filter(e => Array.from(e.attributes).some(a => a.name.toLowerCase().startsWith('on'))).map(e => e.outerHTML.slice(0, 120)),
              js_links: all.filter(e => ['href', 'src', 'action', 'data', 'formaction'].some(n => (e.getAttribute(n) || '').trim().toLowerCase().startsWith('javascript:'))).length,
              foreign: document.querySelectorAll('img, iframe, object, embed, video, audio, base, meta[http-equiv], style, link[rel=import], xss, isindex, marquee, math').length,
              scripts: Array.from(document.scripts).map(s => s.getAttribute('src')),
            };
            "#,
            vec![],
        )
        .await
        .expect("script runs");
    assert_eq!(v["pwned"], false, "{what}: a payload ran");
    assert_ne!(v["title"], "pwned", "{what}: a payload set the title");
    assert_eq!(
        v["handlers"],
        json!([]),
        "{what}: event-handler attributes in the DOM"
    );
    assert_eq!(v["js_links"], 0, "{what}: javascript: URL in an attribute");
    assert_eq!(v["foreign"], 0, "{what}: injected elements");
    assert_eq!(
        v["scripts"],
        json!(["/static/app.js"]),
        "{what}: only our script"
    );
}

/// Waits (bounded) for an element. A lookup that lands while the page
/// navigates (a form was just submitted) fails with "aborted by
/// navigation": that is "not there yet", not an error.
async fn wait_css(c: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match c.find(Locator::Css(css)).await {
            Ok(e) => return e,
            Err(e) if std::time::Instant::now() >= deadline => {
                panic!("waiting for {css}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until the paused live tail counts one new event waiting: the
/// stream brought it, whether it matches the view or not.
async fn wait_one_waiting(c: &Client) {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//span[@id='live-state' and contains(., '1 new')]",
        ))
        .await
        .expect("the paused tail counts the event the stream brought");
}

/// Pauses or resumes the events page's live tail.
async fn toggle_live(c: &Client) {
    c.find(Locator::Css("#live-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Opens the events list at `url` and asks "Replay all matching" to count.
async fn count_matching(c: &Client, url: &str) {
    c.goto(url).await.unwrap();
    wait_css(c, "details.bulk summary")
        .await
        .click()
        .await
        .unwrap();
    wait_css(c, "details.bulk button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let hostile = payloads();
    assert!(hostile.len() >= 50);
    let joined = hostile.join("\n");
    let up = Receiver::start(vec![
        Reply::status(502)
            .header("x-upstream", &header_safe(&hostile[2]))
            .header("content-type", "text/html")
            .body(joined.clone()),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "xss", "name": hostile[0] }))
        .await;
    s.create_endpoint(json!({ "slug": "fwd", "target": up.url("/hook"), "name": hostile[6] }))
        .await;
    s.create_endpoint(json!({ "slug": "live" })).await;

    // One event per payload: body, header value, topic, path and query.
    let mut ids = Vec::new();
    for (i, p) in hostile.iter().enumerate() {
        let path = format!("/in/xss/{i}/{}?q={}", target_safe(p), target_safe(p));
        let h = header_safe(p);
        let (status, headers, _) = send(
            "POST",
            &s.ingest_url(&path),
            &[
                ("x-payload", &h),
                ("x-github-event", &h),
                ("content-type", "text/html"),
            ],
            Bytes::from(p.clone()),
        )
        .await;
        assert_eq!(status, 200, "payload {i}");
        ids.push(
            headers
                .iter()
                .find(|(n, _)| n == "x-hookrelay-event")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap(),
        );
    }
    // JSON keys and values; a forwarded event whose upstream answer is hostile.
    let obj: serde_json::Map<String, Value> = hostile
        .iter()
        .map(|p| (p.clone(), Value::String(p.clone())))
        .collect();
    let (_, headers, _) = send(
        "POST",
        &s.ingest_url("/in/fwd/j"),
        &[("content-type", "application/json")],
        Bytes::from(Value::Object(obj).to_string()),
    )
    .await;
    let fwd_id = headers
        .iter()
        .find(|(n, _)| n == "x-hookrelay-event")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    ids.push(fwd_id.clone());

    let d = Driver::start().await;
    let c = &d.client;
    // A failed assertion must still end the browser session (chromedriver
    // stops Chromium when the session closes), so the body is caught.
    let result = std::panic::AssertUnwindSafe(async {
        // Endpoints.
        c.goto(&s.admin_url("/")).await.unwrap();
        wait_css(c, "#endpoint-xss").await;
        assert_clean(c, "endpoints").await;
        assert!(c.title().await.unwrap().starts_with("Endpoints"));
        shot(c, "endpoints").await;

        // Events, then a filter applied through the form.
        c.goto(&s.admin_url("/events")).await.unwrap();
        wait_css(c, "#events-table").await;
        assert_clean(c, "events").await;
        shot(c, "events").await;
        c.find(Locator::Css("#f-endpoint"))
            .await
            .unwrap()
            .select_by_value("fwd")
            .await
            .unwrap();
        c.find(Locator::Css("#filters button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The unfiltered page has the row too: wait for the navigation.
        let deadline = std::time::Instant::now() + WAIT;
        while !c
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("endpoint=fwd")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the filter is in the URL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        wait_css(c, &format!("#ev-{fwd_id}")).await;
        let rows = c.find_all(Locator::Css("#event-rows tr")).await.unwrap();
        assert_eq!(rows.len(), 1, "only fwd's event");

        // Live tail: a POST to the ingest port shows up without a reload.
        c.goto(&s.admin_url("/events?endpoint=live")).await.unwrap();
        wait_css(c, "#live-state.on").await;
        c.execute("window.__marker = 'same page';", vec![])
            .await
            .unwrap();
        let live_body = format!("live {}", hostile[3]);
        let r = s
            .post_in(
                "live/tail?x=1",
                &[("x-github-event", &header_safe(&hostile[7]))],
                live_body,
            )
            .await;
        let live_id = r.event_id();
        let row = wait_css(c, &format!("#ev-{live_id}")).await;
        assert!(row.text().await.unwrap().contains("/tail?x=1"));
        let marker = c.execute("return window.__marker;", vec![]).await.unwrap();
        assert_eq!(marker, "same page", "the row came without a reload");
        assert_clean(c, "live tail").await;
        // Paused, new rows wait; resumed, they appear.
        toggle_live(c).await;
        let held = s.post_in("live/paused", &[], "p").await.event_id();
        wait_css(c, "#live-state.paused").await;
        wait_one_waiting(c).await;
        assert!(
            c.find(Locator::Css(&format!("#ev-{held}"))).await.is_err(),
            "paused: not shown yet"
        );
        toggle_live(c).await;
        wait_css(c, &format!("#ev-{held}")).await;
        shot(c, "live-tail").await;

        // A row whose event stops matching the filter stays, marked; a
        // `since` still to come leaves new events out.
        s.create_endpoint(json!({ "slug": "livef", "target": up.url("/hook") }))
            .await;
        c.goto(&s.admin_url("/events?endpoint=livef&state=received"))
            .await
            .unwrap();
        wait_css(c, "#live-state.on").await;
        let failed = s.post_in("livef", &[], "f").await.event_id();
        wait_css(c, &format!("#ev-{failed}.unmatched")).await;
        c.goto(&s.admin_url("/events?endpoint=live&since=2100-01-01T00:00:00Z"))
            .await
            .unwrap();
        wait_css(c, "#live-state.on").await;
        // Paused, the tail counts what the stream brought (matching or
        // not): the signal that it came; resumed, it is matched.
        toggle_live(c).await;
        let early = s.post_in("live/early", &[], "e").await.event_id();
        wait_one_waiting(c).await;
        toggle_live(c).await;
        wait_css(c, "#live-state.on").await;
        assert!(
            c.find(Locator::Css(&format!("#ev-{early}"))).await.is_err(),
            "an event before the view's since was added"
        );
        // Filters are matched as the server reads them: `0200` is 200.
        c.goto(&s.admin_url("/events?endpoint=live&status=0200&duplicate=0"))
            .await
            .unwrap();
        wait_css(c, "#live-state.on").await;
        let padded = s.post_in("live/padded", &[], "p").await.event_id();
        wait_css(c, &format!("#ev-{padded}")).await;

        // Open the forwarded event from the list and replay it.
        c.goto(&s.admin_url("/events?endpoint=fwd")).await.unwrap();
        wait_css(c, &format!("#ev-{fwd_id} td.req a"))
            .await
            .click()
            .await
            .unwrap();
        wait_css(c, "#attempt-1").await;
        assert_clean(c, "event page").await;
        c.find(Locator::Css("#replay"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let a2 = wait_css(c, "#attempt-2").await;
        assert!(a2.text().await.unwrap().contains("replay"));
        assert!(
            c.find(Locator::Css(".flash"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .contains("Replay attempt #2")
        );
        assert_clean(c, "after replay").await;
        shot(c, "event").await;

        // Replay all matching: a dry run, then a paced job whose page the
        // script keeps up to date until it ends. Bins have no target, so
        // each replay fails at once; the rate makes the job last ~2 s.
        count_matching(c, &s.admin_url("/events?endpoint=xss")).await;
        let count = wait_css(c, "#dry-run-count").await;
        assert!(
            count
                .text()
                .await
                .unwrap()
                .starts_with(&format!("{} events match", hostile.len())),
            "dry-run count"
        );
        c.find(Locator::Css("#bulk-rate"))
            .await
            .unwrap()
            .send_keys("25")
            .await
            .unwrap();
        c.find(Locator::Css("#bulk-run button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_css(c, "#job").await;
        assert_clean(c, "replay job page").await;
        wait_css(c, "#job[data-status=done]").await;
        let total = hostile.len().to_string();
        assert_eq!(
            c.find(Locator::Css("#job-sent"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            total,
            "the script updated the progress"
        );
        assert_eq!(
            c.find(Locator::Css("#job-failed"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            total
        );
        assert!(
            !c.find(Locator::Css("#job-cancel"))
                .await
                .unwrap()
                .is_displayed()
                .await
                .unwrap(),
            "Cancel goes away once the job ended"
        );
        shot(c, "replay-job").await;

        // A slow job (one every 10 s) is cancelled from its page: the
        // button shows while it runs, and a click ends it.
        count_matching(c, &s.admin_url("/events?endpoint=xss")).await;
        wait_css(c, "#bulk-rate")
            .await
            .send_keys("0.1")
            .await
            .unwrap();
        c.find(Locator::Css("#bulk-run button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_css(c, "#job[data-status=running]").await;
        let url = c.current_url().await.unwrap();
        let job = url
            .path()
            .strip_prefix("/replay/")
            .unwrap_or_else(|| panic!("not a job page: {url}"))
            .to_string();
        let cancel = wait_css(c, "#job-cancel button[type=submit]").await;
        assert!(
            cancel.is_displayed().await.unwrap() && cancel.is_enabled().await.unwrap(),
            "a running job can be cancelled"
        );
        cancel.click().await.unwrap();
        wait_css(c, "#job[data-status=cancelled]").await;
        let (st, _, j) = send(
            "GET",
            &s.admin_url(&format!("/api/replay/{job}")),
            &[],
            Bytes::new(),
        )
        .await;
        let j: Value = serde_json::from_slice(&j).unwrap();
        assert_eq!((st, &j["status"]), (200, &json!("cancelled")), "{j}");
        assert!(
            j["sent"].as_u64().unwrap() < hostile.len() as u64,
            "cancelled before its end: {j}"
        );
        assert_clean(c, "cancelled job page").await;

        // Every hostile event's page.
        for (i, id) in ids.iter().enumerate() {
            c.goto(&s.admin_url(&format!("/events/{id}")))
                .await
                .unwrap();
            wait_css(c, "#curl-cmd").await;
            assert_clean(c, &format!("event page of payload {i}")).await;
        }
        c.goto(&s.admin_url("/events?endpoint=xss&limit=100"))
            .await
            .unwrap();
        wait_css(c, "#events-table").await;
        assert_eq!(
            c.find_all(Locator::Css("#event-rows tr"))
                .await
                .unwrap()
                .len(),
            hostile.len()
        );
        assert_clean(c, "hostile list").await;
        c.goto(&s.admin_url("/endpoints/fwd")).await.unwrap();
        wait_css(c, "#endpoint-fwd").await;
        assert_clean(c, "endpoint page").await;
        c.goto(&s.admin_url("/endpoints/new")).await.unwrap();
        wait_css(c, "form.endpoint-form").await;
        shot(c, "new-endpoint").await;
    })
    .catch_unwind()
    .await;
    d.stop().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
