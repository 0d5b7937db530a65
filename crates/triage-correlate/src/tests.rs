//! Behaviour of the correlator on small, hand-written streams: each test
//! pins one rule of the model in `docs/correlation.md`.

use std::sync::Arc;
use std::time::Duration;

use triage_formats::fingerprint_of;
use triage_model::{
    AlertRecord, AlertStatus, EventKind, IncidentEvent, Labels, Priority, Timestamp,
};
use triage_topology::{ServiceSpec, Topology};

use crate::{CollectingSink, Correlator, Settings};

const T0: i64 = 1_767_261_600;

fn shop() -> Arc<Topology> {
    let spec = |name: &str, deps: &[&str], tier: u8, user_facing: bool| ServiceSpec {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).into()).collect(),
        tier,
        user_facing,
        owner: Some(format!("team-{name}")),
        ..ServiceSpec::default()
    };
    let specs = [
        spec("web", &["checkout", "search"], 1, true),
        spec("checkout", &["payment", "cart"], 1, false),
        spec("payment", &["payments-db"], 1, false),
        spec("cart", &["redis"], 2, false),
        spec("search", &["search-index", "redis"], 2, false),
        spec("payments-db", &[], 1, false),
        spec("redis", &[], 2, false),
        spec("search-index", &[], 3, false),
    ];
    Arc::new(Topology::build(&specs, 2).unwrap_or_else(|e| panic!("{e:?}")))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(T0 + secs)
}

/// An alert on `service` named `name`; `instance` tells copies apart.
fn alert(name: &str, service: &str, severity: &str, instance: &str) -> Labels<'static> {
    let mut pairs = vec![
        ("alertname".into(), name.to_owned().into()),
        ("severity".into(), severity.to_owned().into()),
        ("instance".into(), instance.to_owned().into()),
        ("cluster".into(), "eu-1".into()),
    ];
    if !service.is_empty() {
        pairs.push(("service".into(), service.to_owned().into()));
    }
    Labels::from_pairs(pairs)
}

