//! Partner applications on the admin side: the `status` filter of
//! `GET /api/v1/partners` (`?status=applied` lists those waiting), and
//! `POST /api/v1/partners/{id}/approve` and `/reject`. Every move goes
//! through the one table (`model::transition`), recorded with its reason
//! and time in the partner's `status_changes`; a move the table refuses
//! answers `409 invalid_transition`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::entities::{page_params, parse_id, ItemsPage};
use super::error::{parse, ApiError, ErrorBody};
use super::AdminState;
use crate::catalog::Kind;
use crate::model::{Partner, PartnerStatus};

/// Partners scanned per Redis page while filtering by status.
const SCAN_PAGE: usize = 1000;

/// `GET /api/v1/partners`: paging, and an optional status filter.
#[allow(dead_code)] // read only by the OpenAPI derive; the query is parsed by hand
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartnerListQuery {
    /// Page size, 1 to 1000; default 100.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only partners with this status: `applied` (waiting for an admin),
    /// `active`, `rejected` or `suspended`.
    pub status: Option<PartnerStatus>,
}

/// `POST /api/v1/partners/{id}/approve` (body optional) and `/reject`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why, kept in the partner's `status_changes`; up to 500 characters.
    /// Required to reject.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The `status` of a partner listing's query, if given.
pub fn status_filter(query: Option<&str>) -> Result<Option<PartnerStatus>, ApiError> {
    let given = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "status")
        .map(|(_, v)| v.into_owned());
    let Some(text) = given else {
        return Ok(None);
    };
    serde_json::from_value(serde_json::Value::String(text))
        .map(Some)
        .map_err(|_| ApiError::invalid("status", "must be applied, active, rejected or suspended"))
}

/// A page of the partners with `status`: scans by id from the cursor
/// until the page is full, so a page may cover many ids.
pub async fn list_by_status(
    s: &AdminState,
    query: Option<&str>,
    status: PartnerStatus,
) -> Result<Json<ItemsPage<Partner>>, ApiError> {
    let (limit, mut cursor) = page_params(query)?;
    let catalog = s.catalog()?;
    let mut items = Vec::new();
    loop {
        let page = catalog.list::<Partner>(cursor, SCAN_PAGE).await?;
        let last = page.items.last().map(|p| p.id);
        for p in page.items {
            if p.status != status {
                continue;
            }
            if items.len() == limit {
                // One more match exists: the page is full and not the last.
                let next = items.last().map(|p: &Partner| p.id.to_string());
                return Ok(Json(ItemsPage {
                    items,
                    next_cursor: next,
                }));
            }
            items.push(p);
        }
        match (page.next_cursor, last) {
            (Some(_), Some(last)) => cursor = last,
            _ => {
                return Ok(Json(ItemsPage {
                    items,
                    next_cursor: None,
                }))
            }
        }
    }
}

/// Approve a partner: `applied` (or `rejected`) → `active`; its links
/// redirect and its conversions count from now on.
#[utoipa::path(post, path = "/api/v1/partners/{id}/approve", tag = "partners", request_body(content = Decision, description = "optional"),
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 200, description = "the partner, active, the move in its status_changes", body = Partner),
        (status = 400, description = "malformed JSON or an invalid reason (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such partner", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the partner is suspended (make it active with PATCH)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn approve_partner(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Partner>, ApiError> {
    let id = parse_id(Kind::Partner, &id)?;
    let decision = decision(&body)?;
    let reason = decision.reason.unwrap_or_default();
    let p = s
        .catalog()?
        .move_partner(id, PartnerStatus::Active, &reason)
        .await?;
    Ok(Json(p))
}

/// Reject an application: `applied` → `rejected`, with a reason. The
/// email stays claimed: the same address cannot apply again (delete the
/// partner to allow it).
#[utoipa::path(post, path = "/api/v1/partners/{id}/reject", tag = "partners", request_body = Decision,
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 200, description = "the partner, rejected, the move in its status_changes", body = Partner),
        (status = 400, description = "malformed JSON, or a missing or invalid reason (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such partner", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the partner is not an applicant (suspend an active one instead)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn reject_partner(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Partner>, ApiError> {
    let id = parse_id(Kind::Partner, &id)?;
    let reason = decision(&body)?
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("reason", "is required to reject"))?;
    let p = s
        .catalog()?
        .move_partner(id, PartnerStatus::Rejected, &reason)
        .await?;
    Ok(Json(p))
}

/// The decision's body; none at all is an empty one.
fn decision(body: &[u8]) -> Result<Decision, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    parse(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: Option<&str>, expected: Result<Option<PartnerStatus>, &str>) {
        let got = status_filter(query).map_err(|e| e.detail.field.unwrap_or_default());
        assert_eq!(got, expected.map_err(str::to_string), "{query:?}");
    }

    #[test]
    fn status_filters() {
        use PartnerStatus::*;
        check(None, Ok(None));
        check(Some("limit=5"), Ok(None));
        check(Some("status=applied"), Ok(Some(Applied)));
        check(Some("limit=2&status=suspended"), Ok(Some(Suspended)));
        // Old records' word for suspended.
        check(Some("status=paused"), Ok(Some(Suspended)));
        check(Some("status=Applied"), Err("status"));
        check(Some("status="), Err("status"));
    }

    #[test]
    fn decisions() {
        assert_eq!(decision(b"").unwrap().reason, None);
        assert_eq!(decision(b" \n").unwrap().reason, None);
        assert_eq!(
            decision(br#"{"reason":"fine"}"#).unwrap().reason.as_deref(),
            Some("fine")
        );
        let e = decision(br#"{"why":"x"}"#).unwrap_err();
        assert_eq!(e.detail.field.as_deref(), Some("why"));
    }
}
