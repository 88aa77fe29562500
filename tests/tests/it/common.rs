//! Shared setup: a started double with the standard foundation and a developer token.

use http::Method;
use serde_json::Value;
use tests::{
    CfDouble, Options,
    client::{Http, Reply},
    world::Standard,
};

/// A running double, its standard seed, a client and tokens.
pub(crate) struct Env {
    pub(crate) cf: CfDouble,
    pub(crate) std: Standard,
    pub(crate) http: Http,
    /// `bearer …` for the Space Developer.
    pub(crate) dev: String,
}

impl Env {
    pub(crate) async fn new() -> Env {
        Env::with(Options::default()).await
    }

    pub(crate) async fn with(options: Options) -> Env {
        let cf = CfDouble::start(options).await.expect("double starts on loopback");
        let std = cf.seed_standard();
        let dev = cf.bearer("developer").expect("developer is seeded");
        Env { cf, std, http: Http::new(), dev }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cf.api_url())
    }

    pub(crate) fn bearer(&self, user: &str) -> String {
        self.cf.bearer(user).expect("user is seeded")
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.http.get(&self.url(path), Some(&self.dev)).await.expect("CC answers")
    }

    pub(crate) async fn get_as(&self, path: &str, auth: &str) -> Reply {
        self.http.get(&self.url(path), Some(auth)).await.expect("CC answers")
    }

    pub(crate) async fn send(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.http.json(method, &self.url(path), Some(&self.dev), body).await.expect("CC answers")
    }

    pub(crate) async fn send_as(&self, auth: &str, method: Method, path: &str, body: &Value) -> Reply {
        self.http.json(method, &self.url(path), Some(auth), body).await.expect("CC answers")
    }
}

/// A fixture file under `tests/fixtures/capi/` (copied CAPI reference data, see its README).
pub(crate) fn shared(rel: &str) -> String {
    let path = format!("{}/fixtures/capi/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// An error body file from `cc-error-bodies/`, parsed.
pub(crate) fn error_body(name: &str) -> Value {
    serde_json::from_str(&shared(&format!("cc-error-bodies/{name}.json"))).expect("error body is JSON")
}

/// Asserts `reply` is exactly the error in `cc-error-bodies/<name>.json`: status, parsed body and
/// the order of `detail`, `title`, `code` in the raw text.
pub(crate) fn assert_error(reply: &Reply, name: &str) {
    let status: u16 = name[..3].parse().expect("file names start with the status");
    assert_eq!(reply.status.as_u16(), status, "{name}: status; body {}", reply.text());
    assert_eq!(reply.json(), error_body(name), "{name}: body");
    let order = |text: &str| {
        let mut keys: Vec<(usize, &str)> =
            ["\"detail\"", "\"title\"", "\"code\""].iter().filter_map(|k| text.find(k).map(|i| (i, *k))).collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
    };
    assert_eq!(order(&reply.text()), order(&shared(&format!("cc-error-bodies/{name}.json"))), "{name}: key order");
}

/// `{"destinations":[{"app":{"guid":…}}…]}` for web destinations of `apps`.
pub(crate) fn destinations(apps: &[&str]) -> Value {
    let list: Vec<Value> = apps.iter().map(|a| serde_json::json!({ "app": { "guid": a } })).collect();
    serde_json::json!({ "destinations": list })
}
