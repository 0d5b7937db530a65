//! Alerts as they arrive: identity (the label set and its fingerprint),
//! status, times, and the few annotations the engine reads.
//!
//! An [`AlertRecord`] borrows its strings from the input line where it can,
//! so decoding a storm does not allocate a copy of every label; the
//! correlator keeps only what it needs from it.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::Timestamp;

/// The identity of an alert: the 64-bit FNV-1a hash of its sorted label set,
/// exactly as Prometheus and Alertmanager compute it, printed as 16 hex
/// digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// Parses the 16-hex-digit form Alertmanager sends (case-insensitive).
    pub fn parse_hex(text: &str) -> Option<Fingerprint> {
        if text.len() != 16 {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Fingerprint)
    }
}

impl Fingerprint {
    /// The 16 lowercase hex digits, without going through `fmt` (events
    /// print one per member alert).
    fn hex(self) -> [u8; 16] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = DIGITS[(self.0 >> (60 - 4 * i) & 0xf) as usize];
        }
        out
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = self.hex();
        s.serialize_str(std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        Fingerprint::parse_hex(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not 16 hex digits")))
    }
}

/// Whether an alert is firing or has resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

impl AlertStatus {
    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// The urgency an alert's own `severity` label claims. It feeds the
/// incident's priority together with the blast radius, never alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Informational; never pages on its own.
    Info,
    /// A problem that needs attention soon. Unknown values count as this.
    Warning,
    /// Service-affecting errors.
    Error,
    /// Page now.
    Critical,
}

impl AlertSeverity {
    /// Maps the common spellings of the `severity` label. Values nobody
    /// agrees on (or a missing label) count as `warning`: strong enough to
    /// matter, too weak to page alone.
    pub fn from_label(value: Option<&str>) -> AlertSeverity {
        let Some(value) = value else {
            return AlertSeverity::Warning;
        };
        match value.to_ascii_lowercase().as_str() {
            "critical" | "crit" | "page" | "p1" | "fatal" | "emergency" => AlertSeverity::Critical,
            "error" | "err" | "high" | "major" | "p2" => AlertSeverity::Error,
            "info" | "informational" | "low" | "none" | "notice" | "p4" | "p5" => {
                AlertSeverity::Info
            }
            _ => AlertSeverity::Warning,
        }
    }

    /// The lowercase name used in configuration and output.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Info => "info",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Error => "error",
            AlertSeverity::Critical => "critical",
        }
    }
}

/// A label set sorted by name, as Prometheus keeps it. Strings are borrowed
/// from the input when they had no escapes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Labels<'a> {
    /// Builds a label set, sorting by name. Duplicate names keep the last
    /// value, as a JSON object with a repeated key does in Go.
    pub fn from_pairs(mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Self {
        // Alertmanager and Prometheus send labels sorted already.
        if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            return Labels { pairs };
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deduped: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match deduped.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => deduped.push(pair),
            }
        }
        Labels { pairs: deduped }
    }

    /// The value of a label, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_ref())
    }

    /// Name/value pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// One alert observation as decoded from the input: a notification that the
/// alert identified by `fingerprint` is firing or resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRecord<'a> {
    /// The label set's fingerprint (given by the sender or computed).
    pub fingerprint: Fingerprint,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// When this firing occurrence started. Together with the fingerprint it
    /// identifies the occurrence: a re-notification repeats it.
    pub starts_at: Timestamp,
    /// When the alert ended (resolved) or will be considered ended unless
    /// re-sent (firing, as Prometheus sends it). `None` when unknown.
    pub ends_at: Option<Timestamp>,
    /// The identity of the alert.
    pub labels: Labels<'a>,
    /// The `runbook_url` annotation, if any.
    pub runbook_url: Option<Cow<'a, str>>,
    /// The `summary` annotation, if any.
    pub summary: Option<Cow<'a, str>>,
}

impl AlertRecord<'_> {
    /// The instant this observation speaks about: the start of a firing
    /// alert, the end of a resolved one.
    pub fn event_time(&self) -> Timestamp {
        match self.status {
            AlertStatus::Firing => self.starts_at,
            AlertStatus::Resolved => self.ends_at.unwrap_or(self.starts_at),
        }
    }

    /// The `alertname` label, or the empty string.
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_and_keep_the_last_duplicate() {
        let labels = Labels::from_pairs(vec![
            ("job".into(), "a".into()),
            ("alertname".into(), "X".into()),
            ("job".into(), "b".into()),
        ]);
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(pairs, vec![("alertname", "X"), ("job", "b")]);
        assert_eq!(labels.get("job"), Some("b"));
        assert_eq!(labels.get("zone"), None);
    }

    #[test]
    fn fingerprints_print_and_parse_as_sixteen_hex_digits() {
        let fp = Fingerprint(0x0223_b772_b51c_29e1);
        assert_eq!(fp.to_string(), "0223b772b51c29e1");
        assert_eq!(Fingerprint::parse_hex("0223B772B51C29E1"), Some(fp));
        assert_eq!(Fingerprint::parse_hex("223b772b51c29e1"), None);
        assert_eq!(Fingerprint::parse_hex("0223b772b51c29eg"), None);
    }

    #[test]
    fn severity_labels_map_common_spellings() {
        assert_eq!(AlertSeverity::from_label(Some("CRITICAL")), AlertSeverity::Critical);
        assert_eq!(AlertSeverity::from_label(Some("page")), AlertSeverity::Critical);
        assert_eq!(AlertSeverity::from_label(Some("info")), AlertSeverity::Info);
        assert_eq!(AlertSeverity::from_label(Some("sev-whatever")), AlertSeverity::Warning);
        assert_eq!(AlertSeverity::from_label(None), AlertSeverity::Warning);
    }
}
