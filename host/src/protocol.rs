//! The protocol's vocabulary, written once for the server and for whoever reads its replies
//! (the tests, a client in Rust): the `/status` reply ([`Status`], [`WorkerStatus`],
//! [`WorkerState`]), every name a `/fail` carries ([`FailName`]) and why a request was
//! refused ([`Failure`]), and the two answers to an edit ([`Reply`]: `/done` or `/fail`).
//!
//! PROTOCOL.md describes the same wire; this file's tests check that it lists these figures,
//! with these types, and these names, in this order.
use std::fmt;
use std::str::FromStr;

use rosc::{OscMessage, OscType};
use synthpool_core::command::Error;

use crate::engine::Busy;
use crate::mapping::MapError;
use crate::persist::StoreError;

/// Figures before the per-worker part of `/status` (the last of them is `worker_fields`).
pub const STATUS_HEADER: usize = 13;
/// Figures per worker in `/status` (a later version may send more: read `worker_fields`).
pub const STATUS_WORKER_FIELDS: usize = 16;

/// The header's figures in wire order, as PROTOCOL.md names them (for [`ParseError`]).
const HEADER_NAMES: [&str; STATUS_HEADER] = [
    "sample_rate_hz",
    "block",
    "workers",
    "modules",
    "cables",
    "late_bundles",
    "dropped_datagrams",
    "generation",
    "refused_senders",
    "audio_allocations",
    "audio_frees",
    "restarts",
    "worker_fields",
];

/// A worker's figures in wire order, as PROTOCOL.md names them.
const WORKER_NAMES: [&str; STATUS_WORKER_FIELDS] = [
    "pid",
    "core",
    "modules",
    "load",
    "late_blocks",
    "state",
    "restarts",
    "allocations",
    "frees",
    "block_p50_us",
    "block_p99_us",
    "block_max_us",
    "wake_p50_us",
    "wake_p99_us",
    "late_links",
    "inline",
];

/// The `/status` reply: the server's figures (PROTOCOL.md, "Replies"). On the wire every
/// figure is an int32 but the float32 load and times; a count past `i32::MAX` reads
/// `i32::MAX`, and none is negative, so counts are `u32` here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
    /// Frames per block.
    pub block: u32,
    /// Modules users created (the output module not counted).
    pub modules: u32,
    /// Cables, every one.
    pub cables: u32,
    /// Bundles whose timetag had passed when they arrived (applied at once).
    pub late_bundles: u32,
    /// Datagrams that could not be decoded.
    pub dropped_datagrams: u32,
    /// The generation of the block rendered last: the first block is 1, 0 before it.
    pub generation: u32,
    /// Datagrams dropped because their sender is outside every `--allow` network.
    pub refused_senders: u32,
    /// Heap allocations on the audio thread's block path (0 unless something is wrong).
    pub audio_allocations: u32,
    /// Heap frees on the audio thread's block path (0 unless something is wrong).
    pub audio_frees: u32,
    /// Replacement workers launched, over all workers.
    pub restarts: u32,
    /// Each worker's part, in worker order; the wire's `workers` figure is its length.
    pub workers: Vec<WorkerStatus>,
}

