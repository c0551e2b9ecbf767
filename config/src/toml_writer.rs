//! A TOML writer for the state file: any `Serialize` value written straight
//! into a `String`, one `[[key]]` table per object, every nested table or
//! array of an object inline (`labels = { app = "web" }`).
//!
//! The `toml` crate's serializer builds a document first and formats it
//! afterwards; at 100,000 objects that cost seconds per save. This writer
//! appends as it walks the value, so a save costs about as much as copying
//! the text. It follows `toml`'s serializer where it matters for loading
//! back: `None` fields are left out, unit enum variants are strings, other
//! variants are `{ Variant = ... }`, and what TOML cannot express (a unit
//! value, a `None` inside an array, a non-string key, an integer above
//! `i64::MAX`) is an error, never silently dropped.
//!
//! Strings are TOML basic strings: `"` and `\` escaped, `\b \t \n \f \r`
//! for those controls, `\uXXXX` for every other control character (U+0000
//! to U+001F and U+007F); everything else, non-ASCII included, as it is.
//! Keys are bare when they consist of `A-Za-z0-9_-` only, quoted otherwise.
//!
//! Layer 0 (values): uses no other module of the crate.

use serde::ser::{self, Serialize};
use std::fmt::Write as _;

/// Why a value could not be written as TOML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TomlWriteError {
    /// TOML has no form for this value.
    #[error("TOML cannot express {0}")]
    Unsupported(&'static str),
    /// An unsigned integer above the largest TOML integer.
    #[error("integer {0} is out of TOML's range (at most 9223372036854775807)")]
    OutOfRange(u64),
    /// A key that is not a string.
    #[error("TOML keys must be strings, not {0}")]
    KeyNotString(&'static str),
    /// A top-level object that is not a table.
    #[error("each [[{0}]] entry must serialize as a table")]
    NotATable(String),
    /// An error raised by a `Serialize` implementation.
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for TomlWriteError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        TomlWriteError::Custom(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, TomlWriteError>;

/// Appends `items` as an array of tables: `[[key]]` and one `field = value`
/// line per field, for each item. Nothing for an empty slice.
pub(crate) fn write_array_of_tables<T: Serialize>(
    out: &mut String,
    key: &str,
    items: &[T],
) -> Result<()> {
    for item in items {
        let start = out.len();
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("[[");
        write_key(out, key);
        out.push_str("]]\n");
        match item.serialize(TableSerializer { out: &mut *out }) {
            Ok(()) => {}
            Err(TomlWriteError::NotATable(_)) => {
                out.truncate(start);
                return Err(TomlWriteError::NotATable(key.to_string()));
            }
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Appends `key`, bare when it may be, else as a basic string.
pub(crate) fn write_key(out: &mut String, key: &str) {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        out.push_str(key);
    } else {
        write_string(out, key);
    }
}

/// Appends `s` as a TOML basic string.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            c if c <= '\u{1f}' || c == '\u{7f}' => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04X}", c as u32);
        } else {
            out.push_str(escape);
        }
        plain = i + c.len_utf8();
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str(if v.is_sign_negative() { "-nan" } else { "nan" });
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e16 {
        // `{:?}` writes 1e16 and above in exponent form, which TOML takes
        // too; below, make sure a whole number keeps its `.0`.
        let _ = write!(out, "{v:.1}");
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// What writing a value produced: a value, or nothing (`None`), in which
/// case the caller drops the key it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Value,
    Nothing,
}

/// Writes one top-level object: its fields as `key = value` lines.
struct TableSerializer<'a> {
    out: &'a mut String,
}

/// Collects the fields of a top-level object.
struct TableFields<'a> {
    out: &'a mut String,
    /// Where the pending map key started (for `serialize_key` /
    /// `serialize_value` pairs).
    key_start: usize,
}

impl TableFields<'_> {
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        let start = self.out.len();
        write_key(self.out, key);
        self.out.push_str(" = ");
        self.end_field(start, value)
    }

    fn end_field<T: Serialize + ?Sized>(&mut self, start: usize, value: &T) -> Result<()> {
        match value.serialize(ValueSerializer {
            out: &mut *self.out,
        })? {
            Written::Value => self.out.push('\n'),
            Written::Nothing => self.out.truncate(start),
        }
        Ok(())
    }
}

