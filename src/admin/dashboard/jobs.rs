//! Bulk replay jobs: the list (`/replay`), one job's page (`/replay/{job}`)
//! with its progress, which the script refreshes from `GET
//! /api/replay/{job}` (a Refresh link does it without JavaScript), and the
//! Cancel form. Jobs are started from the events page ("Replay all
//! matching", see [`super::events::bulk_replay`]).

use super::PagePath as Path;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{CsrfForm, Ctx, Layout, PageError, ago, query_string, redirect_with};
use crate::admin::AdminState;
use crate::replay::{Job, JobStatus};
use crate::time::{now_ms, rfc3339_ms};

/// Jobs listed under the current one.
const RECENT_JOBS: usize = 20;

/// A job as the pages show it.
pub struct JobView {
    pub id: String,
    pub status: &'static str,
    /// Queued or running: it can still be cancelled.
    pub active: bool,
    pub total: usize,
    pub sent: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Of `succeeded`: delivered meanwhile by something else, not sent.
    pub already_delivered: usize,
    pub queued: usize,
    /// Left unsent by a cancel.
    pub skipped: usize,
    /// `max` of the progress bar (at least 1).
    pub progress_max: usize,
    pub created_at: String,
    pub created_ago: String,
    pub finished_at: Option<String>,
    /// The filter the job was made from, sorted by name.
    pub filter: Vec<(String, String)>,
    /// The events page with that filter.
    pub filter_url: String,
    pub last_error: Option<String>,
    /// Why it sends nothing now (its endpoint is paused or disabled).
    pub waiting: Option<String>,
    pub target: Option<String>,
    pub rate: Option<String>,
    pub resign: bool,
}

pub fn status_str(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Done => "done",
        JobStatus::Cancelled => "cancelled",
    }
}

impl JobView {
    pub fn new(j: &Job, now: u64) -> JobView {
        let mut filter: Vec<(String, String)> = j
            .filter
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        filter.sort();
        // A job may take more than a page holds (`limit` up to its cap):
        // the link then lists all that match, newest first.
        let pairs: Vec<(&str, &str)> = filter
            .iter()
            .filter(|(k, v)| k != "limit" || v.parse::<usize>().is_ok_and(|n| n <= 1000))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let q = query_string(&pairs);
        JobView {
            id: j.id.clone(),
            status: status_str(j.status),
            active: !j.status.finished(),
            total: j.total,
            sent: j.sent,
            succeeded: j.succeeded,
            failed: j.failed,
            already_delivered: j.already_delivered,
            queued: j.queued(),
            skipped: j.skipped(),
            progress_max: j.total.max(1),
            created_at: rfc3339_ms(j.created_at),
            created_ago: ago(j.created_at, now),
            finished_at: j.finished_at.map(rfc3339_ms),
            filter_url: if q.is_empty() {
                "/events".into()
            } else {
                format!("/events?{q}")
            },
            filter,
            last_error: j.last_error.clone(),
            waiting: j.waiting.clone(),
            target: j.target.clone(),
            rate: j.rate.map(|r| format!("{r}")),
            resign: j.resign,
        }
    }
}

/// The newest `n` jobs of this process (and those a restart found).
pub fn recent(st: &AdminState, now: u64, n: usize) -> Vec<JobView> {
    st.relay
        .jobs
        .list()
        .iter()
        .take(n)
        .map(|j| JobView::new(j, now))
        .collect()
}

#[derive(Template)]
#[template(path = "replay_job.html")]
struct JobPage {
    layout: Layout,
    /// None on the list page.
    job: Option<JobView>,
    jobs: Vec<JobView>,
}

pub async fn list(State(st): State<AdminState>, ctx: Ctx) -> Response {
    let page = JobPage {
        layout: ctx.layout("Replay jobs", "events"),
        job: None,
        jobs: recent(&st, now_ms(), RECENT_JOBS),
    };
    ctx.page(StatusCode::OK, &page)
}

pub async fn show(
    State(st): State<AdminState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let now = now_ms();
    let job = JobView::new(&st.relay.jobs.get(&id)?, now);
    let page = JobPage {
        layout: ctx.layout(format!("Replay job {}", job.id), "events"),
        jobs: recent(&st, now, RECENT_JOBS)
            .into_iter()
            .filter(|j| j.id != job.id)
            .collect(),
        job: Some(job),
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

pub async fn cancel(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    _form: CsrfForm,
) -> Response {
    let was_active = st.relay.jobs.get(&id).is_ok_and(|j| !j.status.finished());
    match crate::replay::cancel(&st.relay, &id).await {
        Ok(j) if was_active => redirect_with(
            &format!("/replay/{}", j.id),
            "ok",
            &format!(
                "Cancelled replay job {} after {} of {} events ({} succeeded, {} failed).",
                j.id, j.sent, j.total, j.succeeded, j.failed
            ),
        ),
        Ok(j) => redirect_with(
            &format!("/replay/{}", j.id),
            "error",
            &format!(
                "Replay job {} had already ended ({}); nothing to cancel.",
                j.id,
                status_str(j.status)
            ),
        ),
        Err(e) => redirect_with("/replay", "error", &e.public_message()),
    }
}
