//! The rack's schedule: in which order slots render, and where each input port reads from.
//!
//! The execution order is Kahn's algorithm over the slots, recomputed once per block after a
//! structural change, with incoming cables grouped per slot (a counting sort) so a block
//! touches each cable once. With cables between racks, what feeds a send renders first and
//! what depends on a receive last ([`super::Links`]). A port with one steady cable reads its
//! source's block in place ([`Source::Direct`]); several, or a fading one, are summed.
use super::fade::{Fade, add_faded};
use super::{Rack, Wire};
use crate::block::{BLOCK, Block, StereoBlock};
use crate::module::{Kind, LANES, MAX_INPUTS, MAX_PARAMS, MAX_PORTS, Module};

/// Most ports a rack sums ahead of a receive ([`Source::PreSummed`]): the output's and a
/// shared bus's few, with room to spare.
pub(super) const PRESUMS: usize = 8;

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
    /// Kahn's algorithm over occupied slots, and the per-slot inbound wire lists.
    pub(super) fn rebuild_order(&mut self) {
        self.structure_changed = false;
        // Inbound lists: count per destination, prefix sums, then place sorted by port.
        self.count_in = [0; MODULES];
        for wire in self.wires.iter() {
            self.count_in[wire.dst as usize] += 1;
        }
        let mut next = 0u16;
        for slot in 0..MODULES {
            self.first_in[slot] = next;
            next += self.count_in[slot];
        }
        let mut filled = [0u16; MODULES];
        for port in 0..MAX_PORTS as u8 {
            for (index, wire) in self.wires.iter().enumerate().filter(|(_, w)| w.port == port) {
                let dst = wire.dst as usize;
                self.inbound[(self.first_in[dst] + filled[dst]) as usize] = index as u16;
                filled[dst] += 1;
            }
        }
        // Kahn: a slot is ready when every wire into it comes from a slot already ordered.
        // Feedback wires read the block before: they do not hold their destination back.
        let mut waiting = self.count_in;
        self.feeds_back = false;
        for wire in self.wires.iter().filter(|w| w.feedback) {
            waiting[wire.dst as usize] -= 1;
            self.feeds_back = true;
        }
        self.order.clear();
        for (slot, &wait) in waiting.iter().enumerate() {
            if wait == 0 && self.occupied(slot) {
                let _ = self.order.push(slot as u16);
            }
        }
        // Outbound lists, the same counting sort by source, so Kahn touches each wire once.
        let mut first_out = [0u16; MODULES];
        let mut count_out = [0u16; MODULES];
        for wire in self.wires.iter().filter(|w| !w.feedback) {
            count_out[wire.src as usize] += 1;
        }
        let mut next = 0u16;
        for slot in 0..MODULES {
            first_out[slot] = next;
            next += count_out[slot];
        }
        let mut outbound = [0u16; CABLES];
        let mut placed = [0u16; MODULES];
        for wire in self.wires.iter().filter(|w| !w.feedback) {
            let src = wire.src as usize;
            outbound[(first_out[src] + placed[src]) as usize] = wire.dst;
            placed[src] += 1;
        }
        self.depth = [0; MODULES];
        // With cables between racks, what feeds a send renders first (another rack may be
        // waiting for it) and what depends on a receive last (its block may not be there
        // yet): bit 1 of `phase` marks a slot downstream of a receive, bit 0 one that feeds
        // no send. A cable never leads to a lower phase, so sorting by phase first keeps the
        // order valid. Without links every phase is 0 and the order is as it always was.
        let mut phase = [0u8; MODULES];
        let linked = self.order.iter().any(|&s| matches!(self.modules[s as usize], Module::Receive { .. }))
            || self.wires.iter().any(|w| matches!(self.modules[w.dst as usize], Module::Send { .. }));
        if linked {
            for &slot in self.order.iter() {
                if matches!(self.modules[slot as usize], Module::Receive { .. }) {
                    phase[slot as usize] = 2;
                }
            }
        }
        let mut head = 0;
        while head < self.order.len() {
            let from = self.order[head] as usize;
            head += 1;
            let first = first_out[from] as usize;
            for &dst in &outbound[first..first + count_out[from] as usize] {
                let dst = dst as usize;
                phase[dst] |= phase[from] & 2;
                self.depth[dst] = self.depth[dst].max(self.depth[from] + 1);
                waiting[dst] -= 1;
                if waiting[dst] == 0 {
                    let _ = self.order.push(dst as u16);
                }
            }
        }
        if linked {
            // Feeds a send: the send itself, or any slot with a cable to one that does
            // (walked from the last in Kahn's order to the first, so every successor is known).
            let mut feeds = [false; MODULES];
            for &slot in self.order.iter().rev() {
                let slot = slot as usize;
                let first = first_out[slot] as usize;
                feeds[slot] = matches!(self.modules[slot], Module::Send { .. })
                    || outbound[first..first + count_out[slot] as usize].iter().any(|&d| feeds[d as usize]);
                if !feeds[slot] {
                    phase[slot] |= 1;
                }
            }
        }
        // By phase, depth, then kind: still a valid order (a cable always leads deeper, never
        // to a lower phase), and modules of one kind at one depth sit together, ready to share
        // lanes.
        let (depth, modules) = (&self.depth, &self.modules);
        self.order.sort_unstable_by_key(|&slot| {
            (phase[slot as usize], depth[slot as usize], modules[slot as usize].kind().map(|k| k as u8), slot)
        });
        for &slot in self.order.iter() {
            let slot = slot as usize;
            if let Some(kind) = self.modules[slot].kind() {
                let list = inbound_of(slot, &self.inbound, &self.first_in, &self.count_in);
                self.plans[slot] = plan(kind, list, &self.wires);
                self.stereo[slot] = slot == super::OUTPUT_SLOT;
                let first = kind.inputs().len();
                self.modulated[slot] =
                    list.iter().any(|&w| self.wires.get(w as usize).is_some_and(|w| w.port as usize >= first));
            }
        }
        for wire in self.wires.iter().filter(|w| w.out != 0) {
            self.stereo[wire.src as usize] = true;
        }
        self.late = core::array::from_fn(|slot| phase[slot] & 2 != 0);
        self.late_from = self.order.iter().position(|&s| self.late[s as usize]).unwrap_or(self.order.len()) as u16;
        self.presums.clear();
        for &slot in &self.order[self.late_from as usize..] {
            let slot = slot as usize;
            for port in 0..MAX_INPUTS {
                if self.plans[slot][port] != Source::Summed {
                    continue;
                }
                let list = inbound_of(slot, &self.inbound, &self.first_in, &self.count_in);
                let early = list
                    .iter()
                    .filter_map(|&w| self.wires.get(w as usize))
                    .filter(|w| w.port == port as u8 && !self.late[w.src as usize])
                    .count();
                // Worth it from two: one early cable is read in place anyway.
                if early >= 2 && self.presums.push((slot as u16, port as u8)).is_ok() {
                    self.plans[slot][port] = Source::PreSummed(self.presums.len() as u8 - 1);
                }
            }
        }
        for at in 0..self.order.len() {
            self.runs[at] = self.lane_run(at) as u8;
        }
        let occupied = (0..MODULES).filter(|&slot| self.occupied(slot)).count();
        if self.order.len() < occupied {
            // Only ghosts can close a loop (the topology refuses live ones): cut the ghost
            // wires and order again. Whatever still loops stays silent.
            let before = self.wires.len();
            let fades = self.fades;
            self.wires.retain(|w| w.fade != Fade::Out && !fades[w.src as usize].gone());
            if self.wires.len() != before {
                self.rebuild_order();
            }
        }
    }

    /// How many modules from `order[at]` on can share lanes: same kind (one with a lane
    /// kernel), same depth, at most [`LANES`].
    pub(super) fn lane_run(&self, at: usize) -> usize {
        let first = self.order[at] as usize;
        let Some(kind) = self.modules[first].kind() else {
            return 1;
        };
        if !kind.has_lanes() {
            return 1;
        }
        self.order[at..]
            .iter()
            .take(LANES)
            .take_while(|&&s| {
                self.modules[s as usize].kind() == Some(kind) && self.depth[s as usize] == self.depth[first]
            })
            .count()
    }

    /// Sums, for each port in `presums`, its cables from slots that depend on no receive:
    /// done before the first late slot renders, while the rack may still wait for a link.
    pub(super) fn presum(&mut self) {
        for (i, &(slot, port)) in self.presums.iter().enumerate() {
            let list = inbound_of(slot as usize, &self.inbound, &self.first_in, &self.count_in);
            let sum = &mut self.presum_blocks[i];
            *sum = [0.0; BLOCK];
            let early = list.iter().filter_map(|&w| self.wires.get(w as usize));
            let blocks = Blocks {
                outs: &self.outs,
                sides: &self.sides,
                previous: &self.previous,
                previous_sides: &self.previous_sides,
            };
            for wire in early.filter(|w| w.port == port && !self.late[w.src as usize]) {
                if let Some(src) = blocks.of(wire) {
                    add_faded(sum, src, wire.fade);
                }
            }
        }
    }
}