impl ser::SerializeStruct for TableFields<'_> {
    type Ok = ();
    type Error = TomlWriteError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.field(key, value)
    }
    fn end(self) -> Result<()> {
        Ok(())
    }
}

impl ser::SerializeMap for TableFields<'_> {
    type Ok = ();
    type Error = TomlWriteError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key_start = self.out.len();
        key.serialize(KeySerializer {
            out: &mut *self.out,
        })?;
        self.out.push_str(" = ");
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let start = self.key_start;
        self.end_field(start, value)
    }
    fn end(self) -> Result<()> {
        Ok(())
    }
}

macro_rules! not_a_table {
    ($($f:ident($($t:ty),*) -> $ok:ty;)*) => {$(
        fn $f(self, $(_: $t),*) -> Result<$ok> {
            Err(TomlWriteError::NotATable(String::new()))
        }
    )*};
}

impl<'a> ser::Serializer for TableSerializer<'a> {
    type Ok = ();
    type Error = TomlWriteError;
    type SerializeSeq = ser::Impossible<(), TomlWriteError>;
    type SerializeTuple = ser::Impossible<(), TomlWriteError>;
    type SerializeTupleStruct = ser::Impossible<(), TomlWriteError>;
    type SerializeTupleVariant = ser::Impossible<(), TomlWriteError>;
    type SerializeMap = TableFields<'a>;
    type SerializeStruct = TableFields<'a>;
    type SerializeStructVariant = ser::Impossible<(), TomlWriteError>;

    not_a_table! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<()> {
        Err(TomlWriteError::NotATable(String::new()))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<TableFields<'a>> {
        Ok(TableFields {
            out: self.out,
            key_start: 0,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<TableFields<'a>> {
        Ok(TableFields {
            out: self.out,
            key_start: 0,
        })
    }
}

/// Writes one value (after `key = `, or inside an array or inline table).
struct ValueSerializer<'a> {
    out: &'a mut String,
}

/// An inline array in progress: `[a, b]`.
struct InlineArray<'a> {
    out: &'a mut String,
    first: bool,
    /// Set for a tuple variant: close the `{ Variant = [` around it.
    close_variant: bool,
}

impl InlineArray<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        if !self.first {
            self.out.push_str(", ");
        }
        self.first = false;
        match value.serialize(ValueSerializer {
            out: &mut *self.out,
        })? {
            Written::Value => Ok(()),
            Written::Nothing => Err(TomlWriteError::Unsupported("a None inside an array")),
        }
    }
    fn close(self) -> Result<Written> {
        self.out.push(']');
        if self.close_variant {
            self.out.push_str(" }");
        }
        Ok(Written::Value)
    }
}

/// The sequence-like serde traits of [`InlineArray`]: each element (or
/// tuple field) is one array element; the end closes the array.
macro_rules! inline_array_impl {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for InlineArray<'_> {
            type Ok = Written;
            type Error = TomlWriteError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                self.element(value)
            }
            fn end(self) -> Result<Written> {
                self.close()
            }
        }
    )*};
}

inline_array_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

/// An inline table in progress: `{ k = v, ... }` (`{}` when empty).
struct InlineTable<'a> {
    out: &'a mut String,
    /// Where the table's text started (the `{`).
    open: usize,
    /// Whether a field was written.
    any: bool,
    /// Where the pending field started (its `, ` or its key).
    field_start: usize,
    /// Set for a struct variant: close the `{ Variant = {` around it.
    close_variant: bool,
}

impl InlineTable<'_> {
    fn begin_field(&mut self) {
        self.field_start = self.out.len();
        self.out.push_str(if self.any { ", " } else { " " });
    }
    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        match value.serialize(ValueSerializer {
            out: &mut *self.out,
        })? {
            Written::Value => self.any = true,
            Written::Nothing => self.out.truncate(self.field_start),
        }
        Ok(())
    }
    fn close(self) -> Result<Written> {
        if self.any {
            self.out.push_str(" }");
        } else {
            self.out.truncate(self.open);
            self.out.push_str("{}");
        }
        if self.close_variant {
            self.out.push_str(" }");
        }
        Ok(Written::Value)
    }
}

