//! The OSC server: requests in over UDP, exactly one reply to the sender for each.
//!
//! A datagram is decoded (`rosc`, which allocates: this thread is off the audio path), each
//! message's arguments become core [`Value`]s, [`Request::parse`] reads it, the [`Ledger`]
//! checks it against the patch and makes the workers' commands, the [`Engine`] queues them,
//! and only then does the ledger record it. Replies:
//!
//! - `/done <address> <args as received>` for an edit that was queued;
//! - `/fail <address> <error name> <message>` for a refused one (a [`Failure`]: the core's
//!   `Error`, `Busy "worker ring full"` when a worker's command ring had no room, or the
//!   patch store's refusal);
//! - `/status` and `/patch/dump` answer with their own address (see [`Server::status_reply`],
//!   [`Status`] and [`dump_replies`]).
//!
//! A bundle applies in one block, all or none: if every message passes, each gets its reply
//! (in order, one datagram each); if one fails, the bundle gets one `/fail` naming the
//! failing message's address. Bundles nest at most [`MAX_BUNDLE_DEPTH`] deep. A bundle
//! with a future timetag is queued for the block nearest the time it names (up to
//! [`MAX_AHEAD_S`] ahead); one whose time has passed applies at once. Both are counted, as
//! early and late bundles.
//!
//! A datagram that cannot be decoded is dropped and counted; when its address can still be
//! read, it is answered `/fail <address> WrongArgs "malformed message"`.
use crate::engine::{Busy, Due, Engine, ModuleTime};
use crate::feedback::{self, Feedback, RegisterError};
use crate::ledger::{Ledger, Refused};
use crate::mapping::{self, MapSpec, Mapping};
use crate::persist::{self, Notifier, ScriptRefused, Store};
use crate::protocol::{self, FailName, Failure, Status, WorkerState, int};
use crate::wire;
use ipnet::IpNet;
use rosc::{OscMessage, OscPacket, OscTime, OscType};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use synthpool_core::BLOCK;
use synthpool_core::command::{Error, ModuleId, Request, Value};
use synthpool_core::topology::MAX_ID;

/// Deepest nesting of bundles accepted (a bundle in a bundle is depth 2).
pub const MAX_BUNDLE_DEPTH: usize = 4;

/// Largest reply datagram, bytes: python-osc's and liblo's servers read 8 KiB and up, and a
/// `/patch/dump` larger than this is split into parts.
pub const MAX_REPLY_BYTES: usize = 8192;

/// Replies to one datagram sent back to back before the rest are paced by [`REPLY_PACE`].
pub const PACED_AFTER: usize = 8;
/// The pause before each reply past [`PACED_AFTER`] (8 KiB in 500 us: 16 MB/s, which a
/// client in Python or a debug build keeps up with).
pub const REPLY_PACE: Duration = Duration::from_micros(500);

/// How often [`Server::run`] looks at its stop flag while no datagram arrives.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// How often [`Server::run`] evens out the workers' loads ([`Ledger::balance_with`]): loads
/// are medians over 64 blocks (85 ms at 48 kHz), so each step sees the last one's effect.
pub const BALANCE_PERIOD: Duration = Duration::from_millis(250);

/// Farthest ahead a bundle's timetag is honoured, s: a scheduled bundle holds back later
/// commands to the same worker until it is due (each worker's ring is first in, first out,
/// which keeps the patch consistent), so the horizon is kept short.
pub const MAX_AHEAD_S: f64 = 2.0;

/// The OSC timetag meaning "now".
const IMMEDIATELY: OscTime = OscTime { seconds: 0, fractional: 1 };

/// Counters the server keeps for `/status`.
#[derive(Debug, Default)]
pub struct Stats {
    late_bundles: AtomicU64,
    early_bundles: AtomicU64,
    dropped_datagrams: AtomicU64,
    refused_senders: AtomicU64,
}

impl Stats {
    /// Bundles whose timetag had passed when they arrived (applied at once).
    pub fn late_bundles(&self) -> u64 {
        self.late_bundles.load(Ordering::Relaxed)
    }

    /// Bundles whose timetag had not come when they arrived (applied at once, early: the
    /// engine cannot schedule yet).
    pub fn early_bundles(&self) -> u64 {
        self.early_bundles.load(Ordering::Relaxed)
    }

    /// Datagrams that could not be decoded.
    pub fn dropped_datagrams(&self) -> u64 {
        self.dropped_datagrams.load(Ordering::Relaxed)
    }

    /// Datagrams dropped because their sender is outside every `--allow` network.
    pub fn refused_senders(&self) -> u64 {
        self.refused_senders.load(Ordering::Relaxed)
    }
}

/// The OSC server: one UDP socket, one thread (the only one that sends to the engine).
pub struct Server {
    socket: UdpSocket,
    engine: Arc<dyn Engine>,
    ledger: Arc<Mutex<Ledger>>,
    stats: Arc<Stats>,
    /// Networks allowed to send (empty: everyone who can reach the socket).
    allow: Vec<IpNet>,
    /// Where `/patch/save` and `/patch/load` keep named patches (None: refused).
    store: Option<Store>,
    /// Told after every change, so the patch is saved.
    saver: Option<Notifier>,
    /// Clients registered with `/notify 1`.
    feedback: Mutex<Feedback>,
    /// A `/map/learn` waiting for the next unknown address.
    learn: Mutex<Option<Learn>>,
    /// Messages for others than a datagram's sender (a learner told what it learned), sent
    /// by [`Server::run`] after the replies.
    outbox: Mutex<Vec<(SocketAddr, OscMessage)>>,
}

/// A `/map/learn` waiting for an address to map.
#[derive(Debug)]
struct Learn {
    spec: MapSpec,
    /// Who asked (told `/map/learned` when it is done); None for a datagram with no sender.
    by: Option<SocketAddr>,
}

