//! The fault schedule, and the hostile RADIUS impostor.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use testkit::radius::{MessageAuthenticator, Received, ReplySpec, Tamper};

/// How long Redis stays down after its SIGKILL.
pub(crate) const REDIS_DOWN: Duration = Duration::from_secs(2);
/// How long the primary FreeRADIUS stays stopped.
pub(crate) const PRIMARY_DOWN: Duration = Duration::from_secs(5);
/// How long the impostor holds the primary's address.
pub(crate) const HOSTILE_FOR: Duration = Duration::from_secs(8);

/// One step of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// SIGKILL Redis (as a crash).
    RedisKill,
    /// Start Redis again, same port and directory (its AOF is replayed).
    RedisStart,
    /// Stop the primary FreeRADIUS.
    PrimaryStop,
    /// Start the primary FreeRADIUS again, same port.
    PrimaryStart,
    /// Stop the primary FreeRADIUS and put the impostor on its address.
    HostileOn,
    /// Remove the impostor and start the primary FreeRADIUS again.
    HostileOff,
}

/// An action, at an offset from the start of the load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) at: Duration,
    pub(crate) action: Action,
}

/// The quiet time at the end of a run of `total`: no fault, so that every process can come
/// back to the primary and the books are taken on a settled system.
pub(crate) fn quiet(total: Duration) -> Duration {
    Duration::from_secs(15).max(total * 15 / 100)
}

/// The schedule for a run of `total` (at least a minute): one cycle per minute over all but the
/// quiet end. Every cycle has each fault once: Redis killed (down 2 s), the primary FreeRADIUS
/// stopped (5 s), the impostor on the primary's address (8 s). Odd cycles overlap them: Redis
/// dies while the primary is stopped, and again while the impostor answers.
pub(crate) fn schedule(total: Duration) -> Vec<Event> {
    let busy = total.saturating_sub(quiet(total));
    let cycles = u32::try_from((total.as_secs() / 60).max(1)).unwrap_or(1);
    let cycle = busy / cycles;
    let mut events = Vec::new();
    // A fault from `at` for `length`: its start and its end.
    let mut fault = |at: Duration, (on, off): (Action, Action), length: Duration| {
        events.push(Event { at, action: on });
        events.push(Event {
            at: at + length,
            action: off,
        });
    };
    let redis = (Action::RedisKill, Action::RedisStart);
    let primary = (Action::PrimaryStop, Action::PrimaryStart);
    let hostile = (Action::HostileOn, Action::HostileOff);
    for c in 0..cycles {
        let base = cycle * c;
        let frac = |pct: u32| base + cycle * pct / 100;
        if c % 2 == 0 {
            fault(frac(10), redis, REDIS_DOWN);
            fault(frac(33), primary, PRIMARY_DOWN);
            fault(frac(60), hostile, HOSTILE_FOR);
        } else {
            let stop = frac(10);
            fault(stop, primary, PRIMARY_DOWN);
            fault(stop + Duration::from_secs(1), redis, REDIS_DOWN);
            let impostor = frac(45);
            fault(impostor, hostile, HOSTILE_FOR);
            fault(impostor + Duration::from_secs(2), redis, REDIS_DOWN);
        }
    }
    events.sort_by_key(|e| e.at);
    events
}

/// The forged replies the impostor sends to every datagram it receives: each must be
/// discarded by the client (the check that catches it in brackets). None is a valid reply:
/// every one is an Access-Accept with Service-Type = Administrative-User, or an
/// Accounting-Response.
pub(crate) fn forged_replies(wrong_secret: &[u8]) -> Vec<ReplySpec> {
    let accept = ReplySpec::accept_admin;
    vec![
        // [Response Authenticator]
        accept().tamper(Tamper::ResponseAuthenticator),
        // [Message-Authenticator]
        accept().message_authenticator(MessageAuthenticator::Wrong),
        accept().message_authenticator(MessageAuthenticator::BadLength),
        accept().signed_with(wrong_secret),
        // [Message-Authenticator required: BlastRADIUS]
        accept().message_authenticator(MessageAuthenticator::Absent),
        // [one Message-Authenticator at most]
        accept().message_authenticator(MessageAuthenticator::Doubled),
        // [identifier / authenticators of that identifier]
        accept().tamper(Tamper::Identifier),
        // [Length]
        accept().tamper(Tamper::Truncated),
        accept().tamper(Tamper::LengthUnder20),
        accept().tamper(Tamper::LengthOver4096),
        // [attribute syntax]
        accept().tamper(Tamper::BadAttributeLength),
        accept().tamper(Tamper::ZeroLengthAttribute),
        // [source port] a correctly signed Accept, from another port
        accept().from_other_port(),
        // [code] a correctly signed Accounting-Response to an Access-Request
        ReplySpec::code(5),
    ]
}

