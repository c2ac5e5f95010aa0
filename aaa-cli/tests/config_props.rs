//! The configuration parser never panics, and every refusal names the file and a line (the same
//! inputs as the `config` fuzz target, as property tests that run in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use aaa_cli::__fuzz::parse_config;
use proptest::prelude::*;

const VALID: &str = "[local]\naccounts = \"/var/lib/aaa/accounts.toml\"\nlockout_duration = \"5m\"\n[session]\nstore = \"redis://127.0.0.1:6379/\"\nidle_timeout = \"20m\"\nabsolute_timeout = \"off\"\n[radius]\ntimeout = \"1s\"\n[[radius.server]]\naddress = \"192.0.2.1:1812\"\nsecret = \"hunter2\"\n";

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(msg) = parse_config(text) {
        prop_assert!(msg.starts_with("fuzz.toml, line "), "{msg}");
        // (The secret is no one-character change of a field name: an unknown field is named.)
        prop_assert!(!msg.contains("hunter2"), "{msg}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_text(text in "\\PC{0,300}") {
        check(&text)?;
    }

    #[test]
    fn one_character_changed(pos in 0..VALID.len(), c in any::<char>()) {
        let mut text: Vec<char> = VALID.chars().collect();
        text[pos] = c;
        check(&text.into_iter().collect::<String>())?;
    }

    #[test]
    fn config_shaped(text in "(\\[(local|session|radius|x)\\]\n([a-z_]{1,20} = (\"[a-z0-9:/.]{0,16}\"|[0-9-]{1,5}|true)\n){0,4}){0,4}") {
        check(&text)?;
    }
}

#[test]
fn the_valid_config_parses() {
    parse_config(VALID).unwrap();
}
