//! The shared secret of a RADIUS server.

use std::fmt;

use zeroize::Zeroizing;

/// A RADIUS shared secret.
///
/// `Debug` prints `Secret(<redacted>)`; there is no `Display` and no accessor outside this
/// crate, so a secret cannot end up in a log line or an error message by accident. The bytes
/// are wiped from memory when the last copy is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// A secret from its bytes (usually the text of the configuration file).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether it is empty (an empty secret is refused by the configuration).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The bytes, for the hashes of the protocol only.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self::new(text.as_bytes())
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self::new(text.into_bytes())
    }
}

impl From<&[u8]> for Secret {
    fn from(bytes: &[u8]) -> Self {
        Self::new(bytes)
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::from("hunter2-hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s:#?}"), "Secret(<redacted>)");
        assert_eq!(s.len(), 23);
        assert!(!s.is_empty());
        assert!(Secret::from("").is_empty());
    }
}
