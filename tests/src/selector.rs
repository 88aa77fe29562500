//! CC's label selector: requirements joined by `,` (and), each one of `key=value`, `key==value`,
//! `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key` (exists) and `!key` (does not exist).
//! As in CC (`label_selector_query.rb`), `!=` and `notin` also match resources without the key.
//!
//! Parsing follows CC character for character (cloud_controller_ng
//! `app/models/helpers/metadata_helpers.rb`, `app/messages/list_message.rb#parse_label_selector`,
//! `app/models/helpers/label_selector_requirement.rb`): the selector is cut into requirements with
//! `REQUIREMENT_SPLITTER = /(?:\(.*?\)|[^,])+/`, so empty requirements (`a,,b`, a leading or
//! trailing `,`) vanish; nothing is trimmed, so `a, b` has a requirement ` b` that no pattern
//! takes; a requirement's values are `values.split(',')`, which drops trailing empty strings, so
//! `env=` has no values and selects nothing. Validation is
//! `app/messages/validators/label_selector_requirement_validator.rb`, one error per bad
//! requirement, in CC's words.

use std::collections::BTreeMap;

/// At most this many requirements (CC `LabelSelectorRequirementValidator::MAX_REQUIREMENTS`).
pub const MAX_REQUIREMENTS: usize = 50;

