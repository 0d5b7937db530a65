//! The storm itself: faults, propagation, noise, flapping, re-notification,
//! fleet-wide alerts, shared causes outside the catalog, and the arrival
//! order.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use triage_formats::fingerprint_of;
use triage_model::{Fingerprint, Labels, Timestamp};
use triage_topology::{ServiceId, Topology};

use crate::rng::SplitMix64;

/// What to generate.
#[derive(Clone, Debug)]
pub struct StormSpec {
    /// Seed of everything random.
    pub seed: u64,
    /// Event time of the beginning.
    pub start: Timestamp,
    /// How long the storm runs.
    pub duration: Duration,
    /// Independent faults (incidents in the ground truth).
    pub faults: u32,
    /// Background noise alerts per hour, on random services.
    pub noise_per_hour: u32,
    /// Alerts that flap (fire and resolve every minute or two).
    pub flapping: u32,
    /// Fleet-wide events: one alertname on many hosts, no service label.
    pub fleet_events: u32,
    /// Shared causes outside the catalog (an expired internal certificate,
    /// failing DNS, a rotated signing key): services with no dependency
    /// between them raise the same alert with the same error text at once.
    pub shared_causes: u32,
    /// Firing alerts are re-sent this often (0: never).
    pub renotify_every: Duration,
    /// Records arrive up to this much after their event time.
    pub max_delay: Duration,
    /// Pad each record's description to about this many bytes (0: none).
    pub pad_to_bytes: usize,
    /// Share of records sent as API v2 arrays rather than webhook payloads.
    pub api_v2_share: f64,
    /// Instances (pods) alerting per affected service: fewest and most.
    /// Services run several replicas and most alert rules keep the `pod`
    /// label, so a failing service raises one alert per pod.
    pub instances: (u64, u64),
    /// Symptom alerts a caller of a failing service raises together
    /// (latency, errors, saturation, SLO burn): fewest and most.
    pub symptoms: (u64, u64),
}

impl Default for StormSpec {
    fn default() -> Self {
        StormSpec {
            seed: 1,
            start: Timestamp::from_unix_secs(1_767_261_600), // 2026-01-01T10:00:00Z
            duration: Duration::from_secs(3 * 3600),
            faults: 6,
            noise_per_hour: 30,
            flapping: 3,
            fleet_events: 1,
            shared_causes: 1,
            renotify_every: Duration::from_secs(5 * 60),
            max_delay: Duration::from_secs(20),
            pad_to_bytes: 0,
            api_v2_share: 0.1,
            instances: (2, 5),
            symptoms: (1, 3),
        }
    }
}

/// The generated storm.
#[derive(Clone, Debug, Default)]
pub struct Storm {
    /// JSON lines in arrival order.
    pub lines: Vec<String>,
    /// Ground truth, one row per distinct alert, by fingerprint.
    pub truth: Vec<TruthRow>,
}

/// Where one alert really belongs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRow {
    /// The alert.
    pub fingerprint: Fingerprint,
    /// `fault-N`, `fleet-N`, `shared-N`, or `None` for noise.
    pub incident: Option<String>,
    /// The service the fault started in.
    pub root_cause: Option<String>,
}

/// One alert occurrence to be emitted: fires at `start`, resolves at `end`.
struct Occurrence {
    labels: Vec<(String, String)>,
    summary: String,
    start: Timestamp,
    end: Timestamp,
}

struct Record {
    arrival: Timestamp,
    order: usize,
    json: String,
}

