//! QMP, QEMU's JSON machine protocol (docs/interop/qmp-spec.rst): a greeting,
//! capabilities negotiation with `qmp_capabilities`, then one JSON object per
//! command, each answered with `{"return": ...}` or `{"error": {"class",
//! "desc"}}`, echoing the command's `id`. vx86 speaks the commands tools use
//! to drive a VM: `query-status`, `stop`, `cont`, `quit`, `system_reset`,
//! `screendump`, `human-monitor-command` (plus `query-version` and
//! `query-commands`).

use super::server::{ask, crlf};
use super::{Command, Request};
use crossbeam_channel::Sender;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};

/// The QMP dialect vx86 answers in (the QEMU release whose replies it copies).
const QEMU_VERSION: (u64, u64, u64) = (7, 2, 0);

/// Commands vx86 answers (`query-commands`).
const COMMANDS: &[&str] = &[
    "qmp_capabilities",
    "query-status",
    "query-version",
    "query-commands",
    "stop",
    "cont",
    "quit",
    "system_reset",
    "system_powerdown",
    "device_add",
    "device_del",
    "screendump",
    "human-monitor-command",
];

/// Largest JSON object taken from a client.
const MAX_OBJECT: usize = 1 << 20;

pub fn greeting() -> Value {
    let (major, minor, micro) = QEMU_VERSION;
    json!({"QMP": {
        "version": {
            "qemu": {"major": major, "minor": minor, "micro": micro},
            "package": format!("vx86 {}", env!("CARGO_PKG_VERSION")),
        },
        "capabilities": [],
    }})
}

fn error(class: &str, desc: impl Into<String>, id: Option<&Value>) -> Value {
    let mut v = json!({"error": {"class": class, "desc": desc.into()}});
    if let (Some(id), Some(o)) = (id, v.as_object_mut()) {
        o.insert("id".into(), id.clone());
    }
    v
}

fn ret(value: Value, id: Option<&Value>) -> Value {
    let mut v = json!({ "return": value });
    if let (Some(id), Some(o)) = (id, v.as_object_mut()) {
        o.insert("id".into(), id.clone());
    }
    v
}

/// Splits a byte stream into top-level JSON objects (strings and nesting
/// respected) and runs of garbage between them.
#[derive(Default)]
struct Splitter {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escape: bool,
    /// Non-JSON bytes outside any object, reported at the next newline or `{`.
    junk: bool,
}

/// One unit of input.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Object(Vec<u8>),
    Garbage,
    TooLong,
}

impl Splitter {
    fn feed(&mut self, byte: u8, out: &mut Vec<Piece>) {
        if self.depth == 0 {
            match byte {
                b'{' | b'[' => {
                    if std::mem::take(&mut self.junk) {
                        out.push(Piece::Garbage);
                    }
                    self.buf.clear();
                    self.buf.push(byte);
                    self.depth = 1;
                }
                b'\n' => {
                    if std::mem::take(&mut self.junk) {
                        out.push(Piece::Garbage);
                    }
                }
                b' ' | b'\t' | b'\r' => {}
                _ => self.junk = true,
            }
            return;
        }
        self.buf.push(byte);
        if self.buf.len() > MAX_OBJECT {
            *self = Splitter::default();
            out.push(Piece::TooLong);
            return;
        }
        if self.in_string {
            if self.escape {
                self.escape = false;
            } else if byte == b'\\' {
                self.escape = true;
            } else if byte == b'"' {
                self.in_string = false;
            }
            return;
        }
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth -= 1;
                if self.depth == 0 {
                    out.push(Piece::Object(std::mem::take(&mut self.buf)));
                }
            }
            _ => {}
        }
    }
}

/// The connection's state: before or after capabilities negotiation.
struct Session {
    negotiated: bool,
}

