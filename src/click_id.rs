//! Signed, time-ordered click ids that carry the click's verdicts.
//!
//! A click id is 32 base62 characters: 22 encode a 128-bit payload, 10 a
//! 59-bit seal. The payload, most significant bits first:
//!
//! | bits | field |
//! | --- | --- |
//! | 42 | milliseconds since 2024-01-01 UTC (good until 2163) |
//! | 16 | node number, random per process |
//! | 22 | sequence number, per process |
//! | 40 | link id |
//! | 8  | key id: which secret signed it |
//!
//! The seal, most significant bits first:
//!
//! | bits | field |
//! | --- | --- |
//! | 1  | reserved, always 0 (a seal using it is malformed) |
//! | 1  | flag `rate_limited`: the client IP was over its click rate |
//! | 1  | flag `bot`: the user agent or method made it a bot |
//! | 56 | tag: HMAC-SHA256 of the payload's 16 big-endian bytes, followed by one byte holding the flags when any is set, cut to 7 bytes |
//!
//! Base62 here uses the ASCII-ordered alphabet at a fixed width, so ids sort
//! as strings in time order. The tag makes every id verifiable with no
//! lookup: a forged or altered id fails [`ClickIdCodec::verify`]. The key id
//! lets a rotated-out secret (`previous_secrets`) keep verifying old ids.
//!
//! The flags travel in the id because attribution must decide on a
//! conversion without waiting for the click's row to reach ClickHouse. They
//! live in the seal rather than the payload because every payload bit is
//! spoken for: time sorts and expires ids; node and sequence make ids unique
//! (two bits fewer of sequence would make two processes that drew the same
//! node number four times likelier to collide); 40 bits of link id are the
//! catalog's id space; and the key id is a byte of SHA-256 of the secret,
//! not a small index, so its low bits are set in ids already issued. Ten
//! base62 characters, though, hold 62^10 > 2^59 values, and a 56-bit tag
//! left the top three bits of every seal ever issued at 0: the flags take two
//! of them. No field shrinks, the tag keeps its 56 bits, the flags are signed
//! (flipping one changes the signed message, so the tag no longer matches),
//! and they sit after the payload, so they do not disturb the time order.
//!
//! Compatibility needs no version marker: an id with no flag set is, byte for
//! byte, what the layout without flags issued for the same click, so ids
//! handed out before the flags existed verify unchanged and read as neither
//! bot nor rate limited. An id with a flag set has a seal of 2^56 or more,
//! which no earlier version issued and which an earlier verifier rejects
//! (its tag comparison fails) rather than reading it as unflagged.

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
const SEAL_CHARS: usize = 10;
const TAG_BYTES: usize = 7;
const TAG_BITS: u32 = 8 * TAG_BYTES as u32;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Seal bits above the tag that carry flags; the one above them is reserved.
const FLAG_BITS: u32 = 2;
const _: () = assert!(PAYLOAD_CHARS + SEAL_CHARS == CLICK_ID_LEN);
// Every seal, reserved bit included, fits in the seal's characters.
const _: () = assert!((1u128 << (TAG_BITS + FLAG_BITS + 1)) <= P62_10);
const SEQ_MASK: u32 = (1 << 22) - 1;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The verdicts on a click that decide whether it can ever be billed,
/// signed into its id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClickFlags {
    /// The bot detector judged the request a bot.
    pub bot: bool,
    /// The client IP was over its click rate limit.
    pub rate_limited: bool,
}

impl ClickFlags {
    /// The flags as seal bits, `bot` lowest; 0 when none is set.
    fn bits(self) -> u8 {
        self.bot as u8 | (self.rate_limited as u8) << 1
    }

