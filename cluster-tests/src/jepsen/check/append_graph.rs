//! The dependency graph of list-append transactions and the search for its cycles.
//!
//! Edges carry a set of kinds (write-write, write-read, read-write, realtime). Each strongly
//! connected component of the whole graph holds at least one cycle; the checker reports, per
//! component, the first cycle it finds in this order (so each is named by the weakest
//! dependencies that close it): G0 (write-write only), G1c (plus write-read), G-single (exactly
//! one read-write), G2 (two or more read-write); then the same four with realtime edges allowed,
//! which are only strict-serializability violations. Each cycle is a shortest one through some
//! node (breadth-first search inside a component of the allowed edges).

use std::collections::{HashMap, HashSet, VecDeque};

use super::AnomalyKind;

pub(super) const WW: u8 = 1;
pub(super) const WR: u8 = 2;
pub(super) const RW: u8 = 4;
pub(super) const RT: u8 = 8;

/// How many read-write edges of one component the G-single search tries.
const SINGLE_TRIES: usize = 2000;

#[derive(Default, Clone, Copy)]
struct Edge {
    kinds: u8,
    /// A key that gave the edge its write-write, write-read and read-write kinds.
    keys: [Option<u64>; 3],
}

/// A directed graph over nodes `0..n` whose edges carry kinds.
pub(super) struct Graph {
    out: Vec<Vec<usize>>,
    edges: HashMap<(usize, usize), Edge>,
}

/// One step of a cycle: from `node` along an edge of `kind` to the next step's node.
pub(super) struct Step {
    pub node: usize,
    pub kind: u8,
    pub key: Option<u64>,
}

impl Step {
    /// The edge as an arrow, e.g. `-ww(key 3)->`.
    pub fn label(&self) -> String {
        let name = match self.kind {
            WW => "ww",
            WR => "wr",
            RW => "rw",
            _ => "realtime",
        };
        match self.key {
            Some(key) => format!("-{name}(key {key})->"),
            None => format!("-{name}->"),
        }
    }
}

/// A cycle; the last step's edge leads back to the first step's node.
pub(super) struct Cycle {
    pub kind: AnomalyKind,
    pub steps: Vec<Step>,
}

impl Graph {
    pub fn new(nodes: usize) -> Graph {
        Graph {
            out: vec![Vec::new(); nodes],
            edges: HashMap::new(),
        }
    }

