//! The rack: fixed slots of modules, fixed cables, commands applied to them, blocks rendered.
//!
//! Slots hold modules, pools hold the long buffers of delays and reverbs, and every count is
//! a const generic: the host picks a large rack, the firmware a small one, and neither
//! allocates. Commands are applied between blocks and cannot fail: a [`Command`] was checked
//! by a [`Topology`] first, and one that does not fit is ignored.
//!
//! Beside this file: `index` (module id -> slot), `schedule` (the execution order and where
//! each port reads from) and `fade` (declicking: the one-block ramps of every edit).
use crate::block::{BLOCK, Block, STEREO_SILENCE, StereoBlock};
use crate::command::{Command, Error, LinkEnd, ModuleId, OUTPUT_ID, Request};
use crate::dsp::flush;
use crate::module::{Kind, LANES, MAX_INPUTS, MAX_PARAMS, Module, Pools};
use crate::script::Player;
use crate::topology::{FEEDBACK, MAX_ID, Topology};
use crate::units::delay::Delay;
use crate::units::input;
use crate::units::output::Output;
use crate::units::reverb::Reverb;
use heapless::Vec;

mod fade;
mod index;
mod schedule;

use fade::{Fade, fade_in_place, ramp_to_silence, write_faded};
use index::SlotIndex;
use schedule::{Blocks, Early, PRESUMS, Source, inbound_of, param_means, resolve, sum_ports};

/// Slot of the output module.
const OUTPUT_SLOT: usize = 0;
/// Marks "no module" in `ids` and "free" in the pool owner tables.
const NONE: u16 = u16::MAX;

/// Ids a rack takes by default: the protocol's, 0 ..= [`MAX_ID`].
pub const PROTOCOL_IDS: usize = MAX_ID as usize + 1;

/// Times the rack's modules as it renders ([`Rack::process_timed`]): the host's profiler.
/// The core knows no clock; the caller brings one.
pub trait SlotTimer {
    /// The time now, in any unit that never decreases (the host uses monotonic ns).
    fn now(&mut self) -> u64;
    /// Slot `slot`'s module took `spent` (in [`SlotTimer::now`]'s unit) this block.
    fn charge(&mut self, slot: usize, spent: u64);
}

/// Times nothing, and costs nothing: what [`Rack::process`] renders with.
pub struct Untimed;

impl SlotTimer for Untimed {
    #[inline(always)]
    fn now(&mut self) -> u64 {
        0
    }

    #[inline(always)]
    fn charge(&mut self, _slot: usize, _spent: u64) {}
}

/// Carries the blocks of cables between racks (workers): the host's shared memory, or a
/// test's table. The core knows neither memory nor clocks; the caller brings them.
///
/// In a block, a rack publishes each [`Kind::Send`]'s input as soon as it is rendered and
/// asks for each [`Kind::Receive`]'s block as late as it can: [`Rack::process_linked`] renders
/// first what feeds a send, then what depends on no receive, then the rest.
pub trait Links {
    /// Publishes this block of link channel `channel`.
    fn send(&mut self, channel: u16, block: &Block);
    /// Fills `block` with this block of link channel `channel`; false when it did not come in
    /// time (the rack then takes silence for it).
    fn receive(&mut self, channel: u16, block: &mut Block) -> bool;
}

/// No other rack: sends go nowhere, receives are silent. What [`Rack::process`] renders with.
pub struct Unlinked;

impl Links for Unlinked {
    #[inline(always)]
    fn send(&mut self, _channel: u16, _block: &Block) {}

    #[inline(always)]
    fn receive(&mut self, _channel: u16, _block: &mut Block) -> bool {
        false
    }
}

/// A physical cable, slot to slot.
#[derive(Clone, Copy, Debug)]
struct Wire {
    src: u16,
    /// The source's output: 0 `out` (its block in `outs`), 1 `left`, 2 `right` (in `sides`).
    out: u8,
    dst: u16,
    port: u8,
    fade: Fade,
    /// It closed a cycle ([`crate::topology::FEEDBACK`]): it reads its source's previous
    /// block ([`Rack::process_linked`] keeps it in `previous`) and does not count in the order.
    feedback: bool,
}

/// A rack of `MODULES` slots (slot 0 is the output), `CABLES` cables, `DELAYS` delays of
/// `DELAY_LEN` samples and `REVERBS` reverbs of `COMB_LEN`/`ALLPASS_LEN`-sample lines, for
/// module ids 0 ..< `IDS` (by default the protocol's; each costs 2 bytes of index).
// repr(C), its fields in the order Rust chose for them before modules had stereo outputs,
// the stereo ones last: the hot arrays keep the places relative to each other that the
// voice bench was measured with (a layout Rust chose around the new arrays cost it 6-9%,
// in D1 misses on the modules' states and outputs, with the same instructions).
#[repr(C)]
pub struct Rack<
    const MODULES: usize,
    const CABLES: usize,
    const DELAYS: usize,
    const DELAY_LEN: usize,
    const REVERBS: usize,
    const COMB_LEN: usize,
    const ALLPASS_LEN: usize,
    const IDS: usize = PROTOCOL_IDS,
> {
    /// Per slot: some parameter's own port is patched (worked out with `plans`), so
    /// [`Module::modulate`] has work; with `moved` 0 too it is not called at all.
    modulated: [bool; MODULES],
    /// Per slot: true when it depends on a receive (a cable between racks), and so renders
    /// at the end of the block ([`Rack::process_linked`]).
    late: [bool; MODULES],
    /// Where each slot's input ports read from, worked out when the structure changes.
    plans: [[Source; MAX_INPUTS]; MODULES],
    fades: [Fade; MODULES],
    modules: [Module; MODULES],
    /// Id of the module in each slot; NONE for an empty slot or a ghost.
    ids: [ModuleId; MODULES],
    /// The other way round: the slot of each live id. Written only with `ids` (`bind`,
    /// `unbind`), so the two agree.
    index: SlotIndex<IDS>,
    /// Each slot's `out`, what every module renders: the block cables read in place.
    outs: [Block; MODULES],
    wires: Vec<Wire, CABLES>,
    delays: [Delay<DELAY_LEN>; DELAYS],
    reverbs: [Reverb<COMB_LEN, ALLPASS_LEN>; REVERBS],
    order: Vec<u16, MODULES>,
    /// Incoming wires of slot s are `inbound[first_in[s]..first_in[s] + count_in[s]]`,
    /// sorted by port.
    inbound: [u16; CABLES],
    first_in: [u16; MODULES],
    count_in: [u16; MODULES],
    /// Longest path from a source to each slot: equal depths never feed each other.
    depth: [u16; MODULES],
    /// For each position of `order`, how many modules from there share lanes (1 = alone).
    runs: [u8; MODULES],
    /// Per slot: each parameter's knob (what `/module/set` last said, clamped), by parameter
    /// index, from which a cable into the parameter's own port moves it ([`Module::modulate`]).
    knobs: [[f32; MAX_PARAMS]; MODULES],
    /// Per slot: bit `i` set while parameter `i` is moved by a cable.
    moved: [u32; MODULES],
    /// Summed inputs and rendered output of each lane (lane 0 serves single modules).
    scratch: [[Block; MAX_INPUTS]; LANES],
    rendered: [Block; LANES],
    /// Ports of late slots whose cables from early slots are summed before the first late
    /// slot renders (while this rack may wait for another's block): (slot, port), and the
    /// sums, read by [`Source::PreSummed`].
    presums: Vec<(u16, u8), PRESUMS>,
    presum_blocks: [Block; PRESUMS],
    /// Per slot: its output of the block before, kept (flushed of NaN, inf and denormals)
    /// for the slots that feed a feedback cable.
    previous: [Block; MODULES],
    /// This block's audio input (left, right), filled by the host before it renders.
    capture: StereoBlock,
    sample_rate_hz: f32,
    delay_owner: [u16; DELAYS],
    reverb_owner: [u16; REVERBS],
    /// Where in `order` the slots that depend on a receive begin (`order.len()`: none).
    late_from: u16,
    structure_changed: bool,
    /// Some module or wire may be fading: the end of the next block retires fades.
    fades_pending: bool,
    /// Some wire is a feedback wire (worked out with the order): `previous` is kept.
    feeds_back: bool,
    /// Per slot: its `left` or `right` is taken (or it is the output, which keeps its right
    /// channel in its sides), so its module renders `sides` too; worked out with the order.
    stereo: [bool; MODULES],
    /// Each slot's `left` and `right`, written only by a stereo kind and only while a wire
    /// takes one of them (`stereo`), so a mono module never touches its row: apart from the
    /// per-module blocks every module renders, out of the way of a mono patch's memory.
    sides: [StereoBlock; MODULES],
    /// As `previous`, for `sides`: the slots whose `left` or `right` feeds a feedback cable.
    previous_sides: [StereoBlock; MODULES],
}

/// Link channels a host has (cables between workers, each a send on one rack and a receive on
/// another): every rack keeps a slot for each end and a cable for each receive beyond the
/// user's 4096 modules and 8192 cables, so a full rack can still be linked.
pub const HOST_LINKS: usize = 256;

/// The host's rack, one per worker: 4096 modules and 8192 cables for the user (and room for
/// [`HOST_LINKS`] links), 32 delays of 2.73 s, 16 reverbs (48 kHz). 31.9 MB of address space
/// on 64-bit targets, most of it touched only when used (see [`Rack::init_zeroed`]; a
/// delay's or reverb's lines only when a module claims them): enough standard voices
/// (about a thousand) to fill a good part of a core, and a delay and a reverb per voice of a
/// 16-voice polysynth with its effects busses beside, so a performer's patch is limited by
/// the CPU, not by the rack. Its ids are [`HOST_IDS`].
pub type HostRack = Rack<{ 4096 + 2 * HOST_LINKS }, { 8192 + HOST_LINKS }, 32, { 1 << 17 }, 16, 4096, 1024, HOST_IDS>;

/// Module ids a host's rack takes: the protocol's and, above them, the two ends of each
/// link the host makes (a send and a receive per channel).
pub const HOST_IDS: usize = PROTOCOL_IDS + 2 * HOST_LINKS;

/// The firmware's rack: 32 modules, 64 cables, 2 delays of 0.34 s, 1 reverb (48 kHz).
pub type FirmwareRack = Rack<32, 64, 2, { 1 << 14 }, 1, 2048, 1024>;

impl<
    const MODULES: usize,
    const CABLES: usize,
    const DELAYS: usize,
    const DELAY_LEN: usize,
    const REVERBS: usize,
    const COMB_LEN: usize,
    const ALLPASS_LEN: usize,
    const IDS: usize,