fn firing(labels: &Labels<'static>, start: i64) -> AlertRecord<'static> {
    AlertRecord {
        fingerprint: fingerprint_of(labels),
        status: AlertStatus::Firing,
        starts_at: at(start),
        ends_at: None,
        labels: labels.clone(),
        runbook_url: None,
        summary: None,
    }
}

fn resolved(labels: &Labels<'static>, start: i64, end: i64) -> AlertRecord<'static> {
    AlertRecord { status: AlertStatus::Resolved, ends_at: Some(at(end)), ..firing(labels, start) }
}

struct Harness {
    engine: Correlator,
    sink: CollectingSink,
}

impl Harness {
    fn new(settings: Settings) -> Self {
        Harness {
            engine: Correlator::new(Arc::new(settings), shop(), 0),
            sink: CollectingSink::default(),
        }
    }

    fn feed(&mut self, records: &[AlertRecord<'static>]) -> &mut Self {
        for (i, r) in records.iter().enumerate() {
            self.engine.ingest(r, i as u64, &mut self.sink);
        }
        self
    }

    fn finish(&mut self) -> &[IncidentEvent] {
        self.engine.finish(&mut self.sink);
        &self.sink.events
    }

    fn drain(&mut self) -> &[IncidentEvent] {
        self.engine.drain(&mut self.sink);
        &self.sink.events
    }
}

fn last_of<'a>(events: &'a [IncidentEvent], id: &str) -> Option<&'a IncidentEvent> {
    events.iter().rev().find(|e| e.incident_id == id)
}

fn incident_ids(events: &[IncidentEvent]) -> Vec<String> {
    let mut ids: Vec<String> = events.iter().map(|e| e.incident_id.clone()).collect();
    ids.dedup();
    ids
}

#[test]
fn re_notifications_of_a_firing_alert_are_deduplicated() {
    let db = alert("PostgresDown", "payments-db", "warning", "a");
    let mut h = Harness::new(Settings::default());
    h.feed(&[firing(&db, 0), firing(&db, 0), firing(&db, 0)]).finish();
    let stats = h.engine.stats();
    assert_eq!((stats.unique_alerts, stats.duplicates, stats.groups_opened), (1, 2, 1));
}

#[test]
fn a_fault_and_its_symptoms_become_one_incident_with_the_cause_ranked_first() {
    let db = alert("PostgresDown", "payments-db", "critical", "a");
    let pay = alert("HighErrorRate", "payment", "error", "a");
    let co = alert("HighErrorRate", "checkout", "error", "a");
    let web = alert("SLOBurn", "web", "error", "a");
    let mut h = Harness::new(Settings::default());
    let events =
        h.feed(&[firing(&db, 0), firing(&pay, 20), firing(&co, 45), firing(&web, 60)]).finish();
    assert_eq!(incident_ids(events).len(), 1, "{events:#?}");
    assert_eq!(events[0].event, EventKind::Declared);
    let last = &events[events.len() - 1];
    assert_eq!(last.alert_count, 4);
    assert_eq!(&*last.root_cause[0].service, "payments-db");
    assert!(last.root_cause[0].reason.starts_with("no dependency of it is alerting"));
    // The symptoms follow as alternatives, the one explaining most first.
    let rest: Vec<&str> = last.root_cause[1..].iter().map(|r| &*r.service).collect();
    assert_eq!(rest, ["payment", "checkout"]);
    assert!(last.root_cause[1].reason.starts_with("alternative: some of its dependencies alert"));
    assert_eq!(last.blast_radius.user_facing, [Arc::<str>::from("web")]);
    assert_eq!(last.title, "web degraded: 4 alerts on 4 services, likely cause payments-db");
    assert_eq!(&*last.owners[0], "team-payments-db");
    let reason = &last
        .alerts
        .iter()
        .find(|a| &*a.alertname == "HighErrorRate" && a.service.as_deref() == Some("payment"))
        .map(|a| a.reason.to_string())
        .unwrap_or_default();
    assert!(
        reason.starts_with("payment -> payments-db: depends on alerting payments-db (1 hop)"),
        "{reason}"
    );
}

#[test]
fn unrelated_services_stay_apart_even_when_they_share_nothing_but_time() {
    let db = alert("PostgresDown", "payments-db", "warning", "a");
    let idx = alert("IndexLag", "search-index", "warning", "a");
    let mut h = Harness::new(Settings::default());
    h.feed(&[firing(&db, 0), firing(&idx, 5)]).finish();
    assert_eq!(h.engine.stats().groups_opened, 2);
    assert!(h.sink.events.is_empty(), "two single warnings declare nothing");
}

#[test]
fn siblings_of_a_shared_dependency_are_not_linked_through_it() {
    // cart and search both call redis and are both called (indirectly) by
    // web; neither relation makes them one fault while redis and web are
    // healthy.
    let cart = alert("HighLatency", "cart", "warning", "a");
    let search = alert("HighLatency", "search", "warning", "a");
    let mut h = Harness::new(Settings::default());
    h.feed(&[firing(&cart, 0), firing(&search, 5)]).finish();
    assert_eq!(h.engine.stats().groups_opened, 2);
}

#[test]
fn alerts_without_a_catalog_service_group_by_the_label_rule() {
    let mut h = Harness::new(Settings::default());
    let nodes: Vec<_> =
        (0..6).map(|i| alert("NodeClockSkew", "", "warning", &format!("n{i}"))).collect();
    let records: Vec<_> = nodes.iter().enumerate().map(|(i, l)| firing(l, i as i64 * 10)).collect();
    let events = h.feed(&records).finish();
    assert_eq!(incident_ids(events).len(), 1);
    let last = &events[events.len() - 1];
    assert_eq!(last.alert_count, 6);
    assert!(
        last.title.starts_with("NodeClockSkew (no service label) degraded: 6 alerts"),
        "{}",
        last.title
    );
    assert!(last.alerts[1].reason.contains("same alertname=\"NodeClockSkew\", cluster=\"eu-1\""));
    assert_eq!(last.declared_reason, "5 alerts (min_alerts 5)");
}

#[test]
fn a_cause_below_two_incidents_merges_them_into_the_older() {
    let mut settings = Settings::default();
    settings.declare.min_alerts = 2;
    let cart: Vec<_> =
        (0..2).map(|i| alert("HighLatency", "cart", "warning", &format!("{i}"))).collect();
    let search: Vec<_> =
        (0..2).map(|i| alert("HighLatency", "search", "warning", &format!("{i}"))).collect();
    let redis = alert("RedisDown", "redis", "critical", "a");
    let mut h = Harness::new(settings);
    let events = h
        .feed(&[
            firing(&cart[0], 0),
            firing(&cart[1], 1),
            firing(&search[0], 2),
            firing(&search[1], 3),
        ])
        .feed(&[firing(&redis, 60)])
        .finish();
    let ids = incident_ids(events);
    let merged = events.iter().find(|e| e.merged_into.is_some()).cloned();
    let merged = merged.unwrap_or_else(|| panic!("no merge in {events:#?}"));
    assert_eq!(merged.event, EventKind::Resolved);
    assert_eq!(merged.merged_into.as_deref(), Some(ids[0].as_str()));
    let survivor = last_of(events, &ids[0]).cloned().unwrap_or_else(|| panic!("no survivor"));
    assert_eq!(survivor.alert_count, 5);
    assert_eq!(&*survivor.root_cause[0].service, "redis");
    assert_eq!(h.engine.stats().distinct_incidents(), 1);
    let why =
        survivor.alerts.iter().find(|a| &*a.alertname == "RedisDown").map(|a| a.reason.to_string());
    let why = why.unwrap_or_default();
    assert!(
        // search alerted last, so its link is the closest and names why.
        why.starts_with("search -> redis: search depends on it (1 hop), a likelier cause"),
        "{why}"
    );
}

#[test]
fn a_symptom_of_two_incidents_joins_one_and_merges_nothing() {
    let mut settings = Settings::default();
    settings.declare.min_alerts = 2;
    let db: Vec<_> =
        (0..2).map(|i| alert("HighErrorRate", "payment", "error", &format!("{i}"))).collect();
    let idx: Vec<_> =
        (0..2).map(|i| alert("IndexLag", "search-index", "error", &format!("{i}"))).collect();
    // web depends on both faults, two hops up from each (through checkout
    // and search): it is degraded by each, which does not make them one.
    let web = alert("SLOBurn", "web", "error", "a");
    let mut h = Harness::new(settings);
    let events = h
        .feed(&[firing(&db[0], 0), firing(&db[1], 1), firing(&idx[0], 2), firing(&idx[1], 3)])
        .feed(&[firing(&web, 60)])
        .finish()
        .to_vec();
    assert!(events.iter().all(|e| e.merged_into.is_none()));
    assert_eq!(h.engine.stats().distinct_incidents(), 2);
    // Both links are two hops; search-index alerted last, so it is closer.
    let ids = incident_ids(&events);
    let counts: Vec<_> = ids.iter().map(|id| last_of(&events, id).map(|e| e.alert_count)).collect();
    assert_eq!(counts, [Some(2), Some(3)], "web joined the incident that alerted last");
    let second = last_of(&events, &ids[1]).cloned().unwrap_or_else(|| panic!("no incident"));
    let why = second.alerts.iter().find(|a| &*a.alertname == "SLOBurn").map(|a| a.reason.clone());
    assert!(why.is_some_and(|w| w.starts_with("web -> search -> search-index")), "{second:#?}");
    assert_eq!(h.engine.stats().groups_merged, 0);
}

/// The incident whose last event lists the alert named `alertname`.
fn holding<'a>(events: &'a [IncidentEvent], alertname: &str) -> Option<&'a IncidentEvent> {
    let ids = incident_ids(events);
    ids.iter()
        .filter_map(|id| last_of(events, id))
        .find(|e| e.alerts.iter().any(|a| &*a.alertname == alertname))
}

