//! The data-only gate for request pickles. Before anything decodes a frame,
//! this walks its opcode stream (like Python's `pickletools`), tracking what
//! each opcode pushes, and refuses:
//!
//! - every opcode that would import or call code: INST, OBJ, NEWOBJ,
//!   NEWOBJ_EX, BUILD, EXT1/2/4, PERSID, BINPERSID, and out-of-band buffers;
//! - every GLOBAL / STACK_GLOBAL except the data constructors Python itself
//!   writes for plain values (`_codecs.encode` for protocol 2 bytes, `set`,
//!   `frozenset`, `bytearray`, `bytes` under `builtins` or `__builtin__`),
//!   and REDUCE on anything but those, with the argument shapes Python writes;
//! - pickles without a PROTO 2-5 header, truncated arguments, trailing bytes;
//! - pickles whose decoded value would be large or deep out of proportion to
//!   the frame (memo references can repeat a value; recursion in the
//!   decoder is bounded by the container count).
//!
//! Nothing is ever called: the allowed constructors are decoded as data by
//! `serde_pickle`. The one constructor it does not know, protocol 2's
//! `bytes()` for empty bytes, is rewritten here to a literal `b''`.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Bounds on one request pickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Opcodes in one pickle.
    pub max_ops: usize,
    /// Lists, tuples, dicts, sets and constructor calls in one pickle.
    pub max_containers: usize,
    /// Values (nodes) in the decoded result, memo references expanded.
    pub max_nodes: u64,
    /// Bytes of strings and bytes in the decoded result, memo references
    /// expanded, plus those copied while decoding.
    pub max_payload_bytes: u64,
}

impl ScanLimits {
    /// Limits for a frame of `frame_len` bytes: room for plain messages, and
    /// never much more decoded data than the frame carries.
    pub fn for_frame(frame_len: usize) -> Self {
        Self {
            max_ops: 10_000,
            max_containers: 256,
            max_nodes: 10_000,
            max_payload_bytes: 2 * frame_len as u64 + 4096,
        }
    }
}

