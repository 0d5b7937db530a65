//! Content features of an alert, and DBSCAN over them: the building block
//! of content correlation (alerts that topology cannot link because their
//! services are unknown or unconnected, but that say the same thing).
//!
//! # Features
//! A fixed-length vector ([`DIMS`] floats) by feature hashing, so no
//! vocabulary has to be learnt or kept, and the same alert always gives the
//! same vector:
//! - the `alertname`, weighted [`ContentSettings::alertname_weight`];
//! - every other label as `name=value`, weighted `label_weight`; labels that
//!   differ per instance of one problem (`instance`, `pod`, `host`, ...:
//!   `volatile_labels`) count by name only, weighted `volatile_weight`, so
//!   the same alert on 40 hosts lands in one place;
//! - the words of the `summary` annotation (letters only, lowercased, three
//!   characters or more), weighted `text_weight` each.
//!
//! Each token hashes (FNV-1a, fixed) to a dimension and a sign; the vector
//! is then scaled to length 1, so the Euclidean distance between two alerts
//! is `sqrt(2 - 2 cos)`: 0 for the same content, about 1.41 for nothing in
//! common. Time is not a feature: only alerts of the open window are ever
//! clustered together.
//!
//! # Clustering
//! [`cluster`] runs DBSCAN from `linfa-clustering` with `eps` and
//! `min_points`: deterministic (no random initialisation), so the same
//! points in the same order give the same clusters. Its cost is quadratic
//! in the points of one run, which is why a run takes at most
//! `max_points`, the most recent ones; what falls outside is simply not
//! clustered by content (topology and the label rule still apply).
//!
//! # Bursts against the baseline
//! Alike is not enough: an alert that fires all day somewhere in a large
//! fleet (`HighCPU`, `DiskFillingUp`) is alike on every service, and fifty
//! of them in a window are the usual background, not one problem.
//! [`BaselineRates`] counts each `alertname`'s new alerts over
//! `content.baseline` in fixed buckets of event time; a cluster merges
//! groups only when its alerts are at least `min_burst` times what that
//! baseline predicts for one window. A cause outside the catalog is a
//! burst of an alert that rarely fires; the background is not.

use linfa::traits::Transformer as _;
use linfa_clustering::Dbscan;
use ndarray::Array2;
use std::time::Duration;

use triage_model::{AlertRecord, Timestamp};

/// Length of a feature vector.
pub const DIMS: usize = 32;

/// The knobs of content features and clustering.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentSettings {
    /// Whether content clustering runs at all.
    pub enabled: bool,
    /// Event time between two clustering runs.
    pub period: std::time::Duration,
    /// Largest distance between two neighbours.
    pub eps: f32,
    /// Neighbours (itself included) that make a point a core point.
    pub min_points: usize,
    /// Distinct services (a missing service label counts as one) a
    /// cluster's alerts must span before it merges groups: two faults that
    /// happen to raise the same alert at once are two incidents, while a
    /// cause outside the catalog reaches many services.
    pub min_services: usize,
    /// Most points in one clustering run.
    pub max_points: usize,
    /// How far back the baseline rate of each alertname looks.
    pub baseline: std::time::Duration,
    /// How many times its baseline a cluster's alerts must be to merge.
    pub min_burst: f32,
    /// Weight of the `alertname` token.
    pub alertname_weight: f32,
    /// Weight of a `name=value` label token.
    pub label_weight: f32,
    /// Weight of a volatile label's name.
    pub volatile_weight: f32,
    /// Weight of one summary word.
    pub text_weight: f32,
    /// Labels whose values differ between instances of one problem.
    pub volatile_labels: Vec<String>,
}

