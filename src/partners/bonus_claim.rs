//! The Redis claim that lets one round record a bonus: two rounds at once
//! (two nodes, or two `POST /api/v1/tiers/evaluate`) both see it
//! unrecorded in ClickHouse, and only the one that takes
//! `{prefix}bonus:{bonus_id}` inserts it.
//!
//! The claim is taken with `SET NX EX` holding a random token, for
//! [`CLAIM_LEASE_SECS`]: far longer than the INSERT may take, so it never
//! expires under a live holder, yet a holder that dies between claim and
//! INSERT blocks the bonus only until a round after the lease. Once the
//! row is in ClickHouse the claim becomes `recorded` for
//! [`RECORDED_TTL_SECS`] (a round that read ClickHouse just before the
//! INSERT still finds it taken); an INSERT that failed gives it back.
//! Both only while the key still holds the holder's token.

use std::time::Duration;

use crate::catalog::Catalog;

/// How long a claim holds before its INSERT: ten times the longest the
/// INSERT may take (two steps of
/// [`QUERY_TIMEOUT`](crate::payments::store::QUERY_TIMEOUT)).
pub const CLAIM_LEASE_SECS: u64 = 600;

/// How long a recorded bonus's key is kept: longer than any round looks
/// back (a quarter and the one before), after which ClickHouse alone says
/// it is recorded.
pub const RECORDED_TTL_SECS: u64 = 400 * 86_400;

/// Marks the key recorded, or deletes it, only while it holds the
/// caller's token: a holder never touches a claim that expired and was
/// taken by another. ARGV: token, then `recorded` and a TTL, or nothing
/// to delete.
const SETTLE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
if ARGV[2] then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
else
    redis.call('DEL', KEYS[1])
end
return 1
"#;

/// Why a claim could not be taken or settled.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Redis refused or is unreachable.
    #[error("redis cannot claim bonus {bonus_id}: {error}")]
    Redis {
        /// The bonus.
        bonus_id: String,
        /// What Redis said.
        error: redis::RedisError,
    },
    /// Redis did not answer within the catalog's timeout.
    #[error("redis did not answer within {timeout:?} claiming bonus {bonus_id}")]
    Timeout {
        /// The bonus.
        bonus_id: String,
        /// How long it was given.
        timeout: Duration,
    },
}

/// A bonus claimed by this round.
pub struct Claim<'a> {
    catalog: &'a Catalog,
    bonus_id: String,
    key: String,
    token: String,
}

impl<'a> Claim<'a> {
    /// Claims `bonus_id`; `None` when another round holds or recorded it.
    pub async fn take(
        catalog: &'a Catalog,
        bonus_id: &str,
    ) -> Result<Option<Claim<'a>>, ClaimError> {
        let (mut conn, prefix, _) = catalog.redis();
        let key = format!("{prefix}bonus:{bonus_id}");
        let token = crate::model::random_token();
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("EX")
            .arg(CLAIM_LEASE_SECS)
            .clone();
        let claim = Claim {
            catalog,
            bonus_id: bonus_id.to_string(),
            key,
            token,
        };
        let set: Option<String> = claim.run(cmd.query_async(&mut conn)).await?;
        Ok(set.map(|_| claim))
    }

    /// The row is in ClickHouse: keep the key as `recorded`.
    pub async fn recorded(self) -> Result<(), ClaimError> {
        let cmd = redis::cmd("EVAL")
            .arg(SETTLE_SCRIPT)
            .arg(1)
            .arg(&self.key)
            .arg(&self.token)
            .arg("recorded")
            .arg(RECORDED_TTL_SECS)
            .clone();
        let (mut conn, _, _) = self.catalog.redis();
        self.run::<i64>(cmd.query_async(&mut conn)).await.map(drop)
    }

    /// The INSERT failed: give the bonus back to the next round.
    pub async fn release(self) -> Result<(), ClaimError> {
        let cmd = redis::cmd("EVAL")
            .arg(SETTLE_SCRIPT)
            .arg(1)
            .arg(&self.key)
            .arg(&self.token)
            .clone();
        let (mut conn, _, _) = self.catalog.redis();
        self.run::<i64>(cmd.query_async(&mut conn)).await.map(drop)
    }

    async fn run<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClaimError> {
        let (_, _, timeout) = self.catalog.redis();
        match tokio::time::timeout(timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(error)) => Err(ClaimError::Redis {
                bonus_id: self.bonus_id.clone(),
                error,
            }),
            Err(_) => Err(ClaimError::Timeout {
                bonus_id: self.bonus_id.clone(),
                timeout,
            }),
        }
    }
}
