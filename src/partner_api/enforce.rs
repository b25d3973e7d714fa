//! Losing access pauses links: when a grant is revoked or rejected, or an
//! offer's visibility changes so that a partner may no longer promote it,
//! the partner's active links on that offer are paused (they stop
//! redirecting on every node, as any paused link) and the pause is noted
//! with its reason in the partner's `link_pauses`.
//!
//! Only a *loss* pauses: links an admin made for a partner that never had
//! access are the admin's choice and stay as they are, and an admin may
//! make a paused link active again (`PATCH /api/v1/links/{id}`).

use std::collections::{BTreeSet, HashMap};

use tracing::warn;

use super::access::{access, GrantStatus};
use super::store::PartnerStore;
use crate::catalog::{Catalog, StoreError};
use crate::model::{Link, LinkPatch, Offer, Status, Visibility};

/// Pauses every active link of `partner_id` on `offer_id` and notes why;
/// answers the links paused.
pub async fn pause_links_on_offer(
    catalog: &Catalog,
    partner_id: u64,
    offer_id: u64,
    reason: &str,
) -> Result<Vec<u64>, StoreError> {
    let candidates = catalog
        .cache()
        .links_where(|p, o| p == partner_id && o == offer_id);
    let mut paused = Vec::new();
    for l in candidates {
        let link = match catalog.get::<Link>(l.link_id).await {
            Ok(link) => link,
            // Deleted meanwhile: nothing to pause.
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        if link.status == Status::Active {
            catalog
                .patch_link(link.id, LinkPatch::status(Status::Paused))
                .await?;
            paused.push(link.id);
        }
    }
    catalog.note_link_pause(partner_id, &paused, reason).await?;
    if !paused.is_empty() {
        warn!(
            partner = partner_id,
            offer = offer_id,
            links = paused.len(),
            reason,
            "paused links of a partner that lost access to an offer"
        );
    }
    Ok(paused)
}

/// After partner `partner_id`'s grant for `offer` went from `before` to
/// `after`: pauses its links there when it could promote the offer before
/// and cannot now. Answers the links paused.
pub async fn after_grant_change(
    catalog: &Catalog,
    offer: &Offer,
    partner_id: u64,
    before: Option<GrantStatus>,
    after: Option<GrantStatus>,
) -> Result<Vec<u64>, StoreError> {
    let lost = access(offer.visibility, before).may_promote()
        && !access(offer.visibility, after).may_promote();
    if !lost {
        return Ok(Vec::new());
    }
    let reason = format!(
        "access to offer {} {}",
        offer.id,
        after.map_or("removed", GrantStatus::as_str)
    );
    pause_links_on_offer(catalog, partner_id, offer.id, &reason).await
}

/// After `offer`'s visibility changed from `before`: pauses the links of
/// every partner that could promote it under `before` and cannot now.
/// Answers (partner id, links paused) for each partner paused.
pub async fn after_visibility_change(
    catalog: &Catalog,
    store: &PartnerStore,
    offer: &Offer,
    before: Visibility,
) -> Result<Vec<(u64, Vec<u64>)>, StoreError> {
    if before == offer.visibility {
        return Ok(Vec::new());
    }
    let partners: BTreeSet<u64> = catalog
        .cache()
        .links_where(|_, o| o == offer.id)
        .iter()
        .map(|l| l.partner_id)
        .collect();
    let grants: HashMap<u64, GrantStatus> = store
        .grants_of_offer(offer.id)
        .await?
        .into_iter()
        .map(|g| (g.partner_id, g.status))
        .collect();
    let reason = format!(
        "offer {} visibility changed from {} to {}: no access",
        offer.id,
        before.as_str(),
        offer.visibility.as_str()
    );
    let mut out = Vec::new();
    for partner_id in partners {
        let grant = grants.get(&partner_id).copied();
        if access(before, grant).may_promote() && !access(offer.visibility, grant).may_promote() {
            let paused = pause_links_on_offer(catalog, partner_id, offer.id, &reason).await?;
            if !paused.is_empty() {
                out.push((partner_id, paused));
            }
        }
    }
    Ok(out)
}