#[test]
fn a_dependency_that_just_started_alerting_beats_a_stale_alert_on_the_same_service() {
    let redis: Vec<_> =
        (0..2).map(|i| alert("RedisDown", "redis", "critical", &i.to_string())).collect();
    let latency = alert("HighLatency", "cart", "error", "a");
    let run = |hop_cost: u64, stale_severity: &str| {
        let stale = alert("HighCPU", "cart", stale_severity, "a");
        // redis starts 200s after the stale alert: past max_cause_lag, so
        // it is not that alert's cause and opens a group of its own.
        let stream = [
            firing(&stale, 0),
            firing(&redis[0], 200),
            firing(&redis[1], 200),
            firing(&latency, 220),
        ];
        let mut settings = Settings::default();
        settings.declare.min_alerts = 2;
        settings.grouping.hop_cost = Duration::from_secs(hop_cost);
        let mut h = Harness::new(settings);
        h.feed(&stream).finish().to_vec()
    };
    let joined_redis = |events: &[IncidentEvent]| {
        let with_redis = holding(events, "RedisDown").unwrap_or_else(|| panic!("{events:#?}"));
        let joined = with_redis.alerts.iter().find(|a| &*a.alertname == "HighLatency");
        joined.map(|a| a.reason.to_string())
    };

    // Same service, 220s ago, against one hop and 20s: 220s > 60s + 20s.
    let events = run(60, "error");
    let why = joined_redis(&events).unwrap_or_default();
    assert!(
        why.starts_with("cart -> redis: depends on alerting redis (1 hop); 20s after"),
        "{why}"
    );
    let with_redis = holding(&events, "RedisDown").map(|e| e.alert_count);
    assert_eq!(with_redis, Some(3), "the stale alert stayed apart: {events:#?}");

    // When a hop costs more than the time between, the same service wins.
    let events = run(600, "error");
    assert_eq!(holding(&events, "HighCPU").map(|e| e.alerts.len()), Some(2), "{events:#?}");
    assert_eq!(joined_redis(&events), None);

    // Unless the same-service alert only warns: an error follows the
    // service that fails strongly, however the hops are costed.
    let events = run(600, "warning");
    assert!(joined_redis(&events).is_some(), "{events:#?}");
}

#[test]
fn a_warning_joins_through_the_graph_only_when_its_link_is_close() {
    // cart -> redis: redis fails at 0; warnings on cart follow.
    let redis: Vec<_> =
        (0..2).map(|i| alert("RedisDown", "redis", "critical", &i.to_string())).collect();
    let run = |warning_at: i64| {
        let late = alert("HighCPU", "cart", "warning", "a");
        let again = alert("HighCPU", "cart", "warning", "b");
        let stream = [
            firing(&redis[0], 0),
            firing(&redis[1], 0),
            firing(&late, warning_at),
            // Another instance of the same warning, four minutes on.
            firing(&again, warning_at + 240),
        ];
        let mut h = Harness::new(Settings::default());
        let events = h.feed(&stream).finish().to_vec();
        let with_redis = holding(&events, "RedisDown").map(|e| e.alert_count);
        (with_redis, h.engine.stats().groups_opened)
    };
    // 30s and one hop: 90s, within 2m. The second instance joins its twin
    // on the same service, however late.
    assert_eq!(run(30), (Some(4), 1));
    // 90s and one hop: 150s, too far for a warning: a group of its own,
    // which its twin joins.
    assert_eq!(run(90), (Some(2), 2));
}

#[test]
fn a_failure_whose_only_alerting_neighbour_warns_joins_it_only_when_close() {
    // cart -> redis: redis only warns, then cart fails.
    let failure = alert("HighErrorRate", "cart", "critical", "a");
    let run = |failure_at: i64, severity_of_redis: &str| {
        let redis = alert("HighCPU", "redis", severity_of_redis, "a");
        let mut h = Harness::new(Settings::default());
        h.feed(&[firing(&redis, 0), firing(&failure, failure_at)]).finish();
        h.engine.stats().groups_opened
    };
    // 30s and one hop: 90s, within 2m.
    assert_eq!(run(30, "warning"), 1);
    // 90s and one hop: 150s. A warning this long before a neighbour fails
    // is more often the background than the cause.
    assert_eq!(run(90, "warning"), 2);
    // Had redis alerted at error, the link would be strong, and close
    // enough within the window.
    assert_eq!(run(90, "error"), 1);
}