/// One worker's part of a `/status` reply: the engine's
/// [`crate::engine::WorkerStatus`] as sent, with the ledger's count of its modules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStatus {
    /// Process id of its worker process; 0 while it has none (dead, retired).
    pub pid: u32,
    /// CPU core it is pinned to.
    pub core: u32,
    /// Modules users created on it (its output module not counted).
    pub modules: u32,
    /// Median share of the block budget its last 64 blocks took, 0.0..=1.0 (above when late).
    pub load: f32,
    /// Blocks it did not finish by the deadline.
    pub late_blocks: u32,
    /// Where it is in its life.
    pub state: WorkerState,
    /// Replacements launched for its slot.
    pub restarts: u32,
    /// Heap allocations on its render loop (0 unless something is wrong).
    pub allocations: u32,
    /// Heap frees on its render loop (0 unless something is wrong).
    pub frees: u32,
    /// Block time (waking to its output written) over its last 1023 blocks: median, us.
    pub block_p50_us: f32,
    /// Block time, 99th percentile, us.
    pub block_p99_us: f32,
    /// Block time, the longest, us.
    pub block_max_us: f32,
    /// Wake latency (the host's wake-up to the worker starting), same blocks: median, us.
    pub wake_p50_us: f32,
    /// Wake latency, 99th percentile, us.
    pub wake_p99_us: f32,
    /// Blocks in which a worker waiting for a cable's block from this one gave up (it was
    /// late, or dead) and took silence for that input.
    pub late_links: u32,
    /// 1 while the host's audio thread renders this worker's rack itself (its process
    /// stands by; see ARCHITECTURE.md, "The audio thread's own lane"), else 0.
    pub inline: u32,
}

/// A worker's `state` in `/status`: the shared region's state word (`shm::STARTING` ..
/// `shm::RETIRED`), which is what the wire sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WorkerState {
    /// Launched, not ready yet (wire 0).
    #[default]
    Starting,
    /// Rendering its blocks (wire 1).
    Running,
    /// Stopped with the server (wire 2).
    Exited,
    /// Died; a replacement is on its way, `pid` reads 0 (wire 3).
    Dead,
    /// Died 5 times within a second: its modules moved to the other workers (wire 4).
    Retired,
}

impl WorkerState {
    /// The number `/status` sends, 0..=4.
    pub const fn word(self) -> u32 {
        match self {
            WorkerState::Starting => 0,
            WorkerState::Running => 1,
            WorkerState::Exited => 2,
            WorkerState::Dead => 3,
            WorkerState::Retired => 4,
        }
    }

    /// The state sent as `word`; None for a number outside 0..=4.
    pub const fn from_word(word: u32) -> Option<WorkerState> {
        match word {
            0 => Some(WorkerState::Starting),
            1 => Some(WorkerState::Running),
            2 => Some(WorkerState::Exited),
            3 => Some(WorkerState::Dead),
            4 => Some(WorkerState::Retired),
            _ => None,
        }
    }
}

impl Status {
    /// The `/status` reply: the header (`workers` is `self.workers.len()`, `worker_fields`
    /// is [`STATUS_WORKER_FIELDS`]), then each worker's part, in PROTOCOL.md's order.
    pub fn encode(&self) -> OscMessage {
        let mut args = vec![
            int(self.sample_rate_hz),
            int(self.block),
            int(self.workers.len()),
            int(self.modules),
            int(self.cables),
            int(self.late_bundles),
            int(self.dropped_datagrams),
            int(self.generation),
            int(self.refused_senders),
            int(self.audio_allocations),
            int(self.audio_frees),
            int(self.restarts),
            int(STATUS_WORKER_FIELDS),
        ];
        for w in &self.workers {
            args.extend([
                int(w.pid),
                int(w.core),
                int(w.modules),
                OscType::Float(w.load),
                int(w.late_blocks),
                int(w.state.word()),
                int(w.restarts),
                int(w.allocations),
                int(w.frees),
                OscType::Float(w.block_p50_us),
                OscType::Float(w.block_p99_us),
                OscType::Float(w.block_max_us),
                OscType::Float(w.wake_p50_us),
                OscType::Float(w.wake_p99_us),
                int(w.late_links),
                int(w.inline),
            ]);
        }
        debug_assert_eq!(args.len(), STATUS_HEADER + STATUS_WORKER_FIELDS * self.workers.len());
        OscMessage { addr: "/status".into(), args }
    }

