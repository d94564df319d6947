//! Strict serializability of list-append transactions, checked as Elle does.
//!
//! Every appended value is unique per key, so a read of a key names the transactions whose
//! appends it saw, in order. The checker
//! 1. checks each transaction against itself (a read reflects the transaction's own earlier
//!    appends, and none of its later ones: [`AnomalyKind::InternalInconsistency`]) and each
//!    read on its own (no element twice: [`AnomalyKind::DuplicateElements`]; no element a
//!    failed transaction appended: [`AnomalyKind::G1a`]; no element nobody appended:
//!    [`AnomalyKind::UnwrittenValueRead`]; not ending on an element its writer later followed
//!    with another append to the key: [`AnomalyKind::G1b`]);
//! 2. takes each key's longest read as its version order; every other read must be a prefix of
//!    it ([`AnomalyKind::IncompatibleOrder`]);
//! 3. builds the dependency graph of the committed transactions (acknowledged ones, and unknown
//!    ones whose appends were seen): write-write along each version order, write-read from the
//!    writer of a read's last element to the reader, read-write from a reader to the writer of
//!    the element after the last it saw, and realtime (one completed before the other began).
//!    A committed append that no read saw comes after the whole version order: write-write from
//!    the writer of its last element, and read-write from every read that saw the whole order.
//!    Then it classifies the graph's cycles (`append_graph`). An acknowledged append missed by a
//!    read that began after it completed shows as a G-single-realtime cycle.
//!
//! Reports name transactions `T<i>`, `i` being the transaction's index in the history.

use std::collections::{HashMap, HashSet};

use super::append_graph::{find_cycles, Graph, RT, RW, WR, WW};
use super::{describe_op_with, AnomalyKind, CheckResult};
use crate::jepsen::history::{History, Mop, Op, Outcome, TxnOp};

/// One read of a key by an acknowledged transaction.
struct Read<'a> {
    txn: usize,
    key: u64,
    values: &'a [u64],
}

/// Checks a list-append history for strict serializability.
pub fn check(history: &History<TxnOp>) -> CheckResult {
    let mut result = CheckResult::new("list-append");
    result.stat("txns", history.len() as u64);
    let mut writer: HashMap<(u64, u64), usize> = HashMap::new();
    let mut last_append: HashMap<(usize, u64), u64> = HashMap::new();
    let mut reads: Vec<Read> = Vec::new();
    for (txn, op) in history.iter().enumerate() {
        for mop in &op.value.mops {
            match mop {
                Mop::Append { key, value } => {
                    writer.entry((*key, *value)).or_insert(txn);
                    last_append.insert((txn, *key), *value);
                }
                Mop::Read {
                    key,
                    values: Some(values),
                } if op.outcome == Outcome::Ok => reads.push(Read {
                    txn,
                    key: *key,
                    values,
                }),
                Mop::Read { .. } => {}
            }
        }
        if op.outcome == Outcome::Ok {
            internal(history, txn, &mut result);
        }
    }
    result.stat("reads", reads.len() as u64);
    let checker = Checker {
        history,
        writer,
        last_append,
        reads,
    };
    let longest = checker.longest_reads();
    for read in &checker.reads {
        // A prefix of its key's longest read holds no element the longest does not hold.
        let order = longest[&read.key];
        let elements = std::ptr::eq(read, order) || !order.values.starts_with(read.values);
        checker.read_alone(read, elements, &mut result);
    }
    let orders = checker.version_orders(&longest, &mut result);
    let (graph, nodes) = checker.graph(&orders);
    result.stat("graph_nodes", nodes.len() as u64);
    result.stat("graph_edges", graph.edge_count() as u64);
    for cycle in find_cycles(&graph) {
        let names: Vec<String> = cycle
            .steps
            .iter()
            .map(|step| format!("T{} {}", nodes[step.node], step.label()))
            .collect();
        let ops = cycle
            .steps
            .iter()
            .map(|step| {
                let txn = nodes[step.node];
                format!("T{txn} {} {}", checker.describe(txn), step.label())
            })
            .collect();
        result.push(
            cycle.kind,
            format!(
                "cycle of {} transactions: {} T{}",
                cycle.steps.len(),
                names.join(" "),
                nodes[cycle.steps[0].node]
            ),
            ops,
        );
    }
    result
}