impl ser::SerializeMap for InlineTable<'_> {
    type Ok = Written;
    type Error = TomlWriteError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.begin_field();
        key.serialize(KeySerializer {
            out: &mut *self.out,
        })?;
        self.out.push_str(" = ");
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.value(value)
    }
    fn end(self) -> Result<Written> {
        self.close()
    }
}

impl ser::SerializeStruct for InlineTable<'_> {
    type Ok = Written;
    type Error = TomlWriteError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.begin_field();
        write_key(self.out, key);
        self.out.push_str(" = ");
        self.value(value)
    }
    fn end(self) -> Result<Written> {
        self.close()
    }
}

impl ser::SerializeStructVariant for InlineTable<'_> {
    type Ok = Written;
    type Error = TomlWriteError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<Written> {
        self.close()
    }
}

impl<'a> ValueSerializer<'a> {
    fn int(self, v: impl std::fmt::Display) -> Result<Written> {
        let _ = write!(self.out, "{v}");
        Ok(Written::Value)
    }
    /// Writes `{ variant = ` and returns the serializer for what follows.
    fn variant_open(self, variant: &str) -> ValueSerializer<'a> {
        self.out.push_str("{ ");
        write_key(self.out, variant);
        self.out.push_str(" = ");
        self
    }
    fn inline_table(self, close_variant: bool) -> InlineTable<'a> {
        let open = self.out.len();
        self.out.push('{');
        InlineTable {
            field_start: open + 1,
            out: self.out,
            open,
            any: false,
            close_variant,
        }
    }
    fn inline_array(self, close_variant: bool) -> InlineArray<'a> {
        self.out.push('[');
        InlineArray {
            out: self.out,
            first: true,
            close_variant,
        }
    }
}

impl<'a> ser::Serializer for ValueSerializer<'a> {
    type Ok = Written;
    type Error = TomlWriteError;
    type SerializeSeq = InlineArray<'a>;
    type SerializeTuple = InlineArray<'a>;
    type SerializeTupleStruct = InlineArray<'a>;
    type SerializeTupleVariant = InlineArray<'a>;
    type SerializeMap = InlineTable<'a>;
    type SerializeStruct = InlineTable<'a>;
    type SerializeStructVariant = InlineTable<'a>;

