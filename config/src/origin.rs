//! Where an object of the desired state came from, so that an error found
//! long after parsing (during validation, or in a later change) still points
//! at the file, line and column that caused it.
//!
//! Every input object carries an [`Origin`]. Origins never take part in
//! equality (two states that differ only in where their objects came from
//! are equal) and are never serialized.

use crate::error::{FieldPath, Location, Seg};
use crate::manifest::YamlIndex;
use crate::model::Kind;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// A text that objects were read from.
#[derive(Debug)]
pub struct Source {
    /// The file name as given (or a label like `<request>`).
    pub name: String,
    /// What was parsed, for locating paths in it.
    pub kind: SourceKind,
}

/// The parsed form of a [`Source`], kept for locating paths.
pub enum SourceKind {
    /// A TOML document with spans.
    Toml(Box<toml_edit::ImDocument<String>>),
    /// A multi-document YAML text.
    Yaml(YamlIndex),
    /// Nothing to locate in (objects built in code or restored state
    /// without text).
    Opaque,
}

impl fmt::Debug for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKind::Toml(_) => f.write_str("Toml"),
            SourceKind::Yaml(_) => f.write_str("Yaml"),
            SourceKind::Opaque => f.write_str("Opaque"),
        }
    }
}

/// Where one object came from: a source and the object's place in it.
///
/// The default origin is "built in code": errors then name the object by
/// kind and name and carry no location.
#[derive(Clone, Default)]
pub struct Origin(Option<Arc<OriginInner>>);

struct OriginInner {
    source: Arc<Source>,
    /// TOML: the object's path (`load_balancer[1]`). YAML: unused.
    base: FieldPath,
    /// YAML: the document number in the source.
    doc: usize,
    /// YAML: `Kind/name` shown before the path.
    label: String,
    /// YAML: translates model paths to manifest paths.
    kind: Kind,
}

impl PartialEq for Origin {
    /// Origins never make two objects different.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Origin {}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Origin(code)"),
            Some(o) => write!(f, "Origin({} {})", o.source.name, o.base),
        }
    }
}

impl Origin {
    /// The origin of the object at `base` (e.g. `load_balancer[1]`) of a TOML
    /// source.
    pub fn toml(source: &Arc<Source>, base: FieldPath, kind: Kind) -> Self {
        Origin(Some(Arc::new(OriginInner {
            source: Arc::clone(source),
            base,
            doc: 0,
            label: String::new(),
            kind,
        })))
    }

    /// The origin of a YAML manifest object: document `doc` of `source`.
    pub fn yaml(source: &Arc<Source>, doc: usize, kind: Kind, name: &str) -> Self {
        Origin(Some(Arc::new(OriginInner {
            source: Arc::clone(source),
            base: FieldPath::root(),
            doc,
            label: format!("{}/{}", kind.ironcore_kind(), name),
            kind,
        })))
    }

    /// The file this object came from, if any.
    pub fn file(&self) -> Option<&str> {
        self.0.as_ref().map(|o| o.source.name.as_str())
    }

    /// Locates `rel` (a path in the model's field names, relative to the
    /// object) and returns the location and the path as the user wrote it.
    /// `fallback` names the object when it came from no file.
    pub fn locate(
        &self,
        fallback: &dyn Fn() -> String,
        rel: &FieldPath,
    ) -> (Option<Location>, String) {
        let Some(o) = &self.0 else {
            let path = if rel.is_empty() {
                fallback()
            } else {
                format!("{}.{}", fallback(), rel)
            };
            return (None, path);
        };
        let file = o.source.name.as_str();
        match &o.source.kind {
            SourceKind::Toml(doc) => {
                let full = o.base.join(rel);
                let span = toml_span(doc.as_item(), &full);
                let loc = match span {
                    Some(s) => Location::at_offset(file, doc.raw(), s.start),
                    None => Location {
                        file: file.to_string(),
                        ..Location::default()
                    },
                };
                (Some(loc), full.to_string())
            }
            SourceKind::Yaml(index) => {
                let ypath = crate::manifest::yaml_path(o.kind, rel);
                let loc = index.locate(file, o.doc, &ypath);
                let path = if ypath.is_empty() {
                    o.label.clone()
                } else {
                    format!("{} {}", o.label, ypath)
                };
                (Some(loc), path)
            }
            SourceKind::Opaque => (
                Some(Location {
                    file: file.to_string(),
                    ..Location::default()
                }),
                if o.base.is_empty() {
                    format!("{}.{}", fallback(), rel)
                } else {
                    o.base.join(rel).to_string()
                },
            ),
        }
    }
}