/// What a key looks like inside one transaction, from its own operations.
enum Seen<'a> {
    /// Not read yet: whatever it was, followed by these appends.
    Suffix(Vec<u64>),
    /// Read as the first list, then appended to with the second.
    Full(&'a [u64], Vec<u64>),
}

/// Flags reads of an acknowledged transaction that do not reflect its own earlier operations.
fn internal(history: &History<TxnOp>, txn: usize, result: &mut CheckResult) {
    let op = &history[txn];
    // The transaction's appends with their positions: a read must not see its later appends.
    let appends: Vec<(usize, u64, u64)> = op
        .value
        .mops
        .iter()
        .enumerate()
        .filter_map(|(i, mop)| match mop {
            Mop::Append { key, value } => Some((i, *key, *value)),
            Mop::Read { .. } => None,
        })
        .collect();
    let mut keys: HashMap<u64, Seen> = HashMap::new();
    for (i, mop) in op.value.mops.iter().enumerate() {
        match mop {
            Mop::Append { key, value } => {
                match keys.entry(*key).or_insert(Seen::Suffix(Vec::new())) {
                    Seen::Suffix(appended) | Seen::Full(_, appended) => appended.push(*value),
                }
            }
            Mop::Read {
                key,
                values: Some(values),
            } => {
                let consistent = match keys.get(key) {
                    None => true,
                    Some(Seen::Suffix(appended)) => values.ends_with(appended),
                    Some(Seen::Full(read, appended)) => {
                        values.len() == read.len() + appended.len()
                            && values.starts_with(read)
                            && values.ends_with(appended)
                    }
                };
                let future = appends
                    .iter()
                    .any(|&(at, k, v)| at > i && k == *key && values.contains(&v));
                let consistent = consistent && !future;
                if !consistent {
                    result.push(
                        AnomalyKind::InternalInconsistency,
                        format!(
                            "T{txn} read key {key} as {}, which does not reflect its own earlier \
                             operations on the key",
                            short(values)
                        ),
                        vec![format!("T{txn} {}", describe_txn(op))],
                    );
                }
                keys.insert(*key, Seen::Full(values, Vec::new()));
            }
            Mop::Read { values: None, .. } => {}
        }
    }
}

struct Checker<'a> {
    history: &'a History<TxnOp>,
    /// The transaction that appended each (key, value).
    writer: HashMap<(u64, u64), usize>,
    /// Each transaction's last append to each key.
    last_append: HashMap<(usize, u64), u64>,
    reads: Vec<Read<'a>>,
}