/// What one message of a datagram asks.
enum Item<'a> {
    Edit(Request<'a>),
    /// A mapped address: the parameters it drives, as `/module/set`s.
    Mapped(Vec<Request<'a>>),
    /// `/m/<id>/<param>` without a value: its value.
    Get {
        id: i32,
        param: &'a str,
    },
    /// An address of no one's: mapped or learned under the ledger's lock, else refused.
    Other {
        address: &'a str,
        args: Vec<Value<'a>>,
    },
    Map {
        address: &'a str,
        spec: MapSpec,
    },
    Unmap {
        address: &'a str,
        which: Option<(i32, &'a str)>,
    },
    MapList,
    Learn(MapSpec),
    /// `/notify 1 [port]` (Some(port), 0 for the sender's own) or `/notify 0` (None).
    Notify(Option<u16>),
    Status,
    ModuleStats(u16),
    Dump,
    Save(&'a str),
    Load(&'a str),
}

impl Item<'_> {
    /// True for requests sent on their own, never in a bundle.
    fn alone(&self) -> bool {
        matches!(
            self,
            Item::Save(_) | Item::Load(_) | Item::Unmap { .. } | Item::MapList | Item::Learn(_) | Item::Notify(_)
        )
    }
}

impl Server {
    /// A server answering on `socket`, checking against `ledger` (made with
    /// `Ledger::new(engine.workers())`) and queueing on `engine`.
    pub fn new(socket: UdpSocket, engine: Arc<dyn Engine>, ledger: Arc<Mutex<Ledger>>) -> Self {
        let bind_ip = socket.local_addr().map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip());
        Self {
            socket,
            engine,
            ledger,
            stats: Arc::new(Stats::default()),
            allow: Vec::new(),
            store: None,
            saver: None,
            feedback: Mutex::new(Feedback::new(bind_ip)),
            learn: Mutex::new(None),
            outbox: Mutex::new(Vec::new()),
        }
    }

    /// Answers only senders inside one of `allow` (all of them when empty); datagrams from
    /// others are dropped and counted (`refused_senders` in `/status`).
    pub fn with_allow(mut self, allow: Vec<IpNet>) -> Self {
        self.allow = allow;
        self
    }

    /// Keeps named patches in `store` (`/patch/save`, `/patch/load`) and tells `saver`, if
    /// any, after every change (none while a script plays: it is not the performer's patch).
    pub fn with_store(mut self, store: Store, saver: Option<Notifier>) -> Self {
        self.store = Some(store);
        self.saver = saver;
        self
    }

    /// The counters, shared.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Answers datagrams until `stop` is set (seen within [`STOP_POLL`]).
    ///
    /// # Errors
    /// Setting the socket's read timeout, or a receive error other than a timeout, an
    /// interruption or a peer's reset (those are skipped).
    pub fn run(&self, stop: &AtomicBool) -> io::Result<()> {
        // 65 535: the largest UDP datagram, so none is ever cut short.
        let mut buf = vec![0u8; 65_535];
        let mut next_balance = std::time::Instant::now() + BALANCE_PERIOD;
        let mut next_tick = std::time::Instant::now();
        // The read timeout: STOP_POLL, or feedback's period while a client listens.
        let mut ticking = None;
        while !stop.load(Ordering::Relaxed) {
            let now = std::time::Instant::now();
            if now >= next_balance {
                next_balance += BALANCE_PERIOD;
                let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
                let loads = self.engine.loads();
                ledger.balance_with(&loads, crate::placement::BALANCE_FROM, |commands| {
                    self.engine.send_together(commands)
                });
            }
            let active = lock(&self.feedback).is_active();
            if active && now >= next_tick {
                next_tick = now + feedback::PERIOD;
                let ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
                lock(&self.feedback).tick(&ledger);
            }
            if ticking != Some(active) {
                self.socket.set_read_timeout(Some(if active { feedback::PERIOD } else { STOP_POLL }))?;
                ticking = Some(active);
            }
            match self.socket.recv_from(&mut buf) {
                Ok((_, from)) if !self.allowed(from.ip()) => {
                    self.stats.refused_senders.fetch_add(1, Ordering::Relaxed);
                }
                Ok((len, from)) => {
                    for (k, reply) in self.handle_from(&buf[..len], Some(from)).into_iter().enumerate() {
                        if k >= PACED_AFTER {
                            // A long answer (a big patch's dump) is paced: a client's default
                            // socket buffer (~200 KiB) would drop a burst of 8 KiB parts.
                            std::thread::sleep(REPLY_PACE);
                        }
                        self.send_to(reply, from);
                    }
                    for (to, message) in std::mem::take(&mut *lock(&self.outbox)) {
                        self.send_to(message, to);
                    }
                }
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn send_to(&self, message: OscMessage, to: SocketAddr) {
        if let Ok(bytes) = rosc::encoder::encode(&OscPacket::Message(message)) {
            // A reply that cannot be sent (the sender left) is nobody's loss.
            let _ = self.socket.send_to(&bytes, to);
        }
    }

    /// The patch it checks against.
    pub fn ledger(&self) -> &Arc<Mutex<Ledger>> {
        &self.ledger
    }

    /// The engine it queues on.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// True when `sender` may talk to this server (`--allow`; the OSCQuery server asks too).
    pub fn allows(&self, sender: IpAddr) -> bool {
        self.allowed(sender)
    }

    /// Registers a feedback client of another transport as `key` (an OSCQuery WebSocket):
    /// it is handed what `/notify 1` clients are sent ([`Feedback::register_queue`]).
    ///
    /// # Errors
    /// [`RegisterError::Full`].
    pub fn listen(
        &self,
        key: SocketAddr,
        queue: std::sync::mpsc::SyncSender<feedback::Out>,
    ) -> Result<(), RegisterError> {
        let ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        lock(&self.feedback).register_queue(key, queue, &ledger)
    }

    /// Forgets the feedback client `key`.
    pub fn unlisten(&self, key: SocketAddr) {
        lock(&self.feedback).unregister(key);
    }

    /// True when `sender` may talk to this server.
    fn allowed(&self, sender: IpAddr) -> bool {
        let sender = match sender {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(sender, IpAddr::V4),
            v4 => v4,
        };
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&sender))
    }

    /// The replies to one datagram with no sender to speak of (`/notify` and learning need
    /// one), in order (each sent as its own datagram).
    pub fn handle(&self, datagram: &[u8]) -> Vec<OscMessage> {
        self.handle_from(datagram, None)
    }

    /// The replies to one datagram from `from`, in order (each sent as its own datagram).
    pub fn handle_from(&self, datagram: &[u8], from: Option<SocketAddr>) -> Vec<OscMessage> {
        if bundle_depth_exceeds(datagram, MAX_BUNDLE_DEPTH) {
            let message = format!("bundles nest deeper than {MAX_BUNDLE_DEPTH}");
            return vec![protocol::fail("#bundle", FailName::WrongArgs, &message)];
        }
        if let Some(address) = wire::bare_address(datagram) {
            let message = OscMessage { addr: address.into(), args: Vec::new() };
            return self.handle_messages(&[&message], None, from);
        }
        // rosc alone would accept bad padding, trailing bytes and half a bundle (see wire.rs).
        let decoded = wire::well_formed(datagram, MAX_BUNDLE_DEPTH).then(|| rosc::decoder::decode_udp(datagram));
        match decoded.unwrap_or(Err(rosc::OscError::BadPacket("malformed"))) {
            Err(_) => {
                self.stats.dropped_datagrams.fetch_add(1, Ordering::Relaxed);
                readable_address(datagram)
                    .map(|a| protocol::fail(a, FailName::WrongArgs, "malformed message"))
                    .into_iter()
                    .collect()
            }
            Ok((_, OscPacket::Message(message))) => self.handle_messages(&[&message], None, from),
            Ok((_, OscPacket::Bundle(bundle))) => {
                let now = SystemTime::now();
                self.count_timing(bundle.timetag, now);
                let mut messages = Vec::new();
                flatten(&bundle.content, &mut messages);
                self.handle_messages(&messages, self.due(bundle.timetag, now), from)
            }
        }
    }

    /// When a bundle with `timetag` is due: the block and sample that play at the time it
    /// names, on the audio side's clock ([`Engine::due_in`]). None for "immediately" and for
    /// times that have passed (those apply at once).
    fn due(&self, timetag: OscTime, now: SystemTime) -> Option<Due> {
        // rosc's conversion to SystemTime panics for a time before 1970 (it subtracts
        // Durations): compare as timetags first, and only a time to come is converted.
        let now_tag = OscTime::try_from(now).ok()?;
        if timetag == IMMEDIATELY || timetag <= now_tag {
            return None;
        }
        let at = SystemTime::from(timetag);
        // Farther than MAX_AHEAD_S: refused upstream as WrongArgs would lose the bundle;
        // cap it instead (it then applies early, and is counted early).
        let ahead = at.duration_since(now).ok()?.min(Duration::from_secs_f64(MAX_AHEAD_S));
        Some(self.engine.due_in(ahead))
    }

    /// Checks `messages` as one bundle, queues their commands together (for `due`, or the
    /// next block), records them. `from` sent them.
    fn handle_messages(&self, messages: &[&OscMessage], due: Option<Due>, from: Option<SocketAddr>) -> Vec<OscMessage> {
        let mut items = Vec::with_capacity(messages.len());
        for message in messages {
            match item(message) {
                Ok(item) => items.push(item),
                Err(e) => return vec![e.reply(&message.addr)],
            }
        }
        match (&items[..], messages) {
            ([Item::Save(name)], [message]) => return vec![self.save(message, name)],
            ([Item::Load(name)], [message]) => return vec![self.load(message, name)],
            _ => {}
        }
        if let Some(i) = items.iter().position(Item::alone).filter(|_| messages.len() > 1) {
            return vec![protocol::fail(
                &messages[i].addr,
                FailName::WrongArgs,
                "send /patch/save, /patch/load, /unmap, /map/list, /map/learn and /notify on their own",
            )];
        }
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        if let ([item], [message]) = (&items[..], messages)
            && let Some(reply) = self.handle_alone(item, message, &mut ledger, from)
        {
            return reply;
        }
        // Addresses of no one's: mapped, learned, or refused.
        for (item, message) in items.iter_mut().zip(messages) {
            if let Item::Other { address, args } = item {
                match self.mapped(&mut ledger, address, args) {
                    Ok(requests) => *item = Item::Mapped(requests),
                    Err(e) => return vec![Failure::Refused(e).reply(&message.addr)],
                }
            }
        }
        let mut edits: Vec<(usize, Request<'_>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Edit(r) => edits.push((i, *r)),
                Item::Mapped(requests) => edits.extend(requests.iter().map(|r| (i, *r))),
                _ => {}
            }
        }
        let requests: Vec<Request<'_>> = edits.iter().map(|&(_, r)| r).collect();
        let maps: Vec<(usize, &str, &MapSpec)> = items
            .iter()
            .enumerate()
            .filter_map(
                |(i, item)| if let Item::Map { address, spec } = item { Some((i, *address, spec)) } else { None },
            )
            .collect();
        let mappings = match ledger.check_maps(&requests, maps.iter().map(|&(_, a, s)| (a, s))) {
            Ok(mappings) => mappings,
            Err((k, e)) => return vec![Failure::from(e).reply(&messages[maps[k].0].addr)],
        };
        if let Some((i, e)) = refused_query(&ledger, &items, &requests) {
            return vec![Failure::Refused(e).reply(&messages[i].addr)];
        }
        if !edits.is_empty() {
            // Loads decide where new modules go: read them only when something is placed.
            if edits.iter().any(|(_, r)| matches!(r, Request::New { .. } | Request::Patch { .. })) {
                ledger.set_loads(&self.engine.loads());
            }
            let sent = ledger.submit_with(&requests, |commands| match (commands, due) {
                ([], _) => Ok(()),
                (commands, Some(due)) => self.engine.send_together_at(commands, due),
                ([(worker, command)], None) => self.engine.send(*worker, command),
                (commands, None) => self.engine.send_together(commands),
            });
            match sent {
                Ok(()) => {}
                Err(Refused::Invalid { index, error }) => {
                    return vec![Failure::Refused(error).reply(&messages[edits[index].0].addr)];
                }
                Err(Refused::Send(Busy)) => return vec![Failure::Busy.reply(&messages[edits[0].0].addr)],
            }
        }
        for mapping in mappings.iter().cloned() {
            // Checked against the patch the edits left (check_maps): cannot fail.
            let _ = ledger.map(mapping);
        }
        if !edits.is_empty() || !mappings.is_empty() {
            self.changed();
        }
        if let Some(from) = from {
            self.absorb(from, &ledger, &requests);
        }
        let mut replies = Vec::with_capacity(messages.len());
        for (message, item) in messages.iter().zip(&items) {
            match item {
                Item::Edit(_) | Item::Mapped(_) | Item::Map { .. } => replies.push(done(message)),
                Item::Get { id, param } => replies.push(get_reply(message, &ledger, *id, param)),
                Item::Status => replies.push(self.status_reply(&ledger)),
                Item::ModuleStats(id) => replies.push(self.module_stats_reply(message, &ledger, *id)),
                Item::Dump => replies.extend(dump_replies(&ledger.dump())),
                // Answered above (alone), or refused (in a bundle).
                Item::Other { .. }
                | Item::Unmap { .. }
                | Item::MapList
                | Item::Learn(_)
                | Item::Notify(_)
                | Item::Save(_)
                | Item::Load(_) => {}
            }
        }
        replies
    }

    /// The replies to a request that comes alone (`/unmap`, `/map/list`, `/map/learn`,
    /// `/notify`); None for any other.
    fn handle_alone(
        &self,
        item: &Item<'_>,
        message: &OscMessage,
        ledger: &mut Ledger,
        from: Option<SocketAddr>,
    ) -> Option<Vec<OscMessage>> {
        let reply = match item {
            Item::Unmap { address, which } => match ledger.unmap(address, *which) {
                Ok(_) => {
                    self.changed();
                    done(message)
                }
                Err(e) => Failure::from(e).reply(&message.addr),
            },
            Item::MapList => return Some(parts("/map/list", &ledger.mappings().lines())),
            Item::Learn(spec) => {
                // Checked now against the patch (an address of a controller's own stands in).
                match spec.resolve("/learn", |id| ledger.topology().kind(id)) {
                    Ok(_) => {
                        *lock(&self.learn) = Some(Learn { spec: spec.clone(), by: from });
                        done(message)
                    }
                    Err(e) => Failure::from(e).reply(&message.addr),
                }
            }
            Item::Notify(port) => {
                let Some(from) = from else {
                    return Some(vec![protocol::fail(&message.addr, FailName::WrongArgs, "no sender to notify")]);
                };
                let mut feedback = lock(&self.feedback);
                match port {
                    None => {
                        feedback.unregister(from);
                        done(message)
                    }
                    Some(port) => {
                        let to = if *port == 0 { from } else { SocketAddr::new(from.ip(), *port) };
                        match feedback.register(from, to, ledger) {
                            Ok(()) => done(message),
                            Err(RegisterError::Full) => Failure::TooManyClients.reply(&message.addr),
                            Err(RegisterError::Io(e)) => protocol::fail(&message.addr, FailName::Io, &e.to_string()),
                        }
                    }
                }
            }
            _ => return None,
        };
        Some(vec![reply])
    }

    /// The `/module/set`s a mapped address makes of its arguments (the first number, taken
    /// as 0..1). An address not mapped is learned if a `/map/learn` waits for one.
    ///
    /// # Errors
    /// `UnknownAddress` for an address neither mapped nor learned; `WrongArgs` without a
    /// number; `NotFinite`.
    fn mapped<'a>(&self, ledger: &mut Ledger, address: &'a str, args: &[Value<'a>]) -> Result<Vec<Request<'a>>, Error> {
        if ledger.mappings().of_address(address).next().is_none() {
            self.learn_address(ledger, address, args)?;
        }
        let x = mapping::position_of(args)?;
        let sets = ledger.mappings().of_address(address).map(|m| Request::Set {
            id: i32::from(m.id),
            param: m.spec().name,
            value: Value::Float(m.value(x)),
        });
        Ok(sets.collect())
    }

    /// Maps `address` as the waiting `/map/learn` asked, if one waits and `args` hold a
    /// position; tells the learner (`/map/learned`, or `/fail /map/learn` when its module is
    /// gone meanwhile).
    ///
    /// # Errors
    /// `UnknownAddress` when nothing was learned.
    fn learn_address(&self, ledger: &mut Ledger, address: &str, args: &[Value<'_>]) -> Result<(), Error> {
        let mut learn = lock(&self.learn);
        if learn.is_none() || !mapping::mappable(address) || mapping::position_of(args).is_err() {
            return Err(Error::UnknownAddress);
        }
        let Some(Learn { spec, by }) = learn.take() else { return Err(Error::UnknownAddress) };
        let mapping = spec.resolve(address, |id| ledger.topology().kind(id));
        let learned = mapping.and_then(|m| ledger.map(m.clone()).map(|()| m));
        let told = match &learned {
            Ok(m) => learned_message(m),
            Err(e) => Failure::from(*e).reply("/map/learn"),
        };
        if let Some(by) = by {
            lock(&self.outbox).push((by, told));
        }
        match learned {
            Ok(_) => {
                self.changed();
                Ok(())
            }
            Err(_) => Err(Error::UnknownAddress),
        }
    }

    /// Tells feedback that `from` made `requests` itself (they are not echoed to it).
    fn absorb(&self, from: SocketAddr, ledger: &Ledger, requests: &[Request<'_>]) {
        let mut feedback = lock(&self.feedback);
        if !feedback.is_active() {
            return;
        }
        let touched: Vec<(ModuleId, Option<u8>)> = requests
            .iter()
            .filter_map(|r| match *r {
                Request::Set { id, param, .. } => ledger.param_of(id, param).ok().map(|(id, p)| (id, Some(p))),
                Request::New { id, .. } => ModuleId::try_from(id).ok().map(|id| (id, None)),
                _ => None,
            })
            .collect();
        feedback.absorb(from, ledger, &touched);
    }

    /// `/patch/save NAME`: the patch as it is, into the patches folder.
    fn save(&self, message: &OscMessage, name: &str) -> OscMessage {
        let Some(store) = &self.store else {
            return Failure::NoStore.reply(&message.addr);
        };
        let lines = self.ledger.lock().unwrap_or_else(PoisonError::into_inner).dump();
        match store.save_named(name, &lines) {
            Ok(()) => done(message),
            Err(e) => Failure::Store(e).reply(&message.addr),
        }
    }

    /// `/patch/load NAME`: replaces the patch with a saved one, in one block, all or none.
    fn load(&self, message: &OscMessage, name: &str) -> OscMessage {
        let Some(store) = &self.store else {
            return Failure::NoStore.reply(&message.addr);
        };
        let text = match store.load_named(name) {
            Ok(text) => text,
            Err(e) => return Failure::Store(e).reply(&message.addr),
        };
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        match persist::load_script(&mut ledger, self.engine.as_ref(), &text) {
            Ok(_) => {
                drop(ledger);
                self.changed();
                done(message)
            }
            Err(ScriptRefused::Line { line, error }) => {
                protocol::fail(&message.addr, FailName::from(error), &format!("{name}.osc line {line}: {error}"))
            }
            Err(ScriptRefused::Map { line, error }) => {
                protocol::fail(&message.addr, error.name(), &format!("{name}.osc line {line}: {error}"))
            }
            Err(ScriptRefused::Busy) => {
                // A load fed in parts may have applied its first lines: they are kept.
                drop(ledger);
                self.changed();
                Failure::Busy.reply(&message.addr)
            }
        }
    }

    fn changed(&self) {
        if let Some(saver) = &self.saver {
            saver.changed();
        }
    }

    /// The `/status` reply: the figures of [`Status`], encoded as PROTOCOL.md lists them.
    /// `modules` counts the modules users created (the outputs not counted); `cables`
    /// counts every cable; counters past i32's range read as `i32::MAX`.
    pub fn status_reply(&self, ledger: &Ledger) -> OscMessage {
        let engine_workers = self.engine.status();
        let (allocations, frees) = crate::alloc_count::counted_allocations();
        let workers = engine_workers
            .iter()
            .enumerate()
            .map(|(w, status)| protocol::WorkerStatus {
                pid: status.pid,
                core: count(status.core),
                modules: count(ledger.usage(w).modules),
                load: status.load,
                late_blocks: count(status.late_blocks),
                // The shared region's word is one of the five (shm.rs); any other is no
                // running worker.
                state: WorkerState::from_word(status.state).unwrap_or(WorkerState::Exited),
                restarts: status.restarts,
                allocations: count(status.allocations),
                frees: count(status.frees),
                block_p50_us: status.block_p50_us,
                block_p99_us: status.block_p99_us,
                block_max_us: status.block_max_us,
                wake_p50_us: status.wake_p50_us,
                wake_p99_us: status.wake_p99_us,
                late_links: count(status.late_links),
                inline: u32::from(status.inline),
            })
            .collect();
        Status {
            sample_rate_hz: self.engine.sample_rate_hz(),
            block: BLOCK as u32,
            modules: count(ledger.modules()),
            cables: count(ledger.cables()),
            late_bundles: count(self.stats.late_bundles()),
            dropped_datagrams: count(self.stats.dropped_datagrams()),
            // The block clock: the generation of the block rendered last (block 1 is the first).
            generation: self.engine.generation(),
            refused_senders: count(self.stats.refused_senders()),
            audio_allocations: count(allocations),
            audio_frees: count(frees),
            restarts: count(engine_workers.iter().map(|w| u64::from(w.restarts)).sum::<u64>()),
            workers,
        }
        .encode()
    }

    /// The `/module/stats` reply: `id kind worker share_of_block mean_ns timed_blocks`
    /// (int, string, int, float, float, int), from the module's worker's timings since the
    /// module was created; `worker` is -1 for the output (on every worker: its times are
    /// summed). A module not timed yet reads 0 and 0.
    fn module_stats_reply(&self, message: &OscMessage, ledger: &Ledger, id: u16) -> OscMessage {
        let Some(kind) = ledger.topology().kind(id) else {
            return Failure::Refused(Error::NoSuchModule(id)).reply(&message.addr);
        };
        let (worker, time) = match ledger.owner(id) {
            Some(worker) => (worker as i32, self.engine.module_time(worker, id).unwrap_or_default()),
            None => {
                let times: Vec<_> = (0..self.engine.workers()).filter_map(|w| self.engine.module_time(w, id)).collect();
                let mean_ns = times.iter().map(|t| t.mean_ns).sum();
                (-1, ModuleTime { mean_ns, blocks: times.iter().map(|t| t.blocks).min().unwrap_or(0) })
            }
        };
        let budget_ns = BLOCK as f64 / f64::from(self.engine.sample_rate_hz().max(1)) * 1e9;
        OscMessage {
            addr: "/module/stats".into(),
            args: vec![
                int(id),
                OscType::String(kind.name().into()),
                OscType::Int(worker),
                OscType::Float((time.mean_ns / budget_ns) as f32),
                OscType::Float(time.mean_ns as f32),
                int(time.blocks),
            ],
        }
    }

    /// Counts a bundle as late or early against `now`.
    fn count_timing(&self, timetag: OscTime, now: SystemTime) {
        if timetag == IMMEDIATELY {
            return;
        }
        // Fails only past 2036 (the timetag's 32-bit seconds wrap): then nothing is counted.
        let Ok(now) = OscTime::try_from(now) else { return };
        if timetag < now {
            self.stats.late_bundles.fetch_add(1, Ordering::Relaxed);
        } else if timetag > now {
            self.stats.early_bundles.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The `/patch/dump` reply: `/patch/dump part parts line...` (ints, then strings), each line
/// a script line (`/module/new vco 1`); `part` counts from 1 to `parts`. A patch whose lines
/// do not fit in one [`MAX_REPLY_BYTES`] datagram comes in several parts, in order; an empty
/// patch is one part with no lines.
pub fn dump_replies(lines: &[String]) -> Vec<OscMessage> {
    parts("/patch/dump", lines)
}

/// A reply of script lines at `address` (`/patch/dump`, `/map/list`), in parts that each
/// fit in one [`MAX_REPLY_BYTES`] datagram: `address part parts line...`.
pub fn parts(address: &str, lines: &[String]) -> Vec<OscMessage> {
    // Encoded size: the address, ",ii" and one tag per line (each padded to 4 bytes, with
    // its terminating NUL), two int32s, each line padded.
    let padded = |len: usize| (len / 4 + 1) * 4;
    let size = |tags: usize, text: usize| padded(address.len()) + padded(3 + tags) + 8 + text;
    let mut parts: Vec<&[String]> = Vec::new();
    let mut start = 0;
    let mut text = 0;
    for (i, line) in lines.iter().enumerate() {
        let more = padded(line.len());
        if i > start && size(i + 1 - start, text + more) > MAX_REPLY_BYTES {
            parts.push(&lines[start..i]);
            (start, text) = (i, 0);
        }
        text += more;
    }
    parts.push(&lines[start..]);
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut args = vec![int(i + 1), int(count)];
            args.extend(part.iter().map(|l| OscType::String(l.clone())));
            OscMessage { addr: address.into(), args }
        })
        .collect()
}

/// What `message` asks, with its arguments read.
fn item(message: &OscMessage) -> Result<Item<'_>, Failure> {
    let args = message.args.iter().map(value).collect::<Result<Vec<_>, _>>()?;
    let id_of = |v: &Value<'_>| match Request::parse("/module/free", &[*v])? {
        Request::Free { id } => Ok(id),
        _ => Err(Error::WrongArgs),
    };
    Ok(match message.addr.as_str() {
        "/status" if args.is_empty() => Item::Status,
        "/patch/dump" if args.is_empty() => Item::Dump,
        "/map/list" if args.is_empty() => Item::MapList,
        "/status" | "/patch/dump" | "/map/list" => return Err(Error::WrongArgs.into()),
        // The id is read as `/module/free` reads it (an int, or a float holding one).
        "/module/stats" => match args[..] {
            [ref v] => match id_of(v)? {
                id if (0..=i32::from(MAX_ID)).contains(&id) => Item::ModuleStats(id as u16),
                id => return Err(Error::IdOutOfRange { id, max: MAX_ID }.into()),
            },
            _ => return Err(Error::WrongArgs.into()),
        },
        "/patch/save" | "/patch/load" => match args[..] {
            [Value::Str(name)] if message.addr == "/patch/save" => Item::Save(name),
            [Value::Str(name)] => Item::Load(name),
            _ => return Err(Error::WrongArgs.into()),
        },
        "/map" => {
            let (address, spec) = mapping::parse_map(&args)?;
            Item::Map { address, spec }
        }
        "/unmap" => match args[..] {
            [Value::Str(address)] => Item::Unmap { address, which: None },
            [Value::Str(address), ref id, Value::Str(param)] => {
                Item::Unmap { address, which: Some((id_of(id)?, param)) }
            }
            _ => return Err(Error::WrongArgs.into()),
        },
        "/map/learn" => Item::Learn(MapSpec::parse(&args)?),
        "/notify" => match args[..] {
            [ref on] => match id_of(on)? {
                0 => Item::Notify(None),
                1 => Item::Notify(Some(0)),
                _ => return Err(Error::WrongArgs.into()),
            },
            [ref on, ref port] if id_of(on)? == 1 => match u16::try_from(id_of(port)?) {
                Ok(port) if port > 0 => Item::Notify(Some(port)),
                _ => return Err(Error::WrongArgs.into()),
            },
            _ => return Err(Error::WrongArgs.into()),
        },
        address if address.starts_with("/m/") => {
            let (id, param) = param_address(address).ok_or(Error::UnknownAddress)?;
            match args[..] {
                [] => Item::Get { id, param },
                [value] => Item::Edit(Request::Set { id, param, value }),
                _ => return Err(Error::WrongArgs.into()),
            }
        }
        address => match Request::parse(address, &args) {
            Ok(request) => Item::Edit(request),
            Err(Error::UnknownAddress) => Item::Other { address, args },
            Err(e) => return Err(e.into()),
        },
    })
}

/// `/m/<id>/<param>`'s id and parameter name; None for another shape.
fn param_address(address: &str) -> Option<(i32, &str)> {
    let (id, param) = address.strip_prefix("/m/")?.split_once('/')?;
    let digits = !id.is_empty() && id.len() <= 5 && id.bytes().all(|b| b.is_ascii_digit());
    let named = !param.is_empty() && !param.contains('/');
    (digits && named).then(|| id.parse().ok()).flatten().map(|id| (id, param))
}

/// The first query (`/m/<id>/<param>` without a value) among `items` that the patch as
/// `requests` (the bundle's edits) leave it cannot answer: its index and why. A bundle's
/// queries answer after its edits, so they are checked on a copy with the edits applied
/// (only when a bundle holds both; refused edits are left to the submission to report).
fn refused_query(ledger: &Ledger, items: &[Item<'_>], requests: &[Request<'_>]) -> Option<(usize, Error)> {
    let queries: Vec<(usize, i32, &str)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| if let Item::Get { id, param } = *item { Some((i, id, param)) } else { None })
        .collect();
    if queries.is_empty() {
        return None;
    }
    let after;
    let patch = if requests.is_empty() {
        ledger
    } else {
        let mut copy = ledger.clone();
        let staged = copy.check_bundle(requests).ok()?;
        copy.commit(staged).ok()?;
        after = copy;
        &after
    };
    queries.into_iter().find_map(|(i, id, param)| patch.param_of(id, param).err().map(|e| (i, e)))
}

/// `/m/<id>/<param>`'s answer: the address as asked, the value ([`feedback::value_arg`]).
fn get_reply(message: &OscMessage, ledger: &Ledger, id: i32, param: &str) -> OscMessage {
    let answer = ledger.param_of(id, param).and_then(|(id, p)| {
        let kind = ledger.topology().kind(id).ok_or(Error::NoSuchModule(id))?;
        let value = ledger.params(id).and_then(|v| v.get(p as usize)).copied().ok_or(Error::UnknownParam)?;
        Ok(feedback::value_arg(&kind.params()[p as usize], value))
    });
    match answer {
        Ok(arg) => OscMessage { addr: message.addr.clone(), args: vec![arg] },
        Err(e) => Failure::Refused(e).reply(&message.addr),
    }
}

/// What the learner of a mapping is told: `/map/learned` and the `/map` arguments that
/// make it again (address, id, param, min, max, curve).
fn learned_message(m: &Mapping) -> OscMessage {
    let args = vec![
        OscType::String(m.address.clone()),
        int(m.id),
        OscType::String(m.spec().name.into()),
        OscType::Float(m.min),
        OscType::Float(m.max),
        OscType::String(m.curve.name().into()),
    ];
    OscMessage { addr: "/map/learned".into(), args }
}

/// Locks `mutex`, whatever a panicking holder left (the state is plain data, valid either way).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An OSC argument as a core value: int32, float32 and string as they are; a float64 within
/// f32's range as f32 (NaN and infinities too, which validation then refuses as
/// `NotFinite`); an int64 within i32's range as i32.
///
/// # Errors
/// `WrongArgs` for any other type, a finite float64 beyond f32's range, an int64 beyond i32's.
fn value(arg: &OscType) -> Result<Value<'_>, Error> {
    match arg {
        OscType::Int(i) => Ok(Value::Int(*i)),
        OscType::Float(x) => Ok(Value::Float(*x)),
        OscType::String(s) => Ok(Value::Str(s)),
        OscType::Double(x) if !x.is_finite() || x.abs() <= f64::from(f32::MAX) => Ok(Value::Float(*x as f32)),
        OscType::Long(i) => i32::try_from(*i).map(Value::Int).map_err(|_| Error::WrongArgs),
        _ => Err(Error::WrongArgs),
    }
}

/// The messages of a bundle's content, nested bundles opened, in order.
fn flatten<'a>(content: &'a [OscPacket], out: &mut Vec<&'a OscMessage>) {
    for packet in content {
        match packet {
            OscPacket::Message(m) => out.push(m),
            OscPacket::Bundle(b) => flatten(&b.content, out),
        }
    }
}

/// True when `datagram` holds bundles nested deeper than `max`. Checked before decoding:
/// `rosc` decodes nested bundles by recursion without a limit, so a datagram of bundles
/// nested thousands deep could overflow the stack.
fn bundle_depth_exceeds(datagram: &[u8], max: usize) -> bool {
    const TAG: &[u8] = b"#bundle\0";
    if !datagram.starts_with(TAG) {
        return false;
    }
    if max == 0 {
        return true;
    }
    // Tag (8 bytes), timetag (8), then elements: a big-endian u32 size and that many bytes.
    let mut rest = datagram.get(16..).unwrap_or(&[]);
    while let Some((size, tail)) = rest.split_first_chunk::<4>() {
        let size = u32::from_be_bytes(*size) as usize;
        let Some(element) = tail.get(..size) else { return false };
        if bundle_depth_exceeds(element, max - 1) {
            return true;
        }
        rest = &tail[size..];
    }
    false
}

/// The address of a datagram that did not decode, if it starts with one: `/`, printable
/// ASCII, up to the first NUL.
fn readable_address(datagram: &[u8]) -> Option<&str> {
    let end = datagram.iter().position(|&b| b == 0)?;
    let address = std::str::from_utf8(&datagram[..end]).ok()?;
    let printable = address.bytes().all(|b| b.is_ascii_graphic());
    (address.starts_with('/') && printable).then_some(address)
}

fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionRefused, ConnectionReset, Interrupted, TimedOut, WouldBlock};
    matches!(e.kind(), WouldBlock | TimedOut | Interrupted | ConnectionReset | ConnectionRefused)
}