/// Where a module's input port reads from. repr(u8): all-zero memory is `Unpatched`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    Unpatched,
    /// One steady cable from a slot's `out`: its block, read in place.
    Direct(u16),
    /// One steady cable from a slot's `left` (`side` 0) or `right` (1), read in place. A
    /// variant of its own, so that the mono case stays the one compare it always was (a
    /// field to test in `Direct` cost the voice bench some percent), and `side` first, so
    /// that the variant stays 4 bytes like `Direct` (the plans are copied every block).
    Side {
        side: u8,
        src: u16,
    },
    /// Several cables, or a fading one: summed into the lane's scratch block for the port.
    Summed,
    /// As `Summed`, for a port of a slot that depends on a receive: its cables from slots
    /// that do not were summed ahead into presum block `n` ([`Rack::process_linked`]); the
    /// rest are added to it.
    PreSummed(u8),
}

const _: () = assert!(size_of::<Source>() == 4);

impl Source {
    pub(super) fn summed(self) -> bool {
        matches!(self, Source::Summed | Source::PreSummed(_))
    }
}

/// Every slot's output blocks, this block's and (for feedback wires) the one before.
#[derive(Clone, Copy)]
pub(super) struct Blocks<'a> {
    pub(super) outs: &'a [Block],
    pub(super) sides: &'a [StereoBlock],
    pub(super) previous: &'a [Block],
    pub(super) previous_sides: &'a [StereoBlock],
}

