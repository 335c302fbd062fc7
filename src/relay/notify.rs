//! What a disable sets off: the log line, the metric, and the
//! `endpoint.disabled` POST to the endpoint's `notify_url`, retried a few
//! times in the background.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Uri};

use super::Relay;
use super::outbound::add_via;
use crate::deliver::{self, Outbound};
use crate::endpoint::Endpoint;

/// The pauses after each failed try of a disable notification: four
/// tries over about a minute and a half (a chat service's blip, a restart
/// of the receiving side), then an error in the log.
const NOTIFY_RETRY: [Duration; 4] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::ZERO,
];

impl Relay {
    pub(super) fn on_disabled(&self, ep: Endpoint) {
        self.on_status_change();
        self.metrics
            .endpoints_disabled
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            endpoint = %ep.slug,
            reason = ep.disabled_reason.as_deref().unwrap_or(""),
            "endpoint disabled by the failure policy"
        );
        self.notify_disabled(&ep, false);
    }

    /// POSTs `endpoint.disabled` to the endpoint's `notify_url`, if any, in
    /// the background: by the policy or by hand, the owner wants to know.
    pub(super) fn notify_disabled(&self, ep: &Endpoint, by_hand: bool) {
        let Some(url) = ep.notify_url.clone() else {
            return;
        };
        let Ok(uri) = url.parse::<Uri>() else { return };
        let client = self.client.clone();
        let body = serde_json::json!({
            "type": "endpoint.disabled",
            "endpoint": ep.slug,
            "name": ep.name,
            "target": ep.target,
            "reason": ep.disabled_reason,
            "disabled_at": ep.disabled_at.map(crate::time::rfc3339_ms),
            "consecutive_failures": ep.consecutive_failures,
            // Chat incoming webhooks (Slack, Mattermost, Rocket.Chat) post
            // `text` and refuse a body without it.
            // Nothing a sender chose (the reason names the URL tried, path
            // and query included) and no target path (it may hold a
            // secret): chats render links and @-mentions.
            "text": format!(
                "hookrelay: endpoint \"{}\" is disabled{}. Its events are held until it is resumed and released.",
                ep.slug.as_str(),
                match (by_hand, ep.consecutive_failures, ep.target.as_deref().and_then(|t| t.parse::<Uri>().ok())) {
                    (true, _, _) => " by hand".to_string(),
                    (false, n, t) => format!(
                        " after {n} failed {} in a row to {}",
                        if n == 1 { "delivery" } else { "deliveries" },
                        t.as_ref().and_then(|t| t.host()).unwrap_or("its target")
                    ),
                },
            ),
        });
        let body = Bytes::from(body.to_string());
        // Chat and ops URLs carry their secret in the path: logs name the
        // host only.
        let host = uri.host().unwrap_or_default().to_string();
        let slug = ep.slug.to_string();
        let closing = self.closing.clone();
        let via = self.via_name.clone();
        tokio::spawn(async move {
            for (n, pause) in NOTIFY_RETRY.iter().enumerate() {
                let mut headers = vec![("content-type".into(), b"application/json".to_vec())];
                // A comment no slug can equal: a notice to a bin of this
                // process is no loop (it is sent once, on a disable).
                add_via(&mut headers, &via, Some(&format!("notice for {slug}")));
                let out = Outbound {
                    method: Method::POST,
                    url: uri.clone(),
                    headers,
                    body: body.clone(),
                    timeout: Duration::from_secs(10),
                    answer: deliver::Answer::Prefix(0),
                };
                let why = match client.send(out).await.0 {
                    Ok(r) if (200..300).contains(&r.status) => {
                        tracing::info!(
                            endpoint = slug,
                            host,
                            status = r.status,
                            "disable notification sent"
                        );
                        return;
                    }
                    Ok(r) => format!("HTTP {}", r.status),
                    Err(f) => f.detail,
                };
                tracing::warn!(
                    endpoint = slug,
                    host,
                    error = why,
                    attempt = n + 1,
                    "disable notification failed"
                );
                tokio::select! {
                    _ = tokio::time::sleep(*pause) => {}
                    _ = closing.cancelled() => return,
                }
            }
            tracing::error!(
                endpoint = slug,
                host,
                "disable notification given up; the endpoint stays disabled"
            );
        });
    }
}
