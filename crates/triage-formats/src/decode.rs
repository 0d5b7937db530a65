//! Decoding one input line into alert records.
//!
//! A line is recognised by shape, in one parse: an object with `alerts` is a
//! webhook payload, an object with `labels` is a single alert, an array is a
//! list of API v2 alerts. Structural problems (bad JSON, wrong types) reject
//! the whole line; problems in one alert (a bad timestamp, an empty label
//! name) reject that alert only, and the rest of the line is kept.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use triage_model::{AlertRecord, AlertStatus, Fingerprint, Labels, Timestamp};

use crate::error::{DecodeError, RejectReason, quote};
use crate::fingerprint::fingerprint_of;

/// Size bounds applied while decoding, so one hostile alert cannot take the
/// engine's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most labels one alert may carry.
    pub max_labels: usize,
    /// Longest label name plus value, in bytes.
    pub max_label_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_labels: 128, max_label_bytes: 4096 }
    }
}

/// What one line held: the alerts that decoded, and those that did not.
#[derive(Debug, Default)]
pub struct DecodedLine<'a> {
    /// Alerts in the order they appeared.
    pub alerts: Vec<AlertRecord<'a>>,
    /// Alerts of this line that were rejected, with their position in it.
    pub rejected: Vec<RejectedAlert>,
}

/// One alert of a line that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedAlert {
    /// Zero-based position of the alert within the line.
    pub index: usize,
    /// Why.
    pub error: DecodeError,
}

/// Decodes one line. `clock` is the stream's latest event time: an alert
/// without `startsAt` (allowed by the API v2 shape) or a resolved alert
/// without `endsAt` takes it, as Alertmanager would take its receive time.
pub fn decode_line<'a>(
    line: &'a [u8],
    limits: &DecodeLimits,
    clock: Option<Timestamp>,
) -> Result<DecodedLine<'a>, DecodeError> {
    // Validating UTF-8 once up front is faster than string by string, and
    // lets serde_json read from `&str` without checking again.
    let text = std::str::from_utf8(line).map_err(|e| {
        DecodeError::new(
            RejectReason::Json,
            format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
        )
    })?;
    let first = line.iter().copied().find(|b| !b.is_ascii_whitespace());
    let raw_alerts = match first {
        Some(b'[') => serde_json::from_str::<Vec<RawAlert<'a>>>(text).map_err(json_error)?,
        Some(b'{') => envelope_alerts(serde_json::from_str(text).map_err(json_error)?)?,
        Some(_) => {
            return Err(DecodeError::new(
                RejectReason::Shape,
                "expected a JSON object (webhook payload or alert) or an array of alerts",
            ));
        }
        None => return Err(DecodeError::new(RejectReason::Shape, "empty line")),
    };
    let mut decoded =
        DecodedLine { alerts: Vec::with_capacity(raw_alerts.len()), rejected: vec![] };
    for (index, raw) in raw_alerts.into_iter().enumerate() {
        match raw.validate(limits, clock) {
            Ok(alert) => decoded.alerts.push(alert),
            Err(error) => decoded.rejected.push(RejectedAlert { index, error }),
        }
    }
    Ok(decoded)
}

fn json_error(e: serde_json::Error) -> DecodeError {
    let what = match e.classify() {
        serde_json::error::Category::Data => "unexpected JSON value",
        serde_json::error::Category::Eof => "truncated JSON",
        _ => "invalid JSON",
    };
    DecodeError::new(RejectReason::Json, format!("{what} at column {}: {e}", e.column()))
}

