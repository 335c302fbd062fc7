//! Endpoint pages: the list (`/`) with status, counters, the failure
//! warning, the per-minute chart and actions; the new/edit form; the delete
//! confirmation.

use super::PagePath as Path;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::chart::{self, Chart};
use super::{CsrfForm, Ctx, Layout, PageError, ago, redirect_with, redirect_with_link};
use crate::admin::AdminState;
use crate::endpoint::{Counts, Endpoint, EndpointInput, Mode, ResponseSpec, Status};
use crate::error::Error;
use crate::signature::SignaturePatch;
use crate::store::EventFilter;
use crate::time::now_ms;

/// Recent events listed on an endpoint's page.
const HISTORY_ROWS: usize = 20;

pub struct EndpointRow {
    pub slug: String,
    pub name: String,
    pub status: &'static str,
    pub reason: Option<String>,
    pub disabled_ago: Option<String>,
    pub target: Option<String>,
    pub mode: &'static str,
    pub mirror: Option<String>,
    /// Queue mode only: what is waiting to be delivered.
    pub queue: Option<QueueView>,
    pub counts: Counts,
    pub consecutive_failures: u32,
    pub failure_threshold: u32,
    pub failures_left: u32,
    /// Failures so far and the endpoint still active: warn.
    pub warn: bool,
    /// Two failures left or fewer: warn loudly.
    pub danger: bool,
    pub has_signature: bool,
    pub chart: Chart,
    /// Where senders post: the full URL once the ingest listener is bound,
    /// else the path.
    pub ingest_url: String,
}

impl EndpointRow {
    fn new(
        ep: &Endpoint,
        counts: Counts,
        chart: Chart,
        now: u64,
        base: Option<&str>,
    ) -> EndpointRow {
        EndpointRow {
            ingest_url: format!("{}/in/{}", base.unwrap_or(""), ep.slug),
            slug: ep.slug.to_string(),
            name: visible(&ep.name),
            status: ep.status.as_str(),
            reason: ep.disabled_reason.as_deref().map(visible),
            disabled_ago: ep.disabled_at.map(|t| ago(t, now)),
            target: ep.target.as_deref().map(visible),
            mode: mode_str(ep.mode),
            mirror: ep.mirror.as_deref().map(visible),
            queue: None,
            counts,
            consecutive_failures: ep.consecutive_failures,
            failure_threshold: ep.failure_threshold,
            failures_left: ep.failures_left(),
            warn: ep.status == Status::Active && ep.consecutive_failures > 0 && ep.target.is_some(),
            danger: ep.failures_left() <= 2,
            has_signature: ep.signature.is_some(),
            chart,
        }
    }
}

/// A queue-mode endpoint's delivery queue as the card shows it.
pub struct QueueView {
    /// Pending events, in flight included.
    pub depth: usize,
    pub max_depth: u64,
    /// The backpressure limit is near (75 % or more): senders will soon get 503.
    pub near_full: bool,
    pub ordered: bool,
    pub max_in_flight: u32,
    /// How long the oldest pending event has waited ("5 min ago"), from
    /// its id's timestamp (ids are ULIDs made at arrival).
    pub oldest_ago: Option<String>,
    pub oldest_id: Option<String>,
    /// When the next delivery is due, if one is scheduled in the future.
    pub next_due_in: Option<String>,
}

impl QueueView {
    fn of(st: &AdminState, ep: &Endpoint, now: u64) -> QueueView {
        let slug = ep.slug.as_str();
        let (depth, oldest, next_due) = st.relay.queue.summary(slug);
        let oldest_ms = oldest
            .as_deref()
            .and_then(|id| ulid::Ulid::from_string(id).ok())
            .map(|u| u.timestamp_ms());
        QueueView {
            depth,
            max_depth: ep.max_queue_depth,
            near_full: depth as u64 * 4 >= ep.max_queue_depth.saturating_mul(3),
            ordered: ep.ordered,
            max_in_flight: ep.max_in_flight,
            oldest_ago: oldest_ms.map(|t| ago(t, now)),
            oldest_id: oldest,
            next_due_in: next_due.filter(|d| *d > now).map(|d| in_time(d - now)),
        }
    }
}

