-- 0003: conversation fingerprints, so a call finds the earlier call it continues
-- (storage/runs.py) with two index lookups instead of scanning recent rows.

ALTER TABLE traces ADD COLUMN conv_fp TEXT;
ALTER TABLE traces ADD COLUMN reply_fp TEXT;
CREATE INDEX traces_conv_fp ON traces (conv_fp) WHERE conv_fp IS NOT NULL;
CREATE INDEX traces_reply_fp ON traces (reply_fp) WHERE reply_fp IS NOT NULL;
