//! OSCQuery (github.com/Vidvox/OSCQueryProposal): the server describes its address space
//! over HTTP, on the OSC port's number over TCP, so a controller can discover what exists.
//!
//! - `GET /` (or any node's path) is the node as JSON: the root, the container `/m`, a
//!   container `/m/<id>` per module (`DESCRIPTION` its kind and id), and a method per
//!   parameter, `/m/<id>/<param>` (the address `osc.rs` answers), with `TYPE` (`f`, or `s`
//!   for an enumeration), `RANGE` (`MIN`/`MAX`, or `VALS`), `VALUE`, `ACCESS` 3, `CLIPMODE`
//!   and `DESCRIPTION`. It is built from the ledger on each request: it follows the patch.
//! - `?ATTRIBUTE` returns that attribute alone (`{}` where the node has none; 204 for the
//!   value of a container; 400 for an attribute the server does not know); `?HOST_INFO` the
//!   host (`OSC_PORT`, `OSC_TRANSPORT`, `EXTENSIONS`); 404 for a path that is no node.
//! - `?HTML` (and `/index.html`) is the page (`page.html`); `?SYNTHPOOL` the patch as the
//!   page draws it: modules, cables, each worker's load.
//! - A WebSocket on the same port: `{"COMMAND": "LISTEN", "DATA": path}` streams that
//!   parameter's values as binary OSC messages whenever they change (from anywhere: the
//!   feedback of `feedback.rs`, at most 60 a second), `IGNORE` stops it, `PATH_CHANGED` says
//!   modules came or went; binary OSC sent to it is handled as a datagram to the OSC port
//!   (its replies come back the same way).
//!
//! The listener binds the OSC socket's address; `--allow` applies to it as to OSC. Each
//! connection has a thread (at most [`MAX_CONNECTIONS`]); none of this touches the audio
//! path. [`announce`] registers `_oscjson._tcp` and `_osc._udp` by mDNS.
use std::collections::BTreeSet;
use std::io::{self, Cursor, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rosc::{OscMessage, OscPacket};
use serde_json::{Map, Value, json};
use synthpool_core::module::{Kind, ParamSpec};

use crate::engine::Engine;
use crate::feedback::Out;
use crate::ledger::Ledger;
use crate::osc;

/// Connections served at once (each a thread; WebSockets stay open).
pub const MAX_CONNECTIONS: usize = 32;

/// Longest request head read, bytes.
pub const MAX_HEAD_BYTES: usize = 8192;

/// How long a request's head may take to arrive.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a WebSocket's thread looks for values to stream while its client is quiet:
/// below feedback's 1/60 s, so a value waits at most one more frame.
pub const WS_POLL: Duration = Duration::from_millis(10);

/// Values queued for one WebSocket between two polls (a full queue waits a tick).
pub const WS_QUEUE: usize = 1024;

/// The page, plain HTML and JavaScript (no build step).
pub const PAGE: &str = include_str!("page.html");

/// Attributes a node may be asked for (`?VALUE`); others are a 400.
const ATTRIBUTES: [&str; 8] = ["FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "VALUE", "RANGE", "DESCRIPTION", "CLIPMODE"];

/// What every connection shares.
struct Context {
    osc: Arc<osc::Server>,
    /// Where OSC listens (the HTTP port is the same number).
    osc_at: SocketAddr,
    stop: Arc<AtomicBool>,
    connections: AtomicUsize,
}

/// Serves OSCQuery on `listener` (bound to the OSC socket's address, `osc_at`) until `stop`,
/// checking senders and handling WebSocket OSC through `osc`.
///
/// # Errors
/// The listener cannot be made non-blocking, or the thread cannot start.
pub fn spawn(
    listener: TcpListener,
    osc: Arc<osc::Server>,
    osc_at: SocketAddr,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    // Non-blocking: the accept loop looks at `stop` between connections.
    listener.set_nonblocking(true)?;
    let context = Arc::new(Context { osc, osc_at, stop, connections: AtomicUsize::new(0) });
    std::thread::Builder::new().name("oscquery".into()).spawn(move || accept_loop(&listener, &context))
}

fn accept_loop(listener: &TcpListener, context: &Arc<Context>) {
    while !context.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) if context.osc.allows(peer.ip()) => {
                if context.connections.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    context.connections.fetch_sub(1, Ordering::AcqRel);
                    let _ = respond(&stream, 503, "text/plain", b"too many connections");
                    continue;
                }
                let shared = Arc::clone(context);
                let spawned = std::thread::Builder::new().name("oscquery-conn".into()).spawn(move || {
                    let _ = serve(stream, peer, &shared);
                    shared.connections.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    context.connections.fetch_sub(1, Ordering::AcqRel);
                }
            }
            // Outside every --allow network: closed unanswered, as OSC drops its datagrams.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(osc::STOP_POLL),
            Err(_) => std::thread::sleep(osc::STOP_POLL),
        }
    }
}

