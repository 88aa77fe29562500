//! List query parameters and pagination, as CC does them (`paginated_list_presenter.rb`,
//! `pagination_options.rb`, `base_message.rb`): default 50 per page, at most 5000, `total_pages` at
//! least 1, absolute `first`/`last`/`next`/`previous` hrefs whose query is the request's filters
//! plus `page`, `per_page` and the ordering, rendered by Rails `Hash#to_query` (see [`page_href`]).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{error::ApiError, selector::Selector};

/// Default page size.
pub const DEFAULT_PER_PAGE: usize = 50;
/// Largest page size.
pub const MAX_PER_PAGE: usize = 5000;

/// The pagination keys every list accepts, in CC's order (they lead the "Valid parameters" text).
pub const PAGINATION_KEYS: &[&str] = &["page", "per_page", "order_by", "created_ats", "updated_ats"];

/// A list request's parsed query.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// 1-based page.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// `order_by` as sent (e.g. `-created_at`).
    pub order_by: Option<String>,
    /// Filters (everything but page/per_page/order_by), raw values.
    pub filters: BTreeMap<String, String>,
    /// The parsed `label_selector`, if sent.
    pub selector: Option<Selector>,
    /// A `label_selector` with a requirement no pattern takes, on an endpoint that does not
    /// validate it (routes): CC's fetcher calls a method on `nil` there, a 500.
    pub selector_unparsable: bool,
    /// The `include` values, split like every list filter.
    pub include: Vec<String>,
}

impl ListQuery {
    /// Values of a comma-separated filter, split as CC's `BaseMessage.to_array!` does; `hosts=`
    /// means `[""]`.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.filters.get(key).map(|v| to_array(v))
    }

    /// Whether `value` passes the filter `key` (true when the filter is absent).
    pub fn allows(&self, key: &str, value: &str) -> bool {
        self.list(key).is_none_or(|values| values.iter().any(|v| v == value))
    }

    /// Whether `labels` pass the label selector (true when absent).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }

    /// Whether `include` names any of `what` (the decorators' `match?`: `include&.intersect?`).
    pub fn includes(&self, what: &[&str]) -> bool {
        self.include.iter().any(|i| what.contains(&i.as_str()))
    }
}

/// What one endpoint's message class accepts.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// `allowed_keys` after the pagination keys, in CC's order (the "Valid parameters" text).
    pub keys: &'a [&'a str],
    /// `valid_order_by_values`.
    pub order_by: &'a [&'a str],
    /// `IncludeParamValidator`'s `valid_values`; empty when the message has none.
    pub include: &'a [&'a str],
    /// A `MetadataListMessage` (validates `label_selector`); `RoutesListMessage` is not one.
    pub selector_validated: bool,
    /// A `ListMessage` (page, per_page, order_by, created_ats, updated_ats); show messages are
    /// plain `BaseMessage`s.
    pub paginated: bool,
}

impl<'a> Rules<'a> {
    /// A `MetadataListMessage` with `keys` and `order_by`.
    pub const fn list(keys: &'a [&'a str], order_by: &'a [&'a str]) -> Rules<'a> {
        Rules { keys, order_by, include: &[], selector_validated: true, paginated: true }
    }

    /// A show message (`AppShowMessage`, `RouteShowMessage`, `SpaceShowMessage`).
    pub const fn show(keys: &'a [&'a str], include: &'a [&'a str]) -> Rules<'a> {
        Rules { keys, order_by: &[], include, selector_validated: false, paginated: false }
    }

    /// The same rules with `IncludeParamValidator` values.
    pub const fn with_include(self, include: &'a [&'a str]) -> Rules<'a> {
        Rules { include, ..self }
    }
}

/// Parses a raw query string against the endpoint's allowed keys (pagination keys included).
pub fn parse(raw: Option<&str>, allowed: &[&str], order_by: &[&str]) -> Result<ListQuery, ApiError> {
    check(raw, &Rules::list(allowed, order_by)).map_err(|e| ApiError::bad_query(&e.join(", ")))
}

