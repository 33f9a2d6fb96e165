-- Parley's schema for SQLite: the same tables and invariants as migrations/postgres (read the
-- comments there). Ids are 16-byte BLOBs; times are microseconds since the Unix epoch (BIGINT).

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT
);

CREATE TABLE conversations (
    id         BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    kind       TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title      TEXT,
    direct_key TEXT UNIQUE,
    last_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);
CREATE INDEX conversations_by_activity ON conversations (updated_at DESC, id DESC);

CREATE TABLE members (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    last_read_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    joined_at       BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (user_id, conversation_id);

CREATE TABLE messages (
    id              BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL CHECK (seq >= 1),
    prev_seq        BIGINT CHECK ((seq = 1 AND prev_seq IS NULL) OR prev_seq = seq - 1),
    sender_id       BLOB NOT NULL REFERENCES users (id),
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'system')),
    body            TEXT NOT NULL,
    client_id       TEXT,
    created_at      BIGINT NOT NULL,
    UNIQUE (conversation_id, seq),
    FOREIGN KEY (conversation_id, prev_seq) REFERENCES messages (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (sender_id, client_id) WHERE client_id IS NOT NULL;
