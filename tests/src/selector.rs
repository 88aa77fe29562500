//! CC's label selector: requirements joined by `,` (and), each one of `key=value`, `key==value`,
//! `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key` (exists) and `!key` (does not exist).
//! As in CC (`label_selector_query.rb`), `!=` and `notin` also match resources without the key.

use std::collections::BTreeMap;

/// At most this many requirements (CC `LabelSelectorRequirementValidator::MAX_REQUIREMENTS`).
pub const MAX_REQUIREMENTS: usize = 50;

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
    /// Parses `input` (the decoded `label_selector` value).
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let invalid = || SelectorError("Invalid label_selector value".to_owned());
        if input.trim().is_empty() {
            return Err(SelectorError("Missing label_selector value".to_owned()));
        }
        let mut requirements = Vec::new();
        for part in split_top_level(input).ok_or_else(invalid)? {
            requirements.push(parse_requirement(part.trim()).ok_or_else(invalid)?);
        }
        if requirements.len() > MAX_REQUIREMENTS {
            return Err(SelectorError(format!("Label selector may have at most {MAX_REQUIREMENTS} requirements")));
        }
        Ok(Selector { requirements })
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

/// Splits on commas that are not inside `( … )`; `None` on unbalanced parentheses.
fn split_top_level(input: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    parts.push(&input[start..]);
    Some(parts)
}

fn parse_requirement(s: &str) -> Option<Requirement> {
    if s.is_empty() {
        return None;
    }
    if let Some(key) = s.strip_prefix('!') {
        return valid_key(key.trim()).then(|| Requirement::NotExists(key.trim().to_owned()));
    }
    if let Some((key, value)) = s.split_once("!=") {
        return single(key, value).map(|(k, v)| Requirement::NotIn(k, v));
    }
    if let Some((key, value)) = s.split_once("==") {
        return single(key, value).map(|(k, v)| Requirement::In(k, v));
    }
    if let Some((key, value)) = s.split_once('=') {
        return single(key, value).map(|(k, v)| Requirement::In(k, v));
    }
    if let Some((key, values)) = split_word(s, " notin ") {
        return set(key, values).map(|(k, v)| Requirement::NotIn(k, v));
    }
    if let Some((key, values)) = split_word(s, " in ") {
        return set(key, values).map(|(k, v)| Requirement::In(k, v));
    }
    valid_key(s).then(|| Requirement::Exists(s.to_owned()))
}

fn split_word<'a>(s: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    s.split_once(word)
}

fn single(key: &str, value: &str) -> Option<(String, Vec<String>)> {
    let (key, value) = (key.trim(), value.trim());
    (valid_key(key) && valid_value(value)).then(|| (key.to_owned(), vec![value.to_owned()]))
}

fn set(key: &str, values: &str) -> Option<(String, Vec<String>)> {
    let key = key.trim();
    let inner = values.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    (valid_key(key) && values.iter().all(|v| valid_value(v))).then(|| (key.to_owned(), values))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && crate::metadata::key_error(key).is_none()
}

fn valid_value(value: &str) -> bool {
    value.is_empty() || crate::metadata::label_value_error(value).is_none()
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
        for bad in ["", "env in (a", "env in a", "=x", "!", "env=a b", "a,,b"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
    }
}
