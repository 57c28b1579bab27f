//! The command protocol, free of any transport: the host feeds it from OSC, the firmware
//! from a script compiled into its image.
//!
//! A [`Request`] is what a user said, with names (`/module/set 1 freq 220`); the
//! [`crate::topology::Topology`] checks it against the patch and resolves it into a
//! [`Command`], which is small, `Copy`, and holds only indices, so it can cross a ring into
//! the audio side, where applying it cannot fail.
use crate::module::Kind;

/// A module id: its address in the protocol, 0 ..= MODULES - 1; id 0 is the output.
pub type ModuleId = u16;

/// The output module's id.
pub const OUTPUT_ID: ModuleId = 0;

/// A resolved, validated edit of the patch. Applying one on the audio side cannot fail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// Create module `id` of `kind`; it fades in over one block.
    New {
        /// The new module's id.
        id: ModuleId,
        /// What it is.
        kind: Kind,
    },
    /// Fade module `id` out over one block, then remove it and its cables.
    Free {
        /// The module to remove.
        id: ModuleId,
    },
    /// Set parameter `param` of module `id`; the unit glides to it over one block.
    Set {
        /// The module.
        id: ModuleId,
        /// Index into the module kind's [`Kind::params`].
        param: u8,
        /// New value (finite; an enumeration's choice index).
        value: f32,
    },
    /// Connect output `out` of `src` to input `port` of `dst`; the cable fades in over one
    /// block.
    Patch {
        /// Module whose output is taken.
        src: ModuleId,
        /// Index into `src`'s kind's [`Kind::outputs`] (0: `out`).
        out: u8,
        /// Module whose input receives it.
        dst: ModuleId,
        /// Index into `dst`'s kind's [`Kind::inputs`].
        port: u8,
    },
    /// Remove a cable; it fades out over one block first.
    Unpatch {
        /// Module whose output was taken.
        src: ModuleId,
        /// Index into `src`'s kind's [`Kind::outputs`].
        out: u8,
        /// Module whose input received it.
        dst: ModuleId,
        /// Index into `dst`'s kind's [`Kind::inputs`].
        port: u8,
    },
    /// Free every module but the output (each fades out) and every cable.
    Clear,
    /// Create module `id` as one end of a cable between workers, on link channel `channel`:
    /// a [`Kind::Send`] (what is patched into it is published on the channel) or a
    /// [`Kind::Receive`] (its output is the channel's block of the same block). Made by the
    /// host (never by a [`Topology`](crate::topology::Topology)). It starts steady, unfaded:
    /// the cables into the send fade, as the one cable they stand for would.
    Link {
        /// The new module's id (the host's own, above the protocol's ids).
        id: ModuleId,
        /// The channel.
        channel: u16,
        /// Which end.
        end: LinkEnd,
    },
}

/// Which end of a cable between workers a [`Command::Link`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkEnd {
    /// The sending worker's end ([`Kind::Send`]).
    Send,
    /// The receiving worker's end ([`Kind::Receive`]).
    Receive,
}

impl LinkEnd {
    /// The module kind of this end.
    pub const fn kind(self) -> Kind {
        match self {
            LinkEnd::Send => Kind::Send,
            LinkEnd::Receive => Kind::Receive,
        }
    }
}

/// A value as a user gave it: OSC has `f`, `i` and `s` arguments; scripts have the same.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A float.
    Float(f32),
    /// An integer.
    Int(i32),
    /// A string: the name of an enumeration's choice, or a number written as text.
    Str(&'a str),
}

