//! OSCQuery, checked as the proposal (github.com/Vidvox/OSCQueryProposal) describes it, with
//! a client written from it alone: plain HTTP/1.1 GETs over a TCP socket on the OSC port's
//! number, JSON read as JSON, and the WebSocket's LISTEN/IGNORE stream read as binary OSC.
//! Nothing here uses the server's code but the OSC client and the `/fail` names.
use rosc::{OscMessage, OscPacket, OscType};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use synthpool_tests::*;
use tungstenite::{Message, WebSocket};

/// `GET target` over HTTP/1.1: the status code and the body.
fn get(port: u16, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the HTTP server accepts");
    // A safety net against a hung test, not a measurement.
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // A server that refuses the sender closes at once: the write or the read may then fail.
    let _ = write!(stream, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8(response).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}

/// `GET target`, which must answer 200 with JSON.
fn get_json(port: u16, target: &str) -> Value {
    let (status, body) = get(port, target);
    assert_eq!(status, 200, "GET {target}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {target}: {e}: {body}"))
}

/// Checks every node under `node` as the proposal's required and optional attributes say:
/// FULL_PATH is the path; a container has CONTENTS; a method has TYPE, and VALUE and RANGE
/// hold one item per type tag. Returns the methods' paths.
fn methods(node: &Value, path: &str) -> Vec<String> {
    assert_eq!(node["FULL_PATH"], path, "{node}");
    assert!(node["DESCRIPTION"].is_string(), "{path}: DESCRIPTION");
    if let Some(contents) = node.get("CONTENTS") {
        assert_eq!(node["ACCESS"], 0, "{path}: a container has no value");
        let mut out = Vec::new();
        for (name, child) in contents.as_object().expect("CONTENTS is an object") {
            let child_path = if path == "/" { format!("/{name}") } else { format!("{path}/{name}") };
            out.extend(methods(child, &child_path));
        }
        return out;
    }
    let types = node["TYPE"].as_str().expect("a method has a TYPE");
    assert_eq!(node["ACCESS"], 3, "{path}: read and written");
    for attribute in ["VALUE", "RANGE"] {
        assert_eq!(node[attribute].as_array().map(Vec::len), Some(types.len()), "{path}: {attribute}");
    }
    for (tag, (value, range)) in types
        .chars()
        .zip(node["VALUE"].as_array().into_iter().flatten().zip(node["RANGE"].as_array().into_iter().flatten()))
    {
        match tag {
            'f' => {
                let (x, min, max) =
                    (value.as_f64().unwrap(), range["MIN"].as_f64().unwrap(), range["MAX"].as_f64().unwrap());
                assert!(min <= x && x <= max, "{path}: {x} in {min}..{max}");
            }
            's' => {
                let vals = range["VALS"].as_array().expect("a string's RANGE lists its VALS");
                assert!(vals.contains(value), "{path}: {value} among {vals:?}");
            }
            other => panic!("{path}: type {other}"),
        }
    }
    vec![path.to_owned()]
}

/// A WebSocket to the OSCQuery server on `port`.
fn websocket(port: u16) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    // A safety net against a hung test, not a measurement.
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    // Commands are small frames sent back to back: without this, Nagle's algorithm holds the
    // second until the first is acknowledged.
    stream.set_nodelay(true).expect("nodelay");
    let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/"), stream).expect("a WebSocket handshake");
    ws
}

fn command(ws: &mut WebSocket<TcpStream>, command: &str, path: &str) {
    let text = serde_json::json!({ "COMMAND": command, "DATA": path }).to_string();
    ws.send(Message::Text(text.into())).expect("sends");
}

