//! The partner program's own logic over the catalog and the event tables:
//! how each partner is doing ([`health`], pure), the facts it is judged on
//! ([`activity`], read from ClickHouse) and pausing the links of partners
//! gone quiet ([`pause`]).

pub mod activity;
pub mod health;
pub mod pause;
pub mod promote;
pub mod standing;
pub mod tiers;
