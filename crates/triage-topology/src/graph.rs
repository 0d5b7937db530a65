//! The built graph: name lookup, hop neighbourhoods precomputed at build
//! time, and the walks the scorer and the explainer need.

use std::collections::VecDeque;
use std::sync::Arc;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use rustc_hash::FxHashMap;

use crate::spec::{ServiceSpec, TopologyError};

/// Index of a service in its topology. Only meaningful with the topology
/// that issued it; state that outlives a reload stores names instead.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ServiceId(pub u32);

impl ServiceId {
    fn node(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }

    /// Position in the catalog.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How a neighbour relates to the service whose neighbourhood it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Relation {
    /// The service itself.
    Same,
    /// The service depends on the neighbour (the neighbour is below it):
    /// an alert on the service may be a symptom of the neighbour's fault.
    Calls,
    /// The neighbour depends on the service (the neighbour is above it):
    /// a fault of the service may cause the neighbour's symptoms.
    CalledBy,
}

/// A service within `max_hops` of another, in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbour {
    /// The neighbouring service.
    pub service: ServiceId,
    /// Which way the dependency path goes.
    pub relation: Relation,
    /// Dependency hops on the shortest path that way.
    pub hops: u8,
}

/// What a service is, as the scorer reads it.
#[derive(Clone, Debug)]
pub struct Service {
    /// Catalog name.
    pub name: Arc<str>,
    /// Criticality tier, 1 is most critical.
    pub tier: u8,
    /// Whether users reach it directly.
    pub user_facing: bool,
    /// Owning team.
    pub owner: Option<Arc<str>>,
    /// Runbook address.
    pub runbook: Option<Arc<str>>,
}

/// Counts for `check-config` and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopologyStats {
    /// Services in the catalog.
    pub services: usize,
    /// Dependency edges.
    pub edges: usize,
    /// Strongly connected components with more than one service.
    pub cycles: usize,
    /// Largest hop neighbourhood (bounds the per-alert linking cost).
    pub largest_neighbourhood: usize,
}

/// Catalogs up to this size get their transitive closures precomputed as
/// bitsets (2 x n^2 bits: 16 MiB at the limit), which makes scoring a
/// matter of word operations; larger catalogs are walked on demand.
pub const CLOSURE_LIMIT: usize = 8192;

/// A set of services as a bitset over service ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSet {
    words: Box<[u64]>,
}

impl ServiceSet {
    /// An empty set able to hold `n` services.
    pub fn with_capacity(n: usize) -> Self {
        ServiceSet { words: vec![0; n.div_ceil(64)].into_boxed_slice() }
    }

    /// Adds a service.
    pub fn insert(&mut self, id: ServiceId) {
        self.words[id.index() / 64] |= 1 << (id.index() % 64);
    }

    /// Removes a service.
    pub fn remove(&mut self, id: ServiceId) {
        self.words[id.index() / 64] &= !(1 << (id.index() % 64));
    }

    /// Whether a service is in the set.
    pub fn contains(&self, id: ServiceId) -> bool {
        self.words[id.index() / 64] & (1 << (id.index() % 64)) != 0
    }

    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &ServiceSet) {
        for (a, b) in self.words.iter_mut().zip(other.words.iter()) {
            *a |= b;
        }
    }

    /// Size of the intersection with `other`.
    pub fn count_common(&self, other: &ServiceSet) -> usize {
        self.words.iter().zip(other.words.iter()).map(|(a, b)| (a & b).count_ones() as usize).sum()
    }

    /// Members in id order.
    pub fn iter(&self) -> impl Iterator<Item = ServiceId> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                Some(ServiceId(w as u32 * 64 + bit))
            })
        })
    }
}

/// Transitive closures: for each service, what it reaches downstream
/// (dependencies) and upstream (dependents), itself included.
#[derive(Debug)]
struct Closures {
    down: Vec<ServiceSet>,
    up: Vec<ServiceSet>,
}

