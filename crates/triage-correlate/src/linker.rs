//! The grouping seam: strategies that propose which open group an alert
//! should join, and why.
//!
//! Each [`Linker`] keeps its own index of the groups that are open for
//! joining, fed by the engine through `joined`, `merged` and `closed`, and
//! answers `propose` for a new alert. A proposal either only places the
//! alert (it is a symptom of something in the group, or matches its labels)
//! or also explains the group (the alert sits below the group's deepest
//! alerting service: a likelier cause). The engine joins the closest
//! proposal (least event time to the linked alert, each rank step counting
//! as `hop_cost`; topology before the label rule); an alert that explains
//! several groups merges them, since they are one fault seen from several
//! sides, unless a symptom link is closer still: it then joins that group
//! and merges nothing. A symptom that several groups could explain (a
//! user-facing service degraded by two faults at once) joins one and
//! merges nothing.
//! Topology and the label rule live here. Content clustering is not a
//! linker: it compares the window's alerts with each other, not one new
//! alert with an index, so the engine runs it as periodic passes (see
//! `content.rs`). Indexes are derived state: after a restore the
//! engine rebuilds them by replaying `joined` for the members of open
//! groups in join order, so `joined` must not depend on anything but its
//! arguments and the index.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use triage_model::{Fingerprint, Timestamp};
use triage_topology::{Neighbour, Relation, ServiceId, ServiceSet, Topology};

use crate::state::{GroupId, JoinReason, ServiceRef};

/// What a linker sees of an alert.
#[derive(Clone, Copy, Debug)]
pub struct AlertView<'a> {
    /// The alert.
    pub fingerprint: Fingerprint,
    /// Its service.
    pub service: &'a ServiceRef,
    /// Hash of the fallback label values.
    pub fallback_key: u64,
    /// Event time at which it is being placed or joined.
    pub at: Timestamp,
    /// It alerts at `error` or above: strong evidence.
    pub strong: bool,
}

/// A proposal: join `group` because of `reason`. Lower `rank` is stronger
/// (topology ranks by hop count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The proposed group.
    pub group: GroupId,
    /// Strength, lower is better.
    pub rank: u32,
    /// The alert explains the group (a likelier cause), so groups it
    /// explains together may merge.
    pub explains: bool,
    /// What it links to alerts strongly (at `error` or above) in the
    /// group; a strong alert prefers such links over ones to services
    /// that only warn.
    pub via_strong: bool,
    /// The link passes through services between the two that alert in no
    /// open group: the failure did not visibly travel along it.
    pub quiet_path: bool,
    /// Why, for the explanation.
    pub reason: JoinReason,
}

/// A grouping strategy.
pub trait Linker: Send {
    /// Appends proposals for `alert` to `out`.
    fn propose(&self, alert: &AlertView<'_>, out: &mut Vec<Link>);
    /// `alert` joined (or opened) `group`.
    fn joined(&mut self, group: GroupId, alert: &AlertView<'_>);
    /// Group `from` was merged into `into`.
    fn merged(&mut self, into: GroupId, from: GroupId);
    /// `group` no longer accepts alerts.
    fn closed(&mut self, group: GroupId);
}

/// Rank of label-rule proposals: weaker than any topology link.
pub(crate) const LABEL_RULE_RANK: u32 = 1_000;

/// One (key, group) entry of a [`KeyIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    group: GroupId,
    /// The latest member with the key, by (time, fingerprint).
    via: Fingerprint,
    /// When it joined.
    at: Timestamp,
    /// When the first member with the key joined.
    first_at: Timestamp,
}

/// An index from a key to the open groups holding it. Entries are kept by
/// rules that do not depend on the order members are replayed in after a
/// restore: latest member by (time, fingerprint), earliest time.
struct KeyIndex<K> {
    by_key: FxHashMap<K, Vec<Entry>>,
    keys_of: FxHashMap<GroupId, Vec<K>>,
}

impl<K> Default for KeyIndex<K> {
    fn default() -> Self {
        KeyIndex { by_key: FxHashMap::default(), keys_of: FxHashMap::default() }
    }
}

impl Entry {
    /// Folds `other` (same key) into this entry.
    fn absorb(&mut self, other: &Entry) {
        if (other.at, other.via) > (self.at, self.via) {
            self.via = other.via;
            self.at = other.at;
        }
        self.first_at = self.first_at.min(other.first_at);
    }
}

impl<K: Copy + Eq + std::hash::Hash> KeyIndex<K> {
    fn get(&self, key: &K) -> &[Entry] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// Records that `alert` brought `key` into `group`.
    fn add(&mut self, key: K, group: GroupId, alert: &AlertView<'_>) {
        let new = Entry { group, via: alert.fingerprint, at: alert.at, first_at: alert.at };
        let entries = self.by_key.entry(key).or_default();
        match entries.iter_mut().find(|e| e.group == group) {
            Some(e) => e.absorb(&new),
            None => {
                entries.push(new);
                self.keys_of.entry(group).or_default().push(key);
            }
        }
    }

