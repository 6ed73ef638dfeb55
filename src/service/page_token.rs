//! Opaque List page tokens, bound by a keyed MAC to the query that made them.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use crate::domain::Timestamp;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const PAYLOAD_LEN: usize = 1 + 8 + 16;

/// The query fields a page token is bound to.
pub(super) struct QueryBinding<'a> {
    /// The owner filter, empty for every owner.
    pub owner: &'a str,
    /// Whether revoked tokens are included.
    pub include_revoked: bool,
}

/// Encodes the position after `(created_at, id)` for `query`.
pub(super) fn encode(
    key: &[u8; 32],
    query: &QueryBinding<'_>,
    created_at: Timestamp,
    id: Uuid,
) -> String {
    let mut bytes = Vec::with_capacity(PAYLOAD_LEN + MAC_LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(&created_at.as_micros().to_be_bytes());
    bytes.extend_from_slice(id.as_bytes());
    let mac = mac(key, query, &bytes);
    bytes.extend_from_slice(&mac);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a page token made by [`encode`] for the same query.
///
/// Returns `None` for any token that was not made for this query by a
/// server with the same key, so a caller cannot forge a position or reuse a
/// token across owners.
pub(super) fn decode(
    key: &[u8; 32],
    query: &QueryBinding<'_>,
    token: &str,
) -> Option<(Timestamp, Uuid)> {
    if token.len() > 64 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() != PAYLOAD_LEN + MAC_LEN || bytes[0] != VERSION {
        return None;
    }
    let (payload, given_mac) = bytes.split_at(PAYLOAD_LEN);
    let expected = blake3::Hash::from_bytes(pad(mac(key, query, payload)));
    if expected != blake3::Hash::from_bytes(pad(given_mac.try_into().ok()?)) {
        return None;
    }
    let created_at = Timestamp::from_micros(i64::from_be_bytes(payload[1..9].try_into().ok()?))?;
    let id = Uuid::from_slice(&payload[9..]).ok()?;
    Some((created_at, id))
}

fn mac(key: &[u8; 32], query: &QueryBinding<'_>, payload: &[u8]) -> [u8; MAC_LEN] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(&(query.owner.len() as u64).to_be_bytes());
    hasher.update(query.owner.as_bytes());
    hasher.update(&[u8::from(query.include_revoked)]);
    hasher.update(payload);
    let mut mac = [0u8; MAC_LEN];
    mac.copy_from_slice(&hasher.finalize().as_bytes()[..MAC_LEN]);
    mac
}

/// Widens a MAC so that `blake3::Hash` compares it in constant time.
fn pad(mac: [u8; MAC_LEN]) -> [u8; 32] {
    let mut wide = [0u8; 32];
    wide[..MAC_LEN].copy_from_slice(&mac);
    wide
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [9; 32];

    fn query(owner: &str) -> QueryBinding<'_> {
        QueryBinding {
            owner,
            include_revoked: false,
        }
    }

    #[test]
    fn token_round_trips() {
        let time = Timestamp::from_unix(1_800_000_000, 5_000).unwrap();
        let id = Uuid::now_v7();
        let token = encode(&KEY, &query("u1"), time, id);
        assert_eq!(decode(&KEY, &query("u1"), &token), Some((time, id)));
    }

    #[test]
    fn token_is_bound_to_query() {
        let time = Timestamp::from_unix(1_800_000_000, 0).unwrap();
        let token = encode(&KEY, &query("u1"), time, Uuid::now_v7());
        assert_eq!(decode(&KEY, &query("u2"), &token), None);
        let with_revoked = QueryBinding {
            owner: "u1",
            include_revoked: true,
        };
        assert_eq!(decode(&KEY, &with_revoked, &token), None);
        assert_eq!(decode(&[8; 32], &query("u1"), &token), None);
    }

    #[test]
    fn garbage_is_rejected() {
        for token in ["", "x", "!!!!", &"A".repeat(500)] {
            assert_eq!(decode(&KEY, &query("u1"), token), None, "{token}");
        }
    }
}
