//! `GET /api/v1/ota/rollouts/{id}/events`: a live Server-Sent Events stream of a rollout —
//! its outbox events so far (after `Last-Event-ID`, when given), then every new event and
//! every device's progress step as it happens. Any replica serves it: the replica driving
//! the rollout publishes each committed event the moment it commits, and with several
//! replicas (`--lease-ms`) every stream instead tails the rollout's outbox rows (each
//! rollout's events are committed in `(seq, idx)` order, whichever replica drives it), so a
//! stream on any replica gets every event, in order, within [`TAIL_MS`]. A
//! device's progress step is not stored: it reaches the streams of the replica the device
//! reported to. And the outbox publisher: with `--nats`, every
//! committed event goes to NATS (its id in `Nats-Msg-Id`), marked published once the client
//! has flushed it to the NATS connection (a connection lost at that moment can lose it; NATS
//! was down, it waits), or with `--nats-jetstream` only once a JetStream stream acknowledged
//! storing it: at least once, in commit order.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, LiveEvent, Path};

/// With several replicas, how often a stream reads the rollout's outbox for events another
/// replica committed, in milliseconds.
pub const TAIL_MS: u64 = 250;

/// An outbox row: event id, subject, payload.
type Row = (String, String, String);

/// The rollout's outbox rows after `after` (all when `None`), in order.
async fn rows_after(st: &AppState, rid: &str, after: Option<(u64, u64)>) -> ApiResult<Vec<Row>> {
    let (seq, idx) = after.map_or((-1, -1), |(s, i)| (crate::db::i(s), crate::db::i(i)));
    Ok(sqlx::query_as(
        "SELECT event_id, subject, payload FROM outbox WHERE rollout_id = $1 AND \
         (seq > $2 OR (seq = $2 AND idx > $3)) ORDER BY seq, idx",
    )
    .bind(rid.to_string())
    .bind(seq)
    .bind(idx)
    .fetch_all(&st.db)
    .await?)
}

/// `(seq, idx)` of an outbox event id `ROLLOUT:SEQ:IDX` of rollout `rollout_id`.
fn position(rollout_id: &str, id: &str) -> Option<(u64, u64)> {
    let mut it = id.rsplitn(3, ':');
    let idx: u64 = it.next()?.parse().ok()?;
    let seq: u64 = it.next()?.parse().ok()?;
    let fits = |n: u64| i64::try_from(n).is_ok();
    (it.next()? == rollout_id && fits(seq) && fits(idx)).then_some((seq, idx))
}

/// Where a stream resumes: after the event the `Last-Event-ID` header names (an id this
/// rollout's stream gave); from the start without one (or an empty one).
fn resume_after(rollout_id: &str, headers: &HeaderMap) -> ApiResult<Option<(u64, u64)>> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("\u{fffd}");
    if text.is_empty() {
        return Ok(None);
    }
    position(rollout_id, text).map(Some).ok_or_else(|| {
        let shown: String = text.chars().take(80).collect();
        ApiError::invalid(format!(
            "Last-Event-ID: expected an event id of rollout {rollout_id} \
             ({rollout_id}:SEQ:IDX, as its stream gives them), found {shown:?}"
        ))
    })
}

/// An event of the stream. Only a stored event carries an SSE `id` (`ROLLOUT:SEQ:IDX`): a
/// progress step has no place to resume from, and without an id of its own the client's
/// `Last-Event-ID` stays the last stored event's.
fn sse(e: &LiveEvent) -> Event {
    let event = Event::default()
        .event(e.subject.clone())
        .data(e.payload.to_string());
    if position(&e.rollout_id, &e.id).is_some() {
        event.id(e.id.clone())
    } else {
        event
    }
}