#[test]
fn a_symptom_of_a_fresh_failure_below_it_does_not_merge_a_group_it_would_explain_from_afar() {
    let mut settings = Settings::default();
    settings.declare.min_alerts = 2;
    // web -> checkout -> payment -> payments-db: web and payments-db are
    // three hops apart, so each opens its own group. payment is one hop
    // above the database that failed 10s before it and two hops below
    // web's older alerts (checkout, between, is quiet).
    let web: Vec<_> = (0..2).map(|i| alert("SLOBurn", "web", "error", &i.to_string())).collect();
    let db: Vec<_> =
        (0..2).map(|i| alert("PostgresDown", "payments-db", "critical", &i.to_string())).collect();
    let payment = alert("HighErrorRate", "payment", "error", "a");
    let mut h = Harness::new(settings);
    let events = h
        .feed(&[firing(&web[0], 0), firing(&web[1], 0)])
        .feed(&[firing(&db[0], 100), firing(&db[1], 100), firing(&payment, 110)])
        .finish()
        .to_vec();
    assert_eq!(h.engine.stats().groups_merged, 0, "{events:#?}");
    let with_db = holding(&events, "PostgresDown").unwrap_or_else(|| panic!("{events:#?}"));
    assert!(with_db.alerts.iter().any(|a| &*a.alertname == "HighErrorRate"), "{with_db:#?}");
    assert_eq!(holding(&events, "SLOBurn").map(|e| e.alerts.len()), Some(2));
}

#[test]
fn three_services_declare_only_with_an_alert_at_least_as_severe_as_min_services_severity() {
    // web -> checkout -> payment: three related services, 30s apart.
    let names = [("web", "HighCPU"), ("checkout", "DiskFillingUp"), ("payment", "PodRestarting")];
    let run = |last_severity: &str| {
        let records: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, (service, name))| {
                let severity = if i == 2 { last_severity } else { "warning" };
                firing(&alert(name, service, severity, "a"), i as i64 * 30)
            })
            .collect();
        let mut h = Harness::new(Settings::default());
        let events = h.feed(&records).finish().to_vec();
        (events, h.engine.stats().groups_opened)
    };
    let (events, groups) = run("warning");
    assert_eq!(groups, 1, "one group of three warnings");
    assert!(events.is_empty(), "warnings only: not declared by min_services: {events:#?}");
    let (events, _) = run("error");
    let first = events.first().map(|e| e.declared_reason.clone());
    assert_eq!(first.as_deref(), Some("3 services alerting (min_services 3)"));
}

#[test]
fn a_flapping_alert_does_not_count_as_persisting() {
    let probe = alert("ProbeFailing", "search", "warning", "a");
    let steady = alert("DiskFillingUp", "search", "warning", "a");
    // Up a minute, down half a minute, for 20 minutes: flapping from the
    // fourth transition on, held firing by damping.
    let mut flapping = Vec::new();
    let mut t = 0;
    while t < 20 * 60 {
        flapping.push(firing(&probe, t));
        flapping.push(resolved(&probe, t, t + 60));
        t += 90;
    }
    let mut h = Harness::new(Settings::default());
    let events = h.feed(&flapping).finish().to_vec();
    assert!(events.is_empty(), "a flapping probe alone is not declared: {events:#?}");
    assert!(h.engine.stats().groups_opened >= 1);

    let mut h = Harness::new(Settings::default());
    let events = h.feed(&[firing(&steady, 0), firing(&steady, 20 * 60)]).finish().to_vec();
    let first = events.first().map(|e| e.declared_reason.clone());
    assert_eq!(first.as_deref(), Some("still firing 15m00s after the first alert (persist_for)"));
}

#[test]
fn a_warning_below_strong_symptoms_ranks_after_the_service_that_fails_strongly() {
    let mut settings = Settings::default();
    settings.declare.min_alerts = 3;
    // checkout -> payment -> payments-db: the database only warns about a
    // certificate; payment and checkout fail hard.
    let cert = alert("CertExpiringSoon", "payments-db", "warning", "a");
    let errors = alert("HighErrorRate", "payment", "error", "a");
    let latency = alert("HighLatency", "checkout", "error", "a");
    let mut h = Harness::new(settings);
    let events =
        h.feed(&[firing(&cert, 0), firing(&errors, 30), firing(&latency, 60)]).finish().to_vec();
    let last = events.last().unwrap_or_else(|| panic!("nothing declared"));
    assert_eq!(last.alert_count, 3, "{last:#?}");
    let ranked: Vec<&str> = last.root_cause.iter().map(|r| &*r.service).collect();
    assert_eq!(ranked, ["payment", "payments-db", "checkout"], "{last:#?}");
    assert!(
        last.root_cause[0].reason.starts_with("no dependency of it is alerting at error or above"),
        "{:?}",
        last.root_cause[0].reason
    );
    assert!(last.root_cause[1].reason.contains("it alerts only below error"));
}