    fn from_bits(bits: u8) -> Self {
        ClickFlags {
            bot: bits & 1 != 0,
            rate_limited: bits & 2 != 0,
        }
    }
}

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
    /// The verdicts on the click; all false for ids issued before ids
    /// carried them.
    pub flags: ClickFlags,
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

    /// A new click id for `link_id` at Unix millisecond `now_ms`, carrying
    /// the click's `flags`.
    pub fn issue(&self, link_id: u64, now_ms: u64, flags: ClickFlags) -> ClickIdBuf {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) & SEQ_MASK;
        let key = &self.keys[0];
        let payload = pack(&ClickInfo {
            ts_ms: now_ms,
            node: self.node,
            seq,
            link_id,
            key_id: key.id,
            flags,
        });
        let bits = flags.bits();
        let seal = (bits as u64) << TAG_BITS | tag(&key.mac, payload, bits);
        let mut out = [0u8; CLICK_ID_LEN];
        encode_fixed(payload, &mut out[..PAYLOAD_CHARS]);
        encode_fixed(seal as u128, &mut out[PAYLOAD_CHARS..]);
        ClickIdBuf(out)
    }

    /// Checks `id`'s signature and returns what it carries.
    pub fn verify(&self, id: &str) -> Result<ClickInfo, ClickIdError> {
        let b = id.as_bytes();
        if b.len() != CLICK_ID_LEN {
            return Err(ClickIdError::Malformed);
        }
        let payload = decode_fixed(&b[..PAYLOAD_CHARS]).ok_or(ClickIdError::Malformed)?;
        let seal = decode_fixed(&b[PAYLOAD_CHARS..]).ok_or(ClickIdError::Malformed)?;
        if seal >> (TAG_BITS + FLAG_BITS) != 0 {
            return Err(ClickIdError::Malformed);
        }
        let bits = (seal >> TAG_BITS) as u8;
        let given = seal as u64 & TAG_MASK;
        let info = ClickInfo {
            flags: ClickFlags::from_bits(bits),
            ..unpack(payload)
        };
        let mut known = false;
        for key in self.keys.iter().filter(|k| k.id == info.key_id) {
            known = true;
            let expected = tag(&key.mac, payload, bits);
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

/// The Unix millisecond an id says it was issued at, without checking its
/// signature: for finding the stored click of an id verified earlier (its
/// row's `ts` is this time's second). `None` when `id` is not 32 base62
/// characters.
pub fn issued_ms(id: &str) -> Option<u64> {
    let b = id.as_bytes();
    if b.len() != CLICK_ID_LEN {
        return None;
    }
    decode_fixed(&b[..PAYLOAD_CHARS]).map(|p| unpack(p).ts_ms)
}

/// The payload of `i`; its flags go in the seal, not here.
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
        flags: ClickFlags::default(),
    }
}

