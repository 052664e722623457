//! The node ids one IP presented (see [`super::KnownNodes::vouch`]): nearly always one,
//! kept inline so that vouching for a new IP costs no heap allocation; a `Vec` beyond.

use estudely_krpc::NodeId;

/// Distinct ids in the order first seen.
#[derive(Debug, Clone)]
pub(crate) enum IpIds {
    /// The only id so far.
    One(NodeId),
    /// Two or more.
    Many(Vec<NodeId>),
}

impl IpIds {
    /// The ids, in the order first seen.
    pub(crate) fn as_slice(&self) -> &[NodeId] {
        match self {
            IpIds::One(id) => std::slice::from_ref(id),
            IpIds::Many(v) => v,
        }
    }

    /// How many ids.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether `id` is one of them.
    pub(crate) fn contains(&self, id: &NodeId) -> bool {
        self.as_slice().contains(id)
    }

    /// Add `id` (the caller checks it is new).
    pub(crate) fn push(&mut self, id: NodeId) {
        match self {
            IpIds::One(first) => *self = IpIds::Many(vec![*first, id]),
            IpIds::Many(v) => v.push(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_inline_then_many_in_order() {
        let mut ids = IpIds::One(NodeId([1; 20]));
        assert_eq!(ids.len(), 1);
        assert!(ids.contains(&NodeId([1; 20])));
        assert!(!ids.contains(&NodeId([2; 20])));
        ids.push(NodeId([2; 20]));
        ids.push(NodeId([3; 20]));
        assert_eq!(
            ids.as_slice(),
            [NodeId([1; 20]), NodeId([2; 20]), NodeId([3; 20])]
        );
        assert!(ids.contains(&NodeId([3; 20])));
    }
}