#[test]
fn severity_escalates_at_once_and_never_drops() {
    let mut settings = Settings::default();
    settings.declare.min_alerts = 2;
    let idx: Vec<_> =
        (0..2).map(|i| alert("IndexLag", "search-index", "warning", &format!("{i}"))).collect();
    // One hop above, soon after: close enough for a link to a warning.
    let search = alert("SLOBurn", "search", "critical", "a");
    let mut h = Harness::new(settings);
    h.feed(&[firing(&idx[0], 0), firing(&idx[1], 1)]);
    h.engine.advance_to(at(40), &mut h.sink);
    let declared = h.sink.events[0].severity;
    h.feed(&[firing(&search, 40)]);
    h.engine.advance_to(at(80), &mut h.sink);
    let escalation = h.sink.events.iter().find(|e| e.severity.is_above(declared)).cloned();
    let escalation = escalation.unwrap_or_else(|| panic!("no escalation: {:#?}", h.sink.events));
    assert_eq!(escalation.event, EventKind::Updated);
    assert_eq!(escalation.at, at(40), "sent when the critical alert was placed, not coalesced");
    assert_eq!(escalation.severity, Priority::P2);
    let events = h.feed(&[resolved(&search, 40, 90)]).drain().to_vec();
    assert!(
        events
            .iter()
            .skip_while(|e| e.severity != Priority::P2)
            .all(|e| e.severity == Priority::P2)
    );
}

#[test]
fn an_incident_resolves_after_its_alerts_stay_quiet_for_the_quiet_period() {
    let mut settings = Settings::default();
    settings.declare.min_alerts = 2;
    let a = alert("PostgresDown", "payments-db", "warning", "a");
    let b = alert("PostgresDown", "payments-db", "warning", "b");
    let mut h = Harness::new(settings);
    h.feed(&[firing(&a, 0), firing(&b, 1), resolved(&a, 0, 100), resolved(&b, 1, 120)]);
    h.engine.advance_to(at(120 + 300 + 30), &mut h.sink);
    assert!(h.sink.events.iter().all(|e| e.event != EventKind::Resolved), "quiet period not over");
    h.engine.advance_to(at(120 + 300 + 31), &mut h.sink);
    let last = h.sink.events.last().cloned();
    assert_eq!(last.as_ref().map(|e| e.event), Some(EventKind::Resolved));
    assert_eq!(last.and_then(|e| e.resolved_at), Some(at(420)));
    assert_eq!(h.engine.active_alerts(), 0, "resolved incidents free their alerts");
}

#[test]
fn a_refire_inside_the_quiet_period_keeps_the_incident_open() {
    let mut settings = Settings::default();
    settings.declare.min_alerts = 1;
    let a = alert("PostgresDown", "payments-db", "warning", "a");
    let mut h = Harness::new(settings);
    let events = h.feed(&[firing(&a, 0), resolved(&a, 0, 60), firing(&a, 200)]).drain();
    assert!(events.iter().all(|e| e.event != EventKind::Resolved));
    assert_eq!(h.engine.stats().refired, 1);
    assert_eq!(h.engine.stats().groups_opened, 1);
}

#[test]
fn a_flapping_alert_is_kept_firing_in_one_group_until_it_settles() {
    let mut settings = Settings::default();
    settings.declare.min_alerts = 1;
    let a = alert("ProbeFailing", "cart", "warning", "a");
    let mut records = Vec::new();
    for cycle in 0..4 {
        let start = cycle * 120;
        records.push(firing(&a, start));
        records.push(resolved(&a, start, start + 60));
    }
    let mut h = Harness::new(settings);
    h.feed(&records);
    h.engine.advance_to(at(600), &mut h.sink);
    assert_eq!(h.engine.stats().flapping, 1);
    assert_eq!(h.engine.stats().groups_opened, 1);
    let last = h.sink.events.last().cloned().unwrap_or_else(|| panic!("declared"));
    assert!(last.alerts[0].flapping);
    assert_eq!(last.alerts[0].status, AlertStatus::Firing, "damped while flapping");
    // Stable (resolved) for a full period: it resolves, then the incident.
    let events = h.drain();
    assert_eq!(events.last().map(|e| e.event), Some(EventKind::Resolved));
}

#[test]
fn a_group_stops_growing_at_its_lifetime_so_late_alerts_open_a_new_one() {
    let mut settings = Settings::default();
    settings.grouping.max_group_lifetime = Duration::from_secs(1800);
    let labels: Vec<_> =
        (0..12).map(|i| alert("HighLatency", "payment", "warning", &format!("{i}"))).collect();
    let records: Vec<_> =
        labels.iter().enumerate().map(|(i, l)| firing(l, i as i64 * 240)).collect();
    let mut h = Harness::new(settings);
    h.feed(&records).finish();
    // 12 alerts 4 minutes apart: the window (5m) would chain them all; the
    // 30m lifetime splits them.
    assert_eq!(h.engine.stats().groups_opened, 2);
}

#[test]
fn alerts_beyond_capacity_are_dropped_and_reported_not_lost_silently() {
    let mut settings = Settings::default();
    settings.limits.max_active_alerts = 2;
    let labels: Vec<_> =
        (0..3).map(|i| alert("X", "payment", "warning", &format!("{i}"))).collect();
    let records: Vec<_> = labels.iter().map(|l| firing(l, 0)).collect();
    let mut h = Harness::new(settings);
    h.feed(&records).finish();
    assert_eq!(h.engine.stats().dropped_capacity, 1);
    assert_eq!(h.sink.dropped.len(), 1);
    assert_eq!(h.sink.dropped[0].reason, "capacity");
}

