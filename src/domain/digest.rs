//! Keyed BLAKE3 digests of secrets: the only form in which a secret is stored.

use std::fmt;

use zeroize::Zeroizing;

/// Length of the hashing key and of a digest, in bytes.
pub const KEY_LEN: usize = 32;

/// The 32-byte server secret that keys the digest. `Debug` prints a placeholder.
#[derive(Clone)]
pub struct HashingKey(Zeroizing<[u8; KEY_LEN]>);

impl HashingKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses 64 hexadecimal characters, ignoring surrounding whitespace.
    ///
    /// # Errors
    ///
    /// Returns a message that gives the expected form and never the value.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text.trim(), bytes.as_mut()).map_err(|_| {
            format!(
                "the hashing key must be {} hexadecimal characters ({KEY_LEN} bytes)",
                KEY_LEN * 2
            )
        })?;
        Ok(Self(bytes))
    }

    /// Returns the key as 64 lowercase hexadecimal characters, to store it.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    /// Derives a subkey for another purpose, so the digest key is never
    /// reused directly for anything else.
    pub fn derive(&self, context: &str) -> [u8; KEY_LEN] {
        blake3::derive_key(context, self.0.as_ref())
    }
}

impl fmt::Debug for HashingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashingKey(<redacted>)")
    }
}

/// A keyed digest of a secret. `Debug` prints a placeholder, because a digest
/// and the key together would let anyone test guesses offline.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest([u8; KEY_LEN]);

impl Digest {
    /// Wraps digest bytes read from storage.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Returns the digest bytes, for the database lookup.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(<redacted>)")
    }
}

/// Computes digests of secrets under the server's current hashing key, and
/// under previous keys while a rotation is in progress.
#[derive(Debug, Clone)]
pub struct TokenHasher {
    key: HashingKey,
    previous: Vec<HashingKey>,
}

impl TokenHasher {
    /// Creates a hasher with `key` and no previous keys.
    pub fn new(key: HashingKey) -> Self {
        Self::with_previous(key, Vec::new())
    }

    /// Creates a hasher with the current `key` and `previous` keys, whose
    /// digests are still accepted and replaced on first use.
    pub fn with_previous(key: HashingKey, previous: Vec<HashingKey>) -> Self {
        Self { key, previous }
    }

    /// Returns the keyed BLAKE3 digest of the whole token text under the current key.
    pub fn digest(&self, token: &str) -> Digest {
        keyed_digest(&self.key, token)
    }

    /// Returns the digests under each previous key, oldest configuration order kept.
    pub fn previous_digests(&self, token: &str) -> Vec<Digest> {
        self.previous
            .iter()
            .map(|key| keyed_digest(key, token))
            .collect()
    }

    /// Returns the key, to derive subkeys for other purposes.
    pub fn key(&self) -> &HashingKey {
        &self.key
    }
}

fn keyed_digest(key: &HashingKey, token: &str) -> Digest {
    Digest(*blake3::keyed_hash(&key.0, token.as_bytes()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_key() {
        let first = TokenHasher::new(HashingKey::from_bytes([1; 32]));
        let second = TokenHasher::new(HashingKey::from_bytes([2; 32]));
        assert_ne!(first.digest("tkn_x"), second.digest("tkn_x"));
        assert_eq!(first.digest("tkn_x"), first.digest("tkn_x"));
    }

    #[test]
    fn hex_key_round_trips() {
        let key = HashingKey::from_bytes([0xab; 32]);
        let parsed = HashingKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(parsed.0.as_ref(), key.0.as_ref());
    }

    #[test]
    fn short_hex_key_is_rejected() {
        let error = HashingKey::from_hex("abcd").unwrap_err();
        assert!(error.contains("64 hexadecimal characters"));
        assert!(!error.contains("abcd"));
    }

    #[test]
    fn debug_output_is_redacted() {
        let key = HashingKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), "HashingKey(<redacted>)");
        let digest = TokenHasher::new(key).digest("tkn_x");
        assert_eq!(format!("{digest:?}"), "Digest(<redacted>)");
    }
}
