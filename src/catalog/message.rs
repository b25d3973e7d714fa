//! The numbered change message: its wire format and how it is published.
//!
//! Every write numbers its change with a counter in Redis and publishes
//! `{number}|{change json}` on the change channel, in the same script or
//! transaction as the write itself, so the number and the message cannot
//! part. The store writes messages with `publish` (or `publish_lua!`
//! inside its own scripts); the change channel reads them with
//! `parse_message`. The format is written down here only.
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

/// Numbers a change and publishes it, atomically.
const PUBLISH_SCRIPT: &str = concat!(publish_lua!(), "return publish(KEYS[1], KEYS[2], ARGV[1])");

/// Adds "number `change` with `counter` and publish it on `channel`" to a
/// transaction.
pub(super) fn publish(pipe: &mut redis::Pipeline, counter: &str, channel: &str, change: String) {
    pipe.cmd("EVAL")
        .arg(PUBLISH_SCRIPT)
        .arg(2)
        .arg(counter)
        .arg(channel)
        .arg(change)
        .ignore();
}

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
