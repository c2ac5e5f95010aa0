#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Property tests: the reply decoder never panics and accepts nothing but an intact reply;
//! encoded requests always verify with an independent implementation.

use std::net::SocketAddr;

use aaa_radius::{Reply, Request, Secret};
use proptest::prelude::*;
use testkit::radius::{MessageAuthenticator, Received, ReplySpec, Tamper};

const SECRET: &[u8] = b"decoder-test-shared-secret";

fn request() -> Vec<u8> {
    let mut r = Request::access_request();
    r.add(1, "admin").unwrap().user_password(b"pw").unwrap();
    r.add(32, "nas").unwrap();
    r.encode(42, &[9; 16], &Secret::from(SECRET)).unwrap()
}

fn received(bytes: Vec<u8>) -> Received {
    Received {
        at: tokio::time::Instant::now(),
        from: SocketAddr::from(([127, 0, 0, 1], 1)),
        bytes,
    }
}

fn valid_reply(code: u8, attributes: Vec<(u8, Vec<u8>)>, ma_last: bool) -> Vec<u8> {
    let mut spec = ReplySpec::code(code);
    spec.attributes = attributes;
    if ma_last {
        spec = spec.message_authenticator(MessageAuthenticator::Last);
    }
    spec.tamper(Tamper::None)
        .encode(&received(request()), SECRET)
}

fn attributes() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec(
        (
            any::<u8>().prop_filter("not MA", |t| *t != 80),
            prop::collection::vec(any::<u8>(), 0..40),
        ),
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Arbitrary bytes, as a reply and as the request: no panic, never accepted.
    #[test]
    fn arbitrary_bytes_never_panic(
        datagram in prop::collection::vec(any::<u8>(), 0..4200),
        req in prop::collection::vec(any::<u8>(), 0..64),
        require in any::<bool>(),
    ) {
        let secret = Secret::from(SECRET);
        prop_assert!(Reply::verify(&datagram, &request(), &secret, require).is_err());
        let _ = Reply::verify(&datagram, &req, &secret, require);
    }

    /// Arbitrary headers on top of valid-looking attribute lists.
    #[test]
    fn arbitrary_header_and_attributes(
        header in prop::collection::vec(any::<u8>(), 20),
        attrs in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut datagram = header;
        datagram.extend_from_slice(&attrs);
        // A random Response Authenticator never verifies.
        prop_assert!(Reply::verify(&datagram, &request(), &Secret::from(SECRET), false).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A valid reply with any code and attributes verifies; with any byte changed before its
    /// Length it does not; changes past its Length (padding) do not matter.
    #[test]
    fn only_intact_replies_verify(
        code in prop::sample::select(vec![2u8, 3, 11]),
        attrs in attributes(),
        ma_last in any::<bool>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        padding in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let secret = Secret::from(SECRET);
        let good = valid_reply(code, attrs.clone(), ma_last);
        let reply = Reply::verify(&good, &request(), &secret, true).unwrap();
        prop_assert_eq!(reply.code().as_u8(), code);
        let got: Vec<(u8, Vec<u8>)> = reply
            .attributes()
            .filter(|(t, _)| *t != 80)
            .map(|(t, v)| (t, v.to_vec()))
            .collect();
        prop_assert_eq!(got, attrs);

        let mut padded = good.clone();
        padded.extend_from_slice(&padding);
        prop_assert!(Reply::verify(&padded, &request(), &secret, true).is_ok());

        let mut bad = good.clone();
        for (at, value) in edits {
            let i = at % bad.len();
            bad[i] = value;
        }
        let result = Reply::verify(&bad, &request(), &secret, false);
        prop_assert_eq!(result.is_ok(), bad == good);
    }

    /// Any request encodes, with the Message-Authenticator first and valid and the password
    /// recoverable, as checked by testkit's independent implementation.
    #[test]
    fn requests_round_trip(
        attrs in attributes(),
        password in prop::collection::vec(1u8..=255, 0..=128),
        identifier in any::<u8>(),
        authenticator in any::<[u8; 16]>(),
    ) {
        let mut r = Request::access_request();
        r.add(32, "nas").unwrap();
        for (t, v) in &attrs {
            // Not a second User-Password, CHAP-Password or State.
            if ![2, 3, 24].contains(t) {
                r.add(*t, v.clone()).unwrap();
            }
        }
        r.user_password(&password).unwrap();
        let bytes = r.encode(identifier, &authenticator, &Secret::from(SECRET)).unwrap();
        let rec = received(bytes.clone());
        prop_assert_eq!(rec.identifier(), identifier);
        prop_assert_eq!(rec.authenticator(), authenticator);
        prop_assert_eq!(&bytes[20..22], &[80u8, 18][..]);
        prop_assert!(rec.message_authenticator_ok(SECRET));
        prop_assert_eq!(rec.user_password(SECRET).unwrap(), password);
    }
}
