//! Partner API keys and offer access grants in the catalog's Redis.
//!
//! Layout, under the catalog's prefix:
//! - `pkeys` (hash: key digest → [`KeyRecord`] JSON): the lookup of every
//!   partner API request;
//! - `pkeys:partner:{id}` (hash: key id → digest): a partner's keys, for
//!   listing and revoking;
//! - `seq:pkey`: the key id counter;
//! - `access:partner:{id}` (hash: offer id → [`Grant`] JSON) and
//!   `access:offer:{id}` (hash: partner id → the same JSON): one grant
//!   seen from both sides.
//!
//! Each pair is written by one Lua script, so a key is never listed
//! without opening the API (or the other way round), and a grant reads
//! the same from the partner's and the offer's side.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::access::Grant;
use super::keys::{self, KeyRecord};
use crate::catalog::{now_rfc3339, Catalog, StoreError};

/// Stores key record ARGV[3] under digest ARGV[2] in KEYS[1] and the
/// digest under key id ARGV[1] in the partner's hash KEYS[2].
const CREATE_KEY_SCRIPT: &str = r#"
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"#;

/// Removes key id ARGV[1] from the partner's hash KEYS[2] and its digest
/// from KEYS[1]; 0 when the partner has no such key.
const REVOKE_KEY_SCRIPT: &str = r#"
local digest = redis.call('HGET', KEYS[2], ARGV[1])
if not digest then return 0 end
redis.call('HDEL', KEYS[1], digest)
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"#;

/// Writes grant JSON ARGV[3] as offer ARGV[1] in the partner's hash
/// KEYS[1] and as partner ARGV[2] in the offer's hash KEYS[2]. With
/// ARGV[4] = '1', only when the partner has no grant for the offer yet;
/// answers the grant stored before (nil when there was none).
const PUT_GRANT_SCRIPT: &str = r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and ARGV[4] == '1' then return old end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return old
"#;

/// Keys and grants over the catalog's Redis connection.
pub struct PartnerStore {
    /// The catalog's shared admin-side connection (a cheap handle).
    conn: ConnectionManager,
    /// The catalog's key prefix.
    prefix: String,
    /// Bounds every call, as for the catalog: an outage answers `503`.
    timeout: Duration,
}

impl PartnerStore {
    /// The store beside `catalog`, on its connection.
    pub fn new(catalog: &Catalog) -> PartnerStore {
        let (conn, prefix, timeout) = catalog.redis();
        PartnerStore {
            conn,
            prefix: prefix.to_string(),
            timeout,
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(StoreError::Unavailable("timed out".into())),
        }
    }

    fn keys_hash(&self) -> String {
        format!("{}pkeys", self.prefix)
    }

    fn partner_keys(&self, partner_id: u64) -> String {
        format!("{}pkeys:partner:{partner_id}", self.prefix)
    }

    fn partner_grants(&self, partner_id: u64) -> String {
        format!("{}access:partner:{partner_id}", self.prefix)
    }

    fn offer_grants(&self, offer_id: u64) -> String {
        format!("{}access:offer:{offer_id}", self.prefix)
    }

