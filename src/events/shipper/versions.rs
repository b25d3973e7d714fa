//! Which conversion rows a batch sends, pure: every `(conversion_id,
//! version)` once, and each later version with the state it replaces.
//!
//! The `conversions_15m` rollup counts a row as "this state in, the
//! previous one out", so a version stored twice would count twice. A
//! version can reach the log twice (a claim taken over from an attempt
//! killed before its answer, README "Deduplication"), and a batch can be
//! sent again after an unknown outcome; so for every conversion batch the
//! shipper asks ClickHouse which of its pairs it holds ([`Held`]) and
//! sends only the others, each once. What this cannot see: two nodes
//! shipping the same pair at the same instant, each asking before the
//! other's INSERT lands (README, "Stats").
//!
//! A later version recorded before format 3 (`legacy`) carries no previous
//! state; it is taken from the previous version in the same batch or in
//! ClickHouse, so the rollup still takes it back.

use std::collections::{HashMap, HashSet};

use crate::events::{ConversionRow, Money};

/// One version of a conversion as ClickHouse holds it: what a later
/// version replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeldState {
    /// Its status.
    pub status: String,
    /// Its amount.
    pub amount: Money,
    /// Its payout.
    pub payout: Money,
}

/// The versions ClickHouse holds of a batch's conversions: by conversion
/// id, then version.
pub(super) type Held = HashMap<String, HashMap<u64, HeldState>>;

/// What a batch sends: `rows` less the pairs `held` has and less repeats
/// (the first of each pair stays), each later version lacking its
/// previous state given it from the batch or `held` when either has it.
/// Also how many later versions found no previous state (they go as they
/// are: the rollup then counts their new state without taking the old one
/// back).
pub(super) fn to_send<'a>(
    rows: &[ConversionRow<'a>],
    held: &'a Held,
) -> (Vec<ConversionRow<'a>>, usize) {
    let mut seen: HashSet<(&str, u64)> = HashSet::with_capacity(rows.len());
    let mut out: Vec<ConversionRow<'a>> = Vec::with_capacity(rows.len());
    for r in rows {
        let stored = held
            .get(r.conversion_id)
            .is_some_and(|v| v.contains_key(&r.version));
        if !stored && seen.insert((r.conversion_id, r.version)) {
            out.push(r.clone());
        }
    }
    // The batch's own versions, for a later one in the same batch.
    let own: HashMap<(&str, u64), (&str, Money, Money)> = out
        .iter()
        .map(|r| ((r.conversion_id, r.version), (r.status, r.amount, r.payout)))
        .collect();
    let mut orphans = 0;
    for r in out.iter_mut() {
        if r.version <= 1 || !r.prev_status.is_empty() {
            continue;
        }
        let before = r.version - 1;
        let found = own.get(&(r.conversion_id, before)).copied().or_else(|| {
            held.get(r.conversion_id)
                .and_then(|v| v.get(&before))
                .map(|h| (h.status.as_str(), h.amount, h.payout))
        });
        match found {
            Some((status, amount, payout)) => {
                r.prev_status = status;
                r.prev_amount = amount;
                r.prev_payout = payout;
            }
            None => orphans += 1,
        }
    }
    (out, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(scaled: i64) -> Money {
        Money::from_scaled(scaled).unwrap()
    }

    /// A row of conversion `id` at `version`, `status`, amount and payout
    /// `n`, with previous status `prev` (amounts 1 when set).
    fn row(
        id: &'static str,
        version: u64,
        status: &'static str,
        n: i64,
        prev: &'static str,
    ) -> ConversionRow<'static> {
        ConversionRow {
            conversion_id: id,
            version,
            status,
            amount: money(n),
            payout: money(n),
            prev_status: prev,
            prev_amount: if prev.is_empty() {
                Money::ZERO
            } else {
                money(1)
            },
            prev_payout: if prev.is_empty() {
                Money::ZERO
            } else {
                money(1)
            },
            ..crate::events::tests::conversion()
        }
    }

    /// (id, version, prev_status, prev_amount) of each row sent.
    type Sent = Vec<(&'static str, u64, &'static str, i64)>;

    fn check(
        rows: &[ConversionRow<'static>],
        held: &[(&str, u64, &str, i64)],
        want: Sent,
        orphans: usize,
    ) {
        let mut h = Held::new();
        for (id, v, status, n) in held {
            h.entry(id.to_string()).or_default().insert(
                *v,
                HeldState {
                    status: status.to_string(),
                    amount: money(*n),
                    payout: money(*n),
                },
            );
        }
        let (sent, missing) = to_send(rows, &h);
        let got: Vec<(String, u64, String, i64)> = sent
            .iter()
            .map(|r| {
                (
                    r.conversion_id.to_string(),
                    r.version,
                    r.prev_status.to_string(),
                    r.prev_amount.scaled(),
                )
            })
            .collect();
        let want: Vec<(String, u64, String, i64)> = want
            .into_iter()
            .map(|(a, b, c, d)| (a.to_string(), b, c.to_string(), d))
            .collect();
        assert_eq!((got, missing), (want, orphans), "{rows:?} over {held:?}");
    }

    #[test]
    fn each_pair_once_with_its_previous_state() {
        // Nothing held, nothing repeated: all of it, as it is.
        check(
            &[
                row("a", 1, "pending", 5, ""),
                row("a", 2, "approved", 5, "pending"),
            ],
            &[],
            vec![("a", 1, "", 0), ("a", 2, "pending", 1)],
            0,
        );
        // A version twice in the batch (a claim taken over): once.
        check(
            &[
                row("a", 1, "approved", 5, ""),
                row("b", 1, "pending", 2, ""),
                row("a", 1, "approved", 5, ""),
            ],
            &[],
            vec![("a", 1, "", 0), ("b", 1, "", 0)],
            0,
        );
        // Already in ClickHouse (a batch sent again, or the other copy
        // shipped earlier): not sent; a new version of it is.
        check(
            &[
                row("a", 1, "pending", 5, ""),
                row("a", 2, "approved", 5, "pending"),
            ],
            &[("a", 1, "pending", 5)],
            vec![("a", 2, "pending", 1)],
            0,
        );
        check(
            &[row("a", 2, "reversed", 5, "approved")],
            &[("a", 1, "approved", 5), ("a", 2, "reversed", 5)],
            vec![],
            0,
        );
        // A later version recorded before format 3: its previous state
        // from ClickHouse ...
        check(
            &[row("a", 2, "approved", 5, "")],
            &[("a", 1, "pending", 7)],
            vec![("a", 2, "pending", 7)],
            0,
        );
        // ... or from the batch, which wins (ClickHouse lacks it) ...
        check(
            &[
                row("a", 1, "pending", 3, ""),
                row("a", 2, "approved", 5, ""),
            ],
            &[],
            vec![("a", 1, "", 0), ("a", 2, "pending", 3)],
            0,
        );
        // ... or nowhere: sent as it is, and counted.
        check(
            &[row("a", 3, "reversed", 5, "")],
            &[("a", 1, "pending", 7)],
            vec![("a", 3, "", 0)],
            1,
        );
        // A row that has its previous state keeps it.
        check(
            &[row("a", 2, "approved", 5, "pending")],
            &[("a", 1, "rejected", 9)],
            vec![("a", 2, "pending", 1)],
            0,
        );
    }
}