impl Checker<'_> {
    fn describe(&self, txn: usize) -> String {
        describe_txn(&self.history[txn])
    }

    fn push(&self, result: &mut CheckResult, kind: AnomalyKind, what: String, txns: &[usize]) {
        let ops = txns
            .iter()
            .map(|&txn| format!("T{txn} {}", self.describe(txn)))
            .collect();
        result.push(kind, what, ops);
    }

    /// The anomalies one read shows on its own.
    fn read_alone(&self, read: &Read, elements: bool, result: &mut CheckResult) {
        let (txn, key) = (read.txn, read.key);
        if elements {
            self.read_elements(read, result);
        }
        let Some(last) = read.values.last() else {
            return;
        };
        if let Some(&w) = self.writer.get(&(key, *last)) {
            let final_append = self.last_append.get(&(w, key));
            if w != txn && final_append != Some(last) {
                let what = format!(
                    "T{txn} read key {key} ending on {last}, an intermediate append of T{w} \
                     (whose last append to it was {final_append:?})"
                );
                self.push(result, AnomalyKind::G1b, what, &[txn, w]);
            }
        }
    }

    /// The anomalies in the elements of one read: duplicates, and elements a failed
    /// transaction or nobody appended.
    fn read_elements(&self, read: &Read, result: &mut CheckResult) {
        let (txn, key) = (read.txn, read.key);
        let mut distinct = HashSet::new();
        if let Some(dup) = read.values.iter().find(|v| !distinct.insert(**v)) {
            let what = format!(
                "T{txn} read key {key} with {dup} twice: {}",
                short(read.values)
            );
            self.push(result, AnomalyKind::DuplicateElements, what, &[txn]);
        }
        for value in read.values {
            match self.writer.get(&(key, *value)) {
                None => {
                    let what = format!("T{txn} read {value} in key {key}, which nobody appended");
                    self.push(result, AnomalyKind::UnwrittenValueRead, what, &[txn]);
                }
                Some(&w) if self.history[w].outcome == Outcome::Fail => {
                    let what = format!("T{txn} read {value} in key {key}, appended by failed T{w}");
                    self.push(result, AnomalyKind::G1a, what, &[txn, w]);
                }
                Some(_) => {}
            }
        }
    }

    /// Each key's longest read.
    fn longest_reads(&self) -> HashMap<u64, &Read<'_>> {
        let mut longest: HashMap<u64, &Read> = HashMap::new();
        for read in &self.reads {
            let entry = longest.entry(read.key).or_insert(read);
            if read.values.len() > entry.values.len() {
                *entry = read;
            }
        }
        longest
    }

    /// Each key's longest read, for keys whose reads are all prefixes of it.
    fn version_orders<'r>(
        &self,
        longest: &HashMap<u64, &'r Read>,
        result: &mut CheckResult,
    ) -> HashMap<u64, &'r [u64]> {
        let mut incompatible = HashSet::new();
        let mut reported = HashSet::new();
        for read in &self.reads {
            let order = longest[&read.key];
            if !order.values.starts_with(read.values) {
                incompatible.insert(read.key);
                if reported.insert((read.key, read.values)) {
                    let what = format!(
                        "key {}: T{} read {}, not a prefix of T{}'s {}",
                        read.key,
                        read.txn,
                        short(read.values),
                        order.txn,
                        short(order.values)
                    );
                    let txns = [read.txn, order.txn];
                    self.push(result, AnomalyKind::IncompatibleOrder, what, &txns);
                }
            }
        }
        result.stat("keys", longest.len() as u64);
        longest
            .iter()
            .filter(|(key, _)| !incompatible.contains(key))
            .map(|(key, read)| (*key, read.values))
            .collect()
    }

    /// The dependency graph over committed transactions; `nodes[i]` is node i's transaction.
    fn graph(&self, orders: &HashMap<u64, &[u64]>) -> (Graph, Vec<usize>) {
        let observed: HashSet<usize> = orders
            .iter()
            .flat_map(|(key, order)| order.iter().filter_map(|v| self.writer.get(&(*key, *v))))
            .copied()
            .collect();
        let nodes: Vec<usize> = (0..self.history.len())
            .filter(|txn| match self.history[*txn].outcome {
                Outcome::Ok => true,
                Outcome::Unknown => observed.contains(txn),
                Outcome::Fail => false,
            })
            .collect();
        let node_of: HashMap<usize, usize> =
            nodes.iter().enumerate().map(|(n, t)| (*t, n)).collect();
        let mut graph = Graph::new(nodes.len());
        let node = |key: u64, value: u64| {
            self.writer
                .get(&(key, value))
                .and_then(|txn| node_of.get(txn).copied())
        };
        let mut keys: Vec<(&u64, &&[u64])> = orders.iter().collect();
        keys.sort();
        for (&key, order) in keys {
            for pair in order.windows(2) {
                if let (Some(a), Some(b)) = (node(key, pair[0]), node(key, pair[1])) {
                    graph.add(a, b, WW, Some(key));
                }
            }
        }
        // Committed appends to each key that no read saw.
        let read: HashSet<(u64, u64)> = orders
            .iter()
            .flat_map(|(key, order)| order.iter().map(move |value| (*key, *value)))
            .collect();
        let mut unread: HashMap<u64, Vec<usize>> = HashMap::new();
        for (&(key, value), &txn) in &self.writer {
            if let Some(&n) = node_of.get(&txn) {
                if orders.contains_key(&key) && !read.contains(&(key, value)) {
                    unread.entry(key).or_default().push(n);
                }
            }
        }
        for (key, writers) in &mut unread {
            writers.sort_unstable();
            writers.dedup();
            if let Some(last) = orders[key].last().and_then(|last| node(*key, *last)) {
                for &writer in writers.iter() {
                    graph.add(last, writer, WW, Some(*key));
                }
            }
        }
        for read in self
            .reads
            .iter()
            .filter(|read| orders.contains_key(&read.key))
        {
            let (key, reader) = (read.key, node_of[&read.txn]);
            if let Some(writer) = read.values.last().and_then(|last| node(key, *last)) {
                graph.add(writer, reader, WR, Some(key));
            }
            match orders[&key].get(read.values.len()) {
                Some(next) => {
                    if let Some(writer) = node(key, *next) {
                        graph.add(reader, writer, RW, Some(key));
                    }
                }
                None => {
                    for &writer in unread.get(&key).into_iter().flatten() {
                        graph.add(reader, writer, RW, Some(key));
                    }
                }
            }
        }
        self.realtime(&nodes, &mut graph);
        (graph, nodes)
    }

    /// Realtime edges, transitively reduced by a sweep: when a transaction begins it gets an
    /// edge from each transaction in the frontier (completed, and not known to precede another
    /// completed one); when it completes it replaces its own predecessors in the frontier.
    /// Unknown transactions never complete.
    fn realtime(&self, nodes: &[usize], graph: &mut Graph) {
        let mut events: Vec<(std::time::Duration, bool, usize)> = Vec::new();
        for (n, &txn) in nodes.iter().enumerate() {
            let op = &self.history[txn];
            events.push((op.invoke, false, n));
            if op.outcome == Outcome::Ok {
                events.push((op.complete, true, n));
            }
        }
        // At equal times invocations come first: those are concurrent, not ordered.
        events.sort();
        let mut frontier: HashSet<usize> = HashSet::new();
        let mut preds: HashMap<usize, Vec<usize>> = HashMap::new();
        for (_, completes, n) in events {
            if completes {
                for pred in preds.remove(&n).unwrap_or_default() {
                    frontier.remove(&pred);
                }
                frontier.insert(n);
            } else {
                let mut before: Vec<usize> = frontier.iter().copied().collect();
                before.sort_unstable();
                for &pred in &before {
                    graph.add(pred, n, RT, None);
                }
                preds.insert(n, before);
            }
        }
    }
}

