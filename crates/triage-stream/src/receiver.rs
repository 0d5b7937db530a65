//! The Alertmanager receiver: the HTTP edge of `triage run`.
//!
//! - `POST /webhook` takes Alertmanager webhook payloads (version 4);
//!   `POST /api/v2/alerts` takes an API v2 alert array, as Prometheus posts
//!   it to Alertmanager. Either endpoint takes any of the shapes
//!   [`triage_formats::decode_line`] reads.
//! - `GET /healthz` answers while the process serves; `GET /readyz` only
//!   when it can take alerts (state restored, broker reachable);
//!   `GET /metrics` serves [`crate::metrics`] for Prometheus.
//!
//! What happens to accepted alerts is the [`Intake`]'s business:
//! standalone they feed the in-process correlator ([`crate::standalone`]),
//! in bridge mode they are produced to the alerts topic ([`crate::bridge`]).
//! This module owns what is common: the bearer token, the body limit, and
//! the answers, which always say what was wrong and where.
//!
//! # Answers
//! - 200 `{"status":"success","accepted":N,"rejected":[...]}`: the usable
//!   alerts were taken; each rejected one is listed with its index, reason
//!   code and message, and kept (rejects file or dead-letter topic).
//!   Alertmanager drops a notification answered with 4xx, so one bad alert
//!   must not cost the good ones beside it.
//! - 400 when nothing in the body could be used, 401 without the right
//!   token, 413 past `receiver.max_body_bytes`; none is worth retrying.
//! - 503 when the alerts could not be taken now (broker unreachable, queue
//!   full, shutting down): Alertmanager retries, and re-sending is safe
//!   because ingest deduplicates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use triage_formats::{DecodeError, DecodedLine};

use crate::bridge::Bridge;
use crate::clock::wall_now;
use crate::error::StreamError;
use crate::standalone::Standalone;
use crate::telemetry::Telemetry;

/// How often a server checks whether it was asked to stop.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

/// Where accepted alerts go.
#[derive(Clone)]
pub enum Intake {
    /// The in-process correlator.
    Standalone(Arc<Standalone>),
    /// The alerts topic.
    Bridge(Arc<Bridge>),
}

/// The endpoint a request came to; a bounded label for logs and counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /webhook`.
    Webhook,
    /// `POST /api/v2/alerts`.
    ApiV2,
}

impl Endpoint {
    /// The path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Webhook => "/webhook",
            Endpoint::ApiV2 => "/api/v2/alerts",
        }
    }
}

/// One request's answer.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Value,
    /// Ask the client to come back after this many seconds.
    pub retry_after: Option<u32>,
}

impl Reply {
    /// The alerts that could be used were taken; `rejected` lists the rest.
    pub(crate) fn accepted(accepted: usize, rejected: Vec<Value>) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: json!({"status": "success", "accepted": accepted, "rejected": rejected}),
            retry_after: None,
        }
    }

    /// A client error that retrying will not fix.
    pub(crate) fn refused(status: StatusCode, reason: &str, error: &str) -> Reply {
        Reply {
            status,
            body: json!({"status": "error", "reason": reason, "error": error}),
            retry_after: None,
        }
    }

    /// The alerts could not be taken now; the client should retry.
    pub(crate) fn unavailable(reason: &str, error: &str) -> Reply {
        Reply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: json!({"status": "error", "reason": reason, "error": error}),
            retry_after: Some(1),
        }
    }

    /// The reason code, for logs and counts.
    fn reason(&self) -> &str {
        self.body.get("reason").and_then(Value::as_str).unwrap_or("none")
    }
}

/// Sorts a decoded body: `Err` with a 400 when nothing in it is usable,
/// else the decoded alerts and the rejected ones as answer rows.
pub(crate) fn triage_body(
    decoded: Result<DecodedLine<'_>, DecodeError>,
) -> Result<(DecodedLine<'_>, Vec<Value>), Reply> {
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return Err(Reply::refused(StatusCode::BAD_REQUEST, e.reason.code(), &e.message)),
    };
    let rows: Vec<Value> = decoded
        .rejected
        .iter()
        .map(|r| {
            json!({"index": r.index, "reason": r.error.reason.code(), "error": r.error.message})
        })
        .collect();
    if decoded.alerts.is_empty() && !rows.is_empty() {
        let mut reply = Reply::refused(
            StatusCode::BAD_REQUEST,
            "no_usable_alert",
            &format!("none of the {} alerts in the body could be used", rows.len()),
        );
        reply.body["rejected"] = Value::Array(rows);
        return Err(reply);
    }
    Ok((decoded, rows))
}

/// The reject code of every refused part of a decoded body, for counting.
pub(crate) fn reject_codes(decoded: &Result<DecodedLine<'_>, DecodeError>) -> Vec<&'static str> {
    match decoded {
        Ok(d) => d.rejected.iter().map(|r| r.error.reason.code()).collect(),
        Err(e) => vec![e.reason.code()],
    }
}

/// The single-threaded runtime the receiver (and, standalone, the
/// responders) run on: HTTP here is I/O-bound, one thread is plenty.
pub(crate) fn http_runtime() -> Result<tokio::runtime::Runtime, StreamError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| StreamError::Receiver(format!("cannot start the HTTP runtime: {e}")))
}

/// What every request handler needs.
struct Shared {
    intake: Intake,
    token: Option<String>,
    max_body_bytes: usize,
    telemetry: Arc<Telemetry>,
}