/// The service dependency graph. Immutable once built.
#[derive(Debug)]
pub struct Topology {
    graph: DiGraph<(), ()>,
    services: Vec<Service>,
    by_name: FxHashMap<Box<str>, ServiceId>,
    neighbourhoods: Vec<Box<[Neighbour]>>,
    max_hops: u8,
    cycles: Vec<Vec<ServiceId>>,
    closures: Option<Closures>,
    /// Position of each service in name order, to sort ids by name without
    /// comparing strings.
    name_rank: Vec<u32>,
}

impl Topology {
    /// Builds the graph, reporting every defect of the catalog at once.
    /// Cycles are allowed (real systems have them) and listed by
    /// [`Topology::cycles`].
    pub fn build(specs: &[ServiceSpec], max_hops: u8) -> Result<Topology, Vec<TopologyError>> {
        let mut errors = Vec::new();
        let mut by_name: FxHashMap<Box<str>, ServiceId> = FxHashMap::default();
        let mut graph = DiGraph::with_capacity(specs.len(), specs.len() * 2);
        for (index, spec) in specs.iter().enumerate() {
            graph.add_node(());
            if spec.name.is_empty() {
                errors.push(TopologyError::EmptyName { index });
            }
            let id = ServiceId(u32::try_from(index).unwrap_or(u32::MAX));
            for name in std::iter::once(&spec.name).chain(&spec.aliases) {
                if let Some(first) = by_name.get(name.as_str()) {
                    errors.push(TopologyError::DuplicateName {
                        index,
                        name: name.clone(),
                        first: first.index(),
                    });
                } else {
                    by_name.insert(name.as_str().into(), id);
                }
            }
        }
        for (index, spec) in specs.iter().enumerate() {
            for (position, dependency) in spec.depends_on.iter().enumerate() {
                match by_name.get(dependency.as_str()) {
                    Some(&to) if to.index() == index => {
                        errors.push(TopologyError::SelfDependency {
                            index,
                            service: spec.name.clone(),
                        });
                    }
                    Some(&to) => {
                        let from = NodeIndex::new(index);
                        if graph.find_edge(from, to.node()).is_none() {
                            graph.add_edge(from, to.node(), ());
                        }
                    }
                    None => errors.push(TopologyError::UnknownDependency {
                        index,
                        service: spec.name.clone(),
                        position,
                        dependency: dependency.clone(),
                    }),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let services = specs.iter().map(service_of).collect();
        let mut topology = Topology {
            graph,
            services,
            by_name,
            neighbourhoods: Vec::new(),
            max_hops,
            cycles: Vec::new(),
            closures: None,
            name_rank: Vec::new(),
        };
        let mut by_name_order: Vec<usize> = (0..specs.len()).collect();
        by_name_order.sort_by(|&a, &b| specs[a].name.cmp(&specs[b].name));
        topology.name_rank = vec![0; specs.len()];
        for (rank, index) in by_name_order.into_iter().enumerate() {
            topology.name_rank[index] = rank as u32;
        }
        topology.neighbourhoods =
            (0..specs.len()).map(|i| topology.compute_neighbourhood(ServiceId(i as u32))).collect();
        topology.cycles = find_cycles(&topology.graph);
        if specs.len() <= CLOSURE_LIMIT {
            topology.closures = Some(topology.compute_closures());
        }
        Ok(topology)
    }

    fn compute_closures(&self) -> Closures {
        let closure = |direction: Direction| -> Vec<ServiceSet> {
            self.ids()
                .map(|id| {
                    let mut set = ServiceSet::with_capacity(self.len());
                    self.walk(&[id], direction, |reached| set.insert(reached));
                    set
                })
                .collect()
        };
        Closures { down: closure(Direction::Outgoing), up: closure(Direction::Incoming) }
    }

    /// An empty set sized for this catalog.
    pub fn empty_set(&self) -> ServiceSet {
        ServiceSet::with_capacity(self.len())
    }

    /// Every service that transitively depends on `id`, itself included.
    pub fn dependents_set(&self, id: ServiceId) -> std::borrow::Cow<'_, ServiceSet> {
        match &self.closures {
            Some(c) => std::borrow::Cow::Borrowed(&c.up[id.index()]),
            None => std::borrow::Cow::Owned(self.set_of(&self.transitive_dependents(&[id]))),
        }
    }

    /// Every service `id` transitively depends on, itself included.
    pub fn dependencies_set(&self, id: ServiceId) -> std::borrow::Cow<'_, ServiceSet> {
        match &self.closures {
            Some(c) => std::borrow::Cow::Borrowed(&c.down[id.index()]),
            None => std::borrow::Cow::Owned(self.set_of(&self.transitive_dependencies(&[id]))),
        }
    }

    fn set_of(&self, ids: &[ServiceId]) -> ServiceSet {
        let mut set = self.empty_set();
        for &id in ids {
            set.insert(id);
        }
        set
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The service a name or alias means.
    pub fn lookup(&self, name: &str) -> Option<ServiceId> {
        self.by_name.get(name).copied()
    }

    /// The service behind an id.
    pub fn service(&self, id: ServiceId) -> &Service {
        &self.services[id.index()]
    }

    /// Sorts ids by service name.
    pub fn sort_by_name(&self, ids: &mut [ServiceId]) {
        ids.sort_unstable_by_key(|id| self.name_rank[id.index()]);
    }

    /// The catalog name behind an id.
    pub fn name(&self, id: ServiceId) -> &str {
        &self.services[id.index()].name
    }

    /// All service ids in catalog order.
    pub fn ids(&self) -> impl Iterator<Item = ServiceId> + '_ {
        (0..self.services.len()).map(|i| ServiceId(i as u32))
    }

    /// The hop bound the neighbourhoods were computed with.
    pub fn max_hops(&self) -> u8 {
        self.max_hops
    }

    /// Services reachable from `id` along dependency edges in one direction
    /// (what it calls, or what calls it) within `max_hops`, with the
    /// direction and hop count, sorted by id. Includes `id` itself at 0
    /// hops; a service in a cycle with `id` appears once per direction.
    pub fn neighbourhood(&self, id: ServiceId) -> &[Neighbour] {
        &self.neighbourhoods[id.index()]
    }

    /// What `id` calls directly.
    pub fn depends_on(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.graph
            .neighbors_directed(id.node(), Direction::Outgoing)
            .map(|n| ServiceId(n.index() as u32))
    }

    /// What calls `id` directly.
    pub fn dependents(&self, id: ServiceId) -> impl Iterator<Item = ServiceId> + '_ {
        self.graph
            .neighbors_directed(id.node(), Direction::Incoming)
            .map(|n| ServiceId(n.index() as u32))
    }

