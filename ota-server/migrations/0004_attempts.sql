-- The attempt of the rollout command behind each device-level assignment (1 is the first; a
-- retry adds one), told to the device with its assignment and said back in its reports.
ALTER TABLE assignments ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
