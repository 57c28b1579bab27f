//! The patch as the user sees it: which ids hold which kinds, which cables exist.
//!
//! A `Topology` checks every [`Request`] before anything reaches the audio side and resolves
//! its names into a [`Command`]. It is small (no DSP state) and `Clone`, so a caller can
//! check a whole bundle on a copy and keep the copy only if every request passed.
use crate::command::{Command, Error, Limit, ModuleId, OUTPUT_ID, Request, Value};
use crate::module::{Kind, ParamSpec};
use heapless::Vec;

/// Largest module id the protocol accepts (ids need not be dense: 101, 102, ... is fine).
pub const MAX_ID: ModuleId = 9_999;

/// Bit of [`Cable::port`] (and of `Command::Patch`'s and `Command::Unpatch`'s `port`) that
/// marks a feedback cable: one that closed a cycle when it was patched, and so carries its
/// source's previous block (64 frames later), as SuperCollider's `InFeedback`. In the port
/// byte rather than a field of its own so that every command, ring word and ledger record
/// that carries a cable carries the mark unchanged (ports are below 128: `MAX_PORTS`).
pub const FEEDBACK: u8 = 0x80;
const _: () = assert!(crate::module::MAX_PORTS < FEEDBACK as usize);

/// A cable from output `out` of `src` to input `port` of `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cable {
    /// Module whose output is taken.
    pub src: ModuleId,
    /// Index into `src`'s kind's outputs (0: `out`).
    pub out: u8,
    /// Module whose input receives it.
    pub dst: ModuleId,
    /// Index into `dst`'s kind's inputs, with [`FEEDBACK`] set for a feedback cable.
    pub port: u8,
}

impl Cable {
    /// The input port's index into `dst`'s kind's inputs (the [`FEEDBACK`] mark taken away).
    pub const fn input(&self) -> u8 {
        self.port & !FEEDBACK
    }

    /// True for a feedback cable: it carries its source's previous block.
    pub const fn is_feedback(&self) -> bool {
        self.port & FEEDBACK != 0
    }
}

/// A module as the topology knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: ModuleId,
    /// Its kind.
    pub kind: Kind,
}

/// Kinds and cables of a patch of at most `MODULES` modules (the output included) and
/// `CABLES` cables, with at most `max_delays` delays and `max_reverbs` reverbs.
#[derive(Clone, Debug)]
pub struct Topology<const MODULES: usize, const CABLES: usize> {
    modules: Vec<Entry, MODULES>,
    cables: Vec<Cable, CABLES>,
    max_delays: usize,
    max_reverbs: usize,
}

impl<const MODULES: usize, const CABLES: usize> Topology<MODULES, CABLES> {
    /// A patch holding only the output module (id 0); pools hold `max_delays` delays and
    /// `max_reverbs` reverbs (the rack's pool sizes).
    pub fn new(max_delays: usize, max_reverbs: usize) -> Self {
        const { assert!(MODULES >= 1, "the output module needs a slot") };
        let mut modules = Vec::new();
        // Capacity is at least 1 (asserted above): this push cannot fail.
        let _ = modules.push(Entry { id: OUTPUT_ID, kind: Kind::Output });
        Self { modules, cables: Vec::new(), max_delays, max_reverbs }
    }

    /// The modules, in the order they were created (the output first).
    pub fn modules(&self) -> &[Entry] {
        &self.modules
    }

    /// The cables, in the order they were patched.
    pub fn cables(&self) -> &[Cable] {
        &self.cables
    }

    /// The kind of module `id`, if it exists.
    pub fn kind(&self, id: ModuleId) -> Option<Kind> {
        self.modules.iter().find(|e| e.id == id).map(|e| e.kind)
    }

