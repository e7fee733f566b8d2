//! `GET /api/v1/ota/rollouts/{id}/events`: a live Server-Sent Events stream of a rollout —
//! its outbox events so far (after `Last-Event-ID`, when given), then every new event and
//! every device's progress step as it happens. And the outbox publisher: with `--nats`, every
//! committed event goes to NATS at least once (its id in `Nats-Msg-Id`), marked published only
//! after the server acknowledged the flush; an event is never lost because NATS was down.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::auth::Admin;
use crate::engine;
use crate::error::ApiResult;
use crate::state::{AppState, LiveEvent};

/// `(seq, idx)` of an outbox event id `rollout:seq:idx`.
fn position(id: &str) -> Option<(u64, u64)> {
    let mut it = id.rsplitn(3, ':');
    let idx = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    Some((seq, idx))
}

fn sse(e: &LiveEvent) -> Event {
    Event::default()
        .id(e.id.clone())
        .event(e.subject.clone())
        .data(e.payload.to_string())
}

/// The stream.
pub async fn stream(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    engine::lookup(&st, admin.tenant.as_str(), &id).await?;
    // Subscribe first, then read the outbox: nothing falls between the two.
    let live = BroadcastStream::new(st.events.subscribe());
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(position);
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT event_id, subject, payload FROM outbox WHERE rollout_id = $1 ORDER BY seq, idx",
    )
    .bind(id.clone())
    .fetch_all(&st.db)
    .await?;
    let mut last = after;
    let mut past = Vec::new();
    for (event_id, subject, payload) in rows {
        let pos = position(&event_id);
        if after.is_some() && pos <= after {
            continue;
        }
        last = last.max(pos);
        past.push(LiveEvent {
            tenant: admin.tenant.to_string(),
            rollout_id: id.clone(),
            id: event_id,
            subject,
            payload: serde_json::from_str(&payload).unwrap_or_default(),
        });
    }
    let tenant = admin.tenant.to_string();
    let rid = id.clone();
    let live = live.filter_map(move |m| {
        let keep = match m {
            Ok(e) if e.tenant == tenant && e.rollout_id == rid => {
                // Skip what the outbox read already gave.
                match position(&e.id) {
                    Some(p) if Some(p) <= last => None,
                    _ => Some(e),
                }
            }
            _ => None,
        };
        async move { keep.map(|e| Ok(sse(&e))) }
    });
    let past = stream::iter(past.into_iter().map(|e| Ok(sse(&e))));
    Ok(Sse::new(past.chain(live)).keep_alive(KeepAlive::default()))
}

/// Publishes the outbox to NATS, in commit order, until the server stops.
pub async fn publish_outbox(st: AppState, url: String) {
    let client = match async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url.as_str())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%url, error = %e, "--nats: cannot connect; events stay in the outbox");
            return;
        }
    };
    loop {
        let rows: Vec<(String, String, String)> = match sqlx::query_as(
            "SELECT event_id, subject, payload FROM outbox WHERE published_at IS NULL \
             ORDER BY created_at, rollout_id, seq, idx LIMIT 256",
        )
        .fetch_all(&st.db)
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "outbox read failed");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if rows.is_empty() {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), st.outbox.notified()).await;
            continue;
        }
        let mut sent = Vec::new();
        for (id, subject, payload) in rows {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            if client
                .publish_with_headers(subject, headers, payload.into())
                .await
                .is_err()
            {
                break;
            }
            sent.push(id);
        }
        let flushed = tokio::time::timeout(std::time::Duration::from_secs(5), client.flush()).await;
        if !matches!(flushed, Ok(Ok(()))) {
            // Not acknowledged: published again later (at least once; the id de-duplicates).
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        let at = crate::db::i(crate::state::now().get());
        for id in sent {
            if let Err(e) = sqlx::query("UPDATE outbox SET published_at = $1 WHERE event_id = $2")
                .bind(at)
                .bind(id)
                .execute(&st.db)
                .await
            {
                tracing::warn!(error = %e, "marking an event published failed; it goes again");
            }
        }
    }
}
