//! "Copy as curl" is byte-exact and safe to paste: the command shown on the
//! event page, run by the real `/usr/bin/curl` through `bash`, makes a
//! capture endpoint on the same server store the same request — method,
//! path, query, headers in order, body bytes — for bodies with quotes,
//! `$()`, backticks, newlines, control characters and binary bytes, and
//! runs nothing else.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::dashboard::get_page;
use crate::support::{TestServer, send};

/// The text of `<pre id="curl-cmd">`, unescaped as the browser shows it
/// (and as the Copy button copies it).
fn curl_from_page(html: &str) -> String {
    let start = html
        .find("id=\"curl-cmd\">")
        .expect("the page shows a curl command")
        + "id=\"curl-cmd\">".len();
    let end = html[start..].find("</pre>").unwrap() + start;
    html[start..end]
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
}

async fn stored(s: &TestServer, id: &str) -> (Value, Vec<u8>) {
    let ev = s.get(&format!("/api/events/{id}")).await;
    let (status, _, body) = send(
        "GET",
        &s.admin_url(&format!("/api/events/{id}/body")),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    (ev, body.to_vec())
}

/// Header pairs without the ones a new connection recomputes.
fn comparable(ev: &Value) -> Vec<(String, String)> {
    ev["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .filter(|(n, _)| n != "host" && n != "content-length")
        .collect()
}

#[tokio::test]
async fn copy_as_curl_reproduces_the_request_byte_for_byte() {
    assert!(
        std::path::Path::new("/usr/bin/curl").exists(),
        "this test needs /usr/bin/curl"
    );
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "src" })).await;
    s.create_endpoint(json!({ "slug": "cap" })).await;
    let work = tempfile::tempdir().unwrap();

    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\x00\x00'$(touch pwned)'\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "quotes",
            br#"{"msg":"it's \"quoted\" and 'single'","n":1}"#.to_vec(),
        ),
        (
            "shell",
            b"$(touch pwned) `touch pwned` ${HOME} $HOME !! \\ '\\'' ; touch pwned #".to_vec(),
        ),
        (
            "newlines",
            b"line one\nline two\n\n\ttabbed\r\ncrlf\n".to_vec(),
        ),
        ("trailing", b"ends with a newline\n".to_vec()),
        (
            "escapes",
            b"\x1b[31mred\x1b[0m \x07 bell \xe2\x80\xae bidi".to_vec(),
        ),
        ("binary", binary),
        ("large", "big 'text' $(x)\n".repeat(2000).into_bytes()),
        // curl reads the file named after a leading `@` unless told the
        // body is raw data: this must arrive as these 12 bytes.
        ("at-file", b"@/etc/passwd".to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, body) in cases {
        let path = format!("/in/src/{name}/a'b/$(touch%20pwned)?x='1'&y=$(touch pwned)&z=`id`");
        let path = path.replace(' ', "%20");
        let (status, headers, _) = send(
            "POST",
            &s.ingest_url(&path),
            &[
                ("content-type", "application/json; charset=\"utf-8\""),
                ("x-quote", "it's \"q\" $(touch pwned) `touch pwned`"),
                ("x-dup", "1"),
                ("x-dup", "2"),
                ("x-empty", ""),
                ("user-agent", "WooCommerce/9.0 Hookshot (WordPress/6.5)"),
            ],
            Bytes::from(body.clone()),
        )
        .await;
        assert_eq!(status, 200, "{name}");
        let id = headers
            .iter()
            .find(|(n, _)| n == "x-hookrelay-event")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap();

        let base = s.ingest_url("/in/cap");
        let page = get_page(
            &s,
            &format!(
                "/events/{id}?curl_base={}",
                hookrelay::admin::dashboard::encode_component(&base)
            ),
            &[],
        )
        .await;
        assert_eq!(page.status, 200);
        let cmd = curl_from_page(&page.html);
        assert!(
            cmd.contains("--data-binary '@") || cmd.contains("--data-raw") || body.is_empty(),
            "{name}: {cmd}"
        );
        assert!(
            cmd.lines()
                .filter(|l| !l.starts_with("base64 -d"))
                .all(|l| !l.trim_start().starts_with("-d ")),
            "never curl's -d, which strips newlines"
        );

        // The page's command is exactly the library's.
        let (orig, orig_body) = stored(&s, &id).await;
        assert_eq!(orig_body, body, "{name}: stored as sent");

        // tokio's Command: the server answering curl runs on this runtime.
        let mut run = tokio::process::Command::new("bash");
        run.arg("-c").arg(&cmd).current_dir(work.path());
        let out = crate::support::cmd::output(run).await;
        assert!(
            out.status.success(),
            "{name}: {}\n{cmd}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !work.path().join("pwned").exists(),
            "{name}: the payload ran a command:\n{cmd}"
        );

        let latest = s.get("/api/events?endpoint=cap&limit=1").await;
        let copy_id = latest["events"][0]["id"].as_str().unwrap().to_string();
        let (copy, copy_body) = stored(&s, &copy_id).await;
        assert_eq!(copy_body, body, "{name}: body bytes\n{cmd}");
        assert_eq!(copy["method"], orig["method"], "{name}");
        assert_eq!(copy["path"], orig["path"], "{name}: path suffix");
        assert_eq!(copy["query"], orig["query"], "{name}: query");
        assert_eq!(
            comparable(&copy),
            comparable(&orig),
            "{name}: headers in order\n{cmd}"
        );
    }

    // Without `curl_base` the command goes to this endpoint's own ingest URL
    // (the listener's real address): hookrelay captures it again.
    let body = b"again 'quoted' $(touch pwned)\n".to_vec();
    let id = s
        .post_in(
            "src/again?k=v",
            &[("content-type", "text/plain")],
            body.clone(),
        )
        .await
        .event_id();
    let page = get_page(&s, &format!("/events/{id}"), &[]).await;
    let cmd = curl_from_page(&page.html);
    let ingest = s.ingest_url("/in/src/again?k=v");
    assert!(cmd.contains(&format!("'{ingest}'")), "{cmd}");
    let mut run = tokio::process::Command::new("bash");
    run.arg("-c").arg(&cmd).current_dir(work.path());
    let out = crate::support::cmd::output(run).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let latest = s.get("/api/events?endpoint=src&limit=1").await;
    let copy_id = latest["events"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(copy_id, id, "a new event");
    let (copy, copy_body) = stored(&s, &copy_id).await;
    let (orig, _) = stored(&s, &id).await;
    assert_eq!(copy_body, body);
    assert_eq!(copy["path"], orig["path"]);
    assert_eq!(copy["query"], orig["query"]);
    assert_eq!(comparable(&copy), comparable(&orig));

    // `curl_base` comes from a link anyone can send: only an http(s) URL,
    // and the page says it is not the endpoint's own.
    for bad in [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "-o /tmp/x http://h/",
    ] {
        let page = get_page(
            &s,
            &format!(
                "/events/{id}?curl_base={}",
                hookrelay::admin::dashboard::encode_component(bad)
            ),
            &[],
        )
        .await;
        let cmd = curl_from_page(&page.html);
        assert!(cmd.contains(&format!("'{ingest}'")), "{bad}: {cmd}");
        // Hunt #23: said, not swapped for the ingest URL silently.
        assert!(page.html.contains("not the URL you gave"), "{bad}");
    }
    let page = get_page(
        &s,
        &format!("/events/{id}?curl_base=http%3A%2F%2Fother.example%2F"),
        &[],
    )
    .await;
    assert!(curl_from_page(&page.html).contains("'http://other.example/again?k=v'"));
    assert!(
        page.html.contains("not one of this endpoint"),
        "the page warns"
    );
}

