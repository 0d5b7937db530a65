//! The groupings users have today, run on the same alerts.
//!
//! - [`alertmanager`]: Alertmanager with `group_by: [namespace]`: one
//!   aggregation group per namespace while any of its alerts fires; a group
//!   that empties and sees a new alert starts over as a new notification
//!   group. The first notification goes out `group_wait` after the group's
//!   first alert (`group_interval` only paces later notifications, so it
//!   does not change membership). Its "root cause" is the service of the
//!   group's first alerts, in order.
//! - [`time_windows`]: every alert starting in the same fixed window is one
//!   incident, whatever its labels.

use std::time::Duration;

use rustc_hash::FxHashMap;
use triage_model::Timestamp;

use crate::{AlertFact, Grouping, PredictedIncident};

/// Alertmanager's aggregation by `namespace`.
pub fn alertmanager(facts: &[AlertFact], group_wait: Duration) -> Grouping {
    let mut order: Vec<&AlertFact> = facts.iter().collect();
    order.sort_by_key(|f| (f.starts_at, f.fingerprint));
    // Per namespace: the open incident index and when its last alert ends.
    let mut open: FxHashMap<Option<&str>, (usize, Timestamp)> = FxHashMap::default();
    let mut incidents: Vec<PredictedIncident> = Vec::new();
    for fact in order {
        let key = fact.namespace.as_deref();
        let ends = fact.ends_at.unwrap_or(Timestamp::MAX);
        let index = match open.get(&key) {
            Some(&(index, until)) if fact.starts_at <= until => index,
            _ => {
                incidents.push(PredictedIncident {
                    declared_at: Some(fact.starts_at.plus(group_wait)),
                    ..PredictedIncident::default()
                });
                incidents.len() - 1
            }
        };
        let until =
            open.get(&key).filter(|(i, _)| *i == index).map_or(ends, |(_, u)| (*u).max(ends));
        open.insert(key, (index, until));
        add_member(&mut incidents[index], fact);
    }
    Grouping { incidents }
}

/// Fixed windows of `window`, aligned to the epoch.
pub fn time_windows(facts: &[AlertFact], window: Duration) -> Grouping {
    let width = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX).max(1);
    let mut order: Vec<&AlertFact> = facts.iter().collect();
    order.sort_by_key(|f| (f.starts_at, f.fingerprint));
    let mut by_window: FxHashMap<i64, usize> = FxHashMap::default();
    let mut incidents: Vec<PredictedIncident> = Vec::new();
    for fact in order {
        let slot = fact.starts_at.unix_nanos().div_euclid(width);
        let index = *by_window.entry(slot).or_insert_with(|| {
            incidents.push(PredictedIncident {
                declared_at: Some(fact.starts_at),
                ..PredictedIncident::default()
            });
            incidents.len() - 1
        });
        add_member(&mut incidents[index], fact);
    }
    Grouping { incidents }
}

fn add_member(incident: &mut PredictedIncident, fact: &AlertFact) {
    incident.members.push(fact.fingerprint);
    if let Some(service) = &fact.service
        && !incident.root_causes.contains(service)
    {
        incident.root_causes.push(service.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triage_model::Fingerprint;

    fn fact(fp: u64, start: i64, end: Option<i64>, namespace: &str) -> AlertFact {
        AlertFact {
            fingerprint: Fingerprint(fp),
            starts_at: Timestamp::from_unix_secs(start),
            ends_at: end.map(Timestamp::from_unix_secs),
            namespace: Some(namespace.to_owned()),
            service: Some(format!("svc-{fp}")),
        }
    }

    #[test]
    fn alertmanager_groups_a_namespace_while_it_fires_and_starts_over_after() {
        let facts = [
            fact(1, 0, Some(100), "shop"),
            fact(2, 50, Some(300), "shop"),
            fact(3, 60, None, "infra"),
            fact(4, 400, None, "shop"),
        ];
        let g = alertmanager(&facts, Duration::from_secs(30));
        let members: Vec<Vec<u64>> =
            g.incidents.iter().map(|i| i.members.iter().map(|f| f.0).collect()).collect();
        assert_eq!(members, [vec![1, 2], vec![3], vec![4]]);
        assert_eq!(g.incidents[0].declared_at, Some(Timestamp::from_unix_secs(30)));
        assert_eq!(g.incidents[0].root_causes, ["svc-1", "svc-2"]);
    }

    #[test]
    fn time_windows_ignore_labels() {
        let facts = [fact(1, 0, None, "a"), fact(2, 299, None, "b"), fact(3, 300, None, "a")];
        let g = time_windows(&facts, Duration::from_secs(300));
        assert_eq!(g.incidents.len(), 2);
        assert_eq!(g.incidents[0].members.len(), 2);
    }
}
