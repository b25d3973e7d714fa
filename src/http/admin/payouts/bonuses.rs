//! `GET /api/v1/partners/{id}/bonuses`: the bonuses a partner earned, as
//! the payout ledger holds them (each bonus id once).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::{parse_id, timed};
use crate::http::admin::error::{ApiError, ErrorBody};
use crate::http::admin::AdminState;
use crate::partners::award::AwardedBonus;

/// A partner's bonuses.
#[derive(Debug, Serialize, ToSchema)]
pub struct BonusList {
    /// By period, then rule.
    pub items: Vec<AwardedBonus>,
}

/// A partner's bonuses (`[[tiers.bonuses]]`, awarded by the tier round),
/// oldest period first. Each is in the payouts report's `bonuses`,
/// `payable` and `owed` once.
#[utoipa::path(get, path = "/api/v1/partners/{id}/bonuses", tag = "payouts",
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 200, description = "the partner's bonuses (none: an empty list)", body = BonusList),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "the id is not a number", body = ErrorBody),
        (status = 503, description = "clickhouse unavailable", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_bonuses(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<BonusList>, ApiError> {
    let partner_id = parse_id(&id)?;
    let rows = timed(s.payouts.bonuses(Some(partner_id))).await?;
    Ok(Json(BonusList {
        items: rows.iter().map(AwardedBonus::of).collect(),
    }))
}