    fn serialize_bool(self, v: bool) -> Result<Written> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(Written::Value)
    }
    fn serialize_i8(self, v: i8) -> Result<Written> {
        self.int(v)
    }
    fn serialize_i16(self, v: i16) -> Result<Written> {
        self.int(v)
    }
    fn serialize_i32(self, v: i32) -> Result<Written> {
        self.int(v)
    }
    fn serialize_i64(self, v: i64) -> Result<Written> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Written> {
        self.int(v)
    }
    fn serialize_u16(self, v: u16) -> Result<Written> {
        self.int(v)
    }
    fn serialize_u32(self, v: u32) -> Result<Written> {
        self.int(v)
    }
    fn serialize_u64(self, v: u64) -> Result<Written> {
        if i64::try_from(v).is_err() {
            return Err(TomlWriteError::OutOfRange(v));
        }
        self.int(v)
    }
    fn serialize_f32(self, v: f32) -> Result<Written> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Written> {
        write_float(self.out, v);
        Ok(Written::Value)
    }
    fn serialize_char(self, v: char) -> Result<Written> {
        write_string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(Written::Value)
    }
    fn serialize_str(self, v: &str) -> Result<Written> {
        write_string(self.out, v);
        Ok(Written::Value)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Written> {
        use ser::SerializeSeq;
        let mut a = self.inline_array(false);
        for b in v {
            a.serialize_element(b)?;
        }
        a.end()
    }
    fn serialize_none(self) -> Result<Written> {
        Ok(Written::Nothing)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Written> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Written> {
        Err(TomlWriteError::Unsupported("a unit value"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Written> {
        Err(TomlWriteError::Unsupported("a unit struct"))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Written> {
        write_string(self.out, variant);
        Ok(Written::Value)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Written> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Written> {
        let out = self.variant_open(variant).out;
        match value.serialize(ValueSerializer { out: &mut *out })? {
            Written::Value => {
                out.push_str(" }");
                Ok(Written::Value)
            }
            Written::Nothing => Err(TomlWriteError::Unsupported("an enum variant holding None")),
        }
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<InlineArray<'a>> {
        Ok(self.inline_array(false))
    }
    fn serialize_tuple(self, _: usize) -> Result<InlineArray<'a>> {
        Ok(self.inline_array(false))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<InlineArray<'a>> {
        Ok(self.inline_array(false))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<InlineArray<'a>> {
        Ok(self.variant_open(variant).inline_array(true))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<InlineTable<'a>> {
        Ok(self.inline_table(false))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<InlineTable<'a>> {
        Ok(self.inline_table(false))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<InlineTable<'a>> {
        Ok(self.variant_open(variant).inline_table(true))
    }
}

/// Writes a map key: strings (and unit variants, as their names) only.
struct KeySerializer<'a> {
    out: &'a mut String,
}

macro_rules! key_not_string {
    ($($f:ident($($t:ty),*) -> $ok:ty, $what:literal;)*) => {$(
        fn $f(self, $(_: $t),*) -> Result<$ok> {
            Err(TomlWriteError::KeyNotString($what))
        }
    )*};
}

impl ser::Serializer for KeySerializer<'_> {
    type Ok = ();
    type Error = TomlWriteError;
    type SerializeSeq = ser::Impossible<(), TomlWriteError>;
    type SerializeTuple = ser::Impossible<(), TomlWriteError>;
    type SerializeTupleStruct = ser::Impossible<(), TomlWriteError>;
    type SerializeTupleVariant = ser::Impossible<(), TomlWriteError>;
    type SerializeMap = ser::Impossible<(), TomlWriteError>;
    type SerializeStruct = ser::Impossible<(), TomlWriteError>;
    type SerializeStructVariant = ser::Impossible<(), TomlWriteError>;

    key_not_string! {
        serialize_bool(bool) -> (), "a bool";
        serialize_i8(i8) -> (), "an integer";
        serialize_i16(i16) -> (), "an integer";
        serialize_i32(i32) -> (), "an integer";
        serialize_i64(i64) -> (), "an integer";
        serialize_u8(u8) -> (), "an integer";
        serialize_u16(u16) -> (), "an integer";
        serialize_u32(u32) -> (), "an integer";
        serialize_u64(u64) -> (), "an integer";
        serialize_f32(f32) -> (), "a float";
        serialize_f64(f64) -> (), "a float";
        serialize_bytes(&[u8]) -> (), "bytes";
        serialize_none() -> (), "None";
        serialize_unit() -> (), "a unit value";
        serialize_unit_struct(&'static str) -> (), "a unit struct";
        serialize_seq(Option<usize>) -> Self::SerializeSeq, "an array";
        serialize_tuple(usize) -> Self::SerializeTuple, "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct, "a tuple";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant, "an enum";
        serialize_map(Option<usize>) -> Self::SerializeMap, "a table";
        serialize_struct(&'static str, usize) -> Self::SerializeStruct, "a table";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant, "an enum";
    }

    fn serialize_char(self, v: char) -> Result<()> {
        write_key(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        write_key(self.out, v);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        write_key(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<()> {
        Err(TomlWriteError::KeyNotString("an enum"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Pair(i64, i64),
        Box { w: i64, h: i64 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Object {
        name: String,
        #[serde(default)]
        maybe: Option<String>,
        labels: BTreeMap<String, String>,
        list: Vec<String>,
        nested: Vec<BTreeMap<String, Vec<i64>>>,
        shapes: Vec<Shape>,
        float: f64,
        flag: bool,
        big: u64,
    }

    fn object(name: &str) -> Object {
        Object {
            name: name.to_string(),
            maybe: None,
            labels: BTreeMap::new(),
            list: Vec::new(),
            nested: Vec::new(),
            shapes: Vec::new(),
            float: 0.0,
            flag: false,
            big: 0,
        }
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Doc {
        #[serde(default)]
        object: Vec<Object>,
    }

    fn round_trip(objects: &[Object]) -> String {
        let mut out = String::new();
        write_array_of_tables(&mut out, "object", objects).expect("written");
        let back: Doc = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert_eq!(back.object, objects, "{out}");
        out
    }

    #[test]
    fn odd_strings_load_back_equal() {
        let odd = [
            "",
            "plain",
            "a \"quoted\" word",
            "back\\slash and \\\" both",
            "tab\there, newline\nthere, cr\r, ff\u{c}, bs\u{8}",
            "nul\u{0} unit\u{1f} del\u{7f} esc\u{1b}",
            "unicode: é ü ß 日本 🦀 \u{200b} \u{feff}",
            "'single' and '''triple'''",
            "\"\"\"",
            "# not a comment",
            "trailing backslash \\",
        ];
        let objects: Vec<Object> = odd
            .iter()
            .map(|s| {
                let mut o = object(s);
                o.maybe = Some((*s).to_string());
                o.labels.insert((*s).to_string(), (*s).to_string());
                o.labels.insert(format!("k.{s}"), String::new());
                o.list = vec![(*s).to_string(), (*s).to_string()];
                o
            })
            .collect();
        let text = round_trip(&objects);
        assert!(text.contains(r#"name = "a \"quoted\" word""#), "{text}");
        assert!(
            text.contains(r#""nul\u0000 unit\u001F del\u007F esc\u001B""#),
            "{text}"
        );
        assert!(text.contains("🦀"), "non-ASCII is written as it is: {text}");
    }

    #[test]
    fn empty_tables_arrays_and_nested_values_load_back_equal() {
        let mut a = object("a");
        a.nested = vec![BTreeMap::new(), BTreeMap::from([("x".into(), vec![])])];
        let mut b = object("b");
        b.maybe = Some(String::new());
        b.nested = vec![BTreeMap::from([
            ("one".into(), vec![1]),
            ("two words".into(), vec![-2, i64::MAX, i64::MIN]),
        ])];
        b.shapes = vec![
            Shape::Dot,
            Shape::Circle(1.5),
            Shape::Circle(-3.0),
            Shape::Circle(1e300),
            Shape::Pair(1, 2),
            Shape::Box { w: 3, h: 4 },
        ];
        b.float = 2.0;
        b.flag = true;
        b.big = i64::MAX as u64;
        let text = round_trip(&[a, b]);
        assert!(text.contains("labels = {}\n"), "{text}");
        assert!(text.contains("list = []\n"), "{text}");
        assert!(text.contains("nested = [{}, { x = [] }]\n"), "{text}");
        assert!(!text.contains("maybe = \n"), "{text}");
        assert_eq!(text.matches("[[object]]").count(), 2, "{text}");
    }

    #[test]
    fn keys_are_bare_only_when_toml_allows() {
        let mut out = String::new();
        for k in ["abc", "a-b_C9", "a.b", "", "a b", "é", "=", "\"q\""] {
            write_key(&mut out, k);
            out.push(' ');
        }
        assert_eq!(out, r#"abc a-b_C9 "a.b" "" "a b" "é" "=" "\"q\"" "#);
    }

    #[test]
    fn what_toml_cannot_express_is_an_error() {
        let mut o = object("too big");
        o.big = u64::MAX;
        let mut out = String::from("[[kept]]\n");
        assert_eq!(
            write_array_of_tables(&mut out, "object", &[o]),
            Err(TomlWriteError::OutOfRange(u64::MAX))
        );
        assert_eq!(out, "[[kept]]\n", "a failed object leaves nothing behind");

        #[derive(Serialize)]
        struct WithNone {
            list: Vec<Option<i64>>,
        }
        let e = write_array_of_tables(
            &mut String::new(),
            "x",
            &[WithNone {
                list: vec![Some(1), None],
            }],
        );
        assert_eq!(
            e,
            Err(TomlWriteError::Unsupported("a None inside an array"))
        );

        #[derive(Serialize)]
        struct IntKeys {
            map: BTreeMap<i64, i64>,
        }
        let e = write_array_of_tables(
            &mut String::new(),
            "x",
            &[IntKeys {
                map: BTreeMap::from([(1, 2)]),
            }],
        );
        assert_eq!(e, Err(TomlWriteError::KeyNotString("an integer")));

        let e = write_array_of_tables(&mut String::new(), "x", &[1u32]);
        assert_eq!(e, Err(TomlWriteError::NotATable("x".into())));
    }

    #[test]
    fn floats_keep_a_float_form() {
        for (v, text) in [
            (0.0, "0.0"),
            (-2.0, "-2.0"),
            (0.25, "0.25"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            let mut out = String::new();
            write_float(&mut out, v);
            assert_eq!(out, text);
        }
    }
}
