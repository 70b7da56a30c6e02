-- The audit trail, version 1. Portable SQL: the same file migrates SQLite and PostgreSQL
-- (sqlx's Any driver). Times are Unix milliseconds (BIGINT); ids are 128 random bits in hex,
-- made where a record is born, so a record replayed from the spool is inserted at most once.

-- One row per order, from every entry point.
CREATE TABLE audit_orders (
    id               TEXT PRIMARY KEY,
    started_at       BIGINT NOT NULL,
    finished_at      BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    -- c-abi | identify | fastagi | flow-run | agent
    channel          TEXT NOT NULL,
    -- the agent's login name (agent page), else NULL
    agent            TEXT,
    -- the host's call identifier (Asterisk's uniqueid), else NULL
    call_id          TEXT,
    caller_id        TEXT,
    -- the machine that wrote it
    host             TEXT NOT NULL,
    -- identify | sign
    mode             TEXT NOT NULL,
    -- user | RP
    call_initiator   TEXT NOT NULL,
    -- complete | failed | error
    state            TEXT NOT NULL,
    hint_code        TEXT,
    error_code       TEXT,
    order_ref        TEXT,
    -- YYMMDD-XXXX: never the whole number
    pnr_masked       TEXT NOT NULL,
    -- hex HMAC-SHA-256 of the 12-digit number under the configured key
    pnr_pseudonym    TEXT NOT NULL,
    -- which key: the first 16 hex digits of SHA-256 of the key
    pseudonym_key_id TEXT NOT NULL
);
CREATE INDEX audit_orders_finished ON audit_orders (finished_at);
CREATE INDEX audit_orders_pseudonym ON audit_orders (pnr_pseudonym);

-- BankID's completionData of a complete order, exactly as it sent it (JSON text): user (with
-- the whole personal number and name), device, bankIdIssueDate, stepUp, signature,
-- ocspResponse. Only written while evidence keeping is on.
CREATE TABLE audit_evidence (
    order_id         TEXT PRIMARY KEY REFERENCES audit_orders (id) ON DELETE CASCADE,
    completion_data  TEXT NOT NULL
);

-- What agents and supervisors did on the agent page.
CREATE TABLE audit_agent_events (
    id               TEXT PRIMARY KEY,
    at               BIGINT NOT NULL,
    -- the login name (for a failed login: the name typed, bounded)
    agent            TEXT NOT NULL,
    -- login | login-failed | logout | identify-started | identify-cancelled |
    -- evidence-downloaded | records-exported
    action           TEXT NOT NULL,
    pnr_masked       TEXT,
    order_id         TEXT,
    remote           TEXT,
    host             TEXT NOT NULL
);
CREATE INDEX audit_agent_events_at ON audit_agent_events (at);

-- The agent page's sessions, shared by every instance using this database.
CREATE TABLE agent_sessions (
    -- hex SHA-256 of the cookie's secret: the table alone opens no session
    token_hash       TEXT PRIMARY KEY,
    agent            TEXT NOT NULL,
    csrf             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX agent_sessions_expires ON agent_sessions (expires_at);

-- The agent page's rate-limit counters (logins per name and per address), shared likewise.
CREATE TABLE agent_rate_limits (
    bucket           TEXT PRIMARY KEY,
    window_start     BIGINT NOT NULL,
    hits             BIGINT NOT NULL
);