/// Answers one parsed command; `ack` is set when the machine quits after
/// this answer (the caller acknowledges once it is written).
fn handle(s: &mut Session, v: &Value, tx: &Sender<Request>) -> Option<(Value, Option<Sender<()>>)> {
    let Some(obj) = v.as_object() else {
        return Some((
            error("GenericError", "QMP input must be a JSON object", None),
            None,
        ));
    };
    let id = obj.get("id");
    let Some(exec) = obj.get("execute") else {
        return Some((
            error("GenericError", "QMP input lacks member 'execute'", id),
            None,
        ));
    };
    let Some(name) = exec.as_str() else {
        return Some((
            error(
                "GenericError",
                "QMP input member 'execute' must be a string",
                id,
            ),
            None,
        ));
    };
    let empty = Map::new();
    let args = match obj.get("arguments") {
        None => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => {
            return Some((
                error(
                    "GenericError",
                    "QMP input member 'arguments' must be an object",
                    id,
                ),
                None,
            ))
        }
    };
    if !s.negotiated {
        if name == "qmp_capabilities" {
            s.negotiated = true;
            return Some((ret(json!({}), id), None));
        }
        return Some((
            error(
                "CommandNotFound",
                "Expecting capabilities negotiation with 'qmp_capabilities'",
                id,
            ),
            None,
        ));
    }
    let cmd = match name {
        "qmp_capabilities" => {
            return Some((
                error(
                    "CommandNotFound",
                    "Capabilities negotiation is already complete, command ignored",
                    id,
                ),
                None,
            ))
        }
        "query-version" => {
            let g = greeting();
            return Some((ret(g["QMP"]["version"].clone(), id), None));
        }
        "query-commands" => {
            let list: Vec<Value> = COMMANDS.iter().map(|c| json!({ "name": c })).collect();
            return Some((ret(Value::Array(list), id), None));
        }
        "query-status" => Command::Status,
        "stop" => Command::Stop,
        "cont" => Command::Cont,
        "quit" => Command::Quit,
        "system_reset" => Command::SystemReset,
        "system_powerdown" => Command::SystemPowerdown,
        // QEMU's device_add arguments: driver and the properties, as
        // strings or numbers; vx86 builds the -device option string.
        "device_add" => {
            let Some(driver) = args.get("driver").and_then(Value::as_str) else {
                return Some((
                    error("GenericError", "Parameter 'driver' is missing", id),
                    None,
                ));
            };
            let mut opts = driver.to_string();
            for (k, v) in args.iter().filter(|(k, _)| k.as_str() != "driver") {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                opts.push_str(&format!(",{k}={v}"));
            }
            Command::DeviceAdd(opts)
        }
        "device_del" => {
            let Some(dev) = args.get("id").and_then(Value::as_str) else {
                return Some((error("GenericError", "Parameter 'id' is missing", id), None));
            };
            Command::DeviceDel(dev.to_string())
        }
        "screendump" => {
            let Some(file) = args.get("filename").and_then(Value::as_str) else {
                return Some((
                    error("GenericError", "Parameter 'filename' is missing", id),
                    None,
                ));
            };
            let format = args.get("format").and_then(Value::as_str).map(String::from);
            Command::Screendump(file.to_string(), format)
        }
        "human-monitor-command" => {
            let Some(line) = args.get("command-line").and_then(Value::as_str) else {
                return Some((
                    error("GenericError", "Parameter 'command-line' is missing", id),
                    None,
                ));
            };
            Command::Line(line.to_string())
        }
        other => {
            return Some((
                error(
                    "CommandNotFound",
                    format!("The command {other} has not been found"),
                    id,
                ),
                None,
            ))
        }
    };
    let hmp = matches!(cmd, Command::Line(_));
    let status = cmd == Command::Status;
    let reply = ask(tx, cmd)?;
    let v = if status {
        let st = if reply.running { "running" } else { "paused" };
        ret(
            json!({"status": st, "singlestep": false, "running": reply.running}),
            id,
        )
    } else if hmp {
        // QEMU returns HMP's text, errors included, with `\r\n` line ends.
        ret(Value::String(crlf(&reply.text)), id)
    } else if reply.error {
        error("GenericError", reply.text.trim_end(), id)
    } else {
        ret(json!({}), id)
    };
    Some((v, reply.ack))
}

fn send<W: Write>(w: &mut W, v: &Value) -> bool {
    writeln!(w, "{v}").is_ok() && w.flush().is_ok()
}

/// One QMP client: the greeting, then commands until it disconnects or the
/// machine stops running.
pub fn serve<R: Read, W: Write>(mut r: R, mut w: W, tx: &Sender<Request>) {
    if !send(&mut w, &greeting()) {
        return;
    }
    let mut s = Session { negotiated: false };
    let mut split = Splitter::default();
    let mut chunk = [0u8; 4096];
    let mut pieces = Vec::new();
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &b in chunk.get(..n).unwrap_or(&[]) {
            split.feed(b, &mut pieces);
        }
        for p in pieces.drain(..) {
            let (v, ack) = match p {
                Piece::Garbage => (
                    error("GenericError", "JSON parse error, invalid token", None),
                    None,
                ),
                Piece::TooLong => (
                    error("GenericError", "JSON parse error, object too large", None),
                    None,
                ),
                Piece::Object(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => match handle(&mut s, &v, tx) {
                        Some(x) => x,
                        None => return,
                    },
                    Err(e) => (
                        error("GenericError", format!("JSON parse error, {e}"), None),
                        None,
                    ),
                },
            };
            let ok = send(&mut w, &v);
            if let Some(a) = ack {
                let _ = a.send(());
            }
            if !ok {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8]) -> Vec<Piece> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for &b in input {
            s.feed(b, &mut out);
        }
        out
    }

    #[test]
    fn objects_split_with_strings_and_nesting_respected() {
        let p = split(b"{\"a\": \"}{\\\"\"}{\"b\": {\"c\": [1]}}\n");
        assert_eq!(
            p,
            vec![
                Piece::Object(b"{\"a\": \"}{\\\"\"}".to_vec()),
                Piece::Object(b"{\"b\": {\"c\": [1]}}".to_vec())
            ]
        );
    }

    #[test]
    fn garbage_is_reported_once_per_line() {
        let p = split(b"hello world\n{\"x\":1}junk{}");
        assert_eq!(
            p,
            vec![
                Piece::Garbage,
                Piece::Object(b"{\"x\":1}".to_vec()),
                Piece::Garbage,
                Piece::Object(b"{}".to_vec())
            ]
        );
    }

    #[test]
    fn commands_before_negotiation_are_refused() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let mut s = Session { negotiated: false };
        let (v, _) = handle(&mut s, &json!({"execute": "query-status", "id": 7}), &tx).unwrap();
        assert_eq!(v["error"]["class"], "CommandNotFound");
        assert_eq!(v["id"], 7);
        let (v, _) = handle(&mut s, &json!({"execute": "qmp_capabilities"}), &tx).unwrap();
        assert_eq!(v, json!({"return": {}}));
        let (v, _) = handle(&mut s, &json!({"execute": "nope"}), &tx).unwrap();
        assert_eq!(v["error"]["desc"], "The command nope has not been found");
        let (v, _) = handle(&mut s, &json!([1]), &tx).unwrap();
        assert_eq!(v["error"]["class"], "GenericError");
        let (v, _) = handle(&mut s, &json!({"execute": "screendump"}), &tx).unwrap();
        assert_eq!(v["error"]["desc"], "Parameter 'filename' is missing");
    }
}