    /// Every service that transitively depends on one of `roots`, roots
    /// included, sorted by id.
    pub fn transitive_dependents(&self, roots: &[ServiceId]) -> Vec<ServiceId> {
        self.reach(roots, Direction::Incoming)
    }

    /// Every service one of `roots` transitively depends on, roots included,
    /// sorted by id.
    pub fn transitive_dependencies(&self, roots: &[ServiceId]) -> Vec<ServiceId> {
        self.reach(roots, Direction::Outgoing)
    }

    fn reach(&self, roots: &[ServiceId], direction: Direction) -> Vec<ServiceId> {
        let mut out = Vec::new();
        self.walk(roots, direction, |id| out.push(id));
        out.sort_unstable();
        out
    }

    /// Breadth-first walk from `roots`, calling `visit` once per service
    /// reached (roots included).
    fn walk(&self, roots: &[ServiceId], direction: Direction, mut visit: impl FnMut(ServiceId)) {
        let mut seen = vec![false; self.services.len()];
        let mut queue: VecDeque<NodeIndex> = VecDeque::new();
        for root in roots {
            if !std::mem::replace(&mut seen[root.index()], true) {
                queue.push_back(root.node());
            }
        }
        while let Some(node) = queue.pop_front() {
            visit(ServiceId(node.index() as u32));
            for next in self.graph.neighbors_directed(node, direction) {
                if !std::mem::replace(&mut seen[next.index()], true) {
                    queue.push_back(next);
                }
            }
        }
    }

