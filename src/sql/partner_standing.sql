-- Each partner's approved conversions in one window, for performance
-- tiers: every conversion in its latest version (argMax: exact before
-- merges; a version written twice counts once), at its own time; amounts
-- and payouts in ten-thousandths (money is never a float).
-- Binds: the window's first second, and its end (exclusive), unix seconds.
-- params: UInt32, UInt32
SELECT
    partner_id,
    count() AS conversions,
    sum(amount_scaled) AS revenue,
    sum(payout_scaled) AS payout
FROM
(
    SELECT
        conversion_id,
        argMax(partner_id, version) AS partner_id,
        argMax(status, version) AS status,
        toInt64(argMax(amount, version) * 10000) AS amount_scaled,
        toInt64(argMax(payout, version) * 10000) AS payout_scaled
    FROM {database}.conversions
    WHERE ts >= toDateTime(?) AND ts < toDateTime(?)
    GROUP BY conversion_id
)
WHERE partner_id != 0 AND status = 'approved'
GROUP BY partner_id