/// The 56-bit tag of `payload` with flag bits `flags`.
///
/// With no flag set the signed message is the payload alone, exactly as
/// before ids carried flags, so those ids keep verifying; with any flag set
/// it is one byte longer, so no tag serves both a flagged and an unflagged
/// reading of the same payload.
fn tag(mac: &Hmac<Sha256>, payload: u128, flags: u8) -> u64 {
    let mut m = mac.clone();
    m.update(&payload.to_be_bytes());
    if flags != 0 {
        m.update(&[flags]);
    }
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
    const SECRET: &[u8] = b"current-secret-0123456789";
    const OLD_SECRET: &[u8] = b"old-secret-0123456789";
    const NONE: ClickFlags = ClickFlags {
        bot: false,
        rate_limited: false,
    };
    const ALL_FLAGS: [ClickFlags; 4] = [
        NONE,
        ClickFlags {
            bot: true,
            rate_limited: false,
        },
        ClickFlags {
            bot: false,
            rate_limited: true,
        },
        ClickFlags {
            bot: true,
            rate_limited: true,
        },
    ];

    fn codec() -> ClickIdCodec {
        ClickIdCodec::new(SECRET, &[OLD_SECRET], 77)
    }

    #[test]
    fn the_issue_time_reads_without_a_key() {
        let id = codec().issue(42, NOW, NONE);
        assert_eq!(issued_ms(id.as_str()), Some(NOW));
        assert_eq!(issued_ms("short"), None);
        assert_eq!(issued_ms(&"-".repeat(CLICK_ID_LEN)), None);
    }

    /// An id in the layout without flags, built apart from the codec: the
    /// payload packed by hand, the tag an HMAC of its 16 bytes alone.
    fn legacy_id(secret: &[u8], ts_ms: u64, node: u16, seq: u32, link_id: u64) -> String {
        let key_id = Sha256::digest(secret)[0];
        let payload = ((ts_ms - EPOCH_MS) as u128) << 86
            | (node as u128) << 70
            | (seq as u128) << 48
            | (link_id as u128) << 8
            | key_id as u128;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        mac.update(&payload.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut t = [0u8; 8];
        t[1..].copy_from_slice(&digest[..7]);
        let mut out = [0u8; CLICK_ID_LEN];
        encode_fixed(payload, &mut out[..PAYLOAD_CHARS]);
        encode_fixed(u64::from_be_bytes(t) as u128, &mut out[PAYLOAD_CHARS..]);
        String::from_utf8(out.to_vec()).unwrap()
    }

    /// `id` with its seal's bit `bit` flipped.
    fn flip_seal_bit(id: &str, bit: u32) -> String {
        let seal = decode_fixed(&id.as_bytes()[PAYLOAD_CHARS..]).unwrap() ^ (1 << bit);
        let mut out = id.as_bytes().to_vec();
        encode_fixed(seal, &mut out[PAYLOAD_CHARS..]);
        String::from_utf8(out).unwrap()
    }

    fn check(id: &str, expected: Result<(u64, u64, ClickFlags), ClickIdError>) {
        let got = codec().verify(id).map(|i| (i.ts_ms, i.link_id, i.flags));
        assert_eq!(got, expected, "{id}");
    }

    #[test]
    fn round_trip_carries_link_time_node_and_flags() {
        let c = codec();
        for flags in ALL_FLAGS {
            let id = c.issue(123_456, NOW, flags);
            assert_eq!(id.as_str().len(), CLICK_ID_LEN);
            assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
            let info = c.verify(id.as_str()).unwrap();
            assert_eq!(info.link_id, 123_456, "{flags:?}");
            assert_eq!(info.ts_ms, NOW, "{flags:?}");
            assert_eq!(info.node, 77, "{flags:?}");
            assert_eq!(info.flags, flags);
        }
    }

    #[test]
    fn flags_at_the_extremes_of_every_field() {
        let c = codec();
        for flags in ALL_FLAGS {
            for (link, ms) in [(0, EPOCH_MS), (MAX_LINK_ID, EPOCH_MS + (1 << 42) - 1)] {
                let id = c.issue(link, ms, flags);
                check(id.as_str(), Ok((ms, link, flags)));
            }
        }
    }

    #[test]
    fn a_flipped_flag_bit_fails_verification() {
        let c = codec();
        for flags in ALL_FLAGS {
            let id = c.issue(42, NOW, flags).as_str().to_string();
            // Setting or clearing a flag, or both, must not verify: a client
            // cannot turn a bot click into a billable one, or back.
            for mask in [1u32, 2, 3] {
                let mut altered = id.clone();
                for bit in 0..FLAG_BITS {
                    if mask & (1 << bit) != 0 {
                        altered = flip_seal_bit(&altered, TAG_BITS + bit);
                    }
                }
                check(&altered, Err(ClickIdError::BadSignature));
            }
            // The reserved bit is never set.
            let reserved = flip_seal_bit(&id, TAG_BITS + FLAG_BITS);
            check(&reserved, Err(ClickIdError::Malformed));
        }
    }

    #[test]
    fn ids_without_flags_still_verify() {
        // Issued by the layout without flags (from before ids carried them):
        // the second and third at the extremes of every field, the third
        // signed by the previous secret.
        let golden: &[(&str, (u64, u64))] = &[
            ("09RBkFxagdQMmm5qCb702A5GKEe0ilgd", (NOW, 123_456)),
            ("0000000000Mgde9B8Mc7Kw2KaPULzYwf", (EPOCH_MS, MAX_LINK_ID)),
            ("01kUztdGv2hhLHrDkApjVl0UiHVvJwmg", (1_720_000_000_000, 9)),
        ];
        for (id, (ms, link)) in golden {
            check(id, Ok((*ms, *link, NONE)));
        }
        let built: &[(&[u8], u64, u16, u32, u64)] = &[
            (SECRET, NOW, 77, 5, 123_456),
            (SECRET, EPOCH_MS, 0, 0, 0),
            (SECRET, NOW, u16::MAX, SEQ_MASK, MAX_LINK_ID),
            (OLD_SECRET, NOW + 1, 1, 1, 1),
        ];
        for &(secret, ms, node, seq, link) in built {
            let id = legacy_id(secret, ms, node, seq, link);
            check(&id, Ok((ms, link, NONE)));
            let info = codec().verify(&id).unwrap();
            assert_eq!((info.node, info.seq), (node, seq), "{id}");
        }
    }

    #[test]
    fn no_new_id_reads_differently_in_the_layout_without_flags() {
        let c = codec();
        for flags in ALL_FLAGS {
            let id = c.issue(42, NOW, flags);
            let info = c.verify(id.as_str()).unwrap();
            let legacy = legacy_id(SECRET, info.ts_ms, info.node, info.seq, info.link_id);
            let seal = decode_fixed(&id.as_str().as_bytes()[PAYLOAD_CHARS..]).unwrap();
            if flags == NONE {
                // The same click, the same id: one meaning in both layouts.
                assert_eq!(id.as_str(), legacy);
            } else {
                // A seal no id without flags ever had, so a verifier of that
                // layout rejects it instead of reading it as unflagged.
                assert_ne!(id.as_str(), legacy, "{flags:?}");
                assert!(seal >> TAG_BITS != 0, "{flags:?}");
                assert_eq!(id.as_str()[..PAYLOAD_CHARS], legacy[..PAYLOAD_CHARS]);
            }
        }
    }

    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let c = codec();
        let mut ids: Vec<String> = (0..10_000u64)
            .map(|i| {
                let flags = ALL_FLAGS[(i % 4) as usize];
                c.issue(1, NOW + i / 10, flags).as_str().to_string()
            })
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
        for flags in ALL_FLAGS {
            let id = c.issue(42, NOW, flags).as_str().to_string();
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
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let c = codec();
        let good = c.issue(1, NOW, NONE).as_str().to_string();
        let reserved = format!("{}zzzzzzzzzz", &good[..PAYLOAD_CHARS]);
        let long = format!("{good}0");
        let cases: &[(&str, ClickIdError)] = &[
            ("", ClickIdError::Malformed),
            ("abc", ClickIdError::Malformed),
            (&good[..31], ClickIdError::Malformed),
            (&long, ClickIdError::Malformed),
            ("0123456789012345678901234567890!", ClickIdError::Malformed),
            ("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", ClickIdError::Malformed),
            (&reserved, ClickIdError::Malformed),
        ];
        for (input, expected) in cases {
            check(input, Err(*expected));
        }
    }

    #[test]
    fn another_secret_cannot_forge() {
        let forger = ClickIdCodec::new(b"attacker-secret-0123456789", &[], 77);
        for flags in ALL_FLAGS {
            let forged = forger.issue(42, NOW, flags);
            assert!(codec().verify(forged.as_str()).is_err(), "{flags:?}");
        }
    }

    #[test]
    fn rotated_secret_still_verifies_old_ids() {
        let old = ClickIdCodec::new(OLD_SECRET, &[], 1);
        for flags in ALL_FLAGS {
            let id = old.issue(9, NOW, flags);
            check(id.as_str(), Ok((NOW, 9, flags)));
            let dropped = ClickIdCodec::new(SECRET, &[], 1);
            assert!(dropped.verify(id.as_str()).is_err());
        }
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