/// Why a pickle is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("not a pickle of protocol 2 to 5 (it must start with the PROTO opcode)")]
    MissingProto,
    #[error("pickle protocol {0} is not accepted: use protocol 2 to 5")]
    Protocol(u8),
    #[error("the pickle ends in the middle of an opcode at byte {0}")]
    Truncated(usize),
    #[error("the pickle has no STOP opcode")]
    NoStop,
    #[error(
        "opcode {name} at byte {pos} would import or call code: requests are read as data only"
    )]
    Forbidden { name: &'static str, pos: usize },
    #[error("global {module}.{name} at byte {pos} is refused: requests are read as data only")]
    Global {
        module: String,
        name: String,
        pos: usize,
    },
    #[error("a float at byte {pos} is refused: no request field is a number")]
    Float { pos: usize },
    #[error("unknown opcode 0x{op:02x} at byte {pos}")]
    Unknown { op: u8, pos: usize },
    #[error("malformed pickle at byte {pos}: {what}")]
    Malformed { pos: usize, what: &'static str },
    #[error("the pickle is too complex: {0}")]
    TooComplex(&'static str),
    #[error("{0} bytes follow the STOP opcode")]
    Trailing(usize),
}

/// The data constructors Python writes for plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctor {
    CodecsEncode,
    Set,
    Frozenset,
    Bytearray,
    Bytes,
}

impl Ctor {
    fn from_names(module: &[u8], name: &[u8]) -> Option<Self> {
        match (module, name) {
            (b"_codecs", b"encode") => Some(Self::CodecsEncode),
            (b"builtins" | b"__builtin__", b"set") => Some(Self::Set),
            (b"builtins" | b"__builtin__", b"frozenset") => Some(Self::Frozenset),
            (b"builtins" | b"__builtin__", b"bytearray") => Some(Self::Bytearray),
            (b"builtins" | b"__builtin__", b"bytes") => Some(Self::Bytes),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A text string; its value is kept when short (names for STACK_GLOBAL,
    /// encodings for REDUCE).
    Text(Option<String>),
    Ctor(Ctor),
    Container,
    Scalar,
}

#[derive(Debug)]
struct Obj {
    kind: Kind,
    payload: u64,
    children: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Mark,
    Obj(u32),
}

const SHORT_TEXT: usize = 64;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ScanError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(ScanError::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ScanError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ScanError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32_len(&mut self) -> Result<usize, ScanError> {
        let pos = self.pos;
        let v = self.u32()? as i32;
        usize::try_from(v).map_err(|_| ScanError::Malformed {
            pos,
            what: "negative length",
        })
    }
    fn u64_len(&mut self) -> Result<usize, ScanError> {
        let pos = self.pos;
        let b = self.take(8)?;
        let v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        usize::try_from(v).map_err(|_| ScanError::Truncated(pos))
    }
    fn line(&mut self) -> Result<&'a [u8], ScanError> {
        let rest = &self.buf[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(ScanError::Truncated(self.pos))?;
        let line = &rest[..n];
        self.pos += n + 1;
        Ok(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

struct Scanner<'a> {
    cur: Cursor<'a>,
    limits: ScanLimits,
    objs: Vec<Obj>,
    stack: Vec<Slot>,
    memo: HashMap<u32, u32>,
    memoized: HashSet<u32>,
    containers: usize,
    /// Payload bytes `serde_pickle` copies while decoding (DUP, REDUCE
    /// arguments, re-memoized values).
    copied: u64,
    copied_nodes: u64,
    /// Positions of REDUCE opcodes applying `bytes` to `()`.
    empty_bytes_at: Vec<usize>,
}

/// Checks `pickle` is plain data within `limits`. Returns the bytes to hand
/// to the decoder: the input itself, or a copy with protocol 2's `bytes()`
/// calls replaced by empty bytes literals.
pub fn scan(pickle: &[u8], limits: ScanLimits) -> Result<Cow<'_, [u8]>, ScanError> {
    let mut s = Scanner {
        cur: Cursor {
            buf: pickle,
            pos: 0,
        },
        limits,
        objs: Vec::new(),
        stack: Vec::new(),
        memo: HashMap::new(),
        memoized: HashSet::new(),
        containers: 0,
        copied: 0,
        copied_nodes: 0,
        empty_bytes_at: Vec::new(),
    };
    s.run()?;
    if s.empty_bytes_at.is_empty() {
        return Ok(Cow::Borrowed(pickle));
    }
    // REDUCE pops the callable and its arguments and pushes the result:
    // POP, POP, SHORT_BINBYTES 0 does the same with data only.
    let mut out = Vec::with_capacity(pickle.len() + 3 * s.empty_bytes_at.len());
    let mut from = 0;
    for &at in &s.empty_bytes_at {
        out.extend_from_slice(&pickle[from..at]);
        out.extend_from_slice(b"00C\x00");
        from = at + 1;
    }
    out.extend_from_slice(&pickle[from..]);
    Ok(Cow::Owned(out))
}

fn forbidden(op: u8) -> Option<&'static str> {
    Some(match op {
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'b' => "BUILD",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

impl Scanner<'_> {
    fn malformed<T>(&self, pos: usize, what: &'static str) -> Result<T, ScanError> {
        Err(ScanError::Malformed { pos, what })
    }

    fn new_obj(
        &mut self,
        kind: Kind,
        payload: usize,
        children: Vec<u32>,
    ) -> Result<u32, ScanError> {
        if matches!(kind, Kind::Container) {
            self.containers += 1;
            if self.containers > self.limits.max_containers {
                return Err(ScanError::TooComplex("too many containers"));
            }
        }
        let id =
            u32::try_from(self.objs.len()).map_err(|_| ScanError::TooComplex("too many values"))?;
        self.objs.push(Obj {
            kind,
            payload: payload as u64,
            children,
        });
        Ok(id)
    }

    fn push_new(&mut self, kind: Kind, payload: usize) -> Result<(), ScanError> {
        let id = self.new_obj(kind, payload, Vec::new())?;
        self.stack.push(Slot::Obj(id));
        Ok(())
    }

    fn push_text(&mut self, raw: &[u8]) -> Result<(), ScanError> {
        let text = (raw.len() <= SHORT_TEXT)
            .then(|| std::str::from_utf8(raw).ok().map(str::to_owned))
            .flatten();
        self.push_new(Kind::Text(text), raw.len())
    }

    fn pop_obj(&mut self, pos: usize) -> Result<u32, ScanError> {
        match self.stack.pop() {
            Some(Slot::Obj(id)) => Ok(id),
            Some(Slot::Mark) => self.malformed(pos, "a mark where a value was expected"),
            None => self.malformed(pos, "stack underflow"),
        }
    }

    fn top_obj(&self, pos: usize) -> Result<u32, ScanError> {
        match self.stack.last() {
            Some(Slot::Obj(id)) => Ok(*id),
            Some(Slot::Mark) => self.malformed(pos, "a mark where a value was expected"),
            None => self.malformed(pos, "stack underflow"),
        }
    }

    fn pop_mark(&mut self, pos: usize) -> Result<Vec<u32>, ScanError> {
        let mark = self.stack.iter().rposition(|s| *s == Slot::Mark);
        let Some(mark) = mark else {
            return self.malformed(pos, "no mark on the stack");
        };
        let items = self
            .stack
            .drain(mark..)
            .skip(1)
            .map(|s| match s {
                Slot::Obj(id) => id,
                Slot::Mark => unreachable!("the topmost mark was found above"),
            })
            .collect();
        Ok(items)
    }

    fn container_from(&mut self, children: Vec<u32>) -> Result<(), ScanError> {
        let id = self.new_obj(Kind::Container, 0, children)?;
        self.stack.push(Slot::Obj(id));
        Ok(())
    }

    fn add_children(&mut self, pos: usize, items: Vec<u32>) -> Result<(), ScanError> {
        let target = self.top_obj(pos)?;
        if self.objs[target as usize].kind != Kind::Container {
            return self.malformed(pos, "adding items to a value that is not a container");
        }
        self.objs[target as usize].children.extend(items);
        Ok(())
    }

    fn charge_copy(&mut self, id: u32) -> Result<(), ScanError> {
        let node_budget = self.limits.max_nodes.saturating_sub(self.copied_nodes);
        let budget = self.limits.max_payload_bytes.saturating_sub(self.copied);
        let (nodes, payload) = self.measure(id, node_budget, budget)?;
        self.copied_nodes += nodes;
        self.copied += payload;
        Ok(())
    }

    fn memoize(&mut self, pos: usize, key: u32) -> Result<(), ScanError> {
        let id = self.top_obj(pos)?;
        if !self.memoized.insert(id) {
            // Storing a memo reference again copies the value.
            self.charge_copy(id)?;
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, pos: usize, key: u32) -> Result<(), ScanError> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(Slot::Obj(id));
                Ok(())
            }
            None => self.malformed(pos, "memo reference to an unknown slot"),
        }
    }

    fn text_of(&self, id: u32) -> Option<&str> {
        match &self.objs[id as usize].kind {
            Kind::Text(Some(t)) => Some(t),
            _ => None,
        }
    }

    fn is_latin1_name(&self, id: u32) -> bool {
        matches!(self.text_of(id), Some("latin1" | "latin-1"))
    }

    fn global(&mut self, pos: usize, module: &[u8], name: &[u8]) -> Result<(), ScanError> {
        match Ctor::from_names(module, name) {
            Some(ctor) => self.push_new(Kind::Ctor(ctor), 0),
            None => Err(ScanError::Global {
                module: String::from_utf8_lossy(module).chars().take(80).collect(),
                name: String::from_utf8_lossy(name).chars().take(80).collect(),
                pos,
            }),
        }
    }

    fn reduce(&mut self, pos: usize) -> Result<(), ScanError> {
        let args = self.pop_obj(pos)?;
        let callable = self.pop_obj(pos)?;
        let Kind::Ctor(ctor) = self.objs[callable as usize].kind else {
            return Err(ScanError::Forbidden {
                name: "REDUCE",
                pos,
            });
        };
        let argv = self.objs[args as usize].children.clone();
        if self.objs[args as usize].kind != Kind::Container {
            return self.malformed(pos, "REDUCE arguments are not a tuple");
        }
        let shape_ok = match (ctor, argv.as_slice()) {
            (Ctor::CodecsEncode, [text, enc]) => {
                matches!(self.objs[*text as usize].kind, Kind::Text(_)) && self.is_latin1_name(*enc)
            }
            (Ctor::Bytearray, [_]) => true,
            (Ctor::Bytearray, [_, enc]) => self.is_latin1_name(*enc),
            (Ctor::Set | Ctor::Frozenset, [_]) => true,
            (Ctor::Bytes, []) => true,
            _ => false,
        };
        if !shape_ok {
            return self.malformed(
                pos,
                "a data constructor called with arguments Python never writes",
            );
        }
        self.charge_copy(args)?;
        if ctor == Ctor::Bytes {
            self.empty_bytes_at.push(pos);
            return self.push_new(Kind::Scalar, 0);
        }
        let id = self.new_obj(Kind::Container, 0, vec![args])?;
        self.stack.push(Slot::Obj(id));
        Ok(())
    }

    /// Nodes and payload bytes of `id` with every reference expanded;
    /// refuses cycles, leftover constructors, and sizes over the limits.
    fn measure(
        &self,
        root: u32,
        node_budget: u64,
        payload_budget: u64,
    ) -> Result<(u64, u64), ScanError> {
        #[derive(Clone, Copy)]
        enum State {
            New,
            Open,
            Done(u64, u64),
        }
        // Only the reachable part is visited, and the walk stops as soon as
        // the expanded size passes the budget, so the work is bounded too.
        let mut state: HashMap<u32, State> = HashMap::new();
        let mut work: Vec<(u32, usize)> = vec![(root, 0)];
        state.insert(root, State::Open);
        while let Some(&mut (id, ref mut next)) = work.last_mut() {
            let obj = &self.objs[id as usize];
            if matches!(obj.kind, Kind::Ctor(_)) {
                return Err(ScanError::Malformed {
                    pos: 0,
                    what: "a constructor used as a value",
                });
            }
            if let Some(&child) = obj.children.get(*next) {
                *next += 1;
                match state.get(&child).copied().unwrap_or(State::New) {
                    State::New => {
                        state.insert(child, State::Open);
                        work.push((child, 0));
                    }
                    State::Open => return Err(ScanError::TooComplex("recursive structure")),
                    State::Done(..) => {}
                }
                continue;
            }
            let (mut nodes, mut payload) = (1u64, obj.payload);
            for &child in &obj.children {
                if let Some(&State::Done(n, p)) = state.get(&child) {
                    nodes = nodes.saturating_add(n);
                    payload = payload.saturating_add(p);
                }
            }
            if nodes > node_budget {
                return Err(ScanError::TooComplex(
                    "too many values once memo references are expanded",
                ));
            }
            if payload > payload_budget {
                return Err(ScanError::TooComplex(
                    "too much data once memo references are expanded",
                ));
            }
            state.insert(id, State::Done(nodes, payload));
            work.pop();
        }
        match state.get(&root) {
            Some(&State::Done(n, p)) => Ok((n, p)),
            _ => unreachable!("the walk finishes the root"),
        }
    }

    fn run(&mut self) -> Result<(), ScanError> {
        match self.cur.buf {
            [0x80, v, ..] if (2..=5).contains(v) => self.cur.pos = 2,
            [0x80, v, ..] => return Err(ScanError::Protocol(*v)),
            [0x80] => return Err(ScanError::Truncated(1)),
            _ => return Err(ScanError::MissingProto),
        }
        for _ in 0..self.limits.max_ops {
            let pos = self.cur.pos;
            let Ok(op) = self.cur.u8() else {
                return Err(ScanError::NoStop);
            };
            if let Some(name) = forbidden(op) {
                return Err(ScanError::Forbidden { name, pos });
            }
            match op {
                b'.' => {
                    // STOP
                    let root = self.pop_obj(pos)?;
                    let rest = self.cur.buf.len() - self.cur.pos;
                    if rest > 0 {
                        return Err(ScanError::Trailing(rest));
                    }
                    self.measure(root, self.limits.max_nodes, self.limits.max_payload_bytes)?;
                    return Ok(());
                }
                0x80 => {
                    let v = self.cur.u8()?;
                    if !(2..=5).contains(&v) {
                        return Err(ScanError::Protocol(v));
                    }
                }
                0x95 => {
                    self.cur.take(8)?; // FRAME: a length hint only
                }
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    // POP (a mark too, as Python does)
                    if self.stack.pop().is_none() {
                        return self.malformed(pos, "stack underflow");
                    }
                }
                b'1' => {
                    self.pop_mark(pos)?;
                }
                b'2' => {
                    let id = self.top_obj(pos)?;
                    self.charge_copy(id)?;
                    self.stack.push(Slot::Obj(id));
                }
                // Memo
                b'p' => {
                    let line = self.cur.line()?;
                    let key = parse_decimal(line).ok_or(ScanError::Malformed {
                        pos,
                        what: "bad memo index",
                    })?;
                    self.memoize(pos, key)?;
                }
                b'q' => {
                    let key = self.cur.u8()? as u32;
                    self.memoize(pos, key)?;
                }
                b'r' => {
                    let key = self.cur.u32()?;
                    self.memoize(pos, key)?;
                }
                0x94 => {
                    let key = u32::try_from(self.memo.len())
                        .map_err(|_| ScanError::TooComplex("memo"))?;
                    self.memoize(pos, key)?;
                }
                b'g' => {
                    let line = self.cur.line()?;
                    let key = parse_decimal(line).ok_or(ScanError::Malformed {
                        pos,
                        what: "bad memo index",
                    })?;
                    self.memo_get(pos, key)?;
                }
                b'h' => {
                    let key = self.cur.u8()? as u32;
                    self.memo_get(pos, key)?;
                }
                b'j' => {
                    let key = self.cur.u32()?;
                    self.memo_get(pos, key)?;
                }
                // Scalars
                b'N' | 0x88 | 0x89 => self.push_new(Kind::Scalar, 0)?,
                // Floats are refused: no request field is a number, and
                // floats mixed with integers in a set or as dict keys have
                // no total order, which makes the decoder panic.
                b'F' | b'G' => return Err(ScanError::Float { pos }),
                b'I' | b'L' => {
                    let line = self.cur.line()?;
                    self.push_new(Kind::Scalar, line.len())?;
                }
                b'J' => {
                    self.cur.take(4)?;
                    self.push_new(Kind::Scalar, 0)?;
                }
                b'K' => {
                    self.cur.take(1)?;
                    self.push_new(Kind::Scalar, 0)?;
                }
                b'M' => {
                    self.cur.take(2)?;
                    self.push_new(Kind::Scalar, 0)?;
                }
                0x8a => {
                    let n = self.cur.u8()? as usize;
                    self.cur.take(n)?;
                    self.push_new(Kind::Scalar, n)?;
                }
                0x8b => {
                    let n = self.cur.i32_len()?;
                    self.cur.take(n)?;
                    self.push_new(Kind::Scalar, n)?;
                }
                // Bytes and byte strings
                b'C' | b'U' => {
                    let n = self.cur.u8()? as usize;
                    self.cur.take(n)?;
                    self.push_new(Kind::Scalar, n)?;
                }
                b'B' => {
                    let n = self.cur.u32()? as usize;
                    self.cur.take(n)?;
                    self.push_new(Kind::Scalar, n)?;
                }
                b'T' => {
                    let n = self.cur.i32_len()?;
                    self.cur.take(n)?;
                    self.push_new(Kind::Scalar, n)?;
                }
                0x8e | 0x96 => {
                    let n = self.cur.u64_len()?;
                    self.cur.take(n)?;
                    self.push_new(Kind::Scalar, n)?;
                }
                b'S' => {
                    let line = self.cur.line()?;
                    self.push_new(Kind::Scalar, line.len())?;
                }
                // Text
                0x8c => {
                    let n = self.cur.u8()? as usize;
                    let raw = self.cur.take(n)?;
                    self.push_text(raw)?;
                }
                b'X' => {
                    let n = self.cur.u32()? as usize;
                    let raw = self.cur.take(n)?;
                    self.push_text(raw)?;
                }
                0x8d => {
                    let n = self.cur.u64_len()?;
                    let raw = self.cur.take(n)?;
                    self.push_text(raw)?;
                }
                b'V' => {
                    // raw-unicode-escape text (protocol 0 style, never used
                    // by Python 3 for names): decodes to at most 2x its size.
                    let line = self.cur.line()?;
                    self.push_new(Kind::Text(None), line.len().saturating_mul(2))?;
                }
                // Containers
                b')' | b']' | b'}' | 0x8f => self.container_from(Vec::new())?,
                b't' | b'l' | b'd' | 0x91 => {
                    let items = self.pop_mark(pos)?;
                    self.container_from(items)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop_obj(pos)?);
                    }
                    items.reverse();
                    self.container_from(items)?;
                }
                b'a' => {
                    let item = self.pop_obj(pos)?;
                    self.add_children(pos, vec![item])?;
                }
                b's' => {
                    let value = self.pop_obj(pos)?;
                    let key = self.pop_obj(pos)?;
                    self.add_children(pos, vec![key, value])?;
                }
                b'e' | b'u' | 0x90 => {
                    let items = self.pop_mark(pos)?;
                    self.add_children(pos, items)?;
                }
                // Imports and calls: only the data constructors
                b'c' => {
                    let module = self.cur.line()?;
                    let name = self.cur.line()?;
                    self.global(pos, module, name)?;
                }
                0x93 => {
                    let name = self.pop_obj(pos)?;
                    let module = self.pop_obj(pos)?;
                    let (Some(module), Some(name)) = (self.text_of(module), self.text_of(name))
                    else {
                        return Err(ScanError::Forbidden {
                            name: "STACK_GLOBAL",
                            pos,
                        });
                    };
                    let (module, name) = (module.to_owned(), name.to_owned());
                    self.global(pos, module.as_bytes(), name.as_bytes())?;
                }
                b'R' => self.reduce(pos)?,
                op => return Err(ScanError::Unknown { op, pos }),
            }
        }
        Err(ScanError::TooComplex("too many opcodes"))
    }
}

fn parse_decimal(line: &[u8]) -> Option<u32> {
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ScanLimits {
        ScanLimits::for_frame(1024)
    }

    #[test]
    fn rewrites_protocol_2_empty_bytes_to_a_literal() {
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00xq\x01c__builtin__\nbytes\nq\x02)Rq\x03s.";
        let out = scan(p, limits()).unwrap();
        assert!(matches!(out, Cow::Owned(_)));
        let v = serde_pickle::value_from_slice(&out, serde_pickle::DeOptions::new()).unwrap();
        let serde_pickle::Value::Dict(d) = v else {
            panic!()
        };
        assert_eq!(
            d[&serde_pickle::HashableValue::String("x".into())],
            serde_pickle::Value::Bytes(vec![])
        );
    }

    #[test]
    fn stack_global_needs_literal_allowed_names() {
        // builtins.bytearray via STACK_GLOBAL, names memoized then re-read.
        let ok = b"\x80\x04\x8c\x08builtins\x94\x8c\tbytearray\x94\x93C\x02ab\x85R.";
        assert!(scan(ok, limits()).is_ok());
        let via_memo =
            b"\x80\x04\x8c\x08builtins\x94\x8c\tbytearray\x94\x93\x940h\x00h\x01\x93C\x02ab\x85R.";
        assert!(scan(via_memo, limits()).is_ok());
        let os = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93.";
        assert!(matches!(scan(os, limits()), Err(ScanError::Global { .. })));
        // A constructor that is never called is not data either.
        let bare = b"\x80\x04\x8c\x08builtins\x8c\x03set\x93.";
        assert!(matches!(
            scan(bare, limits()),
            Err(ScanError::Malformed { .. })
        ));
    }

    #[test]
    fn refuses_floats_which_have_no_total_order_with_integers() {
        // {2**53, 2**53 + 1, 2.0**53}: the decoder's ordering is not total.
        let mut set = b"\x80\x04\x8f(\x8a\x08".to_vec();
        set.extend_from_slice(&(1u64 << 53).to_le_bytes());
        set.extend_from_slice(b"\x8a\x08");
        set.extend_from_slice(&((1u64 << 53) + 1).to_le_bytes());
        set.push(b'G');
        set.extend_from_slice(&(2f64.powi(53)).to_be_bytes());
        set.extend_from_slice(b"\x90.");
        assert_eq!(scan(&set, limits()), Err(ScanError::Float { pos: 24 }));
        let text_float = b"\x80\x02F1.5\n.";
        assert_eq!(scan(text_float, limits()), Err(ScanError::Float { pos: 2 }));
    }

    #[test]
    fn refuses_recursion_truncation_and_trailing_bytes() {
        let cycle = b"\x80\x02]q\x00h\x00a.";
        assert_eq!(
            scan(cycle, limits()),
            Err(ScanError::TooComplex("recursive structure"))
        );
        assert!(matches!(
            scan(b"\x80\x02X\xff\xff\xff\xffab.", limits()),
            Err(ScanError::Truncated(_))
        ));
        assert!(matches!(
            scan(b"\x80\x02N", limits()),
            Err(ScanError::NoStop)
        ));
        assert_eq!(scan(b"\x80\x02N.x", limits()), Err(ScanError::Trailing(1)));
        assert_eq!(scan(b"\x80\x06N.", limits()), Err(ScanError::Protocol(6)));
        assert_eq!(scan(b"N.", limits()), Err(ScanError::MissingProto));
    }

    #[test]
    fn duplicating_a_big_value_is_charged() {
        // A 600-byte bytes value duplicated twice exceeds a 1 KiB frame's budget.
        let mut p = b"\x80\x03B\x58\x02\x00\x00".to_vec();
        p.extend(std::iter::repeat_n(b'x', 600));
        p.extend_from_slice(b"22\x87.");
        let tight = ScanLimits {
            max_payload_bytes: 1500,
            ..limits()
        };
        assert!(matches!(scan(&p, tight), Err(ScanError::TooComplex(_))));
        assert!(scan(&p, ScanLimits::for_frame(p.len())).is_ok());
    }
}
