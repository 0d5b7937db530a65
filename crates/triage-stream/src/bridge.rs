//! Bridge mode: the receiver in front of Kafka. Each request's alerts are
//! produced to the alerts topic keyed by their correlation domain (the
//! first of `receiver.domain_labels` an alert carries, `default` without
//! one), and the request is answered only once the broker acknowledged
//! every record (`acks=all`, idempotent producer); a failure or
//! `receiver.ack_timeout` answers 503 so that Alertmanager retries.
//!
//! A body whose alerts share one domain is produced as it came, byte for
//! byte. One that mixes domains is split into one record per domain (the
//! webhook envelope kept, its `alerts` cut to the domain's), so each
//! domain's alerts stay in order on one partition. Alerts without
//! `startsAt` (or resolved without `endsAt`) are stamped with the receive
//! time here, as Alertmanager does, because the engine behind the topic
//! only knows event time. A body refused outright (400) is also written
//! to the dead-letter topic, so operators see what senders get wrong.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use triage_config::Config;
use triage_formats::{DecodeLimits, decode_line};
use triage_model::Timestamp;

use crate::error::StreamError;
use crate::receiver::{Endpoint, Intake, Receiver, Reply, http_runtime, reject_codes, triage_body};
use crate::service::{Control, producer_config};
use crate::telemetry::Telemetry;

/// The key of alerts that carry none of the domain labels.
const DEFAULT_DOMAIN: &str = "default";
/// Go's zero time: Alertmanager's "no end".
const NO_END: &str = "0001-01-01T00:00:00Z";

type Delivered = Result<(), String>;

/// One record to produce: its domain (the key) and its payload.
type DomainRecord<'a> = (String, Cow<'a, [u8]>);

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Hands each delivery report to the request waiting for it; reports of
/// dead letters, which nobody waits for, are logged when they failed.
struct Acks {
    telemetry: Arc<Telemetry>,
}

/// Where a record's delivery report goes; dead letters wait for nobody.
struct AckSlot(Option<oneshot::Sender<Delivered>>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<AckSlot>;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: Self::DeliveryOpaque) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        match (slot.0, outcome) {
            (Some(waiting), outcome) => {
                let _ = waiting.send(outcome);
            }
            (None, Err(e)) => self.telemetry.client_error("dead_letter", &e),
            (None, Ok(())) => {}
        }
    }
}

/// The receiver's producer to the alerts topic.
pub struct Bridge {
    producer: ThreadedProducer<Acks>,
    alerts_topic: String,
    dead_letters_topic: String,
    domain_labels: Vec<String>,
    ack_timeout: Duration,
    /// Largest record the broker takes and the consumer reads.
    max_record_bytes: usize,
    limits: DecodeLimits,
    telemetry: Arc<Telemetry>,
}