/// The span that best matches `path` in a TOML document: the key of the last
/// segment when it is a key, the value when it is an index, else the deepest
/// ancestor found.
pub(crate) fn toml_span(root: &toml_edit::Item, path: &FieldPath) -> Option<Range<usize>> {
    use toml_edit::{Item, Value};
    enum Node<'a> {
        Item(&'a Item),
        Table(&'a toml_edit::Table),
        Value(&'a Value),
    }
    let mut best = root.span();
    let mut node = Node::Item(root);
    let last = path.0.len().saturating_sub(1);
    for (i, seg) in path.0.iter().enumerate() {
        let next = match (seg, node) {
            (Seg::Key(k), Node::Item(Item::Table(t))) | (Seg::Key(k), Node::Table(t)) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Node::Item(item), item.span())),
            (Seg::Key(k), Node::Item(Item::Value(Value::InlineTable(t))))
            | (Seg::Key(k), Node::Value(Value::InlineTable(t))) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Node::Item(item), item.span())),
            (Seg::Index(n), Node::Item(Item::ArrayOfTables(a))) => {
                a.get(*n).map(|t| (None, Node::Table(t), t.span()))
            }
            (Seg::Index(n), Node::Item(Item::Value(Value::Array(a))))
            | (Seg::Index(n), Node::Value(Value::Array(a))) => {
                a.get(*n).map(|v| (None, Node::Value(v), v.span()))
            }
            _ => None,
        };
        let Some((key_span, next_node, value_span)) = next else {
            break;
        };
        let span = if i == last {
            key_span.or(value_span)
        } else {
            value_span.or(key_span)
        };
        if span.is_some() {
            best = span;
        }
        node = next_node;
    }
    best
}

/// The path of the deepest key or array element under `item` whose span
/// contains `offset` (for naming the field a deserialization error is
/// about), relative to `item`.
pub(crate) fn toml_path_at(item: &toml_edit::Item, offset: usize) -> FieldPath {
    use toml_edit::{Item, Value};
    fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
        span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
    }
    fn walk_value(v: &Value, offset: usize, path: &mut FieldPath) {
        match v {
            Value::InlineTable(t) => {
                for (k, v) in t.iter() {
                    let key_span = t.key(k).and_then(|key| key.span());
                    if contains(key_span, offset) || contains(v.span(), offset) {
                        path.0.push(Seg::Key(k.to_string()));
                        walk_value(v, offset, path);
                        return;
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    if contains(v.span(), offset) {
                        path.0.push(Seg::Index(i));
                        walk_value(v, offset, path);
                        return;
                    }
                }
            }
            _ => {}
        }
    }
    fn walk_table(t: &toml_edit::Table, offset: usize, path: &mut FieldPath) {
        for (k, item) in t.iter() {
            let key_span = t.key(k).and_then(|key| key.span());
            if contains(key_span, offset) || contains(item.span(), offset) {
                path.0.push(Seg::Key(k.to_string()));
                walk_item(item, offset, path);
                return;
            }
        }
    }
    fn walk_item(item: &Item, offset: usize, path: &mut FieldPath) {
        match item {
            Item::Table(t) => walk_table(t, offset, path),
            Item::Value(v) => walk_value(v, offset, path),
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    if contains(t.span(), offset) {
                        path.0.push(Seg::Index(i));
                        walk_table(t, offset, path);
                        return;
                    }
                }
            }
            Item::None => {}
        }
    }
    let mut path = FieldPath::root();
    walk_item(item, offset, &mut path);
    path
}
