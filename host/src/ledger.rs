//! The ledger: the patch as the user built it, in ordinary memory, off the audio path.
//!
//! It checks every request against the whole patch (one core [`Topology`] spanning all
//! workers, and each worker's rack capacity through [`Placement`]), keeps every module's
//! parameter values as set, knows which worker owns each module, and turns a request into the
//! commands each worker must apply. It answers `/patch/dump` with script lines that rebuild
//! the patch ([`Ledger::dump`]) and gives the commands that rebuild one worker's rack
//! ([`Ledger::worker_commands`]).
//!
//! A refused request, or a bundle with one refused request, changes nothing. Checking and
//! recording are two steps ([`Ledger::check_bundle`], [`Ledger::commit`]) so that the caller
//! can hand the commands to the workers in between and record them only if they were queued
//! ([`Ledger::submit_with`] does all three).
use crate::mapping::{MapError, MapSpec, Mapping, Mappings};
use crate::placement::{Move, Placement, RACK_DELAYS, RACK_REVERBS, Usage};
use crate::shm::OUTBOX_SLOTS;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use synthpool_core::command::{Command, Error, Limit, LinkEnd, ModuleId, OUTPUT_ID, Request, Value, WorkerCommand};
use synthpool_core::module::{Kind, MAX_PARAMS, ParamSpec};
use synthpool_core::topology::{Cable, MAX_ID, Topology};

/// Cables the whole patch holds, over all workers: two cables for each of the protocol's
/// 10,000 ids and more (each rack's own limit, 8192, is checked by [`Placement`]; this one
/// only bounds the ledger's memory: 231 KiB with the ids).
pub const PATCH_CABLES: usize = 32_768;

/// The whole patch's topology: every id of the protocol (0 ..= [`MAX_ID`]) fits.
pub type PatchTopology = Topology<{ MAX_ID as usize + 1 }, PATCH_CABLES>;

/// Commands for workers: (worker index, command), in the order they must be applied.
pub type Commands = Vec<(usize, WorkerCommand)>;

/// Commands for workers' racks alone (no module moves between workers among them).
type RackCommands = Vec<(usize, Command)>;

/// Rack commands as [`Commands`]' items.
fn for_workers(commands: impl IntoIterator<Item = (usize, Command)>) -> impl Iterator<Item = (usize, WorkerCommand)> {
    commands.into_iter().map(|(worker, command)| (worker, command.into()))
}

pub use crate::shm::LINK_CHANNELS;

/// Ids of the modules that stand for cables between workers: channel `c`'s send is
/// `LINK_ID_BASE + 2c`, its receive `LINK_ID_BASE + 2c + 1`, all above the protocol's ids.
pub const LINK_ID_BASE: ModuleId = MAX_ID + 1;
const _: () = assert!(LINK_ID_BASE as usize + 2 * LINK_CHANNELS < ModuleId::MAX as usize);
// Every worker's rack takes them.
const _: () = assert!(LINK_ID_BASE as usize + 2 * LINK_CHANNELS <= synthpool_core::rack::HostRack::ID_RANGE);

/// The cables between workers that end in one input port: those from one worker share a
/// send, a channel and a receive (each worker sums its share; the port adds the shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkKey {
    /// The module whose input it is.
    pub dst: ModuleId,
    /// The input port.
    pub port: u8,
    /// The worker the cables come from.
    pub from: usize,
}

/// One link: a send on the worker the cables come from, a receive on the port's worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The link channel.
    pub channel: u16,
    /// The worker the receive is on (the port's module's).
    pub to: usize,
}

impl Link {
    /// The id of the send module.
    pub fn send_id(&self) -> ModuleId {
        LINK_ID_BASE + 2 * self.channel
    }

    /// The id of the receive module.
    pub fn receive_id(&self) -> ModuleId {
        LINK_ID_BASE + 2 * self.channel + 1
    }
}

/// Every link of the patch, by the port it ends in and the worker it comes from.
pub type Links = BTreeMap<LinkKey, Link>;

/// The patch: modules, their parameters and owners, cables.
#[derive(Clone, Debug)]
pub struct Ledger {
    // Boxed: 231 KiB of fixed arrays, cloned for each bundle of several requests.
    topology: Box<PatchTopology>,
    /// Values as set (a choice's index for an enumeration), by module, by parameter index.
    params: BTreeMap<ModuleId, [f32; MAX_PARAMS]>,
    placement: Placement,
    /// Counts commits, so a [`Staged`] is committed only to the state it was checked against.
    revision: u64,
    /// Per worker, the next of its outbox slots to hand a moving module over in (turn by
    /// turn, [`OUTBOX_SLOTS`]); shared by the copies bundles are checked on, so a slot handed
    /// out is not handed out again until every other one has been.
    outbox_turns: Arc<Vec<AtomicUsize>>,
    /// The cables between workers, as links (see [`LinkKey`]).
    links: Links,
    /// Where the search for a free link channel starts: channels are handed out in turn, so
    /// one freed in a block is not taken again in the same block while its send fades out.
    next_channel: usize,
    /// Addresses that drive parameters (`/map`): part of the patch, freed with their module.
    mappings: Mappings,
    /// For each module, the revision that last changed its parameters (or made it), so that
    /// feedback looks only at what changed ([`Ledger::changed_since`]).
    stamps: BTreeMap<ModuleId, u64>,
}

/// Most modules of one move whose state is handed over (the rest start afresh): half the
/// outbox, so two moves in a row from one worker use different slots.
pub const HANDOVERS_PER_MOVE: usize = OUTBOX_SLOTS / 2;

/// One checked request, ready to be recorded.
#[derive(Clone, Debug, PartialEq)]
enum Change {
    New {
        id: ModuleId,
        kind: Kind,
        worker: usize,
    },
    Free {
        id: ModuleId,
    },
    Set {
        id: ModuleId,
        param: u8,
        value: f32,
    },
    Patch {
        cable: Cable,
        moved: Option<Move>,
    },
    /// Modules moved to even out the workers' loads ([`Ledger::plan_balance`]).
    Balance {
        moved: Move,
    },
    Unpatch {
        cable: Cable,
    },
    Clear,
    /// The links after the change before this one (see [`Ledger::relink`]).
    Links {
        links: Links,
        next_channel: usize,
    },
}

/// Requests checked by [`Ledger::check_bundle`]: the commands to queue, and what
/// [`Ledger::commit`] records once they are queued.
#[derive(Clone, Debug)]
pub struct Staged {
    changes: Vec<Change>,
    commands: Commands,
    revision: u64,
}

impl Staged {
    /// The commands to queue, all in the same block, each worker's in this order.
    pub fn commands(&self) -> &[(usize, WorkerCommand)] {
        &self.commands
    }
}

/// The ledger changed between [`Ledger::check_bundle`] and [`Ledger::commit`]: nothing was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stale;

/// Why [`Ledger::submit_with`] recorded nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused<E> {
    /// Request `index` (of the bundle) was refused with `error`.
    Invalid {
        /// Index of the refused request in the bundle.
        index: usize,
        /// Why.
        error: Error,
    },
    /// The commands could not be queued; the sender's error.
    Send(E),
}

