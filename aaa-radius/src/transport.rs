//! The transport: per server, UDP sockets multiplexing up to 224 outstanding requests each
//! (of the 256 identifiers, 32 are kept free so none is reused right after its answer),
//! retransmission, reply dispatch, failover and dead-server tracking.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use radius::core::{rfc2865, rfc3162};
use rand::TryRng as _;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::packet::{
    Code, Discard, Expected, MAX_PACKET_LEN, Reply, Request, reply_header, verify_reply,
};
use crate::stats::{Counters, ServerStats};
use crate::util::{AbortOnDrop, LogLimit, lock};
use crate::{NoReply, RadiusConfig, RadiusError, Retransmit, Secret};

/// Identifiers per socket: the Identifier field is one byte.
const IDS_PER_SOCKET: usize = 256;
/// Identifiers a socket keeps free: with the least-recently-used order, an identifier is
/// reused only after at least this many others, so a server never sees an identifier come
/// back (with a new authenticator) while it may still hold the previous request — FreeRADIUS
/// then logs a conflict and drops one, which costs a retransmission. A socket therefore
/// carries at most `IDS_PER_SOCKET - ID_RESERVE` outstanding requests before another opens.
const ID_RESERVE: usize = 32;
/// Pause after a failed `recv_from`, so a persistent error cannot spin.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The RADIUS client transport, shared by every request to the configured servers.
///
/// - **Sockets.** Per server, one UDP socket (bound to an ephemeral port on the loopback
///   address for a loopback server, on the unspecified address otherwise) carries up to 224
///   outstanding requests, one per identifier; identifiers are handed out least recently used
///   first, 32 kept in reserve. When 224 are outstanding, another socket is opened. A
///   receive task per socket dispatches replies to the waiting requests.
/// - **Requests.** Each [`exchange`](Self::exchange) draws a Request Authenticator from the
///   OS random generator, encodes the request once and sends those exact bytes on every
///   retransmission, following the server's [`Retransmit`] policy.
/// - **Replies.** A datagram is taken as the reply only if it comes from the server's exact
///   address and port and passes [`Reply::verify`]'s checks against the outstanding request
///   with its identifier. Anything else is discarded silently (counted in [`ServerStats`],
///   logged at most once per 10 s per server) and does not disturb the retransmission timers.
///   A reply for a request already answered or given up on is discarded.
/// - **Failover.** [`send`](Self::send) tries the servers in order and moves to the next one
///   only when a server gives no valid reply in time; any valid reply is final. A server that
///   did not answer is dead for `dead_time`: passed over while another server is not dead,
///   tried last otherwise. With `status_server`, a dead server is probed every `dead_time`
///   with Status-Server and is back in service once a probe (or a request) is answered.
///
/// Cloning is cheap and clones share everything. Dropping the last clone closes the sockets
/// and stops the tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    links: Vec<Link>,
    retransmit: Retransmit,
    dead_time: Duration,
    status_server: bool,
    /// NAS-Identifier / NAS-IP-Address attributes, as configured, for every request.
    nas: Vec<(u8, Vec<u8>)>,
    runtime: tokio::runtime::Handle,
}

/// One server.
struct Link {
    info: Arc<LinkInfo>,
    sockets: Mutex<Vec<SocketSlot>>,
    health: Mutex<Health>,
    probe: Mutex<Option<AbortOnDrop>>,
}

/// What the receive tasks of a server need.
struct LinkInfo {
    address: SocketAddr,
    secret: Secret,
    require_message_authenticator: bool,
    bind: SocketAddr,
    counters: Counters,
    warn: LogLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Alive,
    /// Dead until the instant; `None`: until a Status-Server probe is answered.
    Dead(Option<Instant>),
}

struct SocketSlot {
    shared: Arc<SocketShared>,
    _receiver: AbortOnDrop,
}

struct SocketShared {
    socket: UdpSocket,
    table: Mutex<Table>,
}

struct Table {
    /// Free identifiers, least recently used first.
    free: VecDeque<u8>,
    /// The outstanding request of each identifier.
    pending: Vec<Option<Pending>>,
    next_seq: u64,
}

