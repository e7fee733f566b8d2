-- Which replica drives each rollout, until when (milliseconds since the epoch). Only
-- PostgreSQL deployments with several replicas use it (`--lease-ms`); SQLite is one replica.
CREATE TABLE rollout_leases (
    rollout_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