    /// A shortest path from `from` to `to` along dependency edges in one
    /// direction, at most `max_hops` long, endpoints included. Used to
    /// explain why two alerts were linked.
    pub fn path(&self, from: ServiceId, to: ServiceId) -> Option<Vec<ServiceId>> {
        if from == to {
            return Some(vec![from]);
        }
        [Direction::Outgoing, Direction::Incoming]
            .into_iter()
            .filter_map(|d| self.directed_path(from, to, d))
            .min_by_key(Vec::len)
    }

    fn directed_path(
        &self,
        from: ServiceId,
        to: ServiceId,
        direction: Direction,
    ) -> Option<Vec<ServiceId>> {
        let mut parent: FxHashMap<NodeIndex, NodeIndex> = FxHashMap::default();
        let mut frontier = vec![from.node()];
        for _ in 0..self.max_hops {
            let mut next_frontier = Vec::new();
            for &node in &frontier {
                for next in self.graph.neighbors_directed(node, direction) {
                    if next == from.node() || parent.contains_key(&next) {
                        continue;
                    }
                    parent.insert(next, node);
                    if next == to.node() {
                        let mut path = vec![to];
                        let mut at = next;
                        while let Some(&p) = parent.get(&at) {
                            path.push(ServiceId(p.index() as u32));
                            at = p;
                        }
                        path.reverse();
                        return Some(path);
                    }
                    next_frontier.push(next);
                }
            }
            frontier = next_frontier;
        }
        None
    }

    /// Dependency cycles (strongly connected components of two or more
    /// services), each sorted by id.
    pub fn cycles(&self) -> &[Vec<ServiceId>] {
        &self.cycles
    }

    /// Size figures.
    pub fn stats(&self) -> TopologyStats {
        TopologyStats {
            services: self.services.len(),
            edges: self.graph.edge_count(),
            cycles: self.cycles.len(),
            largest_neighbourhood: self.neighbourhoods.iter().map(|n| n.len()).max().unwrap_or(0),
        }
    }

    fn compute_neighbourhood(&self, id: ServiceId) -> Box<[Neighbour]> {
        let mut list = vec![Neighbour { service: id, relation: Relation::Same, hops: 0 }];
        for (direction, relation) in
            [(Direction::Outgoing, Relation::Calls), (Direction::Incoming, Relation::CalledBy)]
        {
            let mut frontier = vec![id.node()];
            let mut seen: FxHashMap<NodeIndex, ()> = FxHashMap::default();
            seen.insert(id.node(), ());
            for hops in 1..=self.max_hops {
                let mut next_frontier = Vec::new();
                for &node in &frontier {
                    for next in self.graph.neighbors_directed(node, direction) {
                        if seen.insert(next, ()).is_none() {
                            let service = ServiceId(next.index() as u32);
                            list.push(Neighbour { service, relation, hops });
                            next_frontier.push(next);
                        }
                    }
                }
                frontier = next_frontier;
            }
        }
        list.sort_unstable();
        list.into_boxed_slice()
    }
}

fn service_of(spec: &ServiceSpec) -> Service {
    Service {
        name: spec.name.as_str().into(),
        tier: spec.tier,
        user_facing: spec.user_facing,
        owner: spec.owner.as_deref().map(Into::into),
        runbook: spec.runbook.as_deref().map(Into::into),
    }
}

