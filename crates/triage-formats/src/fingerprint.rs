//! The label-set fingerprint exactly as Prometheus computes it
//! (`model.LabelSet.Fingerprint`): FNV-1a 64 over the label names and
//! values in name order, each followed by the separator byte `0xff`.

use triage_model::hash::Fnv1a64;
use triage_model::{Fingerprint, Labels};

const SEPARATOR: u8 = 0xff;

/// The fingerprint Prometheus and Alertmanager give this label set.
pub fn fingerprint_of(labels: &Labels<'_>) -> Fingerprint {
    let mut hash = Fnv1a64::default();
    for (name, value) in labels.iter() {
        hash.write(name.as_bytes()).write(&[SEPARATOR]);
        hash.write(value.as_bytes()).write(&[SEPARATOR]);
    }
    Fingerprint(hash.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&'static str, &'static str)]) -> Labels<'static> {
        Labels::from_pairs(pairs.iter().map(|&(n, v)| (n.into(), v.into())).collect())
    }

    #[test]
    fn matches_the_values_in_alertmanagers_own_tests() {
        let cases = [
            (&[("job", "foo"), ("severity", "warning")][..], "9266ef3da838ad95"),
            (&[("severity", "critical"), ("job", "foo")][..], "3b15fd163d36582e"),
            (&[("alertname", "alert1"), ("severity", "critical")][..], "0223b772b51c29e1"),
        ];
        for (pairs, want) in cases {
            assert_eq!(fingerprint_of(&labels(pairs)).to_string(), want, "{pairs:?}");
        }
    }

    #[test]
    fn the_empty_label_set_hashes_to_the_fnv_offset() {
        assert_eq!(fingerprint_of(&labels(&[])).0, Fnv1a64::default().finish());
    }
}
