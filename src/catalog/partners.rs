//! Partner writes that must not lose a race, as `impl Catalog` blocks over
//! the store: a new applicant with its email claimed in the same script
//! (two nodes taking the same address at once: one wins, one is told
//! `409`), and every change of a stored partner (admin patches, status
//! moves, link-pause notes) as a compare-and-set on its JSON, re-read and
//! re-decided when another write came first, so an approve racing a
//! reject cannot both succeed.
//!
//! Email claims live in the hash `{prefix}partner_emails` (lower-cased
//! address → partner id). A claim holds only while its partner exists: a
//! deleted partner's address may apply again, with no clean-up step to
//! forget.

use super::message::publish_lua;
use super::store::{now_rfc3339, Catalog, Entity, Kind, StoreError};
use crate::model::{
    email_key, random_token, FieldError, Link, LinkPatch, LinkPause, Partner, PartnerPatch,
    PartnerStatus, Status, TierChange, MAX_LINK_PAUSES, MAX_TIER_CHANGES,
};

/// How often a compare-and-set is retried against writes that keep
/// coming first; an admin's change answers `503` after that.
const MAX_ATTEMPTS: usize = 8;

/// Claims email ARGV[1] for partner ARGV[2] in hash KEYS[1] unless a
/// partner still in KEYS[2] holds it (answers 0, nothing written); then
/// stores the partner (JSON ARGV[3]) in KEYS[2] and index KEYS[3], and
/// numbers and publishes change ARGV[4] (KEYS[4] counter, KEYS[5]
/// channel). A refused write undoes the claim and the partner, like the
/// store's scripts: no claim outlives a partner never stored.
const APPLY_SCRIPT: &str = concat!(
    publish_lua!(),
    r#"
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder and redis.call('HEXISTS', KEYS[2], holder) == 1 then return 0 end
local ok, res = pcall(function()
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[2])
  return publish(KEYS[4], KEYS[5], ARGV[4])
end)
if ok then return res end
if holder then redis.pcall('HSET', KEYS[1], ARGV[1], holder) else redis.pcall('HDEL', KEYS[1], ARGV[1]) end
redis.pcall('HDEL', KEYS[2], ARGV[2])
redis.pcall('ZREM', KEYS[3], ARGV[2])
if type(res) == 'table' and res.err then return redis.error_reply(res.err) end
return redis.error_reply(tostring(res))
"#
);

/// Replaces entity ARGV[1] of hash KEYS[1] with JSON ARGV[2] only if it
/// is still exactly ARGV[4] (answers 0 otherwise, nothing written), keeps
/// it in index KEYS[2] (as the store's put does), then numbers and
/// publishes change ARGV[3] (KEYS[3] counter, KEYS[4] channel); a refused
/// write puts the old JSON back and publishes nothing.
const REPLACE_IF_SCRIPT: &str = concat!(
    publish_lua!(),
    r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old ~= ARGV[4] then return 0 end
local ok, res = pcall(function()
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
  return publish(KEYS[3], KEYS[4], ARGV[3])
end)
if ok then return res end
redis.pcall('HSET', KEYS[1], ARGV[1], old)
if type(res) == 'table' and res.err then return redis.error_reply(res.err) end
return redis.error_reply(tostring(res))
"#
);

impl Catalog {
    fn emails_key(&self) -> String {
        format!("{}partner_emails", self.keys.prefix)
    }

