//! The S3 bucket of the tests: `PARLEY_TEST_S3_URL` (`scripts/s3-server.sh` starts a server and
//! prints it, with the credentials), and a prefix of its own in it for each test, so that no test
//! sees another's objects.

use super::skips::{self, Suite};

/// The credentials and settings a server needs besides its storage URL, as the test process has
/// them (object_store reads them from the environment).
const AWS_VARIABLES: [&str; 6] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
];

/// A prefix of the test bucket that belongs to one test.
pub struct S3Prefix {
    /// For `PARLEY_STORAGE_URL` (or `Storage::open`): the bucket, under the test's own prefix.
    pub url: String,
    env: Vec<(&'static str, String)>,
}

impl S3Prefix {
    /// A fresh prefix in the test bucket; `None` (and the test is noted as skipped) when
    /// `PARLEY_TEST_S3_URL` is unset, which fails instead when `PARLEY_REQUIRE_S3` is set.
    pub fn new() -> Option<S3Prefix> {
        let Some(base) = std::env::var("PARLEY_TEST_S3_URL").ok().filter(|url| !url.is_empty()) else {
            assert!(
                std::env::var_os("PARLEY_REQUIRE_S3").is_none(),
                "PARLEY_REQUIRE_S3 is set but PARLEY_TEST_S3_URL is not (eval \"$(scripts/s3-server.sh)\")"
            );
            skips::skipped(Suite::S3);
            return None;
        };
        skips::ran(Suite::S3);
        // Without keys object_store asks the cloud's instance metadata address for some: never
        // from a test, whose traffic stays on this machine.
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            assert!(std::env::var_os(name).is_some(), "PARLEY_TEST_S3_URL is set but {name} is not");
        }
        let mut url = url::Url::parse(&base).expect("PARLEY_TEST_S3_URL is a URL");
        let prefix = format!("{}/t-{}", url.path().trim_matches('/'), uuid::Uuid::new_v4().simple());
        url.set_path(prefix.trim_start_matches('/'));
        let env = AWS_VARIABLES.iter().filter_map(|&name| Some((name, std::env::var(name).ok()?))).collect();
        Some(S3Prefix { url: url.to_string(), env })
    }

    /// The same bucket and prefix at another endpoint (one that is down, say).
    pub fn at_endpoint(&self, endpoint: &str) -> String {
        let mut url = url::Url::parse(&self.url).expect("a URL");
        url.set_query(Some(&format!("endpoint={endpoint}")));
        url.to_string()
    }

    /// The variables to give a server process: the credentials (and region, endpoint) of the test
    /// bucket, as this process has them.
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(name, value)| (*name, value.as_str())).collect()
    }
}
