//! A round's bonuses: for every rule of `[[tiers.bonuses]]` and every
//! partner, the rule's metric over the period holding the round's instant
//! (from its start) and over the period before (whole), decided by
//! [`super::bonuses::decide`]; each bonus earned and not yet in the
//! ledger is claimed in Redis ([`super::bonus_claim`]) and recorded in
//! `partner_bonuses`, once, however many rounds run at once on however
//! many nodes.
//!
//! Exactly once rests on three things, any one of which keeps the ledger
//! right: the bonus id is the same for every round
//! (`{rule}:{partner}:{period start}`); a round skips ids ClickHouse
//! already holds and inserts only under a claim it took; and every reader
//! counts a bonus id once, so two rows of one id (an INSERT that timed
//! out yet landed, then recorded again) still pay once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use tracing::{info, warn};

use super::activity::now_s;
use super::bonus_claim::{Claim, ClaimError};
use super::bonuses::{bonus_id, decide, windows, BonusRule, PeriodKind, Window};
use super::standing::{StandingReader, WindowTotals};
use crate::catalog::Catalog;
use crate::events::money::money_text;
use crate::events::Money;
use crate::model::Partner;
use crate::payments::store::date_days;
use crate::payments::{BonusRow, PaymentStore};

/// Why a round's bonuses stopped (the bonuses recorded before stay).
#[derive(Debug, thiserror::Error)]
pub enum AwardError {
    /// ClickHouse could not count partners' results, list the bonuses
    /// recorded, or record one.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// Redis could not claim a bonus.
    #[error(transparent)]
    Claim(#[from] ClaimError),
}

/// One bonus, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AwardedBonus {
    /// `{rule}:{partner_id}:{period_start}`.
    #[schema(example = "big_month:7:2026-03-01")]
    pub bonus_id: String,
    /// Who earned it.
    pub partner_id: u64,
    /// The rule (`[[tiers.bonuses]]` `name`).
    #[schema(example = "big_month")]
    pub rule: String,
    /// The period's first day (UTC).
    #[schema(example = "2026-03-01")]
    pub period_start: String,
    /// What it pays, a decimal string.
    #[schema(example = "500.00")]
    pub amount: String,
    /// ISO 4217.
    #[schema(example = "USD")]
    pub currency: String,
    /// Why: the facts and the rule.
    #[schema(example = "100 conversions in 2026-03 >= 100 (big_month)")]
    pub reason: String,
    /// The instant the facts were counted up to (RFC 3339): payable from
    /// the end of that UTC day.
    pub earned_at: String,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
}

impl AwardedBonus {
    /// A ledger row as the API shows it.
    pub fn of(r: &BonusRow) -> AwardedBonus {
        AwardedBonus {
            bonus_id: r.bonus_id.clone(),
            partner_id: r.partner_id,
            rule: r.rule.clone(),
            period_start: r.period_start_date().to_string(),
            amount: money_text(r.amount.to_decimal()),
            currency: r.currency.clone(),
            reason: r.reason.clone(),
            earned_at: rfc3339(r.earned_at),
            recorded_at: rfc3339(r.ts),
        }
    }
}

fn rfc3339(secs: u32) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.into())).to_string()
}

/// A period counted: every partner's results in it, by partner id.
type Counted = (Window, HashMap<u64, WindowTotals>);

/// Decides every rule for every partner as of `at` (Unix seconds) and
/// records the bonuses earned that no round recorded before; answers
/// those this round recorded.
pub async fn award(
    catalog: &Catalog,
    reader: &StandingReader,
    ledger: &PaymentStore,
    rules: &[BonusRule],
    partners: &[Partner],
    at: u32,
) -> Result<Vec<AwardedBonus>, AwardError> {
    if rules.is_empty() || partners.is_empty() {
        return Ok(Vec::new());
    }
    let mut kinds: Vec<PeriodKind> = rules.iter().map(|r| r.period).collect();
    kinds.sort_unstable();
    kinds.dedup();
    // Each period counted once, whatever number of rules count it.
    let mut counted: HashMap<PeriodKind, Vec<Counted>> = HashMap::new();
    for &kind in &kinds {
        for w in windows(kind, i64::from(at)) {
            let from = secs(w.period.start_secs());
            let until = secs(w.until);
            let totals = if until > from {
                reader.read_range(from, until).await?
            } else {
                HashMap::new()
            };
            counted.entry(kind).or_default().push((w, totals));
        }
    }
    let starts = counted
        .values()
        .flatten()
        .map(|(w, _)| secs(w.period.start_secs()));
    let (first, last) = starts.fold((u32::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let recorded: HashSet<String> = ledger
        .recorded_bonus_ids(first, last)
        .await?
        .into_iter()
        .collect();

    let mut awarded = Vec::new();
    for rule in rules {
        for (w, totals) in counted.get(&rule.period).into_iter().flatten() {
            for p in partners {
                let value = totals
                    .get(&p.id)
                    .map(|t| t.value(rule.metric))
                    .unwrap_or_default();
                let d = decide(rule, p.status, value, &w.period);
                let id = bonus_id(&rule.name, p.id, w.period.start);
                if !d.earned || recorded.contains(&id) {
                    continue;
                }
                let Some(claim) = Claim::take(catalog, &id).await? else {
                    // Another round holds or recorded it.
                    continue;
                };
                let row = BonusRow {
                    bonus_id: id,
                    partner_id: p.id,
                    rule: rule.name.clone(),
                    // Validated dates of u32 instants: always in range.
                    period_start: date_days(w.period.start).unwrap_or(0),
                    // Validated at load: it fits.
                    amount: Money::from_decimal(rule.amount).unwrap_or(Money::ZERO),
                    currency: rule.currency.clone(),
                    reason: d.reason,
                    earned_at: secs(w.until),
                    ts: now_s(),
                };
                if let Err(e) = ledger.record_bonus(&row).await {
                    if let Err(r) = claim.release().await {
                        warn!(bonus_id = %row.bonus_id, error = %r,
                              "bonus claim not given back; the next round after its lease records it");
                    }
                    return Err(e.into());
                }
                if let Err(e) = claim.recorded().await {
                    // The row is in: a later round finds it in ClickHouse.
                    warn!(bonus_id = %row.bonus_id, error = %e, "bonus claim not marked recorded");
                }
                info!(partner = row.partner_id, bonus_id = %row.bonus_id, amount = %row.amount.to_decimal(),
                      currency = %row.currency, reason = %row.reason, "bonus awarded");
                awarded.push(AwardedBonus::of(&row));
            }
        }
    }
    Ok(awarded)
}

/// Unix seconds of a period bound as the queries bind them (periods of
/// u32 instants end by 2106; later ones are cut there).
fn secs(s: i64) -> u32 {
    s.clamp(0, i64::from(u32::MAX)) as u32
}
