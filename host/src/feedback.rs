//! Feedback: a client that sent `/notify 1` hears of every parameter change that did not come
//! from it (another client, a mapping driven by another controller, `/patch/load`, the demo),
//! so its faders follow.
//!
//! Each client keeps the values it is known to have ([`Feedback::tick`] compares them with the
//! ledger's): a change is a difference, whoever made it. A client's own edits are written into
//! its known values as they are made ([`Feedback::absorb`]), so they are not echoed back to it;
//! a `/patch/load` is not absorbed, so even the client that asked hears the loaded values.
//! The OSC thread ticks at most every [`PERIOD`] (60 Hz): a parameter reaches a client at most
//! 60 times a second, the last value of each period, never a stale one. For each changed
//! parameter a client gets, in one datagram each: every mapped address that drives it with
//! the value scaled back to 0..1 ([`crate::mapping::Mapping::position`]), and
//! `/m/<id>/<param name>` with the value ([`value_arg`]).
//!
//! Each client has a UDP socket of its own, bound like the OSC socket and connected to the
//! client: the kernel then reports an ICMP "port unreachable" from a client that went away as
//! an error on the next send, and a client whose send fails is dropped. Nothing here runs on
//! the audio thread: the OSC thread ticks, reading the ledger.
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use rosc::{OscMessage, OscPacket, OscType};
use synthpool_core::command::ModuleId;
use synthpool_core::module::{Kind, ParamSpec};

use crate::ledger::Ledger;

/// Most clients registered at once.
pub const MAX_CLIENTS: usize = 64;

/// The shortest time between two ticks: 1/60 s, so each parameter reaches each client at most
/// 60 times a second (a screen's frame rate; a fader drawn faster shows nothing more).
pub const PERIOD: Duration = Duration::from_micros(16_667);

/// Parameters sent to one client in one tick; the rest follow in the next ticks (a
/// `/patch/load` of thousands of parameters does not hold the OSC thread).
pub const MAX_PARAMS_PER_TICK: usize = 256;

/// What a client of another transport (OSCQuery's WebSocket, `oscquery.rs`) is handed.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    /// A value changed: the message a UDP client would be sent.
    Osc(OscMessage),
    /// Modules came or went under this path: the namespace changed.
    PathChanged(String),
}

/// Where a client's feedback goes.
#[derive(Debug)]
enum Sink {
    /// A UDP socket connected to where it listens.
    Udp(UdpSocket),
    /// A queue its own thread drains (a WebSocket connection).
    Queue(SyncSender<Out>),
}

