//! Event pages: the list (`/events`) with the API's filters in the URL,
//! cursor pagination, the live tail's hooks and "replay all matching"; the
//! detail page (`/events/{id}`) with request, body, signature, attempts,
//! replay forms and "Copy as curl".

use std::collections::HashMap;

use super::PagePath as Path;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::body::BodyView;
use super::{
    CsrfForm, Ctx, Layout, PageError, ago, encode_component, header_text, query_string,
    redirect_with,
};
use crate::admin::AdminState;
use crate::admin::api::parse_filter;
use crate::error::Error;
use crate::event::{Attempt, Event, EventState};
use crate::signature;
use crate::store::EventFilter;
use crate::time::{now_ms, rfc3339_ms};

use crate::admin::api::FILTER_KEYS;
/// Signature verdicts a filter can ask for.
const VERDICTS: [&str; 5] = ["valid", "invalid", "stale", "missing", "unchecked"];

/// One line of the events table.
pub struct EventRow {
    pub id: String,
    pub received_at: String,
    pub ago: String,
    pub endpoint: String,
    pub method: String,
    /// Path suffix and query as received.
    pub target: String,
    pub topic: String,
    pub state: &'static str,
    pub last_status: String,
    /// The mirror's last answer ("0" when it gave none), when there is a mirror.
    pub mirror_status: Option<String>,
    /// The mirror answered differently from the target.
    pub mirror_differs: bool,
    pub verdict: String,
    pub size: u64,
    pub duplicate_of: Option<String>,
    pub attempts: u32,
}

impl EventRow {
    pub fn new(e: &Event, now: u64) -> EventRow {
        EventRow {
            id: e.id.clone(),
            received_at: rfc3339_ms(e.received_at),
            ago: ago(e.received_at, now),
            endpoint: e.endpoint.clone(),
            method: e.method.clone(),
            target: path_and_query(e),
            topic: crate::text::visible(e.topic.as_deref().unwrap_or_default()).into_owned(),
            state: e.state.as_str(),
            last_status: e.last_status.map(|s| s.to_string()).unwrap_or_default(),
            mirror_status: e.mirror_status.map(|s| s.to_string()),
            mirror_differs: e.mirror_differs(),
            verdict: e
                .signature
                .as_ref()
                .map(|s| s.verdict.clone())
                .unwrap_or_else(|| "unchecked".into()),
            size: e.size,
            duplicate_of: e.duplicate_of.clone(),
            attempts: e.attempts,
        }
    }
}

/// The path suffix and query as received, for display.
fn suffix_shown(e: &Event) -> String {
    let mut t = e.path.clone();
    if let Some(q) = &e.query {
        t.push('?');
        t.push_str(q);
    }
    crate::text::visible(&t).into_owned()
}

/// [`suffix_shown`] starting with `/`.
fn path_and_query(e: &Event) -> String {
    let t = suffix_shown(e);
    if e.path.is_empty() {
        format!("/{t}")
    } else {
        t
    }
}

