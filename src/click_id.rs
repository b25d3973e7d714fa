//! Signed, time-ordered click ids.
//!
//! A click id is 32 base62 characters: 22 encode a 128-bit payload, 10 a
//! 56-bit HMAC-SHA256 tag of it. The payload, most significant bits first:
//!
//! | bits | field |
//! | --- | --- |
//! | 42 | milliseconds since 2024-01-01 UTC (good until 2163) |
//! | 16 | node number, random per process |
//! | 22 | sequence number, per process |
//! | 40 | link id |
//! | 8  | key id: which secret signed it |
//!
//! Base62 here uses the ASCII-ordered alphabet at a fixed width, so ids sort
//! as strings in time order. The tag makes every id verifiable with no
//! lookup: a forged or altered id fails [`ClickIdCodec::verify`]. The key id
//! lets a rotated-out secret (`previous_secrets`) keep verifying old ids.

use std::sync::atomic::{AtomicU32, Ordering};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of every click id.
pub const CLICK_ID_LEN: usize = 32;
/// Milliseconds from the Unix epoch to 2024-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
/// The largest link id a click id can carry.
pub const MAX_LINK_ID: u64 = (1 << 40) - 1;

const PAYLOAD_CHARS: usize = 22;
const TAG_CHARS: usize = 10;
const TAG_BYTES: usize = 7;
const _: () = assert!(PAYLOAD_CHARS + TAG_CHARS == CLICK_ID_LEN);
const SEQ_MASK: u32 = (1 << 22) - 1;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a verified click id says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickInfo {
    /// Unix milliseconds of the click.
    pub ts_ms: u64,
    /// The node that issued it.
    pub node: u16,
    /// Its sequence number on that node.
    pub seq: u32,
    /// The link that was clicked.
    pub link_id: u64,
    /// The key that signed it.
    pub key_id: u8,
}

/// Why a click id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClickIdError {
    /// Not 32 base62 characters.
    #[error("click id is malformed")]
    Malformed,
    /// Signed by no key this process knows.
    #[error("click id was signed by an unknown key")]
    UnknownKey,
    /// The tag does not match: forged or altered.
    #[error("click id signature does not match")]
    BadSignature,
}

/// A click id on the stack, so issuing one allocates nothing.
#[derive(Clone, Copy)]
pub struct ClickIdBuf([u8; CLICK_ID_LEN]);

impl ClickIdBuf {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // The buffer only ever holds ALPHABET bytes, which are ASCII.
        std::str::from_utf8(&self.0).expect("click id bytes are ASCII")
    }
}

impl std::fmt::Debug for ClickIdBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Key {
    id: u8,
    /// The keyed HMAC state, cloned per use so the key schedule runs once.
    mac: Hmac<Sha256>,
}

/// Issues and verifies click ids for one process.
pub struct ClickIdCodec {
    /// The first key signs; all of them verify.
    keys: Vec<Key>,
    node: u16,
    /// Distinguishes ids issued in the same millisecond; wraps at 2^22.
    seq: AtomicU32,
}

impl ClickIdCodec {
    /// A codec signing with `secret` and also accepting ids signed with any
    /// of `previous`. `node` tells nodes apart (random per process is fine).
    pub fn new(secret: &[u8], previous: &[&[u8]], node: u16) -> Self {
        let keys = std::iter::once(secret)
            .chain(previous.iter().copied())
            .map(|s| Key {
                id: Sha256::digest(s)[0],
                mac: <Hmac<Sha256> as Mac>::new_from_slice(s)
                    .expect("HMAC takes keys of any length"),
            })
            .collect();
        ClickIdCodec {
            keys,
            node,
            seq: AtomicU32::new(rand::random::<u32>() & SEQ_MASK),
        }
    }

    /// A new click id for `link_id` at Unix millisecond `now_ms`.
    pub fn issue(&self, link_id: u64, now_ms: u64) -> ClickIdBuf {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) & SEQ_MASK;
        let key = &self.keys[0];
        let payload = pack(&ClickInfo {
            ts_ms: now_ms,
            node: self.node,
            seq,
            link_id,
            key_id: key.id,
        });
        let mut out = [0u8; CLICK_ID_LEN];
        encode_fixed(payload, &mut out[..PAYLOAD_CHARS]);
        encode_fixed(tag(&key.mac, payload) as u128, &mut out[PAYLOAD_CHARS..]);
        ClickIdBuf(out)
    }

    /// Checks `id`'s signature and returns what it carries.
    pub fn verify(&self, id: &str) -> Result<ClickInfo, ClickIdError> {
        let b = id.as_bytes();
        if b.len() != CLICK_ID_LEN {
            return Err(ClickIdError::Malformed);
        }
        let payload = decode_fixed(&b[..PAYLOAD_CHARS]).ok_or(ClickIdError::Malformed)?;
        let given = decode_fixed(&b[PAYLOAD_CHARS..]).ok_or(ClickIdError::Malformed)?;
        let info = unpack(payload);
        let mut known = false;
        for key in self.keys.iter().filter(|k| k.id == info.key_id) {
            known = true;
            let expected = tag(&key.mac, payload) as u128;
            // The tag must not leak through timing: no early exit at the
            // first differing bit.
            if bool::from(expected.ct_eq(&given)) {
                return Ok(info);
            }
        }
        Err(if known {
            ClickIdError::BadSignature
        } else {
            ClickIdError::UnknownKey
        })
    }
}

