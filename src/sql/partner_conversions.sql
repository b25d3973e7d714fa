-- Each partner's conversions for partner health, every conversion in its
-- latest version (argMax: exact before merges, and a version written twice
-- by a claim takeover counts once): the last counted (approved or pending)
-- one's time, and the approved ones of the last 30 days with their payout
-- in ten-thousandths (money is never a float).
-- Binds: now − 30 days, twice (unix seconds).
-- params: UInt32, UInt32
SELECT
    partner_id,
    toUInt32(max(ts)) AS last_conversion,
    countIf(status = 'approved' AND ts >= toDateTime(?)) AS conversions_30d,
    sumIf(payout_scaled, status = 'approved' AND ts >= toDateTime(?)) AS payout_30d
FROM
(
    SELECT
        conversion_id,
        argMax(partner_id, version) AS partner_id,
        argMax(ts, version) AS ts,
        argMax(status, version) AS status,
        toInt64(argMax(payout, version) * 10000) AS payout_scaled
    FROM {database}.conversions
    GROUP BY conversion_id
)
WHERE partner_id != 0 AND status IN ('approved', 'pending')
GROUP BY partner_id
