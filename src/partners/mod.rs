//! The partner program's own logic over the catalog and the event tables:
//! how each partner is doing ([`health`], pure), the facts it is judged on
//! ([`activity`], read from ClickHouse), pausing the links of partners
//! gone quiet ([`pause`]), applications to join ([`applications`],
//! pure), performance tiers ([`tiers`], pure; [`standing`] its facts,
//! [`promote`] the round) and bonuses ([`bonuses`], pure; [`award`]
//! records them once in the payout ledger).

pub mod activity;
pub mod applications;
pub mod award;
pub mod bonus_claim;
pub mod bonuses;
pub mod health;
pub mod pause;
pub mod promote;
pub mod standing;
pub mod tiers;
