//! Labels and annotations: CC's key and value rules (`metadata_validator_helper.rb`), the patch
//! semantics (set / `null` deletes / absent keeps) and the per-resource limits.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::ApiError;

/// Longest annotation value, in characters (`MAX_ANNOTATION_VALUE_SIZE`).
pub const MAX_ANNOTATION_VALUE: usize = 5000;
/// Labels per resource (CC's dev config `max_labels_per_resource`).
pub const MAX_LABELS: usize = 50;
/// Annotations per resource (CC's dev config `max_annotations_per_resource`).
pub const MAX_ANNOTATIONS: usize = 200;

/// A resource's labels and annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Labels (selectable).
    pub labels: BTreeMap<String, String>,
    /// Annotations (free text up to 5000 characters).
    pub annotations: BTreeMap<String, String>,
}

impl Metadata {
    /// `{"labels": {…}, "annotations": {…}}`.
    pub fn to_json(&self) -> Value {
        json!({ "labels": self.labels, "annotations": self.annotations })
    }

    /// Applies a request's `metadata` object: validates everything first, then merges.
    pub fn patch(&mut self, patch: &Value) -> Result<(), ApiError> {
        let Some(obj) = patch.as_object() else {
            return Err(ApiError::unprocessable("Metadata must be an object"));
        };
        let mut errors = Vec::new();
        for key in obj.keys() {
            if key != "labels" && key != "annotations" {
                errors.push(format!("Metadata has unexpected field(s): '{key}'"));
            }
        }
        let labels = changes(obj.get("labels"), "labels", &mut errors);
        let annotations = changes(obj.get("annotations"), "annotations", &mut errors);
        for (key, value) in &labels {
            if let Some(e) = key_error(key) {
                errors.push(format!("Metadata label key error: {e}"));
            }
            if let Some(e) = value.as_deref().and_then(label_value_error) {
                errors.push(format!("Metadata label value error: {e}"));
            }
        }
        for (key, value) in &annotations {
            if let Some(e) = key_error(key) {
                errors.push(format!("Metadata annotation key error: {e}"));
            }
            if let Some(v) = value
                && v.chars().count() > MAX_ANNOTATION_VALUE
            {
                errors.push(format!(
                    "Metadata annotation value error: '{}' is greater than {MAX_ANNOTATION_VALUE} characters",
                    abbreviate(v)
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::unprocessable(errors.join(", ")));
        }
        let mut new_labels = self.labels.clone();
        merge(&mut new_labels, labels);
        let mut new_annotations = self.annotations.clone();
        merge(&mut new_annotations, annotations);
        if new_labels.len() > MAX_LABELS {
            return Err(ApiError::label_limit(new_labels.len(), MAX_LABELS));
        }
        if new_annotations.len() > MAX_ANNOTATIONS {
            return Err(ApiError::annotation_limit(new_annotations.len(), MAX_ANNOTATIONS));
        }
        self.labels = new_labels;
        self.annotations = new_annotations;
        Ok(())
    }
}

fn changes(v: Option<&Value>, what: &str, errors: &mut Vec<String>) -> Vec<(String, Option<String>)> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Null => Some((k.clone(), None)),
                Value::String(s) => Some((k.clone(), Some(s.clone()))),
                _ => {
                    errors.push(format!("Metadata {what} values must be strings or null"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            // app/messages/validators/metadata_validator.rb: errors.add(:metadata, "'labels' is
            // not an object"), whose full message is prefixed with the attribute name.
            errors.push(format!("Metadata '{what}' is not an object"));
            Vec::new()
        }
    }
}

fn merge(target: &mut BTreeMap<String, String>, changes: Vec<(String, Option<String>)>) {
    for (k, v) in changes {
        match v {
            Some(v) => {
                target.insert(k, v);
            }
            None => {
                target.remove(&k);
            }
        }
    }
}

// CC quotes long values shortened to their first 8 characters.
fn abbreviate(v: &str) -> String {
    if v.chars().count() > 8 { format!("{}...", v.chars().take(8).collect::<String>()) } else { v.to_owned() }
}

fn name_chars_ok(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn ends_ok(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// CC's `DomainDecorator::DOMAIN_REGEX` (cloud_controller_ng lib/cloud_controller/domain_decorator.rb),
/// which metadata_validator_helper.rb#valid_prefix_format? applies: `(label\.)+label`, so a prefix
/// needs at least one dot (`example/key` is rejected, `example.com/key` is fine).
fn dns_ok(prefix: &str) -> bool {
    prefix.contains('.')
        && prefix.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// What is wrong with a label or annotation key, in CC's words; `None` when valid.
pub fn key_error(key: &str) -> Option<String> {
    // `valid_key_presence?` is Rails' `present?`: blank (empty or all whitespace) is absent.
    let blank = |s: &str| s.chars().all(char::is_whitespace);
    if blank(key) {
        return Some("key cannot be empty string".to_owned());
    }
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if name.contains('/') {
                return Some("key has more than one '/'".to_owned());
            }
            // CC checks the format before the size (metadata_validator_helper.rb#key_error).
            if !dns_ok(prefix) {
                return Some(format!("prefix '{prefix}' must be in valid dns format"));
            }
            if prefix.len() > 253 {
                return Some(format!("prefix '{}' is greater than 253 characters", abbreviate(prefix)));
            }
            if prefix.eq_ignore_ascii_case("cloudfoundry.org") {
                return Some("prefix 'cloudfoundry.org' is reserved".to_owned());
            }
            name
        }
        None => key,
    };
    if blank(name) {
        return Some("key cannot be empty string".to_owned());
    }
    // CC's order (metadata_validator_helper.rb#key_error): characters, ends, then size.
    if !name_chars_ok(name) {
        return Some(format!("'{name}' contains invalid characters"));
    }
    if !ends_ok(name) {
        return Some(format!("'{name}' starts or ends with invalid characters"));
    }
    if name.len() > 63 {
        return Some(format!("'{}' is greater than 63 characters", abbreviate(name)));
    }
    None
}

/// What is wrong with a label value, in CC's words; `None` when valid (empty is valid).
pub fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    // CC's order (metadata_validator_helper.rb#value_error): characters, ends, then size.
    if !name_chars_ok(value) {
        return Some(format!("'{value}' contains invalid characters"));
    }
    if !ends_ok(value) {
        return Some(format!("'{value}' starts or ends with invalid characters"));
    }
    if value.len() > 63 {
        return Some(format!("'{}' is greater than 63 characters", abbreviate(value)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_deletes_and_absent_keeps() {
        let mut m = Metadata::default();
        m.patch(&json!({"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}})).expect("valid");
        m.patch(&json!({"labels": {"a": null}})).expect("valid");
        assert_eq!(m.labels.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(m.annotations.get("x").map(String::as_str), Some("y"));
    }

    #[test]
    fn limits_are_enforced_with_cc_messages() {
        let mut m = Metadata::default();
        let long = "a".repeat(5001);
        let e = m.patch(&json!({"annotations": {"k": long}})).expect_err("too long");
        assert_eq!(e.detail, "Metadata annotation value error: 'aaaaaaaa...' is greater than 5000 characters");
        assert!(m.patch(&json!({"annotations": {"k": "a".repeat(5000)}})).is_ok());
        let e = m.patch(&json!({"labels": {"cloudfoundry.org/x": "1"}})).expect_err("reserved");
        assert_eq!(e.detail, "Metadata label key error: prefix 'cloudfoundry.org' is reserved");
        let e = m.patch(&json!({"labels": {"k": "-bad"}})).expect_err("bad value");
        assert_eq!(e.detail, "Metadata label value error: '-bad' starts or ends with invalid characters");
        // A long value with a bad character: CC names the character first.
        let e = m.patch(&json!({"labels": {"k": format!("{}!", "a".repeat(70))}})).expect_err("bad value");
        assert_eq!(e.detail, format!("Metadata label value error: '{}!' contains invalid characters", "a".repeat(70)));
        let e = m.patch(&json!({"labels": {"k": "-bad"}})).expect_err("bad value");
        assert_eq!(e.detail, "Metadata label value error: '-bad' starts or ends with invalid characters");
        let many: serde_json::Map<String, Value> = (0..51).map(|i| (format!("l{i}"), json!("v"))).collect();
        let e = m.patch(&json!({"labels": many})).expect_err("too many");
        assert_eq!((e.title, e.code), ("CF-LabelLimitExceeded", 390020));
    }

    /// metadata_validator_helper.rb#valid_prefix_format? uses DomainDecorator::DOMAIN_REGEX, which
    /// wants a dot; metadata_validator.rb says "'labels' is not an object".
    #[test]
    fn prefixes_need_a_dot_and_labels_must_be_an_object() {
        let mut m = Metadata::default();
        let e = m.patch(&json!({"labels": {"example/k": "v"}})).expect_err("no dot");
        assert_eq!(e.detail, "Metadata label key error: prefix 'example' must be in valid dns format");
        assert!(m.patch(&json!({"labels": {"example.com/k": "v"}})).is_ok());
        let e = m.patch(&json!({"labels": ["k"]})).expect_err("not an object");
        assert_eq!(e.detail, "Metadata 'labels' is not an object");
        let e = m.patch(&json!({"annotations": "x"})).expect_err("not an object");
        assert_eq!(e.detail, "Metadata 'annotations' is not an object");
    }
}
