//! Per-server counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Discard;

const REASONS: usize = 9;

fn index(reason: Discard) -> usize {
    match reason {
        Discard::WrongSource => 0,
        Discard::BadLength => 1,
        Discard::UnknownIdentifier => 2,
        Discard::UnexpectedCode => 3,
        Discard::BadAttributes => 4,
        Discard::MissingMessageAuthenticator => 5,
        Discard::DuplicateMessageAuthenticator => 6,
        Discard::BadMessageAuthenticator => 7,
        Discard::BadResponseAuthenticator => 8,
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) retransmissions: AtomicU64,
    pub(crate) replies: AtomicU64,
    pub(crate) no_reply: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    discarded: [AtomicU64; REASONS],
}

impl Counters {
    pub(crate) fn discarded(&self, reason: Discard) {
        if let Some(c) = self.discarded.get(index(reason)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(
        &self,
        address: SocketAddr,
        sockets: usize,
        outstanding: usize,
        alive: bool,
    ) -> ServerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStats {
            address,
            requests: get(&self.requests),
            retransmissions: get(&self.retransmissions),
            replies: get(&self.replies),
            no_reply: get(&self.no_reply),
            send_errors: get(&self.send_errors),
            sockets,
            outstanding,
            alive,
            discarded: self.discarded.each_ref().map(get),
        }
    }
}

/// What happened with one server so far.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// The server.
    pub address: SocketAddr,
    /// Requests sent (each counted once, however often it was retransmitted).
    pub requests: u64,
    /// Retransmissions.
    pub retransmissions: u64,
    /// Valid replies taken.
    pub replies: u64,
    /// Requests that got no valid reply in time.
    pub no_reply: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Open sockets (one per 256 outstanding requests, at least one).
    pub sockets: usize,
    /// Requests waiting for a reply right now.
    pub outstanding: usize,
    /// Whether the server is in service (not marked dead, or its dead time is over).
    pub alive: bool,
    discarded: [u64; REASONS],
}

impl ServerStats {
    /// Datagrams discarded for `reason`.
    pub fn discarded(&self, reason: Discard) -> u64 {
        self.discarded.get(index(reason)).copied().unwrap_or(0)
    }
    /// Datagrams discarded, all reasons together.
    pub fn discarded_total(&self) -> u64 {
        self.discarded.iter().sum()
    }
}