impl<'a> Blocks<'a> {
    /// What `wire` carries: its source's output, of this block or, for a feedback wire, of
    /// the one before.
    #[inline(always)]
    pub(super) fn of(&self, wire: &Wire) -> Option<&'a Block> {
        let (outs, sides) = if wire.feedback { (self.previous, self.previous_sides) } else { (self.outs, self.sides) };
        output_block(outs, sides, wire.src, wire.out)
    }
}

/// Output `out` of `slot`: `out` (0) in `outs`, `left` (1) and `right` (2) in `sides`.
#[inline(always)]
fn output_block<'a>(outs: &'a [Block], sides: &'a [StereoBlock], slot: u16, out: u8) -> Option<&'a Block> {
    match out {
        0 => outs.get(slot as usize),
        side => sides.get(slot as usize)?.get(side as usize - 1),
    }
}

/// What a late port's sum starts from: which slots are late, and the sums made ahead.
#[derive(Clone, Copy)]
pub(super) struct Early<'a> {
    pub(super) late: &'a [bool],
    pub(super) presums: &'a [Block],
}

pub(super) fn inbound_of<'a>(slot: usize, inbound: &'a [u16], first_in: &[u16], count_in: &[u16]) -> &'a [u16] {
    let first = first_in[slot] as usize;
    inbound.get(first..first + count_in[slot] as usize).unwrap_or(&[])
}

