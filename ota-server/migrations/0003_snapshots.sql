-- Each rollout's latest snapshot in a table of its own: the rollout row is updated at every
-- commit (state, audit head, timeout), and SQLite rewrites a whole row, snapshot included,
-- when any column changes. The snapshot is written only every --snapshot-every records.
CREATE TABLE rollout_snapshots (
    rollout_id TEXT PRIMARY KEY,
    snapshot_seq BIGINT NOT NULL,    -- the audit record the snapshot includes
    snapshot TEXT NOT NULL
);
INSERT INTO rollout_snapshots (rollout_id, snapshot_seq, snapshot)
    SELECT rollout_id, snapshot_seq, snapshot FROM rollouts;
-- rollouts.snapshot and rollouts.snapshot_seq are no longer read.
UPDATE rollouts SET snapshot = '';