#[test]
fn incident_ids_derive_from_the_partition_and_the_opening_alert() {
    let a = alert("PostgresDown", "payments-db", "critical", "a");
    let run = |partition: u32| {
        let mut engine = Correlator::new(Arc::new(Settings::default()), shop(), partition);
        let mut sink = CollectingSink::default();
        engine.ingest(&firing(&a, 0), 0, &mut sink);
        engine.finish(&mut sink);
        sink.events.first().map(|e| (e.incident_id.clone(), e.event_id.clone()))
    };
    let (id, event_id) = run(0).unwrap_or_default();
    assert_eq!(run(0), Some((id.clone(), event_id.clone())));
    assert_ne!(run(1).map(|r| r.0), Some(id.clone()));
    assert_eq!(event_id, format!("{id}:1"));
    assert!(id.starts_with("inc-") && id.len() == 20, "{id}");
}

#[test]
fn a_snapshot_restores_a_correlator_that_continues_identically() {
    let db = alert("PostgresDown", "payments-db", "critical", "a");
    let pay = alert("HighErrorRate", "payment", "error", "a");
    let co = alert("HighErrorRate", "checkout", "error", "a");
    // The cut falls after the first two alerts have left the reorder buffer.
    let head = [firing(&db, 0), firing(&pay, 20), firing(&co, 90)];
    let tail = [resolved(&db, 0, 400), resolved(&pay, 20, 420), resolved(&co, 90, 430)];
    let mut straight = Harness::new(Settings::default());
    let all: Vec<_> = head.iter().chain(&tail).cloned().collect();
    let expected = straight.feed(&all).drain().to_vec();

    let mut first = Harness::new(Settings::default());
    first.feed(&head);
    assert!(first.engine.open_groups() > 0, "the snapshot must hold groups");
    let bytes = serde_json::to_vec(&first.engine.snapshot()).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let engine = Correlator::restore(Arc::new(Settings::default()), shop(), snapshot);
    let mut second = Harness {
        engine: engine.unwrap_or_else(|e| panic!("{e}")),
        sink: CollectingSink::default(),
    };
    let mut got = first.sink.events.clone();
    for (i, r) in tail.iter().enumerate() {
        second.engine.ingest(r, (head.len() + i) as u64, &mut second.sink);
    }
    got.extend(second.drain().iter().cloned());
    assert_eq!(got, expected);
}

#[test]
fn a_fresh_correlator_snapshots_and_restores() {
    let engine = Correlator::new(Arc::new(Settings::default()), shop(), 3);
    let bytes = serde_json::to_vec(&engine.snapshot()).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let restored = Correlator::restore(Arc::new(Settings::default()), shop(), snapshot);
    assert!(restored.is_ok_and(|c| c.head().is_none()));
}

/// A strategy that links every alert it was told about to the first group
/// that holds one: enough to show a third linker plugs in beside the others.
#[derive(Default)]
struct ListedAlertsLinker {
    listed: std::collections::HashSet<triage_model::Fingerprint>,
    first: Option<(crate::GroupId, triage_model::Fingerprint)>,
}

impl crate::linker::Linker for ListedAlertsLinker {
    fn propose(&self, alert: &crate::linker::AlertView<'_>, out: &mut Vec<crate::linker::Link>) {
        let Some((group, via)) = self.first else { return };
        if self.listed.contains(&alert.fingerprint) {
            let reason = crate::JoinReason::LabelRule { via, gap_nanos: 0 };
            out.push(crate::linker::Link {
                group,
                rank: 5000,
                explains: false,
                via_strong: true,
                quiet_path: false,
                reason,
            });
        }
    }
    fn joined(&mut self, group: crate::GroupId, alert: &crate::linker::AlertView<'_>) {
        if self.first.is_none() && self.listed.contains(&alert.fingerprint) {
            self.first = Some((group, alert.fingerprint));
        }
    }
    fn merged(&mut self, into: crate::GroupId, from: crate::GroupId) {
        if let Some((group, _)) = self.first.as_mut().filter(|(g, _)| *g == from) {
            *group = into;
        }
    }
    fn closed(&mut self, group: crate::GroupId) {
        if self.first.is_some_and(|(g, _)| g == group) {
            self.first = None;
        }
    }
}

#[test]
fn a_third_grouping_strategy_plugs_in_beside_topology_and_the_label_rule() {
    // Topology alone keeps these apart: neither service reaches the other.
    let cart = alert("Correlated", "cart", "warning", "a");
    let idx = alert("Correlated", "search-index", "warning", "a");
    let records = [firing(&cart, 0), firing(&idx, 5)];
    let run = |extra: bool| {
        let mut engine = Correlator::new(Arc::new(Settings::default()), shop(), 0);
        if extra {
            let listed = records.iter().map(|r| r.fingerprint).collect();
            engine = engine.with_linker(Box::new(ListedAlertsLinker { listed, first: None }));
        }
        let mut sink = CollectingSink::default();
        for (i, r) in records.iter().enumerate() {
            engine.ingest(r, i as u64, &mut sink);
        }
        engine.finish(&mut sink);
        engine.stats().groups_opened
    };
    assert_eq!(run(false), 2);
    assert_eq!(run(true), 1);
}

