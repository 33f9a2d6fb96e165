-- Parley inside a host product (docs/PROTOCOL.md §7).
--  * users are also known by the host's own id (external_id), with an avatar and free metadata;
--  * a conversation may be tied to a business object (context), carry metadata, end
--    (context_ends_at, for automatic archival) and be archived (read-only) or restored;
--  * a member may be an observer (reads, never posts), and may hide the conversation from
--    their own list until a message after hidden_seq;
--  * a system message carries its template, parameters and language (JSON, '' for none);
--  * the system user: the sender of the messages the service posts. Never a member.

ALTER TABLE users ADD COLUMN external_id TEXT UNIQUE;
ALTER TABLE users ADD COLUMN avatar_url TEXT;
ALTER TABLE users ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';

ALTER TABLE conversations ADD COLUMN context_type TEXT;
ALTER TABLE conversations ADD COLUMN context_id TEXT;
ALTER TABLE conversations ADD COLUMN context_ends_at TIMESTAMPTZ;
ALTER TABLE conversations ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE conversations ADD COLUMN archived_at TIMESTAMPTZ;
ALTER TABLE conversations ADD COLUMN restored_at TIMESTAMPTZ;
ALTER TABLE conversations ADD CONSTRAINT conversations_context_whole
    CHECK ((context_type IS NULL) = (context_id IS NULL));
-- One group per business object (a direct conversation's context is part of its direct_key).
CREATE UNIQUE INDEX conversations_group_context ON conversations (context_type, context_id)
    WHERE kind = 'group' AND context_type IS NOT NULL;
-- Lists and filters by business object.
CREATE INDEX conversations_by_context ON conversations (context_type, context_id)
    WHERE context_type IS NOT NULL;
-- The archival sweep: open conversations whose context has ended.
CREATE INDEX conversations_archive_due ON conversations (context_ends_at)
    WHERE archived_at IS NULL AND context_ends_at IS NOT NULL;

ALTER TABLE members DROP CONSTRAINT members_role_check;
ALTER TABLE members ADD CONSTRAINT members_role_check CHECK (role IN ('owner', 'member', 'observer'));
ALTER TABLE members ADD COLUMN hidden_seq BIGINT;

ALTER TABLE messages ADD COLUMN system TEXT NOT NULL DEFAULT '';

INSERT INTO users (id, username, display_name, password_hash, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000', 'Parley', NULL, now());
