//! The server's live event stream of a rollout (`GET /api/v1/ota/rollouts/{id}/events`,
//! Server-Sent Events), read into typed messages: the rollout's own events (the OTA API's
//! `profile.ota.rollout.<kind>...` subjects, parsed back into the library's `Event`) and the
//! devices' progress reports (`device.ota.progress...`).

use ota_core::rollout::Event;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

/// One message of the stream.
#[derive(Debug)]
pub(super) enum Message {
    /// A rollout event.
    Rollout(Event),
    /// A device's report, as the live view carries it.
    Progress(Progress),
    /// The stream ended or failed (why).
    Closed(String),
}

/// A device's report on the live stream.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Progress {
    /// The device.
    pub device_id: String,
    /// `in_progress`, `success`, `failure`, `rejected`.
    pub status: String,
    /// The progress step, when one was given (`downloading`, `verified`, `installed`,
    /// `swapped`, `probing`).
    #[serde(default)]
    pub step: Option<String>,
    /// The version the device says it runs.
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// Why, for a failure or a refusal (when the server carries it).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Reads `response` until it ends, sending each message to `tx`; the last is
/// [`Message::Closed`].
pub(super) async fn read(mut response: reqwest::Response, tx: mpsc::UnboundedSender<Message>) {
    let mut buf = String::new();
    let why = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                buf.push_str(&String::from_utf8_lossy(&bytes));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    if let Some(m) = parse_block(&block)
                        && tx.send(m).is_err()
                    {
                        return;
                    }
                }
            }
            Ok(None) => break "the server closed the event stream".to_string(),
            Err(e) => break format!("the event stream failed: {e}"),
        }
    };
    let _ = tx.send(Message::Closed(why));
}

/// One SSE block (`id:`, `event:`, `data:` lines; `:` comments are keep-alives).
fn parse_block(block: &str) -> Option<Message> {
    let mut subject = "";
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            subject = v.trim_start();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if subject.is_empty() || data.is_empty() {
        return None;
    }
    message(subject, &data)
}

/// The message of one event, by its subject.
fn message(subject: &str, data: &str) -> Option<Message> {
    let mut payload: Value = serde_json::from_str(data).ok()?;
    if subject.starts_with("device.ota.progress.") {
        return serde_json::from_value(payload).ok().map(Message::Progress);
    }
    if subject.starts_with("profile.ota.rollout.") {
        // The server adds where the event belongs; the library's event is the rest.
        let o = payload.as_object_mut()?;
        o.remove("rollout_id");
        o.remove("tenant");
        return serde_json::from_value(payload).ok().map(Message::Rollout);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_into_rollout_events_and_progress() {
        let b = "id: rol_1:3:1\nevent: profile.ota.rollout.wave_opened.acme.rol_1\n\
                 data: {\"wave\":0,\"devices\":8,\"kind\":\"wave_opened\",\"rollout_id\":\"rol_1\",\"tenant\":\"acme\"}\n\n";
        assert!(matches!(
            parse_block(b),
            Some(Message::Rollout(Event::WaveOpened {
                wave: 0,
                devices: 8
            }))
        ));
        let b = "event: device.ota.progress.acme.rol_1\ndata: {\"device_id\":\"d1\",\"status\":\"in_progress\",\"step\":\"swapped\",\"firmware_version\":null}\n\n";
        match parse_block(b) {
            Some(Message::Progress(p)) => {
                assert_eq!(
                    (p.device_id.as_str(), p.step.as_deref()),
                    ("d1", Some("swapped"))
                );
            }
            other => panic!("{other:?}"),
        }
        // A keep-alive comment, or an event of another kind, is no message.
        assert!(parse_block(":\n\n").is_none());
        assert!(parse_block("event: other.subject\ndata: {}\n\n").is_none());
    }
}
