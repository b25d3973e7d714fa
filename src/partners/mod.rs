//! The partner program's own logic over the catalog and the event tables:
//! how each partner is doing ([`health`], pure), the facts it is judged on
//! ([`activity`], read from ClickHouse), pausing the links of partners
//! gone quiet ([`pause`]), and applications to join ([`applications`],
//! pure).

pub mod activity;
pub mod applications;
pub mod health;
pub mod pause;
pub mod promote;
pub mod standing;
pub mod tiers;
