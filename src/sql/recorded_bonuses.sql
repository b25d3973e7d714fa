-- The ids of the bonuses already recorded for periods starting in a
-- range (src/payments/bonuses.rs): a round awards none of them again.
-- Binds: the first and the last period start, unix seconds (midnight UTC).
-- params: UInt32, UInt32
SELECT bonus_id
FROM {database}.partner_bonuses
WHERE period_start >= toDate(toDateTime(?), 'UTC')
  AND period_start <= toDate(toDateTime(?), 'UTC')
GROUP BY bonus_id
