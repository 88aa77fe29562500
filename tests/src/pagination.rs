//! List query parameters and pagination, as CC does them (`paginated_list_presenter.rb`,
//! `pagination_options.rb`, `base_message.rb`): default 50 per page, at most 5000, `total_pages` at
//! least 1, absolute `first`/`last`/`next`/`previous` hrefs whose query is the request's filters
//! plus `page` and `per_page`, keys sorted, values form-encoded (Rails `Hash#to_query`).

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
}

impl ListQuery {
    /// Values of a comma-separated filter; `hosts=` means `[""]` as in CC (`to_array!`).
    pub fn list(&self, key: &str) -> Option<Vec<&str>> {
        self.filters.get(key).map(|v| v.split(',').collect())
    }

    /// Whether `value` passes the filter `key` (true when the filter is absent).
    pub fn allows(&self, key: &str, value: &str) -> bool {
        self.list(key).is_none_or(|values| values.contains(&value))
    }

    /// Whether `labels` pass the label selector (true when absent).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }
}

/// Parses a raw query string against the endpoint's allowed keys (pagination keys included).
pub fn parse(raw: Option<&str>, allowed: &[&str], order_by: &[&str]) -> Result<ListQuery, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect();
    let valid: Vec<&str> = PAGINATION_KEYS.iter().chain(allowed).copied().collect();
    let unknown: Vec<String> =
        pairs.iter().filter(|(k, _)| !valid.contains(&k.as_str())).map(|(k, _)| format!("'{k}'")).collect();
    let mut errors = Vec::new();
    if !unknown.is_empty() {
        let valid = valid.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
        errors.push(format!("Unknown query parameter(s): {}. Valid parameters are: {valid}", unknown.join(", ")));
    }
    let mut query = ListQuery { page: 1, per_page: DEFAULT_PER_PAGE, ..ListQuery::default() };
    for (key, value) in pairs {
        match key.as_str() {
            // CC reads both with Ruby's String#to_i (app/messages/list_message.rb#validate_page,
            // #validate_per_page): "2x" is 2; anything not above 0 is "must be a positive integer",
            // and only a positive per_page over 5000 is "must be between 1 and 5000".
            "page" => match ruby_to_i(&value) {
                p if p >= 1 => query.page = usize::try_from(p).unwrap_or(usize::MAX),
                _ => errors.push("Page must be a positive integer".to_owned()),
            },
            "per_page" => match ruby_to_i(&value) {
                p if p < 1 => errors.push("Per page must be a positive integer".to_owned()),
                p => match usize::try_from(p) {
                    Ok(p) if p <= MAX_PER_PAGE => query.per_page = p,
                    _ => errors.push(format!("Per page must be between 1 and {MAX_PER_PAGE}")),
                },
            },
            "order_by" => {
                let field = value.strip_prefix(['-', '+']).unwrap_or(&value);
                if order_by.contains(&field) {
                    query.order_by = Some(value);
                } else {
                    let can = order_by.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", ");
                    errors.push(format!("Order by can only be: {can}"));
                }
            }
            "label_selector" => match Selector::parse(&value) {
                Ok(s) => {
                    query.selector = Some(s);
                    query.filters.insert(key, value);
                }
                Err(e) => errors.push(e.0),
            },
            _ => {
                query.filters.insert(key, value);
            }
        }
    }
    if errors.is_empty() { Ok(query) } else { Err(ApiError::bad_query(&errors.join(", "))) }
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

fn page_href(query: &ListQuery, base_url: &str, path: &str, page: usize) -> String {
    let mut params: BTreeMap<&str, String> = query.filters.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    params.insert("page", page.to_string());
    params.insert("per_page", query.per_page.to_string());
    if let Some(o) = &query.order_by {
        params.insert("order_by", o.clone());
    }
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{base_url}{path}?{encoded}")
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

    #[test]
    fn bad_values_are_400() {
        for raw in ["per_page=0", "per_page=5001", "per_page=x", "page=0", "foo=1"] {
            let e = parse(Some(raw), &[], &[]).expect_err(raw);
            assert_eq!(e.title, "CF-BadQueryParameter", "{raw}");
        }
    }
}
