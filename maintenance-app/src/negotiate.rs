//! `Accept` negotiation for `auto` mode: HTML for browsers, JSON for everything else.

/// How specifically a media range names a target type (RFC 9110 §12.5.1: the most specific
/// range that matches decides the quality).
#[derive(Debug, Clone, Copy, Default)]
struct Best {
    specificity: u8,
    q: f32,
}

impl Best {
    fn consider(&mut self, specificity: u8, q: f32) {
        if specificity > self.specificity {
            *self = Best { specificity, q };
        } else if specificity == self.specificity && specificity > 0 && q > self.q {
            self.q = q;
        }
    }
}

/// True when the client would rather have HTML than JSON.
///
/// Browsers always name `text/html`; API clients name JSON, `*/*` or nothing. A tie goes to HTML
/// only when `text/html` is named outright, otherwise to JSON, the shape scripts can parse.
pub fn prefers_html(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return false;
    };
    let mut html = Best::default();
    let mut json = Best::default();
    for range in accept.split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or("").trim();
        let q = params
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0));
        let Some((kind, sub)) = media.split_once('/') else { continue };
        let (kind, sub) = (kind.trim(), sub.trim());
        html.consider(html_specificity(kind, sub), q);
        json.consider(json_specificity(kind, sub), q);
    }
    html.q > json.q || (html.q == json.q && html.q > 0.0 && html.specificity == 3)
}

fn html_specificity(kind: &str, sub: &str) -> u8 {
    let is = |a: &str, b: &str| kind.eq_ignore_ascii_case(a) && sub.eq_ignore_ascii_case(b);
    if is("text", "html") || is("application", "xhtml+xml") {
        3
    } else if is("text", "*") {
        2
    } else if is("*", "*") {
        1
    } else {
        0
    }
}

fn json_specificity(kind: &str, sub: &str) -> u8 {
    let application = kind.eq_ignore_ascii_case("application");
    let json_suffix = sub.len() >= 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json");
    if application && (sub.eq_ignore_ascii_case("json") || json_suffix) {
        3
    } else if application && sub == "*" {
        2
    } else if kind == "*" && sub == "*" {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::prefers_html;

    fn html(accept: &str) -> bool {
        prefers_html(Some(accept.as_bytes()))
    }

    #[test]
    fn browsers_get_html() {
        assert!(html("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"));
        assert!(html("text/html, application/json"));
        assert!(html("TEXT/HTML"));
        assert!(html("application/json;q=0.5, text/html"));
    }

    #[test]
    fn api_clients_get_json() {
        assert!(!prefers_html(None));
        assert!(!html(""));
        assert!(!html("*/*"));
        assert!(!html("application/json"));
        assert!(!html("application/json, text/plain, */*"));
        assert!(!html("application/problem+json"));
        assert!(!html("text/html;q=0.1, application/json"));
        assert!(!html("text/html;q=0"));
        assert!(!html("text/plain"));
        assert!(!html("garbage;;;,,/,q=x"));
    }

    #[test]
    fn invalid_bytes_get_json() {
        assert!(!prefers_html(Some(b"text/html\xff")));
    }
}