const MISSING: &str = "Missing label_selector value";
const INVALID: &str = "Invalid label_selector value";

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`, or `key in (values)`.
    In(String, Vec<String>),
    /// `key!=value` or `key notin (values)`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    NotExists(String),
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::In(k, _) | Requirement::NotIn(k, _) | Requirement::Exists(k) | Requirement::NotExists(k) => k,
        }
    }

    fn values(&self) -> &[String] {
        match self {
            Requirement::In(_, v) | Requirement::NotIn(_, v) => v,
            Requirement::Exists(_) | Requirement::NotExists(_) => &[],
        }
    }
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    /// The requirements, in the order written.
    pub requirements: Vec<Requirement>,
}

/// Why a selector was refused; CC answers 400 CF-BadQueryParameter with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

impl Selector {
    /// CC's parse without validation: one entry per requirement, `None` where no pattern matches
    /// (what `RoutesListMessage`, which has no selector validator, hands to its fetcher).
    pub fn scan(input: &str) -> Vec<Option<Requirement>> {
        split_requirements(input).into_iter().map(parse_requirement).collect()
    }

    /// Parses and validates `input` (the decoded `label_selector` value) as every
    /// `MetadataListMessage` does.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let scanned = Selector::scan(input);
        if scanned.is_empty() {
            return Err(SelectorError(MISSING.to_owned()));
        }
        if scanned.len() > MAX_REQUIREMENTS {
            return Err(SelectorError(format!("Too many label_selector requirements (maximum is {MAX_REQUIREMENTS})")));
        }
        let errors: Vec<String> = scanned.iter().filter_map(|r| requirement_error(r.as_ref())).collect();
        if !errors.is_empty() {
            return Err(SelectorError(errors.join(", ")));
        }
        Ok(Selector { requirements: scanned.into_iter().flatten().collect() })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

// `valid_requirement?`: the key's error first, then the first bad value's.
fn requirement_error(r: Option<&Requirement>) -> Option<String> {
    let Some(r) = r else { return Some(INVALID.to_owned()) };
    crate::metadata::key_error(r.key())
        .or_else(|| r.values().iter().find_map(|v| crate::metadata::label_value_error(v)))
}

/// `label_selector.scan(/(?:\(.*?\)|[^,])+/)`: a `(` that has a `)` later on its line runs to
/// that `)` (commas inside stay); any other character but `,` is taken one by one.
fn split_requirements(input: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        let c = rest.chars().next().unwrap_or(',');
        if c == '(' {
            let line = rest.split('\n').next().unwrap_or("");
            if let Some(close) = line.find(')') {
                start.get_or_insert(i);
                i += close + 1;
                continue;
            }
        }
        if c == ',' {
            if let Some(s) = start.take() {
                out.push(&input[s..i]);
            }
        } else {
            start.get_or_insert(i);
        }
        i += c.len_utf8();
    }
    if let Some(s) = start {
        out.push(&input[s..]);
    }
    out
}

/// `KEY_CHARACTERS = %r{[\w\-._/]+}` (Ruby's `\w` is ASCII).
fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// `.*` does not cross a newline.
fn no_newline(s: &str) -> bool {
    !s.contains('\n')
}

/// `values.split(',')`: Ruby drops the trailing empty strings.
fn ruby_split(values: &str) -> Vec<String> {
    let mut v: Vec<String> = values.split(',').map(str::to_owned).collect();
    while v.last().is_some_and(String::is_empty) {
        v.pop();
    }
    v
}

/// The patterns of `REQUIREMENT_OPERATOR_PAIRS`, tried in CC's order.
fn parse_requirement(s: &str) -> Option<Requirement> {
    // IN_PATTERN / NOT_IN_PATTERN: `\A(?<key>.*?) in \((?<values>.*)\)\z`, the shortest key.
    for (word, is_in) in [(" in (", true), (" notin (", false)] {
        if no_newline(s)
            && s.ends_with(')')
            && let Some(at) = s.find(word)
            && at + word.len() < s.len()
        {
            let key = s[..at].to_owned();
            let values = ruby_split(&s[at + word.len()..s.len() - 1]);
            return Some(if is_in { Requirement::In(key, values) } else { Requirement::NotIn(key, values) });
        }
    }
    let key_len = s.find(|c: char| !key_char(c)).unwrap_or(s.len());
    let (key, rest) = s.split_at(key_len);
    if !key.is_empty() {
        // EQUAL_PATTERN `(==?)`, then NOT_EQUAL_PATTERN `(!=)`; the key is greedy, and a key
        // character cannot be `=` or `!`, so the operator starts where the key ends.
        let eq = rest.strip_prefix("==").or_else(|| rest.strip_prefix('='));
        if let Some(values) = eq.filter(|v| no_newline(v)) {
            return Some(Requirement::In(key.to_owned(), ruby_split(values)));
        }
        if let Some(values) = rest.strip_prefix("!=").filter(|v| no_newline(v)) {
            return Some(Requirement::NotIn(key.to_owned(), ruby_split(values)));
        }
        if rest.is_empty() {
            return Some(Requirement::Exists(key.to_owned()));
        }
    }
    let negated = s.strip_prefix('!')?;
    (!negated.is_empty() && negated.chars().all(key_char)).then(|| Requirement::NotExists(negated.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_operator_parses_and_matches() {
        let l = labels(&[("env", "prod"), ("tier", "web")]);
        for (selector, expected) in [
            ("env=prod", true),
            ("env==prod", true),
            ("env!=prod", false),
            ("env!=dev", true),
            ("missing!=x", true),
            ("env in (dev,prod)", true),
            ("env in (dev,qa)", false),
            ("env notin (dev,qa)", true),
            ("missing notin (dev)", true),
            ("env notin (prod)", false),
            ("tier", true),
            ("missing", false),
            ("!missing", true),
            ("!tier", false),
            ("env=prod,tier=web", true),
            ("env=prod,tier=db", false),
            ("env in (prod),!missing,tier", true),
        ] {
            let parsed = Selector::parse(selector).expect(selector);
            assert_eq!(parsed.matches(&l), expected, "{selector}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in ["", "env in (a", "env in a", "=x", "!", "env=a b", "a, b", "env in (a, b)"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The texts of label_selector_requirement_validator.rb and metadata_validator_helper.rb, and
    /// REQUIREMENT_SPLITTER dropping empty requirements.
    #[test]
    fn errors_are_ccs_texts_and_empty_requirements_vanish() {
        let err = |s: &str| Selector::parse(s).expect_err(s).0;
        assert_eq!(err(""), "Missing label_selector value");
        assert_eq!(err(","), "Missing label_selector value");
        assert_eq!(err("!"), "Invalid label_selector value");
        assert_eq!(err("a, b"), "Invalid label_selector value");
        assert_eq!(err("!,=x"), "Invalid label_selector value, Invalid label_selector value");
        assert_eq!(err("env in (a, b)"), "' b' contains invalid characters");
        assert_eq!(err("-env=a"), "'-env' starts or ends with invalid characters");
        assert_eq!(err("example/k=v"), "prefix 'example' must be in valid dns format");
        let many = vec!["a"; 51].join(",");
        assert_eq!(err(&many), "Too many label_selector requirements (maximum is 50)");
        let parsed = Selector::parse("a,,b,").expect("empty requirements are dropped");
        assert_eq!(parsed.requirements, [Requirement::Exists("a".into()), Requirement::Exists("b".into())]);
        // `env=` has no values (`"".split(',')` is empty): it selects nothing, not `env: ""`.
        let none = Selector::parse("env=").expect("valid");
        assert!(!none.matches(&labels(&[("env", "")])));
        assert_eq!(
            Selector::parse("env in (a,b,)").expect("valid").requirements[0],
            Requirement::In("env".into(), vec!["a".into(), "b".into()])
        );
    }
}
