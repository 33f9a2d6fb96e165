-- Parley's schema. The invariants of PROTOCOL.md live here, not only in code:
--  * seq is unique per conversation (UNIQUE) and gapless: every message but the first names its
--    predecessor (prev_seq = seq - 1), and a foreign key makes that predecessor exist;
--  * a sender's client_id is stored once (idempotent sends);
--  * one direct conversation per pair of users: direct_key is "<lower id>:<higher id>", UNIQUE.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,          -- stored lowercase: unique regardless of case
    display_name  TEXT NOT NULL,
    password_hash TEXT,                          -- NULL for users that come from an identity system
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ
);

CREATE TABLE conversations (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title      TEXT,
    direct_key TEXT UNIQUE,
    last_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);
-- The conversation list: newest activity first.
CREATE INDEX conversations_by_activity ON conversations (updated_at DESC, id DESC);

CREATE TABLE members (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    last_read_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    joined_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id, conversation_id);

CREATE TABLE messages (
    id              UUID PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL CHECK (seq >= 1),
    prev_seq        BIGINT CHECK ((seq = 1 AND prev_seq IS NULL) OR prev_seq = seq - 1),
    sender_id       UUID NOT NULL REFERENCES users (id),
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'system')),
    body            TEXT NOT NULL,
    client_id       TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    -- History by (conversation, seq) is served by this unique index.
    UNIQUE (conversation_id, seq),
    FOREIGN KEY (conversation_id, prev_seq) REFERENCES messages (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (sender_id, client_id) WHERE client_id IS NOT NULL;