    /// Checks `request` against this patch and resolves it into a [`Command`], changing nothing.
    ///
    /// # Errors
    /// Every [`Error`] but `UnknownAddress` and `WrongArgs` (those come from parsing):
    /// `UnknownKind`, `UnknownParam`, `UnknownPort`, `BadValue`, `NotFinite`, `IdOutOfRange`,
    /// `IdInUse`, `NoSuchModule`, `OutputModule`, `AlreadyPatched`, `NoSuchCable`, `RackFull`,
    /// `WouldCycle` (a cycle through the output module: any other cycle is a feedback cable).
    pub fn resolve(&self, request: &Request<'_>) -> Result<Command, Error> {
        match *request {
            Request::New { kind, id } => {
                let kind = Kind::from_name(kind).ok_or(Error::UnknownKind)?;
                let id = check_id(id)?;
                if kind == Kind::Output || id == OUTPUT_ID {
                    return Err(Error::OutputModule);
                }
                if self.kind(id).is_some() {
                    return Err(Error::IdInUse(id));
                }
                if self.modules.is_full() {
                    return Err(Error::RackFull(Limit::Modules));
                }
                match kind {
                    Kind::Delay if self.count(Kind::Delay) >= self.max_delays => {
                        return Err(Error::RackFull(Limit::Delays));
                    }
                    Kind::Reverb if self.count(Kind::Reverb) >= self.max_reverbs => {
                        return Err(Error::RackFull(Limit::Reverbs));
                    }
                    _ => {}
                }
                Ok(Command::New { id, kind })
            }
            Request::Free { id } => {
                let id = self.existing(id)?;
                if id == OUTPUT_ID {
                    return Err(Error::OutputModule);
                }
                Ok(Command::Free { id })
            }
            Request::Set { id, param, value } => {
                let id = self.existing(id)?;
                let kind = self.kind(id).ok_or(Error::NoSuchModule(id))?;
                let index = kind.param_index(param).ok_or(Error::UnknownParam)?;
                let spec = kind.params().get(index as usize).ok_or(Error::UnknownParam)?;
                let value = param_value(spec, value)?;
                Ok(Command::Set { id, param: index, value })
            }
            Request::Patch { src, out_port, dst, in_port, feedback } => {
                let mut cable = self.cable(src, out_port, dst, in_port)?;
                if self.patched(cable).is_some() {
                    return Err(Error::AlreadyPatched);
                }
                if self.cables.is_full() {
                    return Err(Error::RackFull(Limit::Cables));
                }
                // Closing a cycle: a feedback cable (what is not feedback stays acyclic, so
                // the rack can order it); or one asked for (a saved patch keeps its marks,
                // though the cycle a cable closed may since have been broken).
                if feedback || cable.src == cable.dst || self.reaches(cable.dst, cable.src) {
                    // The output's block on each worker is that worker's share of the sum:
                    // fed back, it would not be what is heard. So no cycle runs through the
                    // output (whichever cable closes it), and a feedback cable asked for out
                    // of the output is refused so too.
                    if cable.src == OUTPUT_ID
                        || (self.reaches(cable.dst, OUTPUT_ID) && self.reaches(OUTPUT_ID, cable.src))
                    {
                        return Err(Error::WouldCycle);
                    }
                    cable.port |= FEEDBACK;
                }
                Ok(Command::Patch { src: cable.src, out: cable.out, dst: cable.dst, port: cable.port })
            }
            Request::Unpatch { src, out_port, dst, in_port } => {
                let cable = self.cable(src, out_port, dst, in_port)?;
                let cable = self.patched(cable).ok_or(Error::NoSuchCable)?;
                Ok(Command::Unpatch { src: cable.src, out: cable.out, dst: cable.dst, port: cable.port })
            }
            Request::Clear => Ok(Command::Clear),
        }
    }

    /// Records a command that [`Topology::resolve`] produced from this same state.
    /// A command that does not fit (it was not resolved here) changes nothing.
    pub fn apply(&mut self, command: &Command) {
        match *command {
            Command::New { id, kind } => {
                if self.kind(id).is_none() {
                    let _ = self.modules.push(Entry { id, kind });
                }
            }
            Command::Free { id } => {
                if id != OUTPUT_ID {
                    self.modules.retain(|e| e.id != id);
                    self.cables.retain(|c| c.src != id && c.dst != id);
                }
            }
            Command::Set { .. } | Command::Link { .. } => {}
            Command::Patch { src, out, dst, port } => {
                let cable = Cable { src, out, dst, port };
                if !self.cables.contains(&cable) {
                    let _ = self.cables.push(cable);
                }
            }
            Command::Unpatch { src, out, dst, port } => {
                let cable = Cable { src, out, dst, port };
                self.cables.retain(|c| *c != cable);
            }
            Command::Clear => {
                self.modules.retain(|e| e.id == OUTPUT_ID);
                self.cables.clear();
            }
        }
    }

    /// [`Topology::resolve`], then [`Topology::apply`] when it passed.
    ///
    /// # Errors
    /// As [`Topology::resolve`]; on error nothing changed.
    pub fn submit(&mut self, request: &Request<'_>) -> Result<Command, Error> {
        let command = self.resolve(request)?;
        self.apply(&command);
        Ok(command)
    }

