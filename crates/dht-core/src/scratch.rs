//! Buffers the node reuses instead of allocating per datagram: the bytes of datagrams its
//! driver sent and handed back, and the lists of a reply (ours, or one it received and its
//! caller is done with).
//!
//! Handing back is optional: a caller that keeps what it is given costs an allocation per
//! datagram, as before, and nothing else changes. What is kept is bounded: a few dozen
//! buffers of at most a datagram's size, and one set of reply lists.

use estudely_krpc::{NodeId, Response, MAX_DATAGRAM};

/// Most datagram buffers kept for reuse.
const MAX_BUFFERS: usize = 64;
/// Largest buffer kept: bigger ones (a caller's own) are dropped rather than held.
const MAX_BUFFER: usize = 2 * MAX_DATAGRAM;
/// Most BEP 33 filter boxes kept for reuse (a reply carries two).
const MAX_FILTERS: usize = 2;

/// The node's spare buffers.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    buffers: Vec<Vec<u8>>,
    /// A response with no fields set, whose lists may have room.
    reply: Response,
    /// Boxes of BEP 33 filters from replies given back (boxes, since a `Response` holds
    /// its filters boxed: reusing them is the point).
    #[allow(clippy::vec_box)]
    filters: Vec<Box<[u8; 256]>>,
}

impl Scratch {
    /// An empty buffer with room for `capacity` bytes: a spare one if there is one.
    pub(crate) fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        match self.buffers.pop() {
            Some(mut b) => {
                b.reserve(capacity);
                b
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Keep `bytes` (a sent datagram's) for a later [`Scratch::buffer`].
    pub(crate) fn give_back(&mut self, mut bytes: Vec<u8>) {
        if self.buffers.len() < MAX_BUFFERS && bytes.capacity() <= MAX_BUFFER {
            bytes.clear();
            self.buffers.push(bytes);
        }
    }

    /// An empty response from `id`, built on the spare lists.
    pub(crate) fn response(&mut self, id: NodeId) -> Response {
        let mut r = std::mem::take(&mut self.reply);
        r.id = id;
        r
    }

    /// A boxed copy of a BEP 33 filter, in a spare box if there is one.
    pub(crate) fn filter(&mut self, bits: &[u8; 256]) -> Box<[u8; 256]> {
        match self.filters.pop() {
            Some(mut b) => {
                *b = *bits;
                b
            }
            None => Box::new(*bits),
        }
    }

    /// The spare lists, to decode a reply into (see `Message::decode_reusing`).
    pub(crate) fn lists(&mut self) -> &mut Response {
        &mut self.reply
    }

    /// Keep `r`'s lists (and its filters' boxes) for later; the rest of it is dropped. Of
    /// two lists the roomier is kept.
    pub(crate) fn give_back_response(&mut self, mut r: Response) {
        for b in [r.bf_seeds.take(), r.bf_peers.take()].into_iter().flatten() {
            if self.filters.len() < MAX_FILTERS {
                self.filters.push(b);
            }
        }
        let spare = &mut self.reply;
        keep_roomier(&mut spare.nodes, &mut r.nodes);
        keep_roomier(&mut spare.nodes6, &mut r.nodes6);
        keep_roomier(&mut spare.values, &mut r.values);
        keep_roomier(&mut spare.samples, &mut r.samples);
    }
}

/// Leave in `spare` the roomier of the two lists, emptied.
fn keep_roomier<T>(spare: &mut Vec<T>, other: &mut Vec<T>) {
    if other.capacity() > spare.capacity() {
        std::mem::swap(spare, other);
    }
    spare.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_bounded_and_empty() {
        let mut s = Scratch::default();
        let mut b = s.buffer(100);
        b.extend_from_slice(b"hello");
        let at = b.as_ptr();
        s.give_back(b);
        let again = s.buffer(50);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at, "the same allocation");
        for _ in 0..2 * MAX_BUFFERS {
            s.give_back(Vec::with_capacity(10));
        }
        assert_eq!(s.buffers.len(), MAX_BUFFERS);
        s.buffers.clear();
        s.give_back(Vec::with_capacity(MAX_BUFFER + 1));
        assert!(s.buffers.is_empty(), "too big to keep");
    }

    #[test]
    fn a_response_comes_back_empty_with_its_room() {
        let mut s = Scratch::default();
        let mut r = s.response(NodeId([1; 20]));
        r.values = Vec::with_capacity(16);
        r.values.push("1.2.3.4:5".parse().unwrap());
        r.interval = Some(3);
        s.give_back_response(r);
        let r = s.response(NodeId([2; 20]));
        assert_eq!(
            r,
            Response {
                id: NodeId([2; 20]),
                ..Response::default()
            }
        );
        assert!(r.values.capacity() >= 16);
    }

    #[test]
    fn filter_boxes_are_reused_and_bounded() {
        let mut s = Scratch::default();
        let mut r = s.response(NodeId([1; 20]));
        r.bf_seeds = Some(s.filter(&[1; 256]));
        r.bf_peers = Some(s.filter(&[2; 256]));
        let at = r.bf_peers.as_ref().map(|b| b.as_ptr());
        s.give_back_response(r);
        assert_eq!(s.filters.len(), 2);
        let again = s.filter(&[3; 256]);
        assert_eq!(Some(again.as_ptr()), at, "the same allocation");
        assert_eq!(*again, [3; 256], "with the new bits");
        assert!(s.response(NodeId([2; 20])).bf_seeds.is_none());
        for _ in 0..3 {
            let mut r = s.response(NodeId([1; 20]));
            r.bf_seeds = Some(Box::new([0; 256]));
            r.bf_peers = Some(Box::new([0; 256]));
            s.give_back_response(r);
        }
        assert_eq!(s.filters.len(), MAX_FILTERS);
    }
}