struct Pending {
    /// Distinguishes successive requests on the same identifier.
    seq: u64,
    /// What a reply must match; `None` until the request is encoded and armed.
    expected: Option<Expected>,
    /// Taken by the first valid reply.
    reply: Option<oneshot::Sender<Reply>>,
}

/// An identifier held by one exchange; released (and the request forgotten) when dropped, so
/// a cancelled exchange leaks nothing.
struct Allocation {
    shared: Arc<SocketShared>,
    identifier: u8,
    seq: u64,
}

impl Allocation {
    /// Arms the identifier for the request as encoded (its code and the authenticator in its
    /// header: random for an Access-Request, computed for an Accounting-Request): from now on
    /// a valid reply is delivered to the returned receiver.
    fn arm(&self, code: Code, authenticator: [u8; 16]) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let mut table = lock(&self.shared.table);
        if let Some(Some(p)) = table.pending.get_mut(usize::from(self.identifier))
            && p.seq == self.seq
        {
            p.expected = Some(Expected {
                code,
                identifier: self.identifier,
                authenticator,
            });
            p.reply = Some(tx);
        }
        rx
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        let mut table = lock(&self.shared.table);
        if let Some(slot) = table.pending.get_mut(usize::from(self.identifier))
            && slot.as_ref().is_some_and(|p| p.seq == self.seq)
        {
            *slot = None;
            table.free.push_back(self.identifier);
        }
    }
}

impl LinkInfo {
    fn discard(&self, reason: Discard, from: SocketAddr) {
        self.counters.discarded(reason);
        if let Some(suppressed) = self.warn.permit() {
            tracing::warn!(
                target: "aaa::radius",
                server = %self.address,
                from = %from,
                %reason,
                suppressed,
                "discarded a datagram on a RADIUS client socket"
            );
        }
    }
    fn io_trouble(&self, what: &'static str, error: &std::io::Error) {
        if let Some(suppressed) = self.warn.permit() {
            tracing::warn!(
                target: "aaa::radius",
                server = %self.address,
                %error,
                suppressed,
                "{what} failed on a RADIUS client socket"
            );
        }
    }
}

impl Table {
    fn new() -> Self {
        Self {
            free: (0..=u8::MAX).collect(),
            pending: (0..IDS_PER_SOCKET).map(|_| None).collect(),
            next_seq: 0,
        }
    }
}

impl SocketShared {
    /// Takes the least recently used free identifier, if any.
    fn try_allocate(self: &Arc<Self>) -> Option<Allocation> {
        let mut table = lock(&self.table);
        if table.free.len() <= ID_RESERVE {
            return None;
        }
        let identifier = table.free.pop_front()?;
        let seq = table.next_seq;
        table.next_seq = seq.wrapping_add(1);
        let Some(slot) = table.pending.get_mut(usize::from(identifier)) else {
            // Not reachable: the table has a slot for every identifier.
            table.free.push_front(identifier);
            return None;
        };
        *slot = Some(Pending {
            seq,
            expected: None,
            reply: None,
        });
        drop(table);
        Some(Allocation {
            shared: self.clone(),
            identifier,
            seq,
        })
    }

    fn outstanding(&self) -> usize {
        IDS_PER_SOCKET - lock(&self.table).free.len()
    }
}

/// The receive task of one socket: dispatches each datagram, forever (until aborted).
async fn receive_loop(info: Arc<LinkInfo>, shared: Arc<SocketShared>) {
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    loop {
        match shared.socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let datagram = buf.get(..n).unwrap_or_default();
                if let Err(reason) = dispatch(&info, &shared, datagram, from) {
                    info.discard(reason, from);
                }
            }
            Err(e) => {
                info.io_trouble("recv_from", &e);
                tokio::time::sleep(RECV_ERROR_PAUSE).await;
            }
        }
    }
}

