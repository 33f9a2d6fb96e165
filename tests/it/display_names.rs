//! Display names cannot disguise themselves: bidirectional overrides and isolates, control
//! characters and names of only invisible characters are refused at registration, and cleaned
//! from the names that identity-system tokens carry.

use serde_json::json;

use crate::common::*;

backends!(disguising_display_names_are_refused, token_names_are_cleaned);

async fn disguising_display_names_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let disguises = [
        "invoice\u{202E}gnp.exe",
        "\u{2067}admin\u{2069}",
        "\u{200B}\u{200B}\u{200B}",
        "\u{3164}",
        "bell\u{7}",
        "line\nbreak",
    ];
    for (n, name) in disguises.iter().enumerate() {
        let body = json!({"username": format!("user{n}"), "password": PASSWORD, "display_name": name});
        let got = server.post(None, "/api/auth/register", body).await;
        assert_error(&got, 400, "bad_request");
    }
    // Right-to-left text itself is welcome.
    let body = json!({"username": "maryam", "password": PASSWORD, "display_name": "مريم"});
    let (status, body) = server.post(None, "/api/auth/register", body).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["display_name"], "مريم");
    server.stop().await;
}

async fn token_names_are_cleaned(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = token_for(json!({"sub": fresh_sub(), "exp": now_secs() + 600, "name": "invoice\u{202E}gnp.exe"}));
    let (status, me) = server.get(Some(&bearer(&token)), "/api/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["display_name"], "invoicegnp.exe");
    server.stop().await;
}
