//! Endpoints declared in the config file (`--config`): applied at start
//! all or nothing, and created like the API creates them.

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer, config_at, temp_data};

/// A start refused for one endpoint of the file writes none of them (the
/// ones before it included), so fixing the file and starting again is
/// the whole remedy.
#[tokio::test]
async fn a_refused_start_writes_none_of_the_files_endpoints() {
    let (dir, data) = temp_data();
    let file = dir.path().join("hookrelay.toml");
    std::fs::write(
        &file,
        "[[endpoint]]\nslug = \"first\"\n\n[[endpoint]]\nslug = \"second\"\ntarget = \"http://2130706433/\"\n",
    )
    .unwrap();
    let start = |data: &std::path::Path| {
        let mut hr = crate::support::cmd::hookrelay();
        hr.args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .arg("--config")
            .arg(&file)
            .arg("--data")
            .arg(data)
            .arg("--deny-private-targets");
        crate::support::cmd::output(hr)
    };
    let out = start(&data).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    // The file is named as a parse error names it (hunt #20).
    let named = format!("config {}: endpoint[1] \"second\": ", file.display());
    assert!(err.contains(&named), "{err}");
    // The data directory was new: the refused start leaves none behind,
    // nor the parents it made for it.
    assert!(!data.exists(), "a store was left in {}", data.display());
    let nested = dir.path().join("new").join("a").join("data");
    assert!(!start(&nested).await.status.success());
    assert!(
        !dir.path().join("new").exists(),
        "parents made for it were left"
    );
    assert!(dir.path().exists() && file.exists(), "what existed stays");
    let s = TestServer::start_with(config_at(&data)).await;
    let (status, v) = s.api("GET", "/api/endpoints/first", None).await;
    assert_eq!(status, 404, "the refused start wrote an endpoint: {v}");
    s.create_endpoint(json!({ "slug": "kept" })).await;
    s.stop().await;

    // One that existed keeps its store through a refused start.
    let out = start(&data).await;
    assert!(!out.status.success());
    let s = TestServer::start_with(config_at(&data)).await;
    let (status, v) = s.api("GET", "/api/endpoints/kept", None).await;
    assert_eq!(status, 200, "{v}");
    s.stop().await;

    // One without a slug is named by its place in the file.
    std::fs::write(
        &file,
        "[[endpoint]]\nslug = \"first\"\n\n[[endpoint]]\nname = \"a bin\"\n",
    )
    .unwrap();
    let out = start(&dir.path().join("other")).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    assert!(
        err.contains(&format!("config {}: endpoint[1]: slug", file.display())),
        "{err}"
    );
    drop(dir);
}

/// `ping_on_activate` pings when the file creates the endpoint, as the API
/// does, and not at later starts that find it there.
#[tokio::test]
async fn a_file_endpoint_pings_when_created() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let (_dir, data) = temp_data();
    let input: hookrelay::endpoint::EndpointInput = serde_json::from_value(json!({
        "slug": "pg", "target": up.url("/hook"), "ping_on_activate": true
    }))
    .unwrap();
    let config = || hookrelay::Config {
        endpoints: vec![input.clone()],
        ..config_at(&data)
    };
    let s = TestServer::start_with(config()).await;
    let ping = up.next().await;
    assert_eq!(ping.uri, "/hook");
    assert!(
        String::from_utf8_lossy(&ping.body).contains("hookrelay.ping"),
        "{ping:?}"
    );
    s.stop().await;

    let s = TestServer::start_with(config()).await;
    assert_eq!(s.post_in("pg", &[], "real").await.status, 200);
    assert_eq!(up.next().await.body, "real", "a later start pinged again");
    s.stop().await;
}