/// Parses a raw query string as `rules`' message class would; the error is CC's
/// `errors.full_messages`, in CC's order: the `ListMessage` validators (page, per_page,
/// order_by), then `MetadataListMessage`'s label selector, then the class's own
/// (`NoAdditionalParamsValidator`, `IncludeParamValidator`); cloud_controller_ng
/// `app/messages/list_message.rb`, `metadata_list_message.rb`, `base_message.rb`.
pub fn check(raw: Option<&str>, rules: &Rules<'_>) -> Result<ListQuery, Vec<String>> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect();
    let pagination: &[&str] = if rules.paginated { PAGINATION_KEYS } else { &[] };
    let valid: Vec<&str> = pagination.iter().chain(rules.keys).copied().collect();
    // Rails keeps the last of repeated keys.
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    let mut unknown: Vec<String> = Vec::new();
    for (k, v) in pairs {
        if !valid.contains(&k.as_str()) && !unknown.contains(&k) {
            unknown.push(k.clone());
        }
        given.insert(k, v);
    }
    let mut errors = Vec::new();
    let mut query = ListQuery { page: 1, per_page: DEFAULT_PER_PAGE, ..ListQuery::default() };
    if rules.paginated {
        // CC reads both with Ruby's String#to_i (list_message.rb#validate_page, #validate_per_page):
        // "2x" is 2; anything not above 0 is "must be a positive integer", and only a positive
        // per_page over 5000 is "must be between 1 and 5000".
        if let Some(value) = given.get("page") {
            match ruby_to_i(value) {
                p if p >= 1 => query.page = usize::try_from(p).unwrap_or(usize::MAX),
                _ => errors.push("Page must be a positive integer".to_owned()),
            }
        }
        if let Some(value) = given.get("per_page") {
            match ruby_to_i(value) {
                p if p < 1 => errors.push("Per page must be a positive integer".to_owned()),
                p => match usize::try_from(p) {
                    Ok(p) if p <= MAX_PER_PAGE => query.per_page = p,
                    _ => errors.push(format!("Per page must be between 1 and {MAX_PER_PAGE}")),
                },
            }
        }
        // PaginationOrderValidator runs only for a present (non-blank) order_by.
        if let Some(value) = given.get("order_by").filter(|v| !v.trim().is_empty()) {
            let field = value.strip_prefix(['-', '+']).unwrap_or(value);
            if rules.order_by.contains(&field) {
                query.order_by = Some(value.clone());
            } else {
                let can = rules.order_by.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", ");
                errors.push(format!("Order by can only be: {can}"));
            }
        }
    }
    if let Some(value) = given.get("label_selector").filter(|_| rules.keys.contains(&"label_selector")) {
        if rules.selector_validated {
            match Selector::parse(value) {
                Ok(s) => query.selector = Some(s),
                Err(e) => errors.push(e.0),
            }
        } else {
            let scanned = Selector::scan(value);
            query.selector_unparsable = scanned.iter().any(Option::is_none);
            query.selector = Some(Selector { requirements: scanned.into_iter().flatten().collect() });
        }
    }
    if !unknown.is_empty() {
        let quote = |v: &[&str]| v.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
        let unknown: Vec<&str> = unknown.iter().map(String::as_str).collect();
        errors.push(format!(
            "Unknown query parameter(s): {}. Valid parameters are: {}",
            quote(&unknown),
            quote(&valid)
        ));
    }
    if let Some(value) = given.get("include").filter(|_| valid.contains(&"include")) {
        query.include = to_array(value);
        let mut seen: Vec<&str> = Vec::new();
        for candidate in &query.include {
            if rules.include.contains(&candidate.as_str()) {
                if seen.iter().filter(|s| **s == candidate.as_str()).count() == 1 {
                    errors.push(format!("Duplicate included resource: '{candidate}'"));
                }
                seen.push(candidate);
            } else {
                errors.push(format!(
                    "Invalid included resource: '{candidate}'. Valid included resources are: '{}'",
                    rules.include.join("', '")
                ));
            }
        }
    }
    for (key, value) in given {
        if !matches!(key.as_str(), "page" | "per_page" | "order_by") || !rules.paginated {
            query.filters.insert(key, value);
        }
    }
    if errors.is_empty() { Ok(query) } else { Err(errors) }
}

/// One page of `items` and the `pagination` object for `base_url` + `path`.
pub fn paginate<T: Clone>(items: &[T], query: &ListQuery, base_url: &str, path: &str) -> (Vec<T>, Value) {
    let total = items.len();
    let total_pages = total.div_ceil(query.per_page).max(1);
    let start = (query.page - 1).saturating_mul(query.per_page).min(total);
    let end = start.saturating_add(query.per_page).min(total);
    let href = |page: usize| json!({ "href": page_href(query, base_url, path, page) });
    let pagination = json!({
        "total_results": total,
        "total_pages": total_pages,
        "first": href(1),
        "last": href(total_pages),
        "next": if query.page < total_pages { href(query.page + 1) } else { Value::Null },
        "previous": if query.page > 1 { href(query.page - 1) } else { Value::Null },
    });
    (items[start..end].to_vec(), pagination)
}

/// The href of one page, as `PaginatedListPresenter#present_pagination_hash` builds it:
/// `{per_page:}` merged with the ordering (`OrderByMapper.to_param_hash`: only when `order_by`
/// was sent, and with an explicit direction, so `order_by=name` comes back as `+name`) and the
/// requested filters (`BaseMessage#to_param_hash`: list filters re-joined with `,` after
/// `to_array!`, a `,` inside a value as `%2C`), then `page`, through Rails `Hash#to_query`, which
/// CGI-escapes each key and value and sorts the `key=value` strings.
fn page_href(query: &ListQuery, base_url: &str, path: &str, page: usize) -> String {
    let mut params: Vec<(String, String)> = query
        .filters
        .iter()
        .map(|(k, v)| {
            let v = if SCALAR_KEYS.contains(&k.as_str()) {
                v.clone()
            } else {
                to_array(v).iter().map(|x| x.replace(',', "%2C")).collect::<Vec<_>>().join(",")
            };
            (k.clone(), v)
        })
        .collect();
    params.push(("per_page".to_owned(), query.per_page.to_string()));
    if let Some(o) = &query.order_by {
        let explicit = if o.starts_with(['+', '-']) { o.clone() } else { format!("+{o}") };
        params.push(("order_by".to_owned(), explicit));
    }
    params.push(("page".to_owned(), page.to_string()));
    let mut pairs: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", cgi_escape(k), cgi_escape(v))).collect();
    pairs.sort();
    format!("{base_url}{path}?{}", pairs.join("&"))
}

