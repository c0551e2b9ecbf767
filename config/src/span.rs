//! Finding a field path in a source text, for error locations: spans in a
//! TOML document (`toml_span`, `toml_path_at`) and [`YamlIndex`], the
//! line/column index of a multi-document YAML text.
//!
//! Layer 1 (problems and locations), with `error` and `origin`: knows
//! [`FieldPath`]s and [`Location`]s, nothing of the model. Translating a
//! model path into a manifest's own field names is the Ironcore reader's
//! business (`manifest::yaml_path`).

use crate::error::{FieldPath, Location, Seg};
use std::collections::HashMap;
use std::ops::Range;

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

/// Line/column positions of the keys and items of a multi-document YAML
/// text, for error locations. A light scanner of block-style YAML (what
/// Kubernetes manifests are); a path it cannot find is located at its
/// nearest found ancestor, else at the document's start.
pub struct YamlIndex {
    docs: Vec<YamlDoc>,
}

struct YamlDoc {
    /// 1-based line of the document's first line.
    start_line: usize,
    /// The document's text.
    text: String,
    positions: HashMap<FieldPath, (usize, usize)>,
    /// Scalar values as written (unquoted), with their paths, in order.
    values: Vec<(String, FieldPath)>,
}

struct Frame {
    indent: usize,
    path: FieldPath,
    seq: bool,
    next_index: usize,
    last_key: Option<String>,
    current_item: Option<FieldPath>,
}

impl Frame {
    /// The path of a node nested under this frame: the current item of a
    /// sequence, else the last key of a mapping.
    fn child_path(&self) -> FieldPath {
        if self.seq {
            self.current_item
                .clone()
                .unwrap_or_else(|| self.path.clone())
        } else {
            match &self.last_key {
                Some(k) => self.path.key(k.clone()),
                None => self.path.clone(),
            }
        }
    }
}

/// Splits `key: value` (key possibly quoted); `None` when the text is not a
/// mapping entry.
fn split_key(content: &str) -> Option<(String, &str)> {
    if content.starts_with(['[', '{', '|', '>', '&', '*', '!']) {
        return None;
    }
    let (key, rest) = if let Some(q) = content
        .strip_prefix('"')
        .or_else(|| content.strip_prefix('\''))
    {
        let quote = content.as_bytes()[0] as char;
        let end = q.find(quote)?;
        let after = &q[end + 1..];
        let rest = after.strip_prefix(':')?;
        (q[..end].to_string(), rest)
    } else {
        let mut idx = None;
        for (i, c) in content.char_indices() {
            if c == ':' {
                let next = content[i + 1..].chars().next();
                if next.is_none() || next == Some(' ') || next == Some('\t') {
                    idx = Some(i);
                    break;
                }
            }
            if c == '#' && i > 0 && content[..i].ends_with(' ') {
                return None;
            }
        }
        let i = idx?;
        (content[..i].trim_end().to_string(), &content[i + 1..])
    };
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some((key, rest))
}

impl YamlDoc {
    fn scan(start_line: usize, text: &str) -> YamlDoc {
        let mut positions = HashMap::new();
        let mut values = Vec::new();
        let mut stack = vec![Frame {
            indent: 0,
            path: FieldPath::root(),
            seq: false,
            next_index: 0,
            last_key: None,
            current_item: None,
        }];
        let mut block_scalar_indent: Option<usize> = None;
        for (ln, raw) in text.lines().enumerate() {
            let line_no = start_line + ln;
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            let content = raw[indent..].trim_end();
            if let Some(bi) = block_scalar_indent {
                if content.is_empty() || indent > bi {
                    continue;
                }
                block_scalar_indent = None;
            }
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            while stack.len() > 1 {
                let top = stack.last().expect("non-empty");
                let is_dash = content == "-" || content.starts_with("- ");
                if top.indent > indent || (top.seq && top.indent == indent && !is_dash) {
                    stack.pop();
                } else {
                    break;
                }
            }
            let mut col = indent;
            let mut content = content;
            // Sequence items (possibly several `- - ` on one line are not handled).
            if content == "-" || content.starts_with("- ") {
                let top = stack.last().expect("non-empty");
                if !(top.seq && top.indent == indent) {
                    let path = top.child_path();
                    stack.push(Frame {
                        indent,
                        path,
                        seq: true,
                        next_index: 0,
                        last_key: None,
                        current_item: None,
                    });
                }
                let seq = stack.last_mut().expect("non-empty");
                let item = seq.path.index(seq.next_index);
                seq.next_index += 1;
                seq.current_item = Some(item.clone());
                positions.insert(item.clone(), (line_no, indent + 1));
                let rest = content[1..].trim_start();
                col = indent + (content.len() - rest.len());
                content = rest;
                if content.is_empty() {
                    continue;
                }
                match split_key(content) {
                    Some(_) => stack.push(Frame {
                        indent: col,
                        path: item,
                        seq: false,
                        next_index: 0,
                        last_key: None,
                        current_item: None,
                    }),
                    None => {
                        Self::flow(&mut positions, &mut values, &item, line_no, col, content);
                        continue;
                    }
                }
            }
            let Some((key, value)) = split_key(content) else {
                continue;
            };
            let top = stack.last().expect("non-empty");
            if top.indent < col || top.seq {
                let path = top.child_path();
                stack.push(Frame {
                    indent: col,
                    path,
                    seq: false,
                    next_index: 0,
                    last_key: None,
                    current_item: None,
                });
            }
            let top = stack.last_mut().expect("non-empty");
            let path = top.path.key(key.clone());
            positions.insert(path.clone(), (line_no, col + 1));
            top.last_key = Some(key);
            let vtrim = value.trim_start();
            let vcol = col + (content.len() - vtrim.len());
            if vtrim.starts_with('|') || vtrim.starts_with('>') {
                block_scalar_indent = Some(col);
            } else if !vtrim.is_empty() {
                Self::flow(&mut positions, &mut values, &path, line_no, vcol, vtrim);
            }
        }
        YamlDoc {
            start_line,
            text: text.to_string(),
            positions,
            values,
        }
    }

