-- The dashboard's named accounts, server-side sessions and audit log (mailroom/web, docs/web.md).

-- An account logs in with its own password (argon2id hash, never the password) and has one
-- role: viewer (reads), operator (also tests mailboxes, retries dead letters), admin (also
-- reads the audit log). A disabled account cannot log in and has no sessions.
CREATE TABLE web_accounts (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    password_hash text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);

-- One row per logged-in browser. The cookie holds a random token; only its SHA-256 is stored,
-- so reading this table logs no one in. Logout deletes the row, a password change or disable
-- deletes the account's rows: a copied cookie stops working at once.
CREATE TABLE web_sessions (
    token_hash text PRIMARY KEY,
    account_id integer NOT NULL REFERENCES web_accounts (id) ON DELETE CASCADE,
    csrf text NOT NULL,
    address text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_account ON web_sessions (account_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- Every change made through the dashboard or `mailroom web user`: who, what, when, from where.
CREATE TABLE web_audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL DEFAULT '',
    detail jsonb NOT NULL DEFAULT '{}'::jsonb,
    address text NOT NULL DEFAULT ''
);
CREATE INDEX web_audit_at ON web_audit (at);
