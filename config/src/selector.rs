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

use crate::state::{LabelSelector, LabelSelectorRequirement, SelectorOperator};
use crate::validate::Problem;
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
    /// empty keys.
    pub fn problems(&self) -> Vec<(String, Problem)> {
        let mut out = Vec::new();
        for k in self.match_labels.keys() {
            if k.is_empty() {
                out.push((
                    "match_labels".to_string(),
                    Problem::Invalid("label key must not be empty".into()),
                ));
            }
        }
        for (i, e) in self.match_expressions.iter().enumerate() {
            if e.key.is_empty() {
                out.push((
                    format!("match_expressions[{i}].key"),
                    Problem::Invalid("label key must not be empty".into()),
                ));
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
