-- Every reference record's email addresses in one table, so "who is x@example.com?" is one
-- indexed look-up across users, queues, contacts, accounts and leads.
-- record_kind + record_id point at a row of the matching table (a polymorphic reference, so no
-- foreign key: the import keeps them consistent and replaces a record's addresses as a whole).

CREATE TABLE email_addresses (
    record_kind text    NOT NULL
                        CHECK (record_kind IN ('user', 'queue', 'contact', 'account', 'lead')),
    record_id   text    NOT NULL,
    -- Normalised: trimmed and lower-cased (the brief compares addresses case-insensitively).
    address     text    NOT NULL CHECK (address = lower(btrim(address)) AND address LIKE '_%@_%'),
    is_primary  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (record_kind, record_id, address)
);

-- The look-up route makes for every From/To/Cc address.
CREATE INDEX email_addresses_address ON email_addresses (address);

-- At most one primary address per record.
CREATE UNIQUE INDEX email_addresses_one_primary
    ON email_addresses (record_kind, record_id) WHERE is_primary;

-- A user's or queue's address identifies a mailbox owner (and the forwarding user of a forward
-- mailbox): it must name exactly one of them. Contacts, accounts and leads may share addresses,
-- as they do in real CRMs; route breaks those ties.
CREATE UNIQUE INDEX email_addresses_mailbox_owner
    ON email_addresses (address) WHERE record_kind IN ('user', 'queue');