> Rack<MODULES, CABLES, DELAYS, DELAY_LEN, REVERBS, COMB_LEN, ALLPASS_LEN, IDS>
{
    /// A rack holding only the output module, for 48 kHz until [`Rack::prepare`].
    pub const fn new() -> Self {
        const {
            assert!(MODULES >= 1 && MODULES < NONE as usize, "slot indices are u16");
            assert!(CABLES < NONE as usize, "cable indices are u16");
            assert!(DELAYS <= u8::MAX as usize && REVERBS <= u8::MAX as usize, "pool indices are u8");
            assert!(IDS > OUTPUT_ID as usize && IDS <= NONE as usize, "ids are u16, NONE excluded");
        };
        let mut modules = [const { Module::Empty }; MODULES];
        modules[OUTPUT_SLOT] = Module::Output(Output::new());
        let mut ids = [NONE; MODULES];
        ids[OUTPUT_SLOT] = OUTPUT_ID;
        let mut index = SlotIndex::new();
        index.slot_plus_one[OUTPUT_ID as usize] = OUTPUT_SLOT as u16 + 1;
        Self {
            sample_rate_hz: 48_000.0,
            modules,
            ids,
            index,
            fades: [Fade::Steady; MODULES],
            outs: [[0.0; BLOCK]; MODULES],
            sides: [STEREO_SILENCE; MODULES],
            stereo: [false; MODULES],
            wires: Vec::new(),
            delays: [const { Delay::new() }; DELAYS],
            delay_owner: [NONE; DELAYS],
            reverbs: [const { Reverb::new() }; REVERBS],
            reverb_owner: [NONE; REVERBS],
            order: Vec::new(),
            inbound: [0; CABLES],
            first_in: [0; MODULES],
            count_in: [0; MODULES],
            depth: [0; MODULES],
            structure_changed: true,
            fades_pending: false,
            plans: [[Source::Unpatched; MAX_INPUTS]; MODULES],
            runs: [1; MODULES],
            knobs: [Kind::Output.defaults(); MODULES],
            moved: [0; MODULES],
            modulated: [false; MODULES],
            scratch: [[[0.0; BLOCK]; MAX_INPUTS]; LANES],
            rendered: [[0.0; BLOCK]; LANES],
            late: [false; MODULES],
            late_from: 0,
            presums: Vec::new(),
            presum_blocks: [[0.0; BLOCK]; PRESUMS],
            previous: [[0.0; BLOCK]; MODULES],
            previous_sides: [STEREO_SILENCE; MODULES],
            feeds_back: false,
            capture: STEREO_SILENCE,
        }
    }

    /// Returns the rack to the state [`Rack::new`] gives (prepared for `sample_rate_hz`),
    /// in place, writing every part but the delay and reverb buffers, which are prepared when
    /// a module claims them. For racks placed in fresh shared memory: no multi-megabyte
    /// temporary, and a worker touches (pre-faults) exactly its working set.
    pub fn clear_in_place(&mut self, sample_rate_hz: f32) {
        self.sample_rate_hz = sample_rate_hz;
        for module in self.modules.iter_mut() {
            *module = Module::Empty;
        }
        self.modules[OUTPUT_SLOT] = Module::new(Kind::Output, 0, sample_rate_hz);
        self.ids = [NONE; MODULES];
        self.ids[OUTPUT_SLOT] = OUTPUT_ID;
        self.index.clear();
        self.index.bind(OUTPUT_ID, OUTPUT_SLOT);
        self.fades = [Fade::Steady; MODULES];
        for out in self.outs.iter_mut() {
            *out = [0.0; BLOCK];
        }
        for sides in self.sides.iter_mut() {
            *sides = STEREO_SILENCE;
        }
        self.stereo = [false; MODULES];
        self.wires.clear();
        self.delay_owner = [NONE; DELAYS];
        self.reverb_owner = [NONE; REVERBS];
        self.order.clear();
        self.inbound = [0; CABLES];
        self.first_in = [0; MODULES];
        self.count_in = [0; MODULES];
        self.depth = [0; MODULES];
        self.structure_changed = true;
        self.fades_pending = false;
        // Row by row: a whole-array temporary of the host rack's plans would be 64 KB of stack.
        for plan in self.plans.iter_mut() {
            *plan = [Source::Unpatched; MAX_INPUTS];
        }
        self.runs = [1; MODULES];
        self.knobs[OUTPUT_SLOT] = Kind::Output.defaults();
        self.moved = [0; MODULES];
        self.modulated = [false; MODULES];
        for lane in self.scratch.iter_mut() {
            *lane = [[0.0; BLOCK]; MAX_INPUTS];
        }
        self.rendered = [[0.0; BLOCK]; LANES];
        self.late = [false; MODULES];
        self.late_from = 0;
        self.presums.clear();
        self.presum_blocks = [[0.0; BLOCK]; PRESUMS];
        for previous in self.previous.iter_mut() {
            *previous = [0.0; BLOCK];
        }
        for previous in self.previous_sides.iter_mut() {
            *previous = STEREO_SILENCE;
        }
        self.feeds_back = false;
        self.capture = STEREO_SILENCE;
    }

    /// As [`Rack::clear_in_place`], for a rack whose memory is all zero bytes (a fresh shared
    /// mapping): writes only the parts whose empty value is not zero bytes (the slot ids, fade
    /// states, input plans, lane runs, pool owners, the output module and its id's entry in the
    /// slot index), a few pages, so that module state, output blocks and delay lines stay
    /// untouched, and unallocated, until a module uses them. Zero bytes are valid for every
    /// other part: `Module::Empty` is tag 0 of a `repr(u8)` enum, the vectors are empty, an
    /// index entry of 0 binds no slot, the rest are numbers.
    pub fn init_zeroed(&mut self, sample_rate_hz: f32) {
        self.sample_rate_hz = sample_rate_hz;
        self.modules[OUTPUT_SLOT] = Module::new(Kind::Output, 0, sample_rate_hz);
        self.ids = [NONE; MODULES];
        self.ids[OUTPUT_SLOT] = OUTPUT_ID;
        self.index.bind(OUTPUT_ID, OUTPUT_SLOT);
        self.fades = [Fade::Steady; MODULES];
        self.delay_owner = [NONE; DELAYS];
        self.reverb_owner = [NONE; REVERBS];
        self.structure_changed = true;
        for plan in self.plans.iter_mut() {
            *plan = [Source::Unpatched; MAX_INPUTS];
        }
        self.runs = [1; MODULES];
        self.knobs[OUTPUT_SLOT] = Kind::Output.defaults();
    }

    /// A topology matching this rack's capacity, for checking requests before they reach it.
    pub fn topology(&self) -> Topology<MODULES, CABLES> {
        Topology::new(DELAYS, REVERBS)
    }

    /// Sets the sample rate and resets every module to silence, keeping the patch. Touches
    /// only the slots in use (and their output blocks): the rest may be untouched memory.
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        self.sample_rate_hz = sample_rate_hz;
        for slot in 0..MODULES {
            if self.ids[slot] != NONE {
                self.modules[slot].prepare(sample_rate_hz);
                self.outs[slot] = [0.0; BLOCK];
            }
        }
        for (delay, owner) in self.delays.iter_mut().zip(&self.delay_owner) {
            if *owner != NONE {
                delay.prepare(sample_rate_hz);
            }
        }
        for (reverb, owner) in self.reverbs.iter_mut().zip(&self.reverb_owner) {
            if *owner != NONE {
                reverb.prepare(sample_rate_hz);
            }
        }
    }

    /// Sample rate given to [`Rack::prepare`], Hz.
    pub fn sample_rate_hz(&self) -> f32 {
        self.sample_rate_hz
    }

    /// Checks `request` against `topology` (which must describe this rack) and applies it.
    ///
    /// # Errors
    /// As [`Topology::resolve`]; on error neither the topology nor the rack changed.
    pub fn submit(&mut self, topology: &mut Topology<MODULES, CABLES>, request: &Request<'_>) -> Result<(), Error> {
        let command = topology.submit(request)?;
        self.apply(&command);
        Ok(())
    }

    /// Applies the lines of `player` due before block `index` renders (see
    /// [`Player::next_due_for_block`]): what every renderer (host, firmware, benches) does
    /// before each block. Returns how many lines were applied and how many refused; a refused
    /// line changes nothing, and `on_refused(line number, error)` hears of it.
    pub fn apply_due(
        &mut self,
        topology: &mut Topology<MODULES, CABLES>,
        player: &mut Player<'_>,
        index: u64,
        mut on_refused: impl FnMut(usize, Error),
    ) -> (u32, u32) {
        let (mut applied, mut refused) = (0, 0);
        while let Some(due) = player.next_due_for_block(index, self.sample_rate_hz) {
            let outcome = due
                .map_err(|e| (e.number, e.error))
                .and_then(|line| self.submit(topology, &line.request).map_err(|error| (line.number, error)));
            match outcome {
                Ok(()) => applied += 1,
                Err((line, error)) => {
                    refused += 1;
                    on_refused(line, error);
                }
            }
        }
        (applied, refused)
    }

    /// Applies a command checked by a [`Topology`]; takes effect from the next block.
    /// Cannot fail: a command that does not fit this rack changes nothing.
    pub fn apply(&mut self, command: &Command) {
        self.apply_timed(command, None);
    }

    /// As [`Rack::apply`], timed to sample `frame` of the next block (a timetagged OSC
    /// bundle): a [`Command::Set`] of an adsr's gate or a vco's frequency takes effect at
    /// that sample ([`Module::set_at`]); every other command starts its glide or fade with
    /// the block.
    pub fn apply_at(&mut self, command: &Command, frame: usize) {
        self.apply_timed(command, Some(frame));
    }

    fn apply_timed(&mut self, command: &Command, at: Option<usize>) {
        if !matches!(command, Command::Set { .. }) {
            // New fades change where ports read from (a fading wire is summed with its ramp).
            self.fades_pending = true;
            self.structure_changed = true;
        }
        match *command {
            Command::New { id, kind } => self.create(id, kind),
            Command::Free { id } => {
                if id != OUTPUT_ID
                    && let Some(slot) = self.slot_of(id)
                {
                    self.unbind(slot);
                    self.fades[slot] = Fade::Out;
                }
            }
            Command::Set { id, param, value } => {
                if let Some(slot) = self.slot_of(id) {
                    if let (Some(kind), Some(knob)) =
                        (self.modules[slot].kind(), self.knobs[slot].get_mut(param as usize))
                        && value.is_finite()
                    {
                        *knob = kind.description().clamp(param, value);
                    }
                    let pools = Pools { delays: &mut self.delays, reverbs: &mut self.reverbs };
                    match at {
                        Some(frame) => self.modules[slot].set_at(param, value, frame, pools),
                        None => self.modules[slot].set(param, value, pools),
                    }
                }
            }
            Command::Patch { src, out, dst, port } => {
                if let (Some(src), Some(dst)) = (self.slot_of(src), self.slot_of(dst)) {
                    self.connect(src as u16, out, dst as u16, port);
                }
            }
            Command::Unpatch { src, out, dst, port } => {
                if let (Some(src), Some(dst)) = (self.slot_of(src), self.slot_of(dst))
                    && let Some(w) = self.wire_index(src as u16, out, dst as u16, port)
                {
                    match self.wires[w].fade {
                        // Never heard yet: nothing to fade.
                        Fade::In => {
                            self.wires.swap_remove(w);
                            self.structure_changed = true;
                        }
                        Fade::Steady | Fade::Out | Fade::Leave | Fade::Arrive => self.wires[w].fade = Fade::Out,
                    }
                }
            }
            Command::Clear => {
                for slot in 1..MODULES {
                    if self.ids[slot] != NONE {
                        self.unbind(slot);
                        self.fades[slot] = Fade::Out;
                    }
                }
                self.wires.retain(|w| w.fade != Fade::In);
                self.structure_changed = true;
                for wire in self.wires.iter_mut() {
                    wire.fade = Fade::Out;
                }
            }
            Command::Link { id, channel, end } => {
                self.create(id, end.kind());
                if let Some(slot) = self.slot_of(id) {
                    self.modules[slot] = match end {
                        LinkEnd::Send => Module::Send { channel },
                        LinkEnd::Receive => Module::Receive { channel, heard: true },
                    };
                    // Steady at once: the cables into the send fade in, as the one cable the
                    // pair stands for would; a second fade would make the sum differ.
                    self.fades[slot] = Fade::Steady;
                }
            }
        }
    }

    /// Module `id` leaves for another rack, from the next block (a move between workers,
    /// after [`Rack::module`] was copied out: [`WorkerCommand::Export`]): it renders unfaded
    /// one more block, its cables to modules that stay fade out, those to modules leaving
    /// with it stay, and then it goes.
    ///
    /// [`WorkerCommand::Export`]: crate::command::WorkerCommand::Export
    pub fn leave(&mut self, id: ModuleId) {
        let Some(slot) = self.slot_of(id).filter(|_| id != OUTPUT_ID) else { return };
        // Its fade and its cables' change where ports read from, as any edit's do.
        self.fades_pending = true;
        self.structure_changed = true;
        self.unbind(slot);
        if self.fades[slot] == Fade::In {
            // Never heard (see `module`): it goes as a freed one does.
            self.fades[slot] = Fade::Out;
            return;
        }
        self.fades[slot] = Fade::Leave;
        let here = slot as u16;
        for w in 0..self.wires.len() {
            let Wire { src, dst, fade, .. } = self.wires[w];
            if src != here && dst != here {
                continue;
            }
            let other = if src == here { dst } else { src };
            self.wires[w].fade = match (self.fades[other as usize], fade) {
                // Between two leaving modules (this one's fellow set it fading: undo).
                (Fade::Leave, Fade::Out) => Fade::Steady,
                (Fade::Leave, fade) => fade,
                _ => Fade::Out,
            };
        }
    }

    /// Module `id` as it is (its unit's whole state), for handing it to another rack; None
    /// when no live module has that id, or when it was created since the last block (never
    /// heard: the other rack's fresh one is the same, and fades in as this one would have).
    pub fn module(&self, id: ModuleId) -> Option<&Module> {
        self.slot_of(id).filter(|&slot| self.fades[slot] != Fade::In).map(|slot| &self.modules[slot])
    }

    /// Replaces module `id`'s state with `state`, a module of the same kind handed over from
    /// another rack ([`Rack::module`], then [`Rack::leave`] there): it carries on from
    /// there, unfaded in this block, its cables to modules that arrived with it steady (but
    /// feedback cables, whose block before is not handed over) and those to the rest fading
    /// in. Delays and reverbs are not taken (their lines
    /// live in the rack's pools, not in the module). Returns whether the state was taken.
    pub fn adopt(&mut self, id: ModuleId, state: &Module) -> bool {
        let Some(slot) = self.slot_of(id) else { return false };
        let kind = self.modules[slot].kind();
        let movable = !matches!(kind, None | Some(Kind::Output | Kind::Delay | Kind::Reverb));
        if !movable || state.kind() != kind {
            return false;
        }
        self.modules[slot] = state.clone();
        // It carries on unfaded, as do its cables to modules that arrived with it; those to
        // the rest fade in (the other rack fades them out).
        self.fades[slot] = Fade::Arrive;
        let here = slot as u16;
        for w in 0..self.wires.len() {
            let Wire { src, dst, fade, feedback, .. } = self.wires[w];
            let other = if src == here {
                dst
            } else if dst == here {
                src
            } else {
                continue;
            };
            // Not a feedback wire: the block before it would read is not handed over (it is
            // silence here), so it fades in rather than step from silence to the loop.
            if fade == Fade::In && !feedback && self.fades[other as usize] == Fade::Arrive {
                self.wires[w].fade = Fade::Steady;
            }
        }
        self.fades_pending = true;
        self.structure_changed = true;
        true
    }

    /// Renders one block of the output module into `out` (left, right), then retires finished
    /// fades.
    pub fn process(&mut self, out: &mut StereoBlock) {
        self.process_timed(out, &mut Untimed);
    }

    /// As [`Rack::process`] (the same samples, bit for bit), and charges each slot the time
    /// its module took to `timer`: the clock is read once before the first module and once
    /// after each module or lanes run; a lanes run's time is split evenly among its
    /// [`LANES`] members (the first also gets the remainder), so the charges add up to the
    /// time between the first and last reading. Rebuilding the order and retiring fades are
    /// the rack's own work and are charged to no slot.
    #[inline]
    pub fn process_timed<T: SlotTimer>(&mut self, out: &mut StereoBlock, timer: &mut T) {
        self.process_linked(out, timer, &mut Unlinked);
    }

    /// As [`Rack::process_timed`], with the blocks of cables between racks carried by
    /// `links`: each send's input is published when it is rendered, each receive's block is
    /// asked for when its turn comes (see [`Links`] for the order).
    #[inline]
    pub fn process_linked<T: SlotTimer, L: Links>(&mut self, out: &mut StereoBlock, timer: &mut T, links: &mut L) {
        if self.structure_changed {
            self.rebuild_order();
        }
        let mut at = 0;
        let mut before = timer.now();
        while at < self.order.len() {
            if at == self.late_from as usize && !self.presums.is_empty() {
                self.presum();
            }
            if self.runs[at] as usize == LANES {
                self.process_lanes(at);
                let after = timer.now();
                let spent = after.wrapping_sub(before);
                let each = spent / LANES as u64;
                for lane in 0..LANES {
                    let extra = if lane == 0 { spent - each * LANES as u64 } else { 0 };
                    timer.charge(self.order[at + lane] as usize, each + extra);
                }
                before = after;
                at += LANES;
            } else {
                let slot = self.order[at] as usize;
                self.process_slot(slot, links);
                let after = timer.now();
                timer.charge(slot, after.wrapping_sub(before));
                before = after;
                at += 1;
            }
        }
        // The output's `out` is its left channel; the right it keeps in its sides.
        *out = [self.outs[OUTPUT_SLOT], self.sides[OUTPUT_SLOT][1]];
        // What feedback cables carry next block: this block, flushed so that a loop with gain
        // cannot grow past 1e30 into infinity or NaN, nor circulate denormals.
        // Only a rack with a feedback wire walks its wires for them.
        if self.feeds_back {
            let Self { wires, outs, sides, previous, previous_sides, .. } = self;
            for wire in wires.iter().filter(|w| w.feedback) {
                let src = wire.src as usize;
                match wire.out {
                    0 => previous[src] = outs[src].map(flush),
                    side => {
                        let side = side as usize - 1;
                        if let (Some(to), Some(from)) = (previous_sides[src].get_mut(side), sides[src].get(side)) {
                            *to = from.map(flush);
                        }
                    }
                }
            }
        }
        if self.fades_pending {
            self.retire_fades();
        }
    }

    /// The audio input of the block the next [`Rack::process`] renders (left, right): the
    /// host writes the capture side of the audio device here before each block; silence
    /// until it does.
    pub fn capture_mut(&mut self) -> &mut StereoBlock {
        &mut self.capture
    }

    /// Slots this rack holds (the most modules, the output included).
    pub const SLOTS: usize = MODULES;

    /// Module ids this rack takes: 0 ..< `ID_RANGE` (a command naming another is ignored).
    pub const ID_RANGE: usize = IDS;

    /// The module in `slot` (`0..SLOTS`): its id and kind; None for an empty slot, a ghost
    /// fading out, or a slot out of range. Slots are what [`SlotTimer::charge`] names.
    pub fn slot_module(&self, slot: usize) -> Option<(ModuleId, Kind)> {
        let id = *self.ids.get(slot)?;
        if id == NONE {
            return None;
        }
        self.modules[slot].kind().map(|kind| (id, kind))
    }

    /// Number of modules alive (the output included; ghosts fading out excluded).
    pub fn module_count(&self) -> usize {
        self.ids.iter().filter(|&&id| id != NONE).count()
    }

    /// Number of cables alive (ghosts fading out excluded).
    pub fn cable_count(&self) -> usize {
        self.wires
            .iter()
            .filter(|w| w.fade != Fade::Out && !self.fades[w.src as usize].gone() && !self.fades[w.dst as usize].gone())
            .count()
    }

    /// True when the next block renders only silence and changes nothing: the rack holds
    /// nothing but the output, no cable, nothing fading. A host need not render it until
    /// a command arrives.
    pub fn is_idle(&self) -> bool {
        !self.structure_changed && !self.fades_pending && self.wires.is_empty() && self.order.len() <= 1
    }

    /// Last block rendered by module `id`, if it exists.
    pub fn output_of(&self, id: ModuleId) -> Option<&Block> {
        self.slot_of(id).map(|slot| &self.outs[slot])
    }

    /// The slot of live module `id`: one read of the index, checked against `ids`, so that
    /// even a corrupt index (shared memory) can only miss, never name a wrong slot.
    #[inline]
    fn slot_of(&self, id: ModuleId) -> Option<usize> {
        self.index.get(id).filter(|&slot| self.ids.get(slot) == Some(&id))
    }

    /// Makes `slot` the home of live module `id`; false (nothing changes) for an id out of
    /// the rack's range.
    fn bind(&mut self, slot: usize, id: ModuleId) -> bool {
        if id == NONE || !self.index.bind(id, slot) {
            return false;
        }
        self.ids[slot] = id;
        true
    }

    /// `slot` keeps its module (a ghost fading out, or nothing) but no longer its id.
    fn unbind(&mut self, slot: usize) {
        self.index.unbind(self.ids[slot]);
        self.ids[slot] = NONE;
    }

    /// The wire from output `out` of `src` into `port` of `dst` (its feedback mark ignored).
    fn wire_index(&self, src: u16, out: u8, dst: u16, port: u8) -> Option<usize> {
        let port = port & !FEEDBACK;
        self.wires.iter().position(|w| w.src == src && w.out == out && w.dst == dst && w.port == port)
    }

    /// True when `slot` holds a module (alive, or a ghost fading out). Reads the module itself
    /// only for slots whose id or fade says it may be taken: the module array of a big rack
    /// is mostly untouched memory, and stays so.
    fn occupied(&self, slot: usize) -> bool {
        (self.ids[slot] != NONE || self.fades[slot].gone()) && !matches!(self.modules[slot], Module::Empty)
    }

    fn create(&mut self, id: ModuleId, kind: Kind) {
        if id == NONE || id as usize >= IDS || kind == Kind::Output || self.slot_of(id).is_some() {
            return;
        }
        let slot = match (0..MODULES).find(|&slot| !self.occupied(slot)) {
            Some(slot) => slot,
            None => match self.oldest_ghost_slot() {
                Some(ghost) => {
                    self.remove_slot(ghost);
                    ghost
                }
                None => return,
            },
        };
        let pool = match kind {
            Kind::Delay => self.take_pool_entry(Kind::Delay, slot),
            Kind::Reverb => self.take_pool_entry(Kind::Reverb, slot),
            _ => Some(0),
        };
        let Some(pool) = pool else { return };
        self.modules[slot] = Module::new(kind, pool, self.sample_rate_hz);
        self.knobs[slot] = kind.defaults();
        self.moved[slot] = 0;
        self.previous[slot] = [0.0; BLOCK];
        self.previous_sides[slot] = STEREO_SILENCE;
        self.bind(slot, id);
        self.fades[slot] = Fade::In;
        self.structure_changed = true;
    }

    /// Claims a free delay or reverb for `slot` (cutting a ghost's if none is free) and
    /// prepares it with default parameters, in place.
    fn take_pool_entry(&mut self, kind: Kind, slot: usize) -> Option<u8> {
        let owners: &[u16] = if kind == Kind::Delay { &self.delay_owner } else { &self.reverb_owner };
        let index = match owners.iter().position(|&o| o == NONE) {
            Some(index) => index,
            None => {
                let ghost =
                    owners.iter().position(|&o| self.fades[o as usize].gone() && self.ids[o as usize] == NONE)?;
                self.remove_slot(owners[ghost] as usize);
                ghost
            }
        };
        let fs = self.sample_rate_hz;
        if kind == Kind::Delay {
            self.delay_owner[index] = slot as u16;
            self.delays[index].set_defaults();
            self.delays[index].prepare(fs);
        } else {
            self.reverb_owner[index] = slot as u16;
            self.reverbs[index].set_defaults();
            self.reverbs[index].prepare(fs);
        }
        Some(index as u8)
    }

    fn oldest_ghost_slot(&self) -> Option<usize> {
        (1..MODULES).find(|&s| self.fades[s].gone() && self.ids[s] == NONE && !matches!(self.modules[s], Module::Empty))
    }

    fn connect(&mut self, src: u16, out: u8, dst: u16, port: u8) {
        if let Some(w) = self.wire_index(src, out, dst, port) {
            // Unpatched and re-patched before the fade began: it simply stays (as a feedback
            // wire or not as the new patch says: the cycles may have changed meanwhile).
            if self.wires[w].fade == Fade::Out {
                self.wires[w].fade = Fade::Steady;
            }
            let feedback = port & FEEDBACK != 0;
            if self.wires[w].feedback != feedback {
                self.wires[w].feedback = feedback;
                self.structure_changed = true;
                if feedback {
                    self.seed_previous(src, out);
                }
            }
            return;
        }
        // Out of a receive: steady at once, as the receive itself (see `Command::Link`).
        let fade = if matches!(self.modules[src as usize], Module::Receive { .. }) { Fade::Steady } else { Fade::In };
        let wire = Wire { src, out, dst, port: port & !FEEDBACK, fade, feedback: port & FEEDBACK != 0 };
        if self.wires.is_full() {
            let ghost = self.wires.iter().position(|w| {
                w.fade == Fade::Out || self.fades[w.src as usize].gone() || self.fades[w.dst as usize].gone()
            });
            match ghost {
                Some(g) => {
                    self.wires.swap_remove(g);
                }
                None => return,
            }
        }
        let _ = self.wires.push(wire);
        self.structure_changed = true;
        if wire.feedback {
            self.seed_previous(src, out);
        }
    }

    /// A feedback wire from `src`'s output `out` reads its block before, which the rack keeps
    /// only for the sources of feedback wires: from now on that is the block just rendered
    /// (between blocks its output holds it; silence for a module not heard yet), so a new
    /// feedback wire's first block reads no stale block from the source's last loop.
    fn seed_previous(&mut self, src: u16, out: u8) {
        let src = src as usize;
        let heard = self.fades[src] != Fade::In;
        match out {
            0 => self.previous[src] = if heard { self.outs[src].map(flush) } else { [0.0; BLOCK] },
            side => {
                let now = self.sides[src].get(side as usize - 1).filter(|_| heard && self.stereo[src]);
                if let Some(before) = self.previous_sides[src].get_mut(side as usize - 1) {
                    *before = now.map_or([0.0; BLOCK], |block| block.map(flush));
                }
            }
        }
    }

    /// Empties `slot` now: its module, its pool entry and every wire touching it.
    fn remove_slot(&mut self, slot: usize) {
        match self.modules[slot] {
            Module::Delay { pool } => {
                if let Some(owner) = self.delay_owner.get_mut(pool as usize) {
                    *owner = NONE;
                }
            }
            Module::Reverb { pool } => {
                if let Some(owner) = self.reverb_owner.get_mut(pool as usize) {
                    *owner = NONE;
                }
            }
            _ => {}
        }
        self.modules[slot] = Module::Empty;
        self.unbind(slot);
        self.fades[slot] = Fade::Steady;
        self.outs[slot] = [0.0; BLOCK];
        let s = slot as u16;
        self.wires.retain(|w| w.src != s && w.dst != s);
        self.structure_changed = true;
    }

    /// After a block: fades that ran are over; ghosts go.
    fn retire_fades(&mut self) {
        self.fades_pending = false;
        for slot in 1..MODULES {
            match self.fades[slot] {
                Fade::In | Fade::Arrive => self.fades[slot] = Fade::Steady,
                Fade::Out | Fade::Leave => self.remove_slot(slot),
                Fade::Steady => {}
            }
        }
        let before = self.wires.len();
        self.wires.retain(|w| w.fade != Fade::Out);
        if self.wires.len() != before {
            self.structure_changed = true;
        }
        for wire in self.wires.iter_mut() {
            wire.fade = Fade::Steady;
        }
        // Wires that faded in are steady now: read them in place from the next block.
        self.structure_changed = true;
    }

    fn process_slot<L: Links>(&mut self, slot: usize, links: &mut L) {
        match self.modules[slot] {
            Module::Empty => return,
            Module::Receive { .. } | Module::Input => return self.process_source_slot(slot, links),
            _ => {}
        }
        let Self {
            modules,
            outs,
            sides,
            stereo,
            wires,
            inbound,
            first_in,
            count_in,
            scratch,
            delays,
            reverbs,
            fades,
            plans,
            late,
            presum_blocks,
            knobs,
            moved,
            modulated,
            previous,
            previous_sides,
            ..
        } = self;
        let sources = &plans[slot];
        let list = inbound_of(slot, inbound, first_in, count_in);
        // Built where it is read, not before: eight words stored for every module cost the
        // voice bench 4%.
        if sources.iter().any(|s| s.summed()) {
            let blocks = Blocks { outs, sides, previous, previous_sides };
            sum_ports(sources, list, wires, &blocks, &mut scratch[0], Early { late, presums: presum_blocks });
        }
        if let Some(kind) = modules[slot].kind()
            && (modulated[slot] || moved[slot] != 0)
        {
            let blocks = Blocks { outs, sides, previous, previous_sides };
            let (means, patched) = param_means(kind, list, wires, &blocks);
            let pools = Pools { delays: &mut delays[..], reverbs: &mut reverbs[..] };
            modules[slot].modulate(&means, patched, &knobs[slot], &mut moved[slot], pools);
        }
        // The module renders straight into its own output blocks; its inputs are other
        // slots' blocks, on either side of it (a cable into itself is a feedback cable, read
        // from `previous` through the scratch block).
        let (before, rest) = outs.split_at_mut(slot);
        let Some((out, after)) = rest.split_first_mut() else { return };
        let (sides_before, rest) = sides.split_at_mut(slot);
        let Some((own_sides, sides_after)) = rest.split_first_mut() else { return };
        let mut inputs: [Option<&Block>; MAX_INPUTS] = [None; MAX_INPUTS];
        for ((input, source), summed) in inputs.iter_mut().zip(sources).zip(scratch[0].iter()) {
            *input = match *source {
                Source::Unpatched => None,
                Source::Direct(src) if (src as usize) < slot => before.get(src as usize),
                Source::Direct(src) => after.get(src as usize - slot - 1),
                Source::Side { side, src } => {
                    let pair = if (src as usize) < slot {
                        sides_before.get(src as usize)
                    } else {
                        sides_after.get(src as usize - slot - 1)
                    };
                    pair.and_then(|pair| pair.get(side as usize))
                }
                Source::Summed | Source::PreSummed(_) => Some(summed),
            };
        }
        let pools = Pools { delays: &mut delays[..], reverbs: &mut reverbs[..] };
        let stereo = stereo[slot];
        modules[slot].process(&inputs, out, stereo.then_some(&mut *own_sides), pools);
        fade_in_place(out, fades[slot]);
        if stereo {
            fade_sides(own_sides, fades[slot]);
        }
        if let Module::Send { channel } = modules[slot] {
            links.send(channel, out);
        }
    }

    /// A slot whose module renders from outside the rack: a receive (a link channel's block)
    /// or the input (the capture block). Out of line, so that the loop every other module
    /// takes stays as small as it was before the input existed (its size cost the voice
    /// bench several percent).
    #[inline(never)]
    fn process_source_slot<L: Links>(&mut self, slot: usize, links: &mut L) {
        let Self { modules, outs, sides, fades, capture, .. } = self;
        match &mut modules[slot] {
            Module::Receive { channel, heard } => {
                let out = &mut outs[slot];
                let last = out[BLOCK - 1];
                let came = links.receive(*channel, out);
                match (came, *heard) {
                    (true, true) => {}
                    // Back after a gap: in from silence.
                    (true, false) => fade_in_place(out, Fade::In),
                    // Gone: from where it was to silence, without a step.
                    (false, true) => ramp_to_silence(out, last),
                    (false, false) => *out = [0.0; BLOCK],
                }
                *heard = came;
                if fades[slot] == Fade::Out {
                    fade_in_place(out, Fade::Out);
                }
            }
            Module::Input => {
                input::process(capture, &mut outs[slot], &mut sides[slot]);
                fade_in_place(&mut outs[slot], fades[slot]);
                fade_sides(&mut sides[slot], fades[slot]);
            }
            _ => {}
        }
    }

    /// The [`LANES`] modules at `order[at..]`, one kind and one depth, rendered together.
    fn process_lanes(&mut self, at: usize) {
        let slots: [usize; LANES] = core::array::from_fn(|l| self.order[at + l] as usize);
        let Self {
            modules,
            outs,
            sides,
            wires,
            inbound,
            first_in,
            count_in,
            scratch,
            rendered,
            delays,
            reverbs,
            fades,
            plans,
            late,
            presum_blocks,
            knobs,
            moved,
            modulated,
            previous,
            previous_sides,
            ..
        } = self;
        let blocks = Blocks { outs, sides, previous, previous_sides };
        let sources: [[Source; MAX_INPUTS]; LANES] = core::array::from_fn(|lane| plans[slots[lane]]);
        for (lane, &slot) in slots.iter().enumerate() {
            if sources[lane].iter().any(|s| s.summed()) {
                let list = inbound_of(slot, inbound, first_in, count_in);
                let early = Early { late, presums: presum_blocks };
                sum_ports(&sources[lane], list, wires, &blocks, &mut scratch[lane], early);
            }
        }
        let inputs: [[Option<&Block>; MAX_INPUTS]; LANES] =
            core::array::from_fn(|l| resolve(&sources[l], blocks.outs, blocks.sides, &scratch[l]));
        let mut pools = Pools { delays: &mut delays[..], reverbs: &mut reverbs[..] };
        // The slots are distinct (each appears once in the order): this cannot fail.
        if let Ok(units) = modules.get_disjoint_mut(slots) {
            for (unit, &slot) in units.into_iter().zip(&slots) {
                if let Some(kind) = unit.kind()
                    && (modulated[slot] || moved[slot] != 0)
                {
                    let list = inbound_of(slot, inbound, first_in, count_in);
                    let (means, patched) = param_means(kind, list, wires, &blocks);
                    unit.modulate(&means, patched, &knobs[slot], &mut moved[slot], pools.reborrow());
                }
            }
        }
        if let Ok(units) = modules.get_disjoint_mut(slots) {
            Module::process_lanes(units, &inputs, rendered.each_mut(), pools);
        }
        for (lane, &slot) in slots.iter().enumerate() {
            write_faded(&mut outs[slot], &rendered[lane], fades[slot]);
        }
    }
}

