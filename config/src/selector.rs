//! Kubernetes label-selector semantics.
//!
//! A selector matches a label set when every `match_labels` pair is present
//! with that value and every expression holds:
//!
//! | operator       | holds when                                         |
//! |----------------|----------------------------------------------------|
//! | `In`           | the key is present and its value is in `values`    |
//! | `NotIn`        | the key is absent, or its value is not in `values` |
//! | `Exists`       | the key is present                                 |
//! | `DoesNotExist` | the key is absent                                  |
//!
//! An empty selector matches everything (as `metav1.LabelSelector` does).
//! "No selector at all" is a different thing: the load balancer's
//! destinations then come from its routing.
//!
//! Layer 3 (resolution): selection, used by `resolve` and `change`.

use crate::error::FieldPath;
use crate::problem::Problem;
use crate::state::{LabelSelector, LabelSelectorRequirement, SelectorOperator};
use std::collections::BTreeMap;

impl LabelSelector {
    /// Whether `labels` satisfy this selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| e.matches(labels))
    }

    /// Whether the selector has no requirement (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Structural problems, with their path relative to the selector:
    /// `In`/`NotIn` without values, `Exists`/`DoesNotExist` with values,
    /// keys and values that are no Kubernetes label keys and values
    /// ([`label_problems`]).
    pub fn problems(&self) -> Vec<(String, Problem)> {
        let mut out = label_problems("match_labels", &self.match_labels);
        for (i, e) in self.match_expressions.iter().enumerate() {
            if let Some(p) = label_key_problem(&e.key) {
                out.push((format!("match_expressions[{i}].key"), p));
            }
            for (j, v) in e.values.iter().enumerate() {
                if let Some(p) = label_value_problem(v) {
                    out.push((format!("match_expressions[{i}].values[{j}]"), p));
                }
            }
            match e.operator {
                SelectorOperator::In | SelectorOperator::NotIn if e.values.is_empty() => {
                    out.push((
                        format!("match_expressions[{i}].values"),
                        Problem::SelectorValues {
                            operator: format!("{:?}", e.operator),
                            need: "needs at least one value",
                        },
                    ))
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist
                    if !e.values.is_empty() =>
                {
                    out.push((
                        format!("match_expressions[{i}].values"),
                        Problem::SelectorValues {
                            operator: format!("{:?}", e.operator),
                            need: "takes no values",
                        },
                    ))
                }
                _ => {}
            }
        }
        out
    }
}

impl LabelSelectorRequirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => !matches!(value, Some(v) if self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// Longest name part of a label key, and longest label value.
const LABEL_NAME_MAX: usize = 63;
/// Longest prefix (a DNS subdomain) of a label key.
const LABEL_PREFIX_MAX: usize = 253;

/// Problems of the keys and values of a label map, as Kubernetes checks
/// them, each with its path (`PATH.KEY`) below `path`.
pub fn label_problems(path: &str, labels: &BTreeMap<String, String>) -> Vec<(String, Problem)> {
    let mut out = Vec::new();
    for (k, v) in labels {
        let at = format!("{path}.{}", FieldPath::key_text(k));
        if let Some(p) = label_key_problem(k) {
            out.push((at, p));
        } else if let Some(p) = label_value_problem(v) {
            out.push((at, p));
        }
    }
    out
}

/// Why `key` is no Kubernetes label key: `[PREFIX/]NAME`, NAME 1-63
/// characters of `[A-Za-z0-9._-]` beginning and ending with a letter or
/// digit, PREFIX a DNS subdomain (lower case, at most 253 characters).
pub fn label_key_problem(key: &str) -> Option<Problem> {
    let bad = |why: String| Some(Problem::LabelSyntax(format!("label key {key:?} {why}")));
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return bad("has an empty prefix before '/'".into());
        }
        if p.len() > LABEL_PREFIX_MAX {
            return bad(format!(
                "has a prefix of {} characters (at most {LABEL_PREFIX_MAX})",
                p.len()
            ));
        }
        if let Some(why) = dns_subdomain_problem(p) {
            return bad(format!("has prefix {p:?}, which {why}"));
        }
    }
    if name.is_empty() {
        return bad("has an empty name".into());
    }
    if let Some(why) = label_name_problem(name) {
        return bad(why);
    }
    None
}