    /// Reads a `/status` reply. Figures a later version adds (at the end of the header or of
    /// each worker's part, as PROTOCOL.md promises) are skipped: a worker's part is
    /// `worker_fields` long, and the header is what the workers' parts leave.
    ///
    /// # Errors
    /// [`ParseError::Address`] for another reply; [`ParseError::Arg`] for a figure missing,
    /// of the wrong type, negative, or (`state`) not a state.
    pub fn parse(message: &OscMessage) -> Result<Status, ParseError> {
        if message.addr != "/status" {
            return Err(ParseError::Address(message.addr.clone()));
        }
        let args = &message.args[..];
        let header = |index: usize| count(args, index, HEADER_NAMES[index]);
        let workers = header(2)? as usize;
        let stride = header(STATUS_HEADER - 1)? as usize;
        if stride < STATUS_WORKER_FIELDS {
            return Err(arg_error(args, STATUS_HEADER - 1, "worker_fields"));
        }
        let header_len = stride.checked_mul(workers).and_then(|parts| args.len().checked_sub(parts));
        let Some(header_len) = header_len.filter(|&len| len >= STATUS_HEADER) else {
            return Err(arg_error(args, args.len(), "a worker's figures (fewer than `workers` parts)"));
        };
        let workers = (0..workers)
            .map(|w| {
                let at = header_len + stride * w;
                let field = |k: usize| count(args, at + k, WORKER_NAMES[k]);
                let float = |k: usize| float(args, at + k, WORKER_NAMES[k]);
                let state = field(5)?;
                Ok(WorkerStatus {
                    pid: field(0)?,
                    core: field(1)?,
                    modules: field(2)?,
                    load: float(3)?,
                    late_blocks: field(4)?,
                    state: WorkerState::from_word(state).ok_or_else(|| arg_error(args, at + 5, "state"))?,
                    restarts: field(6)?,
                    allocations: field(7)?,
                    frees: field(8)?,
                    block_p50_us: float(9)?,
                    block_p99_us: float(10)?,
                    block_max_us: float(11)?,
                    wake_p50_us: float(12)?,
                    wake_p99_us: float(13)?,
                    late_links: field(14)?,
                    inline: field(15)?,
                })
            })
            .collect::<Result<Vec<_>, ParseError>>()?;
        Ok(Status {
            sample_rate_hz: header(0)?,
            block: header(1)?,
            modules: header(3)?,
            cables: header(4)?,
            late_bundles: header(5)?,
            dropped_datagrams: header(6)?,
            generation: header(7)?,
            refused_senders: header(8)?,
            audio_allocations: header(9)?,
            audio_frees: header(10)?,
            restarts: header(11)?,
            workers,
        })
    }
}

/// Every name a `/fail` reply carries, in the order of PROTOCOL.md's table ("Errors"): the
/// core's refusals ([`Error`]), then the server's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailName {
    /// The address is not the protocol's.
    UnknownAddress,
    /// Wrong number or types of arguments (and a malformed datagram whose address reads).
    WrongArgs,
    /// No module kind has this name.
    UnknownKind,
    /// The module's kind has no such parameter.
    UnknownParam,
    /// No such input on the destination, or an output other than `out`.
    UnknownPort,
    /// Not one of an enumeration's choices, or not a number.
    BadValue,
    /// NaN or infinity.
    NotFinite,
    /// An id outside 0..=9999.
    IdOutOfRange,
    /// `/module/new` with an id that exists.
    IdInUse,
    /// No module with that id.
    NoSuchModule,
    /// Creating or freeing the output module (id 0).
    OutputModule,
    /// That exact cable exists.
    AlreadyPatched,
    /// `/unpatch` of a cable that does not exist.
    NoSuchCable,
    /// No room for another module, delay, reverb, cable or link.
    RackFull,
    /// The cable would feed a module's output back into itself.
    WouldCycle,
    /// A worker's command ring is full (the command was handed back; try again).
    Busy,
    /// A patch name that is not 1..=64 of `A-Z a-z 0-9 _ -`.
    BadName,
    /// `/patch/load` of a name never saved.
    NoSuchPatch,
    /// `/patch/save` or `/patch/load` on a server without a patches folder.
    NoStore,
    /// The patches folder could not be read or written.
    Io,
    /// `/unmap` of a mapping that does not exist.
    NoSuchMapping,
    /// No room for another mapping or feedback client.
    TooMany,
}