impl Sink {
    /// Hands `message` over: Ok(false) when there is no room now (try again next tick).
    ///
    /// # Errors
    /// The client is gone.
    fn deliver(&self, message: OscMessage) -> io::Result<bool> {
        match self {
            Sink::Udp(socket) => {
                let bytes = rosc::encoder::encode(&OscPacket::Message(message)).map_err(io::Error::other)?;
                match socket.send(&bytes) {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Sink::Queue(queue) => match queue.try_send(Out::Osc(message)) {
                Ok(()) => Ok(true),
                Err(TrySendError::Full(_)) => Ok(false),
                Err(TrySendError::Disconnected(_)) => Err(io::ErrorKind::BrokenPipe.into()),
            },
        }
    }
}

/// One registered client.
#[derive(Debug)]
struct Client {
    /// Where its requests come from (its own edits are not echoed to it).
    from: SocketAddr,
    /// Where its feedback goes.
    sink: Sink,
    /// The values it is known to have: sent to it, or set by it.
    known: BTreeMap<(ModuleId, u8), f32>,
    /// The ledger's revision when it was last sent every change: only modules changed since
    /// are compared ([`Ledger::changed_since`]).
    seen: u64,
    /// It was sent [`MAX_PARAMS_PER_TICK`] and more changes wait.
    behind: bool,
}

/// The registered clients.
#[derive(Debug)]
pub struct Feedback {
    clients: Vec<Client>,
    /// The ledger's revision at the last tick (nothing to compare while it stays).
    seen_revision: Option<u64>,
    /// The address feedback sockets bind to: the OSC socket's (its port aside).
    bind_ip: IpAddr,
    dropped: u64,
    /// The modules' ids at the last tick (a change is a `PATH_CHANGED` for queue clients).
    modules: Vec<ModuleId>,
}

/// Why `/notify 1` was refused.
#[derive(Debug)]
pub enum RegisterError {
    /// [`MAX_CLIENTS`] are registered.
    Full,
    /// Its socket could not be opened.
    Io(io::Error),
}

impl Feedback {
    /// No clients yet; their sockets will bind to `bind_ip` (the OSC socket's address).
    pub fn new(bind_ip: IpAddr) -> Feedback {
        Feedback { clients: Vec::new(), seen_revision: None, bind_ip, dropped: 0, modules: Vec::new() }
    }

    /// Registers the client whose requests come from `from`, to be sent feedback at `to`
    /// (usually the same). Its known values start as the ledger's: it hears of changes from
    /// now on. Registering again changes where it is sent to.
    ///
    /// # Errors
    /// [`RegisterError::Full`], [`RegisterError::Io`]; nothing changed.
    pub fn register(&mut self, from: SocketAddr, to: SocketAddr, ledger: &Ledger) -> Result<(), RegisterError> {
        let ip = match (self.bind_ip, to.ip()) {
            (bind, to) if bind.is_unspecified() || bind.is_ipv4() != to.is_ipv4() => match to {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            },
            (bind, _) => bind,
        };
        if !self.clients.iter().any(|c| c.from == from) && self.clients.len() >= MAX_CLIENTS {
            return Err(RegisterError::Full);
        }
        let socket = UdpSocket::bind((ip, 0)).map_err(RegisterError::Io)?;
        socket.connect(to).map_err(RegisterError::Io)?;
        // A full socket buffer skips a tick rather than stalling the OSC thread.
        socket.set_nonblocking(true).map_err(RegisterError::Io)?;
        self.add(from, Sink::Udp(socket), ledger)
    }

    /// Registers a client of another transport as `key` (a WebSocket's peer): what a UDP
    /// client is sent is handed to `queue` ([`Out::Osc`]), and [`Out::PathChanged`] when
    /// modules come or go; a full queue skips a tick, a closed one drops the client.
    ///
    /// # Errors
    /// [`RegisterError::Full`]; nothing changed.
    pub fn register_queue(
        &mut self,
        key: SocketAddr,
        queue: SyncSender<Out>,
        ledger: &Ledger,
    ) -> Result<(), RegisterError> {
        if !self.clients.iter().any(|c| c.from == key) && self.clients.len() >= MAX_CLIENTS {
            return Err(RegisterError::Full);
        }
        self.add(key, Sink::Queue(queue), ledger)
    }

    fn add(&mut self, from: SocketAddr, sink: Sink, ledger: &Ledger) -> Result<(), RegisterError> {
        match self.clients.iter_mut().find(|c| c.from == from) {
            Some(client) => client.sink = sink,
            None => {
                let known = values(ledger).collect();
                self.clients.push(Client { from, sink, known, seen: ledger.revision(), behind: false });
            }
        }
        Ok(())
    }

    /// Forgets the client at `from`; false if it was not registered.
    pub fn unregister(&mut self, from: SocketAddr) -> bool {
        let before = self.clients.len();
        self.clients.retain(|c| c.from != from);
        self.clients.len() < before
    }

    /// True when a client is registered (the OSC thread then ticks every [`PERIOD`]).
    pub fn is_active(&self) -> bool {
        !self.clients.is_empty()
    }

    /// Clients registered.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Clients dropped because a send to them failed.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records that the client at `from` made these changes itself, so they are not echoed
    /// to it: `(id, Some(param))` a parameter it set, `(id, None)` every parameter of a module
    /// it created. Call it after the ledger recorded them.
    pub fn absorb(&mut self, from: SocketAddr, ledger: &Ledger, touched: &[(ModuleId, Option<u8>)]) {
        let Some(client) = self.clients.iter_mut().find(|c| c.from == from) else { return };
        for &(id, param) in touched {
            let Some(current) = ledger.params(id) else { continue };
            for (p, &value) in current.iter().enumerate() {
                if param.is_none_or(|q| q as usize == p) {
                    client.known.insert((id, p as u8), value);
                }
            }
        }
    }

    /// Sends each client what changed since its known values (at most
    /// [`MAX_PARAMS_PER_TICK`] parameters each) and drops those a send to failed. Call it no
    /// more often than every [`PERIOD`].
    pub fn tick(&mut self, ledger: &Ledger) {
        let behind = self.clients.iter().any(|c| c.behind);
        if self.clients.is_empty() || (self.seen_revision == Some(ledger.revision()) && !behind) {
            return;
        }
        self.seen_revision = Some(ledger.revision());
        let modules: Vec<ModuleId> = ledger.topology().modules().iter().map(|e| e.id).collect();
        if modules != self.modules {
            self.modules = modules;
            for client in &mut self.clients {
                // Freed modules' values: nothing to send, nothing to keep.
                client.known.retain(|&(id, p), _| ledger.params(id).is_some_and(|v| (p as usize) < v.len()));
                if let Sink::Queue(queue) = &client.sink {
                    // A full queue misses it; the values that follow still come.
                    let _ = queue.try_send(Out::PathChanged("/m".into()));
                }
            }
        }
        let before = self.clients.len();
        self.clients.retain_mut(|client| send_changes(client, ledger).is_ok());
        self.dropped += (before - self.clients.len()) as u64;
    }
}

/// Every parameter's value in the ledger, keyed by (id, index).
fn values(ledger: &Ledger) -> impl Iterator<Item = ((ModuleId, u8), f32)> + '_ {
    ledger.param_values().flat_map(|(id, _, values)| values.iter().enumerate().map(move |(p, &v)| ((id, p as u8), v)))
}

/// Sends `client` the parameters whose values differ from its known ones, among the modules
/// changed since it was last sent everything.
///
/// # Errors
/// A send failed for another reason than a full buffer: the client is gone.
fn send_changes(client: &mut Client, ledger: &Ledger) -> io::Result<()> {
    client.behind = false;
    let mut sent = 0;
    'modules: for (id, kind, values) in ledger.changed_since(client.seen) {
        for (p, &value) in values.iter().enumerate() {
            let key = (id, p as u8);
            if client.known.get(&key) == Some(&value) {
                continue;
            }
            if sent == MAX_PARAMS_PER_TICK {
                client.behind = true;
                break 'modules;
            }
            sent += 1;
            for message in messages(ledger, id, kind, p as u8, value) {
                if !client.sink.deliver(message)? {
                    // Not known to it yet: sent again next tick.
                    client.behind = true;
                    return Ok(());
                }
            }
            client.known.insert(key, value);
        }
    }
    if !client.behind {
        client.seen = ledger.revision();
    }
    Ok(())
}