/// Checks one datagram and hands it to the request it answers.
fn dispatch(
    info: &LinkInfo,
    shared: &SocketShared,
    datagram: &[u8],
    from: SocketAddr,
) -> Result<(), Discard> {
    if from.ip() != info.address.ip() || from.port() != info.address.port() {
        return Err(Discard::WrongSource);
    }
    let (identifier, packet) = reply_header(datagram)?;
    let (seq, expected) = {
        let table = lock(&shared.table);
        match table.pending.get(usize::from(identifier)) {
            Some(Some(Pending {
                seq,
                expected: Some(expected),
                reply: Some(_),
            })) => (*seq, *expected),
            _ => return Err(Discard::UnknownIdentifier),
        }
    };
    // The crypto runs outside the lock; `seq` makes sure the identifier was not released and
    // reused meanwhile.
    let reply = verify_reply(
        packet,
        &expected,
        &info.secret,
        info.require_message_authenticator,
    )?;
    let sender = {
        let mut table = lock(&shared.table);
        match table.pending.get_mut(usize::from(identifier)) {
            Some(Some(p)) if p.seq == seq => p.reply.take(),
            _ => None,
        }
    };
    match sender {
        Some(sender) => {
            info.counters.replies.fetch_add(1, Ordering::Relaxed);
            // The requester may have given up this very moment: then nobody needs it.
            let _ = sender.send(reply);
            Ok(())
        }
        None => Err(Discard::UnknownIdentifier),
    }
}

