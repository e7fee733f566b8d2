//! The daemon's side of the OTA API's device side: registration, the poll, chunks by range,
//! reports, and the persistent RPC records of a rollout. Every answer is checked before it is used: a chunk must be exactly the range
//! asked for, or the server is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ota_core::assignment::Assignment;
use ota_core::download::ChunkRequest;
use ota_core::report::DeviceReport;
use ota_core::{DeviceProfile, Limits, Name, PackageId, Version};
use serde_json::Value;

use crate::error::DaemonError;
use crate::rpc::RpcRecord;

/// The header in which the server suggests the poll interval, in milliseconds (taken within
/// [`MIN_POLL_INTERVAL`] and [`MAX_POLL_INTERVAL`], see [`suggested_interval`]).
pub const POLL_INTERVAL_HEADER: &str = "ota-poll-interval-ms";
/// The shortest poll interval a server may suggest: 100 ms.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The longest poll interval a server may suggest: 24 hours.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The header in which the device tells the version it really runs: `name=version`, comma
/// separated.
pub const INSTALLED_HEADER: &str = "ota-installed";

/// What a poll answered.
#[derive(Debug)]
pub struct Poll {
    /// The assignment, if any.
    pub assignment: Option<Assignment>,
    /// The interval the server suggests ([`suggested_interval`]).
    pub interval: Option<Duration>,
}

/// An HTTP client of one device.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    device_id: Name,
    credential: Option<String>,
}

fn transport(what: impl Into<String>, e: &reqwest::Error) -> DaemonError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    DaemonError::Http {
        what: what.into(),
        message,
    }
}

/// The most of an error answer's body that is read (its message is cut to 500 characters).
const ERROR_BODY_BYTES: usize = 16 << 10;

/// The most of a registration's answer that is read (a credential and the device's profile).
const REGISTRATION_BYTES: usize = 1 << 20;

/// Reads an answer's body, at most `max` bytes: a longer one (declared or sent) is refused
/// as soon as it passes the limit, so a hostile or broken server cannot fill the device's
/// memory with one answer.
async fn read_body(
    mut r: reqwest::Response,
    what: &'static str,
    max: usize,
) -> Result<Bytes, DaemonError> {
    let too_long = |n: u64| DaemonError::Protocol {
        what,
        message: format!("the answer has {n} bytes or more, more than the limit of {max}"),
    };
    if let Some(n) = r.content_length()
        && n > max as u64
    {
        return Err(too_long(n));
    }
    let mut out = BytesMut::new();
    while let Some(piece) = r.chunk().await.map_err(|e| transport(what, &e))? {
        if out.len() + piece.len() > max {
            return Err(too_long((out.len() + piece.len()) as u64));
        }
        out.extend_from_slice(&piece);
    }
    Ok(out.freeze())
}

async fn status_error(what: impl Into<String>, r: reqwest::Response) -> DaemonError {
    let status = r.status().as_u16();
    let text = match read_body(r, "error answer", ERROR_BODY_BYTES).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => e.to_string(),
    };
    let body = serde_json::from_str::<Value>(&text).ok();
    let field = |f: &str| {
        body.as_ref()
            .and_then(|v| v[f].as_str())
            .map(str::to_string)
    };
    let code = field("code").filter(|_| field("message").is_some());
    let message = field("message").unwrap_or(text);
    DaemonError::Status {
        what: what.into(),
        status,
        code,
        message: message.chars().take(500).collect(),
    }
}

/// The poll interval a [`POLL_INTERVAL_HEADER`] value suggests: its milliseconds, brought
/// within [`MIN_POLL_INTERVAL`] and [`MAX_POLL_INTERVAL`] (100 ms to 24 h); `None` when it is
/// not a number of milliseconds, or 0.
pub fn suggested_interval(value: &str) -> Option<Duration> {
    let ms = value.trim().parse::<u64>().ok().filter(|ms| *ms > 0)?;
    Some(Duration::from_millis(ms).clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL))
}