impl Bridge {
    /// A producer to `kafka.topics.alerts` whose messages time out after
    /// `receiver.ack_timeout`.
    pub fn new(config: &Config, telemetry: Arc<Telemetry>) -> Result<Bridge, StreamError> {
        let ack_timeout = config.receiver.ack_timeout;
        let mut client = producer_config(&config.kafka);
        client.set("message.timeout.ms", ack_timeout.as_millis().to_string());
        let message_max = config
            .kafka
            .producer
            .get("message.max.bytes")
            .or_else(|| config.kafka.client.get("message.max.bytes"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let producer = client
            .create_with_context(Acks { telemetry: telemetry.clone() })
            .map_err(|e| StreamError::client("bridge producer", e))?;
        Ok(Bridge {
            producer,
            alerts_topic: config.kafka.topics.alerts.clone(),
            dead_letters_topic: config.kafka.topics.dead_letters.clone(),
            domain_labels: config.receiver.domain_labels.clone(),
            ack_timeout,
            max_record_bytes: message_max.min(config.input.max_line_bytes),
            limits: config.input.decode,
            telemetry,
        })
    }

    /// Validates one request body, produces it, waits for the broker.
    pub async fn accept(&self, body: Bytes, endpoint: Endpoint, received: Timestamp) -> Reply {
        let (accepted, rejected) = {
            let decoded = decode_line(&body, &self.limits, Some(received));
            let codes = reject_codes(&decoded);
            match triage_body(decoded) {
                Ok((decoded, rows)) => (decoded.alerts.len(), rows),
                Err(reply) => {
                    self.dead_letter(&body, endpoint, &reply, &codes);
                    return reply;
                }
            }
        };
        let records = match split_by_domain(&body, &self.domain_labels, received) {
            Ok(records) => records,
            Err(e) => return Reply::unavailable("split", &e),
        };
        // A record the broker refuses, or the consumer would dead-letter
        // whole, must be refused here, where the sender hears of it.
        if let Some((_, big)) = records.iter().find(|(_, p)| p.len() > self.max_record_bytes) {
            return Reply::refused(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!(
                    "the alerts make a Kafka record of {} bytes; records are limited to {} \
                     (the smaller of message.max.bytes and input.max_line_bytes)",
                    big.len(),
                    self.max_record_bytes
                ),
            );
        }
        let at_ms = received.unix_nanos() / 1_000_000;
        let mut waiting = Vec::with_capacity(records.len());
        for (domain, payload) in &records {
            let (sender, receiver) = oneshot::channel();
            let record =
                BaseRecord::with_opaque_to(&self.alerts_topic, Box::new(AckSlot(Some(sender))))
                    .key(domain.as_bytes())
                    .payload(payload.as_ref())
                    .timestamp(at_ms)
                    .headers(source_headers(endpoint));
            match self.producer.send(record) {
                Ok(()) => waiting.push(receiver),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Reply::unavailable("queue_full", "the producer queue is full");
                }
                Err((e, _)) => return Reply::unavailable("produce", &e.to_string()),
            }
        }
        // The producer times a message out after ack_timeout; the margin
        // lets its report arrive first, with the broker's reason.
        let all_acked = async {
            for receiver in waiting {
                match receiver.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err("the producer went away".to_owned()),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(self.ack_timeout + Duration::from_secs(1), all_acked).await {
            Ok(Ok(())) => {
                self.telemetry.bridged(records.len() as u64);
                Reply::accepted(accepted, rejected)
            }
            Ok(Err(e)) => Reply::unavailable("broker", &format!("not acknowledged: {e}")),
            Err(_) => Reply::unavailable(
                "ack_timeout",
                &format!("not acknowledged within receiver.ack_timeout ({:?})", self.ack_timeout),
            ),
        }
    }

    /// A refused body, kept as it came with why; best effort, since the
    /// sender was told.
    fn dead_letter(&self, body: &[u8], endpoint: Endpoint, reply: &Reply, codes: &[&'static str]) {
        let reason = reply.body.get("reason").and_then(Value::as_str).unwrap_or("refused");
        let error = reply.body.get("error").and_then(Value::as_str).unwrap_or_default();
        let headers = source_headers(endpoint)
            .insert(Header { key: "triage.reason", value: Some(reason) })
            .insert(Header { key: "triage.error", value: Some(error) });
        let record = BaseRecord::with_opaque_to(&self.dead_letters_topic, Box::new(AckSlot(None)))
            .key(DEFAULT_DOMAIN.as_bytes())
            .payload(body)
            .headers(headers);
        match self.producer.send(record) {
            Ok(()) => {
                for &code in codes {
                    self.telemetry.receiver_dead_letter(endpoint.path(), code, error);
                }
            }
            Err((e, _)) => self.telemetry.client_error("dead_letter", &e.to_string()),
        }
    }

    /// Waits for what is in flight (at shutdown).
    pub fn flush(&self, bound: Duration) {
        if let Err(e) = self.producer.flush(bound) {
            self.telemetry.client_error("flush", &e.to_string());
        }
    }
}

/// Serves the receiver in bridge mode on its own thread until
/// `control.shutdown` is set; binding happens before this returns, so a
/// taken port fails the start.
pub fn start_bridge(
    config: &Config,
    control: &Control,
) -> Result<std::thread::JoinHandle<Result<(), StreamError>>, StreamError> {
    let runtime = http_runtime()?;
    let bridge = Arc::new(Bridge::new(config, control.telemetry.clone())?);
    let receiver = Receiver::bind(
        &runtime,
        &config.receiver,
        Intake::Bridge(bridge.clone()),
        control.telemetry.clone(),
    )?;
    let shutdown = control.shutdown.clone();
    let bound = config.live.shutdown_timeout;
    std::thread::Builder::new()
        .name("triage-receiver".into())
        .spawn(move || {
            let _span = tracing::info_span!("receiver", mode = "bridge").entered();
            let served = runtime.block_on(receiver.serve(shutdown));
            bridge.flush(bound);
            served
        })
        .map_err(|e| StreamError::Receiver(format!("cannot start the receiver thread: {e}")))
}

fn source_headers(endpoint: Endpoint) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header { key: "triage.source", value: Some("receiver") })
        .insert(Header { key: "triage.source.endpoint", value: Some(endpoint.path()) })
}

/// The records to produce: `(domain, payload)` in order of first
/// appearance. The body as it came when it has one domain and needs no
/// stamping.
fn split_by_domain<'a>(
    body: &'a [u8],
    domain_labels: &[String],
    received: Timestamp,
) -> Result<Vec<DomainRecord<'a>>, String> {
    let mut root: Value =
        serde_json::from_slice(body).map_err(|e| format!("body no longer parses: {e}"))?;
    let stamp = received.to_string();
    let mut stamped = false;
    let alerts: Vec<&mut Value> = match &mut root {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(object) if object.contains_key("alerts") => match object.get_mut("alerts") {
            Some(Value::Array(items)) => items.iter_mut().collect(),
            _ => Vec::new(),
        },
        single => vec![single],
    };
    let mut domains: Vec<String> = Vec::with_capacity(alerts.len());
    for alert in alerts {
        domains.push(domain_of(alert, domain_labels));
        if let Value::Object(fields) = alert {
            stamped |= stamp_missing_times(fields, &stamp);
        }
    }
    let mut order: Vec<String> = Vec::new();
    for domain in &domains {
        if !order.contains(domain) {
            order.push(domain.clone());
        }
    }
    if order.len() <= 1 {
        let domain = order.pop().unwrap_or_else(|| DEFAULT_DOMAIN.to_owned());
        let payload = if stamped {
            Cow::Owned(serde_json::to_vec(&root).map_err(|e| e.to_string())?)
        } else {
            Cow::Borrowed(body)
        };
        return Ok(vec![(domain, payload)]);
    }
    let mut records = Vec::with_capacity(order.len());
    for domain in order {
        let part = part_for(&root, &domains, &domain);
        records.push((domain, Cow::Owned(serde_json::to_vec(&part).map_err(|e| e.to_string())?)));
    }
    Ok(records)
}