#[test]
fn the_library_command_quotes_every_value() {
    use hookrelay::admin::dashboard::curl_command;
    use hookrelay::event::Event;
    // From JSON, so fields added later with serde defaults need no change.
    let mut ev: Event = serde_json::from_value(serde_json::json!({
        "id": "01J0000000000000000000000A",
        "endpoint": "shop",
        "received_at": 0,
        "method": "PUT",
        "path": "/x'$(id)",
        "query": "a=`id`",
        "headers": [],
        "size": 3,
        "remote_addr": "127.0.0.1:1",
        "state": "captured",
    }))
    .unwrap();
    ev.headers = vec![
        ("x-bin".into(), vec![0xff, b'\'', b'a']),
        ("x-q".into(), b"'; rm -rf ~ #".to_vec()),
    ];
    let cmd = curl_command(&ev, b"a\nb", "http://h/in/shop");
    assert!(
        cmd.contains("-X 'PUT' 'http://h/in/shop/x'\\''$(id)?a=`id`'"),
        "{cmd}"
    );
    assert!(cmd.contains("-H $'x\\x2dbin\\x3a \\xff\\x27a'"), "{cmd}");
    assert!(cmd.contains("-H 'x-q: '\\''; rm -rf ~ #'"), "{cmd}");
    assert!(cmd.contains("--data-raw 'a\nb'"), "{cmd}");
}

/// A body too large to embed is read from the file "download raw" saves:
/// the command names the file the download is called.
#[tokio::test]
async fn a_large_body_is_read_from_the_file_download_raw_saves() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "big" })).await;
    let body = vec![b'x'; hookrelay::admin::dashboard::curl::EMBED_MAX + 1];
    let id = s.post_in("big", &[], body).await.event_id();
    let page = get_page(&s, &format!("/events/{id}"), &[]).await;
    let cmd = curl_from_page(&page.html);
    let (status, headers, _) = send(
        "GET",
        &s.admin_url(&format!("/api/events/{id}/body")),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    let disposition = headers
        .iter()
        .find(|(n, _)| n == "content-disposition")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .expect("an attachment");
    let file = disposition
        .split("filename=\"")
        .nth(1)
        .and_then(|f| f.strip_suffix('"'))
        .expect("a file name");
    assert!(
        cmd.contains(&format!("save it with \"download raw\" as '{file}'"))
            && cmd.contains(&format!("--data-binary '@{file}'")),
        "{disposition}\n{cmd}"
    );
}
