//! Where an object of the desired state came from, so that an error found
//! long after parsing (during validation, or in a later change) still points
//! at the file, line and column that caused it.
//!
//! Every input object carries an [`Origin`]. Origins never take part in
//! equality (two states that differ only in where their objects came from
//! are equal) and are never serialized.
//!
//! Also [`Source`], the text objects were read from, and `read_file`, which
//! reads one.
//!
//! Layer 1 (problems and locations), above `error` and `span`.

use crate::error::{Errors, FieldPath, Location};
use crate::model::Kind;
use crate::problem::Problem;
use crate::span::{toml_span, YamlIndex};
use std::fmt;
use std::path::Path;
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
    Yaml {
        /// Where each key and item is.
        index: YamlIndex,
        /// Translates a path in the model's field names, relative to an
        /// object of the kind, into the manifest's own path (the reader
        /// that mapped the manifest onto the model knows how).
        manifest_path: fn(Kind, &FieldPath) -> FieldPath,
    },
    /// Nothing to locate in (objects built in code or restored state
    /// without text).
    Opaque,
}

impl fmt::Debug for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKind::Toml(_) => f.write_str("Toml"),
            SourceKind::Yaml { .. } => f.write_str("Yaml"),
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
            SourceKind::Yaml {
                index,
                manifest_path,
            } => {
                let ypath = manifest_path(o.kind, rel);
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

/// Reads a source file; an unreadable one is an error naming the file.
pub(crate) fn read_file(path: &Path) -> Result<String, Errors> {
    std::fs::read_to_string(path).map_err(|e| {
        Errors::single(
            None,
            "",
            Problem::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            },
        )
    })
}
