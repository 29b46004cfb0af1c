//! The values a pickle decodes to ([`Value`]) and the conversions of Python's literal encodings
//! (two's complement longs, decimal longs, `raw-unicode-escape` text) the pickle machine uses.

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for `i64`: little-endian two's complement bytes (`LONG1`/`LONG4`).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Key/value pairs in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A class or function reference `module.name` (never resolved).
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)`, recorded rather than called.
    Reduce {
        callable: Box<Value>,
        args: Box<Value>,
    },
    /// `cls.__new__(cls, *args)` (`NEWOBJ`).
    NewObj {
        class: Box<Value>,
        args: Box<Value>,
    },
    /// `obj.__setstate__(state)` (`BUILD`).
    Build {
        object: Box<Value>,
        state: Box<Value>,
    },
    /// A persistent id the pickler stored out of band (torch storages).
    Persistent(Box<Value>),
}

impl Value {
    /// The string, when this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when this is an `Int` (or a `Bool`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// The value stored under the string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// `module.name` when this is a `Global`.
    pub fn global_name(&self) -> Option<String> {
        match self {
            Value::Global { module, name } => Some(format!("{module}.{name}")),
            _ => None,
        }
    }
}

/// A little-endian two's complement integer; `Int` when it fits in 64 bits.
pub(crate) fn long_from_bytes(b: Vec<u8>) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let negative = b[b.len() - 1] & 0x80 != 0;
        let mut a = if negative { [0xffu8; 8] } else { [0u8; 8] };
        a[..b.len()].copy_from_slice(&b);
        return Value::Int(i64::from_le_bytes(a));
    }
    Value::BigInt(b)
}

/// Python's `raw-unicode-escape`: bytes are Latin-1 characters except `\uXXXX` and
/// `\UXXXXXXXX` escapes (protocol 0's `UNICODE` argument).
pub(crate) fn raw_unicode_escape(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let width = match (b, bytes.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => 0,
        };
        if width == 0 {
            out.push(b as char);
            i += 1;
            continue;
        }
        let hex = std::str::from_utf8(bytes.get(i + 2..i + 2 + width)?).ok()?;
        out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
        i += 2 + width;
    }
    Some(out)
}

/// A decimal integer too large for `i64` as little-endian two's complement bytes (the same
/// encoding `LONG1` uses), so protocol 0 and protocol 2 pickles decode alike.
pub(crate) fn decimal_to_long(text: &str) -> Option<Value> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut mag: Vec<u8> = vec![0];
    for d in digits.bytes() {
        let mut carry = (d - b'0') as u32;
        for byte in mag.iter_mut() {
            let v = *byte as u32 * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        if carry > 0 {
            mag.push(carry as u8);
        }
    }
    // Room for the sign bit.
    if mag[mag.len() - 1] & 0x80 != 0 {
        mag.push(0);
    }
    if negative {
        let mut carry = 1u16;
        for byte in mag.iter_mut() {
            let v = (!*byte) as u16 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
    }
    Some(long_from_bytes(mag))
}

pub(crate) fn is_dict_class(v: &Value) -> bool {
    matches!(v, Value::Global { module, name }
        if (module == "collections" && name == "OrderedDict") || (module == "builtins" && name == "dict") || (module == "__builtin__" && name == "dict"))
}

/// The items of a dict, looking through `BUILD` wrappers (an `OrderedDict` that was given
/// attributes, like torch's `_metadata`, is pickled as its items followed by a `BUILD`).
pub fn dict_items(v: &Value) -> Option<&[(Value, Value)]> {
    match v {
        Value::Dict(items) => Some(items),
        Value::Build { object, .. } => dict_items(object),
        _ => None,
    }
}
