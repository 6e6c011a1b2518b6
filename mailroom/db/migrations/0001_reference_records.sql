-- The CRM reference records every stage needs, loaded with `mailroom import KIND FILE.csv`.
-- Ids are the natural ids from the CSV files (e.g. 'u-alice'): route's plans name records by
-- these ids, so they are the primary keys; no surrogate key is needed.
-- No schema is ever named here: the runner applies this into the connection's current schema.

CREATE TABLE users (
    id          text        PRIMARY KEY CHECK (id <> ''),
    full_name   text        NOT NULL CHECK (full_name <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE users IS 'CRM users: mailbox owners and record owners.';

CREATE TABLE queues (
    id          text        PRIMARY KEY CHECK (id <> ''),
    name        text        NOT NULL CHECK (name <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE queues IS 'CRM queues (shared mailboxes such as support@).';

-- owner_id: the user who owns the record; when several records match one address, a record
-- owned by the mailbox owner wins the tie (route). Optional: unowned records exist in CRMs.
CREATE TABLE accounts (
    id          text        PRIMARY KEY CHECK (id <> ''),
    name        text        NOT NULL CHECK (name <> ''),
    owner_id    text        REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contacts (
    id          text        PRIMARY KEY CHECK (id <> ''),
    first_name  text        NOT NULL DEFAULT '',
    last_name   text        NOT NULL DEFAULT '',
    account_id  text        REFERENCES accounts (id),
    owner_id    text        REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (first_name <> '' OR last_name <> '')
);

CREATE TABLE leads (
    id          text        PRIMARY KEY CHECK (id <> ''),
    first_name  text        NOT NULL DEFAULT '',
    last_name   text        NOT NULL DEFAULT '',
    company     text        NOT NULL DEFAULT '',
    owner_id    text        REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (first_name <> '' OR last_name <> '' OR company <> '')
);

CREATE INDEX accounts_owner ON accounts (owner_id);
CREATE INDEX contacts_owner ON contacts (owner_id);
CREATE INDEX contacts_account ON contacts (account_id);
CREATE INDEX leads_owner ON leads (owner_id);