    /// Stores the partner `make` builds from a fresh id, webhook secret and
    /// the time, claiming its email in the same script: `Conflict` naming
    /// `email` (409, nothing stored) when another partner holds it.
    pub async fn create_applicant(
        &self,
        make: impl FnOnce(u64, String, String) -> Partner,
    ) -> Result<Partner, StoreError> {
        let id = self.next_id(Kind::Partner).await?;
        let p = make(id, random_token(), now_rfc3339());
        p.validate()?;
        let Some(email) = p.email.as_deref() else {
            return Err(FieldError::new("email", "is required").into());
        };
        let json = serde_json::to_string(&p).expect("entities serialize");
        let change = serde_json::to_string(&Partner::change(id, Some(p.clone())))
            .expect("changes serialize");
        let mut conn = self.conn.clone();
        let number: u64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(APPLY_SCRIPT)
                    .arg(5)
                    .arg(self.emails_key())
                    .arg(self.keys.hash(Kind::Partner))
                    .arg(self.keys.index(Kind::Partner))
                    .arg(&self.keys.version)
                    .arg(&self.keys.channel)
                    .arg(email_key(email))
                    .arg(id)
                    .arg(json)
                    .arg(change)
                    .query_async(&mut conn),
            )
            .await?;
        if number == 0 {
            return Err(StoreError::Conflict(FieldError::new(
                "email",
                "an application with this email exists already",
            )));
        }
        self.cache.apply(Partner::change(id, Some(p.clone())));
        Ok(p)
    }

    /// Changes partner `id` to what `change` makes of it, as a
    /// compare-and-set: when another write came first, the partner is read
    /// again and `change` decides again (so it may run more than once).
    /// Nothing is written when `change` leaves the partner as it was.
    pub async fn update_partner(
        &self,
        id: u64,
        change: impl Fn(&Partner) -> Result<Partner, StoreError>,
    ) -> Result<Partner, StoreError> {
        let key = self.keys.hash(Kind::Partner);
        for _ in 0..MAX_ATTEMPTS {
            let mut conn = self.conn.clone();
            let raw: Option<String> = self
                .run(redis::cmd("HGET").arg(&key).arg(id).query_async(&mut conn))
                .await?;
            let raw = raw.ok_or(StoreError::NotFound(Kind::Partner.singular()))?;
            let old: Partner = serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
                kind: Kind::Partner.singular(),
                id,
                key: key.clone(),
                error: e.to_string(),
            })?;
            let new = change(&old)?;
            if new == old {
                return Ok(old);
            }
            let json = serde_json::to_string(&new).expect("entities serialize");
            let message = serde_json::to_string(&Partner::change(id, Some(new.clone())))
                .expect("changes serialize");
            let number: u64 = self
                .run(
                    redis::cmd("EVAL")
                        .arg(REPLACE_IF_SCRIPT)
                        .arg(4)
                        .arg(&key)
                        .arg(self.keys.index(Kind::Partner))
                        .arg(&self.keys.version)
                        .arg(&self.keys.channel)
                        .arg(id)
                        .arg(json)
                        .arg(message)
                        .arg(&raw)
                        .query_async(&mut conn),
                )
                .await?;
            if number != 0 {
                self.cache.apply(Partner::change(id, Some(new.clone())));
                return Ok(new);
            }
        }
        Err(StoreError::Unavailable(format!(
            "partner {id} kept changing under this write; try again"
        )))
    }

    /// Moves partner `id` to status `to`, recording `reason`: `Conflict`
    /// (409, naming `status`) for a move the table refuses; nothing
    /// changes when it is there already.
    pub async fn move_partner(
        &self,
        id: u64,
        to: PartnerStatus,
        reason: &str,
    ) -> Result<Partner, StoreError> {
        crate::model::check_reason(reason)?;
        let now = now_rfc3339();
        self.update_partner(id, |old| Ok(old.moved(to, reason, &now)?))
            .await
    }

    /// Changes a partner (generating its webhook secret if it has none); a
    /// new status must be a move the table allows (else `Conflict`, 409).
    pub async fn patch_partner(&self, id: u64, patch: PartnerPatch) -> Result<Partner, StoreError> {
        let now = now_rfc3339();
        self.update_partner(id, |old| {
            let mut p = old.patched(patch.clone())?;
            if let Some((to, reason)) = patch.status_change() {
                p = p.moved(to, reason, &now)?;
            }
            // Partners created before webhook secrets existed get theirs
            // at their first change, so a switch to `json` always has one.
            if p.webhook_secret.is_empty() {
                p.webhook_secret = random_token();
            }
            Ok(p)
        })
        .await
    }

    /// Pauses every active link of partner `partner_id` and notes the pause,
    /// with `reason`, in the partner's record; answers the links paused
    /// (none: nothing is noted).
    pub async fn pause_partner_links(
        &self,
        partner_id: u64,
        reason: &str,
    ) -> Result<Vec<u64>, StoreError> {
        let mut paused = Vec::new();
        let mut cursor = 0;
        loop {
            let page = self.list::<Link>(cursor, 1000).await?;
            for l in &page.items {
                if l.partner_id == partner_id && l.status == Status::Active {
                    self.patch_link(l.id, LinkPatch::status(Status::Paused))
                        .await?;
                    paused.push(l.id);
                }
            }
            match page.next_cursor.and_then(|c| c.parse().ok()) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        self.note_link_pause(partner_id, &paused, reason).await?;
        Ok(paused)
    }

    /// Notes in partner `partner_id`'s record that `link_ids` were paused
    /// automatically, and why (the last [`MAX_LINK_PAUSES`] are kept); no
    /// links, no note.
    pub async fn note_link_pause(
        &self,
        partner_id: u64,
        link_ids: &[u64],
        reason: &str,
    ) -> Result<(), StoreError> {
        if link_ids.is_empty() {
            return Ok(());
        }
        let at = now_rfc3339();
        self.update_partner(partner_id, |old| {
            let mut p = old.clone();
            p.link_pauses.push(LinkPause {
                at: at.clone(),
                link_ids: link_ids.to_vec(),
                reason: reason.to_string(),
            });
            let excess = p.link_pauses.len().saturating_sub(MAX_LINK_PAUSES);
            p.link_pauses.drain(..excess);
            Ok(p)
        })
        .await?;
        Ok(())
    }

    /// Records a tier decision on partner `id`: its tier, since when it has
    /// been below it, and the change (kept in `tier_history`, the last
    /// [`MAX_TIER_CHANGES`]), if any. Answers the partner as stored.
    pub async fn set_partner_tier(
        &self,
        id: u64,
        tier: Option<String>,
        below_since: Option<String>,
        change: Option<TierChange>,
    ) -> Result<Partner, StoreError> {
        self.update_partner(id, |old| {
            let mut p = old.clone();
            p.tier = tier.clone();
            p.tier_below_since = below_since.clone();
            if let Some(c) = &change {
                p.tier_history.push(c.clone());
                let excess = p.tier_history.len().saturating_sub(MAX_TIER_CHANGES);
                p.tier_history.drain(..excess);
            }
            Ok(p)
        })
        .await
    }
}