/// The local address for the sockets of a server: loopback for a loopback server, the
/// unspecified address of its family otherwise; an ephemeral port.
fn bind_address(server: SocketAddr) -> SocketAddr {
    let ip = match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// 16 bytes from the OS random generator.
fn random_authenticator() -> Result<[u8; 16], RadiusError> {
    let mut a = [0u8; 16];
    rand::rngs::SysRng
        .try_fill_bytes(&mut a)
        .map_err(RadiusError::Entropy)?;
    Ok(a)
}

/// Receive buffer asked for each socket: up to 224 replies can arrive in a burst, more than
/// the usual 208 KiB default holds while the receive task waits for a CPU (the kernel caps it at
/// `net.core.rmem_max`).
const RECEIVE_BUFFER: usize = 1 << 20;

/// A non-blocking UDP socket bound to `bind`, with a receive buffer for bursts of replies.
fn bind_udp(bind: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(bind),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer still works, only with less room for bursts.
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    socket.bind(&bind.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl Link {
    /// Opens a socket and starts its receive task. Call inside the runtime's context.
    fn open_socket(&self) -> Result<SocketSlot, RadiusError> {
        let info = &self.info;
        let err = |source| RadiusError::Socket {
            address: info.address,
            bind: info.bind,
            source,
        };
        let std_socket = bind_udp(info.bind).map_err(err)?;
        let socket = UdpSocket::from_std(std_socket).map_err(err)?;
        let shared = Arc::new(SocketShared {
            socket,
            table: Mutex::new(Table::new()),
        });
        let task = tokio::spawn(receive_loop(info.clone(), shared.clone()));
        Ok(SocketSlot {
            shared,
            _receiver: AbortOnDrop(task),
        })
    }

    /// An identifier on the first socket with one free, or on a new socket.
    fn allocate(&self, runtime: &tokio::runtime::Handle) -> Result<Allocation, RadiusError> {
        let mut sockets = lock(&self.sockets);
        for slot in sockets.iter() {
            if let Some(found) = slot.shared.try_allocate() {
                return Ok(found);
            }
        }
        let slot = {
            let _context = runtime.enter();
            self.open_socket()?
        };
        let found = slot.shared.try_allocate();
        sockets.push(slot);
        tracing::debug!(
            target: "aaa::radius",
            server = %self.info.address,
            sockets = sockets.len(),
            "the RADIUS sockets' identifiers are all outstanding (32 kept in reserve each): opened another socket"
        );
        found.ok_or(RadiusError::Socket {
            address: self.info.address,
            bind: self.info.bind,
            source: std::io::Error::other("a new socket had no free identifier"),
        })
    }

    fn health(&self) -> Health {
        *lock(&self.health)
    }

    fn is_alive(&self, now: Instant) -> bool {
        match self.health() {
            Health::Alive => true,
            Health::Dead(Some(until)) => now >= until,
            Health::Dead(None) => false,
        }
    }
}

impl Client {
    /// Validates `config` and opens one socket per server. Needs a tokio runtime (the receive
    /// and probe tasks run on it): [`RadiusError::NoRuntime`] otherwise. Logs a warning for
    /// each secret under 16 bytes and each server not requiring a Message-Authenticator.
    pub fn new(config: &RadiusConfig) -> Result<Self, RadiusError> {
        Self::build(config, false)
    }

    /// [`new`](Self::new) for accounting servers: a server not requiring a
    /// Message-Authenticator draws no warning (Accounting-Responses decide nothing, and
    /// FreeRADIUS does not sign them).
    pub(crate) fn new_accounting(config: &RadiusConfig) -> Result<Self, RadiusError> {
        Self::build(config, true)
    }

    fn build(config: &RadiusConfig, accounting: bool) -> Result<Self, RadiusError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(RadiusError::NoRuntime)?;
        config.warn_weak_secrets(!accounting);
        let mut nas = Vec::new();
        if let Some(id) = &config.nas_identifier {
            nas.push((rfc2865::NAS_IDENTIFIER_TYPE, id.as_bytes().to_vec()));
        }
        match config.nas_ip_address {
            Some(IpAddr::V4(ip)) => nas.push((rfc2865::NAS_IP_ADDRESS_TYPE, ip.octets().to_vec())),
            Some(IpAddr::V6(ip)) => {
                nas.push((rfc3162::NAS_IPV6_ADDRESS_TYPE, ip.octets().to_vec()));
            }
            None => {}
        }
        let _context = runtime.enter();
        let mut links = Vec::with_capacity(config.servers.len());
        for server in &config.servers {
            let link = Link {
                info: Arc::new(LinkInfo {
                    address: server.address,
                    secret: server.secret.clone(),
                    require_message_authenticator: server.require_message_authenticator,
                    bind: bind_address(server.address),
                    counters: Counters::default(),
                    warn: LogLimit::new(),
                }),
                sockets: Mutex::new(Vec::new()),
                health: Mutex::new(Health::Alive),
                probe: Mutex::new(None),
            };
            let first = link.open_socket()?;
            lock(&link.sockets).push(first);
            links.push(link);
        }
        drop(_context);
        Ok(Self {
            inner: Arc::new(Inner {
                links,
                retransmit: config.retransmit,
                dead_time: config.dead_time,
                status_server: config.status_server,
                nas,
                runtime,
            }),
        })
    }

    /// The servers' addresses, in order of preference.
    pub fn servers(&self) -> Vec<SocketAddr> {
        self.inner.links.iter().map(|l| l.info.address).collect()
    }

    /// The NAS-Identifier / NAS-IP-Address / NAS-IPv6-Address attributes of the
    /// configuration, as (type, value), for the requests to carry.
    pub fn nas_attributes(&self) -> &[(u8, Vec<u8>)] {
        &self.inner.nas
    }

    /// Counters and state of each server, in order.
    pub fn stats(&self) -> Vec<ServerStats> {
        let now = Instant::now();
        self.inner
            .links
            .iter()
            .map(|link| {
                let sockets = lock(&link.sockets);
                let outstanding = sockets.iter().map(|s| s.shared.outstanding()).sum();
                link.info.counters.snapshot(
                    link.info.address,
                    sockets.len(),
                    outstanding,
                    link.is_alive(now),
                )
            })
            .collect()
    }

    /// Sends `request` to the servers in order until one gives a valid reply, which is
    /// returned whatever its code (an Access-Reject is final: no other server sees the
    /// request). A server that gives no valid reply within its retransmission budget is
    /// marked dead and the next one is tried, with a new identifier and Request Authenticator
    /// and its own secret. Servers marked dead are tried after the others.
    ///
    /// Errors: [`RadiusError::NoServerAnswered`] when every server failed; an encoding or
    /// random-generator error as soon as it happens.
    pub async fn send(&self, request: &Request) -> Result<Reply, RadiusError> {
        let now = Instant::now();
        let (alive, dead): (Vec<usize>, Vec<usize>) = (0..self.inner.links.len()).partition(|&i| {
            self.inner
                .links
                .get(i)
                .is_some_and(|link| link.is_alive(now))
        });
        let mut tried = Vec::new();
        for server in alive.into_iter().chain(dead) {
            match self.exchange(server, request).await {
                Ok(reply) => {
                    self.mark_alive(server, "a valid reply");
                    return Ok(reply);
                }
                Err(e @ (RadiusError::NoReply(_) | RadiusError::Socket { .. })) => {
                    // Logged at warn level once per outage by `mark_dead`.
                    tracing::debug!(target: "aaa::radius", error = %e, "RADIUS server failed");
                    self.mark_dead(server);
                    tried.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(RadiusError::NoServerAnswered { tried })
    }

    /// One exchange with server number `server` (in configuration order) under the
    /// configured [`Retransmit`] policy: no failover and no change to the server's health.
    pub async fn exchange(&self, server: usize, request: &Request) -> Result<Reply, RadiusError> {
        self.exchange_with(server, request, self.inner.retransmit)
            .await
    }

    /// [`exchange`](Self::exchange) with another retransmission policy (its durations must not
    /// be zero: [`RadiusError::ZeroDuration`]).
    pub async fn exchange_with(
        &self,
        server: usize,
        request: &Request,
        retransmit: Retransmit,
    ) -> Result<Reply, RadiusError> {
        let link = self
            .inner
            .links
            .get(server)
            .ok_or(RadiusError::NoSuchServer { index: server })?;
        retransmit.validate()?;
        let info = &link.info;
        let random = random_authenticator()?;
        let allocation = link.allocate(&self.inner.runtime)?;
        let bytes = request.encode(allocation.identifier, &random, &info.secret)?;
        let authenticator = bytes
            .get(4..crate::packet::HEADER_LEN)
            .and_then(|a| <[u8; 16]>::try_from(a).ok())
            .unwrap_or(random);
        let mut reply = allocation.arm(request.code(), authenticator);
        info.counters.requests.fetch_add(1, Ordering::Relaxed);

        let start = Instant::now();
        let deadline = start
            .checked_add(retransmit.max_duration)
            .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365));
        let mut backoff = Backoff::new(retransmit);
        let mut transmissions: u32 = 0;
        let mut last_send_error = None;
        loop {
            if transmissions > 0 {
                info.counters
                    .retransmissions
                    .fetch_add(1, Ordering::Relaxed);
            }
            transmissions = transmissions.saturating_add(1);
            if let Err(e) = allocation.shared.socket.send_to(&bytes, info.address).await {
                info.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                info.io_trouble("send_to", &e);
                last_send_error = Some(e);
            }
            let wait_until = Instant::now()
                .checked_add(backoff.next())
                .map_or(deadline, |t| t.min(deadline));
            match tokio::time::timeout_at(wait_until, &mut reply).await {
                Ok(Ok(reply)) => return Ok(reply),
                // The reply channel closed unanswered: nothing more can come.
                Ok(Err(_)) => break,
                Err(_elapsed) => {}
            }
            if transmissions > retransmit.max_count || Instant::now() >= deadline {
                break;
            }
        }
        drop(allocation);
        info.counters.no_reply.fetch_add(1, Ordering::Relaxed);
        Err(NoReply {
            address: info.address,
            transmissions,
            elapsed: start.elapsed(),
            last_send_error,
        }
        .into())
    }

    /// Sends one Status-Server (RFC 5997) to server number `server`, never retransmitted,
    /// and waits for its answer up to the configured `retransmit.max_duration`. The answer
    /// is verified like any reply (Message-Authenticator included). Does not change the
    /// server's health.
    pub async fn probe(&self, server: usize) -> Result<Reply, RadiusError> {
        let mut request = Request::status_server();
        request.add_all(&self.inner.nas)?;
        let wait = self.inner.retransmit.max_duration;
        self.exchange_with(server, &request, Retransmit::new(wait, 0, wait, wait))
            .await
    }

    fn mark_alive(&self, server: usize, why: &'static str) {
        let Some(link) = self.inner.links.get(server) else {
            return;
        };
        let previous = std::mem::replace(&mut *lock(&link.health), Health::Alive);
        if previous != Health::Alive {
            tracing::info!(target: "aaa::radius", server = %link.info.address, "RADIUS server back in service after {why}");
        }
    }

    fn mark_dead(&self, server: usize) {
        let Some(link) = self.inner.links.get(server) else {
            return;
        };
        let until = if self.inner.status_server {
            None
        } else {
            Instant::now().checked_add(self.inner.dead_time)
        };
        let previous = std::mem::replace(&mut *lock(&link.health), Health::Dead(until));
        if previous == Health::Alive {
            tracing::warn!(
                target: "aaa::radius",
                server = %link.info.address,
                dead_time_ms = self.inner.dead_time.as_millis(),
                status_server = self.inner.status_server,
                "RADIUS server marked dead"
            );
        }
        if self.inner.status_server {
            let mut probe = lock(&link.probe);
            if probe.as_ref().is_some_and(|p| !p.0.is_finished()) {
                return;
            }
            let weak = Arc::downgrade(&self.inner);
            let dead_time = self.inner.dead_time;
            *probe = Some(AbortOnDrop(
                self.inner
                    .runtime
                    .spawn(probe_loop(weak, server, dead_time)),
            ));
        }
    }
}

/// Probes a dead server every `dead_time` until it answers (or the client is dropped, which
/// aborts this task).
async fn probe_loop(inner: Weak<Inner>, server: usize, dead_time: Duration) {
    loop {
        tokio::time::sleep(dead_time).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let client = Client { inner };
        let Some(link) = client.inner.links.get(server) else {
            return;
        };
        if link.health() == Health::Alive {
            return;
        }
        match client.probe(server).await {
            Ok(_) => {
                client.mark_alive(server, "an answered Status-Server probe");
                return;
            }
            Err(e) => {
                tracing::debug!(target: "aaa::radius", error = %e, "Status-Server probe unanswered");
            }
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.servers())
            .field("retransmit", &self.inner.retransmit)
            .field("dead_time", &self.inner.dead_time)
            .field("status_server", &self.inner.status_server)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RadiusServer;
    use std::collections::HashSet;

    #[test]
    fn ten_thousand_request_authenticators_are_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(random_authenticator().unwrap()));
        }
    }

    #[test]
    fn bind_addresses() {
        let b = |s: &str| bind_address(s.parse().unwrap()).to_string();
        assert_eq!(b("127.0.0.1:1812"), "127.0.0.1:0");
        assert_eq!(b("192.0.2.1:1812"), "0.0.0.0:0");
        assert_eq!(b("[::1]:1812"), "[::1]:0");
        assert_eq!(b("[2001:db8::1]:1812"), "[::]:0");
    }

    #[tokio::test]
    async fn identifiers_least_recently_used_first() {
        let config = RadiusConfig::new(vec![RadiusServer::new(
            "127.0.0.1:9".parse().unwrap(),
            "a-long-enough-shared-secret",
        )]);
        let client = Client::new(&config).unwrap();
        let link = &client.inner.links[0];
        let rt = tokio::runtime::Handle::current();
        let a = link.allocate(&rt).unwrap();
        let b = link.allocate(&rt).unwrap();
        assert_eq!((a.identifier, b.identifier), (0, 1));
        drop(a);
        // 0 was used last: 2 comes first.
        let held: Vec<_> = (0..221).map(|_| link.allocate(&rt).unwrap()).collect();
        assert_eq!(held.first().unwrap().identifier, 2);
        assert_eq!(held.last().unwrap().identifier, 222);
        let last = link.allocate(&rt).unwrap();
        assert_eq!(last.identifier, 223);
        let extra = link.allocate(&rt).unwrap();
        assert_eq!(extra.identifier, 224);
        assert_eq!(lock(&link.sockets).len(), 1);
        // 224 outstanding, 32 kept free (0 among them, the most recently used): the next one
        // opens a second socket rather than reuse an identifier that was just answered.
        let next = link.allocate(&rt).unwrap();
        assert_eq!(next.identifier, 0);
        assert_eq!(lock(&link.sockets).len(), 2);
        assert!(!Arc::ptr_eq(&next.shared, &last.shared));
        let stats = client.stats();
        assert_eq!((stats[0].sockets, stats[0].outstanding), (2, 225));
        drop((held, last, extra, next, b));
        assert_eq!(client.stats()[0].outstanding, 0);
    }

    #[test]
    fn needs_a_runtime() {
        let config = RadiusConfig::new(vec![RadiusServer::new(
            "127.0.0.1:9".parse().unwrap(),
            "a-long-enough-shared-secret",
        )]);
        assert!(matches!(
            Client::new(&config),
            Err(RadiusError::NoRuntime(_))
        ));
    }
}
