//! Synthetic catalogs of any size, shaped like real platforms: a few
//! user-facing edge services over layers of APIs, backends and data stores.

use triage_topology::ServiceSpec;

use crate::rng::SplitMix64;

/// A layered catalog of `n` services: 5% edge (tier 1, user-facing), 25%
/// APIs (tier 1-2), 40% backends (tier 2-3), 30% data stores (tier 1-3).
/// Each service depends on one to four services of the layers below.
pub fn layered_topology(n: usize, seed: u64) -> Vec<ServiceSpec> {
    let mut rng = SplitMix64::new(seed);
    let shares = [0.05, 0.25, 0.40, 0.30];
    let names = ["edge", "api", "svc", "db"];
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); 4];
    let mut specs = Vec::with_capacity(n);
    let mut start = 0;
    for (layer, share) in shares.iter().enumerate() {
        let count = if layer == 3 { n - start } else { ((n as f64) * share).ceil() as usize };
        let count = count.min(n - start);
        for i in 0..count {
            layers[layer].push(specs.len());
            let tier = match layer {
                0 => 1,
                1 => 1 + rng.below(2) as u8,
                2 => 2 + rng.below(2) as u8,
                _ => 1 + rng.below(3) as u8,
            };
            specs.push(ServiceSpec {
                name: format!("{}-{i:04}", names[layer]),
                tier,
                user_facing: layer == 0,
                owner: Some(format!("team-{:02}", rng.below(40))),
                runbook: (rng.chance(0.5))
                    .then(|| format!("https://runbooks.example/{}-{i:04}", names[layer])),
                ..ServiceSpec::default()
            });
        }
        start += count;
    }
    for layer in 0..3 {
        let below: Vec<usize> = layers[layer + 1..].iter().flatten().copied().collect();
        for &index in &layers[layer] {
            let fan_out = rng.between(1, 4);
            let mut deps: Vec<String> = Vec::new();
            for _ in 0..fan_out {
                // Favour the next layer down, as real call graphs do.
                let pool = if rng.chance(0.7) && !layers[layer + 1].is_empty() {
                    &layers[layer + 1]
                } else {
                    &below
                };
                let dep = specs[*rng.pick(pool)].name.clone();
                if !deps.contains(&dep) {
                    deps.push(dep);
                }
            }
            specs[index].depends_on = deps;
        }
    }
    specs
}

/// A deep call chain: `n` services in a line, each calling the next, with
/// a side dependency one service in five, as in layered request paths
/// (edge -> gateway -> ... -> storage). Tiers rise along the chain; the
/// head is user-facing.
pub fn deep_chain(n: usize, seed: u64) -> Vec<ServiceSpec> {
    let mut rng = SplitMix64::new(seed);
    let mut specs: Vec<ServiceSpec> = (0..n)
        .map(|i| ServiceSpec {
            name: format!("hop-{i:03}"),
            tier: if i < n / 3 {
                1
            } else if i < 2 * n / 3 {
                2
            } else {
                3
            },
            user_facing: i == 0,
            owner: Some(format!("team-{:02}", i / 5)),
            ..ServiceSpec::default()
        })
        .collect();
    for (i, spec) in specs.iter_mut().enumerate().take(n.saturating_sub(1)) {
        spec.depends_on.push(format!("hop-{:03}", i + 1));
        if rng.chance(0.2) && i + 3 < n {
            let side = rng.between(i as u64 + 2, (n - 1) as u64);
            spec.depends_on.push(format!("hop-{side:03}"));
        }
    }
    specs
}

/// A wide fan-out platform: `n` services each calling two or three of a
/// handful of shared core services (identity, database, queue, cache,
/// config), and a few user-facing edges calling the services.
pub fn wide_fanout(n: usize, seed: u64) -> Vec<ServiceSpec> {
    let mut rng = SplitMix64::new(seed);
    let core = ["identity", "database", "queue", "cache", "config"];
    let mut specs: Vec<ServiceSpec> = core
        .iter()
        .map(|name| ServiceSpec {
            name: (*name).to_owned(),
            tier: 1,
            owner: Some("team-core".to_owned()),
            ..ServiceSpec::default()
        })
        .collect();
    let edges = (n / 20).max(1);
    let services = n.saturating_sub(core.len() + edges);
    for i in 0..services {
        let mut deps: Vec<String> = Vec::new();
        for _ in 0..rng.between(2, 3) {
            let dep = (*rng.pick(&core)).to_owned();
            if !deps.contains(&dep) {
                deps.push(dep);
            }
        }
        specs.push(ServiceSpec {
            name: format!("svc-{i:03}"),
            depends_on: deps,
            tier: 2 + rng.below(2) as u8,
            owner: Some(format!("team-{:02}", i % 30)),
            ..ServiceSpec::default()
        });
    }
    for e in 0..edges {
        let deps = (0..rng.between(3, 8))
            .map(|_| format!("svc-{:03}", rng.below(services.max(1) as u64)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        specs.push(ServiceSpec {
            name: format!("edge-{e:02}"),
            depends_on: if services == 0 { Vec::new() } else { deps },
            tier: 1,
            user_facing: true,
            owner: Some("team-edge".to_owned()),
            ..ServiceSpec::default()
        });
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layered_catalogs_build_into_acyclic_graphs_of_the_asked_size() {
        let specs = layered_topology(2000, 7);
        assert_eq!(specs.len(), 2000);
        let topology = triage_topology::Topology::build(&specs, 2);
        let topology = topology.ok();
        assert_eq!(topology.as_ref().map(|t| t.cycles().len()), Some(0));
        assert_eq!(layered_topology(2000, 7), specs, "same seed, same catalog");
    }

    #[test]
    fn chains_and_fan_outs_build_into_catalogs_of_the_asked_size() {
        for specs in [deep_chain(60, 1), wide_fanout(300, 1)] {
            let n = specs.len();
            let topology = triage_topology::Topology::build(&specs, 2).ok();
            assert_eq!(topology.map(|t| t.len()), Some(n));
        }
        assert_eq!(deep_chain(60, 1).len(), 60);
        assert_eq!(wide_fanout(300, 1).len(), 300);
    }
}
