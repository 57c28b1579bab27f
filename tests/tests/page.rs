//! The page (`http://HOST:PORT/?HTML`) in headless Chromium (Debian's `chromium`), driven
//! over the Chrome DevTools protocol: it loads, shows the demo's modules, follows a value
//! set over OSC, and dragging a slider sets the parameter (checked over OSC). A screenshot is
//! kept in `target/test-output/page.png`.
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use synthpool_tests::*;
use tungstenite::{Message, WebSocket};

/// Headless Chromium, killed when dropped.
struct Browser {
    child: Child,
    devtools: WebSocket<TcpStream>,
    next_id: u64,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium on a blank page and opens a tab at `url`.
    fn open(url: &str) -> Browser {
        let profile = scratch("chromium-profile");
        let child = Command::new("chromium")
            .args([
                "--headless=new",
                // Root in CI containers: Chromium's sandbox refuses to run as root.
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1400,1000",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium runs (Debian package chromium; `cargo xtask test` installs it)");
        let mut child = child;
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut endpoint = None;
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                endpoint = Some(url.trim().to_owned());
                break;
            }
        }
        let endpoint = endpoint.expect("chromium prints its DevTools endpoint");
        let host = endpoint.trim_start_matches("ws://").split('/').next().expect("host:port").to_owned();
        let stream = TcpStream::connect(&host).expect("DevTools accepts");
        // A safety net against a hung test, not a measurement.
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let (devtools, _) = tungstenite::client(endpoint.as_str(), stream).expect("a DevTools WebSocket");
        let mut browser = Browser { child, devtools, next_id: 0, session: String::new() };
        let target = browser.call("Target.createTarget", json!({ "url": url }));
        let target_id = target["targetId"].as_str().expect("a target").to_owned();
        let attached = browser.call("Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }));
        browser.session = attached["sessionId"].as_str().expect("a session").to_owned();
        browser
    }

    /// Calls a DevTools method (in the tab once attached) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            request["sessionId"] = json!(self.session);
        }
        self.devtools.send(Message::Text(request.to_string().into())).expect("sends");
        loop {
            let Message::Text(text) = self.devtools.read().expect("DevTools answers") else { continue };
            let reply: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the tab; its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }));
        result["result"]["value"].clone()
    }

    /// Waits (up to 30 s; a loaded machine may be slow, nothing is timed) until `expression`
    /// is true in the tab.
    fn wait_until(&mut self, expression: &str) {
        assert!(
            wait_for(Duration::from_secs(30), || self.eval(expression) == json!(true)),
            "never true in the page: {expression}"
        );
    }

    fn mouse(&mut self, kind: &str, x: f64, y: f64) {
        let buttons = if kind == "mouseReleased" { 0 } else { 1 };
        let event = json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1 });
        self.call("Input.dispatchMouseEvent", event);
    }
}

/// Standard base64 (RFC 4648) decoded: what DevTools sends a screenshot as.
fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()) {
        let value = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// Where screenshots are kept.
fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    target.join("test-output")
}

#[test]
fn the_page_shows_the_demo_follows_the_sound_and_a_drag_sets_a_parameter() {
    let _machine = exclusive();
    let port = free_port_both();
    let _server = Server::start_on(port, &["--workers", "2", "--demo", "--no-announce"]);
    let client = Client::new(port);
    // The demo's effects come first: mixer 50, delay 51, reverb 52 (demo/demo.osc).
    assert!(wait_for(Duration::from_secs(10), || client.status().modules >= 3), "the demo builds its patch");

    let mut browser = Browser::open(&format!("http://127.0.0.1:{port}/?HTML"));
    browser.wait_until("document.getElementById('state').textContent === 'connected'");
    browser.wait_until("document.getElementById('p-52-room') !== null");
    for (id, kind) in [(50, "mixer"), (51, "delay"), (52, "reverb"), (0, "output")] {
        let title = browser.eval(&format!("document.querySelector('#module-{id} h2').textContent"));
        assert!(title.as_str().is_some_and(|t| t.starts_with(&format!("{kind} {id}"))), "{title}");
    }
    let cards = browser.eval("document.querySelectorAll('.module').length").as_u64().unwrap_or(0);
    assert!(cards >= 4, "{cards} modules shown");
    browser.wait_until("document.querySelectorAll('#workers .worker').length === 2");

    // It moves with the sound: a value set over OSC reaches the slider (mix 0..1: 0.75 is
    // position 750 of 1000).
    assert_eq!(client.ask("/m/52/mix", vec![f(0.75)]).addr, "/done");
    browser.wait_until("document.getElementById('p-52-mix').value === '750'");

    // Dragging the room slider to its right end sets the parameter. Tried up to three times:
    // a redraw (modules coming or going) between press and release would drop a drag.
    let room = || match client.ask("/m/52/room", vec![]).args.first() {
        Some(rosc::OscType::Float(x)) => *x,
        other => panic!("{other:?}"),
    };
    for _ in 0..3 {
        browser.eval("document.getElementById('p-52-room').scrollIntoView({block: 'center'})");
        let rect = browser.eval(
            "(() => { const r = document.getElementById('p-52-room').getBoundingClientRect(); \
             return [r.left, r.right, r.top + r.height / 2]; })()",
        );
        let [left, right, y] = [0, 1, 2].map(|k| rect[k].as_f64().expect("a rectangle"));
        browser.mouse("mousePressed", left + 4.0, y);
        for step in 1..=10 {
            browser.mouse("mouseMoved", left + 4.0 + (right - left) * f64::from(step) / 10.0, y);
        }
        browser.mouse("mouseReleased", right + 10.0, y);
        // The demo set 0.8; the slider's end is 1.0 (its last step 0.999).
        if wait_for(Duration::from_secs(10), || room() > 0.99) {
            break;
        }
    }
    assert!(room() > 0.99, "room after the drag: {}", room());

    let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64(shot["data"].as_str().expect("a screenshot"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = output_dir();
    std::fs::create_dir_all(&dir).expect("the output folder");
    let path = dir.join("page.png");
    std::fs::write(&path, png).expect("the screenshot is written");
    println!("screenshot: {}", path.display());
}