impl FailName {
    /// Every name, in PROTOCOL.md's order.
    pub const ALL: [FailName; 22] = [
        FailName::UnknownAddress,
        FailName::WrongArgs,
        FailName::UnknownKind,
        FailName::UnknownParam,
        FailName::UnknownPort,
        FailName::BadValue,
        FailName::NotFinite,
        FailName::IdOutOfRange,
        FailName::IdInUse,
        FailName::NoSuchModule,
        FailName::OutputModule,
        FailName::AlreadyPatched,
        FailName::NoSuchCable,
        FailName::RackFull,
        FailName::WouldCycle,
        FailName::Busy,
        FailName::BadName,
        FailName::NoSuchPatch,
        FailName::NoStore,
        FailName::Io,
        FailName::NoSuchMapping,
        FailName::TooMany,
    ];

    /// The name as `/fail` sends it (`RackFull`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FailName::UnknownAddress => "UnknownAddress",
            FailName::WrongArgs => "WrongArgs",
            FailName::UnknownKind => "UnknownKind",
            FailName::UnknownParam => "UnknownParam",
            FailName::UnknownPort => "UnknownPort",
            FailName::BadValue => "BadValue",
            FailName::NotFinite => "NotFinite",
            FailName::IdOutOfRange => "IdOutOfRange",
            FailName::IdInUse => "IdInUse",
            FailName::NoSuchModule => "NoSuchModule",
            FailName::OutputModule => "OutputModule",
            FailName::AlreadyPatched => "AlreadyPatched",
            FailName::NoSuchCable => "NoSuchCable",
            FailName::RackFull => "RackFull",
            FailName::WouldCycle => "WouldCycle",
            FailName::Busy => "Busy",
            FailName::BadName => "BadName",
            FailName::NoSuchPatch => "NoSuchPatch",
            FailName::NoStore => "NoStore",
            FailName::Io => "Io",
            FailName::NoSuchMapping => "NoSuchMapping",
            FailName::TooMany => "TooMany",
        }
    }
}

impl From<Error> for FailName {
    /// The name of a core refusal (the same as [`Error::name`], which scripts and the
    /// firmware use without this crate).
    fn from(error: Error) -> FailName {
        match error {
            Error::UnknownAddress => FailName::UnknownAddress,
            Error::WrongArgs => FailName::WrongArgs,
            Error::UnknownKind => FailName::UnknownKind,
            Error::UnknownParam => FailName::UnknownParam,
            Error::UnknownPort => FailName::UnknownPort,
            Error::BadValue => FailName::BadValue,
            Error::NotFinite => FailName::NotFinite,
            Error::IdOutOfRange { .. } => FailName::IdOutOfRange,
            Error::IdInUse(_) => FailName::IdInUse,
            Error::NoSuchModule(_) => FailName::NoSuchModule,
            Error::OutputModule => FailName::OutputModule,
            Error::AlreadyPatched => FailName::AlreadyPatched,
            Error::NoSuchCable => FailName::NoSuchCable,
            Error::RackFull(_) => FailName::RackFull,
            Error::WouldCycle => FailName::WouldCycle,
        }
    }
}

impl FromStr for FailName {
    type Err = UnknownFailName;

    /// The name `text` spells, exactly (case matters, as on the wire).
    fn from_str(text: &str) -> Result<FailName, UnknownFailName> {
        FailName::ALL.into_iter().find(|name| name.as_str() == text).ok_or_else(|| UnknownFailName(text.into()))
    }
}

impl fmt::Display for FailName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no `/fail` name (it holds the string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFailName(pub String);

impl fmt::Display for UnknownFailName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is no /fail name", self.0)
    }
}

impl std::error::Error for UnknownFailName {}