fn envelope_alerts(envelope: RawEnvelope<'_>) -> Result<Vec<RawAlert<'_>>, DecodeError> {
    if let Some(alerts) = envelope.alerts {
        if let Some(version) = envelope.version.as_deref()
            && version != "4"
        {
            return Err(DecodeError::new(
                RejectReason::Version,
                format!(
                    "webhook payload version {} is not supported (expected \"4\")",
                    quote(version)
                ),
            ));
        }
        return Ok(alerts);
    }
    if envelope.labels.is_some() {
        return Ok(vec![RawAlert {
            labels: envelope.labels,
            annotations: envelope.annotations,
            status: envelope.status,
            starts_at: envelope.starts_at,
            ends_at: envelope.ends_at,
            fingerprint: envelope.fingerprint,
        }]);
    }
    Err(DecodeError::new(
        RejectReason::Shape,
        "object has neither `alerts` (a webhook payload) nor `labels` (an alert)",
    ))
}

/// A webhook payload or a single alert: the fields of both, read in one
/// pass (serde's `flatten` would buffer the object). Unknown fields
/// (`groupKey`, `commonLabels`, Grafana's `orgId`, ...) are skipped.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    alerts: Option<Vec<RawAlert<'a>>>,
    #[serde(borrow, default)]
    labels: Option<RawLabels<'a>>,
    #[serde(borrow, default)]
    annotations: RawAnnotations<'a>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "startsAt")]
    starts_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "endsAt")]
    ends_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fingerprint: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct RawAlert<'a> {
    #[serde(borrow, default)]
    labels: Option<RawLabels<'a>>,
    #[serde(borrow, default)]
    annotations: RawAnnotations<'a>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "startsAt")]
    starts_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "endsAt")]
    ends_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fingerprint: Option<Cow<'a, str>>,
}

impl<'a> RawAlert<'a> {
    fn validate(
        self,
        limits: &DecodeLimits,
        clock: Option<Timestamp>,
    ) -> Result<AlertRecord<'a>, DecodeError> {
        let labels = validated_labels(self.labels, limits)?;
        let status = match self.status.as_deref() {
            None | Some("firing") => AlertStatus::Firing,
            Some("resolved") => AlertStatus::Resolved,
            Some(other) => {
                return Err(DecodeError::new(
                    RejectReason::Status,
                    format!("status {} is neither \"firing\" nor \"resolved\"", quote(other)),
                ));
            }
        };
        let starts_at = match optional_time("startsAt", self.starts_at.as_deref())? {
            Some(t) => t,
            None => clock.ok_or_else(|| {
                DecodeError::new(
                    RejectReason::NoTime,
                    "alert has no startsAt and no earlier record gives the time",
                )
            })?,
        };
        let mut ends_at = optional_time("endsAt", self.ends_at.as_deref())?;
        if status == AlertStatus::Resolved && ends_at.is_none() {
            ends_at = Some(clock.map_or(starts_at, |now| now.max(starts_at)));
        }
        let fingerprint = match self.fingerprint.as_deref() {
            Some(text) => Fingerprint::parse_hex(text).ok_or_else(|| {
                DecodeError::new(
                    RejectReason::Fingerprint,
                    format!("fingerprint {} is not 16 hex digits", quote(text)),
                )
            })?,
            None => fingerprint_of(&labels),
        };
        Ok(AlertRecord {
            fingerprint,
            status,
            starts_at,
            ends_at,
            labels,
            runbook_url: self.annotations.runbook_url,
            summary: self.annotations.summary,
        })
    }
}

fn validated_labels<'a>(
    raw: Option<RawLabels<'a>>,
    limits: &DecodeLimits,
) -> Result<Labels<'a>, DecodeError> {
    let pairs = match raw {
        Some(RawLabels(pairs)) if !pairs.is_empty() => pairs,
        _ => {
            return Err(DecodeError::new(RejectReason::NoLabels, "alert has no labels"));
        }
    };
    if pairs.len() > limits.max_labels {
        return Err(DecodeError::new(
            RejectReason::TooManyLabels,
            format!(
                "alert has {} labels, more than the limit of {}",
                pairs.len(),
                limits.max_labels
            ),
        ));
    }
    for (name, value) in &pairs {
        if name.is_empty() {
            return Err(DecodeError::new(RejectReason::LabelName, "a label name is empty"));
        }
        if name.len() + value.len() > limits.max_label_bytes {
            return Err(DecodeError::new(
                RejectReason::LabelTooLong,
                format!(
                    "label {} is {} bytes, more than the limit of {}",
                    quote(name),
                    name.len() + value.len(),
                    limits.max_label_bytes
                ),
            ));
        }
    }
    Ok(Labels::from_pairs(pairs))
}

