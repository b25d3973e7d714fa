//! Pausing the links of inactive partners, when the operator asks for it
//! (`health.pause_inactive_links`, off by default): every pause is logged
//! and noted in the partner's record with its reason.

use tracing::{info, warn};

use super::activity::{now_s, ActivityReader};
use super::health::HealthStatus;
use crate::catalog::{Catalog, StoreError};
use crate::model::Partner;

/// Why one round of pausing stopped.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    /// ClickHouse could not say how partners are doing.
    #[error("partner activity unavailable: {0}")]
    Activity(#[from] clickhouse::error::Error),
    /// Redis could not list or change the catalog.
    #[error("{0}")]
    Catalog(#[from] StoreError),
}

/// Every partner in the catalog, all pages.
pub async fn all_partners(catalog: &Catalog) -> Result<Vec<Partner>, StoreError> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let page = catalog.list::<Partner>(cursor, 1000).await?;
        out.extend(page.items);
        match page.next_cursor.and_then(|c| c.parse().ok()) {
            Some(next) => cursor = next,
            None => return Ok(out),
        }
    }
}

/// One round: pauses the active links of every active partner judged
/// `inactive` with `inactive_days`. Answers `(partner id, links paused)`
/// for each partner that had links to pause.
pub async fn pause_inactive(
    catalog: &Catalog,
    reader: &ActivityReader,
    inactive_days: u32,
) -> Result<Vec<(u64, Vec<u64>)>, PauseError> {
    let now = now_s();
    let activity = reader.read(now).await?;
    let mut paused = Vec::new();
    for p in all_partners(catalog).await? {
        if !p.is_active() {
            continue;
        }
        let a = activity.get(&p.id).copied().unwrap_or_default();
        let (status, reason) = a.judge(&p.created_at, now, inactive_days);
        if status != HealthStatus::Inactive {
            continue;
        }
        let why = format!("inactive: {} ({inactive_days} days)", reason.as_str());
        let links = catalog.pause_partner_links(p.id, &why).await?;
        if !links.is_empty() {
            warn!(partner = p.id, links = links.len(), reason = %why, "paused an inactive partner's links");
            paused.push((p.id, links));
        }
    }
    info!(partners = paused.len(), "inactive partners' links paused");
    Ok(paused)
}