/// `name=version,name=version`.
pub fn installed_header(installed: &BTreeMap<Name, Version>) -> String {
    installed
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Client {
    /// A client of the server at `base` for `device_id`.
    pub fn new(base: &str, device_id: Name, timeout: Duration) -> Result<Client, DaemonError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(16);
        if base.starts_with("http://") {
            // Plain HTTP: no certificate store to load (it costs memory a device may not have).
            builder = builder.tls_certs_only(Vec::new());
        }
        let http = builder.build().map_err(|e| transport("http client", &e))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            device_id,
            credential: None,
        })
    }

    /// Uses this credential from now on.
    pub fn set_credential(&mut self, credential: String) {
        self.credential = Some(credential);
    }

    /// Forgets the credential (the server no longer knows it).
    pub fn clear_credential(&mut self) {
        self.credential = None;
    }

    /// Forgets the credential and answers it, if there was one.
    pub fn take_credential(&mut self) -> Option<String> {
        self.credential.take()
    }

    /// Whether the client has a credential.
    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    fn device_url(&self, rest: &str) -> String {
        format!("{}/api/v1/devices/{}{rest}", self.base, self.device_id)
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credential {
            Some(c) => rb.bearer_auth(c),
            None => rb,
        }
    }

    /// Registers the device with a tenant admin token (`PUT /api/v1/devices/{id}`); answers
    /// the credential the server issued.
    pub async fn register(
        &self,
        token: &str,
        device: &DeviceProfile,
        profile_id: Option<&Name>,
    ) -> Result<String, DaemonError> {
        let mut body: Value = serde_json::from_str(&device.to_json()).unwrap_or(Value::Null);
        if let Some(obj) = body.as_object_mut() {
            if let Some(p) = profile_id {
                obj.insert("profile_id".into(), Value::String(p.to_string()));
            }
            // A device registered before whose credential was lost gets a new one.
            obj.insert("issue_credential".into(), Value::Bool(true));
        }
        let r = self
            .http
            .put(self.device_url(""))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| transport("register", &e))?;
        let code = r.status().as_u16();
        let issued = matches!(code, 200 | 201);
        match code {
            _ if issued => {
                let bytes = read_body(r, "registration", REGISTRATION_BYTES).await?;
                let v: Value =
                    serde_json::from_slice(&bytes).map_err(|e| DaemonError::Protocol {
                        what: "registration",
                        message: e.to_string(),
                    })?;
                match &v["credential"] {
                    Value::Null => Err(DaemonError::AlreadyRegistered {
                        device_id: self.device_id.to_string(),
                    }),
                    Value::String(c) if is_credential(c) => Ok(c.clone()),
                    other => Err(DaemonError::Protocol {
                        what: "registration",
                        message: format!(
                            "credential: expected a token of visible ASCII characters, found {}",
                            shorten(&other.to_string())
                        ),
                    }),
                }
            }
            _ => Err(status_error("register", r).await),
        }
    }

    /// `GET /api/v1/devices/{id}/ota`, telling the versions the device really runs.
    pub async fn poll(
        &self,
        installed: &BTreeMap<Name, Version>,
        limits: &Limits,
    ) -> Result<Poll, DaemonError> {
        let r = self
            .auth(self.http.get(self.device_url("/ota")))
            .header(INSTALLED_HEADER, installed_header(installed))
            .send()
            .await
            .map_err(|e| transport("poll", &e))?;
        let interval = r
            .headers()
            .get(POLL_INTERVAL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(suggested_interval);
        match r.status().as_u16() {
            204 => Ok(Poll {
                assignment: None,
                interval,
            }),
            200 => {
                let bytes = read_body(r, "assignment", Assignment::max_bytes(limits)).await?;
                let a =
                    Assignment::from_json(&bytes, limits).map_err(|e| DaemonError::Protocol {
                        what: "assignment",
                        message: e.to_string(),
                    })?;
                Ok(Poll {
                    assignment: Some(a),
                    interval,
                })
            }
            _ => Err(status_error("poll", r).await),
        }
    }

    /// One chunk, by a `Range` request: the answer must be `206` with the exact
    /// `Content-Range` and `Content-Length` asked for, and exactly that many bytes.
    pub async fn chunk(
        &self,
        package_id: &PackageId,
        req: ChunkRequest,
        size: u64,
    ) -> Result<Bytes, DaemonError> {
        let what = || format!("chunk {}", req.index);
        let len = u64::from(req.length);
        let last = req.offset + len - 1;
        let mut r = self
            .auth(
                self.http
                    .get(self.device_url(&format!("/ota/chunk?package_id={package_id}"))),
            )
            .header("range", format!("bytes={}-{last}", req.offset))
            .send()
            .await
            .map_err(|e| transport(what(), &e))?;
        let status = r.status().as_u16();
        if status == 200 {
            return Err(DaemonError::RangeIgnored {
                offset: req.offset,
                status,
                detail: "200 instead of 206".into(),
            });
        }
        if status != 206 {
            return Err(status_error(what(), r).await);
        }
        let range = r
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let expected = format!("bytes {}-{last}/{size}", req.offset);
        if range != expected {
            let found = parse_range_len(&range).unwrap_or(0);
            if found != len {
                return Err(DaemonError::LengthMismatch {
                    offset: req.offset,
                    what: "content-range",
                    expected: len,
                    found,
                });
            }
            return Err(DaemonError::RangeIgnored {
                offset: req.offset,
                status,
                detail: format!("content-range {range:?}, expected {expected:?}"),
            });
        }
        if let Some(cl) = r.content_length()
            && cl != len
        {
            return Err(DaemonError::LengthMismatch {
                offset: req.offset,
                what: "content-length",
                expected: len,
                found: cl,
            });
        }
        let mut body = BytesMut::with_capacity(req.length as usize);
        while let Some(piece) = r.chunk().await.map_err(|e| transport(what(), &e))? {
            if body.len() as u64 + piece.len() as u64 > len {
                return Err(DaemonError::LengthMismatch {
                    offset: req.offset,
                    what: "body",
                    expected: len,
                    found: body.len() as u64 + piece.len() as u64,
                });
            }
            body.extend_from_slice(&piece);
        }
        if body.len() as u64 != len {
            return Err(DaemonError::LengthMismatch {
                offset: req.offset,
                what: "body",
                expected: len,
                found: body.len() as u64,
            });
        }
        Ok(body.freeze())
    }

    /// `GET /api/v1/devices/{id}/rpc?rollout_id=`: the device's RPC records of one rollout,
    /// oldest first (an answer larger than `limits.max_document_bytes` is refused).
    pub async fn rpc(
        &self,
        rollout_id: &Name,
        limits: &Limits,
    ) -> Result<Vec<RpcRecord>, DaemonError> {
        let r = self
            .auth(
                self.http
                    .get(self.device_url(&format!("/rpc?rollout_id={rollout_id}"))),
            )
            .send()
            .await
            .map_err(|e| transport("rpc", &e))?;
        if r.status().as_u16() != 200 {
            return Err(status_error("rpc", r).await);
        }
        let bytes = read_body(r, "rpc records", limits.max_document_bytes).await?;
        let protocol = |message: String| DaemonError::Protocol {
            what: "rpc records",
            message,
        };
        #[derive(serde::Deserialize)]
        struct Records {
            rpc: Vec<RpcRecord>,
        }
        serde_json::from_slice::<Records>(&bytes)
            .map(|r| r.rpc)
            .map_err(|e| protocol(e.to_string()))
    }

    /// A progress step (`in_progress` with `step`): like [`Client::report`], but given up
    /// after 2 s, so a slow server delays no update.
    pub async fn report_step(&self, report: &DeviceReport, step: &str) -> Result<(), DaemonError> {
        tokio::time::timeout(Duration::from_secs(2), self.report(report, Some(step)))
            .await
            .unwrap_or_else(|_| {
                Err(DaemonError::Http {
                    what: "report".into(),
                    message: format!("step {step}: no answer within 2 s"),
                })
            })
    }

    /// `POST /api/v1/devices/{id}/ota/report`, with a progress `step` for an `in_progress`
    /// report.
    pub async fn report(
        &self,
        report: &DeviceReport,
        step: Option<&str>,
    ) -> Result<(), DaemonError> {
        let mut body: Value = serde_json::from_str(&report.to_json()).unwrap_or(Value::Null);
        if let (Some(obj), Some(s)) = (body.as_object_mut(), step) {
            obj.insert("step".into(), Value::String(s.to_string()));
        }
        let r = self
            .auth(self.http.post(self.device_url("/ota/report")))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| transport("report", &e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(status_error("report", r).await)
        }
    }
}