/// The next OSC message the WebSocket streams (text frames skipped); None when none comes.
fn next_osc(ws: &mut WebSocket<TcpStream>) -> Option<OscMessage> {
    loop {
        match ws.read() {
            Ok(Message::Binary(bytes)) => match rosc::decoder::decode_udp(&bytes).expect("binary OSC").1 {
                OscPacket::Message(m) => return Some(m),
                OscPacket::Bundle(b) => panic!("{b:?}"),
            },
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Sets `/m/1/<param>` over OSC to each of `values` in turn until the WebSocket streams the
/// one just set at `streamed` (a LISTEN sent a moment before may not have been read yet);
/// returns the messages streamed meanwhile.
fn set_until_streamed(
    client: &Client,
    ws: &mut WebSocket<TcpStream>,
    param: &str,
    streamed: &str,
    values: &[f32],
) -> Vec<OscMessage> {
    let mut seen = Vec::new();
    for &x in values {
        assert_eq!(client.ask(&format!("/m/1/{param}"), vec![f(x)]).addr, "/done");
        while let Some(m) = next_osc(ws) {
            let done = m.addr == streamed && m.args == [OscType::Float(x)];
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
    panic!("never streamed: {seen:?}");
}

#[test]
fn the_namespace_is_served_as_the_proposal_describes_and_follows_the_patch() {
    let _machine = exclusive();
    let port = free_port_both();
    let server = Server::start_on(port, &["--workers", "1", "--no-announce"]);
    let client = Client::new(port);
    sine_to_out(&client, 1, 220.0, 0.5);

    let root = get_json(port, "/");
    let paths = methods(&root, "/");
    for path in ["/m/0/level", "/m/1/freq_hz", "/m/1/wave", "/m/1/pw", "/m/1/level", "/m/1/fm_depth"] {
        assert!(paths.iter().any(|p| p == path), "{path} in {paths:?}");
    }
    let freq = get_json(port, "/m/1/freq_hz");
    assert_eq!(freq, root["CONTENTS"]["m"]["CONTENTS"]["1"]["CONTENTS"]["freq_hz"]);
    assert_eq!((freq["TYPE"].as_str(), freq["VALUE"][0].as_f64()), (Some("f"), Some(220.0)));
    assert_eq!(get_json(port, "/m/1/freq_hz?VALUE"), serde_json::json!({ "VALUE": [220.0] }));
    assert_eq!(get_json(port, "/m/1/wave?VALUE"), serde_json::json!({ "VALUE": ["sine"] }));
    let range = get_json(port, "/m/1/wave?RANGE");
    assert_eq!(range["RANGE"][0]["VALS"], serde_json::json!(["saw", "square", "triangle", "sine"]));
    assert_eq!(get_json(port, "/m/1?TYPE"), serde_json::json!({}), "a container has no TYPE");
    assert_eq!(get(port, "/m/1/nothing").0, 404);
    assert_eq!(get(port, "/m/1/freq_hz?BOGUS").0, 400);

    let info = get_json(port, "/m/1?HOST_INFO");
    assert_eq!(info["OSC_PORT"], port);
    assert_eq!(info["OSC_TRANSPORT"], "UDP");
    for extension in ["ACCESS", "VALUE", "RANGE", "DESCRIPTION", "LISTEN"] {
        assert_eq!(info["EXTENSIONS"][extension], true, "{extension}");
    }

    // It follows the patch.
    assert_eq!(client.ask("/module/set", vec![i(1), s("freq"), f(330.0)]).addr, "/done");
    assert_eq!(get_json(port, "/m/1/freq_hz?VALUE")["VALUE"][0], 330.0);
    assert_eq!(client.ask("/module/new", vec![s("vcf"), i(2)]).addr, "/done");
    assert_eq!(get_json(port, "/m/2/cutoff_hz?VALUE")["VALUE"][0], 1000.0);
    assert_eq!(client.ask("/module/free", vec![i(2)]).addr, "/done");
    assert_eq!(get(port, "/m/2").0, 404);
    drop(server);
}

#[test]
fn listen_streams_a_parameters_values_and_ignore_stops_them() {
    let _machine = exclusive();
    let port = free_port_both();
    let _server = Server::start_on(port, &["--workers", "1", "--no-announce"]);
    let client = Client::new(port);
    sine_to_out(&client, 1, 220.0, 0.5);
    let mut ws = websocket(port);
    command(&mut ws, "LISTEN", "/m/1/freq_hz");
    let seen = set_until_streamed(&client, &mut ws, "freq", "/m/1/freq_hz", &[300.0, 301.0, 302.0, 303.0]);
    assert!(seen.iter().all(|m| m.addr == "/m/1/freq_hz"), "only what it listens to: {seen:?}");

    // Modules coming or going: PATH_CHANGED (text), whatever it listens to.
    assert_eq!(client.ask("/module/new", vec![s("lfo"), i(2)]).addr, "/done");
    let changed = loop {
        match ws.read().expect("PATH_CHANGED comes") {
            Message::Text(text) => break serde_json::from_str::<Value>(text.as_str()).expect("JSON"),
            _ => continue,
        }
    };
    assert_eq!(changed["COMMAND"], "PATH_CHANGED");

    // Binary OSC sent on the WebSocket is handled as a datagram: its reply comes back.
    let set = rosc::encoder::encode(&OscPacket::Message(OscMessage { addr: "/m/1/pw".into(), args: vec![f(0.25)] }));
    ws.send(Message::Binary(set.expect("encodes").into())).expect("sends");
    let reply = next_osc(&mut ws).expect("a reply");
    assert_eq!(reply, OscMessage { addr: "/done".into(), args: vec![s("/m/1/pw"), f(0.25)] });
    assert_eq!(client.ask("/m/1/pw", vec![]).args, vec![f(0.25)]);

    // IGNORE: once a LISTEN sent after it is heard, frequencies are no longer streamed.
    command(&mut ws, "IGNORE", "/m/1/freq_hz");
    command(&mut ws, "LISTEN", "/m/1/level");
    set_until_streamed(&client, &mut ws, "level", "/m/1/level", &[0.1, 0.2, 0.3, 0.4]);
    assert_eq!(client.ask("/m/1/freq", vec![f(440.0)]).addr, "/done");
    let seen = set_until_streamed(&client, &mut ws, "level", "/m/1/level", &[0.5]);
    assert!(seen.iter().all(|m| m.addr == "/m/1/level"), "the frequency was ignored: {seen:?}");
}

#[test]
fn allow_applies_to_the_http_server_as_to_osc() {
    let _machine = exclusive();
    let port = free_port_both();
    let _server = Server::start_on(port, &["--workers", "1", "--no-announce", "--allow", "10.0.0.0/8"]);
    let (status, body) = get(port, "/");
    assert_eq!((status, body.as_str()), (0, ""), "closed unanswered");
}

#[test]
fn the_server_stops_cleanly_with_a_websocket_and_a_silent_connection_open() {
    let _machine = exclusive();
    let port = free_port_both();
    let server = Server::start_on(port, &["--workers", "1", "--no-announce"]);
    let client = Client::new(port);
    sine_to_out(&client, 1, 220.0, 0.5);
    let mut ws = websocket(port);
    command(&mut ws, "LISTEN", "/m/1/freq_hz");
    set_until_streamed(&client, &mut ws, "freq", "/m/1/freq_hz", &[300.0, 301.0, 302.0]);
    // A connection that never sends its request.
    let _silent = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    let (code, said) = server.stop();
    assert_eq!(code, 0, "{said:?}");
}