#[test]
fn content_clustering_merges_the_same_problem_on_unconnected_services() {
    // Three leaves of the shop with no dependency between them report the
    // same problem: topology cannot link them, content can.
    let disks: Vec<Labels<'static>> = ["payments-db", "redis", "search-index"]
        .iter()
        .enumerate()
        .map(|(i, service)| alert("DiskFull", service, "error", &format!("node-{i}")))
        .collect();
    let later = alert("Heartbeat", "", "info", "a");
    let records: Vec<AlertRecord<'static>> = disks
        .iter()
        .enumerate()
        .map(|(i, labels)| firing(labels, i as i64 * 5))
        .chain([firing(&later, 120)])
        .collect();

    let mut without = Settings::default();
    without.content.enabled = false;
    let mut off = Harness::new(without);
    assert!(off.feed(&records).finish().is_empty(), "three lone errors: nothing declared");
    assert_eq!(off.engine.stats().content_merges, 0);

    let settings = Settings::default();
    assert!(settings.content.enabled, "on by default");
    let mut on = Harness::new(settings.clone());
    let events = on.feed(&records).finish().to_vec();
    assert_eq!(on.engine.stats().content_merges, 2, "{events:#?}");
    assert_eq!(incident_ids(&events).len(), 1, "one incident of three services: {events:#?}");
    let last = &events[events.len() - 1];
    assert_eq!(last.alert_count, 3);
    let reasons: Vec<&str> = last.alerts.iter().map(|a| &*a.reason).collect();
    assert_eq!(reasons.iter().filter(|r| r.starts_with("content similar to alert")).count(), 2);

    // Same input, same output, whatever the batches: a restart from a
    // snapshot between every record changes nothing.
    let mut restarted = Correlator::new(Arc::new(settings.clone()), shop(), 0);
    let mut sink = CollectingSink::default();
    for (i, r) in records.iter().enumerate() {
        let json = serde_json::to_string(&restarted.snapshot()).unwrap_or_default();
        let snapshot = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        restarted = Correlator::restore(Arc::new(settings.clone()), shop(), snapshot)
            .unwrap_or_else(|e| panic!("{e}"));
        restarted.ingest(r, i as u64, &mut sink);
    }
    restarted.finish(&mut sink);
    assert_eq!(sink.events, events);
}

/// Services with no dependency at all: nothing topology could link.
fn islands(n: usize) -> Arc<Topology> {
    let specs: Vec<ServiceSpec> = (0..n)
        .map(|i| ServiceSpec { name: format!("island-{i}"), ..ServiceSpec::default() })
        .collect();
    Arc::new(Topology::build(&specs, 2).unwrap_or_else(|e| panic!("{e:?}")))
}

#[test]
fn content_merges_a_burst_of_a_rare_alert_but_not_the_background_at_its_usual_rate() {
    let run = |burst_name: &str, min_burst: f32| {
        let mut records = Vec::new();
        // An hour of background: one HighCPU a minute on one of six
        // services, gone in 50s.
        for minute in 0..60 {
            let service = format!("island-{}", minute % 6);
            let cpu = alert("HighCPU", &service, "error", &format!("bg-{minute}"));
            let start = minute as i64 * 60;
            records.push(firing(&cpu, start));
            records.push(resolved(&cpu, start, start + 50));
        }
        // Then three other services at once raise `burst_name`.
        for i in 0..3 {
            let service = format!("island-{}", 6 + i);
            records.push(firing(&alert(burst_name, &service, "error", "now"), 3600 + i as i64));
        }
        // Something later moves event time past the next passes.
        records.push(firing(&alert("Heartbeat", "", "info", "a"), 3720));
        let mut settings = Settings::default();
        settings.content.min_burst = min_burst;
        let mut engine = Correlator::new(Arc::new(settings), islands(9), 0);
        let mut sink = CollectingSink::default();
        for (i, r) in records.iter().enumerate() {
            engine.ingest(r, i as u64, &mut sink);
        }
        engine.finish(&mut sink);
        (engine.stats().content_merges, sink.events)
    };
    // Three HighCPU in a minute is the usual rate (five a window).
    let (merges, events) = run("HighCPU", 3.0);
    assert_eq!(merges, 0, "{events:#?}");
    assert!(events.is_empty(), "{events:#?}");
    // Only the baseline holds them apart: alike, they would merge.
    assert_eq!(run("HighCPU", 0.0).0, 2);
    // A certificate alert nobody has seen before is a burst.
    let (merges, events) = run("TLSHandshakeFailing", 3.0);
    assert_eq!(merges, 2, "{events:#?}");
    let tls = holding(&events, "TLSHandshakeFailing").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!((tls.alert_count, tls.services.len()), (3, 3), "{tls:#?}");
    assert!(
        tls.title.ends_with(
            "likely a shared cause the catalog does not show \
             (TLSHandshakeFailing on unrelated services)"
        ),
        "{}",
        tls.title
    );
    assert_eq!(tls.declared_reason, "3 services alerting (min_services 3)");
    assert!(
        tls.root_cause.iter().all(|c| c.reason.starts_with(
            "TLSHandshakeFailing on services with no dependency between them points to a \
             cause outside the catalog; "
        )),
        "{:#?}",
        tls.root_cause
    );
}

