-- Parley inside a host product: the same as migrations/postgres (read the comments there).
-- SQLite cannot change a CHECK constraint, so members is rebuilt to admit the observer role.

ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_external_id ON users (external_id);
ALTER TABLE users ADD COLUMN avatar_url TEXT;
ALTER TABLE users ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';

ALTER TABLE conversations ADD COLUMN context_type TEXT;
-- (SQLite cannot add a constraint over two columns to a table: the store sets both or neither.)
ALTER TABLE conversations ADD COLUMN context_id TEXT;
ALTER TABLE conversations ADD COLUMN context_ends_at BIGINT;
ALTER TABLE conversations ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE conversations ADD COLUMN archived_at BIGINT;
ALTER TABLE conversations ADD COLUMN restored_at BIGINT;
CREATE UNIQUE INDEX conversations_group_context ON conversations (context_type, context_id)
    WHERE kind = 'group' AND context_type IS NOT NULL;
CREATE INDEX conversations_by_context ON conversations (context_type, context_id)
    WHERE context_type IS NOT NULL;
CREATE INDEX conversations_archive_due ON conversations (context_ends_at)
    WHERE archived_at IS NULL AND context_ends_at IS NOT NULL;

CREATE TABLE members_new (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'member', 'observer')),
    last_read_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    joined_at       BIGINT NOT NULL,
    hidden_seq      BIGINT,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
INSERT INTO members_new (conversation_id, user_id, role, last_read_seq, joined_at)
    SELECT conversation_id, user_id, role, last_read_seq, joined_at FROM members;
DROP TABLE members;
ALTER TABLE members_new RENAME TO members;
CREATE INDEX members_by_user ON members (user_id, conversation_id);

ALTER TABLE messages ADD COLUMN system TEXT NOT NULL DEFAULT '';

INSERT INTO users (id, username, display_name, password_hash, created_at)
VALUES (X'00000000000000000000000000000000', '00000000-0000-0000-0000-000000000000', 'Parley', NULL,
        CAST(strftime('%s', 'now') AS BIGINT) * 1000000);