    fn count(&self, kind: Kind) -> usize {
        self.modules.iter().filter(|e| e.kind == kind).count()
    }

    fn existing(&self, id: i32) -> Result<ModuleId, Error> {
        let id = check_id(id)?;
        match self.kind(id) {
            Some(_) => Ok(id),
            None => Err(Error::NoSuchModule(id)),
        }
    }

    fn cable(&self, src: i32, out_port: &str, dst: i32, in_port: &str) -> Result<Cable, Error> {
        let src = self.existing(src)?;
        let dst = self.existing(dst)?;
        let src_kind = self.kind(src).ok_or(Error::NoSuchModule(src))?;
        let out = src_kind.output_index(out_port).ok_or(Error::UnknownPort)?;
        let dst_kind = self.kind(dst).ok_or(Error::NoSuchModule(dst))?;
        let port = dst_kind.input_index(in_port).ok_or(Error::UnknownPort)?;
        Ok(Cable { src, out, dst, port })
    }

    /// The patched cable between the ends, output and input of `cable`, feedback or not.
    fn patched(&self, cable: Cable) -> Option<Cable> {
        self.cables
            .iter()
            .find(|c| c.src == cable.src && c.out == cable.out && c.dst == cable.dst && c.input() == cable.input())
            .copied()
    }

    /// True when a path of cables that are not feedback leads from `from` to `to`: a
    /// depth-first walk with a fixed stack, each module visited once.
    fn reaches(&self, from: ModuleId, to: ModuleId) -> bool {
        let mut seen: Vec<ModuleId, MODULES> = Vec::new();
        let mut stack: Vec<ModuleId, MODULES> = Vec::new();
        let _ = stack.push(from);
        let _ = seen.push(from);
        while let Some(at) = stack.pop() {
            if at == to {
                return true;
            }
            for cable in self.cables.iter().filter(|c| c.src == at && !c.is_feedback()) {
                // Each module enters `seen` (and `stack`) at most once, and there are at most
                // MODULES modules: neither push can overflow.
                if !seen.contains(&cable.dst) {
                    let _ = seen.push(cable.dst);
                    let _ = stack.push(cable.dst);
                }
            }
        }
        false
    }
}

fn check_id(id: i32) -> Result<ModuleId, Error> {
    if (0..=MAX_ID as i32).contains(&id) { Ok(id as ModuleId) } else { Err(Error::IdOutOfRange { id, max: MAX_ID }) }
}