#[test]
fn content_does_not_merge_two_services_or_groups_that_topology_built() {
    // Two unconnected leaves raise the same new alert: two services are
    // not enough (two faults at once), however alike.
    let mut records: Vec<_> = ["payments-db", "redis"]
        .iter()
        .flat_map(|service| {
            (0..2).map(move |i| firing(&alert("DiskFull", service, "error", &i.to_string()), 0))
        })
        .collect();
    // And a fault with its symptom (two alertnames, built by topology)
    // next to a lone alert that reads like the fault's cause.
    records.push(firing(&alert("ConnPoolExhausted", "search-index", "error", "a"), 10));
    records.push(firing(&alert("HighLatency", "search", "error", "a"), 20));
    records.push(firing(&alert("ConnPoolExhausted", "cart", "error", "b"), 20));
    records.push(firing(&alert("ConnPoolExhausted", "payment", "error", "c"), 20));
    let mut h = Harness::new(Settings::default());
    let events = h.feed(&records).finish().to_vec();
    assert_eq!(h.engine.stats().content_merges, 0, "{events:#?}");
}

#[test]
fn a_background_warning_in_a_group_does_not_keep_content_from_merging_it() {
    // A warning on cart opens a group; checkout's certificate error joins
    // it through the graph. Two leaves raise the same error: the three are
    // one shared cause, and the warning is not what checkout's group says.
    let records = [
        firing(&alert("HighCPU", "cart", "warning", "bg"), 0),
        firing(&alert("TLSHandshakeFailing", "checkout", "error", "a"), 60),
        firing(&alert("TLSHandshakeFailing", "payments-db", "error", "b"), 62),
        firing(&alert("TLSHandshakeFailing", "search-index", "error", "c"), 64),
        firing(&alert("Heartbeat", "", "info", "a"), 180),
    ];
    let mut h = Harness::new(Settings::default());
    let events = h.feed(&records).finish().to_vec();
    assert_eq!(h.engine.stats().content_merges, 2, "{events:#?}");
    let tls = holding(&events, "TLSHandshakeFailing").unwrap_or_else(|| panic!("{events:#?}"));
    let names: Vec<&str> = tls.alerts.iter().map(|a| &*a.alertname).collect();
    assert_eq!(names.iter().filter(|n| **n == "TLSHandshakeFailing").count(), 3, "{tls:#?}");
    // The title names what the services share, not the warning that opened
    // the group.
    assert!(tls.title.ends_with("(TLSHandshakeFailing on unrelated services)"), "{}", tls.title);
}

#[test]
fn a_dependency_failing_after_a_shared_cause_is_an_incident_of_its_own() {
    // Three services with no dependency between them fail one way at once;
    // then the database under one of them goes down.
    let spec = |name: &str, deps: &[&str]| ServiceSpec {
        name: name.into(),
        depends_on: deps.iter().map(|d| (*d).into()).collect(),
        ..ServiceSpec::default()
    };
    let specs = [spec("a", &["a-db"]), spec("a-db", &[]), spec("b", &[]), spec("c", &[])];
    let topology = Arc::new(Topology::build(&specs, 2).unwrap_or_else(|e| panic!("{e:?}")));
    let records = [
        firing(&alert("TokenRejected", "a", "error", "1"), 0),
        firing(&alert("TokenRejected", "b", "error", "1"), 2),
        firing(&alert("TokenRejected", "c", "error", "1"), 4),
        firing(&alert("InstanceDown", "a-db", "critical", "1"), 100),
        firing(&alert("Heartbeat", "", "info", "a"), 400),
    ];
    let run = |content: bool| {
        let mut settings = Settings::default();
        settings.content.enabled = content;
        let mut engine = Correlator::new(Arc::new(settings), topology.clone(), 0);
        let mut sink = CollectingSink::default();
        for (i, r) in records.iter().enumerate() {
            engine.ingest(r, i as u64, &mut sink);
        }
        engine.finish(&mut sink);
        sink.events
    };
    // Without content, a's token error is a lone alert, and the database
    // under it reads as its cause.
    let events = run(false);
    let db = holding(&events, "InstanceDown").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(db.alert_count, 2, "{db:#?}");
    // With content, a's error has a cause the catalog does not show.
    let events = run(true);
    let db = holding(&events, "InstanceDown").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!((db.alert_count, db.services.len()), (1, 1), "{db:#?}");
    let tokens = holding(&events, "TokenRejected").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(tokens.alert_count, 3, "{tokens:#?}");
}

#[test]
fn a_link_through_a_silent_service_counts_only_while_it_is_fresh() {
    // web reaches redis through search, which shows nothing.
    let redis = alert("RedisDown", "redis", "critical", "a");
    let web = alert("HighErrorRate", "web", "error", "a");
    let search = alert("HighLatency", "search", "error", "a");
    let groups = |records: &[AlertRecord<'static>]| {
        let mut h = Harness::new(Settings::default());
        h.feed(records).finish();
        h.engine.stats().groups_opened
    };
    assert_eq!(groups(&[firing(&redis, 0), firing(&web, 60)]), 1, "fresh: joins");
    assert_eq!(groups(&[firing(&redis, 0), firing(&web, 150)]), 2, "stale and silent: apart");
    // When search alerts as well, the failure visibly travelled up.
    let through = [firing(&redis, 0), firing(&search, 10), firing(&web, 150)];
    assert_eq!(groups(&through), 1);
    let mut unbounded = Settings::default();
    unbounded.grouping.weak_link_within = Duration::ZERO;
    let mut h = Harness::new(unbounded);
    h.feed(&[firing(&redis, 0), firing(&web, 150)]).finish();
    assert_eq!(h.engine.stats().groups_opened, 1, "zero removes the bound");
}
