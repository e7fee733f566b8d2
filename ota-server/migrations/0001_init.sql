-- The control plane's tables. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are Unix milliseconds (BIGINT); documents are JSON text.

-- Packages: verified DSSE statements and their artifacts in the local store.
CREATE TABLE packages (
    tenant TEXT NOT NULL,
    package_id TEXT NOT NULL,
    status TEXT NOT NULL,            -- available | rejected
    reason TEXT,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    package_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    envelope TEXT NOT NULL,          -- the DSSE envelope, as received
    encryption_key TEXT NOT NULL,    -- the AES-256 key devices open the artifact with
    signed_by TEXT NOT NULL,         -- JSON array of key ids
    object_key TEXT,                 -- the artifact in the local store (available only)
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, package_id)
);

-- Device profiles: the rollout target, and the policy a device inherits.
CREATE TABLE profiles (
    tenant TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, profile_id)
);

-- Devices: the library's DeviceProfile, the device profile it belongs to, and the SHA-256 of
-- its credential (the credential itself is shown once, at registration).
CREATE TABLE devices (
    tenant TEXT NOT NULL,
    device_id TEXT NOT NULL,
    profile_id TEXT,
    profile TEXT NOT NULL,
    credential_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, device_id)
);

-- Rollouts: the latest snapshot (taken every N audit records) and the audit head.
CREATE TABLE rollouts (
    rollout_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    package_id TEXT NOT NULL,
    rollback_package_id TEXT,
    state TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    snapshot_seq BIGINT NOT NULL,    -- the audit record the snapshot includes
    head_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    next_timeout BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX rollouts_tenant ON rollouts (tenant, created_at);

-- The audit trail: the write-ahead log of every rollout.
CREATE TABLE audit_records (
    rollout_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    at BIGINT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);

-- Device-level assignments: the package a device is to install, and why.
CREATE TABLE assignments (
    tenant TEXT NOT NULL,
    device_id TEXT NOT NULL,
    package_id TEXT NOT NULL,
    rollout_id TEXT NOT NULL,
    kind TEXT NOT NULL,              -- update | rollback
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, device_id)
);

-- Persistent device RPC: every command the engine emits, delivered when the device polls.
CREATE TABLE device_rpc (
    rpc_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    device_id TEXT NOT NULL,
    rollout_id TEXT NOT NULL,
    method TEXT NOT NULL,            -- ota_start | ota_rollback | ota_cancel
    params TEXT NOT NULL,
    state TEXT NOT NULL,             -- queued | sent | acked | cancelled | expired
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    acked_at BIGINT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_rpc_device ON device_rpc (tenant, device_id, created_at);

-- The event outbox, written with the state change; published afterwards.
CREATE TABLE outbox (
    event_id TEXT PRIMARY KEY,       -- rollout:seq:index, stable for de-duplication
    tenant TEXT NOT NULL,
    rollout_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_rollout ON outbox (rollout_id, seq, idx);
