//! The tables, for diesel. One schema serves both backends: ids and times use the custom SQL
//! types of [`crate::types::sql`], which map to native types on PostgreSQL and to BLOB / BIGINT
//! on SQLite. Kept by hand to match `migrations/*/up.sql`.

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::sql::{TimePoint, Uuid};

    users (id) {
        id -> Uuid,
        username -> Text,
        display_name -> Text,
        password_hash -> Nullable<Text>,
        created_at -> TimePoint,
        last_seen_at -> Nullable<TimePoint>,
        tokens_valid_after -> Nullable<TimePoint>,
        external_id -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        metadata -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::sql::{TimePoint, Uuid};

    conversations (id) {
        id -> Uuid,
        kind -> Text,
        title -> Nullable<Text>,
        direct_key -> Nullable<Text>,
        last_seq -> BigInt,
        created_at -> TimePoint,
        updated_at -> TimePoint,
        context_type -> Nullable<Text>,
        context_id -> Nullable<Text>,
        context_ends_at -> Nullable<TimePoint>,
        metadata -> Text,
        archived_at -> Nullable<TimePoint>,
        restored_at -> Nullable<TimePoint>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::sql::{TimePoint, Uuid};

    members (conversation_id, user_id) {
        conversation_id -> Uuid,
        user_id -> Uuid,
        role -> Text,
        last_read_seq -> BigInt,
        joined_at -> TimePoint,
        hidden_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::sql::{TimePoint, Uuid};

    messages (id) {
        id -> Uuid,
        conversation_id -> Uuid,
        seq -> BigInt,
        prev_seq -> Nullable<BigInt>,
        sender_id -> Uuid,
        kind -> Text,
        body -> Text,
        client_id -> Nullable<Text>,
        created_at -> TimePoint,
        attachments -> Text,
        system -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::sql::{TimePoint, Uuid};

    attachments (id) {
        id -> Uuid,
        conversation_id -> Uuid,
        uploader_id -> Uuid,
        filename -> Text,
        content_type -> Text,
        size -> BigInt,
        width -> Nullable<Integer>,
        height -> Nullable<Integer>,
        thumbnail_type -> Nullable<Text>,
        message_id -> Nullable<Uuid>,
        sent_seq -> Nullable<BigInt>,
        created_at -> TimePoint,
        deleted_at -> Nullable<TimePoint>,
    }
}

diesel::joinable!(members -> conversations (conversation_id));
diesel::joinable!(members -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));

diesel::joinable!(attachments -> conversations (conversation_id));

diesel::allow_tables_to_appear_in_same_query!(users, conversations, members, messages, attachments);