/// Why a request was refused: what its `/fail` says. Nothing changed (but for a
/// `/patch/load` fed in parts that went `Busy`: see PROTOCOL.md).
#[derive(Debug)]
pub enum Failure {
    /// The core refused it: the patch or the protocol does not allow it.
    Refused(Error),
    /// A worker's command ring had no room (the command was handed back; try again).
    Busy,
    /// `/patch/save` or `/patch/load` on a server without a patches folder.
    NoStore,
    /// The patches folder refused it: a bad name, no such patch, or an I/O error.
    Store(StoreError),
    /// A mapping request was refused (`/map`, `/unmap`, `/map/learn`).
    Map(MapError),
    /// `/notify 1` with [`crate::feedback::MAX_CLIENTS`] clients registered already.
    TooManyClients,
}

impl Failure {
    /// Its name, as `/fail` sends it.
    pub fn name(&self) -> FailName {
        match self {
            Failure::Refused(error) => FailName::from(*error),
            Failure::Busy => FailName::Busy,
            Failure::NoStore => FailName::NoStore,
            Failure::Store(StoreError::BadName) => FailName::BadName,
            Failure::Store(StoreError::NoSuchPatch) => FailName::NoSuchPatch,
            Failure::Store(StoreError::Io(_)) => FailName::Io,
            Failure::Map(error) => error.name(),
            Failure::TooManyClients => FailName::TooMany,
        }
    }

    /// A sentence for a performer, with the details (`no module with id 5`).
    pub fn message(&self) -> String {
        match self {
            Failure::Refused(error) => error.to_string(),
            Failure::Busy => "worker ring full".into(),
            Failure::NoStore => "this server keeps no patches".into(),
            Failure::Store(error) => error.to_string(),
            Failure::Map(error) => error.to_string(),
            Failure::TooManyClients => {
                format!("no room for another feedback client ({})", crate::feedback::MAX_CLIENTS)
            }
        }
    }

    /// The reply `/fail <address> <name> <message>`.
    pub fn reply(&self, address: &str) -> OscMessage {
        fail(address, self.name(), &self.message())
    }
}

impl fmt::Display for Failure {
    /// `Name: message`, as the log and the patch loader's problems give it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.message())
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Refused(error)
    }
}

impl From<Busy> for Failure {
    fn from(_: Busy) -> Failure {
        Failure::Busy
    }
}

impl From<MapError> for Failure {
    fn from(error: MapError) -> Failure {
        match error {
            MapError::Refused(error) => Failure::Refused(error),
            other => Failure::Map(other),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Store(error)
    }
}

/// The reply `/fail <address> <name> <message>`, for a message of the request's own
/// (`malformed message`; [`Failure::reply`] gives the usual one).
pub fn fail(address: &str, name: FailName, message: &str) -> OscMessage {
    let args =
        vec![OscType::String(address.into()), OscType::String(name.as_str().into()), OscType::String(message.into())];
    OscMessage { addr: "/fail".into(), args }
}

/// The answer to an edit (every request but `/status`, `/module/stats` and `/patch/dump`,
/// which answer with their own address), read from the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply<'a> {
    /// `/done <address> <args as received>`: checked and queued.
    Done {
        /// The request's address.
        address: &'a str,
        /// Its arguments, as the server received them.
        args: &'a [OscType],
    },
    /// `/fail <address> <name> <message>`: refused.
    Fail {
        /// The refused message's address (`#bundle` for a bundle refused before decoding).
        address: &'a str,
        /// Why, by name.
        name: FailName,
        /// Why, for a performer.
        message: &'a str,
    },
}