/// A stereo module's `left` and `right` through its fade. Out of line: mono modules, the many,
/// never take it.
#[inline(never)]
fn fade_sides(sides: &mut StereoBlock, fade: Fade) {
    for side in sides.iter_mut() {
        fade_in_place(side, fade);
    }
}

impl<
    const MODULES: usize,
    const CABLES: usize,
    const DELAYS: usize,
    const DELAY_LEN: usize,
    const REVERBS: usize,
    const COMB_LEN: usize,
    const ALLPASS_LEN: usize,
    const IDS: usize,
> Default for Rack<MODULES, CABLES, DELAYS, DELAY_LEN, REVERBS, COMB_LEN, ALLPASS_LEN, IDS>
{
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use proptest::prelude::*;

    type TestRack = Rack<16, 32, 2, { 1 << 15 }, 1, 2048, 1024>;

    struct Bench {
        rack: Box<TestRack>,
        topology: Topology<16, 32>,
    }

    impl Bench {
        fn new() -> Self {
            let mut rack = Box::new(TestRack::new());
            rack.prepare(FS);
            let topology = rack.topology();
            Self { rack, topology }
        }

        /// A fresh bench that has run `lines`.
        fn with(lines: &[&str]) -> Self {
            let mut b = Self::new();
            for line in lines {
                b.run(line);
            }
            b
        }

        fn run(&mut self, line: &str) {
            let (_, request) = crate::script::parse_line(line, 0.0).unwrap();
            self.rack.submit(&mut self.topology, &request.unwrap()).unwrap();
        }

        fn try_run(&mut self, line: &str) -> Result<(), Error> {
            let (_, request) = crate::script::parse_line(line, 0.0)?;
            self.rack.submit(&mut self.topology, &request.ok_or(Error::WrongArgs)?)
        }

        fn render(&mut self, seconds: f32) -> std::vec::Vec<f32> {
            render_s(seconds, |block| {
                let mut both = STEREO_SILENCE;
                self.rack.process(&mut both);
                *block = both[0];
            })
        }
    }

    impl Bench {
        /// `blocks` blocks of both channels: (left, right).
        fn render_stereo(&mut self, blocks: usize) -> (std::vec::Vec<f32>, std::vec::Vec<f32>) {
            let (mut left, mut right) = (std::vec::Vec::new(), std::vec::Vec::new());
            for _ in 0..blocks {
                let mut both = STEREO_SILENCE;
                self.rack.process(&mut both);
                left.extend_from_slice(&both[0]);
                right.extend_from_slice(&both[1]);
            }
            (left, right)
        }
    }

    /// One second: 750 blocks at 48 kHz.
    const SECOND_BLOCKS: usize = 750;

    #[test]
    fn a_patch_from_before_stereo_plays_its_old_bits_on_both_channels() {
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/set 1 freq 110",
            "/module/new delay 2",
            "/module/set 2 time_s 0.05",
            "/module/new reverb 3",
            "/module/set 3 mix 0.5",
            "/module/new mixer 4",
            "/module/set 4 gain2 0.5",
            "/patch 1 out 2 in",
            "/patch 2 out 3 in",
            "/patch 3 out 4 in1",
            "/patch 1 out 4 in2",
            "/patch 4 out 0 in",
        ]);
        let (left, right) = b.render_stereo(SECOND_BLOCKS / 2);
        // The left channel of 0.5 s as the parent commit (57d1285) rendered it.
        assert_eq!(crate::checksum::fnv1a_f32(crate::checksum::FNV1A_OFFSET, &left), 7379259272636121722);
        assert_eq!(
            left.iter().map(|x| x.to_bits()).collect::<std::vec::Vec<_>>(),
            right.iter().map(|x| x.to_bits()).collect::<std::vec::Vec<_>>()
        );
    }

    #[test]
    fn a_voice_panned_by_the_mixer_is_louder_on_its_side_by_the_equal_power_law() {
        for pan in [-1.0f32, -0.5, 0.0, 0.5, 1.0] {
            let mut b = sine_to_out(440.0);
            b.run("/unpatch 1 out 0 in");
            b.run("/module/new mixer 2");
            b.run(&format!("/module/set 2 pan1 {pan}"));
            b.run("/patch 1 out 2 in1");
            b.run("/patch 2 left 0 left");
            b.run("/patch 2 right 0 right");
            let (left, right) = b.render_stereo(SECOND_BLOCKS / 2);
            let (left, right) = (&left[BLOCK * 4..], &right[BLOCK * 4..]);
            let theta = f64::from(pan + 1.0) * core::f64::consts::FRAC_PI_4;
            // A full-scale sine is -3.01 dB RMS; each side is that times its gain.
            let sine_db = rms_db(&sine(440.0, 1.0, 0.5));
            for (side, gain) in [(left, theta.cos()), (right, theta.sin())] {
                if gain < 1e-6 {
                    assert!(peak_db(side) < -120.0, "pan {pan}: the far side is silent");
                } else {
                    // 0.05 dB: the law's gains are exact to f32; the rest is the sine's RMS
                    // over a whole number of blocks rather than periods.
                    assert!((rms_db(side) - sine_db - 20.0 * gain.log10()).abs() < 0.05, "pan {pan}");
                }
            }
        }
    }

    #[test]
    fn the_mixers_out_stays_the_unpanned_sum_whatever_the_pans() {
        let mut centred = sine_to_out(440.0);
        centred.run("/unpatch 1 out 0 in");
        centred.run("/module/new mixer 2");
        centred.run("/patch 1 out 2 in1");
        centred.run("/patch 2 out 0 in");
        let mut panned = Bench::with(&[]);
        panned.run("/module/new vco 1");
        panned.run("/module/set 1 wave sine");
        panned.run("/module/set 1 freq 440");
        panned.run("/module/new mixer 2");
        panned.run("/module/set 2 pan1 0.7");
        panned.run("/patch 1 out 2 in1");
        panned.run("/patch 2 out 0 in");
        panned.run("/patch 2 left 0 left");
        let (a, _) = centred.render_stereo(20);
        let (b, _) = panned.render_stereo(20);
        let mono: std::vec::Vec<f32> = b.iter().zip(&a).map(|(b, a)| b - a).collect();
        // `left` adds cos(0.85 pi / 2) of the sine on the left: `out` itself is unchanged.
        let theta = 1.7 * core::f32::consts::FRAC_PI_4;
        let expected_left: std::vec::Vec<f32> = a.iter().map(|x| x * crate::dsp::math::cos(theta)).collect();
        let residue: std::vec::Vec<f32> = mono.iter().zip(&expected_left).map(|(m, e)| m - e).collect();
        assert!(peak_db(&residue[BLOCK..]) < -90.0, "{}", peak_db(&residue[BLOCK..]));
    }

    #[test]
    fn the_reverbs_sides_differ_but_are_equally_loud_on_a_centred_input() {
        let mut b = Bench::with(&[
            "/module/new noise 1",
            "/module/set 1 level 0.5",
            "/module/new reverb 2",
            "/module/set 2 mix 1",
            "/patch 1 out 2 in",
            "/patch 2 left 0 left",
            "/patch 2 right 0 right",
        ]);
        let (left, right) = b.render_stereo(2 * SECOND_BLOCKS);
        // After the first second, when the combs are full.
        let (left, right) = (&left[48_000..], &right[48_000..]);
        assert!((rms_db(left) - rms_db(right)).abs() < 1.0, "{} {}", rms_db(left), rms_db(right));
        let dot: f64 = left.iter().zip(right).map(|(l, r)| f64::from(*l) * f64::from(*r)).sum();
        let norm = |x: &[f32]| x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        let correlation = dot / (norm(left) * norm(right));
        // Freeverb's spread leaves the two tails far from alike (1.0 would be one signal).
        assert!(correlation.abs() < 0.5, "correlation {correlation}");
    }

    #[test]
    fn a_pingpong_delay_alternates_its_echoes_between_the_sides() {
        // A 10 ms click (a square lfo's first half-period, gated off after it) into a ping-pong
        // delay at its default 0.3 s (a time set now would glide there from 0.3 s), wet only:
        // echo k at k * 0.3 s, feedback^(k-1), left for odd k.
        let mut b = Bench::with(&[
            "/module/new lfo 1",
            "/module/set 1 shape square",
            "/module/set 1 rate_hz 50",
            "/module/new vca 3",
            "/module/new delay 2",
            "/module/set 2 mode pingpong",
            "/module/set 2 feedback 0.5",
            "/module/set 2 mix 1",
            "/patch 1 out 3 in",
            "/patch 3 out 2 in",
            "/patch 2 left 0 left",
            "/patch 2 right 0 right",
        ]);
        let _ = b.render_stereo(8); // 10.7 ms of the click
        b.run("/module/set 3 gain 0");
        let (left, right) = b.render_stereo(SECOND_BLOCKS * 5 / 4);
        // The second render starts 512 samples after the click: echo k at k * 14,400 - 512.
        let window = |x: &[f32], k: usize| peak_db(&x[k * 14_400 - 1_024..k * 14_400 + 512]);
        for k in 1..=4 {
            let (loud, quiet) = if k % 2 == 1 { (&left, &right) } else { (&right, &left) };
            // Echo k: feedback^(k-1) of the click (0 dB), -6.02 dB a trip; the other side
            // has nothing then.
            let expected = -6.02 * (k - 1) as f64;
            assert!((window(loud, k) - expected).abs() < 0.5, "echo {k}: {} dB", window(loud, k));
            assert!(window(quiet, k) < -100.0, "echo {k} leaks: {} dB", window(quiet, k));
        }
    }

    #[test]
    fn in_into_the_output_plays_the_same_bits_on_both_channels() {
        let mut b = sine_to_out(330.0);
        b.run("/module/new noise 2");
        b.run("/patch 2 out 0 in");
        b.run("/module/set 0 level 0.5");
        let (left, right) = b.render_stereo(100);
        assert!(rms_db(&left) > -20.0);
        assert!(left.iter().zip(&right).all(|(l, r)| l.to_bits() == r.to_bits()));
    }

    #[test]
    fn the_input_module_passes_the_capture_through_and_a_filter_after_it_filters_it() {
        let mut b = Bench::with(&["/module/new input 1", "/patch 1 left 0 left", "/patch 1 right 0 right"]);
        let (tone, mut at) =
            (|n: usize, hz: f32| crate::dsp::math::sin(core::f32::consts::TAU * hz * n as f32 / FS), 0);
        let capture = |rack: &mut TestRack, at: &mut usize| {
            let capture = rack.capture_mut();
            let [left, right] = capture;
            for (i, (l, r)) in left.iter_mut().zip(right).enumerate() {
                (*l, *r) = (0.5 * tone(*at + i, 5_000.0), 0.25 * tone(*at + i, 5_000.0));
            }
            *at += BLOCK;
        };
        // The first block fades the module in; the second is the capture itself.
        for _ in 0..2 {
            capture(&mut b.rack, &mut at);
            let mut both = STEREO_SILENCE;
            b.rack.process(&mut both);
            let expected = *b.rack.capture_mut();
            if at == 2 * BLOCK {
                assert_eq!(both, expected);
            }
        }
        b.run("/module/new vcf 2");
        b.run("/module/set 2 cutoff_hz 300");
        b.run("/patch 1 out 2 in");
        b.run("/unpatch 1 left 0 left");
        b.run("/unpatch 1 right 0 right");
        b.run("/patch 2 out 0 in");
        let mut heard = std::vec::Vec::new();
        for _ in 0..SECOND_BLOCKS / 4 {
            capture(&mut b.rack, &mut at);
            let mut both = STEREO_SILENCE;
            b.rack.process(&mut both);
            heard.extend_from_slice(&both[0]);
        }
        // 5 kHz through a 300 Hz 12 dB/octave lowpass: about 4 octaves up, -49 dB; the input's
        // `out` is (0.5 + 0.25) / 2 of full scale, -11.5 dB peak.
        let filtered = peak_db(&heard[BLOCK * 16..]);
        assert!(filtered < -50.0 && filtered > -80.0, "{filtered} dB");
    }

    #[test]
    fn an_output_a_kind_lacks_is_refused_and_changes_nothing() {
        let mut b = sine_to_out(440.0);
        b.run("/module/new mixer 2");
        let before = b.topology.cables().to_vec();
        assert_eq!(b.try_run("/patch 1 left 0 in"), Err(Error::UnknownPort), "a vco is mono");
        assert_eq!(b.try_run("/patch 2 middle 0 in"), Err(Error::UnknownPort));
        assert_eq!(b.try_run("/unpatch 2 left 0 left"), Err(Error::NoSuchCable));
        assert_eq!(b.topology.cables(), &before[..]);
        b.run("/patch 2 left 0 left");
        assert_eq!(b.try_run("/patch 2 left 0 left"), Err(Error::AlreadyPatched));
        b.run("/patch 2 right 0 left");
        b.run("/patch 2 out 0 left");
        assert_eq!(b.topology.cables().len(), before.len() + 3, "each output is a cable of its own");
    }

    fn sine_to_out(freq: f32) -> Bench {
        let mut b = Bench::new();
        b.run("/module/new vco 1");
        b.run("/module/set 1 wave sine");
        b.run(&format!("/module/set 1 freq {freq}"));
        b.run("/patch 1 out 0 in");
        b
    }

    /// Each kind (and four vcfs, which render in lanes) fed a 110 Hz sine into every input
    /// it had before parameters had ports of their own, into the output: the checksum of
    /// 0.25 s.
    fn unpatched_parameter_renders() -> std::vec::Vec<(&'static str, u64)> {
        let mut sums = std::vec::Vec::new();
        for kind in Kind::ALL.into_iter().filter(|&k| !matches!(k, Kind::Output | Kind::Input)) {
            let mut b = Bench::with(&["/module/new vco 1", "/module/set 1 wave sine", "/module/set 1 freq 110"]);
            b.run("/module/set 1 level 0.9");
            b.run(&format!("/module/new {} 2", kind.name()));
            // The reverb's `left` and `right` came later still.
            for port in kind.inputs().iter().filter(|p| !matches!(p.name, "left" | "right")) {
                b.run(&format!("/patch 1 out 2 {}", port.name));
            }
            b.run("/patch 2 out 0 in");
            sums.push((kind.name(), crate::checksum::fnv1a_f32(crate::checksum::FNV1A_OFFSET, &b.render(0.25))));
        }
        let mut b = Bench::with(&["/module/new vco 1", "/module/set 1 wave saw", "/module/new mixer 6"]);
        for v in 2..6 {
            b.run(&format!("/module/new vcf {v}"));
            b.run(&format!("/module/set {v} cutoff_hz {}", 300 * v));
            b.run(&format!("/patch 1 out {v} in"));
            b.run(&format!("/patch {v} out 6 in{}", v - 1));
        }
        b.run("/patch 6 out 0 in");
        sums.push(("vcf lanes", crate::checksum::fnv1a_f32(crate::checksum::FNV1A_OFFSET, &b.render(0.25))));
        sums
    }

    #[test]
    fn with_no_parameter_patched_every_kind_renders_the_bits_it_did_before_parameter_ports() {
        // Rendered by the parent commit (e21aed4), before parameters had ports.
        let before = [
            ("vco", 14534839065306755231),
            ("vcf", 6707883278344335095),
            ("vca", 18235941139823664911),
            ("adsr", 1664117573722829343),
            ("lfo", 17247673575297482059),
            ("noise", 3225685247580148622),
            ("delay", 4521204855357489889),
            ("reverb", 6640487985225687206),
            ("mixer", 2405607948338743783),
            ("sequencer", 2218085007460324133),
            ("vcf lanes", 6472266264388836362),
        ];
        assert_eq!(unpatched_parameter_renders(), before);
    }

    #[test]
    fn every_continuous_parameter_has_a_port_of_its_name_and_seeds_gates_and_choices_none() {
        for kind in Kind::ALL {
            for (i, p) in kind.params().iter().enumerate() {
                let port = kind.input_index(p.name);
                if p.patchable {
                    let port = port.unwrap_or_else(|| panic!("{}.{}", kind.name(), p.name));
                    assert_eq!(port as usize, kind.inputs().len() + i);
                    assert_eq!(kind.input_name(port), Some(p.name));
                } else {
                    // The adsr's gate input keeps its name and its meaning.
                    assert!(port.is_none() || (port.map(|p| p as usize) < Some(kind.inputs().len())), "{}", p.name);
                }
                assert!(!p.patchable || !p.is_choice());
            }
        }
        assert_eq!(Kind::Reverb.input_index("room"), Some(3), "after `in`, `left`, `right`");
        assert_eq!(Kind::Vcf.input_index("cutoff"), Some(1), "the old port keeps its meaning");
        assert_eq!(Kind::Lfo.input_index("seed"), None);
        assert_eq!(Kind::Vco.input_index("wave"), None);
    }

    /// The strongest rate, 0.25 to 10 Hz in 0.05 Hz steps, at which `x`'s level per block
    /// (its RMS envelope, sampled at fs / 64) moves, and how far (linear full scale).
    fn envelope_rate_hz(x: &[f32]) -> (f64, f64) {
        let env: std::vec::Vec<f32> = x.chunks_exact(BLOCK).map(|b| crate::measure::rms(b) as f32).collect();
        let mean = env.iter().sum::<f32>() / env.len() as f32;
        let env: std::vec::Vec<f32> = env.iter().map(|e| e - mean).collect();
        let block_rate = FS / BLOCK as f32;
        (5..=200)
            .map(|k| f64::from(k) * 0.05)
            .map(|hz| (hz, crate::measure::tone_amplitude(&env, hz, block_rate)))
            .fold((0.0, 0.0), |best, this| if this.1 > best.1 { this } else { best })
    }

    #[test]
    fn an_lfo_into_a_reverbs_room_moves_its_tails_level_at_the_lfos_rate() {
        let patch = [
            "/module/new noise 1",
            "/module/set 1 level 0.5",
            "/module/new reverb 2",
            "/module/set 2 mix 1",
            "/module/set 2 room 0.5",
            "/patch 1 out 2 in",
            "/patch 2 out 0 in",
            "/module/new lfo 3",
            "/module/set 3 rate_hz 2",
            "/module/set 3 depth 0.45",
        ];
        let mut still = Bench::with(&patch);
        let mut moved = Bench::with(&patch);
        moved.run("/patch 3 out 2 room");
        // 1 s to fill the combs, then 4 s: eight periods of the LFO.
        let (still, moved) = (still.render(5.0), moved.render(5.0));
        let (rate_hz, depth) = envelope_rate_hz(&moved[48_000..]);
        let (_, still_depth) = envelope_rate_hz(&still[48_000..]);
        // 0.05 Hz: the search's step; 4 s of envelope resolve 0.25 Hz between bins, so the
        // peak of a 2 Hz movement is the 2 Hz step.
        assert!((rate_hz - 2.0).abs() < 0.06, "{rate_hz} Hz");
        // Room 0.05..0.95 moves the wet level by several dB; unpatched, only the noise's own
        // per-block scatter moves it.
        assert!(depth > 4.0 * still_depth, "{depth} vs {still_depth}");
        assert!(all_finite(&moved));
    }

    #[test]
    fn an_lfo_into_a_delays_mix_moves_its_level_at_the_lfos_rate() {
        // Noise against its own copy 10 ms later: mix m gives power (1 - m)^2 + m^2, which
        // falls by 3 dB from m = 0 to m = 0.5, the LFO's range (0.25 +- 0.25 on a knob of 0).
        let mut b = Bench::with(&[
            "/module/new noise 1",
            "/module/new delay 2",
            "/module/set 2 time_s 0.01",
            "/module/set 2 feedback 0",
            "/module/set 2 mix 0",
            "/patch 1 out 2 in",
            "/patch 2 out 0 in",
            "/module/new lfo 3",
            "/module/set 3 rate_hz 3",
            "/module/set 3 depth 0.25",
            "/module/set 3 offset 0.25",
            "/patch 3 out 2 mix",
        ]);
        let out = b.render(4.0);
        let (rate_hz, depth) = envelope_rate_hz(&out[BLOCK * 8..]);
        assert!((rate_hz - 3.0).abs() < 0.06, "{rate_hz} Hz");
        // The envelope swings between 0.577 (full scale noise, -4.8 dB RMS) and 0.408: an
        // amplitude of ~0.085; half of it allows for the noise's scatter.
        assert!(depth > 0.04, "{depth}");
    }

    #[test]
    fn an_envelope_into_a_vcas_gain_adds_its_level_times_the_range() {
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/set 1 wave sine",
            "/module/new vca 2",
            "/module/set 2 gain 0",
            "/patch 1 out 2 in",
            "/patch 2 out 0 in",
            "/module/new adsr 3",
            "/module/set 3 attack_s 0.01",
            "/module/set 3 decay_s 0.01",
            "/module/set 3 sustain 0.25",
            "/patch 3 out 2 gain",
        ]);
        let closed = b.render(0.1);
        assert!(peak_db(&closed[BLOCK..]) < -120.0, "the gate closed: gain 0");
        b.run("/module/set 3 gate 1");
        let open = b.render(0.5);
        // Sustain 0.25 times the range 0..4 on a knob of 0: gain 1, a full-scale sine,
        // -3.01 dB RMS; 0.01 dB for the one-block glide's rounding.
        assert!((rms_db(&open[24_000 - 4_800..]) + 3.01).abs() < 0.01, "{}", rms_db(&open[19_200..]));
        b.run("/module/set 2 gain 1");
        let raised = b.render(0.2);
        // The knob moves under the cable: 1 + 1 = 2, +6.02 dB.
        assert!((rms_db(&raised[4_800..]) - (2.0f64.log10() * 20.0 - 3.01)).abs() < 0.01);
        b.run("/unpatch 3 out 2 gain");
        let alone = b.render(0.2);
        // The cable gone, the knob alone: gain 1.
        assert!((rms_db(&alone[4_800..]) + 3.01).abs() < 0.01, "{}", rms_db(&alone[4_800..]));
    }

    #[test]
    fn an_exponential_parameter_moves_by_octaves_and_stops_at_its_range() {
        // An LFO at depth 0, offset 1, is a steady 1.0: one octave up, 220 -> 440 Hz.
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/set 1 wave sine",
            "/module/set 1 freq_hz 220",
            "/patch 1 out 0 in",
            "/module/new lfo 3",
            "/module/set 3 depth 0",
            "/module/set 3 offset 1",
            "/patch 3 out 1 freq_hz",
        ]);
        let out = b.render(1.0);
        // 0.5 Hz: zero crossings over 1 s resolve ~0.01 Hz; the rest is start-up margin.
        assert!((freq_by_zero_crossings(&out[4800..], FS) - 440.0).abs() < 0.5);
        b.run("/module/set 3 offset 100");
        let out = b.render(0.5);
        assert!(all_finite(&out), "2^100 times the knob is clamped, not infinite");
    }

    #[test]
    fn a_vco_fed_back_into_its_own_fm_stays_finite_and_at_its_pitch() {
        // Its own sine, a block late, into fm at depth 0.1: the frequency swings by a tenth
        // each way, and the sine's mean is 0.
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/set 1 wave sine",
            "/module/set 1 freq 220",
            "/module/set 1 fm_depth 0.1",
            "/patch 1 out 0 in",
            "/patch 1 out 1 fm",
        ]);
        let out = b.render(4.0);
        assert!(all_finite(&out));
        let hz = freq_by_zero_crossings(&out[48_000..], FS);
        // 1%: the phase runs faster where the fed-back sine is positive and so spends less
        // time there; that second-order pull (of the order of depth^2 / 2, 0.5%) is what
        // feedback FM does (measured: 220.40 Hz); a runaway loop would be far off.
        assert!((hz - 220.0).abs() < 2.2, "{hz} Hz");
        // And it is fed back: the same vco without the cable is a clean 220 Hz sine.
        let mut clean = Bench::with(&[
            "/module/new vco 1",
            "/module/set 1 wave sine",
            "/module/set 1 freq 220",
            "/patch 1 out 0 in",
        ]);
        assert!(diff_peak_db(&out, &clean.render(4.0)) > -20.0);
    }

    #[test]
    fn a_new_feedback_cable_starts_from_its_source_s_last_block() {
        // A sine plays; then a feedback cable from it into a vca: in that cable's first
        // block the vca plays the sine's block before, faded in, not a block left from
        // before or silence.
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/set 1 wave sine",
            "/module/set 1 freq 440",
            "/patch 1 out 0 in",
            "/module/new vca 2",
            "/patch 2 out 0 in",
        ]);
        b.render(0.1);
        let last = *b.rack.output_of(1).unwrap();
        b.run("/patch 1 out 2 in feedback");
        b.render(BLOCK as f32 / FS);
        let heard = b.rack.output_of(2).unwrap();
        let ramp = |i: usize| (i + 1) as f32 / BLOCK as f32;
        assert!(heard.iter().enumerate().all(|(i, &x)| (x - last[i] * ramp(i)).abs() < 1e-6), "{heard:?}");
        assert!(heard[BLOCK - 1].abs() > 0.01);
    }

    #[test]
    fn a_parameter_cable_far_past_the_range_stops_at_its_end() {
        for kind in Kind::ALL {
            for spec in kind.params().iter().filter(|p| p.patchable) {
                // An exponential parameter's knob at 0 stays there (0 times any octaves).
                let knobs = [spec.min, spec.default, spec.max];
                for knob in knobs.into_iter().filter(|&k| k != 0.0 || spec.curve == crate::describe::Curve::Linear) {
                    assert_eq!(spec.modulated(knob, 1e30), spec.max, "{}.{}", kind.name(), spec.name);
                    assert_eq!(spec.modulated(knob, 1e4), spec.max, "{}.{}", kind.name(), spec.name);
                    assert_eq!(spec.modulated(knob, -1e30), spec.min, "{}.{}", kind.name(), spec.name);
                    assert!(spec.modulated(knob, f32::NAN).is_nan() && spec.modulated(knob, f32::INFINITY).is_nan());
                }
            }
        }
    }

    #[test]
    fn two_vcos_crossing_their_fm_stay_finite_at_any_depth() {
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/new vco 2",
            "/module/set 1 freq 110",
            "/module/set 2 freq 331",
            "/module/set 1 fm_depth 16",
            "/module/set 2 fm_depth 16",
            "/patch 1 out 2 fm",
            "/patch 2 out 1 fm",
            "/patch 1 out 0 in",
        ]);
        let out = b.render(2.0);
        assert!(all_finite(&out) && peak_db(&out) <= 0.5, "{}", peak_db(&out));
    }

    #[test]
    fn a_delay_fed_back_into_itself_through_a_vca_decays() {
        // A click into a delay whose own feedback is 0, its output back into its input through
        // a vca at gain 0.5: each trip round the loop (0.1 s and a block) halves it.
        let mut b = Bench::with(&[
            "/module/new delay 1",
            "/module/set 1 time_s 0.1",
            "/module/set 1 feedback 0",
            "/module/set 1 mix 1",
            "/module/new vca 2",
            "/module/set 2 gain 0.5",
            "/patch 1 out 2 in",
            "/patch 2 out 1 in",
            "/patch 1 out 0 in",
            "/module/new lfo 3",
            "/module/set 3 shape square",
            "/module/set 3 rate_hz 20",
            "/module/new vca 4",
            "/patch 3 out 4 in",
            "/patch 4 out 1 in",
        ]);
        let _ = b.render(0.02);
        b.run("/module/set 4 gain 0");
        let out = b.render(3.0);
        assert!(all_finite(&out));
        // The level of each 0.5 s falls: ~4 trips, -24 dB a half second; 10 dB of margin
        // for where the trips fall.
        let halves: std::vec::Vec<f64> = out.chunks_exact(24_000).map(rms_db).collect();
        assert!(halves.windows(2).all(|w| w[1] < w[0] - 10.0), "{halves:?}");
        assert!(halves[0] > -40.0, "the click went round: {halves:?}");
    }

    #[test]
    fn a_loop_with_gain_is_flushed_never_infinite() {
        // Gain 4 round a delay: it grows by 12 dB a trip until it passes 1e30 and is flushed.
        let mut b = Bench::with(&[
            "/module/new noise 5",
            "/module/new delay 1",
            "/module/set 1 time_s 0.001",
            "/module/set 1 feedback 0",
            "/module/set 1 mix 1",
            "/module/new vca 2",
            "/module/set 2 gain 4",
            "/patch 5 out 1 in",
            "/patch 1 out 2 in",
            "/patch 2 out 1 in",
            "/patch 2 out 0 in",
        ]);
        for _ in 0..10 {
            let out = b.render(1.0);
            assert!(out.iter().all(|x| x.is_finite()));
        }
    }

    #[test]
    fn a_cycle_repatched_the_other_way_round_within_a_block_plays_on() {
        // 1 -> 2 plain, 2 -> 1 feedback; then, before the next block, both unpatched and
        // patched again in the other order: 2 -> 1 is plain now and 1 -> 2 the feedback.
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/new vco 2",
            "/module/set 1 fm_depth 0.1",
            "/module/set 2 fm_depth 0.1",
            "/patch 1 out 2 fm",
            "/patch 2 out 1 fm",
            "/patch 1 out 0 in",
        ]);
        let _ = b.render(0.1);
        for line in ["/unpatch 2 out 1 fm", "/unpatch 1 out 2 fm", "/patch 2 out 1 fm", "/patch 1 out 2 fm"] {
            b.run(line);
        }
        let feedback: std::vec::Vec<_> =
            b.topology.cables().iter().filter(|c| c.is_feedback()).map(|c| (c.src, c.dst)).collect();
        assert_eq!(feedback, [(1, 2)]);
        let out = b.render(0.5);
        assert!(all_finite(&out) && rms_db(&out[BLOCK..]) > -10.0, "{}", rms_db(&out));
    }

    #[test]
    fn unpatching_a_feedback_cable_removes_the_loop() {
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/set 1 wave sine",
            "/module/set 1 freq 220",
            "/patch 1 out 0 in",
        ]);
        let clean = b.render(0.5);
        b.run("/patch 1 out 1 fm");
        let _ = b.render(0.5);
        b.run("/unpatch 1 out 1 fm");
        let _ = b.render(0.1);
        let after = b.render(0.5);
        // A clean sine again (its phase moved: compare the pitch and level, not the samples).
        assert!((freq_by_zero_crossings(&after, FS) - 220.0).abs() < 0.5);
        assert!((rms_db(&after) - rms_db(&clean[BLOCK..])).abs() < 0.05);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_host_rack_is_the_31_9_mb_the_documents_say() {
        // HostRack's doc, ARCHITECTURE.md and the host's stack comments quote this figure:
        // when capacities change, change them with it.
        let mb = size_of::<HostRack>() as f64 / 1e6;
        assert!((mb - 31.94).abs() < 0.005, "{mb} MB");
    }

    #[test]
    fn a_sine_patched_to_the_output_is_heard_at_its_pitch_and_level() {
        let mut b = sine_to_out(440.0);
        let out = b.render(1.0);
        // 0.5 Hz: zero crossings over 1 s resolve ~0.01 Hz; the rest is start-up margin.
        assert!((freq_by_zero_crossings(&out[BLOCK..], FS) - 440.0).abs() < 0.5);
        // Full-scale sine: -3.01 dB RMS; 0.05 dB for the first block's fade-in.
        assert!((rms_db(&out[BLOCK..]) + 3.01).abs() < 0.05);
        assert_eq!((b.rack.module_count(), b.rack.cable_count()), (2, 1));
    }

    #[test]
    fn clear_in_place_gives_what_new_gives() {
        let mut used = sine_to_out(440.0);
        used.run("/module/new delay 2");
        let _ = used.render(0.1);
        used.rack.clear_in_place(FS);
        let mut fresh = sine_to_out(440.0);
        used.topology = used.rack.topology();
        for line in ["/module/new vco 1", "/module/set 1 wave sine", "/module/set 1 freq 440", "/patch 1 out 0 in"] {
            used.run(line);
        }
        assert_eq!(used.rack.module_count(), 2);
        assert!(diff_peak_db(&used.render(0.2), &fresh.render(0.2)) < -90.0);
    }

    #[test]
    fn filters_sharing_lanes_render_exactly_what_lone_filters_do() {
        // Five voices: four filters share lanes, the fifth runs alone; each must equal the
        // same voice in a rack of its own, bit for bit.
        let voice = |b: &mut Bench, v: i32, hz: f32| {
            let (osc, flt) = (10 + v, 20 + v);
            for line in [
                format!("/module/new vco {osc}"),
                format!("/module/set {osc} freq {hz}"),
                format!("/module/new vcf {flt}"),
                format!("/module/set {flt} cutoff_hz {}", 300.0 * (v + 1) as f32),
                format!("/module/set {flt} q {}", 0.7 + v as f32),
                format!("/module/set {flt} mode {}", v % 3),
                format!("/patch {osc} out {flt} in"),
                format!("/patch {flt} out 0 in"),
            ] {
                b.run(&line);
            }
        };
        let hz = [110.0, 220.0, 330.0, 440.0, 550.0];
        let mut together = Bench::new();
        for (v, &f) in hz.iter().enumerate() {
            voice(&mut together, v as i32, f);
        }
        let mut alone: std::vec::Vec<Bench> = hz
            .iter()
            .enumerate()
            .map(|(v, &f)| {
                let mut b = Bench::new();
                voice(&mut b, v as i32, f);
                b
            })
            .collect();
        let mut block = STEREO_SILENCE;
        for n in 0..50 {
            together.rack.process(&mut block);
            for (v, b) in alone.iter_mut().enumerate() {
                b.rack.process(&mut block);
                let id = 20 + v as u16;
                assert_eq!(together.rack.output_of(id), b.rack.output_of(id), "voice {v}, block {n}");
            }
        }
    }

    /// A clock that advances 1000 a reading, and what each slot was charged.
    struct Ticks {
        now: u64,
        readings: u64,
        charged: [u64; 16],
    }

    impl SlotTimer for Ticks {
        fn now(&mut self) -> u64 {
            self.readings += 1;
            self.now += 1000 + self.readings; // uneven steps: a lanes run's remainder shows
            self.now
        }

        fn charge(&mut self, slot: usize, spent: u64) {
            self.charged[slot] += spent;
        }
    }

    #[test]
    fn timed_rendering_gives_the_same_samples_and_charges_every_module_once() {
        // Five filtered voices: four filters share lanes, the fifth runs alone.
        let build = || {
            let mut b = Bench::new();
            for v in 0..5 {
                let (osc, flt) = (10 + v, 20 + v);
                for line in [
                    format!("/module/new vco {osc}"),
                    format!("/module/set {osc} freq {}", 110 * (v + 1)),
                    format!("/module/new vcf {flt}"),
                    format!("/patch {osc} out {flt} in"),
                    format!("/patch {flt} out 0 in"),
                ] {
                    b.run(&line);
                }
            }
            b
        };
        let (mut plain, mut timed) = (build(), build());
        let mut ticks = Ticks { now: 0, readings: 0, charged: [0; 16] };
        let (mut a, mut b) = (STEREO_SILENCE, STEREO_SILENCE);
        for n in 0..20 {
            plain.rack.process(&mut a);
            let (charged, first_reading) = (ticks.charged.iter().sum::<u64>(), ticks.now + 1001 + ticks.readings);
            timed.rack.process_timed(&mut b, &mut ticks);
            assert_eq!(a.map(|c| c.map(f32::to_bits)), b.map(|c| c.map(f32::to_bits)), "block {n}");
            // One reading before the first module, the rest after each module or run: the
            // charges add up to the time between the first and the last.
            assert_eq!(ticks.charged.iter().sum::<u64>() - charged, ticks.now - first_reading, "block {n}");
        }
        let slots: std::vec::Vec<usize> = (0..16).filter(|&s| timed.rack.slot_module(s).is_some()).collect();
        assert_eq!(slots.len(), 11, "output, five vcos, five vcfs");
        assert!(slots.iter().all(|&s| ticks.charged[s] > 0), "{:?}", ticks.charged);
        let filters: std::vec::Vec<u64> = (20..25)
            .map(|id| ticks.charged[(0..16).find(|&s| timed.rack.slot_module(s).map(|m| m.0) == Some(id)).unwrap()])
            .collect();
        let shared = filters.iter().filter(|&&c| c.abs_diff(filters[0]) <= 20 * LANES as u64).count();
        assert!(shared >= 4, "four filters share one run's time evenly: {filters:?}");
        assert_eq!(timed.rack.slot_module(0).map(|m| m.1), Some(Kind::Output));
        assert_eq!(timed.rack.slot_module(99), None);
    }

    #[test]
    fn an_empty_rack_is_silent() {
        let mut b = Bench::new();
        assert_eq!(peak_db(&b.render(0.1)), f64::NEG_INFINITY);
    }

    #[test]
    fn a_new_module_fades_in_over_one_block_without_a_click() {
        let mut b = Bench::new();
        b.run("/module/new vco 1");
        b.run("/module/set 1 wave sine");
        b.run("/module/set 1 freq 5000"); // a fast sine: its own steps are large
        b.run("/patch 1 out 0 in");
        let out = b.render(0.1);
        assert!(out[0].abs() <= 1.0 / BLOCK as f32 + 1e-6, "first sample {}", out[0]);
        let steady = max_step(&out[2 * BLOCK..]);
        assert!(max_step(&out[..2 * BLOCK]) <= 2.0 * steady);
    }

    #[test]
    fn freeing_a_module_fades_it_out_in_one_block_then_silence() {
        let mut b = sine_to_out(220.0);
        let before = b.render(0.2);
        b.run("/module/free 1");
        let after = b.render(0.2);
        let steady = max_step(&before);
        let mut joined = before[before.len() - BLOCK..].to_vec();
        joined.extend_from_slice(&after[..2 * BLOCK]);
        assert!(max_step(&joined) <= 2.0 * steady, "click on free");
        assert!(after[BLOCK - 1].abs() < 0.05);
        assert_eq!(peak_db(&after[BLOCK..]), f64::NEG_INFINITY);
        assert_eq!((b.rack.module_count(), b.rack.cable_count()), (1, 0));
    }

    #[test]
    fn unpatch_fades_out_and_repatch_fades_in_without_clicks() {
        let mut b = sine_to_out(300.0);
        let steady_run = b.render(0.2);
        let steady = max_step(&steady_run);
        b.run("/unpatch 1 out 0 in");
        let gone = b.render(0.1);
        assert_eq!(peak_db(&gone[BLOCK..]), f64::NEG_INFINITY);
        b.run("/patch 1 out 0 in");
        let back = b.render(0.1);
        let mut all = steady_run;
        all.extend_from_slice(&gone);
        all.extend_from_slice(&back);
        assert!(max_step(&all) <= 2.0 * steady);
        assert!((rms_db(&back[BLOCK..]) + 3.01).abs() < 0.05);
    }

    #[test]
    fn unpatch_and_repatch_within_one_block_changes_nothing() {
        let mut reference = sine_to_out(300.0);
        let mut edited = sine_to_out(300.0);
        let _ = (reference.render(0.1), edited.render(0.1));
        edited.run("/unpatch 1 out 0 in");
        edited.run("/patch 1 out 0 in");
        assert!(diff_peak_db(&reference.render(0.1), &edited.render(0.1)) < -90.0);
    }

    #[test]
    fn a_parameter_change_glides_without_a_click_and_lands_within_a_block() {
        let mut b = sine_to_out(440.0);
        let before = b.render(0.2);
        b.run("/module/set 1 freq 220");
        let after = b.render(1.0);
        let mut joined = before[before.len() - BLOCK..].to_vec();
        joined.extend_from_slice(&after[..4 * BLOCK]);
        assert!(max_step(&joined) <= 2.0 * max_step(&before));
        // From the second block on, the new pitch: 0.5 Hz as above.
        assert!((freq_by_zero_crossings(&after[BLOCK..], FS) - 220.0).abs() < 0.5);
    }

    #[test]
    fn several_cables_into_one_port_are_summed() {
        let mut b = Bench::new();
        for (id, hz) in [(1, 200), (2, 300)] {
            b.run(&format!("/module/new vco {id}"));
            b.run(&format!("/module/set {id} wave sine"));
            b.run(&format!("/module/set {id} freq {hz}"));
            b.run(&format!("/module/set {id} level 0.25"));
            b.run(&format!("/patch {id} out 0 in"));
        }
        let out = b.render(1.0);
        let spectrum = spectrum_db(&out[4800..4800 + 32768]);
        // Each at 0.25 (-12.04 dB); 0.9 dB of window scalloping.
        for hz in [200.0, 300.0] {
            assert!((level_near_db(&spectrum, FS, hz, 2) + 12.04).abs() < 0.9);
        }
    }

    #[test]
    fn the_standard_voice_sounds_and_stays_in_range() {
        let mut b = Bench::with(&[
            "/module/new vco 1",
            "/module/new vcf 2",
            "/module/new vca 3",
            "/module/new adsr 4",
            "/module/set 1 freq 110",
            "/module/set 2 cutoff_hz 2000",
            "/module/set 2 q 2",
            "/module/set 3 gain 0.05",
            "/module/set 4 gate 1",
            "/patch 1 out 2 in",
            "/patch 2 out 3 in",
            "/patch 4 out 3 cv",
            "/patch 3 out 0 in",
        ]);
        let out = b.render(1.0);
        assert!(all_finite(&out));
        // Saw through a gentle filter at 0.05 * sustain 0.7: about -30 dBFS peak, well below 0.
        let peak = peak_db(&out[FS as usize / 2..]);
        assert!(peak < -20.0 && peak > -40.0, "peak {peak}");
        assert!((freq_by_zero_crossings(&out[FS as usize / 2..], FS) - 110.0).abs() < 1.0);
    }

    /// A standard voice with an LFO on the cutoff, its gate held, in a fresh bench.
    fn voice_with_lfo() -> Bench {
        Bench::with(&[
            "/module/new vco 1",
            "/module/new vcf 2",
            "/module/new vca 3",
            "/module/new adsr 4",
            "/module/new lfo 5",
            "/module/set 1 freq 110",
            "/module/set 4 attack 0.3",
            "/module/set 4 gate 1",
            "/module/set 5 rate 3",
            "/patch 1 out 2 in",
            "/patch 5 out 2 cutoff",
            "/patch 2 out 3 in",
            "/patch 4 out 3 cv",
            "/patch 3 out 0 in",
        ])
    }

    #[test]
    fn a_voice_handed_to_another_rack_carries_on_without_a_seam() {
        // Racks A and C play the same voice for 0.2 s (mid-attack, the LFO mid-sweep). Then
        // the voice moves from A to B as a move between workers does: A exports each module
        // (it leaves), B builds the voice and adopts each module's state. In that block A and
        // B together play what C, which kept the voice, plays; from then on B alone does.
        let (mut a, mut c) = (voice_with_lfo(), voice_with_lfo());
        a.render(0.2);
        c.render(0.2);
        let mut b = voice_with_lfo();
        let mut fresh = voice_with_lfo();
        for id in 1..=5 {
            let state = a.rack.module(id).expect("module on A").clone();
            a.rack.leave(id);
            assert!(b.rack.adopt(id, &state), "module {id} adopted");
        }
        let (mut block_a, mut block_b, mut block_c) = (STEREO_SILENCE, STEREO_SILENCE, STEREO_SILENCE);
        a.rack.process(&mut block_a);
        b.rack.process(&mut block_b);
        c.rack.process(&mut block_c);
        let [block_a, block_b, block_c] = [block_a[0], block_b[0], block_c[0]];
        let peak = block_c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.01, "the voice plays: {peak}");
        let seam =
            block_a.iter().zip(&block_b).zip(&block_c).map(|((x, y), z)| (x + y - z).abs()).fold(0.0f32, f32::max);
        assert!(seam <= peak * 1e-6, "A + B differ from C by {seam} in the move's block (peak {peak})");
        assert!(block_a[0] != 0.0 && block_b[BLOCK - 1] != 0.0, "A fades out while B fades in");
        let (heard_a, heard_b, heard_c, heard_fresh) = (a.render(0.1), b.render(0.1), c.render(0.1), fresh.render(0.1));
        assert!(heard_a.iter().all(|&v| v == 0.0), "A is empty after the block");
        assert_eq!(a.rack.module_count(), 1, "only A's output is left");
        assert_eq!(heard_b, heard_c, "B plays on exactly as C does");
        let differs = heard_fresh.iter().zip(&heard_c).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(differs > peak * 0.1, "a fresh voice plays something else: {differs} (peak {peak})");
        // Nothing is taken across kinds, by a missing id, or for a delay (its line is in a pool).
        let vco = c.rack.module(1).unwrap().clone();
        assert!(!b.rack.adopt(2, &vco) && !b.rack.adopt(9, &vco));
        b.run("/module/new delay 6");
        c.run("/module/new delay 6");
        // A module not yet heard has no state to hand over: the other rack's fresh one is it.
        assert!(c.rack.module(6).is_none());
        c.render(0.01);
        let delay = c.rack.module(6).unwrap().clone();
        assert!(!b.rack.adopt(6, &delay));
    }

    /// Link channels between racks rendered on one thread in turn: a receive finds what a
    /// send published earlier in the same turn, or nothing.
    #[derive(Default)]
    struct Table {
        blocks: std::collections::BTreeMap<u16, Block>,
    }

    impl Links for Table {
        fn send(&mut self, channel: u16, block: &Block) {
            self.blocks.insert(channel, *block);
        }

        fn receive(&mut self, channel: u16, block: &mut Block) -> bool {
            self.blocks.remove(&channel).map(|b| *block = b).is_some()
        }
    }

    /// Two saws into one delay and to the output, the delay to the output: a shared bus.
    const BUS: [&str; 12] = [
        "/module/new vco 1",
        "/module/set 1 freq 220",
        "/module/new vco 2",
        "/module/set 2 freq 330",
        "/module/new delay 3",
        "/module/set 3 time 0.01",
        "/module/set 3 feedback 0.6",
        "/patch 2 out 0 in",
        "/patch 2 out 3 in",
        "/patch 3 out 0 in",
        "/patch 1 out 0 in",
        "/patch 1 out 3 in",
    ];

    #[test]
    fn a_shared_bus_split_over_two_racks_plays_what_one_rack_plays() {
        let mut one = Bench::with(&BUS);
        // A holds vco 1, and sends it to the delay on B; B holds the rest, the receive
        // patched into the delay. The modules the host adds for the link are steady at once.
        let mut a = Bench::with(&BUS[..2]);
        a.run("/patch 1 out 0 in");
        a.rack.apply(&Command::Link { id: 100, channel: 7, end: LinkEnd::Send });
        a.rack.apply(&Command::Patch { src: 1, out: 0, dst: 100, port: 0 });
        let mut b = Bench::with(&BUS[2..10]);
        b.rack.apply(&Command::Link { id: 101, channel: 7, end: LinkEnd::Receive });
        b.rack.apply(&Command::Patch { src: 101, out: 0, dst: 3, port: 0 });
        let mut table = Table::default();
        let (mut whole, mut split) = (std::vec::Vec::new(), std::vec::Vec::new());
        for _ in 0..(0.5 * FS) as usize / BLOCK {
            let (mut x, mut y, mut z) = (STEREO_SILENCE, STEREO_SILENCE, STEREO_SILENCE);
            one.rack.process(&mut x);
            a.rack.process_linked(&mut y, &mut Untimed, &mut table);
            b.rack.process_linked(&mut z, &mut Untimed, &mut table);
            let [x, y, z] = [x[0], y[0], z[0]];
            whole.extend_from_slice(&x);
            split.extend(y.iter().zip(&z).map(|(p, q)| p + q));
        }
        assert!(rms_db(&whole) > -20.0, "the bus plays: {} dB", rms_db(&whole));
        // The same sums in another order: within rounding, 1e-6 of full scale.
        let differs = whole.iter().zip(&split).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(differs < 1e-6, "two racks differ from one by {differs}");
        // A receive whose block did not come takes silence: B alone plays vco 2 and the
        // delay's tail of what it had.
        let (mut y, mut z) = (STEREO_SILENCE, STEREO_SILENCE);
        b.rack.process_linked(&mut z, &mut Untimed, &mut Table::default());
        a.rack.process_linked(&mut y, &mut Untimed, &mut table);
        assert!(z[0].iter().all(|v| v.is_finite()));
        assert_eq!(a.rack.module_count(), 3, "output, vco, send");
    }

    #[test]
    fn cables_summed_ahead_of_a_receive_give_the_same_sum() {
        // B: three saws into the delay and the output, the delay (fed by A through a
        // receive) into the output too: both ports sum their early cables ahead.
        let local = [
            "/module/new vco 2",
            "/module/new vco 4",
            "/module/set 4 freq 277",
            "/module/new vco 5",
            "/module/set 5 freq 415",
            "/module/new delay 3",
            "/module/set 3 time 0.01",
            "/patch 2 out 3 in",
            "/patch 4 out 3 in",
            "/patch 5 out 3 in",
            "/patch 2 out 0 in",
            "/patch 4 out 0 in",
            "/patch 5 out 0 in",
            "/patch 3 out 0 in",
        ];
        let mut one = Bench::with(&local);
        one.run("/module/new vco 1");
        one.run("/patch 1 out 3 in");
        let mut a = Bench::with(&["/module/new vco 1"]);
        a.rack.apply(&Command::Link { id: 100, channel: 0, end: LinkEnd::Send });
        a.rack.apply(&Command::Patch { src: 1, out: 0, dst: 100, port: 0 });
        let mut b = Bench::with(&local);
        b.rack.apply(&Command::Link { id: 101, channel: 0, end: LinkEnd::Receive });
        b.rack.apply(&Command::Patch { src: 101, out: 0, dst: 3, port: 0 });
        let mut table = Table::default();
        let mut worst = 0.0f32;
        for _ in 0..200 {
            let (mut x, mut y, mut z) = (STEREO_SILENCE, STEREO_SILENCE, STEREO_SILENCE);
            one.rack.process(&mut x);
            a.rack.process_linked(&mut y, &mut Untimed, &mut table);
            b.rack.process_linked(&mut z, &mut Untimed, &mut table);
            let [x, z] = [x[0], z[0]];
            worst = x.iter().zip(&z).map(|(p, q)| (p - q).abs()).fold(worst, f32::max);
        }
        assert_eq!(b.rack.presums.len(), 2, "the delay's input and the output's");
        assert!(worst < 1e-6, "summed ahead, B differs from one rack by {worst}");
    }

    #[test]
    fn a_receive_whose_sender_goes_missing_ramps_to_silence_and_fades_back() {
        let mut b = Bench::with(&["/module/new vca 2", "/patch 2 out 0 in"]);
        b.rack.apply(&Command::Link { id: 101, channel: 3, end: LinkEnd::Receive });
        b.rack.apply(&Command::Patch { src: 101, out: 0, dst: 2, port: 0 });
        // A steady 0.5 from the sender, then two blocks missing, then back.
        let mut heard = std::vec::Vec::new();
        for block in 0..8 {
            let mut table = Table::default();
            if !(3..5).contains(&block) {
                table.blocks.insert(3, [0.5; BLOCK]);
            }
            let mut out = STEREO_SILENCE;
            b.rack.process_linked(&mut out, &mut Untimed, &mut table);
            heard.extend_from_slice(&out[0]);
        }
        assert_eq!(heard[2 * BLOCK..3 * BLOCK], [0.5; BLOCK], "steady, unfaded");
        assert_eq!(heard[4 * BLOCK..5 * BLOCK], [0.0; BLOCK], "silent while missing");
        assert_eq!(heard[6 * BLOCK..], [0.5; 2 * BLOCK], "back");
        // From the block after the vca's own fade-in: no step larger than one ramp's, 0.5
        // over a block.
        assert!(max_step(&heard[BLOCK..]) <= 0.5 / BLOCK as f32 * 1.01, "{}", max_step(&heard[BLOCK..]));
    }

    #[test]
    fn racks_that_send_to_each_other_render_their_sends_before_their_receives() {
        // A: vco 1 -> send 0; receive 1 -> vca 2 -> output. B: receive 0 -> vcf 3 -> send 1.
        // Rendered on two threads at once, each waiting for the other's block: this only
        // finishes if each rack publishes its send before it waits on its receive.
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::{Arc, Mutex};
        struct Shared {
            turn: [AtomicU32; 2],
            blocks: [Mutex<Block>; 2],
        }
        struct Threaded {
            shared: Arc<Shared>,
            turn: u32,
        }
        impl Links for Threaded {
            fn send(&mut self, channel: u16, block: &Block) {
                *self.shared.blocks[channel as usize].lock().unwrap() = *block;
                self.shared.turn[channel as usize].store(self.turn, Ordering::Release);
            }
            fn receive(&mut self, channel: u16, block: &mut Block) -> bool {
                let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while self.shared.turn[channel as usize].load(Ordering::Acquire) != self.turn {
                    assert!(std::time::Instant::now() < until, "waited 5 s on channel {channel}: a deadlock");
                    std::thread::yield_now();
                }
                *block = *self.shared.blocks[channel as usize].lock().unwrap();
                true
            }
        }
        let shared = Arc::new(Shared {
            turn: [AtomicU32::new(0), AtomicU32::new(0)],
            blocks: [Mutex::new([0.0; BLOCK]), Mutex::new([0.0; BLOCK])],
        });
        let mut a = Bench::with(&["/module/new vco 1", "/module/new vca 2", "/patch 2 out 0 in"]);
        a.rack.apply(&Command::Link { id: 100, channel: 0, end: LinkEnd::Send });
        a.rack.apply(&Command::Patch { src: 1, out: 0, dst: 100, port: 0 });
        a.rack.apply(&Command::Link { id: 101, channel: 1, end: LinkEnd::Receive });
        a.rack.apply(&Command::Patch { src: 101, out: 0, dst: 2, port: 0 });
        let mut b = Bench::with(&["/module/new vcf 3"]);
        b.rack.apply(&Command::Link { id: 102, channel: 0, end: LinkEnd::Receive });
        b.rack.apply(&Command::Patch { src: 102, out: 0, dst: 3, port: 0 });
        b.rack.apply(&Command::Link { id: 103, channel: 1, end: LinkEnd::Send });
        b.rack.apply(&Command::Patch { src: 3, out: 0, dst: 103, port: 0 });
        let render = |mut bench: Bench, shared: Arc<Shared>| {
            std::thread::spawn(move || {
                let mut heard = std::vec::Vec::new();
                for turn in 1..=200 {
                    let mut block = STEREO_SILENCE;
                    bench.rack.process_linked(&mut block, &mut Untimed, &mut Threaded { shared: shared.clone(), turn });
                    heard.extend_from_slice(&block[0]);
                }
                heard
            })
        };
        let (heard_a, heard_b) = (render(a, shared.clone()), render(b, shared));
        let (heard_a, heard_b) = (heard_a.join().unwrap(), heard_b.join().unwrap());
        assert!(heard_b.iter().all(|&v| v == 0.0), "B's output has nothing patched to it");
        // A hears its own vco, filtered on B, back in the same block.
        assert!(rms_db(&heard_a[BLOCK * 10..]) > -10.0, "{} dB", rms_db(&heard_a));
    }

    #[test]
    fn clear_fades_everything_out_and_leaves_the_output() {
        let mut b = sine_to_out(440.0);
        b.run("/module/new delay 2");
        b.run("/patch 1 out 2 in");
        b.run("/patch 2 out 0 in");
        let _ = b.render(0.1);
        b.run("/patch/clear");
        let after = b.render(0.5);
        assert_eq!(peak_db(&after[BLOCK..]), f64::NEG_INFINITY);
        assert_eq!((b.rack.module_count(), b.rack.cable_count()), (1, 0));
        b.run("/module/new delay 2"); // the pool entry came back
    }

    #[test]
    fn free_and_recreate_in_one_block_reuses_the_id_and_fades_between() {
        let mut b = sine_to_out(200.0);
        let before = b.render(0.1);
        b.run("/module/free 1");
        b.run("/module/new vco 1");
        b.run("/module/set 1 wave sine");
        b.run("/module/set 1 freq 200");
        b.run("/patch 1 out 0 in");
        let after = b.render(0.2);
        let mut joined = before;
        joined.extend_from_slice(&after);
        assert!(all_finite(&joined));
        assert!((rms_db(&after[BLOCK..]) + 3.01).abs() < 0.05);
        assert_eq!(b.rack.module_count(), 2);
    }

    #[test]
    fn ghosts_give_way_when_edits_outrun_the_capacity_within_one_block() {
        let mut b = Bench::new();
        // 15 modules fill the 16 slots; freeing and re-creating them all in one block needs
        // 30 slots: the ghosts are cut to make room, and nothing fails.
        for round in 0..3 {
            for id in 1..16 {
                if round > 0 {
                    b.run(&format!("/module/free {id}"));
                }
                b.run(&format!("/module/new vco {id}"));
                b.run(&format!("/patch {id} out 0 in"));
            }
        }
        let out = b.render(0.1);
        assert!(all_finite(&out));
        assert_eq!((b.rack.module_count(), b.rack.cable_count()), (16, 15));
    }

    #[test]
    fn a_ghost_cable_reversed_in_one_block_does_not_stall_the_order() {
        let mut b = Bench::new();
        b.run("/module/new vca 1");
        b.run("/module/new vca 2");
        b.run("/module/new vco 3");
        b.run("/patch 3 out 1 in");
        b.run("/patch 1 out 2 in");
        b.run("/patch 2 out 0 in");
        let _ = b.render(0.05);
        b.run("/unpatch 1 out 2 in");
        b.run("/unpatch 2 out 0 in");
        b.run("/patch 2 out 1 cv");
        b.run("/patch 1 out 0 in");
        let _ = b.render(0.05);
        assert_eq!(b.rack.order.len(), 4);
        // vca 2 has no input, so vca 1's cv is 0: silence, once the old path has faded.
        assert_eq!(peak_db(&b.render(0.1)[BLOCK..]), f64::NEG_INFINITY);
    }

    #[test]
    fn refused_requests_change_neither_sound_nor_patch() {
        let mut reference = sine_to_out(440.0);
        let mut poked = sine_to_out(440.0);
        for bad in [
            "/module/new vco 1",
            "/module/new vco 0",
            "/module/free 0",
            "/module/new kazoo 5",
            "/module/set 1 freq nan",
            "/module/set 1 freq inf",
            "/module/set 1 wave 9",
            "/module/set 9 freq 1",
            "/patch 0 out 1 fm",
            "/patch 1 out 0 in",
            "/unpatch 0 out 1 fm",
            "/module/new vco 10000",
            "/module/new vco -3",
        ] {
            assert!(poked.try_run(bad).is_err(), "{bad}");
        }
        assert!(diff_peak_db(&reference.render(0.2), &poked.render(0.2)) < -90.0);
    }

    fn arb_line() -> impl Strategy<Value = String> {
        let id = 0i32..6;
        let kind = prop::sample::select(vec![
            "vco", "vcf", "vca", "adsr", "lfo", "noise", "delay", "reverb", "mixer", "bogus",
        ]);
        let param = prop::sample::select(vec![
            "freq",
            "wave",
            "pw",
            "level",
            "fm_depth",
            "cutoff_hz",
            "q",
            "mode",
            "gain",
            "attack_s",
            "decay_s",
            "sustain",
            "release_s",
            "gate",
            "rate_hz",
            "shape",
            "depth",
            "offset",
            "seed",
            "color",
            "time_s",
            "feedback",
            "mix",
            "room",
            "damp",
            "gain1",
            "gain4",
            "nope",
        ]);
        let value = prop_oneof![
            (-1.0e6f32..1.0e6).prop_map(|v| v.to_string()),
            (-3i32..8).prop_map(|v| v.to_string()),
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("-inf".to_string()),
            Just("square".to_string()),
        ];
        let port = prop::sample::select(vec!["in", "cv", "pitch", "fm", "cutoff", "gate", "in1", "in4", "zzz"]);
        prop_oneof![
            (kind, id.clone()).prop_map(|(k, i)| format!("/module/new {k} {i}")),
            id.clone().prop_map(|i| format!("/module/free {i}")),
            (id.clone(), param, value).prop_map(|(i, p, v)| format!("/module/set {i} {p} {v}")),
            (id.clone(), id.clone(), port.clone()).prop_map(|(a, b, p)| format!("/patch {a} out {b} {p}")),
            (id.clone(), id, port).prop_map(|(a, b, p)| format!("/unpatch {a} out {b} {p}")),
            Just("/patch/clear".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random edits (valid or not), a few per block: the sound stays finite and the rack
        /// always agrees with its topology.
        #[test]
        fn random_edits_never_panic_or_yield_non_finite_samples(
            script in prop::collection::vec((arb_line(), 0usize..3), 1..60)
        ) {
            let mut b = Bench::new();
            let mut block = STEREO_SILENCE;
            for (line, blocks) in &script {
                let _ = b.try_run(line);
                for _ in 0..*blocks {
                    b.rack.process(&mut block);
                    prop_assert!(block.as_flattened().iter().all(|s| s.is_finite()));
                    prop_assert!(block.as_flattened().iter().all(|s| s.abs() < 1.0e4));
                }
            }
            b.rack.process(&mut block);
            prop_assert_eq!(b.rack.module_count(), b.topology.modules().len());
            prop_assert_eq!(b.rack.cable_count(), b.topology.cables().len());
        }

        /// Random commands straight to a rack (unchecked, ids beyond its range among them),
        /// handovers, blocks and clears: the id -> slot index always says what a walk over
        /// the slots says.
        #[test]
        fn the_slot_index_agrees_with_a_walk_over_the_slots(
            edits in prop::collection::vec((arb_edit(), 0usize..3), 1..80)
        ) {
            let mut rack = Box::new(SmallIdsRack::new());
            rack.prepare(FS);
            let mut block = STEREO_SILENCE;
            for (edit, blocks) in &edits {
                match *edit {
                    Edit::Apply(command) => rack.apply(&command),
                    Edit::Leave(id) => rack.leave(id),
                    Edit::Adopt(id) => {
                        if let Some(module) = rack.module(id).cloned() {
                            rack.adopt(id, &module);
                        }
                    }
                    Edit::ClearInPlace => rack.clear_in_place(FS),
                }
                for _ in 0..*blocks {
                    rack.process(&mut block);
                }
                for id in 0..=SMALL_IDS as u16 + 8 {
                    let walked = rack.ids.iter().position(|&i| i == id);
                    prop_assert_eq!(rack.index.get(id), walked, "id {}", id);
                    prop_assert_eq!(rack.slot_of(id), walked, "id {}", id);
                }
            }
        }
    }

    /// Ids the rack of the index test takes: fewer than the ids its edits name.
    const SMALL_IDS: usize = 24;
    type SmallIdsRack = Rack<16, 32, 2, { 1 << 15 }, 1, 2048, 1024, SMALL_IDS>;

    #[derive(Clone, Debug)]
    enum Edit {
        Apply(Command),
        Leave(ModuleId),
        Adopt(ModuleId),
        ClearInPlace,
    }

    fn arb_edit() -> impl Strategy<Value = Edit> {
        let id = || 0..SMALL_IDS as u16 + 8;
        let kind = prop::sample::select(Kind::ALL.to_vec());
        let port = 0..MAX_INPUTS as u8;
        prop_oneof![
            4 => (id(), kind).prop_map(|(id, kind)| Edit::Apply(Command::New { id, kind })),
            2 => id().prop_map(|id| Edit::Apply(Command::Free { id })),
            3 => (id(), 0..3u8, id(), port.clone())
                .prop_map(|(src, out, dst, port)| Edit::Apply(Command::Patch { src, out, dst, port })),
            1 => (id(), 0..3u8, id(), port)
                .prop_map(|(src, out, dst, port)| Edit::Apply(Command::Unpatch { src, out, dst, port })),
            1 => id().prop_map(Edit::Leave),
            1 => (id(), 0u16..4, any::<bool>()).prop_map(|(id, channel, send)| {
                let end = if send { LinkEnd::Send } else { LinkEnd::Receive };
                Edit::Apply(Command::Link { id, channel, end })
            }),
            1 => id().prop_map(Edit::Adopt),
            1 => Just(Edit::Apply(Command::Clear)),
            1 => Just(Edit::ClearInPlace),
        ]
    }
}
