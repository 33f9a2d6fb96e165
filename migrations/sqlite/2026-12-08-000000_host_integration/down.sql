DELETE FROM messages WHERE sender_id = X'00000000000000000000000000000000';
DELETE FROM users WHERE id = X'00000000000000000000000000000000';
ALTER TABLE messages DROP COLUMN system;
CREATE TABLE members_old (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    last_read_seq   BIGINT NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    joined_at       BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
INSERT INTO members_old SELECT conversation_id, user_id, role, last_read_seq, joined_at
    FROM members WHERE role <> 'observer';
DROP TABLE members;
ALTER TABLE members_old RENAME TO members;
CREATE INDEX members_by_user ON members (user_id, conversation_id);
DROP INDEX conversations_archive_due;
DROP INDEX conversations_by_context;
DROP INDEX conversations_group_context;
ALTER TABLE conversations DROP COLUMN restored_at;
ALTER TABLE conversations DROP COLUMN archived_at;
ALTER TABLE conversations DROP COLUMN metadata;
ALTER TABLE conversations DROP COLUMN context_ends_at;
ALTER TABLE conversations DROP COLUMN context_id;
ALTER TABLE conversations DROP COLUMN context_type;
DROP INDEX users_external_id;
ALTER TABLE users DROP COLUMN metadata;
ALTER TABLE users DROP COLUMN avatar_url;
ALTER TABLE users DROP COLUMN external_id;