/// What a user asked, before it is checked against the patch. Names are still names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Request<'a> {
    /// `/module/new s:kind i:id`
    New {
        /// Kind name (`vco`).
        kind: &'a str,
        /// Wanted id.
        id: i32,
    },
    /// `/module/free i:id`
    Free {
        /// Module id.
        id: i32,
    },
    /// `/module/set i:id s:param (f|i|s):value`
    Set {
        /// Module id.
        id: i32,
        /// Parameter name (`freq_hz`, or an alias such as `freq`).
        param: &'a str,
        /// The value.
        value: Value<'a>,
    },
    /// `/patch i:src s:out_port i:dst s:in_port [s:feedback]`
    Patch {
        /// Source module id.
        src: i32,
        /// Source output port name (`out`; a stereo unit's `left`, `right`).
        out_port: &'a str,
        /// Destination module id.
        dst: i32,
        /// Destination input port name.
        in_port: &'a str,
        /// True when the request says `feedback`: the cable carries its source's previous
        /// block whether or not it closes a cycle (a saved patch keeps its feedback cables so).
        feedback: bool,
    },
    /// `/unpatch i:src s:out_port i:dst s:in_port`
    Unpatch {
        /// Source module id.
        src: i32,
        /// Source output port name (`out`; a stereo unit's `left`, `right`).
        out_port: &'a str,
        /// Destination module id.
        dst: i32,
        /// Destination input port name.
        in_port: &'a str,
    },
    /// `/patch/clear`
    Clear,
}

impl Request<'_> {
    /// The OSC address this request travels under.
    pub const fn address(&self) -> &'static str {
        match self {
            Request::New { .. } => "/module/new",
            Request::Free { .. } => "/module/free",
            Request::Set { .. } => "/module/set",
            Request::Patch { .. } => "/patch",
            Request::Unpatch { .. } => "/unpatch",
            Request::Clear => "/patch/clear",
        }
    }
}

/// Why a request was refused. A refused request changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such address (`/module/bogus`).
    UnknownAddress,
    /// Wrong number or types of arguments for the address.
    WrongArgs,
    /// No module kind has this name.
    UnknownKind,
    /// The module's kind has no parameter of this name.
    UnknownParam,
    /// The module's kind has no port of this name (outputs are all called `out`).
    UnknownPort,
    /// Not one of an enumeration's choices (by name or index), or not a number.
    BadValue,
    /// A value was NaN or infinite.
    NotFinite,
    /// The id is outside 0 ..= max.
    IdOutOfRange {
        /// The id given.
        id: i32,
        /// The largest id this rack holds.
        max: u16,
    },
    /// A module with this id exists already.
    IdInUse(ModuleId),
    /// No module has this id.
    NoSuchModule(ModuleId),
    /// The output module (id 0) cannot be created or freed.
    OutputModule,
    /// This exact cable exists already.
    AlreadyPatched,
    /// No such cable to remove.
    NoSuchCable,
    /// No room for another module, delay, reverb, cable or link: which one ran out.
    RackFull(Limit),
    /// The cable would close a loop (signal would feed back into itself).
    WouldCycle,
}

impl Error {
    /// The variant's name, as sent in `/fail` replies (`RackFull`).
    pub const fn name(&self) -> &'static str {
        match self {
            Error::UnknownAddress => "UnknownAddress",
            Error::WrongArgs => "WrongArgs",
            Error::UnknownKind => "UnknownKind",
            Error::UnknownParam => "UnknownParam",
            Error::UnknownPort => "UnknownPort",
            Error::BadValue => "BadValue",
            Error::NotFinite => "NotFinite",
            Error::IdOutOfRange { .. } => "IdOutOfRange",
            Error::IdInUse(_) => "IdInUse",
            Error::NoSuchModule(_) => "NoSuchModule",
            Error::OutputModule => "OutputModule",
            Error::AlreadyPatched => "AlreadyPatched",
            Error::NoSuchCable => "NoSuchCable",
            Error::RackFull(_) => "RackFull",
            Error::WouldCycle => "WouldCycle",
        }
    }

    /// A sentence for a performer, without the details carried in the variant.
    pub const fn message(&self) -> &'static str {
        match self {
            Error::UnknownAddress => "no such address",
            Error::WrongArgs => "wrong number or types of arguments",
            Error::UnknownKind => "no module kind has this name",
            Error::UnknownParam => "this module has no parameter of this name",
            Error::UnknownPort => "this module has no port of this name",
            Error::BadValue => "not a valid value for this parameter",
            Error::NotFinite => "value is NaN or infinite",
            Error::IdOutOfRange { .. } => "id out of range",
            Error::IdInUse(_) => "a module with this id exists",
            Error::NoSuchModule(_) => "no module with this id",
            Error::OutputModule => "the output module (id 0) is always there",
            Error::AlreadyPatched => "this cable exists already",
            Error::NoSuchCable => "no such cable",
            Error::RackFull(Limit::Modules) => "no room for another module",
            Error::RackFull(Limit::Cables) => "no room for another cable",
            Error::RackFull(Limit::Delays) => "no room for another delay (each worker has a pool of them)",
            Error::RackFull(Limit::Reverbs) => "no room for another reverb (each worker has a pool of them)",
            Error::RackFull(Limit::Links) => "no room for another cable between workers",
            Error::WouldCycle => "this cable would make a loop",
        }
    }
}

