-- Attachments: the same table as migrations/postgres (read the comments there).
CREATE TABLE attachments (
    id              BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    uploader_id     BLOB NOT NULL REFERENCES users (id),
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL CHECK (size >= 0),
    width           INTEGER,
    height          INTEGER,
    thumbnail_type  TEXT,
    message_id      BLOB REFERENCES messages (id) ON DELETE CASCADE,
    sent_seq        BIGINT,
    created_at      BIGINT NOT NULL,
    deleted_at      BIGINT,
    CHECK ((message_id IS NULL) = (sent_seq IS NULL))
);
CREATE INDEX attachments_by_conversation ON attachments (conversation_id, sent_seq DESC, id DESC)
    WHERE sent_seq IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX attachments_by_uploader ON attachments (uploader_id);
CREATE INDEX attachments_unsent ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_deleted ON attachments (deleted_at) WHERE deleted_at IS NOT NULL;

ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '';
