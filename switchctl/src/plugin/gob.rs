//! The subset of Go's `encoding/gob` that the cf CLI's plugin RPC uses: bools, ints, uints,
//! floats, strings, byte slices, slices, maps and (nested) structs, with their type definitions.
//!
//! Written from Go's `src/encoding/gob/doc.go`, `encode.go`, `encoder.go` and `type.go` (Go 1.19,
//! Debian's golang-go; the wire format has not changed since Go 1.0 and is promised stable):
//!
//! * A stream is a sequence of messages, each `uint(length)` then the bytes. A message is either a
//!   type definition, `int(-id)` then a `wireType` value, or a value, `int(id)` then the value.
//! * `uint`: below 128 one byte; else the byte count negated, then the big-endian bytes without
//!   leading zeros. `int`: `i << 1`, or `(^i << 1) | 1` when negative, sent as a uint. `bool`: a
//!   uint 0/1. `float`: the IEEE bits byte-reversed, as a uint. `string` and `[]byte`: a uint length
//!   then the bytes.
//! * A struct: per field sent, `uint(field number - previous field number)` (the first counted from
//!   -1) then the value; `0` ends it. A struct field whose value is zero (false, 0, "", an empty
//!   slice, a nil map) is not sent; nested struct fields are always sent (`encOpFor`'s struct op
//!   has no zero check), non-nil maps even when empty.
//! * A slice or array: `uint(count)` then each element (zeros included); a map: `uint(count)` then
//!   key, value pairs.
//! * A top-level value that is not a struct is sent as a struct with one field: `0` then the value
//!   (`encodeSingle`).
//! * Types 1–8 are predefined (bool, int, uint, float, []byte, string, complex, interface) and
//!   16–23 are gob's own (`wireType`, `arrayType`, `CommonType`, `sliceType`, `structType`,
//!   `fieldType`, `[]fieldType`, `mapType`); user types start at 65 in a fresh Go process
//!   (`firstUserId` is 64, and `setTypeId` increments before use), a struct numbered before its
//!   fields, a slice or map after its element types (`newTypeObject`). An encoder sends each
//!   type's definition once per stream, before the first value that needs it: the type itself,
//!   then the types of its fields or elements (`sendActualType`).
//!
//! Interfaces, complex numbers and `GobEncoder` types are not needed by the plugin RPC and are
//! refused with an error rather than guessed.

use std::{
    collections::{HashMap, HashSet},
    io::{Read, Write},
    sync::Arc,
};

/// A gob encoding or decoding failure.
#[derive(Debug, thiserror::Error)]
pub enum GobError {
    /// Reading or writing the stream failed.
    #[error("gob stream: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes do not follow the gob format (or use a part of it this module does not support).
    #[error("gob: {0}")]
    Format(String),
    /// A value does not fit the type it is encoded as.
    #[error("gob: value does not fit type {0}")]
    Mismatch(String),
}

fn format_err(msg: impl Into<String>) -> GobError {
    GobError::Format(msg.into())
}

/// Largest message accepted (Go's `tooBig` is 1 GiB on 64-bit; the plugin RPC sends kilobytes).
const MAX_MESSAGE: u64 = 16 << 20;

/// A Go type, as gob describes it. Composite types carry the name gob sends in their definition:
/// the Go type's name; for an unnamed type in a struct field what Go's `reflect.Type.String`
/// prints (`[]plugin.Command`), and at the top level `""`. Decoders match structs by field name,
/// never by type name.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// `bool` (id 1).
    Bool,
    /// Any signed integer (id 2).
    Int,
    /// Any unsigned integer (id 3).
    Uint,
    /// `float32`/`float64` (id 4).
    Float,
    /// `[]byte` (id 5).
    Bytes,
    /// `string` (id 6).
    String,
    /// A slice of another type.
    Slice(Arc<Composite>),
    /// A map.
    Map(Arc<Composite>),
    /// A struct.
    Struct(Arc<StructType>),
    /// A pointer (`*T`): gob sends the value pointed to, and leaves a nil pointer field out.
    Pointer(Arc<Type>),
}

/// A slice (`elem` only) or map (`key` and `elem`) type.
#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    /// Go's name of the type.
    pub name: String,
    /// The key type (maps only).
    pub key: Option<Type>,
    /// The element type.
    pub elem: Type,
}