/// The capacity a [`Error::RackFull`] ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Module slots (a rack's, or every worker's).
    Modules,
    /// Cables.
    Cables,
    /// Delays (their lines live in a fixed pool per rack).
    Delays,
    /// Reverbs (likewise).
    Reverbs,
    /// The host's link channels, each carrying cables between two workers.
    Links,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::IdOutOfRange { id, max } => write!(f, "id {id} out of range 0..={max}"),
            Error::IdInUse(id) => write!(f, "id {id} is in use"),
            Error::NoSuchModule(id) => write!(f, "no module with id {id}"),
            other => f.write_str(other.message()),
        }
    }
}

impl Command {
    /// The command as four words (tag, id or src, a, b), the start of a
    /// [`crate::ring::Message`].
    pub fn to_words(&self) -> [u32; 4] {
        match *self {
            Command::New { id, kind } => [1, id as u32, kind as u32, 0],
            Command::Free { id } => [2, id as u32, 0, 0],
            Command::Set { id, param, value } => [3, id as u32, param as u32, value.to_bits()],
            Command::Patch { src, out, dst, port } => [4, src as u32, dst as u32, cable_word(out, port)],
            Command::Unpatch { src, out, dst, port } => [5, src as u32, dst as u32, cable_word(out, port)],
            Command::Clear => [6, 0, 0, 0],
            Command::Link { id, channel, end } => [9, id as u32, channel as u32, end as u32],
        }
    }

    /// Reads [`Command::to_words`] back; None for words no command produces.
    pub fn from_words(words: [u32; 4]) -> Option<Command> {
        let [tag, a, b, c] = words;
        let id = u16::try_from(a).ok();
        Some(match tag {
            1 => Command::New { id: id?, kind: *Kind::ALL.get(b as usize)? },
            2 => Command::Free { id: id? },
            3 => Command::Set { id: id?, param: u8::try_from(b).ok()?, value: f32::from_bits(c) },
            4 => {
                let (out, port) = cable_ports(c)?;
                Command::Patch { src: id?, out, dst: u16::try_from(b).ok()?, port }
            }
            5 => {
                let (out, port) = cable_ports(c)?;
                Command::Unpatch { src: id?, out, dst: u16::try_from(b).ok()?, port }
            }
            6 => Command::Clear,
            9 => Command::Link {
                id: id?,
                channel: u16::try_from(b).ok()?,
                end: match c {
                    0 => LinkEnd::Send,
                    1 => LinkEnd::Receive,
                    _ => return None,
                },
            },
            _ => return None,
        })
    }
}

/// A cable's two port bytes in one word: the input port (with its feedback mark) in the low
/// byte, the output port in the next, so that a mono patch's word is what it always was.
const fn cable_word(out: u8, port: u8) -> u32 {
    (out as u32) << 8 | port as u32
}

/// Reads [`cable_word`] back: (output, input); None for a word it never writes.
fn cable_ports(word: u32) -> Option<(u8, u8)> {
    (word >> 16 == 0).then_some(((word >> 8) as u8, word as u8))
}

/// What the host asks of one worker: a command for its rack, or one end of a module's move
/// between workers. The two ends of a move are the worker's, not the rack's: the state goes
/// through the shared region's outboxes, which a rack alone does not have.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WorkerCommand {
    /// A command for the worker's rack ([`Rack::apply`](crate::rack::Rack::apply)).
    Rack(Command),
    /// Hand module `id`'s state, as it is before this block renders, to another worker: the
    /// worker copies the module into its outbox slot `slot`
    /// ([`Rack::module`](crate::rack::Rack::module)), then the module leaves its rack
    /// ([`Rack::leave`](crate::rack::Rack::leave)). So a module carries on where it moves
    /// instead of starting afresh.
    Export {
        /// The module.
        id: ModuleId,
        /// The outbox slot.
        slot: u16,
    },
    /// Take module `id`'s state from worker `from`'s outbox slot `slot`, exported for this
    /// same block ([`WorkerCommand::Export`]), after this block's other commands: the worker
    /// copies it in ([`Rack::adopt`](crate::rack::Rack::adopt)).
    Import {
        /// The module.
        id: ModuleId,
        /// The worker that exported it.
        from: u8,
        /// Its outbox slot there.
        slot: u16,
    },
}