    /// Creates a key for `partner_id` (which the caller checked exists):
    /// its record and its secret, which is never seen again.
    pub async fn create_key(
        &self,
        partner_id: u64,
        label: String,
    ) -> Result<(KeyRecord, String), StoreError> {
        let id: u64 = self
            .run(redis::cmd("INCR").arg(format!("{}seq:pkey", self.prefix)))
            .await?;
        let secret = keys::generate();
        let record = KeyRecord {
            id,
            partner_id,
            label,
            hint: keys::hint(&secret),
            created_at: now_rfc3339(),
        };
        let json = serde_json::to_string(&record).expect("key records serialize");
        let _: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(CREATE_KEY_SCRIPT)
                    .arg(2)
                    .arg(self.keys_hash())
                    .arg(self.partner_keys(partner_id))
                    .arg(id)
                    .arg(keys::digest(&secret))
                    .arg(json),
            )
            .await?;
        Ok((record, secret))
    }

    /// The key whose secret has digest `digest`, if it exists.
    pub async fn key_by_digest(&self, digest: &str) -> Result<Option<KeyRecord>, StoreError> {
        let raw: Option<String> = self
            .run(redis::cmd("HGET").arg(self.keys_hash()).arg(digest))
            .await?;
        raw.map(|r| self.decode_key(&r)).transpose()
    }

    fn decode_key(&self, raw: &str) -> Result<KeyRecord, StoreError> {
        serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
            kind: "partner key",
            id: 0,
            key: self.keys_hash(),
            error: e.to_string(),
        })
    }

    /// Every key of `partner_id`, by id.
    pub async fn keys(&self, partner_id: u64) -> Result<Vec<KeyRecord>, StoreError> {
        let digests: HashMap<u64, String> = self
            .run(redis::cmd("HGETALL").arg(self.partner_keys(partner_id)))
            .await?;
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let raws: Vec<Option<String>> = self
            .run(
                redis::cmd("HMGET")
                    .arg(self.keys_hash())
                    .arg(digests.values().collect::<Vec<_>>()),
            )
            .await?;
        let mut out = raws
            .iter()
            .flatten()
            .map(|r| self.decode_key(r))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|k| k.id);
        Ok(out)
    }

    /// Revokes key `key_id` of `partner_id`: refused by every node from
    /// now on. False when the partner has no such key.
    pub async fn revoke_key(&self, partner_id: u64, key_id: u64) -> Result<bool, StoreError> {
        let done: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(REVOKE_KEY_SCRIPT)
                    .arg(2)
                    .arg(self.keys_hash())
                    .arg(self.partner_keys(partner_id))
                    .arg(key_id),
            )
            .await?;
        Ok(done == 1)
    }

    fn decode_grant(&self, key: String, raw: &str) -> Result<Grant, StoreError> {
        serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
            kind: "access grant",
            id: 0,
            key,
            error: e.to_string(),
        })
    }

    /// Partner `partner_id`'s grant for offer `offer_id`.
    pub async fn grant(&self, partner_id: u64, offer_id: u64) -> Result<Option<Grant>, StoreError> {
        let key = self.partner_grants(partner_id);
        let raw: Option<String> = self.run(redis::cmd("HGET").arg(&key).arg(offer_id)).await?;
        raw.map(|r| self.decode_grant(key, &r)).transpose()
    }

    /// Every grant of `partner_id`, by offer id.
    pub async fn grants_of_partner(
        &self,
        partner_id: u64,
    ) -> Result<HashMap<u64, Grant>, StoreError> {
        let key = self.partner_grants(partner_id);
        let raws: HashMap<u64, String> = self.run(redis::cmd("HGETALL").arg(&key)).await?;
        raws.into_iter()
            .map(|(id, r)| Ok((id, self.decode_grant(key.clone(), &r)?)))
            .collect()
    }

    /// Every grant for `offer_id`, by partner id.
    pub async fn grants_of_offer(&self, offer_id: u64) -> Result<Vec<Grant>, StoreError> {
        let key = self.offer_grants(offer_id);
        let raws: HashMap<u64, String> = self.run(redis::cmd("HGETALL").arg(&key)).await?;
        let mut out = raws
            .into_values()
            .map(|r| self.decode_grant(key.clone(), &r))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|g| g.partner_id);
        Ok(out)
    }

    /// Stores `grant`, replacing any earlier one; answers the earlier one.
    pub async fn put_grant(&self, grant: &Grant) -> Result<Option<Grant>, StoreError> {
        self.write_grant(grant, false).await
    }

    /// Stores `grant` only when the partner has none for the offer yet;
    /// answers the one already there (and then stored nothing).
    pub async fn put_grant_if_absent(&self, grant: &Grant) -> Result<Option<Grant>, StoreError> {
        self.write_grant(grant, true).await
    }

    async fn write_grant(
        &self,
        grant: &Grant,
        only_new: bool,
    ) -> Result<Option<Grant>, StoreError> {
        let json = serde_json::to_string(grant).expect("grants serialize");
        let key = self.partner_grants(grant.partner_id);
        let old: Option<String> = self
            .run(
                redis::cmd("EVAL")
                    .arg(PUT_GRANT_SCRIPT)
                    .arg(2)
                    .arg(&key)
                    .arg(self.offer_grants(grant.offer_id))
                    .arg(grant.offer_id)
                    .arg(grant.partner_id)
                    .arg(json)
                    .arg(if only_new { "1" } else { "0" }),
            )
            .await?;
        old.map(|r| self.decode_grant(key, &r)).transpose()
    }
}
