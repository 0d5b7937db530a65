//! The wall-clock side of a live correlator: when nothing arrives, its
//! event-time clock moves on by the wall time elapsed since its head last
//! moved, so incidents are declared and resolved without waiting for the
//! next alert.
//!
//! Counting from the head rather than reading the wall clock as event time
//! keeps a sender's clock skew out of it: an alert stamped two minutes
//! ahead of this machine does not make every timer fire two minutes early.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use triage_model::Timestamp;

/// When the head last moved because of an alert, and how long the
/// correlator has been quiet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdleClock {
    /// Wall instant and the head it saw; idle moves count from here.
    anchor: Option<(Instant, Timestamp)>,
    /// The last alert or clock move.
    last_activity: Instant,
}

impl IdleClock {
    /// A clock for a correlator whose head is `head` at `now` (a restored
    /// one counts from here, or it would wait for an alert to resolve
    /// anything).
    pub(crate) fn new(head: Option<Timestamp>, now: Instant) -> Self {
        IdleClock { anchor: head.map(|h| (now, h)), last_activity: now }
    }

    /// Input arrived; `head` is the correlator's head after it.
    pub(crate) fn observed(&mut self, head: Option<Timestamp>, now: Instant) {
        self.last_activity = now;
        if let Some(head) = head
            && self.anchor.is_none_or(|(_, anchored)| head > anchored)
        {
            self.anchor = Some((now, head));
        }
    }

    /// Where the clock should move to now, if the correlator has been
    /// quiet for `idle_after` and the wall time elapsed takes it past
    /// `head`.
    pub(crate) fn due(
        &self,
        head: Option<Timestamp>,
        now: Instant,
        idle_after: Duration,
    ) -> Option<Timestamp> {
        if idle_after.is_zero() || now.duration_since(self.last_activity) < idle_after {
            return None;
        }
        let (anchored_at, anchor) = self.anchor?;
        let elapsed = now.duration_since(anchored_at);
        let time = anchor.plus(Duration::from_millis(elapsed.as_millis() as u64));
        if head.is_some_and(|head| time <= head) { None } else { Some(time) }
    }

    /// The clock was moved at `now`; the next move waits `idle_after`.
    pub(crate) fn moved(&mut self, now: Instant) {
        self.last_activity = now;
    }
}

/// This machine's wall clock as an alert timestamp: the receive time that
/// alerts without `startsAt` take, as Alertmanager gives them.
pub(crate) fn wall_now() -> Timestamp {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_unix_nanos(i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_after_the_quiet_period_and_by_the_wall_time_since_the_head() {
        let start = Instant::now();
        let head = Timestamp::from_unix_secs(1_000);
        let mut clock = IdleClock::new(None, start);
        assert_eq!(clock.due(Some(head), start + Duration::from_secs(5), Duration::ZERO), None);
        clock.observed(Some(head), start);
        let quiet = Duration::from_secs(1);
        assert_eq!(clock.due(Some(head), start + Duration::from_millis(500), quiet), None);
        let later = start + Duration::from_secs(3);
        assert_eq!(clock.due(Some(head), later, quiet), Some(Timestamp::from_unix_secs(1_003)));
        clock.moved(later);
        assert_eq!(clock.due(Some(head), later + Duration::from_millis(10), quiet), None);
        // A head that did not move forward keeps the old anchor.
        clock.observed(Some(Timestamp::from_unix_secs(999)), later);
        let much_later = later + Duration::from_secs(2);
        let moved = clock.due(Some(Timestamp::from_unix_secs(1_003)), much_later, quiet);
        assert_eq!(moved, Some(Timestamp::from_unix_secs(1_005)));
    }
}
