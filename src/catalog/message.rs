//! The numbered change message: its wire format and how it is published.
//!
//! Every write numbers its change with a counter in Redis and publishes
//! `{number}|{change json}` on the change channel, in the same script as
//! the write itself and only once the write succeeded, so the number and
//! the message cannot part and no node hears of a change that is not
//! stored. The store's scripts start with `publish_lua!`; the change
//! channel reads messages with `parse_message`. The format is written down
//! here only.
//!
//! Kept apart from [`super::change`] because it needs the `redis` crate,
//! and the route cache, which imports `change`, must not.

use super::change::Change;

/// Lua defining `publish(counter, channel, change)`: numbers a change and
/// publishes it as `{number}|{json}`, returning the number. Every script
/// that writes the catalog starts with it, so the message format is written
/// down here only.
macro_rules! publish_lua {
    () => {
        "local function publish(counter, channel, change) \
         local v = redis.call('INCR', counter) \
         redis.call('PUBLISH', channel, v .. '|' .. change) \
         return v end\n"
    };
}
pub(super) use publish_lua;

/// Splits a change message into its number and change.
pub(super) fn parse_message(bytes: &[u8]) -> Option<(u64, Change)> {
    let bar = bytes.iter().position(|&b| b == b'|')?;
    let v = std::str::from_utf8(&bytes[..bar]).ok()?.parse().ok()?;
    let change = serde_json::from_slice(&bytes[bar + 1..]).ok()?;
    Some((v, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_messages_parse() {
        let (v, ch) = parse_message(br#"42|{"kind":"link","id":5,"data":null}"#).unwrap();
        assert_eq!(v, 42);
        assert!(matches!(ch, Change::Link { id: 5, data: None }));
        for bad in [&b"{}"[..], b"x|{}", b"7|not json", b"", b"|"] {
            assert!(parse_message(bad).is_none(), "{bad:?}");
        }
    }
}