    fn merge(&mut self, into: GroupId, from: GroupId) {
        let Some(keys) = self.keys_of.remove(&from) else {
            return;
        };
        for key in keys {
            let Some(entries) = self.by_key.get_mut(&key) else {
                continue;
            };
            let absorbed = entries.iter().find(|e| e.group == from).copied();
            let kept = entries.iter().position(|e| e.group == into);
            if let (Some(kept), Some(absorbed)) = (kept, absorbed) {
                entries[kept].absorb(&absorbed);
                entries.retain(|e| e.group != from);
            } else {
                for e in entries.iter_mut().filter(|e| e.group == from) {
                    e.group = into;
                }
                self.keys_of.entry(into).or_default().push(key);
            }
        }
    }

    /// Forgets `group`; returns the keys no open group holds any more.
    fn close(&mut self, group: GroupId) -> Vec<K> {
        let mut emptied = Vec::new();
        for key in self.keys_of.remove(&group).unwrap_or_default() {
            if let Some(entries) = self.by_key.get_mut(&key) {
                entries.retain(|e| e.group != group);
                if entries.is_empty() {
                    self.by_key.remove(&key);
                    emptied.push(key);
                }
            }
        }
        emptied
    }
}

/// Links alerts whose services are within `max_hops` along dependency
/// edges and whose latest alerts on those services are within the window.
pub struct TopologyLinker {
    topology: Arc<Topology>,
    window_nanos: i64,
    cause_lag_nanos: i64,
    index: KeyIndex<ServiceId>,
    /// Catalog services alerting in each open group.
    services_of: FxHashMap<GroupId, ServiceSet>,
    /// Those of them alerting strongly (at `error` or above).
    strong_of: FxHashMap<GroupId, ServiceSet>,
    /// Services alerting in any open group: most neighbours are not, and a
    /// bit test is cheaper than a hash probe.
    active: ServiceSet,
}

impl TopologyLinker {
    /// A linker over `topology` that links alerts at most `window` apart,
    /// and takes an alert as the likelier cause of a group only up to
    /// `cause_lag` after the group's first alert on the service it explains.
    pub fn new(
        topology: Arc<Topology>,
        window: std::time::Duration,
        cause_lag: std::time::Duration,
    ) -> Self {
        let nanos = crate::engine::nanos;
        let (window_nanos, cause_lag_nanos) = (nanos(window), nanos(cause_lag));
        let active = topology.empty_set();
        TopologyLinker {
            topology,
            window_nanos,
            cause_lag_nanos,
            index: KeyIndex::default(),
            services_of: FxHashMap::default(),
            strong_of: FxHashMap::default(),
            active,
        }
    }