/// Filter values as typed, for the form and for links that keep them.
pub struct FilterValues {
    pub pairs: Vec<(&'static str, String)>,
}

impl FilterValues {
    fn of(q: &HashMap<String, String>) -> FilterValues {
        FilterValues {
            pairs: FILTER_KEYS
                .iter()
                .map(|k| {
                    (
                        *k,
                        q.get(*k)
                            .map(|v| crate::admin::api::filter_value(k, v).to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The non-empty filters, for hidden form fields.
    pub fn active(&self) -> Vec<(&'static str, String)> {
        self.pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .cloned()
            .collect()
    }

    /// `/events?…` with these filters and `extra` pairs.
    fn url(&self, extra: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> =
            self.pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.extend_from_slice(extra);
        let q = query_string(&pairs);
        if q.is_empty() {
            "/events".into()
        } else {
            format!("/events?{q}")
        }
    }
}

/// `since`/`until` may also be a duration back from now (`15m`, `2h`, `3d`)
/// or a `datetime-local` value without seconds; the URL keeps what was typed.
fn resolve_time(v: &str, now: u64) -> String {
    let v = v.trim();
    if v.is_empty() || crate::time::parse_instant_ms(v).is_some() {
        return v.to_string();
    }
    if let Some(ms) = crate::time::ago_ms(v, now) {
        return ms.to_string();
    }
    if v.len() == 16 && v.as_bytes().get(10) == Some(&b'T') {
        return format!("{v}:00Z");
    }
    v.to_string()
}

fn filter_of(q: &HashMap<String, String>, now: u64) -> Result<EventFilter, Error> {
    let mut q = q.clone();
    for k in ["since", "until"] {
        if let Some(v) = q.get_mut(k) {
            *v = resolve_time(v, now);
        }
    }
    parse_filter(&q)
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    f: FilterValues,
    endpoints: Vec<String>,
    states: Vec<&'static str>,
    verdicts: Vec<&'static str>,
    rows: Vec<EventRow>,
    error: Option<String>,
    next_url: Option<String>,
    first_url: Option<String>,
    capped_note: Option<String>,
    /// The live tail runs on the first page of a view whose new events the
    /// script can match; otherwise why it is off.
    live: bool,
    live_note: String,
    /// The filters as the server read them (`status=0500` is 500, `since=1h`
    /// a time in ms), for the live tail to match new events against exactly
    /// as the list did: `data-f-{name}` attributes.
    live_filter: Vec<(&'static str, String)>,
    stream_url: String,
    filtered: bool,
    /// A page size typed into the URL, kept by the filter form too.
    limit: String,
    /// The newest bulk replay jobs.
    jobs: Vec<super::jobs::JobView>,
}

/// See `EventsPage::live_filter`; what the script does not match on
/// (endpoint: the stream's own; `until`, `q`) is not given.
fn live_filter(f: &EventFilter) -> Vec<(&'static str, String)> {
    let flag = |b: Option<bool>| b.map(|b| b.to_string());
    [
        ("state", f.state.map(|s| s.as_str().to_string())),
        ("topic", f.topic.clone()),
        ("method", f.method.clone()),
        ("status", f.status.map(|s| s.to_string())),
        ("signature", f.signature.clone()),
        ("duplicate", flag(f.duplicate)),
        ("mirror_diff", flag(f.mirror_diff)),
        ("since-ms", f.since.map(|ms| ms.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect()
}

pub async fn list(
    State(st): State<AdminState>,
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let now = now_ms();
    let f = FilterValues::of(&q);
    let mut endpoints: Vec<String> = st.relay.list().iter().map(|e| e.slug.to_string()).collect();
    let current = f.get("endpoint").to_string();
    if !current.is_empty() && !endpoints.contains(&current) {
        endpoints.push(current.clone());
    }
    let cursor = q.get("cursor").filter(|c| !c.is_empty()).cloned();
    // A page size typed into the URL is kept by "Older" and "Newest".
    let limit = q.get("limit").map(|l| l.trim()).unwrap_or("");
    let paged = |f: &FilterValues, cursor: Option<&str>| {
        let mut extra = Vec::new();
        extra.extend(cursor.map(|c| ("cursor", c)));
        if !limit.is_empty() {
            extra.push(("limit", limit));
        }
        f.url(&extra)
    };
    let mut page = EventsPage {
        layout: ctx.layout("Events", "events"),
        endpoints,
        states: EventState::ALL.iter().map(|s| s.as_str()).collect(),
        verdicts: VERDICTS.to_vec(),
        rows: Vec::new(),
        error: None,
        next_url: None,
        first_url: cursor.as_ref().map(|_| paged(&f, None)),
        capped_note: None,
        live: false,
        live_note: String::new(),
        live_filter: Vec::new(),
        stream_url: format!(
            "/api/stream{}",
            if current.is_empty() {
                String::new()
            } else {
                format!("?endpoint={}", encode_component(&current))
            }
        ),
        filtered: !f.active().is_empty(),
        limit: limit.to_string(),
        f,
        jobs: super::jobs::recent(&st, now, 3),
    };
    // A typo in a hand-edited address (`endpont=`) says so rather than
    // list every event as if it were filtered.
    match crate::admin::api::known_params(&q, &[]).and_then(|()| filter_of(&q, now)) {
        Err(e) => page.error = Some(e.public_message()),
        Ok(filter) => {
            page.live_filter = live_filter(&filter);
            let result = st.relay.store.run(move |s| s.query(&filter)).await?;
            page.rows = result
                .events
                .iter()
                .map(|e| EventRow::new(e, now))
                .collect();
            page.next_url = result
                .next_cursor
                .as_deref()
                .map(|c| paged(&page.f, Some(c)));
            if result.scan_capped {
                page.capped_note = Some(format!(
                    "Searched {} stored events without filling the page; “Older” continues the search.",
                    result.scanned
                ));
            }
        }
    }
    (page.live, page.live_note) = if page.error.is_some() {
        (
            false,
            "Live tail is off while the filter has an error.".into(),
        )
    } else if cursor.is_some() {
        (false, "Live tail runs on the newest page only.".into())
    } else if !page.f.get("until").is_empty() {
        (
            false,
            "Live tail is off: the view ends at a fixed time (until).".into(),
        )
    } else if !page.f.get("q").is_empty() || !page.f.get("field").is_empty() {
        (
            false,
            "Live tail is off while bodies are searched (they are not streamed).".into(),
        )
    } else {
        (true, String::new())
    };
    Ok(ctx.page(
        if page.error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &page,
    ))
}

// ---- one event ----

pub struct AttemptView {
    pub n: u32,
    pub at: String,
    pub ago: String,
    pub trigger: String,
    pub url: String,
    pub status: String,
    pub success: bool,
    pub latency_ms: u64,
    pub error: String,
    pub error_detail: String,
    pub headers: Vec<(String, String)>,
    pub body: BodyView,
    pub body_size: u64,
    pub body_truncated: bool,
    pub replay_of: Option<String>,
    pub highlight: bool,
}

impl AttemptView {
    fn new(a: &Attempt, now: u64, highlight: Option<u32>) -> AttemptView {
        let json_name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
        AttemptView {
            n: a.n,
            at: rfc3339_ms(a.at),
            ago: ago(a.at, now),
            trigger: json_name(serde_json::to_value(a.trigger).unwrap_or_default()),
            url: crate::text::visible(&a.url).into_owned(),
            status: a.status.map(|s| s.to_string()).unwrap_or_default(),
            success: a.success,
            latency_ms: a.latency_ms,
            error: a
                .error
                .map(|k| json_name(serde_json::to_value(k).unwrap_or_default()))
                .unwrap_or_default(),
            error_detail: a.error_detail.clone().unwrap_or_default(),
            headers: header_text(&a.headers),
            body: BodyView::of_start(&a.body, a.body_truncated),
            body_size: a.body_size,
            body_truncated: a.body_truncated,
            replay_of: a.replay_of.clone(),
            highlight: highlight == Some(a.n),
        }
    }
}

pub struct SignatureView {
    pub scheme: String,
    pub verdict: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    layout: Layout,
    id: String,
    endpoint: String,
    endpoint_exists: bool,
    endpoint_target: Option<String>,
    /// The endpoint's signature scheme: "Replay re-signed" signs with it.
    signing_scheme: Option<String>,
    /// The full URL the event was sent to, once the ingest base is known.
    ingest_url: Option<String>,
    received_at: String,
    ago: String,
    method: String,
    ingest_path: String,
    target: String,
    download_url: String,
    headers: Vec<(String, String)>,
    remote_addr: String,
    /// The trusted proxy it came through, when `remote_addr` is the client.
    proxy_addr: Option<String>,
    state: &'static str,
    /// The target's last answer (empty when none yet).
    last_status: String,
    /// The target was tried: an empty `last_status` is "no answer".
    target_tried: bool,
    /// The mirror's last answer, when the event went to a mirror; "0" when
    /// the mirror gave no answer.
    mirror_status: Option<String>,
    mirror_differs: bool,
    /// For the filter link; `topic_shown` for the text.
    topic: String,
    topic_shown: String,
    external_id: String,
    duplicate_of: Option<String>,
    signature: Option<SignatureView>,
    size: u64,
    body: BodyView,
    attempts: Vec<AttemptView>,
    /// Older attempts than those shown (see `store::ATTEMPTS_SHOWN`).
    attempts_omitted: u32,
    curl: String,
    curl_base: String,
    curl_base_note: String,
    /// Other destinations for the command: (label, link to this page).
    curl_alternatives: Vec<(String, String)>,
    verify_result: Option<SignatureView>,
    /// Whose secret the check used: an empty field means the endpoint's.
    verify_against: &'static str,
    verify_available: bool,
    /// The scheme picked in the check form, kept selected.
    verify_scheme: String,
    /// hmac-sha256's settings typed in the check form, kept filled in.
    verify_hmac: HmacFields,
    schemes: Vec<&'static str>,
}

/// The check form's hmac-sha256 settings, as typed (empty: the endpoint's).
#[derive(Default)]
struct HmacFields {
    header: String,
    encoding: String,
    prefix: String,
    timestamp_header: String,
}

impl HmacFields {
    fn given(&self) -> bool {
        [
            &self.header,
            &self.encoding,
            &self.prefix,
            &self.timestamp_header,
        ]
        .iter()
        .any(|v| !v.is_empty())
    }
}

async fn load(st: &AdminState, id: &str) -> Result<(Event, Vec<u8>, Vec<Attempt>), Error> {
    let owned = id.to_string();
    st.relay
        .store
        .run(move |s| s.event_full(&owned))
        .await?
        .ok_or_else(|| Error::NotFound(format!("no event {id}")))
}

fn event_page(
    st: &AdminState,
    ctx: &Ctx,
    (ev, body, attempts): (Event, Vec<u8>, Vec<Attempt>),
    q: &HashMap<String, String>,
) -> EventPage {
    let now = now_ms();
    let ep = st.relay.get(&ev.endpoint).ok();
    let highlight = q.get("attempt").and_then(|n| n.parse::<u32>().ok());
    let ingest_url = super::ingest_base(st, ctx).map(|b| format!("{b}/in/{}", ev.endpoint));
    let endpoint_target = ep.as_ref().and_then(|e| e.target.clone());
    // Only an http(s) URL: the link that sets it can come from anyone, and
    // the note says it is not one of this endpoint's own.
    let given = q
        .get("curl_base")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    // A URL refused says why beside the one used instead, or a pasted
    // command would go somewhere the user did not type.
    let refused = given.and_then(|s| crate::endpoint::validate_url("curl_base", s).err());
    let (curl_base, mut curl_base_note) = match (
        given.filter(|_| refused.is_none()),
        &ingest_url,
        &endpoint_target,
    ) {
        (Some(b), _, _) => (
            b.to_string(),
            "the URL given in this page's address (curl_base), not one of this endpoint's: check it before you run the command"
                .to_string(),
        ),
        (None, Some(i), _) => (
            i.clone(),
            "this endpoint's ingest URL: hookrelay captures it again as a new event".to_string(),
        ),
        (None, None, Some(t)) => (t.clone(), "the endpoint's target".to_string()),
        (None, None, None) => (
            format!("http://127.0.0.1:8080/in/{}", ev.endpoint),
            "the default ingest address; change it if hookrelay listens elsewhere".to_string(),
        ),
    };
    if let Some(why) = refused {
        curl_base_note = format!("not the URL you gave — {why}; instead {curl_base_note}");
    }
    // One-click switches between the useful destinations.
    let curl_alternatives: Vec<(String, String)> = [
        ("this endpoint's ingest URL", ingest_url.as_ref()),
        ("the endpoint's target", endpoint_target.as_ref()),
    ]
    .into_iter()
    .filter_map(|(label, url)| {
        let url = url?;
        (*url != curl_base).then(|| {
            (
                label.to_string(),
                format!(
                    "/events/{}?curl_base={}#copy-as-curl",
                    ev.id,
                    encode_component(url)
                ),
            )
        })
    })
    .collect();
    let attempts_omitted = attempts.first().map_or(0, |a| a.n.saturating_sub(1));
    let mut attempts: Vec<AttemptView> = attempts
        .iter()
        .map(|a| AttemptView::new(a, now, highlight))
        .collect();
    attempts.reverse();
    EventPage {
        layout: ctx.layout(
            format!("{} {} · {}", ev.method, path_and_query(&ev), ev.endpoint),
            "events",
        ),
        id: ev.id.clone(),
        endpoint: ev.endpoint.clone(),
        endpoint_exists: ep.is_some(),
        endpoint_target,
        signing_scheme: ep
            .as_ref()
            .and_then(|e| e.signature.as_ref())
            .map(|c| c.scheme.clone()),
        ingest_url: ingest_url.map(|u| format!("{u}{}", suffix_shown(&ev))),
        received_at: rfc3339_ms(ev.received_at),
        ago: ago(ev.received_at, now),
        method: ev.method.clone(),
        ingest_path: format!("/in/{}{}", ev.endpoint, suffix_shown(&ev)),
        target: path_and_query(&ev),
        download_url: format!("/api/events/{}/body", ev.id),
        headers: header_text(&ev.headers),
        remote_addr: ev.remote_addr.clone(),
        proxy_addr: ev.proxy_addr.clone(),
        state: ev.state.as_str(),
        last_status: ev.last_status.map(|s| s.to_string()).unwrap_or_default(),
        target_tried: ev.tries > 0 || ev.target_tried,
        mirror_status: ev.mirror_status.map(|s| s.to_string()),
        mirror_differs: ev.mirror_differs(),
        topic: ev.topic.clone().unwrap_or_default(),
        topic_shown: crate::text::visible(ev.topic.as_deref().unwrap_or_default()).into_owned(),
        external_id: crate::text::visible(ev.external_id.as_deref().unwrap_or_default())
            .into_owned(),
        duplicate_of: ev.duplicate_of.clone(),
        signature: ev.signature.as_ref().map(|s| SignatureView {
            scheme: s.scheme.clone(),
            verdict: s.verdict.clone(),
            detail: s.detail.clone(),
        }),
        size: ev.size,
        curl: super::curl_command(&ev, &body, &curl_base),
        body: BodyView::new(&body),
        attempts,
        attempts_omitted,
        curl_base,
        curl_base_note,
        curl_alternatives,
        verify_result: None,
        verify_against: "",
        verify_available: true,
        verify_hmac: HmacFields::default(),
        // The endpoint's own scheme first: with `auto` preselected, a
        // check of a scheme auto cannot detect (generic HMAC) said
        // "missing" for the right secret.
        verify_scheme: ep
            .as_ref()
            .and_then(|e| e.signature.as_ref())
            .map(|c| c.scheme.clone())
            .unwrap_or_default(),
        schemes: std::iter::once("auto")
            .chain(
                crate::signature::SCHEMES
                    .iter()
                    .copied()
                    .filter(|s| *s != "auto"),
            )
            .collect(),
    }
}

pub async fn show(
    State(st): State<AdminState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let data = load(&st, &id).await?;
    let page = event_page(&st, &ctx, data, &q);
    Ok(ctx.page(StatusCode::OK, &page))
}

pub async fn replay(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Response {
    let back = format!("/events/{id}");
    let resign = form.has("resign");
    let what = if resign { "Replay re-signed" } else { "Replay" };
    let target = Some(form.get("target").to_string()).filter(|t| !t.is_empty());
    match st.relay.replay_with(&id, target, resign).await {
        Ok((_, a, note)) => {
            let verdict = if a.success { "succeeded" } else { "failed" };
            let mut text = format!(
                "{what} attempt #{} to {} {verdict}: {}.",
                a.n,
                a.url,
                super::outcome(&a)
            );
            if let Some(note) = note {
                text.push_str(&format!(" Signature: {note}."));
            }
            let to = format!("/events/{id}?attempt={}#attempt-{}", a.n, a.n);
            redirect_with(&to, if a.success { "ok" } else { "error" }, &text)
        }
        Err(e) => redirect_with(
            &back,
            "error",
            &format!("{what} refused: {}", e.public_message()),
        ),
    }
}

/// Checks the stored event against a secret typed into the page. The
/// timestamp is measured against the time the event was received. The
/// result is rendered directly (no redirect), so the secret never lands in
/// a URL, a cookie or the store.
pub async fn verify(
    State(st): State<AdminState>,
    ctx: Ctx,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, PageError> {
    let (ev, body, attempts) = load(&st, &id).await?;
    // As the API's check: the endpoint's settings fill in what the form
    // does not carry (an hmac-sha256 header, its encoding; the scheme when
    // none is picked).
    let endpoint_cfg = st
        .relay
        .endpoint(&ev.endpoint)
        .and_then(|c| c.lock().signature.clone());
    let mut req = serde_json::Map::new();
    if !form.get("scheme").is_empty() {
        req.insert("scheme".into(), form.get("scheme").into());
    }
    // Empty: the endpoint's stored secrets.
    if !form.raw("secret").is_empty() {
        req.insert("secret".into(), form.raw("secret").into());
    }
    let scheme = req
        .get("scheme")
        .and_then(|s| s.as_str())
        .map(str::to_string)
        .or_else(|| endpoint_cfg.as_ref().map(|c| c.scheme.clone()))
        .unwrap_or_else(|| "auto".into());
    let hmac = HmacFields {
        header: form.get("header").to_string(),
        encoding: form.get("encoding").to_string(),
        // Taken as typed: a prefix may end in a space.
        prefix: form.raw("prefix").to_string(),
        timestamp_header: form.get("timestamp_header").to_string(),
    };
    // Another scheme has none of these: ignored for it, as the endpoint
    // form ignores them.
    if scheme == "hmac-sha256" {
        for (key, value) in [
            ("header", &hmac.header),
            ("encoding", &hmac.encoding),
            ("prefix", &hmac.prefix),
            ("timestamp_header", &hmac.timestamp_header),
        ] {
            if !value.is_empty() {
                req.insert(key.into(), value.as_str().into());
            }
        }
    }
    let result = match crate::admin::api::verify_config(req, endpoint_cfg.as_ref()) {
        // Nothing was checked: not a verdict on the event.
        Err(e) => SignatureView {
            scheme: scheme.clone(),
            verdict: "unchecked".into(),
            detail: format!("not checked: {}", e.public_message()),
        },
        Ok((config, _)) => {
            let check = signature::verify(
                &config,
                &ev.headers,
                &body,
                None,
                (ev.received_at / 1000) as i64,
            );
            SignatureView {
                scheme: check.scheme,
                verdict: serde_json::to_value(check.verdict)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                detail: check.detail,
            }
        }
    };
    let mut page = event_page(&st, &ctx, (ev, body, attempts), &HashMap::new());
    page.verify_scheme = scheme;
    page.verify_hmac = hmac;
    page.verify_result = Some(result);
    // As `verify_config` decides it: only an empty field means the stored one.
    page.verify_against = match form.raw("secret").is_empty() {
        true => "the endpoint's stored secret",
        false => "the secret you typed",
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

// ---- replay all matching ----

#[derive(Template)]
#[template(path = "bulk_replay.html")]
struct BulkPage {
    layout: Layout,
    f: FilterValues,
    back_url: String,
    count: usize,
    /// More than [`crate::replay::MAX_JOB_EVENTS`] match: narrow the filter.
    more: bool,
    max: usize,
    /// The count stopped at the selection's read budget: a lower bound,
    /// and no job can be made with this filter (the reason).
    unread: Option<String>,
    /// The oldest matching ids (the first the job sends).
    first_ids: Vec<String>,
    /// The cursor just above the newest event counted: the job takes
    /// those counted and none that arrived after.
    upto: String,
    target: String,
    rate: String,
    resign: bool,
    target_error: Option<String>,
    rate_error: Option<String>,
    error: Option<String>,
    /// The newest jobs, for a link back to one still running.
    jobs: Vec<super::jobs::JobView>,
}

/// Runs the dry run for `filter` and fills the page's count.
async fn dry_run_into(
    st: &AdminState,
    page: &mut BulkPage,
    filter: EventFilter,
) -> Result<(), Error> {
    let v = crate::replay::dry_run(&st.relay, filter, None).await?;
    page.count = v["count"].as_u64().unwrap_or(0) as usize;
    page.more = v["more_than_max"].as_bool().unwrap_or(false);
    page.unread = v["refusal"]
        .as_str()
        .filter(|_| v["scan_capped"] == true)
        .map(str::to_string);
    page.upto = v["last_id"]
        .as_str()
        .and_then(|id| ulid::Ulid::from_string(id).ok())
        .map(|id| ulid::Ulid(id.0.saturating_add(1)).to_string())
        .unwrap_or_default();
    page.first_ids = v["first_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(())
}

/// "Replay all matching": `step=count` shows the dry run (how many, the
/// oldest ids) and the job's options; `step=run` starts a bulk replay job
/// ([`crate::replay::start`]) and redirects to its page, which follows the
/// progress. Errors in the options are shown next to their field.
pub async fn bulk_replay(
    State(st): State<AdminState>,
    ctx: Ctx,
    form: CsrfForm,
) -> Result<Response, PageError> {
    let now = now_ms();
    let mut q: HashMap<String, String> = FILTER_KEYS
        .iter()
        .map(|k| (k.to_string(), form.get(k).to_string()))
        .collect();
    let back_url = FilterValues::of(&q).url(&[]);
    if form.get("step") != "run" {
        // The job is to replay what this count found: relative time bounds
        // are pinned now, and `upto` (below) ends the selection at the
        // newest event counted, so events arriving before "Start" are not
        // added behind the user's back.
        for k in ["since", "until"] {
            let v = resolve_time(&q[k], now);
            // Shown as a time, not as the epoch milliseconds it resolved to.
            let v = match v.parse::<u64>() {
                Ok(ms) => crate::time::rfc3339_ms(ms),
                Err(_) => v,
            };
            q.insert(k.to_string(), v);
        }
    }
    let f = FilterValues::of(&q);
    let mut page = BulkPage {
        layout: ctx.layout("Replay all matching", "events"),
        back_url,
        f,
        count: 0,
        more: false,
        max: crate::replay::MAX_JOB_EVENTS,
        unread: None,
        first_ids: Vec::new(),
        upto: form.get("upto").to_string(),
        target: form.get("target").to_string(),
        rate: form.get("rate").to_string(),
        resign: form.has("resign"),
        target_error: None,
        rate_error: None,
        error: None,
        jobs: super::jobs::recent(&st, now, 5),
    };
    let filter = match filter_of(&q, now) {
        Ok(mut f) if page.upto.is_empty() || ulid::Ulid::from_string(&page.upto).is_ok() => {
            f.cursor = Some(page.upto.clone()).filter(|c| !c.is_empty());
            f
        }
        Ok(_) => {
            page.error = Some(format!("upto: {:?} is not an event id", page.upto));
            return Ok(ctx.page(StatusCode::BAD_REQUEST, &page));
        }
        Err(e) => {
            page.error = Some(e.public_message());
            return Ok(ctx.page(StatusCode::BAD_REQUEST, &page));
        }
    };
    if form.get("step") != "run" {
        dry_run_into(&st, &mut page, filter).await?;
        return Ok(ctx.page(StatusCode::OK, &page));
    }

    let rate = match page.rate.as_str() {
        "" => None,
        r => match r.parse::<f64>() {
            Ok(n) if n.is_finite() => Some(n),
            _ => {
                page.rate_error = Some(format!("rate: {r:?} is not a number of events per second"));
                None
            }
        },
    };
    let target = Some(page.target.clone()).filter(|t| !t.is_empty());
    if page.rate_error.is_none() {
        // The job keeps the filter as resolved now: "since=15m" means the
        // same events when the job resumes after a restart.
        let params: HashMap<String, String> = FILTER_KEYS
            .iter()
            .filter_map(|k| {
                let v = q.get(*k).map(|v| v.trim()).unwrap_or("");
                (!v.is_empty()).then(|| {
                    let v = if matches!(*k, "since" | "until") {
                        resolve_time(v, now)
                    } else {
                        v.to_string()
                    };
                    (k.to_string(), v)
                })
            })
            .chain(filter.cursor.clone().map(|c| ("cursor".to_string(), c)))
            .collect();
        match crate::replay::start(
            &st.relay,
            params,
            filter.clone(),
            None,
            target,
            page.resign,
            rate,
        )
        .await
        {
            Ok(job) => {
                let text = format!(
                    "Started replay job {}: {} {}, oldest first.",
                    job.id,
                    job.total,
                    if job.total == 1 { "event" } else { "events" }
                );
                return Ok(redirect_with(&format!("/replay/{}", job.id), "ok", &text));
            }
            Err(Error::BadRequest(m) | Error::Unprocessable(m)) => {
                if m.starts_with("target:") {
                    page.target_error = Some(m);
                } else if m.starts_with("rate:") {
                    page.rate_error = Some(m);
                } else {
                    page.error = Some(m);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Refused: show the count and the form again, with the message.
    dry_run_into(&st, &mut page, filter).await?;
    Ok(ctx.page(StatusCode::BAD_REQUEST, &page))
}
