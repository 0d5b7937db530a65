//! Determinism of the whole engine over generated storms: clock calls,
//! arrival order within the allowed lateness, and restarts from a
//! snapshot leave the output byte for byte unchanged.

use std::time::Duration;

use proptest::prelude::*;
use triage_sim::StormSpec;
use triage_suite::{Hook, line_time, reference_config, replay_lines, storm};

/// One alert per line, in event-time order, no re-notifications: the
/// stream whose reorderings the test generates.
fn ordered_spec(seed: u64) -> StormSpec {
    StormSpec {
        seed,
        duration: Duration::from_secs(3600),
        faults: 3,
        noise_per_hour: 20,
        renotify_every: Duration::ZERO,
        max_delay: Duration::from_secs(1),
        api_v2_share: 0.0,
        ..StormSpec::default()
    }
}

fn config() -> triage_config::Config {
    reference_config()
}

#[test]
fn the_same_storm_gives_the_same_bytes_twice() {
    let config = config();
    let lines = storm(&config, &StormSpec::default());
    let first = replay_lines(&config, &lines, &[]);
    assert!(first.len() > 5, "the storm declares incidents: {}", first.len());
    assert_eq!(first, replay_lines(&config, &lines, &[]));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn heartbeats_at_or_behind_the_head_change_nothing(
        seed in 1u64..1000,
        beats in proptest::collection::vec((0usize..400, 0u64..120), 1..12),
    ) {
        let config = config();
        let lines = storm(&config, &StormSpec { seed, ..ordered_spec(seed) });
        let hooks: Vec<Hook> = beats.iter().map(|&(at, back)| Hook::Heartbeat(at, back)).collect();
        prop_assert_eq!(replay_lines(&config, &lines, &hooks), replay_lines(&config, &lines, &[]));
    }

    #[test]
    fn arrival_order_within_the_allowed_lateness_does_not_change_the_output(
        seed in 1u64..1000,
        shuffle_seed in any::<u64>(),
    ) {
        let config = config();
        let lines = storm(&config, &ordered_spec(seed));
        let lateness = config.settings.grouping.allowed_lateness.as_nanos() as i64;
        // Each record arrives at its event time plus a delay below the
        // lateness (minus the generator's own jitter of up to 1s).
        let mut rng = triage_sim::SplitMix64::new(shuffle_seed);
        let mut arrivals: Vec<(i64, usize, &String)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let delay = rng.below((lateness - 1_000_000_000) as u64) as i64;
                (line_time(l).unix_nanos() + delay, i, l)
            })
            .collect();
        arrivals.sort();
        let shuffled: Vec<String> = arrivals.into_iter().map(|(_, _, l)| l.clone()).collect();
        prop_assert_ne!(&shuffled, &lines);
        prop_assert_eq!(replay_lines(&config, &shuffled, &[]), replay_lines(&config, &lines, &[]));
    }

    #[test]
    fn restarting_from_a_snapshot_anywhere_continues_byte_for_byte(
        seed in 1u64..1000,
        cuts in proptest::collection::vec(0usize..450, 1..4),
    ) {
        let config = config();
        let lines = storm(&config, &StormSpec { seed, ..StormSpec::default() });
        let hooks: Vec<Hook> = cuts.iter().map(|&at| Hook::Restart(at)).collect();
        prop_assert_eq!(replay_lines(&config, &lines, &hooks), replay_lines(&config, &lines, &[]));
    }
}