impl Ledger {
    /// An empty patch (the output module alone) over `workers` workers (0 is taken as 1).
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        let topology = Box::new(PatchTopology::new(workers * RACK_DELAYS, workers * RACK_REVERBS));
        let params = BTreeMap::from([(OUTPUT_ID, Kind::Output.defaults())]);
        let outbox_turns = Arc::new((0..workers).map(|_| AtomicUsize::new(0)).collect());
        Self {
            topology,
            params,
            placement: Placement::new(workers),
            revision: 0,
            outbox_turns,
            links: Links::new(),
            next_channel: 0,
            mappings: Mappings::default(),
            stamps: BTreeMap::from([(OUTPUT_ID, 0)]),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.placement.workers()
    }

    /// Records the workers' measured loads (see [`Placement::set_loads`]), which decide where
    /// new modules go. Not part of the patch: a [`Staged`] stays valid.
    pub fn set_loads(&mut self, loads: &[f32]) {
        self.placement.set_loads(loads);
    }

    /// Checks `requests` as one bundle, in order (each sees the ones before it), changing
    /// nothing.
    ///
    /// # Errors
    /// The index of the first refused request and why (every [`Error`] but `UnknownAddress`
    /// and `WrongArgs`, which parsing gives): then the whole bundle is refused.
    pub fn check_bundle(&self, requests: &[Request<'_>]) -> Result<Staged, (usize, Error)> {
        let mut staged = Staged { changes: Vec::new(), commands: Vec::new(), revision: self.revision };
        if let [request] = requests {
            let (changes, commands) = self.plan(request, None).map_err(|e| (0, e))?;
            staged.changes = changes;
            staged.commands = commands;
            return Ok(staged);
        }
        let mut scratch = self.clone();
        let groups = Groups::of(requests, self);
        for (index, request) in requests.iter().enumerate() {
            let near = match *request {
                Request::New { id, .. } => scratch.worker_near(groups.joined_to(id)),
                _ => None,
            };
            let (changes, commands) = scratch.plan(request, near).map_err(|e| (index, e))?;
            for change in &changes {
                scratch.record(change);
            }
            staged.changes.extend(changes);
            staged.commands.extend(commands);
        }
        Ok(staged)
    }

    /// Records requests checked by [`Ledger::check_bundle`] on this same state.
    ///
    /// # Errors
    /// [`Stale`] when something was committed since they were checked; nothing is recorded.
    pub fn commit(&mut self, staged: Staged) -> Result<(), Stale> {
        if staged.revision != self.revision {
            return Err(Stale);
        }
        for change in &staged.changes {
            self.record(change);
        }
        self.revision += 1;
        Ok(())
    }

    /// Checks `requests` as one bundle, gives their commands to `send`, and records them if
    /// `send` succeeded: all or none.
    ///
    /// # Errors
    /// [`Refused::Invalid`] as [`Ledger::check_bundle`]; [`Refused::Send`] with `send`'s
    /// error. Either way nothing is recorded.
    pub fn submit_with<E>(
        &mut self,
        requests: &[Request<'_>],
        send: impl FnOnce(&[(usize, WorkerCommand)]) -> Result<(), E>,
    ) -> Result<(), Refused<E>> {
        let staged = self.check_bundle(requests).map_err(|(index, error)| Refused::Invalid { index, error })?;
        send(staged.commands()).map_err(Refused::Send)?;
        // Checked against self just above, under the same &mut: cannot be stale.
        let _ = self.commit(staged);
        Ok(())
    }

    /// Checks and records one request at once (no workers to ask: scripts, tests); returns
    /// the commands it makes.
    ///
    /// # Errors
    /// As [`Ledger::check_bundle`]; nothing changed.
    pub fn submit(&mut self, request: &Request<'_>) -> Result<Commands, Error> {
        let (changes, commands) = self.plan(request, None)?;
        for change in &changes {
            self.record(change);
        }
        self.revision += 1;
        Ok(commands)
    }

    /// The whole patch as script lines that rebuild it through a fresh ledger, in order:
    /// `/module/new` for each module (creation order), `/module/set` for each parameter that
    /// differs from its default (the output's included; enumerations by name), `/patch`
    /// for each cable (patch order). Placement is not part of it.
    pub fn dump(&self) -> Vec<String> {
        let modules = self.topology.modules();
        let mut lines: Vec<String> = modules
            .iter()
            .filter(|e| e.id != OUTPUT_ID)
            .map(|e| format!("/module/new {} {}", e.kind.name(), e.id))
            .collect();
        for e in modules {
            let values = self.params.get(&e.id).copied().unwrap_or_else(|| e.kind.defaults());
            for (spec, &value) in e.kind.params().iter().zip(&values) {
                if value != spec.default {
                    lines.push(format!("/module/set {} {} {}", e.id, spec.name, value_text(spec, value)));
                }
            }
        }
        // Feedback cables last, marked `feedback` (a replay keeps the mark even where the
        // cycle the cable closed has since been broken), after the plain ones (acyclic).
        let (plain, feedback): (Vec<&Cable>, Vec<&Cable>) =
            self.topology.cables().iter().partition(|c| !c.is_feedback());
        for c in plain.into_iter().chain(feedback) {
            let port = self.topology.kind(c.dst).and_then(|k| k.input_name(c.input())).unwrap_or("?");
            let out = self.topology.kind(c.src).and_then(|k| k.outputs().get(c.out as usize)).map_or("?", |p| p.name);
            let mark = if c.is_feedback() { " feedback" } else { "" };
            lines.push(format!("/patch {} {out} {} {port}{mark}", c.src, c.dst));
        }
        lines.extend(self.mappings.lines());
        lines
    }

    /// Maps an address to a parameter ([`crate::mapping`]), replacing a mapping of the same
    /// address, module and parameter.
    ///
    /// # Errors
    /// `NoSuchModule` when the mapping's module is gone (it was checked against another
    /// state), [`MapError::Full`]; nothing changed.
    pub fn map(&mut self, mapping: Mapping) -> Result<(), MapError> {
        if self.topology.kind(mapping.id) != Some(mapping.kind) {
            return Err(MapError::Refused(Error::NoSuchModule(mapping.id)));
        }
        self.mappings.add(mapping)?;
        self.revision += 1;
        Ok(())
    }

    /// Removes the mappings of `address` (only the one to module `id`'s parameter named
    /// `param` when given); returns how many.
    ///
    /// # Errors
    /// `NoSuchModule`, `UnknownParam` for a module or parameter named that does not exist,
    /// [`MapError::NoSuchMapping`]; nothing changed.
    pub fn unmap(&mut self, address: &str, which: Option<(i32, &str)>) -> Result<usize, MapError> {
        let which = match which {
            None => None,
            Some((id, param)) => Some(self.param_of(id, param)?),
        };
        let removed = self.mappings.remove(address, which)?;
        self.revision += 1;
        Ok(removed)
    }

    /// The mappings `maps` (address, what it asks) make, checked against the patch as
    /// `requests` (a bundle, checked apart) would leave it: its modules, and room beside the
    /// mappings it keeps (a freed module's go with it). Nothing changes: record them with
    /// [`Ledger::map`] once the requests are.
    ///
    /// # Errors
    /// The index among `maps` of the first refused and why ([`MapSpec::resolve`],
    /// [`MapError::Full`]).
    pub fn check_maps<'s>(
        &self,
        requests: &[Request<'_>],
        maps: impl IntoIterator<Item = (&'s str, &'s MapSpec)>,
    ) -> Result<Vec<Mapping>, (usize, MapError)> {
        let mut maps = maps.into_iter().peekable();
        if maps.peek().is_none() {
            return Ok(Vec::new());
        }
        let mut after = self.mappings.clone();
        for request in requests {
            match *request {
                Request::Free { id } => ModuleId::try_from(id).map_or((), |id| after.free_module(id)),
                Request::Clear => after.clear(),
                _ => {}
            }
        }
        // The last request that made or removed `id` decides; else the patch as it is.
        let kind_of = |id: ModuleId| {
            for request in requests.iter().rev() {
                match *request {
                    Request::New { kind, id: new } if new == i32::from(id) => return Kind::from_name(kind),
                    Request::Free { id: freed } if freed == i32::from(id) => return None,
                    Request::Clear if id != OUTPUT_ID => return None,
                    _ => {}
                }
            }
            self.topology.kind(id)
        };
        let mut out = Vec::new();
        for (k, (address, spec)) in maps.enumerate() {
            let mapping = spec.resolve(address, kind_of).map_err(|e| (k, e))?;
            after.add(mapping.clone()).map_err(|e| (k, e))?;
            out.push(mapping);
        }
        Ok(out)
    }

    /// Module `id`'s parameter called `param` (a name or an alias), checked as
    /// `/module/set` checks it: (the id, the parameter's index).
    ///
    /// # Errors
    /// `IdOutOfRange`, `NoSuchModule`, `UnknownParam`.
    pub fn param_of(&self, id: i32, param: &str) -> Result<(ModuleId, u8), Error> {
        // A value every parameter takes (a choice's first index, clamped elsewhere).
        match self.topology.resolve(&Request::Set { id, param, value: Value::Int(0) })? {
            Command::Set { id, param, .. } => Ok((id, param)),
            _ => Err(Error::UnknownParam),
        }
    }

    /// The patch's mappings.
    pub fn mappings(&self) -> &Mappings {
        &self.mappings
    }

    /// Counts the changes recorded: it moves whenever the patch, a parameter or a mapping
    /// changes (feedback looks for changed values only then).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The modules whose parameters changed (or that were made) after revision `revision`,
    /// as [`Ledger::param_values`] gives them.
    pub fn changed_since(&self, revision: u64) -> impl Iterator<Item = (ModuleId, Kind, &[f32])> {
        self.stamps.iter().filter(move |&(_, &stamp)| stamp > revision).filter_map(|(&id, _)| {
            let kind = self.topology.kind(id)?;
            let values = self.params.get(&id)?;
            Some((id, kind, &values[..kind.params().len()]))
        })
    }

    /// Every module's kind and parameter values (by parameter index), by id, the output
    /// included.
    pub fn param_values(&self) -> impl Iterator<Item = (ModuleId, Kind, &[f32])> {
        self.topology.modules().iter().filter_map(|e| {
            let values = self.params.get(&e.id)?;
            Some((e.id, e.kind, &values[..e.kind.params().len()]))
        })
    }

    /// Commands that rebuild `worker`'s rack from an empty one: the output's parameters, then
    /// its modules (new, every parameter), then its cables.
    pub fn worker_commands(&self, worker: usize) -> Vec<Command> {
        let mut commands = self.set_commands(OUTPUT_ID, Kind::Output);
        let mine: Vec<_> = self.topology.modules().iter().filter(|e| self.owner(e.id) == Some(worker)).collect();
        commands.extend(mine.iter().map(|e| Command::New { id: e.id, kind: e.kind }));
        for e in &mine {
            commands.extend(self.set_commands(e.id, e.kind));
        }
        for c in self.topology.cables().iter().filter(|c| self.placement.cable_worker(c) == Some(worker)) {
            if self.link_of(c).is_none() {
                commands.push(Command::Patch { src: c.src, out: c.out, dst: c.dst, port: c.port });
            }
        }
        for (key, link) in &self.links {
            if key.from == worker {
                commands.extend(self.send_commands(key, link).into_iter().map(|(_, c)| c));
            }
            if link.to == worker {
                commands.extend(self.receive_commands(key, link).into_iter().map(|(_, c)| c));
            }
        }
        commands
    }

    /// The cables between workers, as links.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// What the links take in `worker`'s rack beyond [`Ledger::usage`]: (modules, cables),
    /// a send for each link from it, a receive and its cable for each link to it (the
    /// cables into a send are the user's, counted in `usage`).
    pub fn link_usage(&self, worker: usize) -> (usize, usize) {
        let sends = self.links.keys().filter(|k| k.from == worker).count();
        let receives = self.links.values().filter(|l| l.to == worker).count();
        (sends + receives, receives)
    }

    /// The link cable `c` goes through, if it runs between workers.
    fn link_of(&self, c: &Cable) -> Option<(LinkKey, Link)> {
        let key = self.link_key(c)?;
        self.links.get(&key).map(|&link| (key, link))
    }

    /// The link a cable would go through as the patch is placed now: None for a cable within
    /// one worker, or one to or from the output (on every worker).
    fn link_key(&self, c: &Cable) -> Option<LinkKey> {
        if c.src == OUTPUT_ID || c.dst == OUTPUT_ID {
            return None;
        }
        let (from, to) = (self.owner(c.src)?, self.owner(c.dst)?);
        (from != to).then_some(LinkKey { dst: c.dst, port: c.port, from })
    }

    /// The send of `link` on its worker, with the cables into it.
    fn send_commands(&self, key: &LinkKey, link: &Link) -> RackCommands {
        let send = link.send_id();
        let mut commands = vec![(key.from, Command::Link { id: send, channel: link.channel, end: LinkEnd::Send })];
        for c in self.topology.cables().iter().filter(|c| self.link_key(c) == Some(*key)) {
            commands.push((key.from, Command::Patch { src: c.src, out: c.out, dst: send, port: 0 }));
        }
        commands
    }

    /// The receive of `link` on its worker, with its cable into the port.
    fn receive_commands(&self, key: &LinkKey, link: &Link) -> RackCommands {
        let receive = link.receive_id();
        vec![
            (link.to, Command::Link { id: receive, channel: link.channel, end: LinkEnd::Receive }),
            (link.to, Command::Patch { src: receive, out: 0, dst: key.dst, port: key.port }),
        ]
    }

    /// The commands that take the links from what they are here to what `after` (this
    /// ledger with one change recorded, its links not yet) needs, and the links it then has.
    /// A link no longer needed is freed on both ends (the cables into its send fade out with
    /// it); a new one is made, steady, and the cables into its send fade in; a cable that
    /// now runs through a link another did not is patched into that link's send, and one
    /// that no longer does is unpatched from it. The rack ignores a plain cable whose ends it
    /// does not both hold, so the change's own commands for such a cable do nothing.
    ///
    /// # Errors
    /// `RackFull` when every link channel is taken.
    fn relink(&self, after: &Ledger) -> Result<(Commands, Change), Error> {
        let mut wanted: BTreeMap<LinkKey, Vec<Cable>> = BTreeMap::new();
        for c in after.topology.cables() {
            if let Some(key) = after.link_key(c) {
                wanted.entry(key).or_default().push(*c);
            }
        }
        let mut links = Links::new();
        let mut commands = Commands::new();
        let mut next_channel = self.next_channel;
        let mut taken: Vec<bool> = vec![false; LINK_CHANNELS];
        for link in self.links.values() {
            taken[link.channel as usize] = true;
        }
        for (key, link) in &self.links {
            let to = after.owner(key.dst);
            if wanted.contains_key(key) && to == Some(link.to) {
                links.insert(*key, *link);
            } else {
                commands.push((key.from, Command::Free { id: link.send_id() }.into()));
                commands.push((link.to, Command::Free { id: link.receive_id() }.into()));
            }
        }
        for (key, cables) in &wanted {
            if let Some(link) = links.get(key) {
                // Kept: patch what is new to it, unpatch what left it.
                let send = link.send_id();
                let had = |c: &Cable| self.topology.cables().contains(c) && self.link_key(c) == Some(*key);
                for c in cables.iter().filter(|c| !had(c)) {
                    commands.push((key.from, Command::Patch { src: c.src, out: c.out, dst: send, port: 0 }.into()));
                }
                continue;
            }
            let Some(channel) = (0..LINK_CHANNELS).map(|k| (next_channel + k) % LINK_CHANNELS).find(|&c| !taken[c])
            else {
                return Err(Error::RackFull(Limit::Links));
            };
            taken[channel] = true;
            next_channel = (channel + 1) % LINK_CHANNELS;
            let link = Link { channel: channel as u16, to: after.owner(key.dst).unwrap_or(0) };
            links.insert(*key, link);
            commands.extend(for_workers(after.receive_commands(key, &link)));
            let sends = after.send_commands(key, &link).into_iter().filter(|(_, c)| match c {
                Command::Patch { src, out, .. } => cables.iter().any(|k| k.src == *src && k.out == *out),
                _ => true,
            });
            commands.extend(for_workers(sends));
        }
        // Cables that ran through a kept link and no longer do (unpatched, or now within
        // one worker): out of its send. A freed source module takes its cables with it.
        for c in self.topology.cables() {
            if let Some((key, link)) = self.link_of(c)
                && links.get(&key) == Some(&link)
                && (!after.topology.cables().contains(c) || after.link_key(c) != Some(key))
                && after.topology.kind(c.src).is_some()
            {
                let unpatch = Command::Unpatch { src: c.src, out: c.out, dst: link.send_id(), port: 0 };
                commands.push((key.from, unpatch.into()));
            }
        }
        Ok((commands, Change::Links { links, next_channel }))
    }

    /// Gives up on worker `from` (it keeps crashing): moves each group of its modules, with
    /// their parameters and cables, to another worker, and places nothing there again.
    /// Returns the commands that build them on their new workers (none for `from`, whose
    /// rack the caller empties). The patch itself (`dump`) is unchanged.
    ///
    /// # Errors
    /// `RackFull` when the other workers lack room for them; nothing changed.
    pub fn evacuate(&mut self, from: usize) -> Result<Commands, Error> {
        let moves = self.placement.plan_evacuation(from, self.topology.modules(), self.topology.cables())?;
        let mut commands = Commands::new();
        let mut after = self.clone();
        for m in &moves {
            // The dead worker hands nothing over: its modules start afresh.
            commands.extend(self.move_commands(m, false));
            after.placement.apply_move(m, self.topology.modules(), self.topology.cables());
        }
        let (link_commands, links) = self.relink(&after)?;
        commands.extend(link_commands);
        // The caller empties the dead worker's rack: nothing goes there.
        commands.retain(|&(w, _)| w != from);
        *self = after;
        self.record(&links);
        self.placement.retire(from);
        self.revision += 1;
        Ok(commands)
    }

    /// Moves that even out the workers' loads (given by [`Ledger::set_loads`]; see
    /// [`Placement::plan_balance`], with the busier one at `from` of its budget at least), at most [`HANDOVERS_PER_MOVE`] modules, each handing
    /// its state over so the move cannot be heard; None when the loads are close enough.
    /// Nothing is recorded until [`Ledger::commit`], after the commands are queued.
    pub fn plan_balance(&self, from: f32) -> Option<Staged> {
        let (modules, cables) = (self.topology.modules(), self.topology.cables());
        let moved = self.placement.plan_balance(modules, cables, HANDOVERS_PER_MOVE, from)?;
        let change = Change::Balance { moved };
        let Change::Balance { moved } = &change else { return None };
        let mut commands = self.move_commands(moved, true);
        let mut after = self.clone();
        after.record(&change);
        let (link_commands, links) = self.relink(&after).ok()?;
        commands.extend(link_commands);
        Some(Staged { changes: vec![change, links], commands, revision: self.revision })
    }

    /// Evens out the workers' `loads` when the busier is at `from` of its budget or more (see
    /// [`Ledger::plan_balance`]): gives the moves' commands to `send` and records them if it
    /// succeeded. Returns whether modules moved.
    pub fn balance_with<E>(
        &mut self,
        loads: &[f32],
        from: f32,
        send: impl FnOnce(&[(usize, WorkerCommand)]) -> Result<(), E>,
    ) -> bool {
        self.set_loads(loads);
        let Some(staged) = self.plan_balance(from) else { return false };
        if send(staged.commands()).is_err() {
            return false;
        }
        // Planned on self just above, under the same &mut: cannot be stale.
        self.commit(staged).is_ok()
    }

    /// Modules the user created (the output not counted).
    pub fn modules(&self) -> usize {
        self.topology.modules().len() - 1
    }

    /// Cables.
    pub fn cables(&self) -> usize {
        self.topology.cables().len()
    }

    /// What `worker`'s rack holds (its output not counted).
    pub fn usage(&self, worker: usize) -> Usage {
        self.placement.usage(worker)
    }

    /// The worker that owns module `id`; None for the output (on every worker) or no such module.
    pub fn owner(&self, id: ModuleId) -> Option<usize> {
        self.placement.owner(id)
    }

    /// Module `id`'s parameter values as set, by parameter index; None if no such module.
    pub fn params(&self, id: ModuleId) -> Option<&[f32]> {
        let kind = self.topology.kind(id)?;
        self.params.get(&id).map(|v| &v[..kind.params().len()])
    }

    /// The patch's modules and cables.
    pub fn topology(&self) -> &PatchTopology {
        &self.topology
    }

    /// Who owns what.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The worker holding most of `ids` (ties: the lowest), if any of them is placed.
    fn worker_near(&self, ids: impl Iterator<Item = i32>) -> Option<usize> {
        let mut held = vec![0usize; self.workers()];
        for w in ids.filter_map(|id| ModuleId::try_from(id).ok()).filter_map(|id| self.owner(id)) {
            held[w] += 1;
        }
        let most = held.iter().copied().max().filter(|&n| n > 0)?;
        held.iter().position(|&n| n == most)
    }

    /// Checks `request` and works out its commands, changing nothing. A new module goes to
    /// worker `near` if it has room.
    fn plan(&self, request: &Request<'_>, near: Option<usize>) -> Result<(Vec<Change>, Commands), Error> {
        let (change, mut commands) = self.plan_change(request, near)?;
        if !self.may_relink(&change) {
            return Ok((vec![change], commands));
        }
        let mut after = self.clone();
        after.record(&change);
        let (link_commands, links) = self.relink(&after)?;
        commands.extend(link_commands);
        Ok((vec![change, links], commands))
    }

    /// True when `change` may change which cables run between workers, so the links must be
    /// worked out again (a copy of the ledger, 231 KiB and every module's parameters): only
    /// a move, a cable between workers, or freeing a module a link touches. Most edits (a
    /// new module, a parameter, a cable within a worker) skip it, so their cost does not
    /// grow with the patch.
    fn may_relink(&self, change: &Change) -> bool {
        let linked = |c: &Cable| self.link_of(c).is_some();
        match change {
            Change::Patch { cable, moved } => moved.is_some() || self.placement.crosses(cable),
            Change::Unpatch { cable } => linked(cable),
            Change::Free { id } => {
                self.links.keys().any(|k| k.dst == *id)
                    || self.topology.cables().iter().any(|c| (c.src == *id || c.dst == *id) && linked(c))
            }
            Change::New { .. } | Change::Set { .. } | Change::Clear => false,
            Change::Balance { .. } | Change::Links { .. } => true,
        }
    }

    /// As [`Ledger::plan`], without the links.
    fn plan_change(&self, request: &Request<'_>, near: Option<usize>) -> Result<(Change, Commands), Error> {
        let command = self.topology.resolve(request)?;
        let owner = |id| self.owner(id).unwrap_or(0);
        let every_worker = || (0..self.workers()).map(|w| (w, command.into())).collect();
        let one = |worker: usize| vec![(worker, command.into())];
        Ok(match command {
            Command::New { id, kind } => {
                let worker = self.placement.choose_for_new_near(kind, near)?;
                (Change::New { id, kind, worker }, one(worker))
            }
            Command::Free { id } => (Change::Free { id }, one(owner(id))),
            Command::Set { id, param, value } => {
                let change = Change::Set { id, param, value };
                // The output is on every worker, each scaling its share of the sum.
                if id == OUTPUT_ID { (change, every_worker()) } else { (change, one(owner(id))) }
            }
            Command::Patch { src, out, dst, port } => {
                let cable = Cable { src, out, dst, port };
                let moved = self.placement.plan_patch(self.topology.modules(), self.topology.cables(), cable)?;
                let mut commands = moved.as_ref().map(|m| self.move_commands(m, true)).unwrap_or_default();
                let worker = moved.as_ref().map(|m| m.to).or_else(|| self.placement.cable_worker(&cable));
                commands.push((worker.unwrap_or(0), command.into()));
                (Change::Patch { cable, moved }, commands)
            }
            Command::Unpatch { src, out, dst, port } => {
                let cable = Cable { src, out, dst, port };
                (Change::Unpatch { cable }, one(self.placement.cable_worker(&cable).unwrap_or(0)))
            }
            Command::Clear => (Change::Clear, every_worker()),
            // Made by the ledger itself, never by a topology.
            Command::Link { .. } => {
                return Err(Error::UnknownAddress);
            }
        })
    }

    /// Records a change that [`Ledger::plan`] made from this same state.
    fn record(&mut self, change: &Change) {
        match *change {
            Change::New { id, kind, worker } => {
                self.topology.apply(&Command::New { id, kind });
                self.placement.add_module(id, kind, worker);
                self.params.insert(id, kind.defaults());
                // The revision this change is recorded under (commit counts it after).
                self.stamps.insert(id, self.revision + 1);
            }
            Change::Free { id } => {
                for cable in self.topology.cables().iter().filter(|c| c.src == id || c.dst == id) {
                    self.placement.remove_cable(cable);
                }
                if let Some(kind) = self.topology.kind(id) {
                    self.placement.remove_module(id, kind);
                }
                self.topology.apply(&Command::Free { id });
                self.params.remove(&id);
                self.mappings.free_module(id);
                self.stamps.remove(&id);
            }
            Change::Set { id, param, value } => {
                if let Some(slot) = self.params.get_mut(&id).and_then(|v| v.get_mut(param as usize)) {
                    *slot = value;
                    self.stamps.insert(id, self.revision + 1);
                }
            }
            Change::Patch { cable, ref moved } => {
                if let Some(m) = moved {
                    self.placement.apply_move(m, self.topology.modules(), self.topology.cables());
                }
                self.topology.apply(&Command::Patch {
                    src: cable.src,
                    out: cable.out,
                    dst: cable.dst,
                    port: cable.port,
                });
                self.placement.add_cable(&cable);
            }
            Change::Unpatch { cable } => {
                self.placement.remove_cable(&cable);
                self.topology.apply(&Command::Unpatch {
                    src: cable.src,
                    out: cable.out,
                    dst: cable.dst,
                    port: cable.port,
                });
            }
            Change::Clear => {
                self.topology.apply(&Command::Clear);
                self.placement.clear();
                self.params.retain(|&id, _| id == OUTPUT_ID);
                self.links.clear();
                self.mappings.clear();
                self.stamps.retain(|&id, _| id == OUTPUT_ID);
            }
            Change::Balance { ref moved } => {
                self.placement.apply_move(moved, self.topology.modules(), self.topology.cables());
            }
            Change::Links { ref links, next_channel } => {
                self.links = links.clone();
                self.next_channel = next_channel;
            }
        }
    }

    /// A move, as commands: free on the old workers; new, every parameter, and every cable of
    /// the moving modules on the new one. All land in one block, so each fades out where it
    /// was while it fades in where it goes. With `handover`, each module (up to
    /// [`HANDOVERS_PER_MOVE`]; not delays and reverbs, whose lines stay in their rack's pool)
    /// is first exported from its old worker's rack and last imported into the new one: it
    /// carries on where it was (an envelope's stage, an oscillator's phase) instead of
    /// starting afresh.
    fn move_commands(&self, m: &Move, handover: bool) -> Commands {
        let kinds: Vec<(ModuleId, Kind, usize)> =
            m.modules.iter().filter_map(|&(id, from)| self.topology.kind(id).map(|k| (id, k, from))).collect();
        let handed: Vec<(ModuleId, usize, u16)> = kinds
            .iter()
            .filter(|&&(_, kind, from)| handover && from != m.to && !matches!(kind, Kind::Delay | Kind::Reverb))
            .take(HANDOVERS_PER_MOVE)
            .map(|&(id, _, from)| {
                let turn = self.outbox_turns.get(from).map_or(0, |t| t.fetch_add(1, Ordering::Relaxed));
                (id, from, (turn % OUTBOX_SLOTS) as u16)
            })
            .collect();
        let mut rack = RackCommands::new();
        rack.extend(m.modules.iter().map(|&(id, from)| (from, Command::Free { id })));
        rack.extend(kinds.iter().map(|&(id, kind, _)| (m.to, Command::New { id, kind })));
        for &(id, kind, _) in &kinds {
            rack.extend(self.set_commands(id, kind).into_iter().map(|c| (m.to, c)));
        }
        for c in self.topology.cables().iter().filter(|c| m.moves(c.src) || m.moves(c.dst)) {
            rack.push((m.to, Command::Patch { src: c.src, out: c.out, dst: c.dst, port: c.port }));
        }
        // Each handed module's state is copied out before it is freed there, and in after it
        // is made here.
        let export = |&(id, from, slot): &(ModuleId, usize, u16)| (from, WorkerCommand::Export { id, slot });
        let import =
            |&(id, from, slot): &(ModuleId, usize, u16)| (m.to, WorkerCommand::Import { id, from: from as u8, slot });
        handed.iter().map(export).chain(for_workers(rack)).chain(handed.iter().map(import)).collect()
    }

    /// A `Set` for each of module `id`'s parameters, at its recorded value.
    fn set_commands(&self, id: ModuleId, kind: Kind) -> Vec<Command> {
        let values = self.params.get(&id).copied().unwrap_or_else(|| kind.defaults());
        (0..kind.params().len()).map(|p| Command::Set { id, param: p as u8, value: values[p] }).collect()
    }
}

/// Ids that a bundle's own `/patch` requests join (union-find over the ids as given, valid
/// or not: it only hints where a new module should go, so that a voice sent as one bundle is
/// created on one worker instead of created and then moved).
struct Groups {
    parent: BTreeMap<i32, i32>,
}

impl Groups {
    fn of(requests: &[Request<'_>], ledger: &Ledger) -> Self {
        let mut groups = Groups { parent: BTreeMap::new() };
        // A port with a cable already is a join (a shared bus): what is patched into it
        // may stay on another worker, so it draws no new module to its worker.
        let joins = |dst: i32, in_port: &str| {
            let Ok(dst) = ModuleId::try_from(dst) else { return false };
            let port = ledger.topology.kind(dst).and_then(|k| k.input_index(in_port));
            ledger.topology.cables().iter().any(|c| c.dst == dst && Some(c.port) == port)
        };
        for request in requests {
            // Cables into (or out of) the output join nothing here: see placement.rs.
            if let Request::Patch { src, dst, in_port, .. } = *request
                && src != 0
                && dst != 0
                && !joins(dst, in_port)
            {
                let (a, b) = (groups.root(src), groups.root(dst));
                if a != b {
                    groups.parent.insert(a, b);
                }
            }
        }
        groups
    }

    fn root(&self, mut id: i32) -> i32 {
        while let Some(&up) = self.parent.get(&id) {
            id = up;
        }
        id
    }

    /// The ids joined to `id`, itself excluded.
    fn joined_to(&self, id: i32) -> impl Iterator<Item = i32> + '_ {
        let root = self.root(id);
        let ids = self.parent.keys().chain(self.parent.values());
        let mut seen: Vec<i32> = ids.copied().filter(|&m| m != id && self.root(m) == root).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.into_iter()
    }
}

/// A value as a script reads it back: a choice by name; a number in the shortest form that
/// parses back to the same f32 (Rust's `Display`, which never uses an exponent).
fn value_text(spec: &ParamSpec, value: f32) -> String {
    match spec.choices.get(value as usize) {
        Some(name) if spec.is_choice() => (*name).to_string(),
        _ => format!("{value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synthpool_core::command::Value;
    use synthpool_core::script::parse_line;

    /// Reads a script line and submits it, as a performer would.
    fn line(ledger: &mut Ledger, text: &str) -> Result<Commands, Error> {
        match parse_line(text, 0.0)? {
            (_, Some(request)) => ledger.submit(&request),
            (_, None) => Ok(Vec::new()),
        }
    }

    fn build(ledger: &mut Ledger, script: &str) {
        for text in script.lines() {
            line(ledger, text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    /// Two voices on each of two workers, all patched into one delay: a shared bus.
    fn bus(ledger: &mut Ledger) {
        build(ledger, "/module/new delay 50\n/patch 50 out 0 in");
        for v in 0..4 {
            let (vco, vca) = (1 + 2 * v, 2 + 2 * v);
            // A voice as one bundle lands on one worker, the least loaded (here: fewest modules).
            let bundle = [
                format!("/module/new vco {vco}"),
                format!("/module/new vca {vca}"),
                format!("/patch {vco} out {vca} in"),
                format!("/patch {vca} out 0 in"),
                format!("/patch {vca} out 50 in"),
            ];
            let parsed: Vec<_> = bundle.iter().map(|l| parse_line(l, 0.0).unwrap().1.unwrap()).collect();
            ledger.submit_with(&parsed, |_| Ok::<(), ()>(())).unwrap();
        }
    }

    #[test]
    fn a_cable_keeps_its_sources_output_in_the_dump_and_across_workers() {
        let mut ledger = Ledger::new(2);
        build(&mut ledger, "/module/new reverb 70\n/patch 70 left 0 left\n/patch 70 right 0 right");
        for m in 60..64 {
            line(&mut ledger, &format!("/module/new mixer {m}")).unwrap();
        }
        for m in 60..64 {
            line(&mut ledger, &format!("/patch {m} right 70 in")).unwrap();
        }
        let dump = ledger.dump();
        assert!(dump.contains(&"/patch 70 left 0 left".to_string()), "{dump:?}");
        assert!(dump.contains(&"/patch 63 right 70 in".to_string()), "{dump:?}");
        // The cables between workers are fed into their send from the mixers' `right`.
        assert!(!ledger.links().is_empty(), "the bus is shared across workers");
        for (key, link) in ledger.links() {
            let sends = ledger.worker_commands(key.from);
            let fed =
                sends.iter().filter(|c| matches!(c, Command::Patch { out: 2, dst, .. } if *dst == link.send_id()));
            assert!(fed.count() >= 1, "{sends:?}");
        }
        // The dump replays to the same patch.
        let mut replayed = Ledger::new(2);
        build(&mut replayed, &dump.join("\n"));
        assert_eq!(replayed.dump(), dump);
    }

    #[test]
    fn cables_into_a_shared_port_from_another_worker_go_through_one_link() {
        let mut ledger = Ledger::new(2);
        bus(&mut ledger);
        let delay_on = ledger.owner(50).unwrap();
        let other = 1 - delay_on;
        let remote: Vec<ModuleId> = (1..=4).map(|v| 2 * v).filter(|&vca| ledger.owner(vca) == Some(other)).collect();
        assert!(!remote.is_empty(), "some voices on the other worker");
        let key = LinkKey { dst: 50, port: 0, from: other };
        let link = *ledger.links().get(&key).expect("one link from the other worker");
        assert_eq!(ledger.links().len(), 1);
        assert_eq!(link.to, delay_on);
        assert_eq!(ledger.link_usage(other), (1, 0), "a send");
        assert_eq!(ledger.link_usage(delay_on), (1, 1), "a receive and its cable");
        // The rebuild of each worker holds its end.
        let sends = ledger.worker_commands(other);
        assert!(sends.contains(&Command::Link { id: link.send_id(), channel: link.channel, end: LinkEnd::Send }));
        for &vca in &remote {
            assert!(sends.contains(&Command::Patch { src: vca, out: 0, dst: link.send_id(), port: 0 }));
        }
        let receives = ledger.worker_commands(delay_on);
        assert!(receives.contains(&Command::Patch { src: link.receive_id(), out: 0, dst: 50, port: 0 }));
        // One cable out: unpatched from the send; the link stays for the rest.
        let first = remote[0];
        let commands = line(&mut ledger, &format!("/unpatch {first} out 50 in")).unwrap();
        assert!(
            commands.contains(&(other, Command::Unpatch { src: first, out: 0, dst: link.send_id(), port: 0 }.into())),
            "{commands:?}"
        );
        // The last one out (freed): the link goes, both ends.
        for &vca in &remote[1..] {
            line(&mut ledger, &format!("/module/free {vca}")).unwrap();
        }
        assert!(ledger.links().is_empty(), "{:?}", ledger.links());
        assert_eq!((ledger.link_usage(0), ledger.link_usage(1)), ((0, 0), (0, 0)));
        // Clear forgets links too.
        line(&mut ledger, "/patch/clear").unwrap();
        bus(&mut ledger);
        assert_eq!(ledger.links().len(), 1);
        line(&mut ledger, "/patch/clear").unwrap();
        assert!(ledger.links().is_empty());
    }

    #[test]
    fn a_busy_worker_hands_whole_voices_to_an_idle_one_and_keeps_its_delays() {
        let mut ledger = Ledger::new(2);
        bus(&mut ledger);
        let delay_on = ledger.owner(50).unwrap();
        let other = 1 - delay_on;
        let on = |ledger: &Ledger, w: usize| (1..=8).filter(|&id| ledger.owner(id) == Some(w)).count();
        let before = on(&ledger, delay_on);
        assert!(before >= 2, "voices by the delay");
        // Light loads, or loads within a fifth of each other: nothing moves.
        for loads in [[0.01, 0.001], [0.30, 0.25]] {
            let mut w = [0.0; 2];
            (w[delay_on], w[other]) = (loads[0], loads[1]);
            assert!(!ledger.balance_with(&w, 0.02, |_| Ok::<(), ()>(())), "{loads:?}");
        }
        let mut loads = [0.0; 2];
        (loads[delay_on], loads[other]) = (0.5, 0.1);
        let mut sent = Vec::new();
        assert!(ledger.balance_with(&loads, 0.02, |c| {
            sent = c.to_vec();
            Ok::<(), ()>(())
        }));
        let after = on(&ledger, delay_on);
        assert!(after < before, "voices moved: {before} -> {after}");
        // Whole voices (vco and vca together), with their state handed over; the delay stays.
        for v in 0..4 {
            assert_eq!(ledger.owner(1 + 2 * v), ledger.owner(2 + 2 * v), "voice {v} together");
        }
        assert_eq!(ledger.owner(50), Some(delay_on));
        assert!(sent.iter().any(|(_, c)| matches!(c, WorkerCommand::Import { .. })), "{sent:?}");
        // The moved voices now reach the delay through the link from their new worker.
        let moved_vca = (1..=4).map(|v| 2 * v).find(|&vca| ledger.owner(vca) == Some(other)).unwrap();
        let link = ledger.links()[&LinkKey { dst: 50, port: 0, from: other }];
        assert!(ledger.worker_commands(other).contains(&Command::Patch {
            src: moved_vca,
            out: 0,
            dst: link.send_id(),
            port: 0
        }));
        // A refused send records nothing.
        let owners: Vec<_> = (1..=8).map(|id| ledger.owner(id)).collect();
        ledger.balance_with(&[0.9, 0.9].map(|l: f32| l * if owners[0] == Some(0) { 1.0 } else { 0.1 }), 0.02, |_| {
            Err(())
        });
        assert_eq!((1..=8).map(|id| ledger.owner(id)).collect::<Vec<_>>(), owners);
    }

    const VOICE: &str = "/module/new vco 1
/module/new vcf 2
/module/new vca 3
/module/new adsr 4
/module/new delay 5
/module/set 1 freq 220.5
/module/set 1 wave square
/module/set 2 cutoff_hz 0.1
/module/set 2 q 0.707
/module/set 4 gate 1
/patch 1 out 2 in
/patch 2 out 3 in
/patch 4 out 3 cv
/patch 3 out 5 in
/patch 5 out 0 in
/module/set 0 level 0.5";

    #[test]
    fn every_refusal_changes_nothing() {
        let mut ledger = Ledger::new(1);
        build(&mut ledger, VOICE);
        // The voice has a delay: fill both pools.
        for id in 100..100 + RACK_DELAYS - 1 {
            line(&mut ledger, &format!("/module/new delay {id}")).unwrap();
        }
        for id in 200..200 + RACK_REVERBS {
            line(&mut ledger, &format!("/module/new reverb {id}")).unwrap();
        }
        let before = (ledger.dump(), ledger.usage(0), ledger.worker_commands(0));
        let cases = [
            ("/module/bogus 1", Error::UnknownAddress),
            ("/module/new vco", Error::WrongArgs),
            ("/module/new theremin 20", Error::UnknownKind),
            ("/module/set 1 cutoff_hz 100", Error::UnknownParam),
            ("/patch 1 out 2 nope", Error::UnknownPort),
            ("/patch 1 left 2 in", Error::UnknownPort),
            ("/module/set 1 wave wobble", Error::BadValue),
            ("/module/set 1 wave 1.5", Error::BadValue),
            ("/module/set 1 freq nan", Error::NotFinite),
            ("/module/set 1 freq inf", Error::NotFinite),
            ("/module/new vco 10000", Error::IdOutOfRange { id: 10_000, max: MAX_ID }),
            ("/module/free -1", Error::IdOutOfRange { id: -1, max: MAX_ID }),
            ("/module/new vco 1", Error::IdInUse(1)),
            ("/module/set 99 freq 1", Error::NoSuchModule(99)),
            ("/module/free 99", Error::NoSuchModule(99)),
            ("/module/free 0", Error::OutputModule),
            ("/module/new output 20", Error::OutputModule),
            ("/patch 1 out 2 in", Error::AlreadyPatched),
            ("/unpatch 2 out 1 fm", Error::NoSuchCable),
            ("/module/new delay 20", Error::RackFull(Limit::Delays)),
            ("/module/new reverb 20", Error::RackFull(Limit::Reverbs)),
            // Any other cycle is a feedback cable; one through the output is refused.
            ("/patch 0 out 1 fm", Error::WouldCycle),
        ];
        for (text, error) in cases {
            assert_eq!(line(&mut ledger, text), Err(error), "{text}");
            assert_eq!((ledger.dump(), ledger.usage(0), ledger.worker_commands(0)), before, "{text}");
        }
    }

    #[test]
    fn a_full_worker_rack_is_rack_full_though_the_patch_has_room() {
        let mut ledger = Ledger::new(2);
        for id in 1..=crate::placement::RACK_MODULES as i32 * 2 {
            line(&mut ledger, &format!("/module/new noise {id}")).unwrap();
        }
        let before = ledger.dump();
        assert_eq!(line(&mut ledger, "/module/new noise 9999"), Err(Error::RackFull(Limit::Modules)));
        assert_eq!(ledger.dump(), before);
    }

    #[test]
    fn dump_rebuilds_an_identical_ledger() {
        let mut ledger = Ledger::new(3);
        build(&mut ledger, VOICE);
        build(
            &mut ledger,
            "/module/new lfo 40
/module/new noise 41
/module/set 40 shape sh
/module/set 40 rate 0.001
/module/set 40 depth -1000
/module/set 41 color pink
/module/set 41 seed 16777216
/module/new mixer 42
/module/set 42 gain3 3.999
/patch 41 out 42 in3
/patch 40 out 42 in1
/patch 42 out 0 in
/module/new vco 7
/module/free 7
/unpatch 4 out 3 cv
/module/free 4
/patch 40 out 1 pitch
/patch 3 out 1 fm
/patch 5 out 3 in",
        );
        let script = ledger.dump();
        // The feedback cables, marked, after every plain one.
        let feedback: Vec<&String> = script.iter().filter(|l| l.ends_with(" feedback")).collect();
        assert_eq!(feedback.len(), 2, "{script:#?}");
        assert!(
            script.ends_with(&["/patch 3 out 1 fm feedback".to_string(), "/patch 5 out 3 in feedback".to_string()])
        );
        assert_eq!(ledger.topology().cables().iter().filter(|c| c.is_feedback()).count(), 2);
        assert!(script.contains(&"/module/set 1 wave square".to_string()), "{script:#?}");
        assert!(script.contains(&"/module/set 0 level 0.5".to_string()));
        assert!(!script.iter().any(|l| l.contains(" q ")), "q was set to its default");
        for workers in [1, 2, 5] {
            let mut copy = Ledger::new(workers);
            build(&mut copy, &script.join("\n"));
            assert_eq!(copy.dump(), script, "{workers} workers");
            for id in [0, 1, 2, 3, 5, 40, 41, 42] {
                assert_eq!(copy.params(id), ledger.params(id), "module {id}");
            }
        }
    }

    #[test]
    fn a_feedback_cable_whose_cycle_was_broken_comes_back_feedback() {
        // Found by osc_props: 2 -> 3 closed 3 -> 2 and so is feedback; 3 -> 2 goes, and a
        // replay (where 2 -> 3 closes nothing) keeps the mark because the dump says it.
        let mut ledger = Ledger::new(2);
        build(&mut ledger, "/module/new vcf 2\n/module/new lfo 3\n/patch 3 out 2 cutoff\n/patch 2 out 3 rate_hz");
        line(&mut ledger, "/unpatch 3 out 2 cutoff").unwrap();
        let script = ledger.dump();
        assert_eq!(script.last().map(String::as_str), Some("/patch 2 out 3 rate_hz feedback"));
        let mut copy = Ledger::new(2);
        build(&mut copy, &script.join("\n"));
        assert_eq!(copy.dump(), script);
    }

    #[test]
    fn set_on_the_output_and_clear_go_to_every_worker() {
        let mut ledger = Ledger::new(3);
        build(&mut ledger, "/module/new vco 1\n/module/new vco 2\n/patch 1 out 0 in");
        let set = line(&mut ledger, "/module/set 0 level 0.25").unwrap();
        let expected: Commands = (0..3).map(|w| (w, Command::Set { id: 0, param: 0, value: 0.25 }.into())).collect();
        assert_eq!(set, expected);
        let clear = line(&mut ledger, "/patch/clear").unwrap();
        assert_eq!(clear, (0..3).map(|w| (w, Command::Clear.into())).collect::<Commands>());
        assert_eq!((ledger.modules(), ledger.cables()), (0, 0));
        assert_eq!(ledger.dump(), vec!["/module/set 0 level 0.25".to_string()]);
        assert!((0..3).all(|w| ledger.usage(w) == Usage::default()));
        assert_eq!(ledger.owner(1), None);
    }

    #[test]
    fn a_bundle_is_checked_in_order_and_refused_whole() {
        let mut ledger = Ledger::new(2);
        build(&mut ledger, "/module/new vco 1");
        let before = ledger.dump();
        let good = [
            Request::New { kind: "vcf", id: 2 },
            Request::Patch { src: 1, out_port: "out", dst: 2, in_port: "in", feedback: false },
            Request::Set { id: 2, param: "mode", value: Value::Str("bandpass") },
        ];
        let mut bad = good;
        bad[2] = Request::Set { id: 2, param: "mode", value: Value::Str("notch") };
        assert_eq!(ledger.check_bundle(&bad).map(|_| ()), Err((2, Error::BadValue)));
        assert_eq!(ledger.dump(), before);

        let staged = ledger.check_bundle(&good).unwrap();
        assert_eq!(ledger.dump(), before, "checking records nothing");
        let worker = staged.commands().last().unwrap().0;
        assert!(staged.commands().iter().all(|&(w, _)| w == worker), "the voice ends on one worker");
        let stale = staged.clone();
        ledger.commit(staged).unwrap();
        assert_eq!(ledger.commit(stale), Err(Stale));
        assert_eq!(ledger.params(2).unwrap()[2], 2.0);
        assert_eq!(ledger.cables(), 1);
    }

    #[test]
    fn submit_with_records_only_what_was_sent() {
        let mut ledger = Ledger::new(2);
        let new = [Request::New { kind: "vco", id: 1 }];
        assert_eq!(ledger.submit_with(&new, |_| Err("busy")), Err(Refused::Send("busy")));
        assert_eq!(ledger.modules(), 0);
        let mut sent = Vec::new();
        ledger
            .submit_with::<()>(&new, |c| {
                sent.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
        assert_eq!(sent, vec![(0, Command::New { id: 1, kind: Kind::Vco }.into())]);
        let again = ledger.submit_with(&new, |_| Ok::<(), ()>(()));
        assert_eq!(again, Err(Refused::Invalid { index: 0, error: Error::IdInUse(1) }));
    }

    #[test]
    fn worker_commands_rebuild_each_workers_share() {
        let mut ledger = Ledger::new(2);
        build(&mut ledger, VOICE);
        build(&mut ledger, "/module/new noise 30\n/module/set 30 level 0.5\n/patch 30 out 0 in");
        let (voice, noise) = (ledger.owner(1).unwrap(), ledger.owner(30).unwrap());
        assert_ne!(voice, noise);
        let mut rebuilt = Topology::<256, 512>::new(RACK_DELAYS, RACK_REVERBS);
        let commands = ledger.worker_commands(noise);
        for command in &commands {
            rebuilt.apply(command);
        }
        assert_eq!(rebuilt.modules().iter().map(|e| e.id).collect::<Vec<_>>(), vec![0, 30]);
        assert_eq!(rebuilt.cables(), &[Cable { src: 30, out: 0, dst: 0, port: 0 }]);
        assert!(commands.contains(&Command::Set { id: 0, param: 0, value: 0.5 }));
        assert!(commands.contains(&Command::Set { id: 30, param: 1, value: 0.5 }));
        let voice_commands = ledger.worker_commands(voice);
        let patches = voice_commands.iter().filter(|c| matches!(c, Command::Patch { .. })).count();
        assert_eq!(patches, 5);
    }
}
