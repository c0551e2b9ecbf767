//! Located errors: what went wrong, in which file, at which line and column,
//! under which field path; and [`Errors`], the list every loader returns so
//! that an operator sees every problem at once, one per line.
//!
//! Layer 1 (problems and locations), above `problem`.

use std::fmt;

/// A path to a field inside the model, e.g. `load_balancer[1].ports[2].end_port`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Seg>);

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A table key / struct field.
    Key(String),
    /// An array index.
    Index(usize),
}

impl FieldPath {
    /// The empty path (the whole document or object).
    pub const fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path with a key appended.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.into()));
        p
    }

    /// This path with an index appended.
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(index));
        p
    }

    /// This path followed by `rest`.
    pub fn join(&self, rest: &FieldPath) -> Self {
        let mut p = self.clone();
        p.0.extend(rest.0.iter().cloned());
        p
    }

    /// Whether the path has no segment.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the dotted form (`a.b[2].c`); a key that contains `.`, `[`,
    /// `]`, `"` or white space is written in double quotes
    /// (`labels."example.com/app"`; no `"` inside), as [`fmt::Display`]
    /// writes it.
    pub fn parse(s: &str) -> Self {
        let mut segs = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                rest = r;
                continue;
            }
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').unwrap_or(r.len());
                if let Ok(n) = r[..end].parse() {
                    segs.push(Seg::Index(n));
                }
                rest = r.get(end + 1..).unwrap_or("");
                continue;
            }
            if let Some(r) = rest.strip_prefix('"') {
                let end = r.find('"').unwrap_or(r.len());
                segs.push(Seg::Key(r[..end].to_string()));
                rest = r.get(end + 1..).unwrap_or("");
                continue;
            }
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            segs.push(Seg::Key(rest[..end].to_string()));
            rest = &rest[end..];
        }
        FieldPath(segs)
    }

    /// `key` as one segment of the dotted form: quoted when it needs to be
    /// (see [`FieldPath::parse`]).
    pub fn key_text(key: &str) -> String {
        if key.is_empty()
            || key
                .chars()
                .any(|c| matches!(c, '.' | '[' | ']' | '"') || c.is_whitespace())
        {
            format!("\"{key}\"")
        } else {
            key.to_string()
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(&FieldPath::key_text(k))?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Where in which file something is: 1-based line and column (in
/// characters); `line` is 0 when only the file is known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file name as the user gave it (or a label such as `<request>`).
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
}

impl Location {
    /// The location `offset` bytes into `text`.
    pub fn at_offset(file: &str, text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location {
            file: file.to_string(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => f.write_str(&self.file),
            (l, 0) => write!(f, "{}:{l}", self.file),
            (l, c) => write!(f, "{}:{l}:{c}", self.file),
        }
    }
}

/// One problem with its location and field path.
///
/// Displays as `FILE:LINE:COL: PATH: MESSAGE`, e.g.
/// `lb.toml:23:9: load_balancer[1].ports[2].end_port: 70000 is not a port (1-65535)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedError {
    /// Where; `None` for objects that came from no file (built in code).
    pub location: Option<Location>,
    /// The field path, in the terms of the input it came from (TOML field
    /// names, or the manifest's `kind/name` and camelCase path).
    pub path: String,
    /// What is wrong.
    pub problem: crate::problem::Problem,
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.problem)
    }
}

impl std::error::Error for LocatedError {}

/// Every problem found in one load, validation or change; never empty when
/// returned as an error. Displays one error per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors(pub Vec<LocatedError>);

impl Errors {
    /// Whether no error was collected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, LocatedError> {
        self.0.iter()
    }

    /// Adds one error.
    pub fn push(&mut self, e: LocatedError) {
        self.0.push(e);
    }

    /// Adds every error of `other`.
    pub fn extend(&mut self, other: Errors) {
        self.0.extend(other.0);
    }

    /// Sorts by file, line and column (errors without location last), keeping
    /// the order of errors at one place.
    pub fn sort_by_location(&mut self) {
        self.0.sort_by(|a, b| {
            let key = |e: &LocatedError| {
                e.location
                    .as_ref()
                    .map(|l| (0, l.file.clone(), l.line, l.column))
                    .unwrap_or((1, String::new(), 0, 0))
            };
            key(a).cmp(&key(b))
        });
    }

    /// `Ok(value)` when empty, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Errors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// One error without location, e.g. an unreadable file.
    pub fn single(
        location: Option<Location>,
        path: &str,
        problem: crate::problem::Problem,
    ) -> Self {
        Errors(vec![LocatedError {
            location,
            path: path.to_string(),
            problem,
        }])
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl IntoIterator for Errors {
    type Item = LocatedError;
    type IntoIter = std::vec::IntoIter<LocatedError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a LocatedError;
    type IntoIter = std::slice::Iter<'a, LocatedError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_round_trip_with_quoted_keys() {
        let p = FieldPath::root()
            .key("load_balancer")
            .index(1)
            .key("labels")
            .key("example.com/app");
        assert_eq!(p.to_string(), "load_balancer[1].labels.\"example.com/app\"");
        assert_eq!(FieldPath::parse(&p.to_string()), p);
        let q = FieldPath::parse("a.b[2][3].c");
        assert_eq!(
            q.0,
            [
                Seg::Key("a".into()),
                Seg::Key("b".into()),
                Seg::Index(2),
                Seg::Index(3),
                Seg::Key("c".into())
            ]
        );
        assert_eq!(q.to_string(), "a.b[2][3].c");
    }
}