/// A struct type: its name and exported fields in declaration order.
#[derive(Debug, Clone, PartialEq)]
pub struct StructType {
    /// Go's name of the type.
    pub name: String,
    /// Field names and types.
    pub fields: Vec<(String, Type)>,
}

impl Type {
    /// A struct type.
    pub fn structure(name: &str, fields: &[(&str, Type)]) -> Type {
        let fields = fields.iter().map(|(n, t)| ((*n).to_owned(), t.clone())).collect();
        Type::Struct(Arc::new(StructType { name: name.to_owned(), fields }))
    }

    /// A slice type named `name`.
    pub fn slice(name: &str, elem: Type) -> Type {
        Type::Slice(Arc::new(Composite { name: name.to_owned(), key: None, elem }))
    }

    /// A map type named `name`.
    pub fn map(name: &str, key: Type, elem: Type) -> Type {
        Type::Map(Arc::new(Composite { name: name.to_owned(), key: Some(key), elem }))
    }

    fn builtin_id(&self) -> Option<i64> {
        Some(match self {
            Type::Bool => 1,
            Type::Int => 2,
            Type::Uint => 3,
            Type::Float => 4,
            Type::Bytes => 5,
            Type::String => 6,
            Type::Pointer(inner) => return inner.builtin_id(),
            Type::Slice(_) | Type::Map(_) | Type::Struct(_) => return None,
        })
    }

    /// What tells types apart in one stream: the whole description, not the name (Go sends an
    /// empty name for an unnamed type sent at the top level).
    fn key(&self) -> String {
        match self {
            Type::Pointer(inner) => inner.key(),
            other => format!("{other:?}"),
        }
    }

    fn name(&self) -> String {
        match self {
            Type::Slice(c) | Type::Map(c) => c.name.clone(),
            Type::Struct(s) => s.name.clone(),
            Type::Pointer(inner) => inner.name(),
            other => format!("{other:?}"),
        }
    }
}

/// A gob value. Decoded structs hold the fields that were sent (gob leaves zero fields out), so
/// read them with [`Value::field`] and the `as_…` accessors, which give the zero value for absent ones.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A bool.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A float.
    Float(f64),
    /// A byte slice.
    Bytes(Vec<u8>),
    /// A string.
    String(String),
    /// A slice or array.
    Slice(Vec<Value>),
    /// A map, in the order received (or to send).
    Map(Vec<(Value, Value)>),
    /// A struct: field name and value.
    Struct(Vec<(String, Value)>),
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    /// A struct value from `(field, value)` pairs.
    pub fn structure(fields: Vec<(&str, Value)>) -> Value {
        Value::Struct(fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect())
    }

    /// The field `name` of a struct (`None` when absent, i.e. zero, or not a struct).
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, `""` for anything else (gob's zero).
    pub fn as_str(&self) -> &str {
        match self {
            Value::String(s) => s,
            _ => "",
        }
    }

    /// The bool, `false` for anything else.
    pub fn as_bool(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// The integer (signed or unsigned), 0 for anything else.
    pub fn as_i64(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            Value::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
            _ => 0,
        }
    }

    /// A string field of a struct, `""` when absent.
    pub fn str_field(&self, name: &str) -> &str {
        self.field(name).map_or("", Value::as_str)
    }

    fn is_zero(&self) -> bool {
        match self {
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Uint(u) => *u == 0,
            Value::Float(f) => *f == 0.0,
            Value::Bytes(b) => b.is_empty(),
            Value::String(s) => s.is_empty(),
            Value::Slice(s) => s.is_empty(),
            // A map value stands for a non-nil map, which Go sends even when empty.
            Value::Map(_) | Value::Struct(_) => false,
        }
    }
}