/// "in 5 s", "in 3 min", "in 2 h".
fn in_time(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        0..=59 => format!("in {s} s"),
        60..=3599 => format!("in {} min", s / 60),
        3600..=86_399 => format!("in {} h", s / 3600),
        _ => format!("in {} d", s / 86_400),
    }
}

fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Forward => "forward",
        Mode::Queue => "queue",
    }
}

/// Reads counts and the last hour's events of each endpoint in one trip to
/// the blocking pool.
async fn rows(st: &AdminState, ctx: &Ctx, eps: Vec<Endpoint>) -> Result<Vec<EndpointRow>, Error> {
    let base = super::ingest_base(st, ctx);
    let now = now_ms();
    let slugs: Vec<String> = eps.iter().map(|e| e.slug.to_string()).collect();
    let data = st
        .relay
        .store
        .run(move |s| {
            let mut out = Vec::new();
            for slug in slugs {
                let counts = s.counts(&slug)?;
                let (events, fails) = s.per_minute(&slug, now / 60_000, chart::MINUTES)?;
                out.push((counts, chart::from_counts(&events, &fails, now)));
            }
            Ok(out)
        })
        .await?;
    Ok(eps
        .iter()
        .zip(data)
        .map(|(ep, (counts, chart))| {
            let mut row = EndpointRow::new(ep, counts, chart, now, base.as_deref());
            if ep.mode == Mode::Queue {
                row.queue = Some(QueueView::of(st, ep, now));
            }
            row
        })
        .collect())
}

/// Endpoint cards on one page of `/`: each card reads its counters and its
/// last hour from the store, and a page with thousands of them took seconds.
pub const CARDS_PER_PAGE: usize = 50;

