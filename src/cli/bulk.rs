//! `hookrelay replay --filter …`: starts a bulk replay job and follows its
//! progress — a progress bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::RemoteArgs;
use super::remote::{Remote, path_segment};

/// How often progress is read from the server.
const POLL: Duration = Duration::from_millis(250);
/// How long hookrelay may be away (restarting) before following the job
/// gives up; the job itself resumes on the server after a restart.
const AWAY_MAX: Duration = Duration::from_secs(120);

pub async fn run(
    r: &Remote,
    args: &RemoteArgs,
    filter: &[String],
    dry_run: bool,
    rate: Option<f64>,
    to: Option<String>,
    resign: bool,
) -> Result<ExitCode, String> {
    let mut body = Map::new();
    for f in filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("--filter {f:?}: expected key=value"))?;
        body.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    body.insert("dry_run".into(), dry_run.into());
    if let Some(rate) = rate {
        // JSON has no infinity or NaN: they would go out as null, no limit.
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "--rate {rate}: must be a number of events per second above 0 (at most 10000)"
            ));
        }
        body.insert("rate".into(), json!(rate));
    }
    body.insert(
        "target".into(),
        to.map(Value::String).unwrap_or(Value::Null),
    );
    body.insert("resign".into(), resign.into());
    let v = r
        .send("POST", "/api/replay", Some(Value::Object(body.clone())))
        .await?;
    let matched = if dry_run { &v["count"] } else { &v["total"] };
    if matched.as_u64() == Some(0) {
        let slug = body.get("endpoint").and_then(Value::as_str);
        super::note_unknown_endpoint(r, slug).await;
    }
    if dry_run {
        if args.json {
            say!("{v}");
        } else {
            let first = v["first_ids"].as_array().map_or(0, Vec::len);
            let count = v["count"].as_u64().unwrap_or(0);
            // A job with this filter would be refused: say why first.
            if let Some(why) = v["refusal"].as_str() {
                say!("no job can take this filter: {why}");
            }
            let (count, oldest) = if v["more_than_max"] == true {
                (format!("more than {count}"), "the oldest counted")
            } else if v["scan_capped"] == true {
                (format!("at least {count}"), "the oldest found")
            } else {
                (count.to_string(), "the oldest")
            };
            match first {
                n if n > 0 && count != n.to_string() => say!("{count} events match; {oldest} {n}:"),
                _ => say!("{count} events match"),
            }
            for id in v["first_ids"].as_array().into_iter().flatten() {
                say!("  {}", id.as_str().unwrap_or(""));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let job = v["id"].as_str().unwrap_or_default().to_string();
    let total = v["total"].as_u64().unwrap_or(0);
    let terminal = std::io::stderr().is_terminal() && !args.json;
    let bar = terminal.then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} sent  {msg}  ({elapsed}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    if !args.json {
        // Also above the bar: the job goes on on the server if this stops,
        // and its id is how to follow or cancel it.
        say!("job {job}: {total} events (follow: GET /api/replay/{job}; cancel: DELETE it)");
    }
    let path = format!("/api/replay/{}", path_segment(&job));
    let mut last_sent = u64::MAX;
    let mut last_msg = String::new();
    let mut away_since: Option<std::time::Instant> = None;
    let final_state = loop {
        let Some(s) = r.get_unless_away(&path).await? else {
            let since = *away_since.get_or_insert_with(|| {
                eprintln!(
                    "hookrelay is away (restarting?); job {job} goes on there when it is back: waiting up to {} s",
                    AWAY_MAX.as_secs()
                );
                std::time::Instant::now()
            });
            if since.elapsed() >= AWAY_MAX {
                return Err(format!(
                    "hookrelay stayed away {} s; job {job} goes on when it is back (GET /api/replay/{job})",
                    AWAY_MAX.as_secs()
                ));
            }
            tokio::time::sleep(POLL.max(Duration::from_secs(1))).await;
            continue;
        };
        if away_since.take().is_some() {
            eprintln!("hookrelay is back; following job {job}");
        }
        let sent = s["sent"].as_u64().unwrap_or(0);
        let mut msg = format!("{} ok, {} failed", s["succeeded"], s["failed"]);
        if let Some(w) = s["waiting"].as_str() {
            msg = super::printable(&format!("{msg}; waiting: {w}")).into_owned();
        }
        match &bar {
            Some(b) => {
                b.set_position(sent);
                b.set_message(msg.clone());
            }
            None if !args.json && (sent, &msg) != (last_sent, &last_msg) => {
                say!("{sent}/{total} sent, {msg}")
            }
            None => {}
        }
        last_sent = sent;
        last_msg = msg;
        // A cancelled job may still count the replay it had in flight
        // until `finished_at` is set.
        if matches!(s["status"].as_str(), Some("done" | "cancelled")) && !s["finished_at"].is_null()
        {
            break s;
        }
        tokio::time::sleep(POLL).await;
    };
    if let Some(b) = bar {
        // Cleared, so the summary below gets a line of its own.
        b.finish_and_clear();
    }
    if args.json {
        say!("{final_state}");
    } else {
        let already = final_state["already_delivered"].as_u64().unwrap_or(0);
        say!(
            "job {job} {}: {} sent, {} succeeded, {} failed{}",
            final_state["status"].as_str().unwrap_or(""),
            final_state["sent"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(already),
            final_state["succeeded"],
            final_state["failed"],
            match already {
                0 => String::new(),
                n => format!(
                    " ({n} of the succeeded were delivered meanwhile by a release, the queue or by hand, and not sent again)"
                ),
            }
        );
    }
    if let Some(e) = final_state["last_error"].as_str() {
        // The latest event that could not be sent, or was sent without the
        // fresh signature asked for.
        eprintln!("{}", super::printable(&format!("last problem: {e}")));
    }
    let cancelled = final_state["status"] == json!("cancelled");
    Ok(if final_state["failed"] == json!(0) && !cancelled {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
