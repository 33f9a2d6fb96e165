-- Attachments (docs/PROTOCOL.md §2.10). A file is uploaded to a conversation first, then claimed
-- by one message of its uploader in the same transaction as the message (message_id, sent_seq).
-- The file itself is in the storage (a directory or S3) under a key made from the two ids, never
-- from its name. deleted_at marks a file being removed: the row goes once storage forgot it.
CREATE TABLE attachments (
    id              UUID PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    uploader_id     UUID NOT NULL REFERENCES users (id),
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL CHECK (size >= 0),
    width           INTEGER,
    height          INTEGER,
    -- The thumbnail's content type; NULL when there is none (not an image).
    thumbnail_type  TEXT,
    message_id      UUID REFERENCES messages (id) ON DELETE CASCADE,
    sent_seq        BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    CHECK ((message_id IS NULL) = (sent_seq IS NULL))
);
-- A conversation's files, newest message first (the list endpoint).
CREATE INDEX attachments_by_conversation ON attachments (conversation_id, sent_seq DESC, id DESC)
    WHERE sent_seq IS NOT NULL AND deleted_at IS NULL;
-- A user's stored bytes (the quota).
CREATE INDEX attachments_by_uploader ON attachments (uploader_id);
-- Uploads never sent, and removals to finish (the sweeper).
CREATE INDEX attachments_unsent ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_deleted ON attachments (deleted_at) WHERE deleted_at IS NOT NULL;

-- A message's attachments as the wire shows them (without their signed URLs), as JSON: read
-- with the message, without a join on the hot path of history. '' for none.
ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '';