    /// Records the items of a one-line flow sequence (`[a, b]`) or mapping.
    fn flow(
        positions: &mut HashMap<FieldPath, (usize, usize)>,
        values: &mut Vec<(String, FieldPath)>,
        path: &FieldPath,
        line: usize,
        col: usize,
        value: &str,
    ) {
        let (open, close) = match value.chars().next() {
            Some('[') => ('[', ']'),
            Some('{') => ('{', '}'),
            _ => {
                values.push((unquote(value), path.clone()));
                return;
            }
        };
        let Some(end) = value.rfind(close) else {
            return;
        };
        let inner = &value[1..end];
        let mut offset = 1;
        for (i, part) in inner.split(',').enumerate() {
            let lead = part.len() - part.trim_start().len();
            let c = col + offset + lead + 1;
            if open == '[' {
                if !part.trim().is_empty() {
                    positions.insert(path.index(i), (line, c));
                    values.push((unquote(part.trim()), path.index(i)));
                }
            } else if let Some((k, _)) = split_key(part.trim()) {
                positions.insert(path.key(k), (line, c));
            }
            offset += part.len() + 1;
        }
    }
}

/// The documents of a multi-document YAML text, split at `---` and `...`
/// lines: each one's 1-based first line and text. A document is kept when it
/// was opened by `---` or has content, so that document numbers agree
/// between [`YamlIndex`] and the reader that parses each document.
pub(crate) fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    let mut explicit = false;
    for (i, line) in text.lines().enumerate() {
        let is_sep = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_sep || line == "..." {
            if explicit || has_content(&current) {
                docs.push((start, std::mem::take(&mut current)));
            }
            current.clear(); // a document without content is dropped
            start = i + 2;
            explicit = is_sep;
            // Content after `--- ` on the same line is rare in manifests;
            // it is ignored.
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if explicit || has_content(&current) {
        docs.push((start, current));
    }
    docs
}

impl YamlIndex {
    /// Splits `text` into documents at `---` lines and indexes each.
    pub fn new(text: &str) -> YamlIndex {
        let docs = split_documents(text)
            .iter()
            .map(|(start, body)| YamlDoc::scan(*start, body))
            .collect();
        YamlIndex { docs }
    }

    /// The location of `path` in document `doc`.
    pub fn locate(&self, file: &str, doc: usize, path: &FieldPath) -> Location {
        let Some(d) = self.docs.get(doc) else {
            return Location {
                file: file.to_string(),
                ..Location::default()
            };
        };
        let mut p = path.clone();
        loop {
            if let Some((line, column)) = d.positions.get(&p) {
                return Location {
                    file: file.to_string(),
                    line: *line,
                    column: *column,
                };
            }
            if p.0.pop().is_none() {
                break;
            }
        }
        // The document's first non-blank line.
        let offset = d.text.lines().position(has_content).unwrap_or(0);
        Location {
            file: file.to_string(),
            line: d.start_line + offset,
            column: 1,
        }
    }

    /// The path of the key named `key` (or, with `value`, of the scalar
    /// written `key`), first in document order, if any (used to place
    /// "unknown field" and "unknown variant" errors).
    pub(crate) fn find_key(&self, doc: usize, key: &str, value: bool) -> Option<FieldPath> {
        let d = self.docs.get(doc)?;
        if value {
            return d
                .values
                .iter()
                .find(|(v, _)| v == key)
                .map(|(_, p)| p.clone());
        }
        d.positions
            .iter()
            .filter(|(p, _)| matches!(p.0.last(), Some(Seg::Key(k)) if k == key))
            .min_by_key(|(_, pos)| **pos)
            .map(|(p, _)| p.clone())
    }
}

fn unquote(v: &str) -> String {
    let v = v.split(" #").next().unwrap_or(v).trim();
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(v)
        .to_string()
}

fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
    })
}
