//! Grouping quality, measured: a predicted grouping of alerts scored
//! against ground truth, and the two baselines users compare us with.
//!
//! The universe is every alert in the truth. A true incident is a set of
//! alerts; noise alerts are singletons. A predicted incident is the final
//! membership of an incident (its last event); alerts in no incident are
//! singletons. From the contingency table of the two partitions come
//! pairwise precision, recall and F1 and the adjusted Rand index; then the
//! compression ratio (`1 - incidents / distinct alerts`), root-cause
//! accuracy (is the true root among the top 1 / top 3 candidates of the
//! predicted incident holding most of the true incident's alerts), and the
//! mean time from a true incident's first alert to the declaration of that
//! predicted incident.
//!
//! Baselines ([`baseline`]): Alertmanager's common default (`group_by:
//! [namespace]`, `group_wait` 30s) and fixed time windows. Everything here
//! is pure; reading files is the caller's job.

pub mod baseline;
mod score;

pub use score::{Scores, score};

use serde::{Deserialize, Serialize};
use triage_model::{Fingerprint, Timestamp};

/// Where one alert really belongs (the storm generator's truth rows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRow {
    /// The alert.
    pub fingerprint: Fingerprint,
    /// The true incident, `None` for noise.
    pub incident: Option<String>,
    /// The service the fault started in, when it has one.
    pub root_cause: Option<String>,
}

/// What a grouping says: incidents, each with its members and what the
/// grouping claims about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grouping {
    /// Predicted incidents.
    pub incidents: Vec<PredictedIncident>,
}

/// One predicted incident.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PredictedIncident {
    /// Member alerts.
    pub members: Vec<Fingerprint>,
    /// Root-cause candidates, best first.
    pub root_causes: Vec<String>,
    /// When it was declared (paged).
    pub declared_at: Option<Timestamp>,
}

/// One alert's first observation in the input, for baselines and for
/// first-alert times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertFact {
    /// The alert.
    pub fingerprint: Fingerprint,
    /// Start of its first occurrence.
    pub starts_at: Timestamp,
    /// When it resolved, if it did.
    pub ends_at: Option<Timestamp>,
    /// Its `namespace` label.
    pub namespace: Option<String>,
    /// Its service label.
    pub service: Option<String>,
}