/// The body cut to the alerts of one domain, in the body's own shape.
fn part_for(root: &Value, domains: &[String], domain: &str) -> Value {
    let keep = |items: &[Value]| -> Vec<Value> {
        items.iter().zip(domains).filter(|(_, d)| *d == domain).map(|(a, _)| a.clone()).collect()
    };
    match root {
        Value::Array(items) => Value::Array(keep(items)),
        Value::Object(object) => {
            let mut envelope = Map::with_capacity(object.len());
            for (key, value) in object {
                let value = match (key.as_str(), value) {
                    ("alerts", Value::Array(items)) => Value::Array(keep(items)),
                    _ => value.clone(),
                };
                envelope.insert(key.clone(), value);
            }
            Value::Object(envelope)
        }
        other => other.clone(),
    }
}

fn domain_of(alert: &Value, domain_labels: &[String]) -> String {
    let labels = alert.get("labels");
    domain_labels
        .iter()
        .find_map(|name| {
            labels.and_then(|l| l.get(name)).and_then(Value::as_str).filter(|v| !v.is_empty())
        })
        .unwrap_or(DEFAULT_DOMAIN)
        .to_owned()
}

/// Gives an alert without `startsAt`, or a resolved one without `endsAt`,
/// the receive time; says whether anything changed.
fn stamp_missing_times(alert: &mut Map<String, Value>, stamp: &str) -> bool {
    let missing = |value: Option<&Value>| match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty() || text == NO_END,
        Some(_) => false,
    };
    let mut changed = false;
    if missing(alert.get("startsAt")) {
        alert.insert("startsAt".into(), Value::String(stamp.to_owned()));
        changed = true;
    }
    let resolved = alert.get("status").and_then(Value::as_str) == Some("resolved");
    if resolved && missing(alert.get("endsAt")) {
        alert.insert("endsAt".into(), Value::String(stamp.to_owned()));
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["cluster".into(), "environment".into()]
    }

    fn at() -> Timestamp {
        Timestamp::from_unix_secs(1_714_564_800)
    }

    #[test]
    fn one_domain_goes_out_as_it_came() {
        let body = br#"{"version":"4","alerts":[
            {"labels":{"alertname":"A","cluster":"eu"},"startsAt":"2024-05-01T12:00:00Z"},
            {"labels":{"alertname":"B","cluster":"eu"},"startsAt":"2024-05-01T12:00:01Z"}]}"#;
        let records = split_by_domain(body, &labels(), at()).unwrap_or_default();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].0, "eu");
        assert!(matches!(records[0].1, Cow::Borrowed(b) if b == body.as_slice()));
    }

    #[test]
    fn mixed_domains_split_in_order_keeping_the_envelope() {
        let body = br#"{"version":"4","receiver":"triage","alerts":[
            {"labels":{"alertname":"A","cluster":"eu"},"startsAt":"2024-05-01T12:00:00Z"},
            {"labels":{"alertname":"B","environment":"prod"},"startsAt":"2024-05-01T12:00:00Z"},
            {"labels":{"alertname":"C"},"startsAt":"2024-05-01T12:00:00Z"},
            {"labels":{"alertname":"D","cluster":"eu"},"startsAt":"2024-05-01T12:00:00Z"}]}"#;
        let records = split_by_domain(body, &labels(), at()).unwrap_or_default();
        let keys: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["eu", "prod", "default"]);
        let eu: Value = serde_json::from_slice(&records[0].1).unwrap_or_default();
        assert_eq!(eu["receiver"], "triage");
        let names: Vec<&str> = eu["alerts"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["labels"]["alertname"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["A", "D"]);
    }

    #[test]
    fn missing_times_take_the_receive_time() {
        let body = br#"[{"labels":{"alertname":"A"}},
                        {"labels":{"alertname":"B"},"status":"resolved",
                         "startsAt":"2024-05-01T11:00:00Z","endsAt":"0001-01-01T00:00:00Z"}]"#;
        let records = split_by_domain(body, &labels(), at()).unwrap_or_default();
        let alerts: Value = serde_json::from_slice(&records[0].1).unwrap_or_default();
        assert_eq!(alerts[0]["startsAt"], "2024-05-01T12:00:00Z");
        assert_eq!(alerts[1]["startsAt"], "2024-05-01T11:00:00Z");
        assert_eq!(alerts[1]["endsAt"], "2024-05-01T12:00:00Z");
    }
}