    /// Whether `service` has no alerting dependency in `group` but itself:
    /// an alert below it would be a deeper cause of what the group shows.
    /// Weak alerts count here too: letting a strong alert explain a group
    /// past the warnings below it merged more background into incidents
    /// than it recovered causes (shop storms' mean F1 0.881 to 0.856).
    fn is_deepest_in(&self, service: ServiceId, group: GroupId) -> bool {
        self.services_of.get(&group).is_none_or(|alerting| {
            self.topology.dependencies_set(service).count_common(alerting) <= 1
        })
    }
}

impl TopologyLinker {
    /// Whether every service on the two-hop paths between `service` and
    /// `near` is silent (alerts in no open group). Paths are at most two
    /// hops (`max_hops` is at most 2), so the services between are the
    /// dependencies of the upper one that depend on the lower one.
    fn is_quiet_path(&self, service: ServiceId, near: &Neighbour) -> bool {
        let (upper, lower) = match near.relation {
            _ if near.hops < 2 => return false,
            Relation::Calls => (service, near.service),
            Relation::CalledBy => (near.service, service),
            Relation::Same => return false,
        };
        !self.topology.depends_on(upper).any(|between| {
            self.active.contains(between)
                && self.topology.depends_on(between).any(|below| below == lower)
        })
    }
}

impl Linker for TopologyLinker {
    fn propose(&self, alert: &AlertView<'_>, out: &mut Vec<Link>) {
        let ServiceRef::Known(service) = alert.service else {
            return;
        };
        for near in self.topology.neighbourhood(*service) {
            if !self.active.contains(near.service) {
                continue;
            }
            let quiet_path = self.is_quiet_path(*service, near);
            for entry in self.index.get(&near.service) {
                let group = entry.group;
                let gap = alert.at.unix_nanos().saturating_sub(entry.at.unix_nanos());
                if gap > self.window_nanos {
                    continue;
                }
                let explains = near.relation == Relation::CalledBy;
                if explains {
                    // A cause shows up with its symptoms, not long after
                    // they started, and below everything alerting so far.
                    let lag = alert.at.unix_nanos().saturating_sub(entry.first_at.unix_nanos());
                    if lag > self.cause_lag_nanos || !self.is_deepest_in(near.service, group) {
                        continue;
                    }
                }
                let via_strong =
                    self.strong_of.get(&group).is_some_and(|s| s.contains(near.service));
                out.push(Link {
                    group,
                    rank: u32::from(near.hops),
                    explains,
                    via_strong,
                    quiet_path,
                    reason: JoinReason::Topology {
                        via: entry.via,
                        via_service: near.service,
                        hops: near.hops,
                        gap_nanos: gap,
                    },
                });
            }
        }
    }

    fn joined(&mut self, group: GroupId, alert: &AlertView<'_>) {
        if let ServiceRef::Known(service) = alert.service {
            self.index.add(*service, group, alert);
            self.active.insert(*service);
            self.services_of
                .entry(group)
                .or_insert_with(|| self.topology.empty_set())
                .insert(*service);
            if alert.strong {
                self.strong_of
                    .entry(group)
                    .or_insert_with(|| self.topology.empty_set())
                    .insert(*service);
            }
        }
    }

    fn merged(&mut self, into: GroupId, from: GroupId) {
        self.index.merge(into, from);
        for sets in [&mut self.services_of, &mut self.strong_of] {
            if let Some(absorbed) = sets.remove(&from) {
                sets.entry(into).or_insert_with(|| self.topology.empty_set()).union_with(&absorbed);
            }
        }
    }

    fn closed(&mut self, group: GroupId) {
        for service in self.index.close(group) {
            self.active.remove(service);
        }
        self.services_of.remove(&group);
        self.strong_of.remove(&group);
    }
}

/// Places alerts whose service is not in the catalog with members, also
/// outside the catalog, that share their `fallback_group_by` label values.
#[derive(Default)]
pub struct LabelRuleLinker {
    index: KeyIndex<u64>,
}

impl Linker for LabelRuleLinker {
    fn propose(&self, alert: &AlertView<'_>, out: &mut Vec<Link>) {
        if matches!(alert.service, ServiceRef::Known(_)) {
            return;
        }
        for entry in self.index.get(&alert.fallback_key) {
            out.push(Link {
                group: entry.group,
                rank: LABEL_RULE_RANK,
                explains: false,
                via_strong: true,
                quiet_path: false,
                reason: JoinReason::LabelRule {
                    via: entry.via,
                    gap_nanos: alert.at.unix_nanos().saturating_sub(entry.at.unix_nanos()),
                },
            });
        }
    }

    fn joined(&mut self, group: GroupId, alert: &AlertView<'_>) {
        // Catalog alerts are placed by topology; the rule groups the rest
        // among themselves.
        if !matches!(alert.service, ServiceRef::Known(_)) {
            self.index.add(alert.fallback_key, group, alert);
        }
    }

    fn merged(&mut self, into: GroupId, from: GroupId) {
        self.index.merge(into, from);
    }

    fn closed(&mut self, group: GroupId) {
        self.index.close(group);
    }
}
