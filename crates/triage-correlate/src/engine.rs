//! The correlator: a deterministic state machine driven by event time.
//!
//! # Time
//! The clock is the stream itself. `head` is the latest event time seen;
//! the watermark trails it by `allowed_lateness`. Observations wait in a
//! reorder buffer until the watermark passes them and are then applied in
//! (event time, resolved-before-firing, fingerprint, arrival) order, so
//! alerts reordered within the lateness land exactly where in-order arrival
//! would put them. Timers (window close, persistence, quiet period, update
//! coalescing, alert expiry, flap settling) fire when the watermark passes
//! their deadline; at equal times observations go first. An observation
//! older than the watermark is applied at once, at the watermark, and
//! counted as late. [`Correlator::advance_to`] moves the clock without an
//! alert (idle partitions in live mode); [`Correlator::finish`] and
//! [`Correlator::drain`] end a bounded input.
//!
//! # Determinism
//! Output depends only on the sequence of observations and clock calls:
//! ids derive from the partition and the opening alert, groups and timers
//! are ordered collections, and hash maps are never iterated for output.
//! Batch boundaries do not exist at this level. A [`Snapshot`] taken at
//! any point restores a correlator that continues byte for byte as the
//! original would have.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use triage_model::hash::Fnv1a64;
use triage_model::{
    AlertRecord, AlertSeverity, AlertStatus, EventKind, Fingerprint, IncidentEvent, Timestamp,
};
use triage_topology::Topology;

use crate::analysis::{Analysis, EventHeader, analyse, analyse_scored, render_event};
use crate::linker::{AlertView, LabelRuleLinker, Link, Linker, TopologyLinker};
use crate::settings::Settings;
use crate::snapshot::{RestoreError, Snapshot};
use crate::state::{
    AlertState, AlertTraits, Group, GroupId, GroupTimers, Incident, JoinReason, Observation,
    ServiceRef, ServiceTally, Timer, TimerKind, Timers, Tombstone,
};
use crate::stats::Stats;

/// Where the correlator's output goes: incident events, and alerts it had
/// to drop (so nothing is lost silently).
pub trait EventSink {
    /// An incident was declared, updated or resolved.
    fn incident(&mut self, event: IncidentEvent);
    /// An alert could not be kept.
    fn dropped(&mut self, alert: DroppedAlert);
}

/// An alert the correlator could not keep, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedAlert {
    /// The alert.
    pub fingerprint: Fingerprint,
    /// Where its record came from.
    pub position: u64,
    /// Why (a bounded code: `capacity`).
    pub reason: &'static str,
}

/// A sink that keeps everything in memory (tests, replay).
#[derive(Debug, Default)]
pub struct CollectingSink {
    /// Events in emission order.
    pub events: Vec<IncidentEvent>,
    /// Dropped alerts in order.
    pub dropped: Vec<DroppedAlert>,
}

impl EventSink for CollectingSink {
    fn incident(&mut self, event: IncidentEvent) {
        self.events.push(event);
    }
    fn dropped(&mut self, alert: DroppedAlert) {
        self.dropped.push(alert);
    }
}

/// Reorder-buffer key: event time, resolutions before firings at the same
/// instant, fingerprint, then arrival.
pub(crate) type PendingKey = (Timestamp, u8, Fingerprint, u64);

/// Most distinct strings kept shared; past it the cache starts over (only
/// sharing is lost, never data).
const STRING_CACHE_CAP: usize = 1 << 16;

/// The correlator for one partition.
pub struct Correlator {
    pub(crate) settings: Arc<Settings>,
    pub(crate) topology: Arc<Topology>,
    pub(crate) partition: u32,
    pub(crate) head: Option<Timestamp>,
    pub(crate) watermark: Timestamp,
    /// Boxed so that B-tree node shifts move pointers, not observations.
    pub(crate) pending: BTreeMap<PendingKey, Box<Observation>>,
    pub(crate) next_seq: u64,
    pub(crate) alerts: FxHashMap<Fingerprint, AlertState>,
    pub(crate) tombstones: FxHashMap<Fingerprint, Tombstone>,
    /// Tombstone expiries in the order they were made.
    pub(crate) tombstone_queue: VecDeque<(Timestamp, Fingerprint)>,
    pub(crate) groups: BTreeMap<GroupId, Group>,
    pub(crate) joinable: usize,
    pub(crate) timers: Timers,
    pub(crate) next_group: GroupId,
    linkers: Vec<Box<dyn Linker>>,
    strings: FxHashMap<Box<str>, Arc<str>>,
    stats: Stats,
    links: Vec<Link>,
    /// When the next content clustering pass runs (event time).
    pub(crate) next_content_at: Option<Timestamp>,
    /// An alert with content joined since the last pass. Without one, a
    /// pass would see a subset of the last one's points, whose clusters
    /// are already merged: it is skipped, which makes a long quiet gap
    /// cost nothing.
    pub(crate) content_dirty: bool,
    /// New alerts per alertname over `content.baseline`, for bursts.
    pub(crate) baseline: crate::content::BaselineRates,
    /// Alerts with content in the order they joined, so a pass finds the
    /// window's alerts without walking every alert held. Derived: rebuilt
    /// from the alerts after a restore.
    content_recent: VecDeque<(Timestamp, Fingerprint)>,
}

impl Correlator {
    /// An empty correlator for `partition` (0 when there is only one).
    pub fn new(settings: Arc<Settings>, topology: Arc<Topology>, partition: u32) -> Self {
        let linkers: Vec<Box<dyn Linker>> = vec![
            Box::new(TopologyLinker::new(
                topology.clone(),
                settings.grouping.window,
                settings.grouping.max_cause_lag,
            )),
            Box::new(LabelRuleLinker::default()),
        ];
        Correlator {
            settings,
            topology,
            partition,
            head: None,
            watermark: Timestamp::MIN,
            pending: BTreeMap::new(),
            next_seq: 0,
            alerts: FxHashMap::default(),
            tombstones: FxHashMap::default(),
            tombstone_queue: VecDeque::new(),
            groups: BTreeMap::new(),
            joinable: 0,
            timers: Timers::default(),
            next_group: 1,
            linkers,
            strings: FxHashMap::default(),
            stats: Stats::default(),
            links: Vec::new(),
            next_content_at: None,
            content_dirty: false,
            baseline: Default::default(),
            content_recent: VecDeque::new(),
        }
    }

    /// Takes one alert observation. `position` identifies its source
    /// record (a line number, a Kafka offset) for drop reports and commit
    /// bookkeeping.
    pub fn ingest<S: EventSink>(&mut self, record: &AlertRecord<'_>, position: u64, sink: &mut S) {
        self.stats.observations += 1;
        if self.is_plain_repeat(record) {
            // Alertmanager re-sends firing alerts periodically: most traffic
            // is this. Applied now or after the buffer, it changes nothing.
            self.stats.duplicates += 1;
            return;
        }
        let observation = self.observe(record, position);
        let time = observation.event_time;
        if self.head.is_none_or(|h| time > h) {
            self.head = Some(time);
        }
        if time < self.watermark {
            let now = self.watermark;
            if self.apply(observation, now, sink) {
                self.stats.late += 1;
            }
        } else {
            let rank = u8::from(observation.status == AlertStatus::Firing);
            let key = (time, rank, observation.fingerprint, self.next_seq);
            self.next_seq += 1;
            self.pending.insert(key, Box::new(observation));
        }
        self.release_to_head(sink);
    }