fn pack(i: &ClickInfo) -> u128 {
    let ts = (i.ts_ms.saturating_sub(EPOCH_MS) & ((1 << 42) - 1)) as u128;
    (ts << 86)
        | ((i.node as u128) << 70)
        | (((i.seq & SEQ_MASK) as u128) << 48)
        | (((i.link_id & MAX_LINK_ID) as u128) << 8)
        | i.key_id as u128
}

fn unpack(p: u128) -> ClickInfo {
    ClickInfo {
        ts_ms: (p >> 86) as u64 + EPOCH_MS,
        node: (p >> 70) as u16,
        seq: ((p >> 48) as u32) & SEQ_MASK,
        link_id: ((p >> 8) as u64) & MAX_LINK_ID,
        key_id: p as u8,
    }
}

fn tag(mac: &Hmac<Sha256>, payload: u128) -> u64 {
    let mut m = mac.clone();
    m.update(&payload.to_be_bytes());
    let out = m.finalize().into_bytes();
    let mut t = [0u8; 8];
    t[1..].copy_from_slice(&out[..TAG_BYTES]);
    u64::from_be_bytes(t)
}

/// 62^10, the largest power of 62 below 2^64.
const P62_10: u128 = 839_299_365_868_340_224;

/// Writes `n` into `out` as base62, left-padded with `0` to `out.len()`.
///
/// u128 division is a slow library call, so it runs once per ten digits;
/// the digits themselves come from u64 arithmetic.
fn encode_fixed(mut n: u128, out: &mut [u8]) {
    for chunk in out.rchunks_mut(10) {
        let mut part = (n % P62_10) as u64;
        n /= P62_10;
        for slot in chunk.iter_mut().rev() {
            *slot = ALPHABET[(part % 62) as usize];
            part /= 62;
        }
    }
}

/// Reads fixed-width base62; `None` on a foreign character or overflow.
fn decode_fixed(s: &[u8]) -> Option<u128> {
    let mut n: u128 = 0;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        n = n.checked_mul(62)?.checked_add(d as u128)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_790_000_000_123;

    fn codec() -> ClickIdCodec {
        ClickIdCodec::new(
            b"current-secret-0123456789",
            &[b"old-secret-0123456789"],
            77,
        )
    }

    #[test]
    fn round_trip_carries_link_time_and_node() {
        let c = codec();
        let id = c.issue(123_456, NOW);
        assert_eq!(id.as_str().len(), CLICK_ID_LEN);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        let info = c.verify(id.as_str()).unwrap();
        assert_eq!(info.link_id, 123_456);
        assert_eq!(info.ts_ms, NOW);
        assert_eq!(info.node, 77);
    }

    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let c = codec();
        let mut ids: Vec<String> = (0..10_000u64)
            .map(|i| c.issue(1, NOW + i / 10).as_str().to_string())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "duplicate ids issued");
        let first = ids.remove(0);
        let last = ids.pop().unwrap();
        assert!(first < last, "later id must sort after earlier one");
    }

    #[test]
    fn tampered_ids_are_rejected() {
        let c = codec();
        let id = c.issue(42, NOW).as_str().to_string();
        // Every single-character change anywhere in the id must fail.
        for pos in 0..CLICK_ID_LEN {
            let mut b = id.clone().into_bytes();
            b[pos] = if b[pos] == b'a' { b'b' } else { b'a' };
            let altered = String::from_utf8(b).unwrap();
            assert!(
                c.verify(&altered).is_err(),
                "altered at {pos} accepted: {altered}"
            );
        }
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let c = codec();
        let good = c.issue(1, NOW).as_str().to_string();
        let cases: &[(&str, ClickIdError)] = &[
            ("", ClickIdError::Malformed),
            ("abc", ClickIdError::Malformed),
            (&good[..31], ClickIdError::Malformed),
            ("0123456789012345678901234567890!", ClickIdError::Malformed),
            ("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", ClickIdError::Malformed),
        ];
        for (input, expected) in cases {
            assert_eq!(c.verify(input).unwrap_err(), *expected, "{input:?}");
        }
        let long = format!("{good}0");
        assert_eq!(c.verify(&long).unwrap_err(), ClickIdError::Malformed);
    }

    #[test]
    fn another_secret_cannot_forge() {
        let forger = ClickIdCodec::new(b"attacker-secret-0123456789", &[], 77);
        let forged = forger.issue(42, NOW);
        assert!(codec().verify(forged.as_str()).is_err());
    }

    #[test]
    fn rotated_secret_still_verifies_old_ids() {
        let old = ClickIdCodec::new(b"old-secret-0123456789", &[], 1);
        let id = old.issue(9, NOW);
        let info = codec().verify(id.as_str()).unwrap();
        assert_eq!(info.link_id, 9);
        let dropped = ClickIdCodec::new(b"current-secret-0123456789", &[], 1);
        assert!(dropped.verify(id.as_str()).is_err());
    }

    #[test]
    fn fixed_base62_round_trips_extremes() {
        for n in [0u128, 1, 61, 62, u64::MAX as u128, u128::MAX] {
            let mut buf = [0u8; 22];
            encode_fixed(n, &mut buf);
            assert_eq!(decode_fixed(&buf), Some(n));
        }
    }
}