fn optional_time(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, DecodeError> {
    let Some(text) = text else { return Ok(None) };
    if text.is_empty() {
        return Ok(None);
    }
    Timestamp::parse_rfc3339(text).map_err(|e| {
        DecodeError::new(RejectReason::Timestamp, format!("{field} {}: {e}", quote(text)))
    })
}

/// Label pairs in input order, strings borrowed where unescaped.
#[derive(Default)]
struct RawLabels<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

/// A string that borrows from the input when it has no escapes.
#[derive(Deserialize)]
struct CowStr<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for RawLabels<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LabelsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for LabelsVisitor<'a> {
            type Value = RawLabels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string label values")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((CowStr(name), CowStr(value))) = map.next_entry()? {
                    pairs.push((name, value));
                }
                Ok(RawLabels(pairs))
            }
        }
        d.deserialize_map(LabelsVisitor(std::marker::PhantomData))
    }
}

/// The annotations triage reads; the rest are skipped without allocating.
#[derive(Default)]
struct RawAnnotations<'a> {
    runbook_url: Option<Cow<'a, str>>,
    summary: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawAnnotations<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AnnotationsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for AnnotationsVisitor<'a> {
            type Value = RawAnnotations<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of annotations")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = RawAnnotations::default();
                while let Some(CowStr(key)) = map.next_key()? {
                    match key.as_ref() {
                        "runbook_url" => out.runbook_url = Some(map.next_value::<CowStr>()?.0),
                        "summary" => out.summary = Some(map.next_value::<CowStr>()?.0),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawAnnotations::default())
            }
        }
        d.deserialize_any(AnnotationsVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Result<DecodedLine<'_>, DecodeError> {
        decode_line(line.as_bytes(), &DecodeLimits::default(), None)
    }

    fn reason_of(line: &str) -> RejectReason {
        match decode(line) {
            Err(e) => e.reason,
            Ok(d) if !d.rejected.is_empty() => d.rejected[0].error.reason,
            Ok(d) => panic!("accepted: {:?}", d.alerts),
        }
    }

    const WEBHOOK: &str = r#"{"version":"4","groupKey":"{}:{}","truncatedAlerts":0,
        "status":"firing","receiver":"triage","groupLabels":{},"commonLabels":{},
        "commonAnnotations":{},"externalURL":"http://am:9093","orgId":1,
        "alerts":[{"status":"firing","labels":{"alertname":"alert1","severity":"critical"},
        "annotations":{"summary":"it broke","runbook_url":"https://rb/1","extra":{"x":1}},
        "startsAt":"2024-05-01T12:00:00.5Z","endsAt":"0001-01-01T00:00:00Z",
        "generatorURL":"http://prom/graph","fingerprint":"0223b772b51c29e1","values":{"A":1}},
        {"status":"resolved","labels":{"alertname":"b"},"startsAt":"2024-05-01T12:00:00Z",
        "endsAt":"2024-05-01T12:05:00Z"}]}"#;

    #[test]
    fn decodes_a_webhook_payload_and_tolerates_unknown_fields() {
        let d = decode(WEBHOOK).unwrap_or_default();
        assert_eq!(d.alerts.len(), 2, "{:?}", d.rejected);
        let a = &d.alerts[0];
        assert_eq!(a.fingerprint.to_string(), "0223b772b51c29e1");
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.ends_at, None);
        assert_eq!(a.starts_at.to_string(), "2024-05-01T12:00:00.5Z");
        assert_eq!(a.runbook_url.as_deref(), Some("https://rb/1"));
        assert_eq!(a.summary.as_deref(), Some("it broke"));
        let b = &d.alerts[1];
        assert_eq!(b.status, AlertStatus::Resolved);
        assert_eq!(b.event_time().to_string(), "2024-05-01T12:05:00Z");
    }

    #[test]
    fn decodes_an_api_v2_array_and_computes_missing_fingerprints() {
        let line = r#"[{"labels":{"job":"foo","severity":"warning"},
            "startsAt":"2024-05-01T12:00:00Z"},
            {"labels":{"severity":"critical","job":"foo"},"startsAt":"2024-05-01T12:00:00Z"}]"#;
        let d = decode(line).unwrap_or_default();
        let fps: Vec<String> = d.alerts.iter().map(|a| a.fingerprint.to_string()).collect();
        assert_eq!(fps, ["9266ef3da838ad95", "3b15fd163d36582e"]);
    }

    #[test]
    fn a_single_alert_needs_only_labels_when_the_stream_has_a_time() {
        let line = r#"{"labels":{"alertname":"x"}}"#;
        assert_eq!(reason_of(line), RejectReason::NoTime);
        let clock = Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").ok().flatten();
        let d = decode_line(line.as_bytes(), &DecodeLimits::default(), clock).unwrap_or_default();
        assert_eq!(d.alerts.len(), 1);
        assert_eq!(Some(d.alerts[0].starts_at), clock);
    }

    #[test]
    fn escaped_strings_decode_to_their_values() {
        let line = r#"{"labels":{"alertname":"a\"b\u00e9"},"startsAt":"2024-05-01T12:00:00Z"}"#;
        let d = decode(line).unwrap_or_default();
        assert_eq!(d.alerts[0].alertname(), "a\"bé");
    }

    #[test]
    fn a_bad_alert_is_rejected_alone_and_the_line_keeps_the_rest() {
        let line = r#"[{"labels":{"a":"1"},"startsAt":"yesterday"},
            {"labels":{"a":"2"},"startsAt":"2024-05-01T12:00:00Z"}]"#;
        let d = decode(line).unwrap_or_default();
        assert_eq!(d.alerts.len(), 1);
        assert_eq!(d.rejected.len(), 1);
        assert_eq!(d.rejected[0].index, 0);
        assert_eq!(d.rejected[0].error.reason, RejectReason::Timestamp);
        assert!(d.rejected[0].error.message.contains("startsAt \"yesterday\""));
    }

    #[test]
    fn every_error_path_has_its_own_reason() {
        let t = r#""startsAt":"2024-05-01T12:00:00Z""#;
        let cases = [
            ("{not json", RejectReason::Json),
            (r#"{"labels":{"a":1}}"#, RejectReason::Json),
            ("\"just a string\"", RejectReason::Shape),
            ("   ", RejectReason::Shape),
            (r#"{"receiver":"x"}"#, RejectReason::Shape),
            (r#"{"version":"5","alerts":[]}"#, RejectReason::Version),
            (&format!(r#"{{"labels":{{}},{t}}}"#), RejectReason::NoLabels),
            (&format!(r#"{{"annotations":{{}},"alerts":[{{{t}}}]}}"#), RejectReason::NoLabels),
            (&format!(r#"{{"labels":{{"":"x"}},{t}}}"#), RejectReason::LabelName),
            (&format!(r#"{{"labels":{{"a":"b"}},"status":"ok",{t}}}"#), RejectReason::Status),
            (
                &format!(r#"{{"labels":{{"a":"b"}},"fingerprint":"xyz",{t}}}"#),
                RejectReason::Fingerprint,
            ),
            (r#"{"labels":{"a":"b"},"startsAt":"2024-02-30T00:00:00Z"}"#, RejectReason::Timestamp),
            (
                &format!(r#"{{"labels":{{"a":"{}"}},{t}}}"#, "v".repeat(5000)),
                RejectReason::LabelTooLong,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(reason_of(line), want, "{line}");
        }
    }

    #[test]
    fn too_many_labels_are_rejected() {
        let labels: Vec<String> = (0..200).map(|i| format!("\"l{i}\":\"v\"")).collect();
        let line =
            format!(r#"{{"labels":{{{}}},"startsAt":"2024-05-01T12:00:00Z"}}"#, labels.join(","));
        assert_eq!(reason_of(&line), RejectReason::TooManyLabels);
    }

    #[test]
    fn invalid_utf8_is_a_json_error_not_a_panic() {
        let mut line = br#"{"labels":{"a":""#.to_vec();
        line.extend_from_slice(&[0xff, 0xfe]);
        line.extend_from_slice(br#""},"startsAt":"2024-05-01T12:00:00Z"}"#);
        let err = decode_line(&line, &DecodeLimits::default(), None).err();
        assert_eq!(err.map(|e| e.reason), Some(RejectReason::Json));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            let _ = decode_line(&bytes, &DecodeLimits::default(), None);
        }

        #[test]
        fn mutated_payloads_never_panic(
            cut in 0usize..WEBHOOK.len(),
            byte in proptest::num::u8::ANY,
        ) {
            let mut line = WEBHOOK.as_bytes().to_vec();
            line[cut] = byte;
            let _ = decode_line(&line, &DecodeLimits::default(), None);
            let _ = decode_line(&line[..cut], &DecodeLimits::default(), None);
        }
    }
}
