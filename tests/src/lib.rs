//! What the end-to-end tests share: the real `synthpool` binary started as a user starts it,
//! an OSC client, the recorded WAV, and measures of the sound.
//!
//! Servers are started one at a time (`exclusive`): each pins workers to the machine's cores,
//! and two at once would only measure each other.
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType, decoder, encoder};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
/// The measures of the sound, shared with the core's, the host's tests and the benchmarks.
pub use synthpool_core::measure::{diff_peak_db, freq_by_zero_crossings, max_step, peak_db, rms_db, tone_amplitude};
/// The protocol's replies as the server writes them: `/status` by name, `/fail` names.
pub use synthpool_host::protocol::{FailName, Reply, Status, WorkerState, WorkerStatus};

/// Sample rate the tests run the server at, Hz.
pub const FS: u32 = 48_000;
/// Frames per block.
pub const BLOCK: usize = 64;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Builds the server binaries once (debug profile, as `cargo test` does) and returns the
/// path of `synthpool`.
pub fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "synthpool-host", "--bins"])
                .current_dir(root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building synthpool failed");
            let target =
                std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
            target.join("debug/synthpool")
        })
        .clone()
}

/// The `synthpool-worker` the server launches: the one `SYNTHPOOL_WORKER` names (`cargo
/// xtask test`: the statically linked one), else the one beside [`server_binary`].
pub fn worker_binary() -> PathBuf {
    std::env::var_os("SYNTHPOOL_WORKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| server_binary().with_file_name("synthpool-worker"))
}

/// Holds the machine for one test's servers.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch directory for one test's files, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synthpool-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A free UDP port on loopback (bound, then released for the server).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A port free on both UDP and TCP: the server serves OSCQuery and its page over TCP on the
/// OSC port's number.
pub fn free_port_both() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
        let port = udp.local_addr().expect("its address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both UDP and TCP");
}