/// Appends gob's unsigned integer encoding of `x`.
pub fn put_uint(out: &mut Vec<u8>, x: u64) {
    if x <= 0x7f {
        out.push(x as u8);
        return;
    }
    let bytes = x.to_be_bytes();
    let skip = (x.leading_zeros() / 8) as usize;
    // The count byte is -(number of bytes) as a two's-complement byte.
    out.push((skip as u8).wrapping_sub(8));
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends gob's signed integer encoding of `i`.
pub fn put_int(out: &mut Vec<u8>, i: i64) {
    let x = if i < 0 { ((!i as u64) << 1) | 1 } else { (i as u64) << 1 };
    put_uint(out, x);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes values (and the type definitions they need) to one gob stream.
#[derive(Debug)]
pub struct Encoder {
    /// Ids given to the composite types of this stream, by [`Type::key`].
    ids: HashMap<String, i64>,
    /// Types whose definition has been sent.
    sent: HashSet<String>,
    next_id: i64,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// A fresh stream; ids are given as a fresh Go process gives them (from 65).
    pub fn new() -> Encoder {
        Encoder { ids: HashMap::new(), sent: HashSet::new(), next_id: 65 }
    }

    /// The messages that send `value` as `ty`: the definitions not sent yet, then the value.
    pub fn encode(&mut self, ty: &Type, value: &Value) -> Result<Vec<u8>, GobError> {
        let mut out = Vec::new();
        self.assign_ids(ty);
        self.send_type(ty, &mut out)?;
        let id = self.id_of(ty);
        let mut body = Vec::new();
        put_int(&mut body, id);
        match ty {
            Type::Struct(st) => encode_struct(st, value, &mut body)?,
            _ => {
                // encodeSingle: a top-level non-struct is field 0 of an implicit struct, zero or not.
                put_uint(&mut body, 0);
                encode_value(ty, value, &mut body)?;
            }
        }
        message(&mut out, &body);
        Ok(out)
    }

    /// Encodes and writes `value` to `w`.
    pub fn write(&mut self, w: &mut impl Write, ty: &Type, value: &Value) -> Result<(), GobError> {
        let bytes = self.encode(ty, value)?;
        w.write_all(&bytes)?;
        Ok(())
    }

    fn id_of(&self, ty: &Type) -> i64 {
        ty.builtin_id().unwrap_or_else(|| self.ids.get(&ty.key()).copied().unwrap_or(0))
    }

    /// In the order Go's `newTypeObject` gives ids: a struct before its fields (`newStructType`
    /// sets it), a slice or map after its components (their `init` sets it once those are built).
    fn assign_ids(&mut self, ty: &Type) {
        if let Type::Pointer(inner) = ty {
            return self.assign_ids(inner);
        }
        if ty.builtin_id().is_some() || self.ids.contains_key(&ty.key()) {
            return;
        }
        match ty {
            Type::Slice(c) | Type::Map(c) => {
                if let Some(key) = &c.key {
                    self.assign_ids(key);
                }
                self.assign_ids(&c.elem);
                self.ids.insert(ty.key(), self.next_id);
                self.next_id += 1;
            }
            Type::Struct(st) => {
                self.ids.insert(ty.key(), self.next_id);
                self.next_id += 1;
                for (_, field) in &st.fields {
                    self.assign_ids(field);
                }
            }
            _ => {}
        }
    }

    /// `sendActualType`: this type's definition, then its components' (each once per stream).
    fn send_type(&mut self, ty: &Type, out: &mut Vec<u8>) -> Result<(), GobError> {
        if let Type::Pointer(inner) = ty {
            return self.send_type(inner, out);
        }
        if ty.builtin_id().is_some() || self.sent.contains(&ty.key()) {
            return Ok(());
        }
        self.sent.insert(ty.key());
        let id = self.id_of(ty);
        let common = |name: &str| Value::structure(vec![("Name", Value::str(name)), ("Id", Value::Int(id))]);
        let wire = match ty {
            Type::Slice(c) => Value::structure(vec![(
                "SliceT",
                Value::structure(vec![("CommonType", common(&c.name)), ("Elem", Value::Int(self.id_of(&c.elem)))]),
            )]),
            Type::Map(c) => {
                let key = c.key.as_ref().map_or(0, |k| self.id_of(k));
                Value::structure(vec![(
                    "MapT",
                    Value::structure(vec![
                        ("CommonType", common(&c.name)),
                        ("Key", Value::Int(key)),
                        ("Elem", Value::Int(self.id_of(&c.elem))),
                    ]),
                )])
            }
            Type::Struct(st) => {
                let fields = st
                    .fields
                    .iter()
                    .map(|(name, t)| {
                        Value::structure(vec![("Name", Value::str(name)), ("Id", Value::Int(self.id_of(t)))])
                    })
                    .collect();
                Value::structure(vec![(
                    "StructT",
                    Value::structure(vec![("CommonType", common(&st.name)), ("Field", Value::Slice(fields))]),
                )])
            }
            _ => return Ok(()),
        };
        let mut body = Vec::new();
        put_int(&mut body, -id);
        let Type::Struct(wire_type) = bootstrap::wire_type() else {
            return Err(format_err("bootstrap wireType is a struct"));
        };
        encode_struct(&wire_type, &wire, &mut body)?;
        message(out, &body);
        match ty {
            Type::Slice(c) | Type::Map(c) => {
                if let Some(key) = &c.key {
                    self.send_type(key, out)?;
                }
                self.send_type(&c.elem, out)?;
            }
            Type::Struct(st) => {
                for (_, field) in &st.fields {
                    self.send_type(field, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn message(out: &mut Vec<u8>, body: &[u8]) {
    put_uint(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn mismatch(ty: &Type) -> GobError {
    GobError::Mismatch(ty.name())
}

fn encode_struct(st: &StructType, value: &Value, out: &mut Vec<u8>) -> Result<(), GobError> {
    let Value::Struct(given) = value else {
        return Err(GobError::Mismatch(st.name.clone()));
    };
    if let Some((unknown, _)) = given.iter().find(|(n, _)| !st.fields.iter().any(|(f, _)| f == n)) {
        return Err(GobError::Mismatch(format!("{} has no field {unknown}", st.name)));
    }
    let mut last: i64 = -1;
    for (number, (name, ty)) in st.fields.iter().enumerate() {
        let value = given.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let empty;
        let value = match (value, ty) {
            (Some(v), _) if !v.is_zero() => v,
            // A nil pointer is not sent.
            (None, Type::Pointer(_)) => continue,
            // Nested structs are always sent, even when zero.
            (_, Type::Struct(_)) => {
                empty = Value::Struct(Vec::new());
                value.unwrap_or(&empty)
            }
            _ => continue,
        };
        let number = number as i64;
        put_uint(out, (number - last) as u64);
        last = number;
        encode_value(ty, value, out)?;
    }
    put_uint(out, 0);
    Ok(())
}

fn encode_value(ty: &Type, value: &Value, out: &mut Vec<u8>) -> Result<(), GobError> {
    match (ty, value) {
        (Type::Bool, Value::Bool(b)) => put_uint(out, u64::from(*b)),
        (Type::Int, Value::Int(i)) => put_int(out, *i),
        (Type::Uint, Value::Uint(u)) => put_uint(out, *u),
        (Type::Float, Value::Float(f)) => put_uint(out, f.to_bits().swap_bytes()),
        (Type::Bytes, Value::Bytes(b)) => put_bytes(out, b),
        (Type::String, Value::String(s)) => put_bytes(out, s.as_bytes()),
        (Type::Slice(c), Value::Slice(items)) => {
            put_uint(out, items.len() as u64);
            for item in items {
                encode_element(&c.elem, item, out)?;
            }
        }
        (Type::Map(c), Value::Map(pairs)) => {
            let key_type = c.key.as_ref().ok_or_else(|| mismatch(ty))?;
            put_uint(out, pairs.len() as u64);
            for (k, v) in pairs {
                encode_element(key_type, k, out)?;
                encode_element(&c.elem, v, out)?;
            }
        }
        (Type::Struct(st), v @ Value::Struct(_)) => encode_struct(st, v, out)?,
        (Type::Pointer(inner), v) => encode_value(inner, v, out)?,
        _ => return Err(mismatch(ty)),
    }
    Ok(())
}

/// Elements of slices and maps are sent even when zero (`sendZero`).
fn encode_element(ty: &Type, value: &Value, out: &mut Vec<u8>) -> Result<(), GobError> {
    encode_value(ty, value, out)
}

/// gob's own types, predefined on both sides (`type.go`).
mod bootstrap {
    use super::Type;

    pub(super) fn common_type() -> Type {
        Type::structure("CommonType", &[("Name", Type::String), ("Id", Type::Int)])
    }

    pub(super) fn wire_type() -> Type {
        let array =
            Type::structure("arrayType", &[("CommonType", common_type()), ("Elem", Type::Int), ("Len", Type::Int)]);
        let slice = Type::structure("sliceType", &[("CommonType", common_type()), ("Elem", Type::Int)]);
        let field = Type::structure("fieldType", &[("Name", Type::String), ("Id", Type::Int)]);
        let structure = Type::structure(
            "structType",
            &[
                ("CommonType", common_type()),
                ("Field", Type::slice("[]*gob.fieldType", Type::Pointer(std::sync::Arc::new(field)))),
            ],
        );
        let map = Type::structure("mapType", &[("CommonType", common_type()), ("Key", Type::Int), ("Elem", Type::Int)]);
        let gob_encoder = Type::structure("gobEncoderType", &[("CommonType", common_type())]);
        let ptr = |t: Type| Type::Pointer(std::sync::Arc::new(t));
        Type::structure(
            "wireType",
            &[
                ("ArrayT", ptr(array)),
                ("SliceT", ptr(slice)),
                ("StructT", ptr(structure)),
                ("MapT", ptr(map)),
                ("GobEncoderT", ptr(gob_encoder.clone())),
                ("BinaryMarshalerT", ptr(gob_encoder.clone())),
                ("TextMarshalerT", ptr(gob_encoder)),
            ],
        )
    }
}

/// A type as the decoder knows it, by id.
#[derive(Debug, Clone)]
enum Wire {
    Bool,
    Int,
    Uint,
    Float,
    Bytes,
    String,
    Slice(i64),
    Array(i64),
    Map(i64, i64),
    Struct(Vec<(String, i64)>),
}

/// Reads values from one gob stream, learning the type definitions it carries.
#[derive(Debug)]
pub struct Decoder<R> {
    reader: R,
    types: HashMap<i64, Wire>,
}

impl<R: Read> Decoder<R> {
    /// A decoder of the stream `reader`.
    pub fn new(reader: R) -> Decoder<R> {
        let mut types = HashMap::new();
        for (id, wire) in
            [(1, Wire::Bool), (2, Wire::Int), (3, Wire::Uint), (4, Wire::Float), (5, Wire::Bytes), (6, Wire::String)]
        {
            types.insert(id, wire);
        }
        let s = |fields: &[(&str, i64)]| Wire::Struct(fields.iter().map(|(n, i)| ((*n).to_owned(), *i)).collect());
        // type.go's bootstrap ids (checkId: 16–21, 23); 22 is []fieldType, 24 gobEncoderType.
        types.insert(
            16,
            s(&[
                ("ArrayT", 17),
                ("SliceT", 19),
                ("StructT", 20),
                ("MapT", 23),
                ("GobEncoderT", 24),
                ("BinaryMarshalerT", 24),
                ("TextMarshalerT", 24),
            ]),
        );
        types.insert(17, s(&[("CommonType", 18), ("Elem", 2), ("Len", 2)]));
        types.insert(18, s(&[("Name", 6), ("Id", 2)]));
        types.insert(19, s(&[("CommonType", 18), ("Elem", 2)]));
        types.insert(20, s(&[("CommonType", 18), ("Field", 22)]));
        types.insert(21, s(&[("Name", 6), ("Id", 2)]));
        types.insert(22, Wire::Slice(21));
        types.insert(23, s(&[("CommonType", 18), ("Key", 2), ("Elem", 2)]));
        types.insert(24, s(&[("CommonType", 18)]));
        Decoder { reader, types }
    }

    /// The next value of the stream, after the type definitions before it.
    pub fn read(&mut self) -> Result<Value, GobError> {
        loop {
            let len = read_uint(&mut self.reader)?;
            if len > MAX_MESSAGE {
                return Err(format_err(format!("message of {len} bytes")));
            }
            let mut body = vec![0; len as usize];
            self.reader.read_exact(&mut body)?;
            let mut cursor = &body[..];
            let id = read_int(&mut cursor)?;
            if id < 0 {
                let wire = self.decode(16, &mut cursor)?;
                let parsed = parse_wire_type(&wire)?;
                self.types.insert(-id, parsed);
                continue;
            }
            let value = match self.types.get(&id) {
                Some(Wire::Struct(_)) => self.decode(id, &mut cursor)?,
                Some(_) => {
                    if read_uint(&mut cursor)? != 0 {
                        return Err(format_err("a single value must be field 0"));
                    }
                    self.decode(id, &mut cursor)?
                }
                None => return Err(format_err(format!("value of undefined type {id}"))),
            };
            if !cursor.is_empty() {
                return Err(format_err(format!("{} bytes left after a value", cursor.len())));
            }
            return Ok(value);
        }
    }

    fn decode(&self, id: i64, input: &mut &[u8]) -> Result<Value, GobError> {
        let wire = self.types.get(&id).ok_or_else(|| format_err(format!("unknown type id {id}")))?;
        Ok(match wire {
            Wire::Bool => Value::Bool(match read_uint(input)? {
                0 => false,
                1 => true,
                n => return Err(format_err(format!("bad bool {n}"))),
            }),
            Wire::Int => Value::Int(read_int(input)?),
            Wire::Uint => Value::Uint(read_uint(input)?),
            Wire::Float => Value::Float(f64::from_bits(read_uint(input)?.swap_bytes())),
            Wire::Bytes => Value::Bytes(read_bytes(input)?.to_vec()),
            Wire::String => Value::String(
                String::from_utf8(read_bytes(input)?.to_vec()).map_err(|_| format_err("string is not UTF-8"))?,
            ),
            Wire::Slice(elem) | Wire::Array(elem) => {
                let n = read_count(input)?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(self.decode(*elem, input)?);
                }
                Value::Slice(items)
            }
            Wire::Map(key, elem) => {
                let n = read_count(input)?;
                let mut pairs = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let k = self.decode(*key, input)?;
                    let v = self.decode(*elem, input)?;
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            }
            Wire::Struct(fields) => {
                let mut out = Vec::new();
                let mut number: i64 = -1;
                loop {
                    let delta = read_uint(input)?;
                    if delta == 0 {
                        break;
                    }
                    number = number
                        .checked_add(i64::try_from(delta).map_err(|_| format_err("field delta"))?)
                        .ok_or_else(|| format_err("field delta"))?;
                    let (name, field_id) = usize::try_from(number)
                        .ok()
                        .and_then(|n| fields.get(n))
                        .ok_or_else(|| format_err(format!("field {number} out of range")))?;
                    out.push((name.clone(), self.decode(*field_id, input)?));
                }
                Value::Struct(out)
            }
        })
    }
}

fn parse_wire_type(wire: &Value) -> Result<Wire, GobError> {
    let id_of = |v: &Value, name: &str| v.field(name).map_or(0, Value::as_i64);
    if let Some(slice) = wire.field("SliceT") {
        return Ok(Wire::Slice(id_of(slice, "Elem")));
    }
    if let Some(array) = wire.field("ArrayT") {
        return Ok(Wire::Array(id_of(array, "Elem")));
    }
    if let Some(map) = wire.field("MapT") {
        return Ok(Wire::Map(id_of(map, "Key"), id_of(map, "Elem")));
    }
    if let Some(structure) = wire.field("StructT") {
        let fields = match structure.field("Field") {
            Some(Value::Slice(fields)) => {
                fields.iter().map(|f| (f.str_field("Name").to_owned(), id_of(f, "Id"))).collect()
            }
            _ => Vec::new(),
        };
        return Ok(Wire::Struct(fields));
    }
    Err(format_err("unsupported type definition (GobEncoder, interface or complex)"))
}

fn read_byte(input: &mut impl Read) -> Result<u8, GobError> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b)?;
    Ok(b[0])
}

/// Reads gob's unsigned integer encoding.
pub fn read_uint(input: &mut impl Read) -> Result<u64, GobError> {
    let first = read_byte(input)?;
    if first <= 0x7f {
        return Ok(u64::from(first));
    }
    let n = first.wrapping_neg();
    if n > 8 {
        return Err(format_err(format!("uint of {n} bytes")));
    }
    let mut x = 0u64;
    for _ in 0..n {
        x = (x << 8) | u64::from(read_byte(input)?);
    }
    Ok(x)
}

/// Reads gob's signed integer encoding.
pub fn read_int(input: &mut impl Read) -> Result<i64, GobError> {
    let x = read_uint(input)?;
    let i = (x >> 1) as i64;
    Ok(if x & 1 == 1 { !i } else { i })
}

fn read_count(input: &mut &[u8]) -> Result<usize, GobError> {
    let n = read_uint(input)?;
    // Each element takes at least one byte: a count beyond what is left is corrupt.
    usize::try_from(n).ok().filter(|n| *n <= input.len()).ok_or_else(|| format_err(format!("count {n} too large")))
}

fn read_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], GobError> {
    let n = read_count(input)?;
    let (bytes, rest) = input.split_at(n);
    *input = rest;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uint_bytes(x: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_uint(&mut out, x);
        out
    }

    fn int_bytes(i: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, i);
        out
    }

    #[test]
    fn integers_as_doc_go_shows_them() {
        // doc.go: "7 is transmitted as (07) and 256 as (FE 01 00)"; "-129=^128=(^256>>1) encodes as (FE 01 01)".
        assert_eq!(uint_bytes(7), [0x07]);
        assert_eq!(uint_bytes(256), [0xfe, 0x01, 0x00]);
        assert_eq!(int_bytes(-129), [0xfe, 0x01, 0x01]);
        assert_eq!(uint_bytes(u64::MAX), [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        for x in [0, 1, 127, 128, 255, 256, 65_535, 1 << 40, u64::MAX] {
            assert_eq!(read_uint(&mut &uint_bytes(x)[..]).ok(), Some(x), "{x}");
        }
        for i in [0, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN] {
            assert_eq!(read_int(&mut &int_bytes(i)[..]).ok(), Some(i), "{i}");
        }
    }

    #[test]
    fn a_struct_round_trips_through_the_decoder() {
        let version =
            Type::structure("VersionType", &[("Major", Type::Int), ("Minor", Type::Int), ("Build", Type::Int)]);
        let ty = Type::structure(
            "T",
            &[
                ("Name", Type::String),
                ("Version", version),
                ("Tags", Type::slice("[]string", Type::String)),
                ("Options", Type::map("map[string]string", Type::String, Type::String)),
                ("On", Type::Bool),
                ("Ratio", Type::Float),
                ("Count", Type::Uint),
            ],
        );
        let value = Value::structure(vec![
            ("Name", Value::str("maintenance")),
            ("Version", Value::structure(vec![("Major", Value::Int(1)), ("Build", Value::Int(-3))])),
            ("Tags", Value::Slice(vec![Value::str("a"), Value::str("")])),
            ("Options", Value::Map(vec![(Value::str("k"), Value::str("v"))])),
            ("On", Value::Bool(true)),
            ("Ratio", Value::Float(17.5)),
            ("Count", Value::Uint(300)),
        ]);
        let mut enc = Encoder::new();
        let mut bytes = enc.encode(&ty, &value).expect("encodes");
        // Definitions go once per stream: the second value is one message.
        let second = enc.encode(&ty, &value).expect("encodes");
        bytes.extend_from_slice(&second);
        let mut dec = Decoder::new(&bytes[..]);
        for _ in 0..2 {
            assert_eq!(dec.read().expect("decodes"), value);
        }
        assert!(second.len() < bytes.len() / 2, "no definitions in the second message");
    }

    #[test]
    fn zero_fields_are_left_out_and_corrupt_input_is_an_error() {
        let ty = Type::structure("S", &[("A", Type::String), ("B", Type::Int)]);
        let bytes = Encoder::new().encode(&ty, &Value::structure(vec![("B", Value::Int(2))])).expect("encodes");
        let got = Decoder::new(&bytes[..]).read().expect("decodes");
        assert_eq!(got, Value::structure(vec![("B", Value::Int(2))]));
        assert_eq!(got.str_field("A"), "");
        for cut in 0..bytes.len() {
            assert!(Decoder::new(&bytes[..cut]).read().is_err(), "cut at {cut}");
        }
        assert!(Encoder::new().encode(&ty, &Value::structure(vec![("C", Value::Int(1))])).is_err());
        assert!(Encoder::new().encode(&ty, &Value::str("x")).is_err());
    }
}