/// A user's value for parameter `spec`: finite, and for an enumeration a valid choice, given
/// by name, by whole-number index, or by index written as text.
fn param_value(spec: &ParamSpec, value: Value<'_>) -> Result<f32, Error> {
    let number = match value {
        Value::Float(x) => x,
        Value::Int(i) => i as f32,
        Value::Str(s) => match spec.choices.iter().position(|&c| c == s) {
            Some(index) => return Ok(index as f32),
            None => s.trim().parse::<f32>().map_err(|_| Error::BadValue)?,
        },
    };
    if !number.is_finite() {
        return Err(Error::NotFinite);
    }
    if spec.is_choice() {
        let whole = number as i64 as f32 == number;
        if !whole || number < 0.0 || number > spec.max {
            return Err(Error::BadValue);
        }
    }
    // -0.0 + 0.0 is 0.0: a negative zero sounds as zero, and a patch dump writes it "-0",
    // which a script reads back as the integer 0.
    Ok(number + 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    type T = Topology<8, 8>;

    fn new(t: &mut T, kind: &str, id: i32) -> Result<Command, Error> {
        t.submit(&Request::New { kind, id })
    }

    fn patch(t: &mut T, src: i32, dst: i32, port: &str) -> Result<Command, Error> {
        t.submit(&Request::Patch { src, out_port: "out", dst, in_port: port, feedback: false })
    }

    #[test]
    fn builds_a_voice_and_resolves_names() {
        let mut t = T::new(1, 1);
        assert_eq!(new(&mut t, "vco", 1), Ok(Command::New { id: 1, kind: Kind::Vco }));
        new(&mut t, "vcf", 2).unwrap();
        assert_eq!(patch(&mut t, 1, 2, "in"), Ok(Command::Patch { src: 1, out: 0, dst: 2, port: 0 }));
        assert_eq!(patch(&mut t, 2, 0, "in"), Ok(Command::Patch { src: 2, out: 0, dst: 0, port: 0 }));
        let set = Request::Set { id: 1, param: "freq", value: Value::Int(220) };
        assert_eq!(t.submit(&set), Ok(Command::Set { id: 1, param: 0, value: 220.0 }));
        let wave = Request::Set { id: 1, param: "wave", value: Value::Str("square") };
        assert_eq!(t.submit(&wave), Ok(Command::Set { id: 1, param: 1, value: 1.0 }));
        let mode = Request::Set { id: 2, param: "mode", value: Value::Float(2.0) };
        assert_eq!(t.submit(&mode), Ok(Command::Set { id: 2, param: 2, value: 2.0 }));
        assert_eq!(t.cables().len(), 2);
        let zero = t.submit(&Request::Set { id: 1, param: "level", value: Value::Float(-0.0) });
        assert!(matches!(zero, Ok(Command::Set { value, .. }) if value.is_sign_positive()), "{zero:?}");
    }

    #[test]
    fn every_refusal_names_its_error_and_changes_nothing() {
        let mut t = T::new(1, 0);
        new(&mut t, "vco", 1).unwrap();
        new(&mut t, "vcf", 2).unwrap();
        new(&mut t, "delay", 3).unwrap();
        patch(&mut t, 1, 2, "in").unwrap();
        patch(&mut t, 2, 0, "in").unwrap();
        let before = t.clone();
        let cases: [(Request<'_>, Error); 17] = [
            (Request::Patch { src: 0, out_port: "out", dst: 1, in_port: "fm", feedback: false }, Error::WouldCycle),
            (Request::New { kind: "theremin", id: 5 }, Error::UnknownKind),
            (Request::New { kind: "vco", id: -1 }, Error::IdOutOfRange { id: -1, max: MAX_ID }),
            (Request::New { kind: "vco", id: 10_000 }, Error::IdOutOfRange { id: 10_000, max: MAX_ID }),
            (Request::New { kind: "vco", id: 1 }, Error::IdInUse(1)),
            (Request::New { kind: "output", id: 4 }, Error::OutputModule),
            (Request::New { kind: "vco", id: 0 }, Error::OutputModule),
            (Request::New { kind: "delay", id: 4 }, Error::RackFull(Limit::Delays)),
            (Request::New { kind: "reverb", id: 4 }, Error::RackFull(Limit::Reverbs)),
            (Request::Free { id: 0 }, Error::OutputModule),
            (Request::Free { id: 7 }, Error::NoSuchModule(7)),
            (Request::Set { id: 1, param: "cutoff_hz", value: Value::Float(1.0) }, Error::UnknownParam),
            (Request::Set { id: 1, param: "freq", value: Value::Float(f32::NAN) }, Error::NotFinite),
            (Request::Set { id: 1, param: "wave", value: Value::Str("wobble") }, Error::BadValue),
            (Request::Set { id: 1, param: "wave", value: Value::Float(1.5) }, Error::BadValue),
            (Request::Patch { src: 1, out_port: "out", dst: 2, in_port: "in", feedback: false }, Error::AlreadyPatched),
            (Request::Unpatch { src: 3, out_port: "out", dst: 0, in_port: "in" }, Error::NoSuchCable),
        ];
        for (request, error) in cases {
            assert_eq!(t.submit(&request), Err(error), "{request:?}");
            assert_eq!(t.modules(), before.modules());
            assert_eq!(t.cables(), before.cables());
        }
        assert_eq!(patch(&mut t, 1, 2, "nope"), Err(Error::UnknownPort));
        let bad_out = Request::Patch { src: 1, out_port: "left", dst: 2, in_port: "in", feedback: false };
        assert_eq!(t.submit(&bad_out), Err(Error::UnknownPort));
    }

    #[test]
    fn full_rack_and_full_cables_are_refused() {
        let mut t = T::new(0, 0);
        for id in 1..8 {
            new(&mut t, "vca", id).unwrap();
        }
        assert_eq!(new(&mut t, "vca", 8), Err(Error::RackFull(Limit::Modules)));
        for id in 1..7 {
            patch(&mut t, id, id + 1, "in").unwrap();
        }
        patch(&mut t, 7, 0, "in").unwrap();
        patch(&mut t, 1, 3, "cv").unwrap();
        assert_eq!(t.cables().len(), 8);
        assert_eq!(patch(&mut t, 1, 4, "cv"), Err(Error::RackFull(Limit::Cables)));
    }

    #[test]
    fn free_removes_the_module_and_its_cables_and_frees_the_id() {
        let mut t = T::new(1, 1);
        new(&mut t, "vco", 1).unwrap();
        patch(&mut t, 1, 0, "in").unwrap();
        t.submit(&Request::Free { id: 1 }).unwrap();
        assert!(t.cables().is_empty());
        assert_eq!(t.kind(1), None);
        new(&mut t, "noise", 1).unwrap();
        assert_eq!(t.kind(1), Some(Kind::Noise));
        t.submit(&Request::Clear).unwrap();
        assert_eq!(t.modules(), &[Entry { id: 0, kind: Kind::Output }]);
    }

    #[test]
    fn a_cable_that_closes_a_cycle_is_a_feedback_cable_and_the_rest_stay_acyclic() {
        let mut t = T::new(0, 0);
        for id in 1..=4 {
            new(&mut t, "vca", id).unwrap();
        }
        patch(&mut t, 1, 2, "in").unwrap();
        patch(&mut t, 2, 3, "cv").unwrap();
        patch(&mut t, 3, 4, "in").unwrap();
        let closing = Request::Patch { src: 4, out_port: "out", dst: 1, in_port: "cv", feedback: false };
        assert_eq!(t.submit(&closing), Ok(Command::Patch { src: 4, out: 0, dst: 1, port: 1 | FEEDBACK }));
        assert_eq!(t.submit(&closing), Err(Error::AlreadyPatched));
        assert!(t.cables().iter().filter(|c| c.is_feedback()).eq([&Cable {
            src: 4,
            out: 0,
            dst: 1,
            port: 1 | FEEDBACK
        }]));
        // The feedback cable does not count as a path: 4 -> 2 closes no cycle of plain cables.
        assert_eq!(
            t.submit(&Request::Patch { src: 1, out_port: "out", dst: 3, in_port: "in", feedback: false }),
            Ok(Command::Patch { src: 1, out: 0, dst: 3, port: 0 })
        );
        assert_eq!(patch(&mut t, 4, 0, "in").map(|_| ()), Ok(()));
        // A module into itself, and a cycle out of the output module (each worker's output
        // holds only its share of what is heard: refused).
        let own = Request::Patch { src: 2, out_port: "out", dst: 2, in_port: "cv", feedback: false };
        assert_eq!(t.submit(&own), Ok(Command::Patch { src: 2, out: 0, dst: 2, port: 1 | FEEDBACK }));
        assert_eq!(patch(&mut t, 0, 1, "in"), Err(Error::WouldCycle));
        // Unpatched by its port's name, the mark found by the topology.
        let unpatch = Request::Unpatch { src: 4, out_port: "out", dst: 1, in_port: "cv" };
        assert_eq!(t.submit(&unpatch), Ok(Command::Unpatch { src: 4, out: 0, dst: 1, port: 1 | FEEDBACK }));
        assert!(!t.cables().iter().any(|c| c.src == 4 && c.dst == 1));
        // Asked for, a cable is feedback though it closes no cycle (a saved patch's mark).
        let asked = Request::Patch { src: 3, out_port: "out", dst: 0, in_port: "in", feedback: true };
        assert_eq!(t.submit(&asked), Ok(Command::Patch { src: 3, out: 0, dst: 0, port: FEEDBACK }));
    }

    #[test]
    fn no_cycle_runs_through_the_output_whichever_cable_closes_it() {
        let mut t = T::new(0, 0);
        for id in [1, 2] {
            new(&mut t, "vca", id).unwrap();
        }
        // The output's `out` into 1 first (no cycle), then 1 -> 2 -> the output closes one.
        assert_eq!(patch(&mut t, 0, 1, "in").map(|_| ()), Ok(()));
        assert_eq!(patch(&mut t, 1, 2, "in").map(|_| ()), Ok(()));
        let before = t.cables().len();
        assert_eq!(patch(&mut t, 2, 0, "in"), Err(Error::WouldCycle));
        assert_eq!(t.cables().len(), before, "refused: nothing changed");
        // A cycle beside the output is a feedback cable as ever.
        assert!(
            patch(&mut t, 2, 1, "cv").is_ok_and(|c| matches!(c, Command::Patch { port, .. } if port & FEEDBACK != 0))
        );
    }
}
