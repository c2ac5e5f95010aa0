//! The account-file parser never panics and never accepts garbage (the same inputs as the
//! `account_file` fuzz target, as property tests that run in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use aaa_local::__fuzz::parse_account_file;
use proptest::prelude::*;

const VALID: &str = "version = 1\n\n[[account]]\nname = \"admin\"\nlevel = \"admin\"\nenabled = true\nfailures = 0\nhash = \"$argon2id$v=19$m=19456,t=2,p=1$bWFkZSB1cCBzYWx0$GbkV9sNB3f3cMK2bbE1hRoXDLKnaD0x6sCa6j6G2dWk\"\n";

/// Parsed (at most the one account the inputs can hold) or refused with an error naming the
/// file: never anything else.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    match parse_account_file(bytes) {
        Ok(n) => prop_assert!(n <= 1, "{n} accounts from {} bytes", bytes.len()),
        Err(e) => prop_assert!(e.to_string().contains("fuzz/accounts.toml"), "{e}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes)?;
    }

    /// One byte of a valid file changed: parsed or refused naming the file, never a panic.
    #[test]
    fn one_byte_changed(pos in 0..VALID.len(), byte in any::<u8>()) {
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[pos] = byte;
        check(&bytes)?;
    }

    /// A valid file cut anywhere.
    #[test]
    fn truncated(len in 0..VALID.len()) {
        check(&VALID.as_bytes()[..len])?;
    }

    /// TOML-shaped noise.
    #[test]
    fn toml_shaped(text in "(version = [0-9]{1,3}\n)?(\\[\\[account\\]\\]\n(name|level|hash|enabled|failures|locked_until_unix_ms|x) = (\"[a-z$=,0-9]{0,20}\"|[0-9]{1,20}|true|-1)\n){0,6}") {
        check(text.as_bytes())?;
    }
}

#[test]
fn the_valid_file_parses() {
    assert_eq!(parse_account_file(VALID.as_bytes()).unwrap(), 1);
}
