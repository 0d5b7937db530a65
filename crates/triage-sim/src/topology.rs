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
}