/// A running `synthpool`, stopped (SIGTERM, then waited for) when dropped or by [`Server::stop`].
pub struct Server {
    child: Option<Child>,
    /// Its OSC port.
    pub port: u16,
    /// What it printed on stdout up to "ready".
    pub startup: Vec<String>,
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Server {
    /// Starts `synthpool --port P` plus `args` (with `--audio null` unless they choose, and a
    /// state folder of its own unless they give `--state`), and waits for its "ready" line.
    pub fn start(args: &[&str]) -> Server {
        Self::start_on(free_port(), args)
    }

    /// As [`Server::start`], recording what it plays (`--record`) to `rec.wav` in a fresh
    /// scratch folder `name`; returns the server and the recording's path.
    pub fn recording(name: &str, args: &[&str]) -> (Server, PathBuf) {
        let wav = scratch(name).join("rec.wav");
        let wav_arg = wav.to_str().expect("a UTF-8 scratch path");
        let args: Vec<&str> = args.iter().copied().chain(["--record", wav_arg]).collect();
        (Self::start(&args), wav)
    }

    /// As [`Server::start`], on UDP port `port`.
    pub fn start_on(port: u16, args: &[&str]) -> Server {
        Self::start_with_env(port, args, &[])
    }

    /// As [`Server::start_on`], with environment variables `env` set for the server.
    pub fn start_with_env(port: u16, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let audio: &[&str] = if args.contains(&"--audio") { &[] } else { &["--audio", "null"] };
        let state = if args.contains(&"--state") {
            Vec::new()
        } else {
            let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            vec!["--state".to_owned(), scratch(&format!("state-{n}")).display().to_string()]
        };
        let mut child = Command::new(server_binary())
            .args(["--port", &port.to_string()])
            .args(audio)
            .args(&state)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("synthpool starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut startup = Vec::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("synthpool exited during start-up: {startup:?}");
            }
            let ready = line.contains("ready, from start");
            startup.push(line.trim_end().to_owned());
            if ready {
                break;
            }
        }
        Server { child: Some(child), port, startup, stdout: Some(stdout) }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills it with SIGKILL (no chance to clean up), as a crash would.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits; returns the exit code and what it printed after start-up.
    pub fn stop(mut self) -> (i32, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let mut rest = Vec::new();
        if let Some(stdout) = self.stdout.take() {
            rest = stdout.lines().map_while(Result::ok).collect();
        }
        let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
        (code, rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An OSC client on its own UDP socket.
pub struct Client {
    socket: UdpSocket,
    server: std::net::SocketAddr,
}

impl Client {
    /// A client for the server on `port`.
    pub fn new(port: u16) -> Client {
        Self::bound("127.0.0.1", port)
    }

    /// A client whose socket is bound to local address `ip` (any of 127.0.0.0/8 works on
    /// Linux), for the server on 127.0.0.1:`port`.
    pub fn bound(ip: &str, port: u16) -> Client {
        let socket = UdpSocket::bind((ip, 0)).expect("client socket");
        socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        Client { socket, server: ([127, 0, 0, 1], port).into() }
    }

    /// How long [`Client::reply`] waits.
    pub fn set_timeout(&self, timeout: Duration) {
        self.socket.set_read_timeout(Some(timeout)).expect("timeout");
    }

    /// The next reply, or None when none comes in time.
    pub fn try_reply(&self) -> Option<OscMessage> {
        let mut buf = [0u8; 65_536];
        let (n, _) = self.socket.recv_from(&mut buf).ok()?;
        match decoder::decode_udp(&buf[..n]).expect("a valid reply").1 {
            OscPacket::Message(m) => Some(m),
            OscPacket::Bundle(b) => panic!("unexpected bundle {b:?}"),
        }
    }

    /// Sends one message.
    pub fn send(&self, addr: &str, args: Vec<OscType>) {
        self.send_packet(&OscPacket::Message(OscMessage { addr: addr.into(), args }));
    }

    /// Sends any packet.
    pub fn send_packet(&self, packet: &OscPacket) {
        self.send_bytes(&encoder::encode(packet).expect("encodes"));
    }

    /// Sends a datagram as it is (malformed ones included).
    pub fn send_bytes(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).expect("sends");
    }

    /// The next reply (a message; bundles are not sent back).
    pub fn reply(&self) -> OscMessage {
        let mut buf = [0u8; 65_536];
        let (n, _) = self.socket.recv_from(&mut buf).expect("a reply within 5 s");
        match decoder::decode_udp(&buf[..n]).expect("a valid reply").1 {
            OscPacket::Message(m) => m,
            OscPacket::Bundle(b) => panic!("unexpected bundle {b:?}"),
        }
    }

    /// Sends a message and returns its reply.
    pub fn ask(&self, addr: &str, args: Vec<OscType>) -> OscMessage {
        self.send(addr, args);
        self.reply()
    }

    /// The whole `/patch/dump` (every part's lines, in order).
    /// A part lost on the way (UDP: a busy test machine can overflow the socket's buffer
    /// with a big patch's parts) makes it ask again, up to three times.
    pub fn dump(&self) -> Vec<String> {
        for _ in 0..3 {
            if let Some(lines) = self.dump_once() {
                return lines;
            }
            // Let the rest of the broken answer arrive, then drop it.
            std::thread::sleep(Duration::from_millis(300));
            self.socket.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
            while self.try_reply().is_some() {}
            self.socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        }
        panic!("/patch/dump lost parts three times");
    }

    /// One `/patch/dump`, or None when a part went missing.
    fn dump_once(&self) -> Option<Vec<String>> {
        self.send("/patch/dump", vec![]);
        let mut lines = Vec::new();
        let mut expected = 1;
        loop {
            let part = self.reply();
            assert_eq!(part.addr, "/patch/dump");
            let (n, of) = (int_at(&part.args, 0), int_at(&part.args, 1));
            if n != expected {
                return None;
            }
            expected += 1;
            lines.extend(part.args[2..].iter().map(|a| match a {
                OscType::String(line) => line.clone(),
                other => panic!("dump line {other:?}"),
            }));
            if n == of {
                return Some(lines);
            }
        }
    }

    /// `/status`, its figures by name.
    pub fn status(&self) -> Status {
        let reply = self.ask("/status", vec![]);
        Status::parse(&reply).unwrap_or_else(|e| panic!("/status: {e}: {reply:?}"))
    }
}

/// JACK's dummy driver, running (`jackd --no-realtime -d dummy -r 48000 -p 64`): a device
/// paced like a sound card, for a real cpal stream out and in; stopped when dropped.
pub struct Jack(Child);

impl Jack {
    /// Starts jackd and gives it a second to come up; None, said on stderr, when jackd is
    /// not installed (Debian package jackd2; `cargo xtask test` installs it).
    pub fn start() -> Option<Jack> {
        if Command::new("jackd").arg("--version").output().is_err() {
            eprintln!("jackd is not installed (Debian package jackd2): skipping this JACK test");
            return None;
        }
        let jackd = Command::new("jackd")
            .args(["--no-realtime", "-d", "dummy", "-r", "48000", "-p", "64"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("jackd starts");
        std::thread::sleep(Duration::from_secs(1));
        Some(Jack(jackd))
    }
}

impl Drop for Jack {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends one message with liblo's `oscsend` (a third-party client; it does not listen for
/// the reply): `types` is its type string (`si`), `args` the arguments as text.
pub fn oscsend(port: u16, address: &str, types: &str, args: &[&str]) {
    let status = Command::new("oscsend")
        .args(["localhost", &port.to_string(), address, types])
        .args(args)
        .status()
        .expect("oscsend runs (Debian package liblo-tools; cargo xtask test installs it)");
    assert!(status.success(), "oscsend {address} failed");
}

/// Creates vco `id` as a sine of `hz` at `level`, patched to the output; every request must
/// be answered `/done`.
pub fn sine_to_out(client: &Client, id: i32, hz: f32, level: f32) {
    for (addr, args) in [
        ("/module/new", vec![s("vco"), i(id)]),
        ("/module/set", vec![i(id), s("wave"), s("sine")]),
        ("/module/set", vec![i(id), s("freq"), f(hz)]),
        ("/module/set", vec![i(id), s("level"), f(level)]),
        ("/patch", vec![i(id), s("out"), i(0), s("in")]),
    ] {
        assert_eq!(client.ask(addr, args.clone()).addr, "/done", "{addr} {args:?}");
    }
}

/// Sends `lines` (script lines) as one bundle, applied now; each must be answered `/done`.
pub fn bundle(client: &Client, lines: &[&str]) {
    let content = lines
        .iter()
        .map(|line| {
            let mut words = line.split_whitespace();
            let addr = words.next().expect("an address").to_owned();
            let args = words
                .map(|w| w.parse::<i32>().map(i).or_else(|_| w.parse::<f32>().map(f)).unwrap_or_else(|_| s(w)))
                .collect();
            OscPacket::Message(OscMessage { addr, args })
        })
        .collect();
    let now = OscTime { seconds: 0, fractional: 1 };
    client.send_packet(&OscPacket::Bundle(OscBundle { timetag: now, content }));
    for line in lines {
        let reply = client.reply();
        assert_eq!(reply.addr, "/done", "{line}: {reply:?}");
    }
}

/// As [`sine_to_out`], made again until it lands on `worker` (`/module/stats` says where):
/// placement goes by measured load, and on a loaded machine a worker may measure busier for
/// a moment. Panics after 20 tries.
pub fn sine_on_worker(client: &Client, id: i32, hz: f32, level: f32, worker: usize) {
    for _ in 0..20 {
        sine_to_out(client, id, hz, level);
        if worker_of(client, id) == worker {
            return;
        }
        assert_eq!(client.ask("/module/free", vec![i(id)]).addr, "/done");
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("module {id} never landed on worker {worker}");
}

/// A string argument.
pub fn s(text: &str) -> OscType {
    OscType::String(text.into())
}

/// An int argument.
pub fn i(n: i32) -> OscType {
    OscType::Int(n)
}

/// A float argument.
pub fn f(x: f32) -> OscType {
    OscType::Float(x)
}

/// The int at `index` of a reply.
pub fn int_at(args: &[OscType], index: usize) -> i64 {
    match args.get(index) {
        Some(OscType::Int(n)) => *n as i64,
        other => panic!("arg {index}: expected an int, got {other:?}"),
    }
}

/// The name a `/fail` reply gives; None for any other reply (a `/done`, a `/status`), and
/// for a `/fail` that does not read as the protocol's.
pub fn fail_name(reply: &OscMessage) -> Option<FailName> {
    Reply::parse(reply).ok()?.failed().map(|(_, name)| name)
}

/// Waits until `done` or `timeout`, checking every millisecond.
/// The worker that holds module `id` (`/module/stats`).
pub fn worker_of(client: &Client, id: i32) -> usize {
    let reply = client.ask("/module/stats", vec![i(id)]);
    assert_eq!(reply.addr, "/module/stats", "{reply:?}");
    int_at(&reply.args, 2) as usize
}

/// Waits (up to 5 s) until every worker's load is under 2% of the block: placement goes by
/// measured load, and a server's first blocks (a rack's first order, cold pages) weigh in
/// it until they leave its 64-block window. Tests that need a module on a given worker
/// build after this.
pub fn settle(client: &Client) {
    let settled = wait_for(Duration::from_secs(5), || client.status().workers.iter().all(|w| w.load < 0.02));
    assert!(settled, "the idle server's loads settle: {:?}", client.status().workers);
}

pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done()
}

/// Stops `server` (SIGTERM; it must exit 0) and reads what it recorded to `wav`; also
/// returns what it printed after start-up.
pub fn stop_and_read(server: Server, wav: &Path) -> (Vec<f32>, Vec<String>) {
    let (code, said) = server.stop();
    assert_eq!(code, 0, "synthpool exits 0 on SIGTERM: {said:?}");
    (read_wav(wav), said)
}

/// Reads a stereo float WAV (what synthpool records and renders) as what a mono listener
/// hears: (left + right) / 2, frame by frame. A patch that plays the same on both sides
/// reads back bit for bit as it played.
pub fn read_wav(path: &Path) -> Vec<f32> {
    let (left, right) = read_wav_stereo(path);
    left.iter().zip(&right).map(|(l, r)| 0.5 * (l + r)).collect()
}

/// Reads a stereo float WAV: its left and right channels.
pub fn read_wav_stereo(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(reader.spec().sample_rate, FS);
    assert_eq!(reader.spec().channels, 2, "{} is stereo", path.display());
    let samples: Vec<f32> = reader.samples::<f32>().map(|s| s.expect("sample")).collect();
    samples.chunks_exact(2).map(|frame| (frame[0], frame[1])).unzip()
}

/// True for each recorded block that is exactly silent while sound was expected: a dropout
/// (a worker missed the block's deadline, so its contribution is missing from that block).
/// Shared CI machines are not real-time; tests measure around dropouts, and count them.
pub fn silent_blocks(x: &[f32]) -> Vec<bool> {
    x.chunks(BLOCK).map(|b| b.iter().all(|&s| s == 0.0)).collect()
}

/// The longest stretch of `x[from..to]` made of whole recorded blocks with no silent one.
pub fn longest_clean(x: &[f32], from: usize, to: usize) -> &[f32] {
    let silent = silent_blocks(x);
    let (first, last) = (from.div_ceil(BLOCK), to.min(x.len()) / BLOCK);
    let (mut best, mut start) = ((first, first), first);
    for (b, &quiet) in silent.iter().enumerate().take(last + 1).skip(first) {
        if b == last || quiet {
            if b - start > best.1 - best.0 {
                best = (start, b);
            }
            start = b + 1;
        }
    }
    if last >= silent.len() && last - start > best.1 - best.0 {
        best = (start, last);
    }
    &x[best.0 * BLOCK..best.1 * BLOCK]
}

/// The amplitude (linear full scale), in each recorded block, of the tone making exactly
/// `cycles` cycles a block (750 Hz is 1, 6000 Hz is 8 at 48 kHz): one DFT bin a block
/// ([`tone_amplitude`]). Tones on different bins do not leak into each other, so each can be
/// followed block by block in their sum.
pub fn tone_per_block(x: &[f32], cycles: usize) -> Vec<f64> {
    let hz = (cycles * FS as usize) as f64 / BLOCK as f64;
    x.chunks_exact(BLOCK).map(|block| tone_amplitude(block, hz, FS as f32)).collect()
}

/// Runs of consecutive `true`, as (start, length).
pub fn runs(flags: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (k, &flag) in flags.iter().chain([&false]).enumerate() {
        match (flag, start) {
            (true, None) => start = Some(k),
            (false, Some(s)) => {
                out.push((s, k - s));
                start = None;
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_clean_skips_silent_blocks() {
        let mut x = vec![0.5f32; 10 * BLOCK];
        x[3 * BLOCK..4 * BLOCK].fill(0.0);
        x[5 * BLOCK..6 * BLOCK].fill(0.0);
        let clean = longest_clean(&x, 0, x.len());
        assert_eq!(clean.len(), 4 * BLOCK); // blocks 6..10
        assert_eq!(longest_clean(&x, 0, 3 * BLOCK).len(), 3 * BLOCK);
        assert_eq!(silent_blocks(&x).iter().filter(|&&s| s).count(), 2);
    }
}
