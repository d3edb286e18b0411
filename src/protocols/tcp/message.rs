//! Request and reply messages: a pickled dict with the keys `COMMAND`,
//! `STATUS`, `DETAILS`, `FILENAME` and `FILE_DATA`. Requests pass the
//! data-only gate (`scan`) before `serde_pickle` decodes them; replies are
//! written with pickle protocol 3 so Python reads str as str, bytes as bytes
//! and None as None.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_pickle::{DeOptions, HashableValue, SerOptions, Value};

use super::scan::{scan, ScanError, ScanLimits};

/// What a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Put,
    Get,
    List,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "PUT",
            Self::Get => "GET",
            Self::List => "LIST",
        }
    }
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: Command,
    pub filename: Option<String>,
    pub file_data: Option<Vec<u8>>,
}

/// Why a request frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Refused(#[from] ScanError),
    #[error("the pickle could not be decoded: {0}")]
    Pickle(String),
    #[error("the message must be a dict, not {0}")]
    NotADict(&'static str),
    #[error("the message's keys must be text")]
    KeyNotText,
    #[error("{key} must be {expected}, not {got}")]
    FieldType {
        key: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("the message has no COMMAND")]
    MissingCommand,
    #[error("unknown COMMAND {0:?}: use PUT, GET or LIST")]
    UnknownCommand(String),
    #[error("STATUS of a request must be \"REQUEST\", not {0:?}")]
    BadStatus(String),
}

impl MessageError {
    /// The COMMAND to echo in the error reply, when it was readable.
    pub fn command(&self) -> Option<String> {
        match self {
            Self::UnknownCommand(c) => Some(c.clone()),
            _ => None,
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::I64(_) | Value::Int(_) => "int",
        Value::F64(_) => "float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "str",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Set(_) => "set",
        Value::FrozenSet(_) => "frozenset",
        Value::Dict(_) => "dict",
    }
}

fn text_field(key: &'static str, v: Option<Value>) -> Result<Option<String>, MessageError> {
    match v {
        None | Some(Value::None) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(MessageError::FieldType {
            key,
            expected: "str or None",
            got: type_name(&other),
        }),
    }
}

/// Decodes one request frame (a whole pickle).
pub fn decode_request(frame: &[u8]) -> Result<Request, MessageError> {
    let checked = scan(frame, ScanLimits::for_frame(frame.len()))?;
    let value = serde_pickle::value_from_slice(&checked, DeOptions::new())
        .map_err(|e| MessageError::Pickle(e.to_string()))?;
    let Value::Dict(map) = value else {
        return Err(MessageError::NotADict(type_name(&value)));
    };
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in map {
        match k {
            HashableValue::String(k) => {
                fields.insert(k, v);
            }
            _ => return Err(MessageError::KeyNotText),
        }
    }
    let command =
        text_field("COMMAND", fields.remove("COMMAND"))?.ok_or(MessageError::MissingCommand)?;
    let command = match command.as_str() {
        "PUT" => Command::Put,
        "GET" => Command::Get,
        "LIST" => Command::List,
        _ => return Err(MessageError::UnknownCommand(command)),
    };
    if let Some(status) = text_field("STATUS", fields.remove("STATUS"))? {
        if status != "REQUEST" {
            return Err(MessageError::BadStatus(status));
        }
    }
    let filename = text_field("FILENAME", fields.remove("FILENAME"))?;
    let file_data = match fields.remove("FILE_DATA") {
        None | Some(Value::None) => None,
        Some(Value::Bytes(b)) => Some(b),
        Some(other) => {
            return Err(MessageError::FieldType {
                key: "FILE_DATA",
                expected: "bytes or None",
                got: type_name(&other),
            })
        }
    };
    Ok(Request {
        command,
        filename,
        file_data,
    })
}

/// DETAILS of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Details {
    None,
    Text(String),
}

/// A reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub command: Option<String>,
    pub ok: bool,
    pub details: Details,
    pub filename: Option<String>,
    pub file_data: Option<Bytes>,
}

impl Reply {
    pub fn ok(command: Command, details: Details) -> Self {
        Self {
            command: Some(command.as_str().to_owned()),
            ok: true,
            details,
            filename: None,
            file_data: None,
        }
    }

    pub fn error(command: Option<String>, details: impl Into<String>) -> Self {
        Self {
            command,
            ok: false,
            details: Details::Text(details.into()),
            filename: None,
            file_data: None,
        }
    }

    pub fn with_file(mut self, name: Option<String>, data: Option<Bytes>) -> Self {
        self.filename = name;
        self.file_data = data;
        self
    }

    /// The reply as a pickle (protocol 3).
    pub fn encode(&self) -> Vec<u8> {
        let text = |s: &Option<String>| s.clone().map(Value::String).unwrap_or(Value::None);
        let details = match &self.details {
            Details::None => Value::None,
            Details::Text(t) => Value::String(t.clone()),
        };
        let status = if self.ok { "OK" } else { "ERROR" };
        let mut map = BTreeMap::new();
        let key = |k: &str| HashableValue::String(k.to_owned());
        map.insert(key("COMMAND"), text(&self.command));
        map.insert(key("STATUS"), Value::String(status.to_owned()));
        map.insert(key("DETAILS"), details);
        map.insert(key("FILENAME"), text(&self.filename));
        map.insert(
            key("FILE_DATA"),
            self.file_data
                .as_ref()
                .map(|b| Value::Bytes(b.to_vec()))
                .unwrap_or(Value::None),
        );
        serde_pickle::value_to_vec(&Value::Dict(map), SerOptions::new())
            .expect("a dict of text, bytes, lists and None always serialises")
    }
}
