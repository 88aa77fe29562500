//! Per host and path rules: one maintenance app carries the routes of several apps at once.

use crate::policy::Policy;

/// Which hosts a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Every host (`*`).
    Any,
    /// `*.example.com`: any subdomain, at any depth, of the stored suffix (kept with its dot).
    Wildcard(String),
    /// Exactly this host, lower case.
    Exact(String),
}

impl HostPattern {
    /// Parses `*`, `*.domain` or a host name; case and a trailing dot do not matter.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let trimmed = text.trim();
        let host = trimmed.strip_suffix('.').unwrap_or(trimmed).to_ascii_lowercase();
        let valid_name = |s: &str| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        };
        if host == "*" && trimmed == "*" {
            Ok(HostPattern::Any)
        } else if let Some(domain) = host.strip_prefix("*.") {
            if valid_name(domain) && !domain.starts_with('.') {
                Ok(HostPattern::Wildcard(format!(".{domain}")))
            } else {
                Err(format!("{text:?} is not a host pattern; write a host name, *.domain or *"))
            }
        } else if valid_name(&host) {
            Ok(HostPattern::Exact(host))
        } else {
            Err(format!("{text:?} is not a host pattern; write a host name (no port), *.domain or *"))
        }
    }

    /// `host` must already be lower case and without a port.
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
            HostPattern::Exact(h) => h == host,
        }
    }

    /// Exact beats wildcard beats any; a longer wildcard suffix beats a shorter one.
    fn rank(&self) -> (u8, usize) {
        match self {
            HostPattern::Any => (0, 0),
            HostPattern::Wildcard(s) => (1, s.len()),
            HostPattern::Exact(_) => (2, 0),
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    host: HostPattern,
    prefix: Option<String>,
    policy: Policy,
}

impl Rule {
    /// A rule for `host`, optionally only under the path `prefix` (normalised, no trailing `/`).
    pub fn new(host: HostPattern, prefix: Option<String>, policy: Policy) -> Rule {
        Rule { host, prefix, policy }
    }

    /// The answer settings this rule selects.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether the rule applies; `host` lower case without port.
    pub fn matches(&self, host: &str, path: &str) -> bool {
        self.host.matches(host) && self.prefix.as_deref().is_none_or(|p| path_has_prefix(path, p))
    }

    /// Orders rules: exact host over wildcard over any, then the longer path prefix.
    pub fn specificity(&self) -> (u8, usize, usize) {
        let (rank, len) = self.host.rank();
        (rank, len, self.prefix.as_ref().map_or(0, String::len))
    }
}

/// Sorts so that the first matching rule is the most specific one (stable: file order breaks ties).
pub fn most_specific_first(mut rules: Vec<Rule>) -> Vec<Rule> {
    rules.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
    rules
}

/// `/api/` and `/api` mean the same prefix; the root prefix stays `/`.
pub fn normalize_prefix(path: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(format!("{path:?} is not a path prefix; start it with '/' and leave out '?' and '#'"));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() })
}

/// `/api` is a prefix of `/api` and `/api/x`, not of `/apix`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    prefix == "/" || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The host a request is for, lower case, without port; `None` when absent.
pub fn request_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let raw = raw.trim();
    let without_port = if let Some(v6) = raw.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let host = without_port.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::policy::Mode;

    // Built by hand rather than through `Config`, which imports this module: only the title is
    // read back, to tell which rule matched.
    fn policy(title: &str) -> Policy {
        Policy {
            mode: Mode::Html,
            message: String::new(),
            title: title.to_owned(),
            status: None,
            retry_after: None,
            until: None,
            status_header: HeaderValue::from_static(""),
            page: None,
        }
    }

    fn rule(host: &str, prefix: Option<&str>) -> Rule {
        Rule::new(HostPattern::parse(host).expect("pattern"), prefix.map(str::to_owned), policy(host))
    }

    fn first<'a>(rules: &'a [Rule], host: &str, path: &str) -> Option<&'a str> {
        rules.iter().find(|r| r.matches(&request_host(host), path)).map(|r| r.policy().title.as_str())
    }

    #[test]
    fn patterns_parse_and_reject() {
        assert_eq!(HostPattern::parse("*"), Ok(HostPattern::Any));
        assert_eq!(HostPattern::parse("*.Example.com."), Ok(HostPattern::Wildcard(".example.com".into())));
        assert_eq!(HostPattern::parse("Shop.example.com"), Ok(HostPattern::Exact("shop.example.com".into())));
        for bad in ["", "a b", "a.example:8080", "*.", "**.x", "a/b", "<x>"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn most_specific_rule_wins_whatever_the_file_order() {
        let rules = most_specific_first(vec![
            rule("*", None),
            rule("*.example.com", None),
            rule("*.eu.example.com", None),
            rule("shop.example.com", None),
            rule("shop.example.com", Some("/api")),
        ]);
        assert_eq!(first(&rules, "shop.example.com", "/api/v1"), Some("shop.example.com"));
        assert_eq!(rules[0].prefix.as_deref(), Some("/api"));
        assert_eq!(first(&rules, "SHOP.example.com:443", "/apix"), Some("shop.example.com"));
        assert_eq!(first(&rules, "a.eu.example.com", "/"), Some("*.eu.example.com"));
        assert_eq!(first(&rules, "a.b.example.com", "/"), Some("*.example.com"));
        assert_eq!(first(&rules, "example.com", "/"), Some("*"));
        assert_eq!(first(&rules, "other.org", "/"), Some("*"));
    }

    #[test]
    fn path_prefix_matches_whole_segments() {
        assert!(path_has_prefix("/api", "/api"));
        assert!(path_has_prefix("/api/", "/api"));
        assert!(path_has_prefix("/api/x", "/api"));
        assert!(!path_has_prefix("/apix", "/api"));
        assert!(path_has_prefix("/anything", "/"));
    }

    #[test]
    fn request_host_strips_port_and_case() {
        assert_eq!(request_host("Example.COM:8080"), "example.com");
        assert_eq!(request_host("[::1]:8080"), "::1");
        assert_eq!(request_host("example.com."), "example.com");
        assert_eq!(request_host(""), "");
    }
}