/// Generates a storm over `topology`.
pub fn generate(topology: &Topology, spec: &StormSpec) -> Storm {
    let mut rng = SplitMix64::new(spec.seed);
    let mut occurrences: Vec<(Occurrence, Option<(String, String)>)> = Vec::new();
    let span = spec.duration.as_secs().max(60);
    let ids: Vec<ServiceId> = topology.ids().collect();

    // What each fault made alert, and when: no fault starts in a service
    // that alerts for another at the time (see `Busy::overlaps`).
    let mut busy: Vec<Busy> = Vec::new();
    for fault in 0..spec.faults {
        let mut drawn = None;
        for _ in 0..16 {
            let Some(&root) = pick_root(topology, &ids, &mut rng) else {
                break;
            };
            let t0 = spec.start.plus(Duration::from_secs(rng.below(span * 3 / 4)));
            let length = Duration::from_secs(rng.between(6 * 60, 25 * 60));
            let (alerts, affected) =
                fault_alerts(topology, (fault, root), (t0, length), spec, &mut rng);
            let this = Busy { affected, from: t0, to: t0.plus(length).plus(SYMPTOM_TAIL) };
            let clash = busy.iter().any(|earlier| earlier.overlaps(&this));
            drawn = Some((root, alerts, this));
            if !clash {
                break;
            }
        }
        let Some((root, alerts, this)) = drawn else {
            break;
        };
        busy.push(this);
        let truth = (format!("fault-{fault}"), topology.name(root).to_owned());
        for occurrence in alerts {
            occurrences.push((occurrence, Some(truth.clone())));
        }
    }
    let noise = spec.noise_per_hour as u64 * span / 3600;
    for i in 0..noise {
        if ids.is_empty() {
            break;
        }
        let service = *rng.pick(&ids);
        let start = spec.start.plus(Duration::from_secs(rng.below(span)));
        let end = start.plus(Duration::from_secs(rng.between(60, 8 * 60)));
        let name = *rng.pick(&["HighCPU", "DiskFillingUp", "PodRestarting", "CertExpiringSoon"]);
        let severity = if rng.chance(0.8) { "warning" } else { "info" };
        let labels = alert_labels(name, topology.name(service), severity, &format!("noise-{i}"));
        let summary = format!("{name} on {}", topology.name(service));
        occurrences.push((Occurrence { labels, summary, start, end }, None));
    }
    for i in 0..spec.flapping {
        if ids.is_empty() {
            break;
        }
        let service = *rng.pick(&ids);
        let mut at = spec.start.plus(Duration::from_secs(rng.below(span / 2)));
        for _ in 0..rng.between(5, 9) {
            let up = Duration::from_secs(rng.between(40, 100));
            let labels = alert_labels(
                "ProbeFailing",
                topology.name(service),
                "warning",
                &format!("flap-{i}"),
            );
            let summary = format!("probe failing for {}", topology.name(service));
            occurrences.push((Occurrence { labels, summary, start: at, end: at.plus(up) }, None));
            at = at.plus(up).plus(Duration::from_secs(rng.between(30, 90)));
        }
    }
    for event in 0..spec.fleet_events {
        let t0 = spec.start.plus(Duration::from_secs(rng.below(span * 3 / 4)));
        let hosts = rng.between(12, 30);
        let truth = (format!("fleet-{event}"), String::new());
        for host in 0..hosts {
            let start = t0.plus(Duration::from_secs(rng.below(90)));
            let end = start.plus(Duration::from_secs(rng.between(10 * 60, 20 * 60)));
            let labels = vec![
                ("alertname".to_owned(), "NodeClockSkew".to_owned()),
                ("cluster".to_owned(), "eu-1".to_owned()),
                ("instance".to_owned(), format!("node-{event}-{host:02}:9100")),
                ("severity".to_owned(), "warning".to_owned()),
            ];
            let summary = format!("clock skew on node-{event}-{host:02}");
            occurrences.push((Occurrence { labels, summary, start, end }, Some(truth.clone())));
        }
    }
    for event in 0..spec.shared_causes {
        if ids.is_empty() {
            break;
        }
        let t0 = spec.start.plus(Duration::from_secs(rng.below(span * 3 / 4)));
        let length = Duration::from_secs(rng.between(5 * 60, 15 * 60));
        let (name, text) = *rng.pick(&SHARED_CAUSES);
        let truth = (format!("shared-{event}"), String::new());
        let mut hit: Vec<ServiceId> = Vec::new();
        // Like a fault, a shared cause starts in no service that is failing
        // for something else at the time.
        let busy_at = |service: ServiceId| {
            let here = Busy { affected: vec![service], from: t0, to: t0.plus(length) };
            busy.iter().any(|fault| fault.overlaps(&here))
        };
        let wanted = rng.between(4, 10) as usize;
        for _ in 0..wanted * 8 {
            if hit.len() == wanted {
                break;
            }
            let service = *rng.pick(&ids);
            if hit.contains(&service) || busy_at(service) {
                continue;
            }
            hit.push(service);
            let start = t0.plus(Duration::from_secs(rng.below(60)));
            for instance in 0..rng.between(spec.instances.0, spec.instances.1) {
                let pod = format!("s{event}-{instance}");
                let labels = alert_labels(name, topology.name(service), "error", &pod);
                let summary = text.to_owned();
                let end = start.plus(length);
                occurrences.push((Occurrence { labels, summary, start, end }, Some(truth.clone())));
            }
        }
    }
    render(spec, occurrences, &mut rng)
}

/// Alerts a cause outside the catalog raises on every service it reaches,
/// with the error text the clients log: the same words everywhere.
const SHARED_CAUSES: [(&str, &str); 3] = [
    ("TLSHandshakeFailing", "x509: certificate has expired or is not yet valid"),
    ("DNSResolutionFailing", "lookup of internal service names failing with SERVFAIL"),
    ("TokenRejected", "tokens rejected by the identity provider: signature invalid"),
];

