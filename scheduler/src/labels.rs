//! Node labels as interned symbols. Each distinct label key and value gets a small number
//! once, process-wide; each node keeps its labels as a short array of number pairs sorted by
//! key. Matching a pod's node affinity against thousands of nodes then compares integers
//! within one cache line per node, instead of walking each node's map of heap strings (which
//! was a fifth of the scheduler's time with affinity-heavy pods at 5,000 nodes).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{LazyLock, RwLock},
};

/// An interned string.
pub type Sym = u32;

/// Every label key and value seen on a node, and its number.
static TABLE: LazyLock<RwLock<HashMap<Box<str>, Sym>>> = LazyLock::new(Default::default);

/// The number of `s`, giving it one if it has none. Strings are never forgotten: they are
/// label keys and values of nodes, a few per node.
pub fn intern(s: &str) -> Sym {
    if let Some(sym) = lookup(s) {
        return sym;
    }
    let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
    let next = table.len() as Sym;
    *table.entry(s.into()).or_insert(next)
}

/// The number of `s`, if some node ever had it as a label key or value. A string without a
/// number is on no node.
pub fn lookup(s: &str) -> Option<Sym> {
    TABLE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(s)
        .copied()
}

/// A node's labels as (key, value) symbols sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLabels(Box<[(Sym, Sym)]>);

impl NodeLabels {
    /// Interns `labels`.
    pub fn of(labels: Option<&BTreeMap<String, String>>) -> NodeLabels {
        let mut pairs: Vec<(Sym, Sym)> = labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (intern(k), intern(v)))
            .collect();
        pairs.sort_unstable();
        NodeLabels(pairs.into_boxed_slice())
    }

    /// The value of `key`, if the node has that label.
    pub fn get(&self, key: Sym) -> Option<Sym> {
        // A handful of labels: a scan beats a binary search.
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_string_same_symbol_and_unknown_strings_have_none() {
        let a = intern("labels-test/a");
        assert_eq!(intern("labels-test/a"), a);
        assert_ne!(intern("labels-test/b"), a);
        assert_eq!(lookup("labels-test/a"), Some(a));
        assert_eq!(lookup("labels-test/never-on-a-node"), None);
    }

    #[test]
    fn node_labels_by_key() {
        let labels: BTreeMap<String, String> =
            [("labels-test/zone", "z1"), ("labels-test/disk", "ssd")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let n = NodeLabels::of(Some(&labels));
        assert_eq!(n.get(intern("labels-test/zone")), Some(intern("z1")));
        assert_eq!(n.get(intern("labels-test/disk")), Some(intern("ssd")));
        assert_eq!(n.get(intern("labels-test/gpu")), None);
        assert_eq!(NodeLabels::of(None), NodeLabels::default());
    }
}
