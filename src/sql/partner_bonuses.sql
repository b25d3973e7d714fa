-- Bonuses (src/payments/bonuses.rs), one row per bonus_id however often
-- it was inserted (two rounds that both got past the Redis claim, or an
-- INSERT that timed out yet landed and was recorded again), in the
-- table's column order (read by position). Of two rows of one id the one
-- recorded last stands, as ReplacingMergeTree(ts) keeps it when it
-- merges them; both name the same rule, partner and period.
-- Binds: partner filter on (1/0) and partner_id.
-- params: UInt8, UInt64
SELECT
    bonus_id,
    argMax(partner_id, ts),
    argMax(rule, ts),
    argMax(period_start, ts),
    argMax(amount, ts),
    argMax(currency, ts),
    argMax(reason, ts),
    argMax(earned_at, ts),
    max(ts)
FROM {database}.partner_bonuses
WHERE (? = 0 OR partner_id = ?)
GROUP BY bonus_id
