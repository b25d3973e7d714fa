//! One round of performance tiers: every partner's standing read, its tier
//! decided by [`super::tiers::decide`], and each change recorded in the
//! partner's record with its reason; then the bonuses earned
//! ([`super::award`]). Run daily by one node (a Redis key per period
//! elects it) and on demand (`POST /api/v1/tiers/evaluate`); a second
//! round on the same facts changes nothing and awards nothing again.

use std::time::{Duration, UNIX_EPOCH};

use redis::AsyncCommands;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::activity::{now_s, unix_seconds};
use super::award::{award, AwardError, AwardedBonus};
use super::pause::all_partners;
use super::standing::StandingReader;
use super::tiers::{decide, Standing};
use crate::catalog::{Catalog, StoreError};
use crate::config::TiersConfig;
use crate::model::TierChange;
use crate::payments::PaymentStore;

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// ClickHouse could not say how partners are doing.
    #[error("partner standings unavailable: {0}")]
    Standing(#[from] clickhouse::error::Error),
    /// Redis could not list or change the catalog.
    #[error("{0}")]
    Catalog(#[from] StoreError),
    /// Bonuses could not be counted, claimed or recorded (tier changes
    /// made before stand).
    #[error("bonuses not awarded: {0}")]
    Bonus(#[from] AwardError),
}

/// One partner's change in a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PartnerTierChange {
    /// The partner.
    pub partner_id: u64,
    /// What changed and why.
    #[serde(flatten)]
    pub change: TierChange,
}

/// What a round did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TierRound {
    /// RFC 3339 instant the standings were read as of.
    pub at: String,
    /// Partners evaluated.
    pub evaluated: usize,
    /// Tier changes made.
    pub changes: Vec<PartnerTierChange>,
    /// Bonuses this round recorded (one already recorded, by this round
    /// or another, is not listed again).
    pub bonuses: Vec<AwardedBonus>,
}

/// RFC 3339 of Unix seconds.
fn rfc3339(secs: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
        .to_string()
}

/// Evaluates every partner's tier as of `at` (Unix seconds) under `rules`,
/// then its bonuses, recorded in `ledger`.
pub async fn evaluate(
    catalog: &Catalog,
    reader: &StandingReader,
    ledger: &PaymentStore,
    rules: &TiersConfig,
    at: u32,
) -> Result<TierRound, TierError> {
    let standings = reader.read(at, &rules.windows()).await?;
    let partners = all_partners(catalog).await?;
    let mut changes = Vec::new();
    for p in &partners {
        let standing = Standing {
            tier: p.tier.as_deref(),
            below_since: p
                .tier_below_since
                .as_deref()
                .map(|s| i64::from(unix_seconds(s))),
        };
        let d = decide(
            &rules.levels,
            &standing,
            &standings.of(p.id),
            i64::from(at),
            rules.grace_days,
        );
        let below_since = d.below_since.map(rfc3339);
        let change = d.change.map(|kind| TierChange {
            at: rfc3339(i64::from(at)),
            from: p.tier.clone(),
            to: d.tier.clone(),
            kind,
            reason: d.reason.clone(),
        });
        if d.tier == p.tier && below_since == p.tier_below_since && change.is_none() {
            continue;
        }
        catalog
            .set_partner_tier(p.id, d.tier.clone(), below_since, change.clone())
            .await?;
        if let Some(change) = change {
            info!(partner = p.id, from = ?change.from, to = ?change.to, reason = %change.reason, "tier changed");
            changes.push(PartnerTierChange {
                partner_id: p.id,
                change,
            });
        }
    }
    let bonuses = award(catalog, reader, ledger, &rules.bonuses, &partners, at).await?;
    Ok(TierRound {
        at: rfc3339(i64::from(at)),
        evaluated: partners.len(),
        changes,
        bonuses,
    })
}

/// Evaluates tiers every `evaluate_interval_secs` until `stop`, on the one
/// node that takes the period's Redis key (`SET NX`), so two nodes never
/// record the same change twice.
pub async fn run(
    catalog: std::sync::Arc<Catalog>,
    reader: StandingReader,
    ledger: PaymentStore,
    rules: TiersConfig,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(rules.evaluate_interval_secs));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = now_s();
        let period = u64::from(now) / rules.evaluate_interval_secs;
        let (mut redis, prefix, _) = catalog.redis();
        let key = format!("{prefix}tiers:round:{period}");
        let elected: redis::RedisResult<bool> = redis
            .set_options(
                &key,
                1,
                redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::EX(rules.evaluate_interval_secs)),
            )
            .await;
        match elected {
            Ok(true) => match evaluate(&catalog, &reader, &ledger, &rules, now).await {
                Ok(r) => info!(
                    evaluated = r.evaluated,
                    changes = r.changes.len(),
                    bonuses = r.bonuses.len(),
                    "tiers evaluated"
                ),
                Err(e) => {
                    warn!(error = %e, "tiers not evaluated; next period");
                    // Let another node (or the next tick) try this period.
                    let _: redis::RedisResult<()> = redis.del(&key).await;
                }
            },
            Ok(false) => info!(period, "tiers round of this period taken by another node"),
            Err(e) => warn!(error = %e, "tiers not evaluated: redis unavailable"),
        }
    }
}