/// What the impostor did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ImpostorStats {
    /// Datagrams received (requests and their retransmissions).
    pub(crate) received: u64,
    /// Forged replies sent.
    pub(crate) forged: u64,
}

/// A hostile RADIUS server on the primary's own address (its FreeRADIUS stopped), answering
/// every datagram with [`forged_replies`], signed with the primary's secret where it signs.
/// The replies are made by testkit's encoder ([`ReplySpec::encode`]), independent of the
/// client under test.
#[derive(Debug)]
pub(crate) struct Impostor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<ImpostorStats>>,
}

/// The impostor gives up after this long whatever happens.
const IMPOSTOR_LIMIT: Duration = Duration::from_secs(300);

impl Impostor {
    /// Binds `address` (retrying for 3 s: FreeRADIUS has just released it) and starts
    /// answering.
    pub(crate) fn start(address: SocketAddr, secret: &str) -> std::io::Result<Self> {
        let until = Instant::now() + Duration::from_secs(3);
        let socket = loop {
            match UdpSocket::bind(address) {
                Ok(s) => break s,
                Err(e) if Instant::now() < until => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let other = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let secret = secret.as_bytes().to_vec();
        let thread = std::thread::Builder::new()
            .name("impostor".into())
            .spawn(move || {
                let replies = forged_replies(b"not-the-shared-secret-of-the-primary");
                let started = Instant::now();
                let mut stats = ImpostorStats::default();
                let mut buf = vec![0u8; 4096];
                while !flag.load(Ordering::Relaxed) && started.elapsed() < IMPOSTOR_LIMIT {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    stats.received += 1;
                    let request = Received {
                        at: tokio::time::Instant::now(),
                        from,
                        bytes: buf.get(..n).unwrap_or_default().to_vec(),
                    };
                    for spec in &replies {
                        let bytes = spec.encode(&request, &secret);
                        let via = if spec.from_other_port {
                            &other
                        } else {
                            &socket
                        };
                        if via.send_to(&bytes, from).is_ok() {
                            stats.forged += 1;
                        }
                    }
                }
                stats
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops answering and releases the address.
    pub(crate) fn stop(mut self) -> ImpostorStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_at_least_once_and_a_quiet_end() {
        for minutes in [1u64, 3, 10] {
            let total = Duration::from_secs(minutes * 60);
            let s = schedule(total);
            for a in [
                Action::RedisKill,
                Action::RedisStart,
                Action::PrimaryStop,
                Action::PrimaryStart,
                Action::HostileOn,
                Action::HostileOff,
            ] {
                assert!(
                    s.iter().filter(|e| e.action == a).count() as u64 >= minutes,
                    "{a:?} in {minutes} min"
                );
            }
            let last = s.last().unwrap().at;
            assert!(
                last + quiet(total) <= total,
                "{minutes} min: last at {last:?}"
            );
            // Every kill is followed by its start before the next kill, and so on.
            let mut redis_up = true;
            let mut primary = 0; // 0 up, 1 stopped, 2 impostor
            for e in &s {
                match e.action {
                    Action::RedisKill => {
                        assert!(redis_up);
                        redis_up = false;
                    }
                    Action::RedisStart => {
                        assert!(!redis_up);
                        redis_up = true;
                    }
                    Action::PrimaryStop => {
                        assert_eq!(primary, 0);
                        primary = 1;
                    }
                    Action::PrimaryStart => {
                        assert_eq!(primary, 1);
                        primary = 0;
                    }
                    Action::HostileOn => {
                        assert_eq!(primary, 0);
                        primary = 2;
                    }
                    Action::HostileOff => {
                        assert_eq!(primary, 2);
                        primary = 0;
                    }
                }
            }
            assert!(redis_up && primary == 0);
        }
    }

    #[test]
    fn forged_replies_differ_from_a_valid_one() {
        let request = Received {
            at: tokio::time::Instant::now(),
            from: "127.0.0.1:9".parse().unwrap(),
            bytes: {
                let mut b = vec![1u8, 7, 0, 20];
                b.extend_from_slice(&[0x5a; 16]);
                b
            },
        };
        let valid = ReplySpec::accept_admin().encode(&request, b"s");
        for spec in forged_replies(b"other") {
            if spec.from_other_port {
                continue; // the same bytes, from the wrong port
            }
            assert_ne!(spec.encode(&request, b"s"), valid, "{spec:?}");
        }
    }
}