fn find_cycles(graph: &DiGraph<(), ()>) -> Vec<Vec<ServiceId>> {
    let mut cycles: Vec<Vec<ServiceId>> = petgraph::algo::tarjan_scc(graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| {
            let mut ids: Vec<ServiceId> =
                component.into_iter().map(|n| ServiceId(n.index() as u32)).collect();
            ids.sort_unstable();
            ids
        })
        .collect();
    cycles.sort();
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, deps: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            depends_on: deps.iter().map(|d| (*d).into()).collect(),
            tier: 2,
            ..ServiceSpec::default()
        }
    }

    fn shop() -> Topology {
        let specs = [
            spec("web", &["checkout", "search"]),
            spec("checkout", &["payment", "cart"]),
            spec("payment", &["payments-db"]),
            spec("cart", &["redis"]),
            spec("search", &["redis"]),
            spec("payments-db", &[]),
            spec("redis", &[]),
        ];
        match Topology::build(&specs, 2) {
            Ok(t) => t,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn names(t: &Topology, ids: &[ServiceId]) -> Vec<String> {
        ids.iter().map(|&i| t.name(i).to_owned()).collect()
    }

    fn id(t: &Topology, name: &str) -> ServiceId {
        t.lookup(name).unwrap_or(ServiceId(u32::MAX))
    }

    #[test]
    fn neighbourhoods_follow_edges_in_one_direction_only() {
        let t = shop();
        let around: Vec<(String, u8)> = t
            .neighbourhood(id(&t, "cart"))
            .iter()
            .map(|n| (t.name(n.service).to_owned(), n.hops))
            .collect();
        // cart reaches redis (1 hop down) and checkout, web (up); search
        // shares redis with cart but is not related through it.
        assert_eq!(
            around,
            [("web".into(), 2), ("checkout".into(), 1), ("cart".into(), 0), ("redis".into(), 1)]
        );
    }

    #[test]
    fn transitive_dependents_give_the_blast_radius_of_a_fault() {
        let t = shop();
        let hit = t.transitive_dependents(&[id(&t, "payments-db")]);
        assert_eq!(names(&t, &hit), ["web", "checkout", "payment", "payments-db"]);
        let deps = t.transitive_dependencies(&[id(&t, "checkout")]);
        assert_eq!(names(&t, &deps), ["checkout", "payment", "cart", "payments-db", "redis"]);
    }

    #[test]
    fn paths_explain_links_in_either_direction() {
        let t = shop();
        let down = t.path(id(&t, "checkout"), id(&t, "payments-db")).unwrap_or_default();
        assert_eq!(names(&t, &down), ["checkout", "payment", "payments-db"]);
        let up = t.path(id(&t, "redis"), id(&t, "cart")).unwrap_or_default();
        assert_eq!(names(&t, &up), ["redis", "cart"]);
        assert_eq!(t.path(id(&t, "cart"), id(&t, "search")), None);
    }

    #[test]
    fn every_catalog_defect_is_reported_at_once() {
        let specs = [spec("a", &["b", "ghost"]), spec("b", &["b"]), spec("a", &[]), spec("", &[])];
        let errors = Topology::build(&specs, 2).err().unwrap_or_default();
        let paths: Vec<String> = errors.iter().map(|e| format!("{}: {e}", e.path())).collect();
        assert_eq!(
            paths,
            [
                "services[2]: name \"a\" is already used by services[0]",
                "services[3].name: service name is empty",
                "services[0].depends_on[1]: \"a\" depends on \"ghost\", which is not in the \
                 catalog",
                "services[1].depends_on: \"b\" depends on itself",
            ]
        );
    }

    #[test]
    fn cycles_are_allowed_and_listed() {
        let specs = [spec("a", &["b"]), spec("b", &["c"]), spec("c", &["a"]), spec("d", &["a"])];
        let t = Topology::build(&specs, 2).ok();
        let cycles = t.as_ref().map(|t| t.cycles().to_vec()).unwrap_or_default();
        assert_eq!(cycles, vec![vec![ServiceId(0), ServiceId(1), ServiceId(2)]]);
    }

    #[test]
    fn aliases_resolve_to_their_service() {
        let mut s = spec("payment", &[]);
        s.aliases = vec!["payment-api".into()];
        let t = Topology::build(&[s], 1).ok();
        assert_eq!(t.and_then(|t| t.lookup("payment-api")), Some(ServiceId(0)));
    }
}