/// What the callers of a failing service alert on.
const SYMPTOMS: [&str; 4] = ["HighLatency", "HighErrorRate", "SLOBurnRateHigh", "Saturation"];

/// The longest a symptom outlives its fault.
const SYMPTOM_TAIL: Duration = Duration::from_secs(90);

/// What one fault made alert (its root first), and when.
struct Busy {
    affected: Vec<ServiceId>,
    from: Timestamp,
    to: Timestamp,
}

impl Busy {
    /// Whether one of the two faults starts in a service that alerts for
    /// the other at the time, give or take five minutes. Nobody can tell a
    /// second fault starting in a service that is already failing from the
    /// first one, and it is often no second fault at all: a pool exhausted
    /// while a dependency is slow is the slowness. So the generator draws
    /// such a fault again rather than label the pair as two incidents;
    /// faults still overlap in time on other services.
    fn overlaps(&self, other: &Busy) -> bool {
        let margin = Duration::from_secs(5 * 60);
        let near =
            |a: &Busy, b: &Busy| a.from.plus(margin) >= b.from && a.from <= b.to.plus(margin);
        let starts_in = |a: &Busy, b: &Busy| {
            a.affected.first().is_some_and(|root| b.affected.contains(root)) && near(a, b)
        };
        starts_in(self, other) || starts_in(other, self)
    }
}

/// Faults start more often in shared infrastructure: services others
/// depend on.
fn pick_root<'a>(
    topology: &Topology,
    ids: &'a [ServiceId],
    rng: &mut SplitMix64,
) -> Option<&'a ServiceId> {
    if ids.is_empty() {
        return None;
    }
    for _ in 0..8 {
        let candidate = rng.pick(ids);
        if topology.dependents(*candidate).next().is_some() {
            return Some(candidate);
        }
    }
    Some(rng.pick(ids))
}

/// The alerts of fault number `fault` starting in `root`, and the services
/// that raised them. Pod names carry
/// the fault number, as restarted pods get new names, so an alert of one
/// fault never shares its identity with another fault's.
fn fault_alerts(
    topology: &Topology,
    (fault, root): (u32, ServiceId),
    (t0, length): (Timestamp, Duration),
    spec: &StormSpec,
    rng: &mut SplitMix64,
) -> (Vec<Occurrence>, Vec<ServiceId>) {
    let (fewest, most) = spec.instances;
    let mut out = Vec::new();
    let cause = *rng.pick(&["InstanceDown", "HighErrorRate", "ConnectionPoolExhausted"]);
    for instance in 0..rng.between(fewest, most) {
        let pod = format!("f{fault}-{instance}");
        let labels = alert_labels(cause, topology.name(root), "critical", &pod);
        let start = t0.plus(Duration::from_secs(rng.below(20)));
        let summary = format!("{cause} on {}", topology.name(root));
        out.push(Occurrence { labels, summary, start, end: t0.plus(length) });
    }
    // Hop by hop to the callers, each hop later and less likely.
    let mut frontier = vec![(root, t0)];
    let mut seen = vec![root];
    for depth in 1..=3u32 {
        let mut next = Vec::new();
        for &(service, at) in &frontier {
            for caller in topology.dependents(service) {
                if seen.contains(&caller) || !rng.chance(0.75 / f64::from(depth)) {
                    continue;
                }
                seen.push(caller);
                let start = at.plus(Duration::from_secs(rng.between(15, 75)));
                let severity =
                    if topology.service(caller).tier == 1 { "critical" } else { "error" };
                let name = topology.name(caller);
                let raise = |out: &mut Vec<Occurrence>, rng: &mut SplitMix64, symptom, fires| {
                    for instance in 0..rng.between(fewest, most) {
                        let pod = format!("f{fault}-{instance}");
                        let labels = alert_labels(symptom, name, severity, &pod);
                        let summary = format!("{symptom} on {name}");
                        let end = t0
                            .plus(length)
                            .plus(Duration::from_secs(rng.between(10, SYMPTOM_TAIL.as_secs())));
                        out.push(Occurrence { labels, summary, start: fires, end });
                    }
                };
                let mut kinds = SYMPTOMS.to_vec();
                let first = kinds.swap_remove(rng.below(kinds.len() as u64) as usize);
                raise(&mut out, rng, first, start);
                let (lo, hi) = spec.symptoms;
                let more = if hi > 1 { rng.between(lo.max(1), hi).min(4) - 1 } else { 0 };
                for _ in 0..more {
                    let symptom = kinds.swap_remove(rng.below(kinds.len() as u64) as usize);
                    // Rules over longer windows (SLO burn, saturation) fire
                    // after the first symptom.
                    let fires = start.plus(Duration::from_secs(rng.between(5, 60)));
                    raise(&mut out, rng, symptom, fires);
                }
                next.push((caller, start));
            }
        }
        frontier = next;
    }
    (out, seen)
}