impl<'a> Reply<'a> {
    /// Reads a `/done` or `/fail` reply.
    ///
    /// # Errors
    /// [`ParseError::Address`] for another reply; [`ParseError::Arg`] for a `/done` without
    /// its address, or a `/fail` that is not three strings with a known name.
    pub fn parse(message: &'a OscMessage) -> Result<Reply<'a>, ParseError> {
        let args = &message.args[..];
        match message.addr.as_str() {
            "/done" => Ok(Reply::Done { address: string(args, 0, "address")?, args: &args[1..] }),
            "/fail" => {
                let address = string(args, 0, "address")?;
                let name = string(args, 1, "name")?.parse().map_err(|_| arg_error(args, 1, "name"))?;
                let message = string(args, 2, "message")?;
                if args.len() > 3 {
                    return Err(arg_error(args, 3, "nothing after the message"));
                }
                Ok(Reply::Fail { address, name, message })
            }
            other => Err(ParseError::Address(other.into())),
        }
    }

    /// For a `/fail`, the address refused and the name; None for `/done`.
    pub fn failed(&self) -> Option<(&'a str, FailName)> {
        match *self {
            Reply::Fail { address, name, .. } => Some((address, name)),
            Reply::Done { .. } => None,
        }
    }
}

/// A reply that does not read as the one expected.
#[derive(Clone, Debug, PartialEq)]
pub enum ParseError {
    /// It came with this address instead.
    Address(String),
    /// Argument `index` (figure `what`) is missing (`found` None), of the wrong type, or
    /// outside its range.
    Arg {
        /// Its position among the arguments.
        index: usize,
        /// The figure expected there.
        what: &'static str,
        /// What was there.
        found: Option<OscType>,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Address(address) => write!(f, "an unexpected reply {address}"),
            ParseError::Arg { index, what, found: Some(found) } => {
                write!(f, "argument {index} ({what}) reads {found:?}")
            }
            ParseError::Arg { index, what, found: None } => write!(f, "argument {index} ({what}) is missing"),
        }
    }
}

impl std::error::Error for ParseError {}

/// An int32 argument; values beyond its range read as `i32::MAX`.
pub(crate) fn int(n: impl TryInto<i32>) -> OscType {
    OscType::Int(n.try_into().unwrap_or(i32::MAX))
}

fn arg_error(args: &[OscType], index: usize, what: &'static str) -> ParseError {
    ParseError::Arg { index, what, found: args.get(index).cloned() }
}

/// The non-negative int32 at `index`.
fn count(args: &[OscType], index: usize, what: &'static str) -> Result<u32, ParseError> {
    match args.get(index) {
        Some(&OscType::Int(n)) => u32::try_from(n).map_err(|_| arg_error(args, index, what)),
        _ => Err(arg_error(args, index, what)),
    }
}

/// The float32 at `index`.
fn float(args: &[OscType], index: usize, what: &'static str) -> Result<f32, ParseError> {
    match args.get(index) {
        Some(&OscType::Float(x)) => Ok(x),
        _ => Err(arg_error(args, index, what)),
    }
}