/// Works out each signal input's source from the wires in `list` (sorted by port): none, one
/// steady wire (read in place), or several or fading wires (summed each block). The
/// parameters' own ports are read by [`param_means`].
pub(super) fn plan(kind: Kind, list: &[u16], wires: &[Wire]) -> [Source; MAX_INPUTS] {
    let mut sources = [Source::Unpatched; MAX_INPUTS];
    let mut at = 0;
    for (port, source) in sources.iter_mut().enumerate().take(kind.inputs().len()) {
        let start = at;
        while at < list.len() && wires.get(list[at] as usize).is_some_and(|w| w.port == port as u8) {
            at += 1;
        }
        *source = match &list[start..at] {
            [] => Source::Unpatched,
            [only] => match wires.get(*only as usize) {
                Some(w) if w.fade == Fade::Steady && !w.feedback => match w.out {
                    0 => Source::Direct(w.src),
                    out => Source::Side { side: out - 1, src: w.src },
                },
                _ => Source::Summed,
            },
            _ => Source::Summed,
        };
    }
    sources
}

/// Sums the wires of every port `plan` marks summed into that port's `scratch` block, each
/// through its fade.
pub(super) fn sum_ports(
    plan: &[Source],
    list: &[u16],
    wires: &[Wire],
    blocks: &Blocks<'_>,
    scratch: &mut [Block; MAX_INPUTS],
    early: Early<'_>,
) {
    for (port, (sum, source)) in scratch.iter_mut().zip(plan).enumerate() {
        // Summed ahead: start from that, and add only the cables from late slots.
        let ahead = match *source {
            Source::Summed => None,
            Source::PreSummed(n) => Some(n as usize),
            Source::Unpatched | Source::Direct(_) | Source::Side { .. } => continue,
        };
        *sum = ahead.and_then(|n| early.presums.get(n)).copied().unwrap_or([0.0; BLOCK]);
        let wires = list.iter().filter_map(|&w| wires.get(w as usize)).filter(|w| w.port == port as u8);
        for wire in wires.filter(|w| ahead.is_none() || early.late.get(w.src as usize) == Some(&true)) {
            // A feedback wire: its source's block before this one.
            let Some(src) = blocks.of(wire) else { continue };
            add_faded(sum, src, wire.fade);
        }
    }
}

// Inlined: returned through memory, its four pointers are read back wider than they were
// written, a store-forwarding stall per lane that cost the voice bench 12%.
#[inline(always)]
pub(super) fn resolve<'a>(
    sources: &[Source; MAX_INPUTS],
    outs: &'a [Block],
    sides: &'a [StereoBlock],
    scratch: &'a [Block; MAX_INPUTS],
) -> [Option<&'a Block>; MAX_INPUTS] {
    core::array::from_fn(|port| match sources[port] {
        Source::Unpatched => None,
        Source::Direct(src) => outs.get(src as usize),
        Source::Side { side, src } => sides.get(src as usize).and_then(|pair| pair.get(side as usize)),
        Source::Summed | Source::PreSummed(_) => Some(&scratch[port]),
    })
}

/// For a slot of kind `kind` with inbound wires `list`: the block mean of the cables into
/// each parameter's own port (by parameter index; each cable through its fade, a feedback
/// cable from its source's block before), and a mask of the parameters with any cable.
pub(super) fn param_means(kind: Kind, list: &[u16], wires: &[Wire], blocks: &Blocks<'_>) -> ([f32; MAX_PARAMS], u32) {
    let first = kind.inputs().len();
    let mut sums = [0.0f32; MAX_PARAMS];
    let mut patched = 0u32;
    for wire in list.iter().filter_map(|&w| wires.get(w as usize)) {
        let Some(index) = (wire.port as usize).checked_sub(first).filter(|&i| i < MAX_PARAMS) else { continue };
        let Some(src) = blocks.of(wire) else { continue };
        sums[index] += match wire.fade.ramp() {
            None => src.iter().sum::<f32>(),
            Some(ramp) => src.iter().zip(ramp).map(|(x, g)| x * g).sum::<f32>(),
        };
        patched |= 1 << index;
    }
    (sums.map(|sum| sum / BLOCK as f32), patched)
}