/// The length of `bytes START-END/SIZE`.
fn parse_range_len(range: &str) -> Option<u64> {
    let spec = range.strip_prefix("bytes ")?;
    let (span, _) = spec.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    b.checked_sub(a)?.checked_add(1)
}

/// Whether `c` can be a device credential: a non-empty token of visible ASCII characters, as
/// an `Authorization: Bearer` header carries it (and as the server issues it).
pub fn is_credential(c: &str) -> bool {
    !c.is_empty() && c.len() <= 4096 && c.bytes().all(|b| b.is_ascii_graphic())
}

/// `text`, cut to 64 characters for an error message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server answering each of its first requests with `head`, then `body_len`
    /// bytes (until the client stops reading).
    fn hostile(head: &'static str, body_len: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for s in listener.incoming().take(4) {
                let Ok(mut s) = s else { continue };
                let mut request = [0u8; 4096];
                let _ = s.read(&mut request);
                let _ = s.write_all(head.as_bytes());
                let piece = vec![b'x'; 64 << 10];
                let mut left = body_len;
                while left > 0 {
                    let n = left.min(piece.len());
                    if s.write_all(&piece[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
            }
        });
        base
    }

    #[tokio::test]
    async fn an_answer_longer_than_its_limit_is_refused_as_it_arrives() {
        let limits = Limits::DEFAULT;
        let max = Assignment::max_bytes(&limits);
        let poll = |base: String| async move {
            let c = Client::new(&base, "dev-1".parse().unwrap(), Duration::from_secs(20)).unwrap();
            c.poll(&BTreeMap::new(), &limits).await.unwrap_err()
        };
        // Declared longer than the limit: refused before its body is read.
        let e = poll(hostile(
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\nconnection: close\r\n\r\n",
            0,
        ))
        .await;
        assert!(
            matches!(&e, DaemonError::Protocol { what: "assignment", message } if message.contains("more than the limit")),
            "{e}"
        );
        // Sent without a length, for longer than the limit: refused once past it.
        let e = poll(hostile(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            max + (1 << 20),
        ))
        .await;
        assert!(
            matches!(
                &e,
                DaemonError::Protocol {
                    what: "assignment",
                    ..
                }
            ),
            "{e}"
        );
        // An error answer's text is read only up to its own small limit.
        let e = poll(hostile(
            "HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\n",
            4 << 20,
        ))
        .await;
        assert!(
            matches!(&e, DaemonError::Status { status: 500, message, .. } if message.contains("more than the limit")),
            "{e}"
        );
    }

    #[test]
    fn a_content_range_at_the_edge_of_u64_is_no_length_not_a_panic() {
        assert_eq!(parse_range_len("bytes 0-18446744073709551615/10"), None);
        assert_eq!(parse_range_len("bytes 65536-131071/200000"), Some(65536));
        assert_eq!(parse_range_len("bytes 9-3/10"), None);
    }

    #[test]
    fn a_suggested_poll_interval_is_kept_between_100_ms_and_a_day() {
        let ms = Duration::from_millis;
        assert_eq!(suggested_interval(" 1234 "), Some(ms(1234)));
        assert_eq!(suggested_interval("1"), Some(MIN_POLL_INTERVAL));
        assert_eq!(
            suggested_interval(&u64::MAX.to_string()),
            Some(MAX_POLL_INTERVAL)
        );
        assert_eq!(suggested_interval("86400001"), Some(ms(86_400_000)));
        assert_eq!(suggested_interval("0"), None);
        assert_eq!(suggested_interval("soon"), None);
    }
}