/// Query keys CC keeps as plain strings (not in any list message's `to_array_keys`).
const SCALAR_KEYS: &[&str] = &["label_selector", "lifecycle_type"];

/// CC's `BaseMessage.to_array!`: `''` is `['']`; otherwise split on `/,\s*/` keeping empty
/// pieces, each piece `Addressable::URI.unescape`d.
pub fn to_array(value: &str) -> Vec<String> {
    value
        .split(',')
        .enumerate()
        .map(|(i, piece)| {
            let piece =
                if i == 0 { piece } else { piece.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b') };
            percent_decode(piece)
        })
        .collect()
}

/// `Addressable::URI.unescape`: `%XX` becomes the byte, everything else (`+` too) stays.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Ruby's `CGI.escape`: `a-zA-Z0-9_.-~` stay, space becomes `+`, every other byte `%XX`. It differs
/// from `application/x-www-form-urlencoded` on `~` (kept) and `*` (escaped).
fn cgi_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Ruby's `String#to_i`: optional leading whitespace and sign, then digits up to the first
/// non-digit; 0 when there are none (saturating instead of growing a bignum).
fn ruby_to_i(s: &str) -> i64 {
    let s = s.trim_start();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut n: i64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(10) else { break };
        n = n.saturating_mul(10).saturating_add(i64::from(d));
    }
    if negative { -n } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers_are_read_like_ruby_to_i() {
        assert_eq!((ruby_to_i("2x"), ruby_to_i("abc"), ruby_to_i("-3"), ruby_to_i(" 7")), (2, 0, -3, 7));
    }

    #[test]
    fn empty_list_has_one_page_and_no_neighbours() {
        let q = parse(None, &[], &["created_at"]).expect("valid");
        let (items, p) = paginate::<u8>(&[], &q, "http://api", "/v3/routes");
        assert!(items.is_empty());
        assert_eq!(p["total_pages"], 1);
        assert_eq!(p["last"]["href"], "http://api/v3/routes?page=1&per_page=50");
        assert!(p["next"].is_null() && p["previous"].is_null());
    }

    #[test]
    fn hrefs_keep_filters_sorted_and_encoded() {
        let q = parse(Some("space_guids=a,b&per_page=2&page=2"), &["space_guids"], &[]).expect("valid");
        let (items, p) = paginate(&[1, 2, 3, 4, 5], &q, "http://api", "/v3/routes");
        assert_eq!(items, [3, 4]);
        assert_eq!(p["next"]["href"], "http://api/v3/routes?page=3&per_page=2&space_guids=a%2Cb");
        assert_eq!(p["previous"]["href"], "http://api/v3/routes?page=1&per_page=2&space_guids=a%2Cb");
    }

    /// The hrefs CC renders: `order_by` gains its explicit `+`, escaped as `%2B`; list filters are
    /// re-joined after `to_array!` (`a, b` → `a%2Cb`); `label_selector` stays one string; `~` is
    /// kept and `*` escaped (CGI.escape).
    #[test]
    fn hrefs_render_order_by_and_filters_like_ccs_to_query() {
        let q = parse(
            Some("order_by=name&names=a,%20b&label_selector=env%3Dprod&per_page=1&hosts=x~y*"),
            &["names", "label_selector", "hosts"],
            &["name"],
        )
        .expect("valid");
        let (_, p) = paginate(&[1, 2], &q, "http://api", "/v3/apps");
        assert_eq!(
            p["next"]["href"],
            "http://api/v3/apps?hosts=x~y%2A&label_selector=env%3Dprod&names=a%2Cb&order_by=%2Bname&page=2&per_page=1"
        );
        let q = parse(Some("order_by=-created_at"), &[], &["created_at"]).expect("valid");
        let (_, p) = paginate::<u8>(&[], &q, "http://api", "/v3/apps");
        assert_eq!(p["first"]["href"], "http://api/v3/apps?order_by=-created_at&page=1&per_page=50");
    }

    #[test]
    fn list_filters_split_like_to_array() {
        let q = parse(Some("names=a,%20b,,c%252Cd"), &["names"], &[]).expect("valid");
        assert_eq!(q.list("names").expect("sent"), ["a", "b", "", "c,d"]);
        assert!(q.allows("names", "b"));
    }

    #[test]
    fn bad_values_are_400() {
        for raw in ["per_page=0", "per_page=5001", "per_page=x", "page=0", "foo=1"] {
            let e = parse(Some(raw), &[], &[]).expect_err(raw);
            assert_eq!(e.title, "CF-BadQueryParameter", "{raw}");
        }
    }
}