impl Default for ContentSettings {
    fn default() -> Self {
        ContentSettings {
            enabled: true,
            period: std::time::Duration::from_secs(30),
            eps: 0.5,
            min_points: 3,
            min_services: 3,
            max_points: 2_000,
            baseline: std::time::Duration::from_secs(3600),
            min_burst: 3.0,
            alertname_weight: 3.0,
            label_weight: 1.0,
            volatile_weight: 0.25,
            text_weight: 0.5,
            volatile_labels: [
                "instance",
                "pod",
                "pod_name",
                "host",
                "hostname",
                "node",
                "container",
                "container_id",
                "ip",
                "address",
                "device",
                "mountpoint",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// An alert's content as a unit vector.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Features(pub [f32; DIMS]);

/// FNV-1a 64 of `parts`, separated: fixed, so features never change
/// between versions or machines.
fn token_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= 0xff;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// [`token_hash`] of `["word", word lowercased]`, without allocating.
fn word_hash(word: &str) -> u64 {
    let mut hash = token_hash(&["word"]);
    hash ^= 0xff;
    hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    let mut utf8 = [0u8; 4];
    for c in word.chars().flat_map(char::to_lowercase) {
        for byte in c.encode_utf8(&mut utf8).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn add(vector: &mut [f32; DIMS], hash: u64, weight: f32) {
    let dimension = (hash % DIMS as u64) as usize;
    let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
    vector[dimension] += sign * weight;
}

/// The feature vector of `alert`.
pub fn features(alert: &AlertRecord<'_>, settings: &ContentSettings) -> Features {
    let mut vector = [0.0f32; DIMS];
    add(&mut vector, token_hash(&["alertname", alert.alertname()]), settings.alertname_weight);
    for (name, value) in alert.labels.iter() {
        if name == "alertname" {
            continue;
        }
        if settings.volatile_labels.iter().any(|v| v == name) {
            add(&mut vector, token_hash(&["label", name]), settings.volatile_weight);
        } else {
            add(&mut vector, token_hash(&["label", name, value]), settings.label_weight);
        }
    }
    if let Some(summary) = &alert.summary {
        for word in summary.split(|c: char| !c.is_alphabetic()).filter(|w| w.chars().count() >= 3) {
            add(&mut vector, word_hash(word), settings.text_weight);
        }
    }
    let length = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if length > 0.0 {
        for x in &mut vector {
            *x /= length;
        }
    }
    Features(vector)
}

/// Euclidean distance between two feature vectors.
pub fn distance(a: &Features, b: &Features) -> f32 {
    a.0.iter().zip(&b.0).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

/// DBSCAN over at most `max_points` of `points` (the last ones): the
/// cluster of each point, `None` for noise and for points left out.
pub fn cluster(points: &[Features], settings: &ContentSettings) -> Vec<Option<usize>> {
    let mut labels = vec![None; points.len()];
    let skip = points.len().saturating_sub(settings.max_points);
    let run = &points[skip..];
    if run.len() < settings.min_points.max(2) {
        return labels;
    }
    let mut data = Array2::<f32>::zeros((run.len(), DIMS));
    for (mut row, point) in data.rows_mut().into_iter().zip(run) {
        for (cell, value) in row.iter_mut().zip(point.0) {
            *cell = value;
        }
    }
    let params = Dbscan::params(settings.min_points).tolerance(settings.eps);
    // Only invalid parameters fail, which validated settings rule out;
    // clustering nothing is then the safe answer.
    if let Ok(found) = params.transform(&data) {
        for (slot, label) in labels[skip..].iter_mut().zip(found.iter()) {
            *slot = *label;
        }
    }
    labels
}

/// Buckets of one baseline: its resolution.
const BUCKETS: usize = 12;

/// One alertname's ring: the bucket index of the latest count, and the
/// counts of the last [`BUCKETS`] buckets.
type Ring = (i64, [u32; BUCKETS]);

/// New alerts per `alertname` over the last `baseline` of event time, in
/// [`BUCKETS`] fixed buckets (whole multiples of `baseline / BUCKETS`
/// since the epoch, so batching and restarts change nothing). Integer
/// counts: the same input always gives the same figures.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BaselineRates {
    /// Per alertname, sorted.
    names: std::collections::BTreeMap<String, Ring>,
}

impl BaselineRates {
    fn bucket_of(at: Timestamp, baseline: Duration) -> i64 {
        let width = (baseline.as_nanos() / BUCKETS as u128).max(1);
        at.unix_nanos().div_euclid(i64::try_from(width).unwrap_or(i64::MAX))
    }

    /// Moves a ring on to `bucket`, emptying the buckets passed over.
    fn advance(ring: &mut Ring, bucket: i64) {
        let (last, counts) = ring;
        if bucket <= *last {
            return;
        }
        let steps = (bucket - *last).min(BUCKETS as i64);
        for step in 1..=steps {
            counts[(*last + step).rem_euclid(BUCKETS as i64) as usize] = 0;
        }
        *last = bucket;
    }

    /// Counts one new alert named `name` at `at`.
    pub fn record(&mut self, name: &str, at: Timestamp, baseline: Duration) {
        let bucket = Self::bucket_of(at, baseline);
        let ring = match self.names.get_mut(name) {
            Some(ring) => ring,
            None => self.names.entry(name.to_owned()).or_insert((bucket, [0; BUCKETS])),
        };
        Self::advance(ring, bucket);
        // A late alert lands in the current bucket: close enough for a rate.
        let slot = ring.0.rem_euclid(BUCKETS as i64) as usize;
        ring.1[slot] = ring.1[slot].saturating_add(1);
    }

    /// `name`'s ring as it stands at `now` (a copy, moved on), with the
    /// bucket `now` falls in.
    fn ring_at(&self, name: &str, now: Timestamp, baseline: Duration) -> Option<(Ring, i64)> {
        let mut ring = *self.names.get(name)?;
        let bucket = Self::bucket_of(now, baseline);
        Self::advance(&mut ring, bucket);
        Some((ring, bucket))
    }

    /// New alerts named `name` in the baseline up to `now`.
    pub fn count(&self, name: &str, now: Timestamp, baseline: Duration) -> u64 {
        self.ring_at(name, now, baseline)
            .map_or(0, |((_, counts), _)| counts.iter().map(|&n| u64::from(n)).sum())
    }

    /// Whether `name` is bursting at `now` by its counts alone: its last
    /// two buckets (the current one may have just begun) hold at least
    /// `min_burst` times their share of the whole baseline. A new alert of
    /// a name that is not keeps no features: at its usual rate it could
    /// never be part of a burst's cluster.
    pub fn is_bursting(&self, name: &str, now: Timestamp, settings: &ContentSettings) -> bool {
        let Some(((_, counts), bucket)) = self.ring_at(name, now, settings.baseline) else {
            return false;
        };
        let at = |b: i64| u64::from(counts[b.rem_euclid(BUCKETS as i64) as usize]);
        let recent = at(bucket) + at(bucket - 1);
        let total: u64 = counts.iter().map(|&n| u64::from(n)).sum();
        let share = 2.0 / BUCKETS as f64;
        recent as f64 >= f64::from(settings.min_burst) * total as f64 * share
    }

    /// Forgets the names with nothing left in the baseline at `now`.
    pub fn prune(&mut self, now: Timestamp, baseline: Duration) {
        let bucket = Self::bucket_of(now, baseline);
        self.names.retain(|_, (last, _)| bucket - *last < BUCKETS as i64);
    }

    /// Whether `alerts` alerts of one `window` are a burst: at least
    /// `min_burst` times the share of one window in the baseline counts of
    /// `names`. The burst is itself counted in the baseline, so an alert
    /// never seen before is a burst of up to `baseline / window` times.
    pub fn is_burst<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
        alerts: usize,
        (now, window): (Timestamp, Duration),
        settings: &ContentSettings,
    ) -> bool {
        let total: u64 = names.map(|n| self.count(n, now, settings.baseline)).sum();
        let share = (window.as_secs_f64() / settings.baseline.as_secs_f64().max(1e-9)).min(1.0);
        alerts as f64 >= f64::from(settings.min_burst) * total as f64 * share
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triage_formats::{DecodeLimits, decode_line};

    fn vector(line: &str) -> Features {
        let decoded = decode_line(line.as_bytes(), &DecodeLimits::default(), None);
        let alerts = decoded.map(|d| d.alerts).unwrap_or_default();
        features(&alerts[0], &ContentSettings::default())
    }

    fn alert(name: &str, labels: &str, summary: &str) -> String {
        format!(
            r#"{{"labels":{{"alertname":"{name}"{labels}}},"annotations":{{"summary":"{summary}"}},
                "startsAt":"2026-01-01T10:00:00Z"}}"#
        )
    }

    #[test]
    fn the_same_problem_on_many_hosts_is_one_point_and_another_problem_is_far() {
        let disk = |host: &str| {
            vector(&alert(
                "DiskFull",
                &format!(r#","instance":"{host}:9100","cluster":"eu-1""#),
                &format!("Disk almost full on {host}"),
            ))
        };
        let (a, b) = (disk("web-1"), disk("db-7"));
        assert!(distance(&a, &b) < 0.2, "{}", distance(&a, &b));
        let other = vector(&alert("HighLatency", r#","service":"checkout""#, "Checkout is slow"));
        assert!(distance(&a, &other) > 1.0, "{}", distance(&a, &other));
        let length: f32 = a.0.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((length - 1.0).abs() < 1e-5);
    }

    #[test]
    fn words_hash_as_their_lowercase_spelling() {
        for word in ["Disk", "ÉTAT", "straße", "already"] {
            assert_eq!(word_hash(word), token_hash(&["word", &word.to_lowercase()]), "{word}");
        }
    }

    #[test]
    fn the_baseline_counts_an_hour_in_buckets_and_tells_a_burst_from_the_background() {
        let settings = ContentSettings::default();
        let hour = settings.baseline;
        let at = |secs: i64| Timestamp::from_unix_secs(1_767_261_600 + secs);
        let mut rates = BaselineRates::default();
        // One HighCPU a minute for an hour.
        for minute in 0..60 {
            rates.record("HighCPU", at(minute * 60), hour);
        }
        assert_eq!(rates.count("HighCPU", at(3599), hour), 60);
        // Five of them in a window is the usual rate, fifteen is a burst.
        let window = (at(3599), std::time::Duration::from_secs(300));
        assert!(!rates.is_burst(std::iter::once("HighCPU"), 5, window, &settings));
        assert!(rates.is_burst(std::iter::once("HighCPU"), 15, window, &settings));
        assert!(!rates.is_bursting("HighCPU", at(3599), &settings));
        // A first-ever alert is a burst at once.
        rates.record("TLSHandshakeFailing", at(3599), hour);
        assert!(rates.is_bursting("TLSHandshakeFailing", at(3599), &settings));
        // Forty minutes on, the first half hour has left the ring; an
        // hour past the last alert, the name is forgotten.
        assert_eq!(rates.count("HighCPU", at(3599 + 40 * 60), hour), 20);
        rates.prune(at(3599 + 3600), hour);
        assert_eq!(rates.count("HighCPU", at(3599 + 3600), hour), 0);
        assert_eq!(rates.names.len(), 0);
    }

    #[test]
    fn dbscan_finds_the_fleet_event_and_leaves_the_rest_as_noise_deterministically() {
        let mut points: Vec<Features> = (0..6)
            .map(|i| {
                vector(&alert(
                    "NodeClockSkew",
                    &format!(r#","instance":"node-{i}:9100""#),
                    "Clock skew detected on node",
                ))
            })
            .collect();
        points.push(vector(&alert("HighErrorRate", r#","service":"payments""#, "Errors high")));
        points.push(vector(&alert("QueueBacklog", r#","service":"mailer""#, "Backlog grows")));
        let settings = ContentSettings::default();
        let labels = cluster(&points, &settings);
        assert!(labels[..6].iter().all(|l| l.is_some() && *l == labels[0]), "{labels:?}");
        assert_eq!(labels[6..], [None, None]);
        assert_eq!(cluster(&points, &settings), labels, "same input, same clusters");
        let bounded = ContentSettings { max_points: 4, ..settings };
        let labels = cluster(&points, &bounded);
        assert!(labels[..4].iter().all(Option::is_none), "past the bound: not clustered");
    }
}