/// The stream.
pub async fn stream(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // Any replica serves the stream: the rollout need not be driven here.
    let owner: Option<(String,)> =
        sqlx::query_as("SELECT tenant FROM rollouts WHERE rollout_id = $1")
            .bind(id.clone())
            .fetch_optional(&st.db)
            .await?;
    if owner.is_none_or(|(t,)| t != admin.tenant.as_str()) {
        return Err(ApiError::not_found(format!("rollout_id: no rollout {id}")));
    }
    // Subscribe first, then read the outbox: nothing falls between the two.
    let live = BroadcastStream::new(st.events.subscribe());
    let after = resume_after(&id, &headers)?;
    let tenant = admin.tenant.to_string();
    let event = {
        let (tenant, rid) = (tenant.clone(), id.clone());
        move |(event_id, subject, payload): Row| LiveEvent {
            tenant: tenant.clone(),
            rollout_id: rid.clone(),
            id: event_id,
            subject,
            payload: serde_json::from_str(&payload).unwrap_or_default(),
        }
    };
    let past: Vec<LiveEvent> = rows_after(&st, &id, after)
        .await?
        .into_iter()
        .map(&event)
        .collect();
    let rid = id.clone();
    let tail = st.config.lease_ms > 0;
    let local = live.filter_map(move |m| {
        let keep = match m {
            // With replicas the stored events come from the outbox alone, in commit order
            // (at a lease handover, this replica's next event may come before the other's
            // last one is read); progress steps are never stored.
            Ok(e) if e.tenant == tenant && e.rollout_id == rid => {
                (!tail || position(&rid, &e.id).is_none()).then_some(e)
            }
            _ => None,
        };
        async move { keep }
    });
    // With replicas, every committed row, read from the outbox.
    let tailed =
        if tail {
            let (st, rid) = (st.clone(), id.clone());
            let start = past.last().and_then(|e| position(&rid, &e.id)).or(after);
            stream::unfold(start, move |from| {
            let (st, rid, event) = (st.clone(), rid.clone(), event.clone());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(TAIL_MS)).await;
                let rows = match rows_after(&st, &rid, from).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(rollout_id = %rid, error = %e.message, "outbox tail failed");
                        Vec::new()
                    }
                };
                let to = rows.last().and_then(|(id, _, _)| position(&rid, id)).or(from);
                let events: Vec<LiveEvent> = rows.into_iter().map(event).collect();
                Some((stream::iter(events), to))
            }
        })
        .flatten()
        .boxed()
        } else {
            stream::empty().boxed()
        };
    // Each stored event once, in order (the outbox read of a subscription may already hold an
    // event the live channel then repeats). Progress steps have no position.
    let mut last = past.last().and_then(|e| position(&id, &e.id)).or(after);
    let new = stream::select(local, tailed).filter_map(move |e| {
        let keep = match position(&id, &e.id) {
            Some(p) if Some(p) <= last => None,
            Some(p) => {
                last = Some(p);
                Some(e)
            }
            None => Some(e),
        };
        async move { keep.map(|e| Ok(sse(&e))) }
    });
    let past = stream::iter(past.into_iter().map(|e| Ok(sse(&e))));
    Ok(Sse::new(past.chain(new)).keep_alive(KeepAlive::default()))
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
    let jetstream = st.config.nats_jetstream.then(|| {
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(CONFIRM_WITHIN);
        js
    });
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
        let wanted = rows.len();
        let confirmed = match &jetstream {
            Some(js) => stored(js, rows).await,
            None => received(&client, rows).await,
        };
        let short = confirmed.len() < wanted;
        let at = crate::db::i(crate::state::now().get());
        for id in confirmed {
            if let Err(e) = sqlx::query("UPDATE outbox SET published_at = $1 WHERE event_id = $2")
                .bind(at)
                .bind(id)
                .execute(&st.db)
                .await
            {
                tracing::warn!(error = %e, "marking an event published failed; it goes again");
            }
        }
        if short {
            // The rest were not confirmed: published again later (at least once; the id
            // de-duplicates).
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

/// How long a flush, or a stream's acknowledgement, may take.
const CONFIRM_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The event's id as `Nats-Msg-Id`, which a JetStream stream de-duplicates on.
fn headers(id: &str) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    headers
}

/// Publishes the rows; the ids of those sent once they are flushed to the NATS connection,
/// none when the flush fails. (The flush writes to the socket; the NATS server sends no
/// receipt, so a connection lost at that moment can lose them.)
async fn received(client: &async_nats::Client, rows: Vec<(String, String, String)>) -> Vec<String> {
    let mut sent = Vec::new();
    for (id, subject, payload) in rows {
        if client
            .publish_with_headers(subject, headers(&id), payload.into())
            .await
            .is_err()
        {
            break;
        }
        sent.push(id);
    }
    match tokio::time::timeout(CONFIRM_WITHIN, client.flush()).await {
        Ok(Ok(())) => sent,
        _ => Vec::new(),
    }
}

/// Publishes the rows to JetStream one at a time, each once the stream acknowledged storing
/// the one before (a repeat within the stream's duplicate window is acknowledged as a
/// duplicate): the ids stored. What was not acknowledged goes again next round, and nothing
/// after it was sent, so the stream holds the events in commit order.
async fn stored(
    js: &async_nats::jetstream::Context,
    rows: Vec<(String, String, String)>,
) -> Vec<String> {
    let mut stored = Vec::new();
    for (id, subject, payload) in rows {
        let ack = match js
            .publish_with_headers(subject, headers(&id), payload.into())
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        if let Err(e) = ack {
            tracing::warn!(event = %id, error = %e, "no JetStream stream stored the event; it waits");
            break;
        }
        stored.push(id);
    }
    stored
}
