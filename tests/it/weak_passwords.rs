//! Registration refuses the most common passwords and the username, with a clear `bad_request`.

use serde_json::json;

use crate::common::*;

backends!(common_passwords_and_the_username_are_refused);

async fn common_passwords_and_the_username_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    for password in ["password", "12345678", "password123", "qwertyuiop", "iloveyou1"] {
        let got = server.post(None, "/api/auth/register", json!({"username": "ada", "password": password})).await;
        let message = assert_error(&got, 400, "bad_request");
        assert!(message.contains("common"), "{password}: {message}");
    }
    let got =
        server.post(None, "/api/auth/register", json!({"username": "ada.lovelace", "password": "Ada.Lovelace"})).await;
    let message = assert_error(&got, 400, "bad_request");
    assert!(message.contains("username"), "{message}");
    // A password that is neither gets in.
    let got = server.post(None, "/api/auth/register", json!({"username": "ada", "password": PASSWORD})).await;
    assert_eq!(got.0, 201, "{}", got.1);
    server.stop().await;
}