/// A bound, not yet serving, receiver.
pub struct Receiver {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Binds `listen` inside `runtime` and reads the bearer token, so both
    /// fail at start-up rather than on the first request.
    pub fn bind(
        runtime: &tokio::runtime::Runtime,
        config: &triage_config::ReceiverSettings,
        intake: Intake,
        telemetry: Arc<Telemetry>,
    ) -> Result<Receiver, StreamError> {
        let token = match &config.bearer_token {
            Some(secret) => Some(secret.read().map_err(StreamError::Receiver)?),
            None => None,
        };
        let listen = config.listen.clone();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(listen.as_str()))
            .map_err(|source| StreamError::Bind { address: listen, source })?;
        let shared =
            Arc::new(Shared { intake, token, max_body_bytes: config.max_body_bytes, telemetry });
        Ok(Receiver { listener, shared })
    }

    /// The address actually bound (port 0 picks a free one).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` is set, then finishes the requests in hand.
    pub async fn serve(self, shutdown: Arc<AtomicBool>) -> Result<(), StreamError> {
        let address = self.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let router = Router::new()
            .route("/webhook", post(webhook))
            .route("/api/v2/alerts", post(api_v2))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .with_state(self.shared.clone());
        self.shared.telemetry.receiver_listening(&address);
        let stop = async move {
            while !shutdown.load(Ordering::Relaxed) {
                tokio::time::sleep(SHUTDOWN_POLL).await;
            }
        };
        axum::serve(self.listener, router)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|source| StreamError::Bind { address, source })
    }
}

async fn webhook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    receive(&shared, Endpoint::Webhook, &headers, body).await
}

async fn api_v2(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    receive(&shared, Endpoint::ApiV2, &headers, body).await
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.telemetry.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.telemetry.metrics.encode();
    let mut response = (StatusCode::OK, body).into_response();
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response
}

async fn not_found() -> Response {
    let reply = Reply::refused(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: POST alerts to /webhook or /api/v2/alerts",
    );
    into_response(reply)
}

async fn receive(shared: &Shared, endpoint: Endpoint, headers: &HeaderMap, body: Body) -> Response {
    let reply = match admit(shared, headers, body).await {
        Ok(bytes) => {
            let received = wall_now();
            match &shared.intake {
                Intake::Standalone(engine) => engine.accept(&bytes, endpoint, received),
                Intake::Bridge(bridge) => bridge.accept(bytes, endpoint, received).await,
            }
        }
        Err(reply) => reply,
    };
    shared.telemetry.request(endpoint.path(), reply.status.as_u16(), reply.reason());
    into_response(reply)
}

/// The token and the body limit; the body's bytes when both pass.
async fn admit(shared: &Shared, headers: &HeaderMap, body: Body) -> Result<Bytes, Reply> {
    if let Some(token) = &shared.token {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
                // The scheme is case-insensitive (RFC 7235).
                let (scheme, credentials) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(credentials)
            });
        if !given.is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes())) {
            let what = if given.is_some() { "wrong bearer token" } else { "no bearer token" };
            return Err(Reply::refused(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &format!("{what}: send Authorization: Bearer <receiver token>"),
            ));
        }
    }
    let limit = shared.max_body_bytes;
    let too_large = |size: String| {
        Reply::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!("request body is {size} bytes; receiver.max_body_bytes is {limit}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        return Err(too_large(length.to_string()));
    }
    // A body sent without a length (chunked) is cut off at the limit; a
    // body that breaks off is not "too large".
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            too_large(format!("more than {limit}"))
        } else {
            Reply::refused(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                &format!("the request body could not be read: {inner}"),
            )
        }
    })
}

/// Compares the SHA-256 digests of both without an early exit, so timing
/// reveals neither how much of a guess was right nor the token's length.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    use sha2::Digest as _;
    let (given, expected) = (sha2::Sha256::digest(given), sha2::Sha256::digest(expected));
    given.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn into_response(reply: Reply) -> Response {
    let mut body = reply.body.to_string();
    body.push('\n');
    let mut response = (reply.status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if reply.status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(seconds) = reply.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use triage_formats::{DecodeLimits, decode_line};

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn a_body_with_some_usable_alerts_is_accepted_and_lists_the_rest() {
        let body = br#"[{"labels":{"alertname":"A"},"startsAt":"2024-05-01T12:00:00Z"},
                        {"labels":{"alertname":"B"},"startsAt":"yesterday"}]"#;
        let decoded = decode_line(body, &DecodeLimits::default(), None);
        let rows = triage_body(decoded).map(|(_, rows)| rows).unwrap_or_default();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["index"], 1);
        assert_eq!(rows[0]["reason"], "timestamp");
    }

    #[test]
    fn a_body_with_nothing_usable_is_a_400_naming_every_alert() {
        let body = br#"[{"labels":{"alertname":"B"},"startsAt":"yesterday"}]"#;
        let decoded = decode_line(body, &DecodeLimits::default(), None);
        let reply = triage_body(decoded).err();
        let reply = reply.map(|r| (r.status, r.body["reason"].clone(), r.body["rejected"].clone()));
        let (status, reason, rejected) = reply.unwrap_or_default();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(reason, "no_usable_alert");
        assert_eq!(rejected.as_array().map(Vec::len), Some(1));
        let garbage = decode_line(b"{nope", &DecodeLimits::default(), None);
        let reply = triage_body(garbage).err().map(|r| r.body["reason"].clone());
        assert_eq!(reply, Some(json!("json")));
    }
}
