-- A trigger's condition state (threshold and sequence windows in DynamoDB, deadlines here) is
-- kept per *condition version*: the trigger's version when its pattern, condition or enabled
-- flag last changed. A rename, a new cooldown or a change to its actions (deliver-webhooks
-- disabling an action after a 410 among them) gives the trigger a new version but keeps the
-- state, so a webhook endpoint going away does not restart a 7-day sequence.
ALTER TABLE triggers ADD COLUMN condition_version bigint;
UPDATE triggers SET condition_version = version;
ALTER TABLE triggers ALTER COLUMN condition_version SET NOT NULL;
-- A new trigger is at version 1.
ALTER TABLE triggers ALTER COLUMN condition_version SET DEFAULT 1;

ALTER TABLE condition_timers RENAME COLUMN trigger_version TO condition_version;
COMMENT ON COLUMN condition_timers.condition_version IS
    'The trigger''s condition_version the row belongs to: a row of another is stale.';