    /// Moves the clock to `now` without an alert, as if a record with that
    /// event time had arrived: what the watermark passes is released and
    /// due timers fire. Earlier times change nothing.
    pub fn advance_to<S: EventSink>(&mut self, now: Timestamp, sink: &mut S) {
        if self.head.is_none_or(|h| now > h) {
            self.head = Some(now);
            self.release_to_head(sink);
        }
    }

    /// Ends a bounded input: releases every buffered observation, fires
    /// the timers due before the head, and sends the coalesced updates
    /// still pending, so the last event of each incident is its state.
    pub fn finish<S: EventSink>(&mut self, sink: &mut S) {
        let Some(head) = self.head else { return };
        self.release(head, sink);
        let dirty: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| g.incident.as_ref().is_some_and(|i| i.dirty))
            .map(|(&id, _)| id)
            .collect();
        for id in dirty {
            self.emit_update(id, head, sink);
        }
    }

    /// Lets event time run out: releases everything and fires every timer,
    /// so incidents whose alerts all resolved are resolved and candidates
    /// expire. What is still firing stays open.
    pub fn drain<S: EventSink>(&mut self, sink: &mut S) {
        self.release(Timestamp::MAX, sink);
    }

    /// The latest event time seen.
    pub fn head(&self) -> Option<Timestamp> {
        self.head
    }

    /// The smallest source position still waiting in the reorder buffer:
    /// everything before it has been applied.
    pub fn oldest_pending_position(&self) -> Option<u64> {
        self.pending.values().map(|o| o.position).min()
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Alerts currently held.
    pub fn active_alerts(&self) -> usize {
        self.alerts.len()
    }

    /// Timers waiting to fire.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Groups currently held (candidates and incidents).
    pub fn open_groups(&self) -> usize {
        self.groups.len()
    }

    /// Declared incidents currently open (a walk over the open groups).
    pub fn open_incidents(&self) -> usize {
        self.groups.values().filter(|g| g.incident.is_some()).count()
    }

    /// The whole state, for persistence.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::capture(self)
    }

    /// A correlator that continues exactly where `snapshot` was taken.
    pub fn restore(
        settings: Arc<Settings>,
        topology: Arc<Topology>,
        snapshot: Snapshot,
    ) -> Result<Self, RestoreError> {
        let mut correlator = Correlator::new(settings, topology, snapshot.partition);
        snapshot.install(&mut correlator)?;
        correlator.rebuild_indexes();
        Ok(correlator)
    }

    /// Adds a grouping strategy after the built-in ones (topology, then the
    /// label rule). Its index is fed with the open groups at once, so this
    /// works on a new or a restored correlator alike; a correlator restored
    /// from a snapshot must get the same linkers, in the same order, as the
    /// one that took it.
    pub fn with_linker(mut self, mut linker: Box<dyn Linker>) -> Self {
        self.feed_open_groups(linker.as_mut());
        self.linkers.push(linker);
        self
    }

    fn rebuild_indexes(&mut self) {
        let mut recent: Vec<(Timestamp, Fingerprint)> = self
            .alerts
            .values()
            .filter(|a| a.content.is_some())
            .map(|a| (a.joined_at, a.fingerprint))
            .collect();
        recent.sort_unstable();
        self.content_recent = recent.into();
        let mut linkers = std::mem::take(&mut self.linkers);
        for linker in &mut linkers {
            self.feed_open_groups(linker.as_mut());
        }
        self.linkers = linkers;
    }

    /// Replays `joined` for the members of every open group, in join order.
    fn feed_open_groups(&self, linker: &mut dyn Linker) {
        for (&gid, group) in &self.groups {
            if !group.joinable {
                continue;
            }
            for fp in &group.members {
                let Some(alert) = self.alerts.get(fp) else { continue };
                let view = AlertView {
                    fingerprint: alert.fingerprint,
                    service: &alert.traits.service,
                    fallback_key: alert.traits.fallback_key,
                    at: alert.joined_at,
                    strong: alert.traits.severity >= crate::analysis::STRONG,
                };
                linker.joined(gid, &view);
            }
        }
    }

    // ---- observation ----------------------------------------------------

    /// A firing re-notification of the occurrence already tracked, with the
    /// same end and runbook: it has no effect whenever it is applied, so it
    /// need not wait in the buffer (and its time cannot move the clock past
    /// what the original already did).
    fn is_plain_repeat(&self, record: &AlertRecord<'_>) -> bool {
        if record.status != AlertStatus::Firing {
            return false;
        }
        let Some(state) = self.alerts.get(&record.fingerprint) else { return false };
        let expiry = record.ends_at.filter(|e| *e > record.starts_at);
        state.starts_at == record.starts_at
            && state.reported == AlertStatus::Firing
            && state.expires_at == expiry
            && record.runbook_url.as_deref() == state.traits.runbook.as_deref()
            && self.head.is_some_and(|h| record.starts_at <= h)
    }

    fn observe(&mut self, record: &AlertRecord<'_>, position: u64) -> Observation {
        let traits = match record.status {
            AlertStatus::Firing => self.traits_of(record),
            // A resolution never creates an alert, so what describes one is
            // not needed: skip the label work for a fifth of the traffic.
            AlertStatus::Resolved => AlertTraits {
                alertname: self.shared(""),
                severity: AlertSeverity::Info,
                service: ServiceRef::Absent,
                fallback_key: 0,
                fallback_desc: None,
                runbook: None,
            },
        };
        let content = (self.settings.content.enabled && record.status == AlertStatus::Firing)
            .then(|| Box::new(crate::content::features(record, &self.settings.content)));
        Observation {
            fingerprint: record.fingerprint,
            status: record.status,
            starts_at: record.starts_at,
            ends_at: record.ends_at,
            event_time: record.event_time(),
            traits,
            position,
            content,
        }
    }

    fn traits_of(&mut self, record: &AlertRecord<'_>) -> AlertTraits {
        let service = self.resolve_service(record);
        let mut key = Fnv1a64::default();
        for name in &self.settings.grouping.fallback_group_by {
            let value = record.labels.get(name).unwrap_or("");
            key.write(name.as_bytes()).write(&[0xff]).write(value.as_bytes()).write(&[0xff]);
        }
        let fallback_desc = match service {
            ServiceRef::Known(_) => None,
            _ => {
                let desc: Vec<String> = self
                    .settings
                    .grouping
                    .fallback_group_by
                    .iter()
                    .map(|n| format!("{n}={:?}", record.labels.get(n).unwrap_or("")))
                    .collect();
                Some(self.shared(&desc.join(", ")))
            }
        };
        AlertTraits {
            alertname: self.shared(record.alertname()),
            severity: AlertSeverity::from_label(record.labels.get("severity")),
            service,
            fallback_key: key.finish(),
            fallback_desc,
            runbook: record.runbook_url.as_deref().map(|u| self.shared(u)),
        }
    }

    fn resolve_service(&mut self, record: &AlertRecord<'_>) -> ServiceRef {
        let mut first_unknown = None;
        for label in &self.settings.service_labels {
            if let Some(value) = record.labels.get(label) {
                if let Some(id) = self.topology.lookup(value) {
                    return ServiceRef::Known(id);
                }
                first_unknown.get_or_insert(value);
            }
        }
        match first_unknown {
            Some(name) => ServiceRef::Unknown(self.shared(name)),
            None => ServiceRef::Absent,
        }
    }

    fn shared(&mut self, text: &str) -> Arc<str> {
        if let Some(s) = self.strings.get(text) {
            return s.clone();
        }
        if self.strings.len() >= STRING_CACHE_CAP {
            self.strings.clear();
        }
        let s: Arc<str> = text.into();
        self.strings.insert(text.into(), s.clone());
        s
    }

    // ---- the clock ------------------------------------------------------

    fn release_to_head<S: EventSink>(&mut self, sink: &mut S) {
        if let Some(head) = self.head {
            let limit = head.minus(self.settings.grouping.allowed_lateness);
            self.release(limit, sink);
        }
    }

    /// Applies buffered observations up to `limit` in order, firing due
    /// timers before each, then the timers due before `limit`.
    fn release<S: EventSink>(&mut self, limit: Timestamp, sink: &mut S) {
        while let Some(entry) = self.pending.first_entry() {
            let time = entry.key().0;
            if time > limit {
                break;
            }
            let observation = entry.remove();
            self.content_passes_before(time, sink);
            self.fire_timers_before(time, sink);
            self.watermark = self.watermark.max(time);
            let _changed = self.apply(*observation, time, sink);
        }
        self.content_passes_before(limit, sink);
        self.fire_timers_before(limit, sink);
        self.watermark = self.watermark.max(limit);
    }

    /// Runs the content clustering passes due at or before `limit`, each
    /// at its own instant, after the timers due before it: the instants are
    /// multiples of `content.period`, so they do not depend on how input
    /// was batched.
    fn content_passes_before<S: EventSink>(&mut self, limit: Timestamp, sink: &mut S) {
        if !self.settings.content.enabled || limit == Timestamp::MAX {
            return;
        }
        let period = self.settings.content.period.as_nanos().max(1) as i64;
        let after = |t: Timestamp| {
            Timestamp::from_unix_nanos((t.unix_nanos().div_euclid(period) + 1) * period)
        };
        let mut at = *self.next_content_at.get_or_insert_with(|| after(limit));
        while at <= limit {
            if !self.content_dirty {
                at = after(limit);
                break;
            }
            self.fire_timers_before(at, sink);
            self.content_dirty = false;
            self.content_pass(at, sink);
            at = after(at);
        }
        self.next_content_at = Some(at);
    }

    /// What `group` says, if it says one thing: the `alertname` all its
    /// members carry (one alert on many instances, or a group content
    /// built), or else the one all its strong members carry, since a
    /// warning from the background that happened to open or join the group
    /// is not what it is about. A group that topology grew from a fault and
    /// its symptoms says several things; different faults raise the same
    /// symptom names, so content never moves such groups.
    fn subject_of<'a>(&'a self, group: &Group) -> Option<&'a str> {
        let opener = self.alerts.get(&group.opener.0)?;
        let members = || group.members.iter().filter_map(|fp| self.alerts.get(fp));
        if members().all(|a| a.traits.alertname == opener.traits.alertname) {
            return Some(&opener.traits.alertname);
        }
        let mut strong = members().filter(|a| a.traits.severity >= crate::analysis::STRONG);
        let first = strong.next()?;
        strong
            .all(|a| a.traits.alertname == first.traits.alertname)
            .then_some(&*first.traits.alertname)
    }

    /// Whether an alert named `name` at `severity` joining `group` keeps
    /// the group saying one thing, and that thing is `name`.
    fn keeps_subject(&self, group: &Group, name: &str, severity: AlertSeverity) -> bool {
        let strong = crate::analysis::STRONG;
        // The opener's own name: the subject, or (under a strong subject
        // of another name) features that are kept but never a point.
        let opener = self.alerts.get(&group.opener.0);
        if opener.is_some_and(|o| *o.traits.alertname == *name) {
            return true;
        }
        // Every strong member must carry `name`; with none yet, a strong
        // alert becomes the subject. One pass, left at the first strong
        // member that says something else (usually the opener).
        let mut seen_strong = false;
        for alert in group.members.iter().filter_map(|fp| self.alerts.get(fp)) {
            if alert.traits.severity >= strong {
                if *alert.traits.alertname != *name {
                    return false;
                }
                seen_strong = true;
            }
        }
        seen_strong || severity >= strong
    }

    /// One clustering run over the firing alerts of the open window that
    /// carry what their group says (see [`Self::subject_of`]), at most
    /// `max_points` of them, the latest joined. Groups all of whose points
    /// fall in one cluster merge into one survivor (a declared incident
    /// first, else the oldest); each absorbed group's opener records the
    /// member of the survivor it is closest to, and the survivor is
    /// rescored once.
    fn content_pass<S: EventSink>(&mut self, now: Timestamp, sink: &mut S) {
        let window = self.settings.grouping.window;
        let since = now.minus(window);
        while self.content_recent.front().is_some_and(|(at, _)| *at < since) {
            self.content_recent.pop_front();
        }
        self.baseline.prune(now, self.settings.content.baseline);
        let mut candidates: Vec<(Timestamp, Fingerprint, &AlertState)> = self
            .content_recent
            .iter()
            .filter_map(|&(at, fp)| {
                let alert = self.alerts.get(&fp)?;
                let live = alert.joined_at == at && alert.status == AlertStatus::Firing;
                (live && alert.content.is_some()).then_some((at, fp, alert))
            })
            .collect();
        candidates.sort_by_key(|c| (c.0, c.1));
        candidates.dedup_by_key(|c| (c.0, c.1));
        // An alertname at its usual rate cannot make a burst: its alerts
        // are the background and stay out of the run, which is what keeps
        // a busy fleet's passes small.
        let mut per_name: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, alert) in &candidates {
            *per_name.entry(&alert.traits.alertname).or_default() += 1;
        }
        per_name.retain(|name, n| {
            self.baseline.is_burst(
                std::iter::once(*name),
                *n,
                (now, window),
                &self.settings.content,
            )
        });
        if per_name.is_empty() {
            return;
        }
        let mut eligible: FxHashMap<GroupId, Option<&str>> = FxHashMap::default();
        let mut points: Vec<(Timestamp, Fingerprint, GroupId, crate::content::Features)> =
            Vec::new();
        for (at, fp, alert) in candidates {
            let Some(content) = alert.content.as_ref() else { continue };
            if !per_name.contains_key(&*alert.traits.alertname) {
                continue;
            }
            let group = alert.group;
            let subject = eligible.entry(group).or_insert_with(|| {
                let g = self.groups.get(&group).filter(|g| g.joinable)?;
                self.subject_of(g)
            });
            if *subject == Some(&*alert.traits.alertname) {
                points.push((at, fp, group, **content));
            }
        }
        let max = self.settings.content.max_points;
        if points.len() > max {
            points.drain(..points.len() - max);
        }
        if points.len() < self.settings.content.min_points.max(2) {
            return;
        }
        let features: Vec<_> = points.iter().map(|p| p.3).collect();
        let labels = crate::content::cluster(&features, &self.settings.content);
        let mut clusters: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (index, label) in labels.iter().enumerate() {
            if let Some(label) = label {
                clusters.entry(*label).or_default().push(index);
            }
        }
        let mut points_of: FxHashMap<GroupId, usize> = FxHashMap::default();
        for point in &points {
            *points_of.entry(point.2).or_default() += 1;
        }
        for members in clusters.values() {
            let mut in_cluster: BTreeMap<GroupId, usize> = BTreeMap::new();
            for &i in members {
                *in_cluster.entry(points[i].2).or_default() += 1;
            }
            let mut services = std::collections::BTreeSet::new();
            let mut names = std::collections::BTreeSet::new();
            for alert in members.iter().filter_map(|&i| self.alerts.get(&points[i].1)) {
                services.insert(&alert.traits.service);
                names.insert(&*alert.traits.alertname);
            }
            if services.len() < self.settings.content.min_services {
                continue;
            }
            let burst = self.baseline.is_burst(
                names.into_iter(),
                members.len(),
                (now, window),
                &self.settings.content,
            );
            if !burst {
                continue;
            }
            // A group only partly in the cluster says something else too.
            let groups: Vec<GroupId> = in_cluster
                .iter()
                .filter(|&(g, n)| points_of.get(g) == Some(n) && self.groups.contains_key(g))
                .map(|(g, _)| *g)
                .collect();
            if groups.len() < 2 {
                continue;
            }
            let survivor = groups
                .iter()
                .copied()
                .find(|g| self.groups.get(g).is_some_and(|g| g.incident.is_some()))
                .unwrap_or(groups[0]);
            for &absorbed in groups.iter().filter(|g| **g != survivor) {
                let Some(opener) = self.groups.get(&absorbed).map(|g| g.opener.0) else {
                    continue;
                };
                let from = members.iter().map(|&i| &points[i]).find(|p| p.1 == opener);
                let from =
                    from.or_else(|| members.iter().map(|&i| &points[i]).find(|p| p.2 == absorbed));
                let Some(from) = from.map(|p| p.3) else { continue };
                let closest = members
                    .iter()
                    .map(|&i| &points[i])
                    .filter(|p| p.2 == survivor)
                    .map(|p| (crate::content::distance(&from, &p.3), p.1))
                    .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let Some((distance, via)) = closest else { continue };
                self.merge(survivor, absorbed, via, now, sink);
                if let Some(alert) = self.alerts.get_mut(&opener) {
                    alert.reason = JoinReason::Content {
                        via,
                        distance_milli: (distance * 1000.0).round() as u32,
                    };
                    alert.reason_text = Default::default();
                }
                self.stats.content_merges += 1;
            }
            if let Some(group) = self.groups.get_mut(&survivor) {
                let subject = members.first().and_then(|&i| self.alerts.get(&points[i].1));
                group.shared_cause = subject.map(|a| a.traits.alertname.clone());
            }
            self.after_change(survivor, true, now, sink);
        }
    }

    fn fire_timers_before<S: EventSink>(&mut self, limit: Timestamp, sink: &mut S) {
        while let Some(timer) = self.timers.pop_before(limit) {
            self.fire(timer, sink);
        }
        self.expire_tombstones(limit);
    }

    fn fire<S: EventSink>(&mut self, timer: Timer, sink: &mut S) {
        let now = timer.at;
        match timer.kind {
            TimerKind::AlertExpiry => self.on_alert_expiry(Fingerprint(timer.id), now, sink),
            TimerKind::FlapSettle => self.on_flap_settle(Fingerprint(timer.id), now, sink),
            TimerKind::JoinClose => self.on_join_close(timer.id),
            TimerKind::Persist => self.on_persist(timer.id, now, sink),
            TimerKind::Quiet => self.on_quiet(timer.id, now, sink),
            TimerKind::Flush => {
                if let Some(g) = self.groups.get_mut(&timer.id) {
                    g.timers.flush = None;
                }
                self.emit_update(timer.id, now, sink);
            }
        }
    }

    /// Forgets tombstones that expired before `limit`. Expiries are queued
    /// in the order groups closed, which is nearly time order; one that is
    /// out of order is dropped a little late, which changes nothing but how
    /// long a late repeat is recognised.
    fn expire_tombstones(&mut self, limit: Timestamp) {
        while let Some(&(at, fp)) = self.tombstone_queue.front() {
            if at >= limit {
                break;
            }
            self.tombstone_queue.pop_front();
            if self.tombstones.get(&fp).is_some_and(|t| t.expires_at <= at) {
                self.tombstones.remove(&fp);
            }
        }
    }

    // ---- applying observations -----------------------------------------

    /// Applies one observation at `now`; returns whether it changed an
    /// alert's state (as opposed to repeating or contradicting what is
    /// known).
    fn apply<S: EventSink>(&mut self, obs: Observation, now: Timestamp, sink: &mut S) -> bool {
        let fp = obs.fingerprint;
        let Some(state) = self.alerts.get_mut(&fp) else {
            let known = self.tombstones.get(&fp).is_some_and(|t| t.starts_at >= obs.starts_at);
            match (obs.status, known) {
                (_, true) => self.stats.duplicates += 1,
                (AlertStatus::Firing, false) => {
                    self.new_alert(obs, now, sink);
                    return true;
                }
                (AlertStatus::Resolved, false) => self.stats.resolved_unknown += 1,
            }
            return false;
        };
        if obs.starts_at < state.starts_at {
            self.stats.stale += 1;
            return false;
        }
        let same_occurrence = obs.starts_at == state.starts_at;
        match obs.status {
            AlertStatus::Firing if same_occurrence => {
                if state.reported == AlertStatus::Resolved {
                    self.stats.stale += 1;
                    return false;
                }
                self.stats.duplicates += 1;
                if obs.traits.runbook.is_some() {
                    state.traits.runbook = obs.traits.runbook;
                }
                if obs.ends_at != state.expires_at {
                    self.set_expiry(fp, obs.ends_at.filter(|e| *e > obs.starts_at));
                }
                false
            }
            AlertStatus::Firing => {
                self.refire(obs, now, sink);
                true
            }
            AlertStatus::Resolved if state.reported == AlertStatus::Resolved => {
                self.stats.duplicates += 1;
                false
            }
            AlertStatus::Resolved => {
                state.starts_at = obs.starts_at;
                self.resolve_alert(fp, now, sink);
                true
            }
        }
    }

    fn new_alert<S: EventSink>(&mut self, obs: Observation, now: Timestamp, sink: &mut S) {
        if self.alerts.len() >= self.settings.limits.max_active_alerts {
            self.stats.dropped_capacity += 1;
            sink.dropped(DroppedAlert {
                fingerprint: obs.fingerprint,
                position: obs.position,
                reason: "capacity",
            });
            return;
        }
        self.stats.unique_alerts += 1;
        let view = AlertView {
            fingerprint: obs.fingerprint,
            service: &obs.traits.service,
            fallback_key: obs.traits.fallback_key,
            at: now,
            strong: obs.traits.severity >= crate::analysis::STRONG,
        };
        let mut links = std::mem::take(&mut self.links);
        links.clear();
        for linker in &self.linkers {
            linker.propose(&view, &mut links);
        }
        let (group, reason) = match self.place_linked(&links, &obs, now, sink) {
            Some(placed) => {
                self.stats.alerts_grouped += 1;
                placed
            }
            None => (self.open_group(&obs, now), JoinReason::Opened),
        };
        self.links = links;

        let fp = obs.fingerprint;
        if self.settings.content.enabled {
            let baseline = self.settings.content.baseline;
            self.baseline.record(&obs.traits.alertname, now, baseline);
        }
        // Content only ever moves groups that say one thing, and only in a
        // burst: an alert that joins a group about another alertname, or
        // whose alertname is at its usual rate, can never be one of its
        // points, so its features are not kept (nor queued for a pass).
        let content = obs.content.filter(|_| {
            let one_thing = matches!(reason, JoinReason::Opened)
                || self.groups.get(&group).is_some_and(|g| {
                    self.keeps_subject(g, &obs.traits.alertname, obs.traits.severity)
                });
            let name = &obs.traits.alertname;
            one_thing && self.baseline.is_bursting(name, now, &self.settings.content)
        });
        let state = AlertState {
            fingerprint: fp,
            traits: obs.traits,
            starts_at: obs.starts_at,
            status: AlertStatus::Firing,
            reported: AlertStatus::Firing,
            expires_at: None,
            settle_at: None,
            transitions: Default::default(),
            flapping: false,
            group,
            reason,
            reason_text: Default::default(),
            joined_at: now,
            content,
        };
        if state.content.is_some() {
            self.content_dirty = true;
            self.content_recent.push_back((now, fp));
        }
        self.alerts.insert(fp, state);
        self.set_expiry(fp, obs.ends_at.filter(|e| *e > obs.starts_at));
        let shape_changed = self.join(group, fp, now);
        self.after_change(group, shape_changed, now, sink);
    }

    /// Places an alert that has proposals; returns its group and reason.
    /// It joins the closest proposal. When that one explains its group,
    /// every group the alert explains merges into one survivor (the oldest
    /// declared incident among them, else the closest-linked group);
    /// otherwise nothing merges.
    /// A weak alert (below `error`) whose closest topology link is further
    /// than `weak_link_within` opens a group of its own instead; more
    /// instances of one alert on one service are exempt.
    fn place_linked<S: EventSink>(
        &mut self,
        links: &[Link],
        obs: &Observation,
        now: Timestamp,
        sink: &mut S,
    ) -> Option<(GroupId, JoinReason)> {
        let grouping = &self.settings.grouping;
        let strong = obs.traits.severity >= crate::analysis::STRONG;
        let admits = |link: &&Link| self.admits(link, obs);
        let closest = closest_link(links.iter().filter(admits), grouping.hop_cost, strong)?;
        let by_topology = closest.rank < crate::linker::LABEL_RULE_RANK;
        // A link with a weak alert at either end is weak evidence: a warning
        // joining, or a failure whose only alerting neighbour merely warns
        // (strong alerts take links to strong services first, so this is
        // the only kind left).
        let weak_link = !strong || !closest.via_strong;
        if weak_link && by_topology && !grouping.weak_link_within.is_zero() {
            let far = link_distance(closest, grouping.hop_cost) > nanos(grouping.weak_link_within);
            let same_alert = closest.rank == 0
                && closest
                    .reason
                    .via()
                    .and_then(|fp| self.alerts.get(&fp))
                    .is_some_and(|v| v.traits.alertname == obs.traits.alertname);
            if far && !same_alert {
                // A warning minutes after its neighbour started failing is
                // more often the fleet's background than a symptom, and so
                // is a warning minutes before a neighbour fails.
                return None;
            }
        }
        let via = obs.fingerprint;
        // A symptom of something that has just started alerting below it
        // is not the cause of a group it would explain from further away:
        // the deep chain's faults would otherwise merge through it.
        if !closest.explains {
            return Some((closest.group, closest.reason.clone()));
        }
        let mut ids: Vec<GroupId> =
            links.iter().filter(admits).filter(|l| l.explains).map(|l| l.group).collect();
        ids.sort_unstable();
        ids.dedup();
        let survivor = ids
            .iter()
            .copied()
            .find(|id| self.groups.get(id).is_some_and(|g| g.incident.is_some()))
            .unwrap_or(closest.group);
        for id in ids {
            if id != survivor {
                self.merge(survivor, id, via, now, sink);
            }
        }
        Some((survivor, closest.reason.clone()))
    }

    /// Whether `link` may place `obs` at all, before the closest is chosen.
    fn admits(&self, link: &Link, obs: &Observation) -> bool {
        // A link through services that show nothing is weak evidence, like
        // a warning's, and counts only while it is fresh.
        let quiet_within = nanos(self.settings.grouping.weak_link_within);
        if link.quiet_path && quiet_within > 0 && link.reason.gap_nanos() > quiet_within {
            return false;
        }
        // An alert that the group already puts down to a shared cause is not
        // explained by a failure in one of its dependencies: that failure
        // is another incident.
        let Some(shared) = self.groups.get(&link.group).and_then(|g| g.shared_cause.as_ref())
        else {
            return true;
        };
        !link.explains
            || **shared == *obs.traits.alertname
            || link
                .reason
                .via()
                .and_then(|fp| self.alerts.get(&fp))
                .is_none_or(|linked| linked.traits.alertname != *shared)
    }

    fn open_group(&mut self, obs: &Observation, now: Timestamp) -> GroupId {
        if self.joinable >= self.settings.limits.max_open_groups {
            self.force_close_oldest();
        }
        let id = self.next_group;
        self.next_group += 1;
        let mut group = Group {
            id,
            opener: (obs.fingerprint, obs.starts_at),
            first_at: obs.starts_at,
            opened_at: now,
            last_join_at: now,
            members: Vec::new(),
            firing: 0,
            services: BTreeMap::new(),
            max_severity: AlertSeverity::Info,
            critical_on: None,
            shared_cause: None,
            joinable: true,
            quiet_since: None,
            incident: None,
            timers: GroupTimers::default(),
            analysis: None,
            scoring: None,
        };
        if let Some(persist) = self.settings.declare.persist_for {
            let at = now.plus(persist);
            self.timers.schedule(&mut group.timers.persist, at, TimerKind::Persist, id);
        }
        self.groups.insert(id, group);
        self.joinable += 1;
        self.stats.groups_opened += 1;
        id
    }

    fn force_close_oldest(&mut self) {
        let oldest = self.groups.values().find(|g| g.joinable).map(|g| g.id);
        if let Some(id) = oldest {
            self.stats.groups_force_closed += 1;
            self.stop_joining(id);
        }
    }

    /// Adds a member; returns whether the group's shape (services or most
    /// severe alert) changed, which is what can move its priority.
    fn join(&mut self, gid: GroupId, fp: Fingerprint, now: Timestamp) -> bool {
        let Some(alert) = self.alerts.get(&fp) else {
            return false;
        };
        let Some(group) = self.groups.get_mut(&gid) else {
            return false;
        };
        let settings = &self.settings;
        group.members.push(fp);
        group.firing += 1;
        group.last_join_at = now;
        group.first_at = group.first_at.min(alert.starts_at);
        self.timers.cancel(&mut group.timers.quiet, TimerKind::Quiet, gid);
        group.quiet_since = None;

        let mut shape_changed = false;
        if alert.traits.service != ServiceRef::Absent {
            let tally = group.services.entry(alert.traits.service.clone()).or_insert_with(|| {
                shape_changed = true;
                ServiceTally {
                    alerts: 0,
                    first_at: alert.starts_at,
                    max_severity: alert.traits.severity,
                }
            });
            tally.alerts += 1;
            tally.first_at = tally.first_at.min(alert.starts_at);
            if alert.traits.severity > tally.max_severity {
                // Strength decides root-cause candidates.
                tally.max_severity = alert.traits.severity;
                shape_changed = true;
            }
        }
        if alert.traits.severity > group.max_severity {
            group.max_severity = alert.traits.severity;
            shape_changed = true;
        }
        if shape_changed {
            group.analysis = None;
            group.scoring = None;
        }
        if group.critical_on.is_none()
            && alert.traits.severity == AlertSeverity::Critical
            && let ServiceRef::Known(id) = alert.traits.service
        {
            let service = self.topology.service(id);
            let by_tier = settings.declare.critical_max_tier.is_some_and(|t| service.tier <= t);
            let by_users = settings.declare.critical_user_facing && service.user_facing;
            if by_tier || by_users {
                group.critical_on = Some(service.name.to_string());
            }
        }

        let window_end = now.plus(settings.grouping.window);
        let life_end = group.opened_at.plus(settings.grouping.max_group_lifetime);
        let close_at = window_end.min(life_end);
        self.timers.schedule(&mut group.timers.join_close, close_at, TimerKind::JoinClose, gid);

        let view = AlertView {
            fingerprint: fp,
            service: &alert.traits.service,
            fallback_key: alert.traits.fallback_key,
            at: now,
            strong: alert.traits.severity >= crate::analysis::STRONG,
        };
        for linker in &mut self.linkers {
            linker.joined(gid, &view);
        }
        shape_changed
    }

    fn merge<S: EventSink>(
        &mut self,
        into: GroupId,
        from: GroupId,
        via: Fingerprint,
        now: Timestamp,
        sink: &mut S,
    ) {
        if let Some(g) = self.groups.get(&from)
            && g.incident.is_some()
        {
            let into_id =
                self.groups.get(&into).and_then(|g| g.incident.as_ref()).map(|i| i.id.clone());
            self.emit(from, EventKind::Resolved, now, into_id.as_deref(), sink);
            self.stats.incidents_merged += 1;
            if let Some(i) = self.groups.get(&from).and_then(|g| g.incident.as_ref()) {
                let severity = i.severity;
                self.stats.count_priority(severity, -1);
            }
        }
        let Some(mut absorbed) = self.groups.remove(&from) else {
            return;
        };
        for linker in &mut self.linkers {
            linker.merged(into, from);
        }
        if absorbed.joinable {
            self.joinable -= 1;
        }
        let t = &mut absorbed.timers;
        self.timers.cancel(&mut t.join_close, TimerKind::JoinClose, from);
        self.timers.cancel(&mut t.persist, TimerKind::Persist, from);
        self.timers.cancel(&mut t.quiet, TimerKind::Quiet, from);
        self.timers.cancel(&mut t.flush, TimerKind::Flush, from);
        let was_incident = absorbed.incident.as_ref().map(|i| i.id.clone());
        for fp in &absorbed.members {
            if let Some(alert) = self.alerts.get_mut(fp) {
                alert.group = into;
                if *fp == absorbed.opener.0 {
                    alert.reason = JoinReason::Merged { via, was_incident: was_incident.clone() };
                }
            }
        }
        let Some(group) = self.groups.get_mut(&into) else {
            return;
        };
        group.members.extend_from_slice(&absorbed.members);
        for (service, tally) in absorbed.services {
            let entry =
                group.services.entry(service).or_insert(ServiceTally { alerts: 0, ..tally });
            entry.alerts += tally.alerts;
            entry.first_at = entry.first_at.min(tally.first_at);
            entry.max_severity = entry.max_severity.max(tally.max_severity);
        }
        group.firing += absorbed.firing;
        group.analysis = None;
        group.scoring = None;
        group.first_at = group.first_at.min(absorbed.first_at);
        group.max_severity = group.max_severity.max(absorbed.max_severity);
        group.critical_on = group.critical_on.take().or(absorbed.critical_on);
        group.shared_cause = group.shared_cause.take().or(absorbed.shared_cause);
        if group.firing > 0 {
            self.timers.cancel(&mut group.timers.quiet, TimerKind::Quiet, into);
            group.quiet_since = None;
        }
        self.stats.groups_merged += 1;
    }

    fn refire<S: EventSink>(&mut self, obs: Observation, now: Timestamp, sink: &mut S) {
        let fp = obs.fingerprint;
        self.stats.refired += 1;
        let Some(state) = self.alerts.get_mut(&fp) else {
            return;
        };
        state.starts_at = obs.starts_at;
        state.reported = AlertStatus::Firing;
        let gid = state.group;
        let was_resolved = state.status == AlertStatus::Resolved;
        state.status = AlertStatus::Firing;
        self.record_transition(fp, now);
        self.set_expiry(fp, obs.ends_at.filter(|e| *e > obs.starts_at));
        // A flapping alert re-firing is already firing as far as the
        // incident is concerned: nothing to tell responders.
        if was_resolved && let Some(group) = self.groups.get_mut(&gid) {
            group.firing += 1;
            group.quiet_since = None;
            self.timers.cancel(&mut group.timers.quiet, TimerKind::Quiet, gid);
            self.after_change(gid, false, now, sink);
        }
    }

    /// The sources report `fp` resolved at `now`.
    fn resolve_alert<S: EventSink>(&mut self, fp: Fingerprint, now: Timestamp, sink: &mut S) {
        let Some(state) = self.alerts.get_mut(&fp) else {
            return;
        };
        state.reported = AlertStatus::Resolved;
        let gid = state.group;
        self.set_expiry(fp, None);
        self.record_transition(fp, now);
        if self.alerts.get(&fp).is_some_and(|a| a.flapping) {
            return;
        }
        self.mark_resolved(fp, now);
        self.after_change(gid, false, now, sink);
    }

    /// Moves a firing alert to resolved and starts its group's quiet period
    /// when it was the last one firing.
    fn mark_resolved(&mut self, fp: Fingerprint, now: Timestamp) {
        let Some(state) = self.alerts.get_mut(&fp) else {
            return;
        };
        if state.status == AlertStatus::Resolved {
            return;
        }
        state.status = AlertStatus::Resolved;
        let gid = state.group;
        let Some(group) = self.groups.get_mut(&gid) else {
            return;
        };
        group.firing = group.firing.saturating_sub(1);
        if group.firing == 0 {
            group.quiet_since = Some(now);
            let at = now.plus(self.settings.quiet_period);
            self.timers.schedule(&mut group.timers.quiet, at, TimerKind::Quiet, gid);
        }
    }

    /// Records a fire/resolve transition and applies flap damping.
    fn record_transition(&mut self, fp: Fingerprint, now: Timestamp) {
        let policy = &self.settings.flap;
        let Some(state) = self.alerts.get_mut(&fp) else {
            return;
        };
        let horizon = now.minus(policy.period);
        state.transitions.push_back(now);
        while state.transitions.front().is_some_and(|t| *t < horizon)
            || state.transitions.len() > policy.max_transitions as usize
        {
            state.transitions.pop_front();
        }
        if policy.max_transitions > 0 && state.transitions.len() >= policy.max_transitions as usize
        {
            if !state.flapping {
                state.flapping = true;
                self.stats.flapping += 1;
            }
            let at = now.plus(policy.period);
            self.timers.schedule(&mut state.settle_at, at, TimerKind::FlapSettle, fp.0);
        }
    }

    fn set_expiry(&mut self, fp: Fingerprint, at: Option<Timestamp>) {
        let Some(state) = self.alerts.get_mut(&fp) else {
            return;
        };
        match at {
            Some(at) => {
                self.timers.schedule(&mut state.expires_at, at, TimerKind::AlertExpiry, fp.0)
            }
            None => self.timers.cancel(&mut state.expires_at, TimerKind::AlertExpiry, fp.0),
        }
    }

    // ---- timers ---------------------------------------------------------

    fn on_alert_expiry<S: EventSink>(&mut self, fp: Fingerprint, now: Timestamp, sink: &mut S) {
        let Some(state) = self.alerts.get_mut(&fp) else {
            return;
        };
        state.expires_at = None;
        if state.reported == AlertStatus::Firing {
            self.resolve_alert(fp, now, sink);
        }
    }

    fn on_flap_settle<S: EventSink>(&mut self, fp: Fingerprint, now: Timestamp, sink: &mut S) {
        let period = self.settings.flap.period;
        let Some(state) = self.alerts.get_mut(&fp) else {
            return;
        };
        state.settle_at = None;
        let stable = state.transitions.back().is_none_or(|t| t.plus(period) <= now);
        if !state.flapping || !stable {
            return;
        }
        state.flapping = false;
        state.transitions.clear();
        let gid = state.group;
        if state.reported == AlertStatus::Resolved {
            self.mark_resolved(fp, now);
        }
        self.after_change(gid, false, now, sink);
    }

    fn on_join_close(&mut self, gid: GroupId) {
        if let Some(group) = self.groups.get_mut(&gid) {
            group.timers.join_close = None;
        }
        self.stop_joining(gid);
    }

    fn stop_joining(&mut self, gid: GroupId) {
        let Some(group) = self.groups.get_mut(&gid) else {
            return;
        };
        if !group.joinable {
            return;
        }
        group.joinable = false;
        self.timers.cancel(&mut group.timers.join_close, TimerKind::JoinClose, gid);
        self.joinable -= 1;
        for linker in &mut self.linkers {
            linker.closed(gid);
        }
    }

    fn on_persist<S: EventSink>(&mut self, gid: GroupId, now: Timestamp, sink: &mut S) {
        let Some(group) = self.groups.get_mut(&gid) else {
            return;
        };
        group.timers.persist = None;
        if group.incident.is_some() || group.firing == 0 {
            return;
        }
        let floor = self.settings.declare.persist_min_severity;
        let worst = group
            .members
            .iter()
            .filter_map(|fp| self.alerts.get(fp))
            // Damping holds a flapping alert firing so the incident does
            // not flap with it; that is not a threshold that persists.
            .filter(|a| a.status == AlertStatus::Firing && !a.flapping)
            .map(|a| a.traits.severity)
            .max();
        if worst.is_some_and(|s| s >= floor) {
            let since = crate::analysis::human_duration(now.since(group.opened_at));
            let reason = format!("still firing {since} after the first alert (persist_for)");
            self.declare(gid, reason, now, sink);
        }
    }

    fn on_quiet<S: EventSink>(&mut self, gid: GroupId, now: Timestamp, sink: &mut S) {
        let quiet = self.settings.quiet_period;
        let Some(group) = self.groups.get_mut(&gid) else {
            return;
        };
        group.timers.quiet = None;
        let quiet_enough = group.quiet_since.is_some_and(|t| t.plus(quiet) <= now);
        if group.firing == 0 && quiet_enough {
            self.close_group(gid, now, sink);
        }
    }

    /// Ends a group: resolves its incident (or counts it as noise) and
    /// forgets its alerts, leaving tombstones.
    fn close_group<S: EventSink>(&mut self, gid: GroupId, now: Timestamp, sink: &mut S) {
        self.stop_joining(gid);
        let declared = self.groups.get(&gid).is_some_and(|g| g.incident.is_some());
        if declared {
            self.emit(gid, EventKind::Resolved, now, None, sink);
        }
        let Some(mut group) = self.groups.remove(&gid) else {
            return;
        };
        let t = &mut group.timers;
        self.timers.cancel(&mut t.persist, TimerKind::Persist, gid);
        self.timers.cancel(&mut t.quiet, TimerKind::Quiet, gid);
        self.timers.cancel(&mut t.flush, TimerKind::Flush, gid);
        if !declared {
            self.stats.noise_groups += 1;
            self.stats.noise_alerts += group.members.len() as u64;
        }
        let expires_at = now.plus(self.settings.limits.tombstone_retention);
        for fp in group.members {
            let Some(mut alert) = self.alerts.remove(&fp) else {
                continue;
            };
            self.timers.cancel(&mut alert.expires_at, TimerKind::AlertExpiry, fp.0);
            self.timers.cancel(&mut alert.settle_at, TimerKind::FlapSettle, fp.0);
            let tombstone = Tombstone { starts_at: alert.starts_at, expires_at };
            self.tombstones.insert(fp, tombstone);
            self.tombstone_queue.push_back((expires_at, fp));
        }
    }

    // ---- declaration and events ----------------------------------------

    fn after_change<S: EventSink>(
        &mut self,
        gid: GroupId,
        shape_changed: bool,
        now: Timestamp,
        sink: &mut S,
    ) {
        let Some(group) = self.groups.get(&gid) else {
            return;
        };
        let Some(incident) = &group.incident else {
            if let Some(reason) = self.declare_rule(group) {
                self.declare(gid, reason, now, sink);
            }
            return;
        };
        if shape_changed {
            let severity = incident.severity;
            let scoring = crate::analysis::score(group, &self.topology, &self.settings);
            let priority = scoring.priority;
            if let Some(group) = self.groups.get_mut(&gid) {
                group.scoring = Some(Box::new(scoring));
            }
            if priority.is_above(severity) {
                let analysis = self.analysis(gid);
                self.escalate(gid, &analysis, now, sink);
                return;
            }
        }
        let updates = &self.settings.updates;
        let quiet_period = self.settings.quiet_period;
        let Some(group) = self.groups.get_mut(&gid) else {
            return;
        };
        let Some(incident) = group.incident.as_mut() else {
            return;
        };
        // Material: what responders act on. The rest (one more alert on a
        // service already listed, one of many alerts resolving) only
        // refreshes the snapshot now and then.
        let members = group.members.len() as u64;
        let emitted = u64::from(incident.emitted_alerts);
        let grown = members * 100 >= emitted * (100 + u64::from(updates.material_growth_percent))
            && members >= emitted + u64::from(updates.material_growth_min_alerts);
        // Firing again after all alerts went quiet is news; going quiet is
        // not (resolution follows after the quiet period).
        let relapsed = group.firing > 0 && incident.emitted_firing == 0;
        let material = shape_changed || grown || relapsed;
        let delay = if material { updates.min_interval } else { updates.refresh_interval };
        let mut at = incident.last_emitted_at.plus(delay).max(now);
        if !material && let Some(quiet_since) = group.quiet_since {
            // All quiet: the resolution at the end of the quiet period will
            // carry these changes, unless something fires again first.
            at = at.max(quiet_since.plus(quiet_period));
        }
        incident.dirty = true;
        if group.timers.flush.is_none_or(|scheduled| at < scheduled) {
            self.timers.schedule(&mut group.timers.flush, at, TimerKind::Flush, gid);
        }
    }

    fn declare_rule(&self, group: &Group) -> Option<String> {
        let policy = &self.settings.declare;
        let alerts = group.members.len();
        if alerts >= policy.min_alerts as usize {
            return Some(format!("{alerts} alerts (min_alerts {})", policy.min_alerts));
        }
        let services = group.services.len();
        if services >= policy.min_services as usize
            && group.max_severity >= policy.min_services_severity
        {
            return Some(format!(
                "{services} services alerting (min_services {})",
                policy.min_services
            ));
        }
        group.critical_on.as_ref().map(|s| format!("critical alert on {s}"))
    }

    fn declare<S: EventSink>(
        &mut self,
        gid: GroupId,
        reason: String,
        now: Timestamp,
        sink: &mut S,
    ) {
        let Some(opener) = self.groups.get(&gid).map(|g| g.opener) else {
            return;
        };
        let analysis = self.analysis(gid);
        let id = incident_id(self.partition, opener);
        let Some(group) = self.groups.get_mut(&gid) else {
            return;
        };
        self.timers.cancel(&mut group.timers.persist, TimerKind::Persist, gid);
        group.incident = Some(Incident {
            id,
            version: 1,
            declared_at: now,
            declared_reason: reason,
            severity: analysis.priority,
            dirty: false,
            last_emitted_at: now,
            emitted_alerts: group.members.len() as u32,
            emitted_firing: group.firing,
        });
        self.stats.incidents_declared += 1;
        self.stats.count_priority(analysis.priority, 1);
        self.send(gid, EventKind::Declared, now, None, &analysis, sink);
    }

    fn escalate<S: EventSink>(
        &mut self,
        gid: GroupId,
        analysis: &Analysis,
        now: Timestamp,
        sink: &mut S,
    ) {
        let Some(incident) = self.groups.get_mut(&gid).and_then(|g| g.incident.as_mut()) else {
            return;
        };
        let old = incident.severity;
        incident.severity = analysis.priority;
        self.stats.count_priority(old, -1);
        self.stats.count_priority(analysis.priority, 1);
        self.bump_and_send(gid, EventKind::Updated, now, None, analysis, sink);
    }

    fn emit_update<S: EventSink>(&mut self, gid: GroupId, now: Timestamp, sink: &mut S) {
        let dirty =
            self.groups.get(&gid).and_then(|g| g.incident.as_ref()).is_some_and(|i| i.dirty);
        if dirty {
            self.emit(gid, EventKind::Updated, now, None, sink);
        }
    }

    /// The group's scoring, from the cache or computed and cached.
    fn analysis(&mut self, gid: GroupId) -> Arc<Analysis> {
        let Some(group) = self.groups.get_mut(&gid) else {
            return Arc::new(Analysis::default());
        };
        if let Some(cached) = &group.analysis {
            return cached.clone();
        }
        let fresh = Arc::new(match group.scoring.take() {
            Some(scoring) => analyse_scored(group, *scoring, &self.topology, &self.settings),
            None => analyse(group, &self.topology, &self.settings),
        });
        group.analysis = Some(fresh.clone());
        fresh
    }

    /// Sends the next version of an incident's event.
    fn emit<S: EventSink>(
        &mut self,
        gid: GroupId,
        kind: EventKind,
        now: Timestamp,
        merged_into: Option<&str>,
        sink: &mut S,
    ) {
        let Some(group) = self.groups.get(&gid) else {
            return;
        };
        let analysis = analyse(group, &self.topology, &self.settings);
        if kind == EventKind::Resolved {
            self.stats.incidents_resolved += 1;
        }
        self.bump_and_send(gid, kind, now, merged_into, &analysis, sink);
    }

    fn bump_and_send<S: EventSink>(
        &mut self,
        gid: GroupId,
        kind: EventKind,
        now: Timestamp,
        merged_into: Option<&str>,
        analysis: &Analysis,
        sink: &mut S,
    ) {
        let Some(group) = self.groups.get_mut(&gid) else {
            return;
        };
        let Some(incident) = group.incident.as_mut() else {
            return;
        };
        incident.version += 1;
        incident.dirty = false;
        incident.last_emitted_at = now;
        incident.emitted_alerts = group.members.len() as u32;
        incident.emitted_firing = group.firing;
        self.timers.cancel(&mut group.timers.flush, TimerKind::Flush, gid);
        if kind == EventKind::Updated {
            self.stats.incidents_updated += 1;
        }
        self.send(gid, kind, now, merged_into, analysis, sink);
    }

    fn send<S: EventSink>(
        &self,
        gid: GroupId,
        kind: EventKind,
        at: Timestamp,
        merged_into: Option<&str>,
        analysis: &Analysis,
        sink: &mut S,
    ) {
        let Some(group) = self.groups.get(&gid) else {
            return;
        };
        let header = EventHeader { kind, at, merged_into };
        let event =
            render_event(&header, group, &self.alerts, analysis, &self.topology, &self.settings);
        if let Some(event) = event {
            sink.incident(event);
        }
    }
}

