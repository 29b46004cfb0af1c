//! A minimal, safe Python pickle virtual machine: it decodes the opcodes that torch checkpoints
//! (protocols 2 and 4) and numpy/Python-2 pickles use into a plain [`Value`] tree. Nothing is
//! ever executed: `GLOBAL` becomes [`Value::Global`], `REDUCE` becomes [`Value::Reduce`] and
//! `BUILD` becomes [`Value::Build`], so the caller decides what a class or call means.
//!
//! Memo entries are copies: an object mutated after it was memoised (a dict filled by
//! `SETITEMS` after `BINPUT`) is seen in its memoised state by later `BINGET`s. Pickles written
//! by torch and numpy only re-read immutable values (storage ids, class references), so this
//! keeps the value tree simple (no shared mutable nodes).

use std::collections::HashMap;

use super::pyvalue::{decimal_to_long, is_dict_class, long_from_bytes, raw_unicode_escape};
pub use super::pyvalue::{dict_items, Value};

/// A stack slot: a value or a `MARK`.
#[derive(Debug, Clone)]
enum Slot {
    Mark,
    Value(Value),
}

/// Decodes one pickle starting at `bytes[0]`; returns the value and the number of bytes read
/// (through the `STOP` opcode), so consecutive pickles in one file can be read in turn.
pub fn load(bytes: &[u8]) -> Result<(Value, usize), String> {
    Machine::new(bytes).run()
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Machine {
            bytes,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("pickle truncated at byte {}", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn line_bytes(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("pickle: unterminated text argument at byte {}", self.pos))?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let at = self.pos;
        let bytes = self.line_bytes()?;
        std::str::from_utf8(bytes)
            .map_err(|_| format!("pickle: non-UTF-8 text argument at byte {at}"))
    }

    fn string(&mut self, n: usize) -> Result<String, String> {
        let at = self.pos;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| format!("pickle: invalid UTF-8 string at byte {at}"))
    }

    /// Python 2 `str` payloads are bytes; decode them as Latin-1 like `encoding="latin1"`.
    fn latin1(&mut self, n: usize) -> Result<String, String> {
        Ok(self.take(n)?.iter().map(|&b| b as char).collect())
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Slot::Value(v));
    }

    fn pop(&mut self) -> Result<Value, String> {
        match self.stack.pop() {
            Some(Slot::Value(v)) => Ok(v),
            Some(Slot::Mark) => Err(format!("pickle: unexpected MARK at byte {}", self.pos)),
            None => Err(format!("pickle: stack underflow at byte {}", self.pos)),
        }
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        let pos = self.pos;
        match self.stack.last_mut() {
            Some(Slot::Value(v)) => Ok(v),
            _ => Err(format!("pickle: no value on the stack at byte {pos}")),
        }
    }

    /// Pops everything down to the topmost MARK (which is removed too).
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or_else(|| format!("pickle: no MARK on the stack at byte {}", self.pos))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|s| match s {
                Slot::Value(v) => v,
                Slot::Mark => Value::None,
            })
            .collect())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), String> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), String> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("pickle: memo key {key} not defined (byte {})", self.pos))?;
        self.push(v);
        Ok(())
    }

    fn set_items(&mut self, pairs: Vec<Value>) -> Result<(), String> {
        if !pairs.len().is_multiple_of(2) {
            return Err(format!(
                "pickle: odd number of dict items at byte {}",
                self.pos
            ));
        }
        let pos = self.pos;
        let Value::Dict(items) = self.top()? else {
            return Err(format!("pickle: SETITEM on a non-dict at byte {pos}"));
        };
        let mut it = pairs.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if let Some(slot) = items.iter_mut().find(|(old, _)| *old == k) {
                slot.1 = v;
            } else {
                items.push((k, v));
            }
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), String> {
        let pos = self.pos;
        match self.top()? {
            Value::List(list) => {
                list.extend(items);
                Ok(())
            }
            other => Err(format!(
                "pickle: APPEND to a non-list {other:?} at byte {pos}"
            )),
        }
    }

    fn run(mut self) -> Result<(Value, usize), String> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(format!("pickle: unsupported protocol {proto}"));
                    }
                }
                0x95 => {
                    // FRAME: a length hint only.
                    self.u64()?;
                }
                b'.' => {
                    // STOP
                    let v = self.pop()?;
                    return Ok((v, self.pos));
                }
                b'(' => self.stack.push(Slot::Mark),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(long_from_bytes(b));
                }
                b'I' => {
                    // INT (text); "01"/"00" are True/False in protocol 0.
                    let text = self.line()?;
                    let v = match text {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        t => Value::Int(t.parse().map_err(|_| format!("pickle: bad INT {t:?}"))?),
                    };
                    self.push(v);
                }
                b'L' => {
                    let text = self.line()?.trim_end_matches('L');
                    let v = match text.parse() {
                        Ok(v) => Value::Int(v),
                        Err(_) => decimal_to_long(text)
                            .ok_or_else(|| format!("pickle: bad LONG {text:?}"))?,
                    };
                    self.push(v);
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'F' => {
                    let text = self.line()?;
                    let v = text
                        .parse()
                        .map_err(|_| format!("pickle: bad FLOAT {text:?}"))?;
                    self.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.string(n)?;
                    self.push(Value::Str(s));
                }
                0x8c => {
                    // SHORT_BINUNICODE
                    let n = self.u8()? as usize;
                    let s = self.string(n)?;
                    self.push(Value::Str(s));
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let s = self.string(n)?;
                    self.push(Value::Str(s));
                }
                b'T' => {
                    // BINSTRING (Python 2 str)
                    let n = self.u32()? as usize;
                    let s = self.latin1(n)?;
                    self.push(Value::Str(s));
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let s = self.latin1(n)?;
                    self.push(Value::Str(s));
                }
                b'V' => {
                    let s = raw_unicode_escape(self.line_bytes()?)
                        .ok_or_else(|| format!("pickle: bad UNICODE argument at byte {at}"))?;
                    self.push(Value::Str(s));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                0x8e => {
                    let n = self.u64()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                0x96 => {
                    // BYTEARRAY8
                    let n = self.u64()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b'}' => self.push(Value::Dict(Vec::new())),
                0x8f => self.push(Value::List(Vec::new())), // EMPTY_SET, kept as a list
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                0x85 => {
                    let a = self.pop()?;
                    self.push(Value::Tuple(vec![a]));
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push(Value::Tuple(vec![a, b]));
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push(Value::Tuple(vec![a, b, c]));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                0x91 => {
                    // FROZENSET
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                0x90 => {
                    // ADDITEMS (to a set kept as a list)
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let text = self.line()?;
                    let k = text
                        .parse()
                        .map_err(|_| format!("pickle: bad PUT {text:?}"))?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    // MEMOIZE
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b'g' => {
                    let text = self.line()?;
                    let k = text
                        .parse()
                        .map_err(|_| format!("pickle: bad GET {text:?}"))?;
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.push(Value::Global { module, name });
                }
                0x93 => {
                    // STACK_GLOBAL
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            self.push(Value::Global { module, name })
                        }
                        _ => {
                            return Err(format!(
                                "pickle: STACK_GLOBAL without strings at byte {at}"
                            ))
                        }
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    // Dict subclasses built empty and then filled by SETITEMS are plain dicts.
                    if is_dict_class(&callable) && args == Value::Tuple(Vec::new()) {
                        self.push(Value::Dict(Vec::new()));
                        continue;
                    }
                    self.push(Value::Reduce {
                        callable: Box::new(callable),
                        args: Box::new(args),
                    });
                }
                0x81 => {
                    // NEWOBJ
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.push(Value::NewObj {
                        class: Box::new(class),
                        args: Box::new(args),
                    });
                }
                0x92 => {
                    // NEWOBJ_EX: cls, args, kwargs (kwargs dropped)
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.push(Value::NewObj {
                        class: Box::new(class),
                        args: Box::new(args),
                    });
                }
                b'b' => {
                    let state = self.pop()?;
                    let object = self.pop()?;
                    self.push(Value::Build {
                        object: Box::new(object),
                        state: Box::new(state),
                    });
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Value::Persistent(Box::new(pid)));
                }
                b'P' => {
                    let pid = self.line()?.to_string();
                    self.push(Value::Persistent(Box::new(Value::Str(pid))));
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'1' => {
                    self.pop_mark()?;
                }
                other => {
                    return Err(format!(
                        "pickle: unsupported opcode 0x{other:02x} at byte {at}"
                    ));
                }
            }
        }
    }
}