/// Why `value` is no Kubernetes label value: empty, or like a key's name
/// part (1-63 characters of `[A-Za-z0-9._-]`, letter or digit at both
/// ends).
pub fn label_value_problem(value: &str) -> Option<Problem> {
    if value.is_empty() {
        return None;
    }
    label_name_problem(value)
        .map(|why| Problem::LabelSyntax(format!("label value {value:?} {why}")))
}

/// The rule shared by a label key's name and a label value.
fn label_name_problem(s: &str) -> Option<String> {
    if s.len() > LABEL_NAME_MAX {
        return Some(format!(
            "is {} characters long (at most {LABEL_NAME_MAX})",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "contains {c:?} (only letters, digits, '-', '_' and '.')"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(s.chars().next()) || !edge_ok(s.chars().last()) {
        return Some("must begin and end with a letter or digit".into());
    }
    None
}

/// Why `s` is no DNS subdomain (RFC 1123: dot-separated labels of lower
/// case letters, digits and '-', each beginning and ending with a letter or
/// digit).
fn dns_subdomain_problem(s: &str) -> Option<String> {
    for part in s.split('.') {
        if part.is_empty() {
            return Some("has an empty part between dots".into());
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Some(format!(
                "contains {c:?} (a DNS subdomain: lower case letters, digits, '-' and '.')"
            ));
        }
        if part.starts_with('-') || part.ends_with('-') {
            return Some(format!("has part {part:?} beginning or ending with '-'"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_label_keys() {
        let max_name = "n".repeat(63);
        let prefixed_max = format!("{}/{max_name}", "p".repeat(253));
        for ok in [
            "app",
            "a",
            "App_1.x-y",
            "app.kubernetes.io/name",
            "example.com/tier",
            "x-1.y/Z",
            max_name.as_str(),
            prefixed_max.as_str(),
        ] {
            assert_eq!(label_key_problem(ok), None, "{ok:?}");
        }
        let long_name = "n".repeat(64);
        let long_prefix = format!("{}/a", "p".repeat(254));
        for (bad, why) in [
            ("", "has an empty name"),
            ("-app", "must begin and end"),
            ("app-", "must begin and end"),
            ("my app", "contains ' '"),
            ("app:x", "contains ':'"),
            (long_name.as_str(), "64 characters"),
            ("/app", "empty prefix"),
            ("example.com/", "has an empty name"),
            ("Example.com/app", "contains 'E'"),
            ("example..com/app", "empty part"),
            ("-x.com/app", "beginning or ending with '-'"),
            ("a/b/c", "contains '/'"),
            (long_prefix.as_str(), "254 characters"),
        ] {
            let got = label_key_problem(bad).map(|p| p.to_string());
            assert!(
                got.as_deref().is_some_and(|g| g.contains(why)),
                "{bad:?}: {got:?}, wanted {why:?}"
            );
        }
    }

    #[test]
    fn kubernetes_label_values() {
        for ok in ["", "web", "v1.2_3-x", &"v".repeat(63)] {
            assert_eq!(label_value_problem(ok), None, "{ok:?}");
        }
        for bad in [".web", "web-", "a/b", "a b", &"v".repeat(64)] {
            assert!(label_value_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn selector_problems_name_the_offending_entry() {
        let sel = LabelSelector {
            match_labels: [("Bad Key".to_string(), "web".to_string())].into(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: SelectorOperator::In,
                values: vec!["ok".into(), "-no".into()],
            }],
        };
        let paths: Vec<String> = sel.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            ["match_labels.\"Bad Key\"", "match_expressions[0].values[1]"]
        );
    }
}