/// A count for [`Status`]; past `u32::MAX`, that (which the wire sends as `i32::MAX`).
fn count(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

fn done(message: &OscMessage) -> OscMessage {
    let mut args = vec![OscType::String(message.addr.clone())];
    args.extend(message.args.iter().cloned());
    OscMessage { addr: "/done".into(), args }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::WorkerStatus;
    use crate::protocol::Reply;
    use std::net::SocketAddr;
    use std::thread::JoinHandle;
    use synthpool_core::command::{Command, WorkerCommand};
    use synthpool_core::module::Kind;

    /// An engine that records what it is sent and refuses when told to be busy.
    struct FakeEngine {
        workers: usize,
        sent: Mutex<Vec<(usize, WorkerCommand)>>,
        batches: Mutex<usize>,
        busy: AtomicBool,
    }

    impl FakeEngine {
        fn new(workers: usize) -> Arc<Self> {
            Arc::new(Self { workers, sent: Mutex::default(), batches: Mutex::default(), busy: AtomicBool::new(false) })
        }

        fn sent(&self) -> Vec<(usize, WorkerCommand)> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Engine for FakeEngine {
        fn workers(&self) -> usize {
            self.workers
        }

        fn send(&self, worker: usize, command: &WorkerCommand) -> Result<(), Busy> {
            self.send_together(&[(worker, *command)])
        }

        fn send_together(&self, commands: &[(usize, WorkerCommand)]) -> Result<(), Busy> {
            if self.busy.load(Ordering::Relaxed) {
                return Err(Busy);
            }
            *self.batches.lock().unwrap() += 1;
            self.sent.lock().unwrap().extend_from_slice(commands);
            Ok(())
        }

        fn status(&self) -> Vec<WorkerStatus> {
            (0..self.workers)
                .map(|w| WorkerStatus {
                    pid: 1000 + w as u32,
                    core: w,
                    load: 0.25 * w as f32,
                    late_blocks: 7,
                    blocks: 100,
                    state: 1,
                    block_p50_us: 40.0,
                    block_p99_us: 80.0,
                    block_max_us: 200.0,
                    wake_p50_us: 20.0,
                    wake_p99_us: 70.0,
                    ..WorkerStatus::default()
                })
                .collect()
        }

        fn module_time(&self, worker: usize, id: u16) -> Option<ModuleTime> {
            // 13_333.3 ns: 1% of the 1.333 ms block; the worker's index shows in the count.
            (id != 77).then_some(ModuleTime { mean_ns: 40_000.0 / 3.0, blocks: 5 + worker as u32 })
        }

        fn sample_rate_hz(&self) -> u32 {
            48_000
        }
    }

    /// A server on 127.0.0.1 in its own thread, and a client socket to talk to it.
    struct Running {
        engine: Arc<FakeEngine>,
        ledger: Arc<Mutex<Ledger>>,
        stats: Arc<Stats>,
        client: UdpSocket,
        server: SocketAddr,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<io::Result<()>>>,
    }

    impl Running {
        fn start(workers: usize) -> Self {
            let engine = FakeEngine::new(workers);
            let ledger = Arc::new(Mutex::new(Ledger::new(workers)));
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let server_addr = socket.local_addr().unwrap();
            let server = Server::new(socket, engine.clone(), Arc::clone(&ledger));
            let stats = server.stats();
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || server.run(&flag));
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            // A safety net against a hung test, not a measurement.
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            Self { engine, ledger, stats, client, server: server_addr, stop, thread: Some(thread) }
        }

        fn send_packet(&self, packet: OscPacket) {
            self.client.send_to(&rosc::encoder::encode(&packet).unwrap(), self.server).unwrap();
        }

        fn send(&self, addr: &str, args: Vec<OscType>) {
            self.send_packet(OscPacket::Message(OscMessage { addr: addr.into(), args }));
        }

        fn reply(&self) -> OscMessage {
            let mut buf = vec![0u8; 65_535];
            let (len, _) = self.client.recv_from(&mut buf).unwrap();
            match rosc::decoder::decode_udp(&buf[..len]).unwrap().1 {
                OscPacket::Message(m) => m,
                OscPacket::Bundle(b) => panic!("replies are messages, got {b:?}"),
            }
        }

        /// Sends `/status` and returns its reply: when it arrives, everything sent before
        /// it has been handled (one thread, in order).
        fn status(&self) -> Status {
            self.send("/status", vec![]);
            let reply = self.reply();
            let status = Status::parse(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"));
            assert_eq!(status.encode(), reply, "nothing in the reply that Status does not hold");
            status
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                thread.join().unwrap().unwrap();
            }
        }
    }

    fn s(text: &str) -> OscType {
        OscType::String(text.into())
    }

    fn msg(addr: &str, args: Vec<OscType>) -> OscPacket {
        OscPacket::Message(OscMessage { addr: addr.into(), args })
    }

    fn bundle(content: Vec<OscPacket>) -> OscPacket {
        OscPacket::Bundle(rosc::OscBundle { timetag: IMMEDIATELY, content })
    }

    fn fail_name(reply: &OscMessage) -> (&str, FailName) {
        Reply::parse(reply).ok().and_then(|r| r.failed()).unwrap_or_else(|| panic!("a /fail: {reply:?}"))
    }

    #[test]
    fn module_new_is_done_and_queued() {
        let server = Running::start(2);
        server.send("/module/new", vec![s("vco"), OscType::Int(1)]);
        let reply = server.reply();
        assert_eq!(reply, OscMessage { addr: "/done".into(), args: vec![s("/module/new"), s("vco"), OscType::Int(1)] });
        assert_eq!(server.engine.sent(), vec![(0, Command::New { id: 1, kind: Kind::Vco }.into())]);
        // Ids as floats, parameters as float64, as controllers send them.
        server.send("/module/set", vec![OscType::Float(1.0), s("freq"), OscType::Double(220.0)]);
        assert_eq!(server.reply().addr, "/done");
        assert_eq!(server.engine.sent()[1], (0, Command::Set { id: 1, param: 0, value: 220.0 }.into()));
        assert_eq!(server.ledger.lock().unwrap().params(1).unwrap()[0], 220.0);
    }

    #[test]
    fn refusals_name_their_error_and_change_nothing() {
        let server = Running::start(1);
        server.send("/module/new", vec![s("theremin"), OscType::Int(1)]);
        let reply = server.reply();
        assert_eq!(fail_name(&reply), ("/module/new", FailName::UnknownKind));
        assert_eq!(reply.args[2], s("no module kind has this name"));
        server.send("/module/bogus", vec![]);
        assert_eq!(fail_name(&server.reply()), ("/module/bogus", FailName::UnknownAddress));
        server.send("/module/new", vec![s("vco"), OscType::Bool(true)]);
        assert_eq!(fail_name(&server.reply()), ("/module/new", FailName::WrongArgs));
        server.send("/module/new", vec![s("vco"), OscType::Long(1 << 40)]);
        assert_eq!(fail_name(&server.reply()), ("/module/new", FailName::WrongArgs));
        server.send("/module/free", vec![OscType::Long(5)]);
        let reply = server.reply();
        assert_eq!(fail_name(&reply), ("/module/free", FailName::NoSuchModule));
        assert_eq!(reply.args[2], s("no module with id 5"));
        server.send("/module/new", vec![s("vco"), OscType::Double(f64::NAN)]);
        assert_eq!(fail_name(&server.reply()), ("/module/new", FailName::NotFinite));
        server.send("/status", vec![OscType::Int(1)]);
        assert_eq!(fail_name(&server.reply()), ("/status", FailName::WrongArgs));
        assert!(server.engine.sent().is_empty());
        assert_eq!(server.ledger.lock().unwrap().modules(), 0);
    }

    #[test]
    fn a_bundle_applies_together_or_not_at_all() {
        let server = Running::start(2);
        let voice = |mode: &str| {
            bundle(vec![
                msg("/module/new", vec![s("vco"), OscType::Int(1)]),
                bundle(vec![msg("/module/new", vec![s("vcf"), OscType::Int(2)])]),
                msg("/patch", vec![OscType::Int(1), s("out"), OscType::Int(2), s("in")]),
                msg("/module/set", vec![OscType::Int(2), s("mode"), s(mode)]),
            ])
        };
        server.send_packet(voice("notch"));
        let reply = server.reply();
        assert_eq!(fail_name(&reply), ("/module/set", FailName::BadValue));
        assert_eq!(server.status().modules, 0, "no module was created");
        assert!(server.engine.sent().is_empty());

        server.engine.busy.store(true, Ordering::Relaxed);
        server.send_packet(voice("bandpass"));
        let reply = server.reply();
        assert_eq!(fail_name(&reply), ("/module/new", FailName::Busy));
        assert_eq!(reply.args[2], s("worker ring full"));
        assert_eq!(server.ledger.lock().unwrap().modules(), 0);

        server.engine.busy.store(false, Ordering::Relaxed);
        server.send_packet(voice("bandpass"));
        let addresses: Vec<OscType> = (0..4).map(|_| server.reply().args[0].clone()).collect();
        assert_eq!(addresses, vec![s("/module/new"), s("/module/new"), s("/patch"), s("/module/set")]);
        assert_eq!(*server.engine.batches.lock().unwrap(), 1, "one bundle, one send_together");
        let sent = server.engine.sent();
        assert!(sent.contains(&(0, Command::Patch { src: 1, out: 0, dst: 2, port: 0 }.into())), "{sent:?}");
        assert_eq!(sent.last(), Some(&(0, Command::Set { id: 2, param: 2, value: 2.0 }.into())));
        let status = server.status();
        assert_eq!((status.modules, status.cables), (2, 1));
    }

    #[test]
    fn malformed_datagrams_are_counted_and_answered_when_their_address_reads() {
        let server = Running::start(1);
        // An address, then a type tag promising an int that is not there.
        server.client.send_to(b"/module/free\0\0\0\0,i\0\0", server.server).unwrap();
        assert_eq!(fail_name(&server.reply()), ("/module/free", FailName::WrongArgs));
        server.client.send_to(b"\x01\x02garbage", server.server).unwrap();
        server.client.send_to(b"", server.server).unwrap();
        assert_eq!(server.status().dropped_datagrams, 3);
        assert!(server.engine.sent().is_empty());
        // The server still works.
        server.send("/module/new", vec![s("noise"), OscType::Int(3)]);
        assert_eq!(server.reply().addr, "/done");
    }

    #[test]
    fn module_stats_names_the_module_its_worker_and_its_share() {
        let server = Running::start(2);
        server.send("/module/new", vec![s("vco"), OscType::Int(1)]);
        server.reply();
        let worker = server.ledger.lock().unwrap().owner(1).unwrap();
        for id in [OscType::Int(1), OscType::Float(1.0)] {
            server.send("/module/stats", vec![id]);
            let reply = server.reply();
            assert_eq!(reply.addr, "/module/stats");
            let [
                OscType::Int(1),
                OscType::String(kind),
                OscType::Int(w),
                OscType::Float(share),
                OscType::Float(mean_ns),
                OscType::Int(blocks),
            ] = &reply.args[..]
            else {
                panic!("{reply:?}")
            };
            assert_eq!((kind.as_str(), *w as usize, *blocks as usize), ("vco", worker, 5 + worker));
            assert!((share - 0.01).abs() < 1e-6 && (mean_ns - 13_333.333).abs() < 0.01, "{share} {mean_ns}");
        }
        server.send("/module/stats", vec![OscType::Int(0)]);
        let output = server.reply();
        assert_eq!(output.args[2], OscType::Int(-1), "the output is on every worker: {output:?}");
        assert_eq!(output.args[3], OscType::Float(0.02), "its times summed over two workers");
        server.send("/module/stats", vec![OscType::Int(2)]);
        assert_eq!(fail_name(&server.reply()), ("/module/stats", FailName::NoSuchModule));
        server.send("/module/stats", vec![OscType::Int(10_000)]);
        assert_eq!(fail_name(&server.reply()), ("/module/stats", FailName::IdOutOfRange));
        server.send("/module/stats", vec![s("1")]);
        assert_eq!(fail_name(&server.reply()), ("/module/stats", FailName::WrongArgs));
    }

    #[test]
    fn a_message_without_type_tags_is_a_message_without_arguments() {
        let server = Running::start(1);
        server.client.send_to(b"/status\0", server.server).unwrap();
        assert_eq!(server.reply().addr, "/status", "an old client's bare /status");
        server.client.send_to(b"/module/free\0\0\0\0", server.server).unwrap();
        let reply = server.reply();
        assert_eq!(fail_name(&reply), ("/module/free", FailName::WrongArgs));
        assert_eq!(server.stats.dropped_datagrams(), 0, "both were answered as messages");
    }

    #[test]
    fn status_reply_has_its_documented_shape() {
        let server = Running::start(3);
        server.send("/module/new", vec![s("vco"), OscType::Int(1)]);
        server.reply();
        server.send("/patch", vec![OscType::Int(1), s("out"), OscType::Int(0), s("in")]);
        server.reply();
        let late = OscTime { seconds: 2_208_988_800 + 1, fractional: 0 }; // 1970, long past
        server.send_packet(OscPacket::Bundle(rosc::OscBundle { timetag: late, content: vec![] }));
        let status = server.status();
        let (allocations, frees) = crate::alloc_count::counted_allocations();
        let workers = (0..3)
            .map(|w| protocol::WorkerStatus {
                pid: 1000 + w,
                core: w,
                modules: u32::from(w == 0),
                load: 0.25 * w as f32,
                late_blocks: 7,
                state: WorkerState::Running,
                block_p50_us: 40.0,
                block_p99_us: 80.0,
                block_max_us: 200.0,
                wake_p50_us: 20.0,
                wake_p99_us: 70.0,
                ..protocol::WorkerStatus::default()
            })
            .collect();
        let expected = Status {
            sample_rate_hz: 48_000,
            block: 64,
            modules: 1,
            cables: 1,
            late_bundles: 1,
            audio_allocations: allocations as u32,
            audio_frees: frees as u32,
            workers,
            ..Status::default()
        };
        assert_eq!(status, expected);
        assert_eq!(server.stats.late_bundles(), 1);
    }

    #[test]
    fn patch_dump_rebuilds_the_patch() {
        let server = Running::start(2);
        for line in ["/module/new vco 1", "/module/set 1 wave sine", "/patch 1 out 0 in"] {
            let (_, request) = synthpool_core::script::parse_line(line, 0.0).unwrap();
            server.ledger.lock().unwrap().submit(&request.unwrap()).unwrap();
        }
        server.send("/patch/dump", vec![]);
        let reply = server.reply();
        let lines = ["/module/new vco 1", "/module/set 1 wave sine", "/patch 1 out 0 in"];
        let mut expected = vec![OscType::Int(1), OscType::Int(1)];
        expected.extend(lines.map(s));
        assert_eq!(reply, OscMessage { addr: "/patch/dump".into(), args: expected });
    }

    #[test]
    fn a_large_dump_comes_in_parts_that_each_fit() {
        let lines: Vec<String> = (0..2000).map(|id| format!("/module/new mixer {id}")).collect();
        let parts = dump_replies(&lines);
        assert!(parts.len() > 1);
        let mut joined = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let bytes = rosc::encoder::encode(&OscPacket::Message(part.clone())).unwrap();
            assert!(bytes.len() <= MAX_REPLY_BYTES, "part {i}: {} bytes", bytes.len());
            assert!(bytes.len() > MAX_REPLY_BYTES - 64 || i == parts.len() - 1, "parts are packed");
            assert_eq!(part.args[..2], [OscType::Int(i as i32 + 1), OscType::Int(parts.len() as i32)]);
            joined.extend(part.args[2..].iter().cloned());
        }
        assert_eq!(joined, lines.iter().map(|l| s(l)).collect::<Vec<_>>());
        assert_eq!(dump_replies(&[]), vec![OscMessage { addr: "/patch/dump".into(), args: vec![OscType::Int(1); 2] }]);
    }

    #[test]
    fn bundles_nested_too_deep_are_refused_before_decoding() {
        let server = Running::start(1);
        let new = msg("/module/new", vec![s("vco"), OscType::Int(1)]);
        let nest = |depth: usize| (1..depth).fold(bundle(vec![new.clone()]), |inner, _| bundle(vec![inner]));
        server.send_packet(nest(5));
        assert_eq!(fail_name(&server.reply()), ("#bundle", FailName::WrongArgs));
        server.send_packet(nest(4));
        assert_eq!(server.reply().addr, "/done");
        // Thousands deep: refused without recursing through rosc.
        let deep = rosc::encoder::encode(&nest(3000)).unwrap();
        assert!(bundle_depth_exceeds(&deep, MAX_BUNDLE_DEPTH));
        assert!(!bundle_depth_exceeds(&rosc::encoder::encode(&nest(4)).unwrap(), MAX_BUNDLE_DEPTH));
    }

    #[test]
    fn timetags_are_counted_late_or_early() {
        let engine = FakeEngine::new(1);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = Server::new(socket, engine, Arc::new(Mutex::new(Ledger::new(1))));
        let now = SystemTime::now();
        let at = |t: SystemTime| OscTime::try_from(t).unwrap();
        server.count_timing(IMMEDIATELY, now);
        server.count_timing(at(now - Duration::from_millis(5)), now);
        server.count_timing(at(now + Duration::from_secs(1)), now);
        server.count_timing(at(now + Duration::from_secs(2)), now);
        assert_eq!((server.stats.late_bundles(), server.stats.early_bundles()), (1, 2));
    }

    fn f(x: f32) -> OscType {
        OscType::Float(x)
    }

    fn i(n: i32) -> OscType {
        OscType::Int(n)
    }

    #[test]
    fn an_address_per_parameter_sets_and_answers_as_module_set_does() {
        let server = Running::start(1);
        server.send("/module/new", vec![s("vco"), i(1)]);
        server.reply();
        server.send("/m/1/freq", vec![f(220.0)]);
        assert_eq!(server.reply(), OscMessage { addr: "/done".into(), args: vec![s("/m/1/freq"), f(220.0)] });
        assert_eq!(server.engine.sent()[1], (0, Command::Set { id: 1, param: 0, value: 220.0 }.into()));
        server.send("/m/1/freq", vec![]);
        assert_eq!(server.reply(), OscMessage { addr: "/m/1/freq".into(), args: vec![f(220.0)] });
        server.send("/m/1/wave", vec![i(3)]);
        server.reply();
        server.send("/m/1/wave", vec![]);
        assert_eq!(server.reply().args, vec![s("sine")], "an enumeration answers by name");
        server.send("/m/1/wave", vec![s("square")]);
        assert_eq!(server.reply().addr, "/done");
        let refused = [
            ("/m/2/freq", vec![f(1.0)], FailName::NoSuchModule),
            ("/m/2/freq", vec![], FailName::NoSuchModule),
            ("/m/1/bogus", vec![f(1.0)], FailName::UnknownParam),
            ("/m/1/bogus", vec![], FailName::UnknownParam),
            ("/m/1/freq", vec![f(f32::NAN)], FailName::NotFinite),
            ("/m/1/wave", vec![s("noise")], FailName::BadValue),
            ("/m/1/freq", vec![f(1.0), f(2.0)], FailName::WrongArgs),
            ("/m/x/freq", vec![f(1.0)], FailName::UnknownAddress),
            ("/m/1/freq/x", vec![f(1.0)], FailName::UnknownAddress),
            ("/m/10000/freq", vec![f(1.0)], FailName::IdOutOfRange),
        ];
        let sent = server.engine.sent().len();
        for (addr, args, name) in refused {
            server.send(addr, args.clone());
            assert_eq!(fail_name(&server.reply()), (addr, name), "{addr} {args:?}");
        }
        assert_eq!(server.engine.sent().len(), sent, "refusals change nothing");
    }

    #[test]
    fn a_mapped_address_drives_its_parameters_until_unmapped_or_freed() {
        let server = Running::start(1);
        for (addr, args) in [
            ("/module/new", vec![s("vco"), i(1)]),
            ("/map", vec![s("/1/fader1"), i(1), s("freq"), f(20.0), f(20_000.0), s("exp")]),
            ("/map", vec![s("/1/fader1"), i(1), s("level")]),
        ] {
            server.send(addr, args);
            assert_eq!(server.reply().addr, "/done", "{addr}");
        }
        server.send("/1/fader1", vec![f(0.5)]);
        assert_eq!(server.reply(), OscMessage { addr: "/done".into(), args: vec![s("/1/fader1"), f(0.5)] });
        let params = server.ledger.lock().unwrap().params(1).unwrap().to_vec();
        // The geometric middle of 20..20000 Hz, to f32's pow.
        assert!((params[0] - 632.455_5).abs() < 0.06 && params[3] == 0.5, "{params:?}");
        assert_eq!(*server.engine.batches.lock().unwrap(), 2, "both parameters in one block");
        server.send("/map/list", vec![]);
        let list = server.reply();
        let lines = [s("/map /1/fader1 1 freq_hz 20 20000 exp"), s("/map /1/fader1 1 level 0 1 lin")];
        assert_eq!(list.args, [vec![i(1), i(1)], lines.to_vec()].concat());
        assert!(server.ledger.lock().unwrap().dump().ends_with(&lines.map(|l| match l {
            OscType::String(l) => l,
            _ => unreachable!(),
        })));

        let refused = [
            ("/map", vec![s("/a"), i(2), s("freq")], FailName::NoSuchModule),
            ("/map", vec![s("/a"), i(1), s("cutoff")], FailName::UnknownParam),
            ("/map", vec![s("/status"), i(1), s("freq")], FailName::BadValue),
            ("/map", vec![s("/a"), i(1), s("freq"), f(0.0), f(1.0), s("exp")], FailName::BadValue),
            ("/map", vec![s("/a"), i(1), s("freq"), f(f32::NAN), f(1.0)], FailName::NotFinite),
            ("/map", vec![s("/a"), i(1)], FailName::WrongArgs),
            ("/unmap", vec![s("/a")], FailName::NoSuchMapping),
            ("/unmap", vec![s("/1/fader1"), i(1), s("pw")], FailName::NoSuchMapping),
            ("/1/fader1", vec![], FailName::WrongArgs),
            ("/1/fader1", vec![f(f32::INFINITY)], FailName::NotFinite),
            ("/1/fader2", vec![f(0.5)], FailName::UnknownAddress),
        ];
        let before = server.ledger.lock().unwrap().dump();
        for (addr, args, name) in refused {
            server.send(addr, args.clone());
            assert_eq!(fail_name(&server.reply()), (addr, name), "{addr} {args:?}");
        }
        assert_eq!(server.ledger.lock().unwrap().dump(), before, "refusals change nothing");

        server.send("/unmap", vec![s("/1/fader1"), i(1), s("level")]);
        assert_eq!(server.reply().addr, "/done");
        assert_eq!(server.ledger.lock().unwrap().mappings().len(), 1);
        server.send("/module/free", vec![i(1)]);
        server.reply();
        assert!(server.ledger.lock().unwrap().mappings().is_empty(), "freed with its module");
    }

    #[test]
    fn a_query_in_a_bundle_answers_after_its_edits_or_refuses_the_bundle() {
        let server = Running::start(1);
        server.send("/module/new", vec![s("vco"), i(1)]);
        server.reply();
        server.send_packet(bundle(vec![msg("/m/1/freq", vec![f(220.0)]), msg("/m/1/freq", vec![])]));
        assert_eq!(server.reply().addr, "/done");
        assert_eq!(server.reply(), OscMessage { addr: "/m/1/freq".into(), args: vec![f(220.0)] });
        server.send_packet(bundle(vec![msg("/patch/clear", vec![]), msg("/m/1/freq_hz", vec![])]));
        assert_eq!(fail_name(&server.reply()), ("/m/1/freq_hz", FailName::NoSuchModule));
        assert_eq!(server.ledger.lock().unwrap().modules(), 1, "the clear did not apply");
    }

    #[test]
    fn a_bundle_may_make_a_module_and_map_it_all_or_none() {
        let server = Running::start(1);
        let voice = |param: &str| {
            bundle(vec![msg("/module/new", vec![s("vco"), i(1)]), msg("/map", vec![s("/x"), i(1), s(param)])])
        };
        server.send_packet(voice("cutoff"));
        assert_eq!(fail_name(&server.reply()), ("/map", FailName::UnknownParam));
        assert_eq!(server.ledger.lock().unwrap().modules(), 0);
        server.send_packet(voice("pw"));
        assert_eq!((server.reply().addr, server.reply().addr), ("/done".into(), "/done".into()));
        assert_eq!(server.ledger.lock().unwrap().mappings().len(), 1);
        server.send_packet(bundle(vec![msg("/map/list", vec![]), msg("/status", vec![])]));
        assert_eq!(fail_name(&server.reply()), ("/map/list", FailName::WrongArgs));
    }

    #[test]
    fn learn_maps_the_next_unknown_address_and_tells_the_learner() {
        let server = Running::start(1);
        server.send("/module/new", vec![s("vco"), i(1)]);
        server.reply();
        server.send("/map/learn", vec![i(1), s("nothing")]);
        assert_eq!(fail_name(&server.reply()), ("/map/learn", FailName::UnknownParam));
        server.send("/map/learn", vec![i(1), s("level"), f(0.0), f(0.5)]);
        assert_eq!(server.reply().addr, "/done");
        let controller = UdpSocket::bind("127.0.0.1:0").unwrap();
        controller.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let fader = rosc::encoder::encode(&msg("/2/rotary", vec![f(0.5)])).unwrap();
        controller.send_to(&fader, server.server).unwrap();
        let mut buf = [0u8; 1024];
        let (n, _) = controller.recv_from(&mut buf).unwrap();
        let reply = match rosc::decoder::decode_udp(&buf[..n]).unwrap().1 {
            OscPacket::Message(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(reply, OscMessage { addr: "/done".into(), args: vec![s("/2/rotary"), f(0.5)] });
        let learned = server.reply();
        let expected = vec![s("/2/rotary"), i(1), s("level"), f(0.0), f(0.5), s("lin")];
        assert_eq!(learned, OscMessage { addr: "/map/learned".into(), args: expected });
        assert_eq!(server.ledger.lock().unwrap().params(1).unwrap()[3], 0.25);
        controller.send_to(&rosc::encoder::encode(&msg("/2/other", vec![f(0.5)])).unwrap(), server.server).unwrap();
        let (n, _) = controller.recv_from(&mut buf).unwrap();
        let OscPacket::Message(reply) = rosc::decoder::decode_udp(&buf[..n]).unwrap().1 else { panic!() };
        assert_eq!(fail_name(&reply), ("/2/other", FailName::UnknownAddress), "one learn, one address");
    }

    #[test]
    fn notify_sends_others_changes_scaled_back_and_not_ones_own() {
        let server = Running::start(1);
        for (addr, args) in [
            ("/module/new", vec![s("vco"), i(1)]),
            ("/map", vec![s("/1/fader1"), i(1), s("freq"), f(20.0), f(20_000.0), s("exp")]),
        ] {
            server.send(addr, args);
            assert_eq!(server.reply().addr, "/done");
        }
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        listener.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let ask = |addr: &str, args: Vec<OscType>| {
            let bytes = rosc::encoder::encode(&msg(addr, args)).unwrap();
            listener.send_to(&bytes, server.server).unwrap();
        };
        let next = || {
            let mut buf = [0u8; 1024];
            let (n, _) = listener.recv_from(&mut buf).unwrap();
            let OscPacket::Message(m) = rosc::decoder::decode_udp(&buf[..n]).unwrap().1 else { panic!() };
            m
        };
        ask("/notify", vec![i(1)]);
        assert_eq!(next(), OscMessage { addr: "/done".into(), args: vec![s("/notify"), i(1)] });
        server.send("/m/1/freq", vec![f(632.455_5)]);
        server.reply();
        let fader = next();
        assert_eq!(fader.addr, "/1/fader1");
        let OscType::Float(x) = fader.args[0] else { panic!("{fader:?}") };
        assert!((x - 0.5).abs() < 1e-5, "{x}");
        assert_eq!(next(), OscMessage { addr: "/m/1/freq_hz".into(), args: vec![f(632.455_5)] });
        // Its own change is not echoed: the next it hears is the other client's.
        ask("/1/fader1", vec![f(1.0)]);
        assert_eq!(next().addr, "/done");
        server.send("/m/1/level", vec![f(0.5)]);
        server.reply();
        assert_eq!(next(), OscMessage { addr: "/m/1/level".into(), args: vec![f(0.5)] });
        ask("/notify", vec![i(0)]);
        assert_eq!(next().addr, "/done");
        ask("/notify", vec![i(2)]);
        assert_eq!(fail_name(&next()), ("/notify", FailName::WrongArgs));
    }

    #[test]
    fn arguments_convert_to_values() {
        assert_eq!(value(&OscType::Double(0.5)), Ok(Value::Float(0.5)));
        assert_eq!(value(&OscType::Double(1e300)), Err(Error::WrongArgs));
        assert!(matches!(value(&OscType::Double(f64::INFINITY)), Ok(Value::Float(x)) if x.is_infinite()));
        assert_eq!(value(&OscType::Long(-7)), Ok(Value::Int(-7)));
        assert_eq!(value(&OscType::Long(i64::from(i32::MAX) + 1)), Err(Error::WrongArgs));
        assert_eq!(value(&OscType::Nil), Err(Error::WrongArgs));
        assert_eq!(value(&OscType::Blob(vec![1])), Err(Error::WrongArgs));
        assert_eq!(readable_address(b"/a/b\0\0\0\0,x"), Some("/a/b"));
        assert_eq!(readable_address(b"a/b\0"), None);
        assert_eq!(readable_address(b"/a b\0"), None);
    }
}