impl From<Command> for WorkerCommand {
    fn from(command: Command) -> Self {
        WorkerCommand::Rack(command)
    }
}

impl WorkerCommand {
    /// The command as four words: a rack's command as [`Command::to_words`], a move's ends
    /// under tags of their own.
    pub fn to_words(&self) -> [u32; 4] {
        match *self {
            WorkerCommand::Rack(command) => command.to_words(),
            WorkerCommand::Export { id, slot } => [EXPORT_TAG, id as u32, slot as u32, 0],
            WorkerCommand::Import { id, from, slot } => [IMPORT_TAG, id as u32, from as u32, slot as u32],
        }
    }

    /// Reads [`WorkerCommand::to_words`] back; None for words it never writes.
    pub fn from_words(words: [u32; 4]) -> Option<WorkerCommand> {
        let [tag, a, b, c] = words;
        let id = u16::try_from(a).ok();
        Some(match tag {
            EXPORT_TAG => WorkerCommand::Export { id: id?, slot: u16::try_from(b).ok()? },
            IMPORT_TAG => WorkerCommand::Import { id: id?, from: u8::try_from(b).ok()?, slot: u16::try_from(c).ok()? },
            _ => WorkerCommand::Rack(Command::from_words(words)?),
        })
    }
}

/// The word tags of a move's two ends, beside [`Command::to_words`]'s 1 ..= 6 and 9.
const EXPORT_TAG: u32 = 7;
const IMPORT_TAG: u32 = 8;