/// The closest proposal: topology before the label rule; for a strong
/// alert, links to strongly alerting services before links to services
/// that only warn; then least event time to the linked alert with each
/// rank step (hop) counting as `hop_cost`; then the oldest group.
fn closest_link<'a>(
    links: impl Iterator<Item = &'a Link>,
    hop_cost: std::time::Duration,
    strong: bool,
) -> Option<&'a Link> {
    links.min_by_key(|l| {
        let by_label_rule = l.rank >= crate::linker::LABEL_RULE_RANK;
        let weak = strong && !l.via_strong;
        (by_label_rule, weak, link_distance(l, hop_cost), l.group)
    })
}

/// Event time between the alert and the member it links to, plus
/// `hop_cost` per rank step (hop).
fn link_distance(link: &Link, hop_cost: std::time::Duration) -> i64 {
    i64::from(link.rank).saturating_mul(nanos(hop_cost)).saturating_add(link.reason.gap_nanos())
}

/// A duration in nanoseconds, saturating.
pub(crate) fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `inc-` and 16 hex digits of FNV-1a over the partition and the opening
/// alert's fingerprint and start: the same alert opening an incident on the
/// same partition always yields the same id.
pub fn incident_id(partition: u32, opener: (Fingerprint, Timestamp)) -> String {
    let mut hash = Fnv1a64::default();
    hash.write(&partition.to_be_bytes())
        .write(&opener.0.0.to_be_bytes())
        .write(&opener.1.unix_nanos().to_be_bytes());
    format!("inc-{:016x}", hash.finish())
}
