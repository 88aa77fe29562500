//! Property tests over everything that parses outside input: configuration, rules, host and
//! path matching, `Accept` negotiation, and whole requests. (cargo fuzz needs a nightly
//! toolchain, which these machines cannot fetch; proptest runs in CI on stable.)

use axum::body::Body;
use http::{Method, Request, StatusCode};
use maintenance_app::{
    Config, app,
    negotiate::prefers_html,
    rules::{HostPattern, Rule, request_host},
};
use proptest::prelude::*;
use tower::ServiceExt;

const VARIABLES: [&str; 12] = [
    "MAINTENANCE_MODE",
    "MAINTENANCE_MESSAGE",
    "MAINTENANCE_TITLE",
    "MAINTENANCE_STATUS",
    "MAINTENANCE_RETRY_AFTER",
    "MAINTENANCE_UNTIL",
    "MAINTENANCE_STATUS_HEADER",
    "MAINTENANCE_CONFIG",
    "MAINTENANCE_HEALTH_PATH",
    "MAINTENANCE_HEADER_TIMEOUT",
    "PORT",
    "LOG_FORMAT",
];

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn domain() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..4).prop_map(|l| l.join("."))
}

fn default_policy() -> maintenance_app::config::Policy {
    Config::from_vars([]).expect("defaults").default
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any value of any variable either configures the app or is rejected with a message that
    /// names that variable; it never panics.
    #[test]
    fn any_variable_value_is_accepted_or_named_in_the_error(index in 0..VARIABLES.len(), value in ".{0,80}") {
        let name = VARIABLES[index];
        if let Err(e) = Config::from_vars([(name, value.as_str())]) {
            prop_assert!(e.to_string().starts_with(name), "{e}");
        }
    }

    /// Inline rules that are JSON of the right shape but arbitrary content never panic.
    #[test]
    fn arbitrary_inline_rules_never_panic(host in ".{0,30}", path in ".{0,30}", mode in ".{0,8}", status in 0u16..1000) {
        let rules = serde_json::json!({"rules": [{"host": host, "path": path, "mode": mode, "status": status}]}).to_string();
        if let Err(e) = Config::from_vars([("MAINTENANCE_CONFIG", rules.as_str())]) {
            prop_assert!(e.to_string().starts_with("MAINTENANCE_CONFIG"), "{e}");
        }
    }

    #[test]
    fn exact_host_matches_itself_in_any_case_with_or_without_port(host in domain(), port in 1u16..65535, upper in any::<bool>()) {
        let rule = Rule::new(HostPattern::parse(&host).expect("valid host"), None, default_policy());
        let sent = if upper { host.to_ascii_uppercase() } else { host.clone() };
        prop_assert!(rule.matches(&request_host(&sent), "/"));
        let with_port = format!("{sent}:{port}");
        prop_assert!(rule.matches(&request_host(&with_port), "/x"));
        let other = format!("x{host}");
        prop_assert!(!rule.matches(&request_host(&other), "/"));
    }

    #[test]
    fn wildcard_matches_subdomains_but_not_the_domain_itself(sub in label(), domain in domain()) {
        let rule = Rule::new(HostPattern::parse(&format!("*.{domain}")).expect("valid"), None, default_policy());
        let subdomain = format!("{sub}.{domain}");
        prop_assert!(rule.matches(&request_host(&subdomain), "/"));
        prop_assert!(!rule.matches(&request_host(&domain), "/"));
        let lookalike = format!("{sub}{domain}");
        prop_assert!(!rule.matches(&request_host(&lookalike), "/"));
    }

    #[test]
    fn path_prefix_matches_whole_segments_only(prefix in "(/[a-z]{1,6}){1,3}", rest in "[a-z]{1,6}") {
        let rule = Rule::new(HostPattern::Any, Some(prefix.clone()), default_policy());
        prop_assert!(rule.matches("h", &prefix));
        let below = format!("{prefix}/{rest}");
        let beside = format!("{prefix}{rest}");
        prop_assert!(rule.matches("h", &below));
        prop_assert!(!rule.matches("h", &beside));
    }

    #[test]
    fn request_host_is_lower_case_and_never_panics(raw in ".{0,60}") {
        let host = request_host(&raw);
        prop_assert_eq!(host.to_ascii_lowercase(), host.as_ref());
    }

    /// Negotiation never panics, and naming HTML first at full quality always gets HTML.
    #[test]
    fn accept_negotiation_is_total_and_respects_an_explicit_html_preference(rest in "[ -~]{0,80}") {
        let _ = prefers_html(Some(rest.as_bytes()));
        let accept = format!("text/html, {rest}");
        let explicit_json_at_full_quality = rest.split(',').any(|r| {
            let r = r.trim().to_ascii_lowercase();
            let media = r.split(';').next().unwrap_or("").trim().to_owned();
            (media == "application/json" || media.ends_with("+json")) && !r.contains("q=")
        });
        if !explicit_json_at_full_quality {
            prop_assert!(prefers_html(Some(accept.as_bytes())), "{accept}");
        }
    }

    #[test]
    fn accept_without_html_gets_json(rest in "(application|image|audio)/[a-z+]{1,10}(;q=0\\.[0-9])?(, (application|image)/[a-z]{1,8})*") {
        prop_assert!(!prefers_html(Some(rest.as_bytes())), "{rest}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever the method, path and headers, the answer is a maintenance answer: never 404,
    /// 405 or 5xx other than the configured 503.
    #[test]
    fn any_request_gets_a_maintenance_answer(
        mode in prop::sample::select(vec!["html", "503", "json", "auto", "compat"]),
        method in "[A-Z]{1,10}",
        path in "(/[a-zA-Z0-9%._~<>'\"-]{0,12}){1,4}",
        accept in "[ -~]{0,40}",
        host in "[ -~]{0,40}",
    ) {
        let cfg = Config::from_vars([("MAINTENANCE_MODE", mode)]).expect("valid");
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Ok(()) };
        let Ok(request) = Request::builder().method(method).uri(&path).header("accept", &accept).header("host", &host).body(Body::empty()) else {
            return Ok(());
        };
        let response = rt.block_on(app(&cfg).oneshot(request)).expect("infallible");
        let status = response.status();
        prop_assert!(status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED, "{status}");
        prop_assert!(!status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE, "{status}");
        prop_assert_eq!(response.headers().get("x-maintenance-app").map(|v| v.as_bytes()), Some(&b"cf-maintenance"[..]));
    }
}
