//! Partner API keys: random secrets shown once, kept only as digests.
//!
//! A key is `tep_` and 44 base62 characters (256 random bits). It is
//! stored as its SHA-256 digest, so a copy of Redis holds nothing that
//! opens the API. SHA-256 without salt or stretching is enough here: the
//! secret is random and long, so there is no dictionary to try it against.
//! Lookups go by digest; no secret is ever compared byte by byte.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What every key starts with: tells a partner key apart from the admin
/// token in logs and secret scanners.
pub const KEY_PREFIX: &str = "tep_";

/// How many characters of a key are kept in the clear to tell keys apart
/// in listings (the prefix and 4 more: 24 bits, too few to guess from).
const HINT_LEN: usize = KEY_PREFIX.len() + 4;

/// A stored key, as the admin lists it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyRecord {
    /// Assigned by the service; names the key in `DELETE`.
    pub id: u64,
    /// Whose data it opens.
    pub partner_id: u64,
    /// The admin's note (what it is for), possibly empty.
    #[serde(default)]
    pub label: String,
    /// The key's first characters, to tell keys apart.
    pub hint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// A fresh random key.
pub fn generate() -> String {
    let [a, b]: [u128; 2] = rand::random();
    format!(
        "{KEY_PREFIX}{:0>22}{:0>22}",
        base62::encode(a),
        base62::encode(b)
    )
}

/// The stored form of `secret`: its SHA-256 digest, in lower-case hex.
pub fn digest(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in d {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The characters of `secret` kept in the clear.
pub fn hint(secret: &str) -> String {
    secret.chars().take(HINT_LEN).collect()
}

/// The key of an `Authorization: Bearer <key>` header value; `None` when
/// the header is not a bearer credential of plausible shape (nothing worth
/// a lookup).
pub fn bearer(header: &[u8]) -> Option<&str> {
    let key = std::str::from_utf8(header.strip_prefix(b"Bearer ")?).ok()?;
    let plausible = key.starts_with(KEY_PREFIX)
        && key.len() <= 128
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric());
    plausible.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_of_one_shape() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        for k in [&a, &b] {
            assert_eq!(k.len(), KEY_PREFIX.len() + 44, "{k}");
            assert_eq!(bearer(format!("Bearer {k}").as_bytes()), Some(k.as_str()));
        }
        assert_eq!(hint(&a).len(), 8);
        assert!(a.starts_with(&hint(&a)));
    }

    #[test]
    fn digests_are_sha256_hex() {
        // printf %s abc | sha256sum
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_headers() {
        for (header, expected) in [
            ("Bearer tep_abc123", Some("tep_abc123")),
            ("Bearer test-admin-token", None),
            ("bearer tep_abc", None),
            ("Bearer tep_a/b", None),
            ("Basic tep_abc", None),
            ("tep_abc", None),
            ("", None),
        ] {
            assert_eq!(bearer(header.as_bytes()), expected, "{header:?}");
        }
        let long = format!("Bearer tep_{}", "a".repeat(200));
        assert_eq!(bearer(long.as_bytes()), None);
    }
}
