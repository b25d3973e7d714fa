//! The stats API's opaque cursor: how many rows earlier pages held, and a
//! fingerprint of the query they belong to, as 32 hex digits.
//!
//! An offset, not a key: rows are aggregates whose order may be a metric,
//! and ClickHouse 18.16 cannot compare tuples of them; the order is total
//! (ties broken by every group key), so an offset is exact as long as the
//! data does not change between pages. The fingerprint refuses a cursor
//! replayed on another query, where its offset would mean nothing.

/// The cursor after `offset` rows of the query with `fingerprint`.
pub fn encode(offset: u64, fingerprint: [u8; 8]) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&offset.to_be_bytes());
    bytes[8..].copy_from_slice(&fingerprint);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The offset in `cursor`, if it is one this API made for the query with
/// `fingerprint`.
pub fn decode(cursor: &str, fingerprint: [u8; 8]) -> Option<u64> {
    if cursor.len() != 32 || !cursor.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        // Two hex digits, checked above.
        *b = u8::from_str_radix(&cursor[2 * i..2 * i + 2], 16).ok()?;
    }
    let (offset, print) = bytes.split_at(8);
    if print != fingerprint {
        return None;
    }
    Some(u64::from_be_bytes(offset.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINT: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn check(cursor: &str, expected: Option<u64>) {
        assert_eq!(decode(cursor, PRINT), expected, "{cursor}");
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        check(&encode(0, PRINT), Some(0));
        check(&encode(1000, PRINT), Some(1000));
        check(&encode(u64::MAX, PRINT), Some(u64::MAX));
        check(&encode(5, [0; 8]), None);
        check("", None);
        check("zz", None);
        check(&encode(5, PRINT)[1..], None);
        check(&format!("{}0", encode(5, PRINT)), None);
        check(&encode(5, PRINT).replace('0', "g"), None);
    }
}