impl<'a> Request<'a> {
    /// Reads a request from an OSC-style address and arguments (from an OSC message or a
    /// script line). Ids may come as floats holding whole numbers (controllers like TouchOSC
    /// send only floats); names must be strings.
    ///
    /// # Errors
    /// `UnknownAddress` for an address not in the protocol; `WrongArgs` for a wrong count or
    /// type of arguments.
    pub fn parse(address: &str, args: &[Value<'a>]) -> Result<Request<'a>, Error> {
        match address {
            "/module/new" => match args {
                [Value::Str(kind), id] => Ok(Request::New { kind, id: int(id)? }),
                _ => Err(Error::WrongArgs),
            },
            "/module/free" => match args {
                [id] => Ok(Request::Free { id: int(id)? }),
                _ => Err(Error::WrongArgs),
            },
            "/module/set" => match args {
                [id, Value::Str(param), value] => Ok(Request::Set { id: int(id)?, param, value: *value }),
                _ => Err(Error::WrongArgs),
            },
            "/patch" | "/unpatch" => match args {
                [src, Value::Str(out_port), dst, Value::Str(in_port)] => {
                    let (src, dst) = (int(src)?, int(dst)?);
                    Ok(if address == "/patch" {
                        Request::Patch { src, out_port, dst, in_port, feedback: false }
                    } else {
                        Request::Unpatch { src, out_port, dst, in_port }
                    })
                }
                [src, Value::Str(out_port), dst, Value::Str(in_port), Value::Str("feedback")]
                    if address == "/patch" =>
                {
                    Ok(Request::Patch { src: int(src)?, out_port, dst: int(dst)?, in_port, feedback: true })
                }
                _ => Err(Error::WrongArgs),
            },
            "/patch/clear" => match args {
                [] => Ok(Request::Clear),
                _ => Err(Error::WrongArgs),
            },
            _ => Err(Error::UnknownAddress),
        }
    }
}

/// An integer argument: an int, or a float holding a whole number in i32's range.
fn int(value: &Value<'_>) -> Result<i32, Error> {
    // -2^31 ..< 2^31: `as` saturates, so 2^31 would pass the round trip as i32::MAX.
    const RANGE: core::ops::Range<f32> = -2_147_483_648.0..2_147_483_648.0;
    match *value {
        Value::Int(i) => Ok(i),
        Value::Float(x) if RANGE.contains(&x) && x as i32 as f32 == x => Ok(x as i32),
        Value::Float(x) if !x.is_finite() => Err(Error::NotFinite),
        _ => Err(Error::WrongArgs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_survive_the_trip_through_words() {
        let all = [
            Command::New { id: 9999, kind: Kind::Mixer },
            Command::Free { id: 3 },
            Command::Set { id: 7, param: 4, value: -0.25 },
            Command::Patch { src: 1, out: 0, dst: 0, port: 3 },
            Command::Patch { src: 1, out: 2, dst: 0, port: 0x82 },
            Command::Unpatch { src: 2, out: 1, dst: 5, port: 1 },
            Command::Clear,
        ];
        for command in all {
            assert_eq!(Command::from_words(command.to_words()), Some(command));
        }
        assert_eq!(Command::from_words([0; 4]), None);
        assert_eq!(Command::from_words([1, 1, 99, 0]), None);
        assert_eq!(Command::from_words([2, 70_000, 0, 0]), None);
        assert_eq!(Command::from_words([4, 1, 0, 1 << 16]), None);
    }

    #[test]
    fn parses_each_address_and_refuses_wrong_args() {
        let new = Request::parse("/module/new", &[Value::Str("vco"), Value::Int(1)]);
        assert_eq!(new, Ok(Request::New { kind: "vco", id: 1 }));
        let from_float = Request::parse("/module/free", &[Value::Float(3.0)]);
        assert_eq!(from_float, Ok(Request::Free { id: 3 }));
        let set = Request::parse("/module/set", &[Value::Int(1), Value::Str("freq"), Value::Float(220.0)]);
        assert_eq!(set, Ok(Request::Set { id: 1, param: "freq", value: Value::Float(220.0) }));
        let patch = [Value::Int(1), Value::Str("out"), Value::Int(0), Value::Str("in")];
        assert_eq!(
            Request::parse("/patch", &patch),
            Ok(Request::Patch { src: 1, out_port: "out", dst: 0, in_port: "in", feedback: false })
        );
        let marked = [Value::Int(1), Value::Str("out"), Value::Int(2), Value::Str("fm"), Value::Str("feedback")];
        assert_eq!(
            Request::parse("/patch", &marked),
            Ok(Request::Patch { src: 1, out_port: "out", dst: 2, in_port: "fm", feedback: true })
        );
        assert_eq!(Request::parse("/unpatch", &marked), Err(Error::WrongArgs));
        let other = [Value::Int(1), Value::Str("out"), Value::Int(2), Value::Str("fm"), Value::Str("loud")];
        assert_eq!(Request::parse("/patch", &other), Err(Error::WrongArgs));
        assert_eq!(
            Request::parse("/unpatch", &patch),
            Ok(Request::Unpatch { src: 1, out_port: "out", dst: 0, in_port: "in" })
        );
        assert_eq!(Request::parse("/patch/clear", &[]), Ok(Request::Clear));

        assert_eq!(Request::parse("/module/boom", &[]), Err(Error::UnknownAddress));
        assert_eq!(Request::parse("/module/new", &[Value::Int(1), Value::Str("vco")]), Err(Error::WrongArgs));
        assert_eq!(Request::parse("/module/free", &[Value::Float(1.5)]), Err(Error::WrongArgs));
        assert_eq!(Request::parse("/module/free", &[Value::Float(f32::NAN)]), Err(Error::NotFinite));
        assert_eq!(Request::parse("/module/free", &[Value::Float(2_147_483_648.0)]), Err(Error::WrongArgs));
        assert_eq!(
            Request::parse("/module/free", &[Value::Float(-2_147_483_648.0)]),
            Ok(Request::Free { id: i32::MIN })
        );
        assert_eq!(Request::parse("/module/free", &[]), Err(Error::WrongArgs));
        assert_eq!(Request::parse("/patch/clear", &[Value::Int(1)]), Err(Error::WrongArgs));
    }
}