/// A list of values, its middle elided when long: `[1, 2, 3, .. (95 more) .., 99, 100]`.
fn short(values: &[u64]) -> String {
    const ENDS: usize = 4;
    if values.len() <= 3 * ENDS {
        return format!("{values:?}");
    }
    let head: Vec<String> = values[..ENDS].iter().map(u64::to_string).collect();
    let tail: Vec<String> = values[values.len() - ENDS..]
        .iter()
        .map(u64::to_string)
        .collect();
    format!(
        "[{}, .. ({} more) .., {}]",
        head.join(", "),
        values.len() - 2 * ENDS,
        tail.join(", ")
    )
}

/// A transaction on one line, with its micro-operations written compactly.
fn describe_txn(op: &Op<TxnOp>) -> String {
    let mops: Vec<String> = op
        .value
        .mops
        .iter()
        .map(|mop| match mop {
            Mop::Append { key, value } => format!("append {key} {value}"),
            Mop::Read {
                key,
                values: Some(values),
            } => format!("read {key} {}", short(values)),
            Mop::Read { key, values: None } => format!("read {key} ?"),
        })
        .collect();
    describe_op_with(op, &format!("[{}]", mops.join(", ")))
}

#[cfg(test)]
#[path = "append_tests.rs"]
mod tests;