/// A request's first line and the headers that matter here.
#[derive(Debug, Default, PartialEq)]
struct Head {
    method: String,
    path: String,
    query: String,
    websocket: bool,
}

/// Reads `head`'s request line and headers; None when it is no HTTP request.
fn parse_head(head: &str) -> Option<Head> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let target = target.split('#').next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let websocket = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("upgrade") && value.trim().eq_ignore_ascii_case("websocket")
        })
    });
    Some(Head { method: method.into(), path: percent_decoded(path), query: query.into(), websocket })
}

/// `%XX` escapes decoded (an OSC address has none but a browser may escape).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut k = 0;
    while k < bytes.len() {
        let hex = bytes.get(k + 1..k + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[k], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                k += 3;
            }
            (byte, _) => {
                out.push(byte);
                k += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One connection: a request answered, or a WebSocket served until it closes.
fn serve(mut stream: TcpStream, peer: SocketAddr, context: &Context) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(HEAD_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() + n > MAX_HEAD_BYTES {
            return respond(&stream, 400, "text/plain", b"bad request");
        }
        head.extend_from_slice(&buf[..n]);
    }
    let Some(request) = parse_head(&String::from_utf8_lossy(&head)) else {
        return respond(&stream, 400, "text/plain", b"bad request");
    };
    if request.websocket {
        return websocket(stream, head, peer, context);
    }
    if request.method != "GET" {
        return respond(&stream, 405, "text/plain", b"GET only");
    }
    let (status, kind, body) = answer(&request.path, &request.query, context);
    respond(&stream, status, kind, body.as_bytes())?;
    stream.flush()
}

/// The status, content type and body for `GET path?query`.
fn answer(path: &str, query: &str, context: &Context) -> (u16, &'static str, String) {
    const JSON: &str = "application/json";
    if query == "HTML" || path == "/index.html" {
        return (200, "text/html; charset=utf-8", PAGE.into());
    }
    if query == "HOST_INFO" {
        return (200, JSON, host_info(context.osc_at).to_string());
    }
    let ledger = context.osc.ledger().lock().unwrap_or_else(PoisonError::into_inner);
    if query == "SYNTHPOOL" {
        return (200, JSON, patch_view(&ledger, context.osc.engine().as_ref()).to_string());
    }
    let root = namespace(&ledger);
    drop(ledger);
    let Some(node) = node(&root, path) else { return (404, "text/plain", format!("no node at {path}")) };
    match query {
        "" => (200, JSON, node.to_string()),
        attribute if ATTRIBUTES.contains(&attribute) => match node.get(attribute) {
            Some(value) => (200, JSON, json!({ attribute: value }).to_string()),
            // A container has no value to read (ACCESS 0): the proposal's 204.
            None if attribute == "VALUE" => (204, JSON, String::new()),
            None => (200, JSON, "{}".into()),
        },
        _ => (400, "text/plain", format!("no attribute {query} here")),
    }
}

/// Writes a whole response and closes the exchange (`Connection: close`).
fn respond(mut stream: &TcpStream, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

/// `HOST_INFO`: OSC on this address's port over UDP, and what this server supports.
pub fn host_info(osc_at: SocketAddr) -> Value {
    let mut info = json!({
        "NAME": "synthpool",
        "OSC_PORT": osc_at.port(),
        "OSC_TRANSPORT": "UDP",
        "EXTENSIONS": {
            "ACCESS": true, "VALUE": true, "RANGE": true, "DESCRIPTION": true, "CLIPMODE": true,
            "TAGS": false, "EXTENDED_TYPE": false, "UNIT": false, "CRITICAL": false,
            "LISTEN": true, "PATH_CHANGED": true, "PATH_ADDED": false, "PATH_REMOVED": false,
            "PATH_RENAMED": false, "HTML": true
        }
    });
    if !osc_at.ip().is_unspecified() {
        info["OSC_IP"] = json!(osc_at.ip().to_string());
    }
    info
}

/// A float as JSON, in its shortest decimal form (0.707, not 0.7070000171661377).
fn number(x: f32) -> Value {
    format!("{x}").parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// The whole namespace: the root, `/m`, a container per module, a method per parameter.
pub fn namespace(ledger: &Ledger) -> Value {
    let mut modules = Map::new();
    for (id, kind, values) in ledger.param_values() {
        let mut params = Map::new();
        for (spec, &value) in kind.params().iter().zip(values) {
            params.insert(spec.name.into(), param_node(id, kind, spec, value));
        }
        let container = json!({
            "FULL_PATH": format!("/m/{id}"),
            "ACCESS": 0,
            "DESCRIPTION": format!("{} {id}", kind.name()),
            "CONTENTS": params,
        });
        modules.insert(id.to_string(), container);
    }
    json!({
        "FULL_PATH": "/",
        "ACCESS": 0,
        "DESCRIPTION": "synthpool: every module's parameters",
        "CONTENTS": {
            "m": {
                "FULL_PATH": "/m",
                "ACCESS": 0,
                "DESCRIPTION": "modules, by id",
                "CONTENTS": modules,
            }
        }
    })
}

/// A parameter's method node.
fn param_node(id: u16, kind: Kind, spec: &ParamSpec, value: f32) -> Value {
    let path = format!("/m/{id}/{}", spec.name);
    let aliases = if spec.aliases.is_empty() { String::new() } else { format!(" (also {})", spec.aliases.join(", ")) };
    if spec.is_choice() {
        let chosen = spec.choices.get(value as usize).copied().unwrap_or_default();
        json!({
            "FULL_PATH": path,
            "TYPE": "s",
            "ACCESS": 3,
            "VALUE": [chosen],
            "RANGE": [{ "VALS": spec.choices }],
            "DESCRIPTION": format!("{} of {} {id}{aliases}: one of its choices, by name or index", spec.name, kind.name()),
        })
    } else {
        json!({
            "FULL_PATH": path,
            "TYPE": "f",
            "ACCESS": 3,
            "VALUE": [number(value)],
            "RANGE": [{ "MIN": number(spec.min), "MAX": number(spec.max) }],
            "CLIPMODE": ["both"],
            "DESCRIPTION": format!("{} of {} {id}{aliases}", spec.name, kind.name()),
        })
    }
}

/// The node at `path` (`/`, `/m`, `/m/1`, `/m/1/freq_hz`; a trailing `/` ignored).
pub fn node<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/').filter(|part| !part.is_empty()).try_fold(root, |node, part| node.get("CONTENTS")?.get(part))
}

/// What the page draws (`?SYNTHPOOL`): modules (id, kind, parameters with their range and
/// value), cables, and each worker's load and module count.
pub fn patch_view(ledger: &Ledger, engine: &dyn Engine) -> Value {
    let modules: Vec<Value> = ledger
        .param_values()
        .map(|(id, kind, values)| {
            let params: Vec<Value> = kind
                .params()
                .iter()
                .zip(values)
                .map(|(spec, &v)| {
                    json!({
                        "name": spec.name, "min": number(spec.min), "max": number(spec.max),
                        "value": number(v), "choices": spec.choices,
                    })
                })
                .collect();
            json!({ "id": id, "kind": kind.name(), "worker": ledger.owner(id), "params": params })
        })
        .collect();
    let cables: Vec<Value> = ledger
        .topology()
        .cables()
        .iter()
        .map(|c| {
            let port = ledger.topology().kind(c.dst).and_then(|k| k.input_name(c.input()));
            let out = ledger.topology().kind(c.src).and_then(|k| k.outputs().get(c.out as usize).map(|p| p.name));
            json!({ "src": c.src, "out": out.unwrap_or("?"), "dst": c.dst, "port": port.unwrap_or("?") })
        })
        .collect();
    let workers: Vec<Value> = engine
        .status()
        .iter()
        .enumerate()
        .map(
            |(w, s)| json!({ "worker": w, "core": s.core, "load": number(s.load), "modules": ledger.usage(w).modules }),
        )
        .collect();
    json!({ "modules": modules, "cables": cables, "workers": workers })
}

/// A stream that first gives back the bytes already read from it (the request head, which
/// the WebSocket handshake reads again).
struct Replay {
    head: Cursor<Vec<u8>>,
    stream: TcpStream,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.head.read(buf)? {
            0 => self.stream.read(buf),
            n => Ok(n),
        }
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// A WebSocket: LISTEN/IGNORE, values streamed, binary OSC handled; until it closes or the
/// server stops.
fn websocket(stream: TcpStream, head: Vec<u8>, peer: SocketAddr, context: &Context) -> io::Result<()> {
    // Registered before the handshake completes: a value the client sets (over OSC) once it
    // sees the connection open is a change from what this registration knows, so it streams.
    let (queue, values) = sync_channel(WS_QUEUE);
    let registered = context.osc.listen(peer, queue).is_ok();
    let replay = Replay { head: Cursor::new(head), stream: stream.try_clone()? };
    let Ok(mut ws) = tungstenite::accept(replay) else {
        context.osc.unlisten(peer);
        return Ok(());
    };
    if !registered {
        let _ = ws.close(None);
        return Ok(());
    }
    // Reads time out so the thread can hand over queued values between a client's messages;
    // no Nagle: a value is a frame of a few dozen bytes, sent as it comes.
    stream.set_read_timeout(Some(WS_POLL))?;
    stream.set_nodelay(true)?;
    let mut listening: BTreeSet<String> = BTreeSet::new();
    let result = loop {
        if context.stop.load(Ordering::Relaxed) {
            let _ = ws.close(None);
            break Ok(());
        }
        match ws.read() {
            Ok(tungstenite::Message::Text(text)) => {
                if let Some((command, path)) = command(text.as_str()) {
                    match command {
                        Command::Listen => listening.insert(path),
                        Command::Ignore => listening.remove(&path),
                    };
                }
            }
            Ok(tungstenite::Message::Binary(bytes)) => {
                for reply in context.osc.handle_from(&bytes, Some(peer)) {
                    if let Ok(packet) = rosc::encoder::encode(&OscPacket::Message(reply)) {
                        let _ = ws.send(tungstenite::Message::Binary(packet.into()));
                    }
                }
            }
            Ok(tungstenite::Message::Close(_)) => break Ok(()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => break Err(io::Error::other(e)),
        }
        let mut sent = Ok(());
        while let Ok(out) = values.try_recv() {
            let message = match out {
                Out::Osc(message) if listening.contains(&message.addr) => osc_frame(message),
                Out::Osc(_) => continue,
                Out::PathChanged(path) => {
                    tungstenite::Message::Text(json!({ "COMMAND": "PATH_CHANGED", "DATA": path }).to_string().into())
                }
            };
            sent = ws.write(message);
            if sent.is_err() {
                break;
            }
        }
        if let Err(e) = sent.and_then(|()| ws.flush()) {
            break Err(io::Error::other(e));
        }
    };
    context.osc.unlisten(peer);
    result
}

fn osc_frame(message: OscMessage) -> tungstenite::Message {
    let bytes = rosc::encoder::encode(&OscPacket::Message(message)).unwrap_or_default();
    tungstenite::Message::Binary(bytes.into())
}

/// A WebSocket command from a client.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Listen,
    Ignore,
}

/// Reads `{"COMMAND": "LISTEN" | "IGNORE", "DATA": path}`; None for anything else.
fn command(text: &str) -> Option<(Command, String)> {
    let value: Value = serde_json::from_str(text).ok()?;
    let command = match value.get("COMMAND")?.as_str()? {
        "LISTEN" => Command::Listen,
        "IGNORE" => Command::Ignore,
        _ => return None,
    };
    Some((command, value.get("DATA")?.as_str()?.to_owned()))
}

/// The mDNS names this server is announced under: the OSCQuery server (`_oscjson._tcp`) and
/// the OSC one (`_osc._udp`), on the same port number.
pub const SERVICE_TYPES: [&str; 2] = ["_oscjson._tcp.local.", "_osc._udp.local."];

/// Announces the server on the local network by mDNS (both [`SERVICE_TYPES`]) as
/// "synthpool on HOST", at `ip` (every address of the host when unspecified) and `port`.
/// The announcement lasts as long as the returned daemon.
///
/// # Errors
/// The daemon cannot start or a service cannot be registered.
pub fn announce(ip: IpAddr, port: u16) -> Result<mdns_sd::ServiceDaemon, mdns_sd::Error> {
    let daemon = mdns_sd::ServiceDaemon::new()?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "synthpool".into());
    for service in SERVICE_TYPES {
        let instance = format!("synthpool on {host}");
        let host_name = format!("{host}.local.");
        let info = if ip.is_unspecified() {
            mdns_sd::ServiceInfo::new(
                service,
                &instance,
                &host_name,
                "",
                port,
                None::<std::collections::HashMap<String, String>>,
            )?
            .enable_addr_auto()
        } else {
            mdns_sd::ServiceInfo::new(
                service,
                &instance,
                &host_name,
                ip,
                port,
                None::<std::collections::HashMap<String, String>>,
            )?
        };
        daemon.register(info)?;
    }
    Ok(daemon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use synthpool_core::command::{Request, Value as Arg};

    fn patch() -> Ledger {
        let mut ledger = Ledger::new(1);
        ledger.submit(&Request::New { kind: "vco", id: 7 }).unwrap();
        ledger.submit(&Request::Set { id: 7, param: "freq", value: Arg::Float(220.0) }).unwrap();
        ledger
    }

    #[test]
    fn the_namespace_follows_the_patch() {
        let mut ledger = patch();
        let root = namespace(&ledger);
        let freq = node(&root, "/m/7/freq_hz").unwrap();
        assert_eq!(freq["TYPE"], "f");
        assert_eq!(freq["VALUE"], json!([220.0]));
        assert_eq!(freq["RANGE"], json!([{ "MIN": 0.01, "MAX": 24000.0 }]));
        assert_eq!(freq["ACCESS"], 3);
        let wave = node(&root, "/m/7/wave/").unwrap();
        assert_eq!((wave["TYPE"].as_str(), wave["VALUE"][0].as_str()), (Some("s"), Some("saw")));
        assert_eq!(wave["RANGE"][0]["VALS"], json!(["saw", "square", "triangle", "sine"]));
        assert_eq!(node(&root, "/m/7").unwrap()["DESCRIPTION"], "vco 7");
        assert_eq!(node(&root, "/m/0/level").unwrap()["VALUE"], json!([1.0]), "the output is there");
        assert!(node(&root, "/m/8").is_none() && node(&root, "/m/7/cutoff").is_none());
        ledger.submit(&Request::Free { id: 7 }).unwrap();
        assert!(node(&namespace(&ledger), "/m/7").is_none());
    }

    #[test]
    fn requests_read_as_the_proposal_writes_them() {
        let head = "GET /m/1/freq_hz?VALUE#x HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\r\n";
        let expected =
            Head { method: "GET".into(), path: "/m/1/freq_hz".into(), query: "VALUE".into(), websocket: true };
        assert_eq!(parse_head(head), Some(expected));
        assert_eq!(parse_head("GET /%6d HTTP/1.0\r\n\r\n").map(|h| h.path), Some("/m".into()));
        assert_eq!(parse_head("hello\r\n\r\n"), None);
        assert_eq!(
            command(r#"{"COMMAND": "LISTEN", "DATA": "/m/1/freq_hz"}"#),
            Some((Command::Listen, "/m/1/freq_hz".into()))
        );
        assert_eq!(command(r#"{"COMMAND": "IGNORE", "DATA": "/a"}"#), Some((Command::Ignore, "/a".into())));
        assert_eq!(command(r#"{"COMMAND": "DANCE", "DATA": "/a"}"#), None);
        assert_eq!(command("not json"), None);
    }

    #[test]
    fn host_info_names_the_osc_port_and_transport() {
        let info = host_info("127.0.0.1:57130".parse().unwrap());
        assert_eq!((info["OSC_PORT"].as_u64(), info["OSC_TRANSPORT"].as_str()), (Some(57130), Some("UDP")));
        assert_eq!(info["OSC_IP"], "127.0.0.1");
        assert_eq!(info["EXTENSIONS"]["LISTEN"], true);
        assert!(host_info("0.0.0.0:1".parse().unwrap()).get("OSC_IP").is_none());
    }
}
