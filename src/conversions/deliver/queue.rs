//! The queue shared by every node: a Redis sorted set of job JSON scored by
//! the Unix millisecond of the job's next attempt. Claiming moves a job's
//! score past a lease in the same script that finds it, so no two nodes
//! take the same attempt, and a node killed mid-call leaves the job to be
//! taken again once the lease ends.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::job::Job;
use crate::catalog::Catalog;

/// Why a postback could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis did not answer in time, refused, or is not connected yet.
    #[error("postback queue unavailable: {0}")]
    Unavailable(String),
    /// The partner's stored `postback_url` does not parse any more.
    #[error("postback_url of partner {partner_id}: {problem}")]
    BadUrl {
        /// The partner.
        partner_id: u64,
        /// What is wrong with the URL.
        problem: String,
    },
    /// The partner wants signed JSON postbacks but has no secret to sign
    /// them with (the store gives every partner one; only a record edited
    /// past it lacks it).
    #[error("webhook_secret of partner {0} is empty: a json postback cannot be signed")]
    NoSecret(u64),
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        QueueError::Unavailable(e.to_string())
    }
}

/// Claims up to ARGV[2] members due by ARGV[1] and moves their score to
/// ARGV[3] (the lease's end) in one step, so no other node claims them.
const CLAIM_SCRIPT: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[3], m) end
return due
";

/// Replaces member ARGV[1] by ARGV[2] at score ARGV[3], only if ARGV[1] is
/// still queued (a job another node finished after our lease ran out is
/// not brought back).
const RESCHEDULE_SCRIPT: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  return 1
end
return 0
";

/// The shared queue in Redis.
pub(super) struct Queue {
    conn: ConnectionManager,
    key: String,
    /// Bounds every call, so an outage delays postbacks but holds nothing.
    timeout: Duration,
}

impl Queue {
    /// The queue in the Redis of `catalog`.
    pub(super) fn of(catalog: &Catalog) -> Queue {
        let (conn, prefix, timeout) = catalog.redis();
        Queue {
            conn,
            key: format!("{prefix}postbacks"),
            timeout,
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, QueueError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(QueueError::Unavailable("redis timed out".into())),
        }
    }

    /// Queues `job` for Unix millisecond `at_ms`.
    pub(super) async fn push(&self, job: &Job, at_ms: u64) -> Result<(), QueueError> {
        let member = serde_json::to_string(job).expect("a job serializes");
        let _: i64 = self
            .run(redis::cmd("ZADD").arg(&self.key).arg(at_ms).arg(member))
            .await?;
        Ok(())
    }

    /// Claims up to `n` jobs due by `now_ms`, hidden from other nodes
    /// for `lease_ms`.
    pub(super) async fn claim(
        &self,
        now_ms: u64,
        n: usize,
        lease_ms: u64,
    ) -> Result<Vec<String>, QueueError> {
        self.run(
            redis::cmd("EVAL")
                .arg(CLAIM_SCRIPT)
                .arg(1)
                .arg(&self.key)
                .arg(now_ms)
                .arg(n)
                .arg(now_ms + lease_ms),
        )
        .await
    }

    /// Removes the claimed `member`.
    pub(super) async fn complete(&self, member: &str) -> Result<(), QueueError> {
        let _: i64 = self
            .run(redis::cmd("ZREM").arg(&self.key).arg(member))
            .await?;
        Ok(())
    }

    /// Replaces the claimed `member` by `job`, due at `at_ms`.
    pub(super) async fn reschedule(
        &self,
        member: &str,
        job: &Job,
        at_ms: u64,
    ) -> Result<(), QueueError> {
        let next = serde_json::to_string(job).expect("a job serializes");
        let _: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(RESCHEDULE_SCRIPT)
                    .arg(1)
                    .arg(&self.key)
                    .arg(member)
                    .arg(next)
                    .arg(at_ms),
            )
            .await?;
        Ok(())
    }

    /// How many jobs wait, and the score of the earliest.
    pub(super) async fn peek(&self) -> Result<(u64, Option<u64>), QueueError> {
        let depth: u64 = self.run(redis::cmd("ZCARD").arg(&self.key)).await?;
        let first: Vec<(String, f64)> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(&self.key)
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES"),
            )
            .await?;
        Ok((depth, first.first().map(|(_, s)| *s as u64)))
    }
}