#[derive(Template)]
#[template(path = "endpoints.html")]
struct EndpointsPage {
    layout: Layout,
    rows: Vec<EndpointRow>,
    ingest_base: Option<String>,
    chart_width: u32,
    chart_height: u32,
    /// Endpoints stored, and how many of them are active, paused, disabled.
    total: usize,
    by_status: [(&'static str, usize); 3],
    /// The search (slug, name, target) and the status chosen.
    q: String,
    status: String,
    /// Endpoints that match, and the 1-based position of the first shown.
    matching: usize,
    first: usize,
    prev: Option<String>,
    next: Option<String>,
    /// This page's URL, where the cards' actions come back to.
    back: String,
}

/// Does `ep` match the search text (already lower-cased)?
fn matches_search(ep: &Endpoint, needle: &str) -> bool {
    needle.is_empty()
        || ep.slug.as_str().contains(needle)
        || ep.name.to_lowercase().contains(needle)
        || ep
            .target
            .as_deref()
            .is_some_and(|t| t.to_lowercase().contains(needle))
}

pub async fn list(
    State(st): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    ctx: Ctx,
) -> Result<Response, PageError> {
    let all = st.relay.list();
    let param = |k: &str| {
        query
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (q, status) = (param("q"), param("status"));
    let needle = q.to_lowercase();
    let mut by_status = [
        (Status::Active.as_str(), 0),
        (Status::Paused.as_str(), 0),
        (Status::Disabled.as_str(), 0),
    ];
    for ep in &all {
        if let Some(slot) = by_status.iter_mut().find(|(s, _)| *s == ep.status.as_str()) {
            slot.1 += 1;
        }
    }
    let total = all.len();
    let matching: Vec<Endpoint> = all
        .into_iter()
        .filter(|ep| status.is_empty() || ep.status.as_str() == status)
        .filter(|ep| matches_search(ep, &needle))
        .collect();
    let pages = matching.len().div_ceil(CARDS_PER_PAGE).max(1);
    let page_no = param("page").parse::<usize>().unwrap_or(1).clamp(1, pages);
    let url = |n: usize| {
        let n = n.to_string();
        let qs = super::query_string(&[
            ("q", q.as_str()),
            ("status", status.as_str()),
            ("page", if n == "1" { "" } else { n.as_str() }),
        ]);
        if qs.is_empty() {
            "/".to_string()
        } else {
            format!("/?{qs}")
        }
    };
    let skip = (page_no - 1) * CARDS_PER_PAGE;
    let shown: Vec<Endpoint> = matching
        .iter()
        .skip(skip)
        .take(CARDS_PER_PAGE)
        .cloned()
        .collect();
    let page = EndpointsPage {
        layout: ctx.layout("Endpoints", "endpoints"),
        rows: rows(&st, &ctx, shown).await?,
        ingest_base: super::ingest_base(&st, &ctx),
        chart_width: chart::WIDTH,
        chart_height: chart::HEIGHT,
        total,
        by_status,
        matching: matching.len(),
        first: skip + 1,
        prev: (page_no > 1).then(|| url(page_no - 1)),
        next: (page_no < pages).then(|| url(page_no + 1)),
        back: url(page_no),
        q,
        status,
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

// ---- the form ----

/// A textarea's text: browsers send its line breaks (CRLF, LF or a lone
/// CR) as CRLF, so text that differs from `stored` only in line breaks is
/// the stored text unchanged, and new text gets LF.
fn form_text(sent: &str, stored: Option<&str>) -> String {
    let lf = |s: &str| s.replace("\r\n", "\n").replace('\r', "\n");
    let sent = lf(sent);
    match stored {
        Some(s) if lf(s) == sent => s.to_string(),
        _ => sent,
    }
}

/// The form's fields as text, so a rejected submission is shown as typed.
#[derive(Default)]
pub struct FormValues {
    pub slug: String,
    pub name: String,
    pub status: String,
    /// The status the page was made with (see `status_was` in the form).
    pub status_was: String,
    pub target: String,
    pub mode: String,
    pub timeout_ms: String,
    pub failure_threshold: String,
    pub success_codes: String,
    pub retry: String,
    pub sig_scheme: String,
    pub sig_has_secret: bool,
    pub sig_tolerance: String,
    pub sig_enforce: bool,
    pub sig_header: String,
    pub sig_encoding: String,
    pub sig_prefix: String,
    pub sig_timestamp_header: String,
    pub resp_status: String,
    pub resp_headers: String,
    pub resp_body: String,
    pub resp_delay: String,
    pub resp_sequence: String,
    pub notify_url: String,
    pub mirror: String,
    pub ordered: bool,
    pub max_in_flight: String,
    pub max_queue_depth: String,
    pub ping_on_activate: bool,
}

impl FormValues {
    fn of(ep: &Endpoint) -> FormValues {
        let sig_json = ep
            .signature
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok());
        let sig = sig_json.as_ref().and_then(Value::as_object);
        let sig_str = |k: &str| {
            sig.and_then(|o| o.get(k))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default()
        };
        FormValues {
            slug: ep.slug.to_string(),
            name: ep.name.clone(),
            status: ep.status.as_str().to_string(),
            status_was: ep.status.as_str().to_string(),
            target: ep.target.clone().unwrap_or_default(),
            mode: mode_str(ep.mode).to_string(),
            timeout_ms: ep.timeout_ms.to_string(),
            failure_threshold: ep.failure_threshold.to_string(),
            success_codes: Vec::<String>::from(ep.success_codes.clone()).join(", "),
            retry: ep.retry.join(", "),
            sig_scheme: sig_str("scheme"),
            sig_has_secret: ep
                .signature
                .as_ref()
                .is_some_and(|c| !c.secrets().is_empty()),
            sig_tolerance: sig_str("tolerance_s"),
            sig_enforce: sig
                .and_then(|o| o.get("enforce"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            sig_header: sig_str("header"),
            sig_encoding: sig_str("encoding"),
            sig_prefix: sig_str("prefix"),
            sig_timestamp_header: sig_str("timestamp_header"),
            resp_status: ep.response.status.to_string(),
            resp_headers: ep
                .response
                .headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            resp_body: ep.response.body.clone(),
            resp_delay: ep.response.delay_ms.to_string(),
            resp_sequence: ep
                .response
                .sequence
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            notify_url: ep.notify_url.clone().unwrap_or_default(),
            mirror: ep.mirror.clone().unwrap_or_default(),
            ordered: ep.ordered,
            max_in_flight: ep.max_in_flight.to_string(),
            max_queue_depth: ep.max_queue_depth.to_string(),
            ping_on_activate: ep.ping_on_activate,
        }
    }

    fn from_form(f: &CsrfForm) -> FormValues {
        FormValues {
            slug: f.get("slug").to_string(),
            name: f.get("name").to_string(),
            status: f.get("status").to_string(),
            status_was: f.get("status_was").to_string(),
            target: f.get("target").to_string(),
            mode: f.get("mode").to_string(),
            timeout_ms: f.get("timeout_ms").to_string(),
            failure_threshold: f.get("failure_threshold").to_string(),
            success_codes: f.get("success_codes").to_string(),
            retry: f.get("retry").to_string(),
            sig_scheme: f.get("sig_scheme").to_string(),
            sig_has_secret: false,
            sig_tolerance: f.get("sig_tolerance").to_string(),
            sig_enforce: f.has("sig_enforce"),
            sig_header: f.get("sig_header").to_string(),
            sig_encoding: f.get("sig_encoding").to_string(),
            sig_prefix: f.raw("sig_prefix").to_string(),
            sig_timestamp_header: f.get("sig_timestamp_header").to_string(),
            resp_status: f.get("resp_status").to_string(),
            resp_headers: f.raw("resp_headers").to_string(),
            resp_body: f.raw("resp_body").to_string(),
            resp_delay: f.get("resp_delay").to_string(),
            resp_sequence: f.get("resp_sequence").to_string(),
            notify_url: f.get("notify_url").to_string(),
            mirror: f.get("mirror").to_string(),
            ordered: f.has("ordered"),
            max_in_flight: f.get("max_in_flight").to_string(),
            max_queue_depth: f.get("max_queue_depth").to_string(),
            ping_on_activate: f.has("ping_on_activate"),
        }
    }
}

/// A validation message tied to the form field it is about.
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The field a validation message names: messages start with the field
/// (`"target: …"`, `"signature.scheme: …"`, `"invalid slug …"`).
fn field_of(message: &str) -> String {
    if message.starts_with("invalid slug") {
        return "slug".into();
    }
    let head = message.split(':').next().unwrap_or("");
    let head = head.split(['.', '[']).next().unwrap_or("").trim();
    let known = [
        "slug",
        "name",
        "status",
        "target",
        "mode",
        "timeout_ms",
        "failure_threshold",
        "success_codes",
        "retry",
        "signature",
        "response",
        "notify_url",
        "mirror",
        "max_in_flight",
        "max_queue_depth",
        "ordered",
        "ping_on_activate",
    ];
    if known.contains(&head) {
        head.to_string()
    } else {
        String::new()
    }
}

#[derive(Template)]
#[template(path = "endpoint_form.html")]
struct FormPage {
    layout: Layout,
    is_new: bool,
    v: FormValues,
    errors: Vec<FieldError>,
    schemes: Vec<&'static str>,
    /// Edit page only: the endpoint as it is now, and its recent events.
    row: Option<EndpointRow>,
    history: Vec<super::events::EventRow>,
    /// Where the card's action forms return to.
    back_url: String,
    chart_width: u32,
    chart_height: u32,
}

/// Text an admin typed, for display: bidirectional controls shown.
fn visible(s: &str) -> String {
    crate::text::visible(s).into_owned()
}

impl FormPage {
    /// The page's heading: the name as shown, not as it would reorder.
    fn title(&self) -> String {
        visible(&self.v.name)
    }

    /// The message for `field`, if the last submission was refused for it.
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    fn scheme_selected(&self, s: &str) -> bool {
        self.v.sig_scheme == s
    }

    /// Messages not tied to a field.
    fn general_errors(&self) -> Vec<&str> {
        self.errors
            .iter()
            .filter(|e| e.field.is_empty())
            .map(|e| e.message.as_str())
            .collect()
    }
}

fn form_page(ctx: &Ctx, is_new: bool, v: FormValues, errors: Vec<FieldError>) -> FormPage {
    let title = if is_new {
        "New endpoint".to_string()
    } else {
        format!("Endpoint {}", v.slug)
    };
    let back_url = if is_new {
        "/".to_string()
    } else {
        format!("/endpoints/{}", v.slug)
    };
    FormPage {
        layout: ctx.layout(title, "endpoints"),
        is_new,
        v,
        errors,
        schemes: crate::signature::SCHEMES.to_vec(),
        row: None,
        history: Vec::new(),
        back_url,
        chart_width: chart::WIDTH,
        chart_height: chart::HEIGHT,
    }
}

pub async fn new_form(ctx: Ctx) -> Response {
    let defaults = Endpoint::new(
        crate::endpoint::Slug::parse("new").expect("valid slug"),
        now_ms(),
    );
    let mut v = FormValues::of(&defaults);
    v.slug.clear();
    v.name.clear();
    ctx.page(StatusCode::OK, &form_page(&ctx, true, v, Vec::new()))
}

pub async fn edit_form(
    State(st): State<AdminState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let ep = st.relay.get(&slug)?;
    let mut page = form_page(&ctx, false, FormValues::of(&ep), Vec::new());
    fill_edit_page(&st, &ctx, &mut page, ep).await?;
    Ok(ctx.page(StatusCode::OK, &page))
}

async fn fill_edit_page(
    st: &AdminState,
    ctx: &Ctx,
    page: &mut FormPage,
    ep: Endpoint,
) -> Result<(), Error> {
    let slug = ep.slug.to_string();
    page.row = rows(st, ctx, vec![ep]).await?.pop();
    let filter = EventFilter {
        endpoint: Some(slug),
        limit: HISTORY_ROWS,
        ..Default::default()
    };
    let events = st.relay.store.run(move |s| s.query(&filter)).await?.events;
    let now = now_ms();
    page.history = events
        .iter()
        .map(|e| super::events::EventRow::new(e, now))
        .collect();
    Ok(())
}

/// Turns the submitted form into an [`EndpointInput`]. `current` is the
/// endpoint being edited (its secret is kept unless a new one is typed).
fn input_of(f: &CsrfForm, current: Option<&Endpoint>) -> Result<EndpointInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    let opt = |s: &str| {
        if s.is_empty() {
            None
        } else {
            Some(s.to_string())
        }
    };
    let list = |s: &str| -> Vec<String> {
        s.split([',', ' ', '\n', '\r', '\t'])
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut number = |field: &str, value: &str, what: &str| -> Option<u64> {
        if value.is_empty() {
            return None;
        }
        match value.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                err(field, format!("{field}: {value:?} is not {what}"));
                None
            }
        }
    };
    let timeout_ms = number(
        "timeout_ms",
        f.get("timeout_ms"),
        "a whole number of milliseconds",
    );
    let failure_threshold = number(
        "failure_threshold",
        f.get("failure_threshold"),
        "a whole number",
    );
    let max_in_flight = number(
        "max_in_flight",
        f.get("max_in_flight"),
        "a whole number of deliveries",
    );
    let max_queue_depth = number(
        "max_queue_depth",
        f.get("max_queue_depth"),
        "a whole number of events",
    );
    let tolerance = number(
        "signature",
        f.get("sig_tolerance"),
        "a whole number of seconds (tolerance)",
    );
    let resp_status = number(
        "response",
        f.get("resp_status"),
        "an HTTP status (response status)",
    );
    let resp_delay = number(
        "response",
        f.get("resp_delay"),
        "a whole number of milliseconds (response delay)",
    );
    let mut sequence = Vec::new();
    for s in list(f.get("resp_sequence")) {
        match s.parse::<u16>() {
            Ok(n) => sequence.push(n),
            Err(_) => err(
                "response",
                format!("response: sequence entry {s:?} is not an HTTP status"),
            ),
        }
    }
    let mut resp_headers = Vec::new();
    for line in f
        .raw("resp_headers")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match crate::endpoint::parse_header_line(line) {
            Some(h) => resp_headers.push(h),
            None => err(
                "response",
                format!("response: header line {line:?} needs the form \"Name: value\""),
            ),
        }
    }
    let mode = match f.get("mode") {
        "" | "forward" => Mode::Forward,
        "queue" => Mode::Queue,
        other => {
            err("mode", format!("mode: {other:?} is not forward or queue"));
            Mode::Forward
        }
    };
    // The status the page showed is sent beside the select: only a change
    // made on the page is applied, so saving a rename does not undo a
    // pause or a disable that happened while the page was open.
    let status_was = f.get("status_was");
    let status = match f.get("status") {
        "" => None,
        s if !status_was.is_empty() && s == status_was => None,
        "active" => Some(Status::Active),
        "paused" => Some(Status::Paused),
        "disabled" => Some(Status::Disabled),
        other => {
            err(
                "status",
                format!("status: {other:?} is not active, paused or disabled"),
            );
            None
        }
    };

    // Signature: what the form shows, as an edit; what it does not show (a
    // `secrets` list, `legacy_sha1`) stays as stored where it fits the
    // scheme (see `SignaturePatch`).
    let scheme = f.get("sig_scheme");
    let signature = (!scheme.is_empty()).then(|| {
        // hmac-sha256's own fields only for it: switching another scheme
        // in drops them, whatever the (hidden) inputs still hold.
        let generic = scheme == "hmac-sha256";
        let field = |name: &str, raw: bool| {
            let v = if raw { f.raw(name) } else { f.get(name) };
            if generic { opt(v) } else { None }
        };
        let secret = f.raw("sig_secret");
        SignaturePatch {
            scheme: Some(scheme.to_string()),
            secret: (!secret.is_empty()).then(|| secret.to_string()),
            tolerance_s: Some(tolerance.unwrap_or(crate::signature::DEFAULT_TOLERANCE_S)),
            enforce: Some(f.has("sig_enforce")),
            header: Some(field("sig_header", false)),
            encoding: Some(field("sig_encoding", false)),
            // Taken as typed: a prefix may end in a space.
            prefix: Some(field("sig_prefix", true)),
            timestamp_header: Some(field("sig_timestamp_header", false)),
            ..SignaturePatch::default()
        }
    });

    if !errors.is_empty() {
        return Err(errors);
    }
    let defaults = ResponseSpec::default();
    let name = f.get("name");
    Ok(EndpointInput {
        slug: opt(f.get("slug")),
        name: if name.is_empty() && current.is_none() {
            None
        } else {
            Some(name.to_string())
        },
        status,
        target: Some(opt(f.get("target"))),
        mode: Some(mode),
        timeout_ms,
        failure_threshold: failure_threshold.map(|n| n.min(u32::MAX as u64) as u32),
        success_codes: Some(list(f.get("success_codes")))
            .filter(|l| !l.is_empty() || current.is_some()),
        retry: Some(list(f.get("retry"))).filter(|l| !l.is_empty() || current.is_some()),
        signature: Some(signature),
        response: Some(ResponseSpec {
            status: resp_status
                .map(|n| n.min(u16::MAX as u64) as u16)
                .unwrap_or(defaults.status),
            headers: resp_headers,
            body: form_text(
                f.raw("resp_body"),
                current.map(|ep| ep.response.body.as_str()),
            ),
            delay_ms: resp_delay.unwrap_or(0),
            sequence,
        }),
        notify_url: Some(opt(f.get("notify_url"))),
        mirror: if current.is_none() && f.get("mirror").is_empty() {
            None
        } else {
            Some(opt(f.get("mirror")))
        },
        // Out of range for the field's type: still refused with the
        // relay's message, which names the field and its limits.
        max_in_flight: max_in_flight.map(|n| n.min(u32::MAX as u64) as u32),
        max_queue_depth,
        // Checkboxes: an unchecked box is absent from the form.
        ordered: Some(f.has("ordered")),
        ping_on_activate: Some(f.has("ping_on_activate")),
    })
}

const PING_NOTE: &str = " A test ping is on its way to the target (ping on activate).";

fn refused(e: Error) -> Result<Vec<FieldError>, PageError> {
    match e {
        Error::BadRequest(m) | Error::Unprocessable(m) | Error::Conflict(m) => {
            Ok(vec![FieldError {
                field: field_of(&m),
                message: m,
            }])
        }
        other => Err(other.into()),
    }
}

pub async fn create(
    State(st): State<AdminState>,
    ctx: Ctx,
    form: CsrfForm,
) -> Result<Response, PageError> {
    let errors = match input_of(&form, None) {
        Ok(input) => match st.relay.create(input, false).await {
            Ok(ep) => {
                let to = format!("/endpoints/{}", ep.slug);
                let ping = if st.relay.ping_if_activated(None, &ep) {
                    PING_NOTE
                } else {
                    ""
                };
                return Ok(redirect_with(
                    &to,
                    "ok",
                    &format!("Created endpoint {}.{ping}", ep.slug),
                ));
            }
            Err(e) => refused(e)?,
        },
        Err(errors) => errors,
    };
    let page = form_page(&ctx, true, FormValues::from_form(&form), errors);
    Ok(ctx.page(StatusCode::BAD_REQUEST, &page))
}

pub async fn update(
    State(st): State<AdminState>,
    ctx: Ctx,
    Path(slug): Path<String>,
    form: CsrfForm,
) -> Result<Response, PageError> {
    let current = st.relay.get(&slug)?;
    let errors = match input_of(&form, Some(&current)) {
        Ok(mut input) => {
            input.slug = None;
            match st.relay.update(&slug, input).await {
                Ok(ep) => {
                    let ping = if st.relay.ping_if_activated(Some(current.status), &ep) {
                        PING_NOTE
                    } else {
                        ""
                    };
                    return Ok(redirect_with(
                        &format!("/endpoints/{slug}"),
                        "ok",
                        &format!("Saved.{ping}"),
                    ));
                }
                Err(e) => refused(e)?,
            }
        }
        Err(errors) => errors,
    };
    let mut v = FormValues::from_form(&form);
    v.slug = slug;
    v.sig_has_secret = FormValues::of(&current).sig_has_secret;
    let mut page = form_page(&ctx, false, v, errors);
    fill_edit_page(&st, &ctx, &mut page, current).await?;
    Ok(ctx.page(StatusCode::BAD_REQUEST, &page))
}

/// Where an action's redirect goes: back to the page the form was on.
fn back(form: &CsrfForm) -> String {
    super::security::safe_next(form.get("back")).to_string()
}

pub async fn pause(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
    form: CsrfForm,
) -> Response {
    match st.relay.set_status(&slug, Status::Paused).await {
        Ok(_) => redirect_with(
            &back(&form),
            "ok",
            &format!("Paused {slug}: new events are stored as held and the sender gets 202."),
        ),
        Err(e) => redirect_with(&back(&form), "error", &e.public_message()),
    }
}

pub async fn resume(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
    form: CsrfForm,
) -> Response {
    let before = st.relay.get(&slug).ok().map(|e| e.status);
    let res = st.relay.set_status(&slug, Status::Active).await;
    let ping = match &res {
        Ok(ep) if before.is_some() && st.relay.ping_if_activated(before, ep) => PING_NOTE,
        _ => "",
    };
    let held = st.relay.store.run({
        let slug = slug.clone();
        move |s| s.counts(&slug)
    });
    // Resuming an endpoint that is active already changes nothing.
    let done = match before {
        Some(Status::Active) => format!("{slug} was active already; nothing changed."),
        _ => format!("Resumed {slug}; the failure count is reset."),
    };
    match (res, held.await) {
        (Ok(_), Ok(c)) if c.held > 0 => redirect_with(
            &back(&form),
            "ok",
            &format!("{done} {} held events can be released now.{ping}", c.held),
        ),
        (Ok(_), _) => redirect_with(&back(&form), "ok", &format!("{done}{ping}")),
        (Err(e), _) => redirect_with(&back(&form), "error", &e.public_message()),
    }
}

pub async fn release(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
    form: CsrfForm,
) -> Response {
    match st.relay.release(&slug).await {
        Ok(r) => {
            let mut text = if r.queued > 0 {
                format!(
                    "Released {} held events of {slug} back into the queue; they are delivered in the background.",
                    r.released
                )
            } else {
                format!(
                    "Released {} held events of {slug}: {} delivered, {} failed.",
                    r.released, r.delivered, r.failed
                )
            };
            if r.still_held > 0 {
                text.push_str(&format!(
                    " The endpoint was disabled again during the release; {} are still held.",
                    r.still_held
                ));
            }
            let kind = if r.failed > 0 || r.still_held > 0 {
                "error"
            } else {
                "ok"
            };
            redirect_with(&back(&form), kind, &text)
        }
        Err(e) => redirect_with(&back(&form), "error", &e.public_message()),
    }
}

/// Sends a signed `hookrelay.ping` event to the endpoint's target now and
/// says what came back; the flash links to the ping's event.
pub async fn ping(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
    form: CsrfForm,
) -> Response {
    match st.relay.ping(&slug).await {
        Ok((ev, a)) => {
            let verdict = if a.success { "succeeded" } else { "failed" };
            let text = format!("Test ping to {} {verdict}: {}.", a.url, super::outcome(&a));
            let link = format!("/events/{}?attempt={}#attempt-{}", ev.id, a.n, a.n);
            redirect_with_link(
                &back(&form),
                if a.success { "ok" } else { "error" },
                &text,
                Some(&link),
            )
        }
        Err(e) => redirect_with(
            &back(&form),
            "error",
            &format!("Test ping for {slug} refused: {}", e.public_message()),
        ),
    }
}

#[derive(Template)]
#[template(path = "endpoint_delete.html")]
struct DeletePage {
    layout: Layout,
    row: EndpointRow,
}

pub async fn delete_confirm(
    State(st): State<AdminState>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let ep = st.relay.get(&slug)?;
    let row = rows(&st, &ctx, vec![ep])
        .await?
        .pop()
        .ok_or_else(|| Error::NotFound(format!("no endpoint {slug:?}")))?;
    let page = DeletePage {
        layout: ctx.layout(format!("Delete {slug}?"), "endpoints"),
        row,
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

pub async fn delete(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
    form: CsrfForm,
) -> Result<Response, PageError> {
    if form.get("confirm") != slug {
        return Ok(redirect_with(
            &format!("/endpoints/{slug}/delete"),
            "error",
            "Type the endpoint's slug to confirm the deletion.",
        ));
    }
    st.relay.delete(&slug).await?;
    Ok(redirect_with(
        "/",
        "ok",
        &format!("Deleted endpoint {slug}. Its stored events are kept."),
    ))
}

#[cfg(test)]
mod tests {
    use super::form_text;

    /// Saving the form unchanged keeps the stored bytes (CRLF or not); a
    /// new text gets LF line breaks, not the browser's CRLF.
    #[test]
    fn textarea_line_breaks() {
        assert_eq!(form_text("\r\n\r\nx\r\n", Some("\n\nx\n")), "\n\nx\n");
        assert_eq!(form_text("a\r\nb", Some("a\r\nb")), "a\r\nb");
        assert_eq!(form_text("a\r\nc", Some("a\nb")), "a\nc");
        assert_eq!(form_text("a\r\nb", None), "a\nb");
        let stored = "\n\nline1\r\nline2\rlone\n";
        assert_eq!(
            form_text("\r\n\r\nline1\r\nline2\r\nlone\r\n", Some(stored)),
            stored
        );
    }
}