/// What a client is sent when module `id`'s parameter `param` becomes `value`: each mapped
/// address with the value scaled back to 0..1, then `/m/<id>/<param name>`.
pub fn messages(ledger: &Ledger, id: ModuleId, kind: Kind, param: u8, value: f32) -> Vec<OscMessage> {
    let mut out: Vec<OscMessage> = ledger
        .mappings()
        .of_param(id, param)
        .map(|m| OscMessage { addr: m.address.clone(), args: vec![OscType::Float(m.position(value))] })
        .collect();
    if let Some(spec) = kind.params().get(param as usize) {
        out.push(OscMessage { addr: format!("/m/{id}/{}", spec.name), args: vec![value_arg(spec, value)] });
    }
    out
}

/// A parameter's value as `/m/<id>/<param>` answers it: a float, or an enumeration's choice
/// by name (which `/m/<id>/<param>` takes back).
pub fn value_arg(spec: &ParamSpec, value: f32) -> OscType {
    match spec.choices.get(value as usize) {
        Some(name) if spec.is_choice() => OscType::String((*name).into()),
        _ => OscType::Float(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MapSpec;
    use synthpool_core::command::{Request, Value};

    fn ledger_with_vco() -> Ledger {
        let mut ledger = Ledger::new(1);
        ledger.submit(&Request::New { kind: "vco", id: 1 }).unwrap();
        let spec =
            MapSpec::parse(&[Value::Int(1), Value::Str("freq"), Value::Int(20), Value::Int(20_000), Value::Str("exp")]);
        let mapping = spec.unwrap().resolve("/1/fader1", |id| ledger.topology().kind(id)).unwrap();
        ledger.map(mapping).unwrap();
        ledger
    }

    fn set(ledger: &mut Ledger, param: &str, value: f32) {
        ledger.submit(&Request::Set { id: 1, param, value: Value::Float(value) }).unwrap();
    }

    /// A listening socket and what it received so far.
    fn listener() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // A safety net against a hung test, not a measurement.
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        socket
    }

    fn received(socket: &UdpSocket) -> Vec<OscMessage> {
        let mut buf = [0u8; 2048];
        let mut out = Vec::new();
        while let Ok(n) = socket.recv(&mut buf) {
            if let Ok((_, OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n]) {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn a_change_reaches_other_clients_scaled_back_and_not_its_maker() {
        let mut ledger = ledger_with_vco();
        let (a, b) = (listener(), listener());
        let mut feedback = Feedback::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let (a_at, b_at) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        feedback.register(a_at, a_at, &ledger).unwrap();
        feedback.register(b_at, b_at, &ledger).unwrap();
        feedback.tick(&ledger);
        assert!(received(&b).is_empty(), "registering sends nothing");

        set(&mut ledger, "freq", 632.455_5);
        feedback.absorb(a_at, &ledger, &[(1, Some(0))]);
        feedback.tick(&ledger);
        assert!(received(&a).is_empty(), "a made the change");
        let got = received(&b);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].addr, "/1/fader1");
        let OscType::Float(x) = got[0].args[0] else { panic!("{got:?}") };
        // The geometric middle of 20..20000 Hz: the fader's middle, to f32's ln.
        assert!((x - 0.5).abs() < 1e-5, "{x}");
        assert_eq!(got[1], OscMessage { addr: "/m/1/freq_hz".into(), args: vec![OscType::Float(632.455_5)] });

        set(&mut ledger, "wave", 3.0);
        feedback.tick(&ledger);
        let to_a = received(&a);
        assert_eq!(to_a, vec![OscMessage { addr: "/m/1/wave".into(), args: vec![OscType::String("sine".into())] }]);
        feedback.tick(&ledger);
        assert!(received(&a).is_empty(), "sent once");
    }

    #[test]
    fn a_burst_goes_out_in_ticks_of_a_bounded_size() {
        let mut ledger = Ledger::new(1);
        let client = listener();
        let at = client.local_addr().unwrap();
        let mut feedback = Feedback::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        feedback.register(at, at, &ledger).unwrap();
        for id in 1..=100 {
            ledger.submit(&Request::New { kind: "vco", id }).unwrap();
        }
        feedback.tick(&ledger);
        assert_eq!(received(&client).len(), MAX_PARAMS_PER_TICK, "100 new vcos: 500 values, 256 a tick");
        feedback.tick(&ledger);
        assert_eq!(received(&client).len(), 500 - MAX_PARAMS_PER_TICK);
    }

    #[test]
    fn a_client_that_went_away_is_dropped() {
        let mut ledger = ledger_with_vco();
        let gone = listener();
        let at = gone.local_addr().unwrap();
        let mut feedback = Feedback::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        feedback.register(at, at, &ledger).unwrap();
        drop(gone);
        // The first send draws an ICMP port unreachable (loopback: at once); a later one fails.
        for k in 0..50 {
            set(&mut ledger, "level", k as f32 / 100.0);
            feedback.tick(&ledger);
            if !feedback.is_active() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!((feedback.clients(), feedback.dropped()), (0, 1));
        assert!(!feedback.unregister(at));
    }
}