fn alert_labels(
    name: &str,
    service: &str,
    severity: &str,
    instance: &str,
) -> Vec<(String, String)> {
    vec![
        ("alertname".to_owned(), name.to_owned()),
        ("cluster".to_owned(), "eu-1".to_owned()),
        ("namespace".to_owned(), "shop".to_owned()),
        ("service".to_owned(), service.to_owned()),
        ("severity".to_owned(), severity.to_owned()),
        ("pod".to_owned(), format!("{service}-{instance}")),
    ]
}

fn render(
    spec: &StormSpec,
    occurrences: Vec<(Occurrence, Option<(String, String)>)>,
    rng: &mut SplitMix64,
) -> Storm {
    let mut records: Vec<Record> = Vec::new();
    let mut truth: Vec<TruthRow> = Vec::new();
    let delay = spec.max_delay.as_secs().max(1);
    for (occurrence, incident) in occurrences {
        let pairs = occurrence.labels.iter().map(|(n, v)| (n.as_str().into(), v.as_str().into()));
        let fingerprint = fingerprint_of(&Labels::from_pairs(pairs.collect()));
        if !truth.iter().any(|t| t.fingerprint == fingerprint) {
            truth.push(TruthRow {
                fingerprint,
                incident: incident.as_ref().map(|i| i.0.clone()),
                root_cause: incident.and_then(|i| (!i.1.is_empty()).then_some(i.1)),
            });
        }
        let mut sends = vec![(occurrence.start, false)];
        if !spec.renotify_every.is_zero() {
            let mut at = occurrence.start.plus(spec.renotify_every);
            while at < occurrence.end {
                sends.push((at, false));
                at = at.plus(spec.renotify_every);
            }
        }
        sends.push((occurrence.end, true));
        for (at, resolved) in sends {
            let arrival = at.plus(Duration::from_secs(rng.below(delay)));
            let json = alert_json(&occurrence, fingerprint, resolved, spec.pad_to_bytes);
            records.push(Record { arrival, order: records.len(), json });
        }
    }
    records.sort_by_key(|r| (r.arrival, r.order));
    let mut lines = Vec::with_capacity(records.len());
    let mut i = 0;
    while i < records.len() {
        if rng.chance(spec.api_v2_share) && i + 1 < records.len() {
            let batch = rng.between(2, 4) as usize;
            let end = (i + batch).min(records.len());
            let alerts: Vec<&str> = records[i..end].iter().map(|r| r.json.as_str()).collect();
            lines.push(format!("[{}]", alerts.join(",")));
            i = end;
        } else {
            lines.push(webhook(&records[i].json));
            i += 1;
        }
    }
    truth.sort_by_key(|t| t.fingerprint);
    Storm { lines, truth }
}

fn alert_json(o: &Occurrence, fp: Fingerprint, resolved: bool, pad: usize) -> String {
    let mut labels = String::new();
    for (i, (name, value)) in o.labels.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(labels, "{sep}\"{name}\":\"{value}\"");
    }
    let service = o.labels.iter().find(|l| l.0 == "service").map_or("node", |l| l.1.as_str());
    let ends = if resolved { o.end.to_string() } else { "0001-01-01T00:00:00Z".to_owned() };
    let mut description = format!("{}. Investigate the dashboards for {service}.", o.summary);
    while description.len() < pad.saturating_sub(600) {
        description
            .push_str(" Recent deploys, saturation and upstream errors are the usual suspects.");
    }
    format!(
        "{{\"status\":\"{}\",\"labels\":{{{labels}}},\"annotations\":{{\"summary\":\"{}\",\
         \"description\":\"{description}\",\
         \"runbook_url\":\"https://runbooks.example/alerts/{}\"}},\
         \"startsAt\":\"{}\",\"endsAt\":\"{ends}\",\
         \"generatorURL\":\"http://prometheus:9090/graph?g0.expr=up\",\"fingerprint\":\"{fp}\"}}",
        if resolved { "resolved" } else { "firing" },
        o.summary,
        o.labels[0].1,
        o.start,
    )
}

fn webhook(alert: &str) -> String {
    format!(
        "{{\"version\":\"4\",\"groupKey\":\"{{}}:{{}}\",\"truncatedAlerts\":0,\
         \"receiver\":\"triage\",\
         \"groupLabels\":{{}},\"commonLabels\":{{}},\"commonAnnotations\":{{}},\
         \"externalURL\":\"http://alertmanager:9093\",\"alerts\":[{alert}]}}"
    )
}