/// The string at `index`.
fn string<'a>(args: &'a [OscType], index: usize, what: &'static str) -> Result<&'a str, ParseError> {
    match args.get(index) {
        Some(OscType::String(text)) => Ok(text),
        _ => Err(arg_error(args, index, what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synthpool_core::command::Limit;

    fn two_workers() -> Status {
        let worker = |w: u32| WorkerStatus {
            pid: 1000 + w,
            core: w,
            modules: 3 * w,
            load: 0.25 * w as f32,
            late_blocks: 7,
            state: WorkerState::Running,
            restarts: w,
            allocations: 0,
            frees: 0,
            block_p50_us: 40.0,
            block_p99_us: 80.0,
            block_max_us: 200.0,
            wake_p50_us: 20.0,
            wake_p99_us: 70.0,
            late_links: 2,
            inline: u32::from(w == 0),
        };
        Status {
            sample_rate_hz: 48_000,
            block: 64,
            modules: 3,
            cables: 4,
            late_bundles: 5,
            dropped_datagrams: 6,
            generation: 8,
            refused_senders: 9,
            audio_allocations: 10,
            audio_frees: 11,
            restarts: 1,
            workers: vec![worker(0), worker(1)],
        }
    }

    #[test]
    fn status_goes_on_the_wire_in_protocol_md_order() {
        let i = OscType::Int;
        let mut expected = vec![i(48_000), i(64), i(2), i(3), i(4), i(5), i(6), i(8), i(9), i(10), i(11), i(1), i(16)];
        for w in 0..2 {
            expected.extend([
                i(1000 + w),
                i(w),
                i(3 * w),
                OscType::Float(0.25 * w as f32),
                i(7),
                i(1),
                i(w),
                i(0),
                i(0),
            ]);
            expected.extend([40.0, 80.0, 200.0, 20.0, 70.0].map(OscType::Float));
            expected.extend([i(2), i(i32::from(w == 0))]);
        }
        let message = two_workers().encode();
        assert_eq!((message.addr.as_str(), &message.args), ("/status", &expected));
        assert_eq!(Status::parse(&message), Ok(two_workers()));
    }

    #[test]
    fn status_parse_skips_figures_a_later_version_adds() {
        let mut message = two_workers().encode();
        // One more header figure after `worker_fields`, one more figure per worker.
        let (header, parts) = message.args.split_at(STATUS_HEADER);
        let mut args = header.to_vec();
        args[STATUS_HEADER - 1] = OscType::Int(STATUS_WORKER_FIELDS as i32 + 1);
        args.push(OscType::Int(99));
        for part in parts.chunks(STATUS_WORKER_FIELDS) {
            args.extend_from_slice(part);
            args.push(OscType::String("new".into()));
        }
        message.args = args;
        assert_eq!(Status::parse(&message), Ok(two_workers()));
    }

    #[test]
    fn status_parse_names_what_is_wrong() {
        let good = two_workers().encode();
        let with = |index: usize, arg: OscType| {
            let mut message = good.clone();
            message.args[index] = arg;
            Status::parse(&message)
        };
        let error =
            |index: usize, what: &'static str, found: Option<OscType>| Err(ParseError::Arg { index, what, found });
        assert_eq!(with(7, OscType::Int(-1)), error(7, "generation", Some(OscType::Int(-1))));
        assert_eq!(with(3, OscType::Float(3.0)), error(3, "modules", Some(OscType::Float(3.0))));
        assert_eq!(with(13 + 5, OscType::Int(5)), error(18, "state", Some(OscType::Int(5))));
        assert_eq!(with(13 + 16 + 3, OscType::Int(0)), error(32, "load", Some(OscType::Int(0))));
        assert_eq!(with(12, OscType::Int(15)), error(12, "worker_fields", Some(OscType::Int(15))));
        assert!(
            matches!(with(2, OscType::Int(3)), Err(ParseError::Arg { what, found: None, .. }) if what.contains("worker"))
        );
        let done = OscMessage { addr: "/done".into(), args: vec![] };
        assert_eq!(Status::parse(&done), Err(ParseError::Address("/done".into())));
    }

    #[test]
    fn worker_states_are_the_shared_regions_words() {
        use crate::shm::{DEAD, EXITED, READY, RETIRED, STARTING};
        let words = [(STARTING, WorkerState::Starting), (READY, WorkerState::Running), (EXITED, WorkerState::Exited)];
        for (word, state) in words.into_iter().chain([(DEAD, WorkerState::Dead), (RETIRED, WorkerState::Retired)]) {
            assert_eq!((WorkerState::from_word(word), state.word()), (Some(state), word));
        }
        assert_eq!(WorkerState::from_word(5), None);
    }

    #[test]
    fn fail_names_spell_the_cores_and_read_back() {
        let core = [
            Error::UnknownAddress,
            Error::WrongArgs,
            Error::UnknownKind,
            Error::UnknownParam,
            Error::UnknownPort,
            Error::BadValue,
            Error::NotFinite,
            Error::IdOutOfRange { id: -1, max: 9999 },
            Error::IdInUse(1),
            Error::NoSuchModule(1),
            Error::OutputModule,
            Error::AlreadyPatched,
            Error::NoSuchCable,
            Error::RackFull(Limit::Delays),
            Error::WouldCycle,
        ];
        for error in core {
            assert_eq!(FailName::from(error).as_str(), error.name());
            assert_eq!(Failure::from(error).message(), error.to_string());
        }
        for name in FailName::ALL {
            assert_eq!(name.as_str().parse(), Ok(name));
        }
        assert_eq!("busy".parse::<FailName>(), Err(UnknownFailName("busy".into())));
        let store = [StoreError::BadName, StoreError::NoSuchPatch, StoreError::Io(std::io::ErrorKind::Other.into())];
        let names: Vec<FailName> = store.into_iter().map(|e| Failure::from(e).name()).collect();
        assert_eq!(names, [FailName::BadName, FailName::NoSuchPatch, FailName::Io]);
        assert_eq!(Failure::from(Busy).to_string(), "Busy: worker ring full");
    }

    #[test]
    fn replies_read_back() {
        let refused = Failure::Refused(Error::NoSuchModule(5)).reply("/module/free");
        let reply = Reply::parse(&refused).unwrap();
        let expected =
            Reply::Fail { address: "/module/free", name: FailName::NoSuchModule, message: "no module with id 5" };
        assert_eq!(reply, expected);
        assert_eq!(reply.failed(), Some(("/module/free", FailName::NoSuchModule)));
        let done =
            OscMessage { addr: "/done".into(), args: vec![OscType::String("/module/free".into()), OscType::Int(5)] };
        assert_eq!(Reply::parse(&done), Ok(Reply::Done { address: "/module/free", args: &[OscType::Int(5)] }));
        assert_eq!(Reply::parse(&done).unwrap().failed(), None);
        let mut unknown = refused.clone();
        unknown.args[1] = OscType::String("Gone".into());
        assert!(matches!(Reply::parse(&unknown), Err(ParseError::Arg { index: 1, .. })));
        assert!(matches!(Reply::parse(&two_workers().encode()), Err(ParseError::Address(_))));
    }

    /// The backtick-quoted spans of `text` that list typed figures (`i:pid f:load ...`), as
    /// (type tag, name) pairs.
    fn typed_lists(text: &str) -> Vec<Vec<(char, String)>> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|span| span.starts_with("i:") || span.starts_with("f:"))
            .map(|span| span.split_whitespace().map(|w| (w.as_bytes()[0] as char, w[2..].to_owned())).collect())
            .collect()
    }

    #[test]
    fn protocol_md_lists_the_status_figures_and_fail_names_in_order() {
        let doc = include_str!("../../PROTOCOL.md");
        let start = doc.find("- `/status`:").expect("PROTOCOL.md describes /status");
        let end = start + doc[start..].find("\n- ").expect("the /status item ends");
        let status = &doc[start..end];
        assert!(status.contains(&format!("{STATUS_HEADER} figures")), "{status}");
        assert!(status.contains(&format!("({STATUS_WORKER_FIELDS})")), "{status}");
        let wire: Vec<char> = two_workers()
            .encode()
            .args
            .iter()
            .map(|a| match a {
                OscType::Int(_) => 'i',
                OscType::Float(_) => 'f',
                other => panic!("{other:?}"),
            })
            .collect();
        let header: Vec<(char, String)> =
            wire[..STATUS_HEADER].iter().copied().zip(HEADER_NAMES.map(String::from)).collect();
        let worker = wire[STATUS_HEADER..STATUS_HEADER + STATUS_WORKER_FIELDS].iter().copied();
        let worker: Vec<(char, String)> = worker.zip(WORKER_NAMES.map(String::from)).collect();
        assert_eq!(typed_lists(status), [header, worker]);

        let errors = &doc[doc.find("## Errors").expect("an Errors section")..];
        let errors = &errors[..errors[3..].find("\n## ").map_or(errors.len(), |end| end + 3)];
        let table: Vec<&str> = errors
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .map(|rest| rest.split('`').next().unwrap_or(""))
            .collect();
        assert_eq!(table, FailName::ALL.map(FailName::as_str));
    }
}