    /// Adds `kind` to the edge `from -> to` (self edges are ignored).
    pub fn add(&mut self, from: usize, to: usize, kind: u8, key: Option<u64>) {
        if from == to {
            return;
        }
        let out = &mut self.out;
        let edge = self.edges.entry((from, to)).or_insert_with(|| {
            out[from].push(to);
            Edge::default()
        });
        edge.kinds |= kind;
        let slot = match kind {
            WW => 0,
            WR => 1,
            RW => 2,
            _ => return,
        };
        if edge.keys[slot].is_none() {
            edge.keys[slot] = key;
        }
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    fn kinds(&self, from: usize, to: usize) -> u8 {
        self.edges.get(&(from, to)).map_or(0, |e| e.kinds)
    }

    /// The step `from -> to` labelled with its most specific kind among `allowed`.
    fn step(&self, from: usize, to: usize, allowed: u8) -> Step {
        let edge = self.edges.get(&(from, to)).copied().unwrap_or_default();
        let kinds = edge.kinds & allowed;
        let (kind, key) = [(WW, 0), (WR, 1), (RW, 2)]
            .into_iter()
            .find(|(kind, _)| kinds & kind != 0)
            .map_or((RT, None), |(kind, slot)| (kind, edge.keys[slot]));
        Step {
            node: from,
            kind,
            key,
        }
    }

    /// Strongly connected components of more than one node among `nodes` (all inside
    /// `member`), using edges with a kind in `allowed` (Tarjan's algorithm, iteratively).
    fn components(
        &self,
        nodes: &[usize],
        member: &dyn Fn(usize) -> bool,
        allowed: u8,
    ) -> Vec<Vec<usize>> {
        let mut t = Tarjan::default();
        let mut found = Vec::new();
        for &root in nodes {
            if t.index.contains_key(&root) {
                continue;
            }
            let mut work: Vec<(usize, usize)> = Vec::new();
            t.enter(root, &mut work);
            while let Some(&(v, pos)) = work.last() {
                if let Some(&w) = self.out[v].get(pos) {
                    if let Some(top) = work.last_mut() {
                        top.1 += 1;
                    }
                    if !member(w) || self.kinds(v, w) & allowed == 0 {
                        continue;
                    }
                    match t.index.get(&w) {
                        None => t.enter(w, &mut work),
                        Some(&(wi, _)) if t.on_stack.contains(&w) => t.lower(v, wi),
                        Some(_) => {}
                    }
                    continue;
                }
                work.pop();
                let (vi, vlow) = t.index[&v];
                if let Some(&(u, _)) = work.last() {
                    t.lower(u, vlow);
                }
                if vi == vlow {
                    let mut component = Vec::new();
                    while let Some(w) = t.stack.pop() {
                        t.on_stack.remove(&w);
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        found.push(component);
                    }
                }
            }
        }
        found
    }

    /// A shortest path `from -> ... -> to` along `allowed` edges inside `member`, as the nodes
    /// before `to` (so `from == to` gives a cycle).
    fn path(
        &self,
        from: usize,
        to: usize,
        member: &dyn Fn(usize) -> bool,
        allowed: u8,
    ) -> Option<Vec<usize>> {
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(x) = queue.pop_front() {
            for &y in &self.out[x] {
                if !member(y) || self.kinds(x, y) & allowed == 0 {
                    continue;
                }
                if y == to {
                    let mut path = vec![x];
                    while let Some(&p) = path.last().and_then(|last| parent.get(last)) {
                        path.push(p);
                    }
                    path.reverse();
                    return Some(path);
                }
                if y != from && !parent.contains_key(&y) {
                    parent.insert(y, x);
                    queue.push_back(y);
                }
            }
        }
        None
    }

    /// A cycle inside `member` using only `allowed` edges, if there is one.
    fn cycle(&self, scc: &[usize], member: &dyn Fn(usize) -> bool, allowed: u8) -> Option<Cycle> {
        let component = self.components(scc, member, allowed).into_iter().next()?;
        let start = *component.iter().min()?;
        let nodes = self.path(start, start, member, allowed)?;
        Some(self.classify(&nodes, None, allowed))
    }

    /// A cycle inside `member` of one read-write edge closed by `allowed` edges.
    fn single(&self, scc: &[usize], member: &dyn Fn(usize) -> bool, allowed: u8) -> Option<Cycle> {
        let rw_edges = scc.iter().flat_map(|&a| {
            self.out[a]
                .iter()
                .filter(move |&&b| member(b) && self.kinds(a, b) & RW != 0)
                .map(move |&b| (a, b))
        });
        for (a, b) in rw_edges.take(SINGLE_TRIES) {
            if let Some(path) = self.path(b, a, member, allowed) {
                let mut nodes = vec![a];
                nodes.extend(path);
                return Some(self.classify(&nodes, Some(RW), allowed));
            }
        }
        None
    }

    /// Labels the cycle through `nodes` (its first edge of kind `first` if given, the others
    /// of their most specific kind in `allowed`) and names it by its kinds.
    fn classify(&self, nodes: &[usize], first: Option<u8>, allowed: u8) -> Cycle {
        let steps: Vec<Step> = (0..nodes.len())
            .map(|i| {
                let (from, to) = (nodes[i], nodes[(i + 1) % nodes.len()]);
                match first {
                    Some(kind) if i == 0 => self.step(from, to, kind),
                    _ => self.step(from, to, allowed),
                }
            })
            .collect();
        let count = |kind: u8| steps.iter().filter(|s| s.kind == kind).count();
        let realtime = count(RT) > 0;
        let kind = match (count(RW), count(WR) > 0, realtime) {
            (0, false, false) => AnomalyKind::G0,
            (0, true, false) => AnomalyKind::G1c,
            (1, _, false) => AnomalyKind::GSingle,
            (_, _, false) => AnomalyKind::G2,
            (0, false, true) => AnomalyKind::G0Realtime,
            (0, true, true) => AnomalyKind::G1cRealtime,
            (1, _, true) => AnomalyKind::GSingleRealtime,
            (_, _, true) => AnomalyKind::G2Realtime,
        };
        Cycle { kind, steps }
    }

    /// The first cycle found, in the documented order, inside one component.
    fn component_cycle(&self, scc: &[usize]) -> Option<Cycle> {
        let set: HashSet<usize> = scc.iter().copied().collect();
        let member = |n: usize| set.contains(&n);
        for realtime in [0, RT] {
            let found = self
                .cycle(scc, &member, WW | realtime)
                .or_else(|| self.cycle(scc, &member, WW | WR | realtime))
                .or_else(|| self.single(scc, &member, WW | WR | realtime))
                .or_else(|| self.cycle(scc, &member, WW | WR | RW | realtime));
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// Tarjan's bookkeeping: each visited node's (index, low link), and the node stack.
#[derive(Default)]
struct Tarjan {
    index: HashMap<usize, (usize, usize)>,
    stack: Vec<usize>,
    on_stack: HashSet<usize>,
}

impl Tarjan {
    fn enter(&mut self, v: usize, work: &mut Vec<(usize, usize)>) {
        let i = self.index.len();
        self.index.insert(v, (i, i));
        self.stack.push(v);
        self.on_stack.insert(v);
        work.push((v, 0));
    }

    fn lower(&mut self, v: usize, low: usize) {
        if let Some(entry) = self.index.get_mut(&v) {
            entry.1 = entry.1.min(low);
        }
    }
}

/// One cycle per strongly connected component of the graph.
pub(super) fn find_cycles(graph: &Graph) -> Vec<Cycle> {
    let nodes: Vec<usize> = (0..graph.out.len()).collect();
    let mut components = graph.components(&nodes, &|_| true, WW | WR | RW | RT);
    for component in &mut components {
        component.sort_unstable();
    }
    components.sort();
    components
        .iter()
        .filter_map(|scc| graph.component_cycle(scc))
        .collect()
}
