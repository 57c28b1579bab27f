//! Which worker owns which module.
//!
//! Each worker renders its own rack and the host sums the racks' outputs. Modules joined by
//! cables (a connected component) live on one worker where they can: a cable that would
//! join two components on different workers first moves one of them. The exception is a
//! join: a cable into a port that has a cable already (many voices into one delay) may run
//! between workers, through a link (a send on one worker, a receive on the other, the
//! block carried in shared memory within the same block: see ledger.rs's `Link`). The
//! modules that move are freed on their old worker and created anew on the new one, with
//! their parameters and cables, all in the same block, and each hands its state over
//! (`Ledger::move_commands`: exported from the old worker's rack through its outbox in shared
//! memory, adopted by the new one in the same block). In that block both copies play, from
//! the same state: the old one's cables to what stays fade out while the new one's fade in,
//! so the sum is what one copy would have played and the move cannot be heard; an envelope
//! keeps its stage, an oscillator its phase. Delays and reverbs (their lines live in their
//! rack's pools) and the modules of a worker that died start afresh, crossfaded.
//!
//! The output module (id 0) exists on every worker, and a cable into it stays on its
//! source's worker: patching into the output joins nothing. Only when the output's own `out`
//! is patched into a module does it join components, and then everything patched into the
//! output gathers on one worker (a module fed by the output must hear all of it).
//!
//! A new module, a component of its own, goes to the worker with the least measured load
//! (ties: fewest modules) that has room for it; inside a bundle that also patches it to
//! modules already placed, it goes to their worker when that has room (so a voice sent as
//! one bundle is created where it stays). A joining cable keeps the merged component
//! on the worker that already holds most of it (so the smaller part moves), or, when that
//! rack lacks room, on the next worker that has room for all of it.
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Add, Sub};
use synthpool_core::command::{Error, Limit, ModuleId, OUTPUT_ID};
use synthpool_core::module::Kind;
use synthpool_core::rack::HOST_LINKS;
use synthpool_core::topology::{Cable, Entry, Topology};

/// Modules one worker's rack holds besides its output: `HostRack` has 4096 slots, slot 0 the output.
pub const RACK_MODULES: usize = 4095;
/// Cables one worker's rack holds (`HostRack`), cables into its output included.
pub const RACK_CABLES: usize = 8192;
/// Delays one worker's rack holds (`HostRack`'s delay pool).
pub const RACK_DELAYS: usize = 32;
/// Reverbs one worker's rack holds (`HostRack`'s reverb pool).
pub const RACK_REVERBS: usize = 16;

// HostRack's slot and cable counts are these: `HostRack::topology` returns this type.
// (Beyond them, each rack keeps room for the ends of every link: `HOST_LINKS`.)
const _: fn(
    &synthpool_core::rack::HostRack,
) -> Topology<{ RACK_MODULES + 1 + 2 * HOST_LINKS }, { RACK_CABLES + HOST_LINKS }> =
    synthpool_core::rack::HostRack::topology;

/// Loads closer than this (5 % of the block budget) count as equal, and then the worker with
/// fewer modules wins: a load is a median over recent blocks and does not move while a burst
/// of `/module/new` arrives, so without this margin a whole burst would pile onto one worker.
pub const LOAD_TIE: f32 = 0.05;

/// Workers whose loads differ by more than this share of the busier one's are evened out by
/// moving modules ([`Placement::plan_balance`]): two workers that must both finish a block
/// (and a shared bus, whose worker waits for the others' shares) take as long as the slower.
pub const BALANCE_GAP: f32 = 0.2;

/// Below this load (a quarter of the block budget) a live server does not even its workers
/// out: until a core nears its deadline, the balance does not matter to the sound, and a
/// light patch stays where placement put it (nothing moves on noise, which would also make
/// a live recording differ from the same patch rendered offline).
pub const BALANCE_FROM: f32 = 0.25;

/// What one worker's rack holds (its output module not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Modules, the output excluded.
    pub modules: usize,
    /// Cables, those into the output included.
    pub cables: usize,
    /// Delays among the modules.
    pub delays: usize,
    /// Reverbs among the modules.
    pub reverbs: usize,
}

impl Usage {
    /// What one module of `kind` takes.
    pub fn of_kind(kind: Kind) -> Usage {
        Usage {
            modules: 1,
            cables: 0,
            delays: usize::from(kind == Kind::Delay),
            reverbs: usize::from(kind == Kind::Reverb),
        }
    }

    /// True when one rack holds this much.
    pub fn fits(&self) -> bool {
        self.overflows().is_none()
    }

    /// The first of a rack's limits this much goes past, if any.
    pub fn overflows(&self) -> Option<Limit> {
        if self.modules > RACK_MODULES {
            Some(Limit::Modules)
        } else if self.cables > RACK_CABLES {
            Some(Limit::Cables)
        } else if self.delays > RACK_DELAYS {
            Some(Limit::Delays)
        } else if self.reverbs > RACK_REVERBS {
            Some(Limit::Reverbs)
        } else {
            None
        }
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            modules: self.modules + o.modules,
            cables: self.cables + o.cables,
            delays: self.delays + o.delays,
            reverbs: self.reverbs + o.reverbs,
        }
    }
}

impl Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage {
            modules: self.modules.saturating_sub(o.modules),
            cables: self.cables.saturating_sub(o.cables),
            delays: self.delays.saturating_sub(o.delays),
            reverbs: self.reverbs.saturating_sub(o.reverbs),
        }
    }
}

/// Modules that change worker so that a new cable joins modules on one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// The worker they go to.
    pub to: usize,
    /// The modules that move, in creation order, each with the worker it leaves.
    pub modules: Vec<(ModuleId, usize)>,
}

impl Move {
    /// True when `id` is one of the modules that move.
    pub fn moves(&self, id: ModuleId) -> bool {
        self.modules.iter().any(|&(m, _)| m == id)
    }
}

/// The owner of every module but the output, and what each worker's rack holds.
#[derive(Clone, Debug)]
pub struct Placement {
    owners: BTreeMap<ModuleId, usize>,
    usage: Vec<Usage>,
    loads: Vec<f32>,
    /// Workers given up on (they crashed too often): nothing is placed on them.
    retired: Vec<bool>,
}

impl Placement {
    /// No modules on `workers` workers (at least 1: 0 is taken as 1).
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        Self {
            owners: BTreeMap::new(),
            usage: vec![Usage::default(); workers],
            loads: vec![0.0; workers],
            retired: vec![false; workers],
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.usage.len()
    }

    /// The worker that owns module `id`; None for the output (on every worker) or no such module.
    pub fn owner(&self, id: ModuleId) -> Option<usize> {
        self.owners.get(&id).copied()
    }

    /// What `worker`'s rack holds (zero for a worker that does not exist).
    pub fn usage(&self, worker: usize) -> Usage {
        self.usage.get(worker).copied().unwrap_or_default()
    }

    /// Records the workers' measured loads (share of the block budget, 0.0..=1.0 and above
    /// when late; see `WorkerStatus::load`), by worker. Missing or non-finite ones read as 0.
    pub fn set_loads(&mut self, loads: &[f32]) {
        for (w, load) in self.loads.iter_mut().enumerate() {
            *load = loads.get(w).copied().filter(|l| l.is_finite()).unwrap_or(0.0);
        }
    }

    /// The load last given to [`Placement::set_loads`] for `worker`.
    pub fn load(&self, worker: usize) -> f32 {
        self.loads.get(worker).copied().unwrap_or(0.0)
    }

    /// The worker a cable lives on: the owner of its end that is not the output.
    pub fn cable_worker(&self, cable: &Cable) -> Option<usize> {
        let end = if cable.src != OUTPUT_ID { cable.src } else { cable.dst };
        self.owner(end)
    }

    /// The worker for a new module of `kind`: least load (within [`LOAD_TIE`]), then fewest
    /// modules, then lowest index, among those with room for it.
    ///
    /// # Errors
    /// `RackFull` when no worker's rack has room for another module (or delay, or reverb).
    pub fn choose_for_new(&self, kind: Kind) -> Result<usize, Error> {
        self.choose_for_new_near(kind, None)
    }

    /// As [`Placement::choose_for_new`], but `near` first when it has room: the worker of
    /// the modules the new one will be cabled to (a bundle building a voice).
    ///
    /// # Errors
    /// `RackFull` when no worker's rack has room for another module (or delay, or reverb).
    pub fn choose_for_new_near(&self, kind: Kind, near: Option<usize>) -> Result<usize, Error> {
        let one = Usage::of_kind(kind);
        if let Some(w) = near.filter(|&w| self.open(w) && (self.usage[w] + one).fits()) {
            return Ok(w);
        }
        let room: Vec<usize> = (0..self.workers()).filter(|&w| self.open(w) && (self.usage[w] + one).fits()).collect();
        let least = room.iter().map(|&w| self.load(w)).fold(f32::INFINITY, f32::min);
        // None has room: the limit the first open worker ran into.
        let full = (0..self.workers()).filter(|&w| self.open(w)).find_map(|w| (self.usage[w] + one).overflows());
        room.into_iter()
            .filter(|&w| self.load(w) <= least + LOAD_TIE)
            .min_by_key(|&w| (self.usage[w].modules, w))
            .ok_or(Error::RackFull(full.unwrap_or(Limit::Modules)))
    }

    /// Where a new cable `new` goes, given the patch's `modules` (creation order) and
    /// `cables` (without `new`): None when its modules share a worker already (the cable goes
    /// there), or the [`Move`] that brings its merged component onto one worker. Changes nothing.
    ///
    /// # Errors
    /// `RackFull` when no worker's rack has room for the cable (and the merged component).
    pub fn plan_patch(&self, modules: &[Entry], cables: &[Cable], new: Cable) -> Result<Option<Move>, Error> {
        let joins_output = new.src == OUTPUT_ID || cables.iter().any(|c| c.src == OUTPUT_ID);
        // A port that has a cable already is a join: each worker sums its share of what is
        // patched into it and a link carries the share across (see ledger.rs's `Link`). The
        // new cable may then run between workers; nothing moves.
        let joins_port = cables.iter().any(|c| c.dst == new.dst && c.port == new.port);
        // A feedback cable is never a join: its cycle stays on one worker (across workers
        // it would need a link's block from before; kept simple).
        if joins_port && !new.is_feedback() && !joins_output && new.src != OUTPUT_ID && new.dst != OUTPUT_ID {
            let w = self.cable_worker(&new).unwrap_or(0);
            return if self.usage(w).cables < RACK_CABLES { Ok(None) } else { Err(Error::RackFull(Limit::Cables)) };
        }
        // Cables that run between workers already join nothing: each side stays where it is.
        let local: Vec<Cable> = cables.iter().filter(|c| !self.crosses(c)).copied().collect();
        let cables = &local[..];
        let component = component(cables, new, joins_output);
        let mut held = vec![0usize; self.workers()];
        for w in component.iter().filter_map(|&id| self.owner(id)) {
            held[w] += 1;
        }
        if held.iter().filter(|&&n| n > 0).count() <= 1 {
            let w = self.cable_worker(&new).unwrap_or(0);
            return if self.usage(w).cables < RACK_CABLES { Ok(None) } else { Err(Error::RackFull(Limit::Cables)) };
        }
        let kinds: BTreeMap<ModuleId, Kind> = modules.iter().map(|e| (e.id, e.kind)).collect();
        let mut order: Vec<usize> = (0..self.workers()).filter(|&w| self.open(w)).collect();
        order.sort_by(|&a, &b| held[b].cmp(&held[a]).then(self.load(a).total_cmp(&self.load(b))).then(a.cmp(&b)));
        let mut full = Limit::Modules;
        for to in order {
            let moving: Vec<(ModuleId, usize)> = modules
                .iter()
                .filter(|e| component.contains(&e.id))
                .filter_map(|e| self.owner(e.id).filter(|&from| from != to).map(|from| (e.id, from)))
                .collect();
            let mut need = self.usage[to];
            need.cables += 1;
            for (id, _) in &moving {
                need = need + kinds.get(id).map_or(Usage::default(), |&k| Usage::of_kind(k));
            }
            need.cables += cables.iter().filter(|c| moving.iter().any(|&(m, _)| m == c.src || m == c.dst)).count();
            match need.overflows() {
                None => return Ok(Some(Move { to, modules: moving })),
                Some(limit) => full = limit,
            }
        }
        Err(Error::RackFull(full))
    }

    /// Modules that move from the busiest worker to the least busy one to even out their
    /// loads, as the workers measured them (their own work: waits for other workers' cables
    /// are not counted); None while they are close enough.
    /// Whole groups of modules joined by cables within the worker move (a voice stays
    /// together; a cable into a join holds nothing together), the latest made first, up to `max_modules`, until about half the gap has
    /// moved (each module taken to cost the busy worker's load over its modules; the next
    /// measurement corrects the guess). Only when the busier worker's load is at least `from`
    /// (a live server: [`BALANCE_FROM`]) and the other's is lower by [`BALANCE_GAP`] of it. Groups holding a delay or a reverb stay (their lines
    /// are in their rack's pools: moved, they would start afresh, audibly), and so does
    /// everything while the output's `out` is patched somewhere (it gathers its inputs).
    pub fn plan_balance(&self, modules: &[Entry], cables: &[Cable], max_modules: usize, from: f32) -> Option<Move> {
        let open: Vec<usize> = (0..self.workers()).filter(|&w| self.open(w)).collect();
        let by_load = |a: &&usize, b: &&usize| self.load(**a).total_cmp(&self.load(**b));
        let (&busy, &idle) = (open.iter().max_by(by_load)?, open.iter().min_by(by_load)?);
        let gap = self.load(busy) - self.load(idle);
        let worth = self.load(busy) >= from && gap > BALANCE_GAP * self.load(busy);
        if !worth || self.usage[busy].modules == 0 || cables.iter().any(|c| c.src == OUTPUT_ID) {
            return None;
        }
        let per_module = self.load(busy) / self.usage[busy].modules as f32;
        // A group is held together by cables within the worker, but not by those into a join
        // (a port fed by several): those may run between workers.
        let mut fed: BTreeMap<(ModuleId, u8), usize> = BTreeMap::new();
        for c in cables {
            *fed.entry((c.dst, c.port)).or_default() += 1;
        }
        let local: Vec<Cable> = cables
            .iter()
            .filter(|c| !self.crosses(c) && (fed[&(c.dst, c.port)] < 2 || c.is_feedback()))
            .copied()
            .collect();
        let kinds: BTreeMap<ModuleId, Kind> = modules.iter().map(|e| (e.id, e.kind)).collect();
        let mut seen = BTreeSet::new();
        let mut moving: Vec<ModuleId> = Vec::new();
        let mut need = self.usage[idle];
        for entry in modules.iter().rev().filter(|e| self.owner(e.id) == Some(busy)) {
            if per_module * moving.len() as f32 >= gap / 2.0 {
                break;
            }
            if seen.contains(&entry.id) {
                continue;
            }
            let group = component(&local, Cable { src: entry.id, out: 0, dst: entry.id, port: 0 }, false);
            seen.extend(group.iter().copied());
            let pooled = group.iter().any(|id| kinds.get(id).is_some_and(|k| k.uses_pool()));
            if pooled || moving.len() + group.len() > max_modules {
                continue;
            }
            let mut grown = need;
            for id in &group {
                grown = grown + kinds.get(id).map_or(Usage::default(), |&k| Usage::of_kind(k));
            }
            grown.cables += local.iter().filter(|c| group.contains(&c.src) || group.contains(&c.dst)).count();
            if !grown.fits() {
                continue;
            }
            need = grown;
            moving.extend(group);
        }
        if moving.is_empty() {
            return None;
        }
        // In creation order, as a move lists them.
        let modules = modules.iter().filter(|e| moving.contains(&e.id)).map(|e| (e.id, busy)).collect();
        Some(Move { to: idle, modules })
    }

    /// True when cable `c` runs between two workers (neither end is the output, which is on
    /// every worker).
    pub fn crosses(&self, c: &Cable) -> bool {
        c.src != OUTPUT_ID
            && c.dst != OUTPUT_ID
            && matches!((self.owner(c.src), self.owner(c.dst)), (Some(a), Some(b)) if a != b)
    }

    /// True when `worker` exists and is not retired: new modules may go there.
    pub fn open(&self, worker: usize) -> bool {
        self.retired.get(worker).is_some_and(|&r| !r)
    }

    /// Workers given up on, by index.
    pub fn retired(&self, worker: usize) -> bool {
        self.retired.get(worker).copied().unwrap_or(false)
    }

    /// Where the modules of worker `from` go when it is given up on: one [`Move`] per group
    /// of its modules joined by cables (a group stays on one worker), each to the open
    /// worker with room and the least load. Changes nothing.
    ///
    /// # Errors
    /// `RackFull` when some group fits on no other open worker.
    pub fn plan_evacuation(&self, from: usize, modules: &[Entry], cables: &[Cable]) -> Result<Vec<Move>, Error> {
        let joins_output = cables.iter().any(|c| c.src == OUTPUT_ID);
        // A group is joined by cables within the worker; those to other workers stay links.
        let local: Vec<Cable> = cables.iter().filter(|c| !self.crosses(c)).copied().collect();
        let cables = &local[..];
        let mut scratch = self.clone();
        scratch.retired[from] = true;
        let mut placed = BTreeSet::new();
        let mut moves = Vec::new();
        for entry in modules.iter().filter(|e| self.owner(e.id) == Some(from)) {
            if placed.contains(&entry.id) {
                continue;
            }
            let seed = Cable { src: entry.id, out: 0, dst: entry.id, port: 0 };
            let group = component(cables, seed, joins_output);
            let mut need = Usage::default();
            for e in modules.iter().filter(|e| group.contains(&e.id)) {
                need = need + Usage::of_kind(e.kind);
            }
            need.cables = cables.iter().filter(|c| group.contains(&c.src) || group.contains(&c.dst)).count();
            let to = (0..scratch.workers())
                .filter(|&w| scratch.open(w) && (scratch.usage[w] + need).fits())
                .min_by(|&a, &b| {
                    scratch
                        .load(a)
                        .total_cmp(&scratch.load(b))
                        .then(scratch.usage[a].modules.cmp(&scratch.usage[b].modules))
                })
                .ok_or(Error::RackFull(need.overflows().unwrap_or(Limit::Modules)))?;
            let plan =
                Move { to, modules: modules.iter().filter(|e| group.contains(&e.id)).map(|e| (e.id, from)).collect() };
            scratch.apply_move(&plan, modules, cables);
            placed.extend(group);
            moves.push(plan);
        }
        Ok(moves)
    }

    /// Marks `worker` retired: nothing more is placed there.
    pub fn retire(&mut self, worker: usize) {
        if let Some(r) = self.retired.get_mut(worker) {
            *r = true;
        }
    }

    /// Records that module `id` of `kind` now lives on `worker`.
    pub fn add_module(&mut self, id: ModuleId, kind: Kind, worker: usize) {
        if id == OUTPUT_ID || worker >= self.workers() {
            return;
        }
        if let Some(old) = self.owners.insert(id, worker) {
            self.usage[old] = self.usage[old] - Usage::of_kind(kind);
        }
        self.usage[worker] = self.usage[worker] + Usage::of_kind(kind);
    }

    /// Records that module `id` of `kind` is gone (remove its cables first).
    pub fn remove_module(&mut self, id: ModuleId, kind: Kind) {
        if let Some(w) = self.owners.remove(&id) {
            self.usage[w] = self.usage[w] - Usage::of_kind(kind);
        }
    }

    /// Records a new cable (its modules placed already).
    pub fn add_cable(&mut self, cable: &Cable) {
        if let Some(w) = self.cable_worker(cable) {
            self.usage[w].cables += 1;
        }
    }

    /// Records that a cable is gone (before its modules are removed).
    pub fn remove_cable(&mut self, cable: &Cable) {
        if let Some(w) = self.cable_worker(cable) {
            self.usage[w].cables = self.usage[w].cables.saturating_sub(1);
        }
    }

    /// Records a [`Move`] planned by [`Placement::plan_patch`] on the same `modules` and `cables`.
    pub fn apply_move(&mut self, plan: &Move, modules: &[Entry], cables: &[Cable]) {
        for cable in cables.iter().filter(|c| plan.moves(c.src) || plan.moves(c.dst)) {
            self.remove_cable(cable);
        }
        for &(id, _) in &plan.modules {
            if let Some(entry) = modules.iter().find(|e| e.id == id) {
                self.add_module(id, entry.kind, plan.to);
            }
        }
        for cable in cables.iter().filter(|c| plan.moves(c.src) || plan.moves(c.dst)) {
            self.add_cable(cable);
        }
    }

    /// Forgets every module and cable (loads are kept).
    pub fn clear(&mut self) {
        self.owners.clear();
        self.usage.iter_mut().for_each(|u| *u = Usage::default());
    }
}

/// The modules (the output excluded) joined to `new`'s ends by `cables` and `new`. The
/// output passes the join on only when `joins_output` (its `out` is patched somewhere).
fn component(cables: &[Cable], new: Cable, joins_output: bool) -> BTreeSet<ModuleId> {
    let mut neighbours: BTreeMap<ModuleId, Vec<ModuleId>> = BTreeMap::new();
    for c in cables.iter().chain([&new]) {
        neighbours.entry(c.src).or_default().push(c.dst);
        neighbours.entry(c.dst).or_default().push(c.src);
    }
    let passes = |id: ModuleId| id != OUTPUT_ID || joins_output;
    let mut seen = BTreeSet::new();
    let mut stack: Vec<ModuleId> = [new.src, new.dst].into_iter().filter(|&id| passes(id)).collect();
    while let Some(at) = stack.pop() {
        if !seen.insert(at) {
            continue;
        }
        for &next in neighbours.get(&at).map(Vec::as_slice).unwrap_or(&[]) {
            if passes(next) && !seen.contains(&next) {
                stack.push(next);
            }
        }
    }
    seen.remove(&OUTPUT_ID);
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Commands, Ledger};
    use synthpool_core::command::{Command, Request, WorkerCommand};

    fn new(ledger: &mut Ledger, kind: &str, id: i32) -> Commands {
        ledger.submit(&Request::New { kind, id }).unwrap()
    }

    fn patch(ledger: &mut Ledger, src: i32, dst: i32, in_port: &str) -> Result<Commands, Error> {
        ledger.submit(&Request::Patch { src, out_port: "out", dst, in_port, feedback: false })
    }

    /// Every module shares its worker with every module it is cabled to.
    fn assert_components_together(ledger: &Ledger) {
        for c in ledger.topology().cables() {
            if c.src != OUTPUT_ID && c.dst != OUTPUT_ID {
                assert_eq!(ledger.owner(c.src), ledger.owner(c.dst), "{c:?}");
            }
        }
    }

    /// The counts kept step by step equal the counts made from scratch.
    fn assert_usage_recounts(ledger: &Ledger) {
        let placement = ledger.placement();
        let mut fresh = vec![Usage::default(); placement.workers()];
        for e in ledger.topology().modules().iter().filter(|e| e.id != OUTPUT_ID) {
            let w = placement.owner(e.id).unwrap();
            fresh[w] = fresh[w] + Usage::of_kind(e.kind);
        }
        for c in ledger.topology().cables() {
            fresh[placement.cable_worker(c).unwrap()].cables += 1;
        }
        for (w, u) in fresh.iter().enumerate() {
            assert_eq!(placement.usage(w), *u, "worker {w}");
        }
    }

    #[test]
    fn new_modules_go_to_the_least_loaded_worker_then_the_emptiest() {
        let mut ledger = Ledger::new(3);
        ledger.set_loads(&[0.5, 0.2, 0.21]);
        // 0.2 and 0.21 tie within LOAD_TIE; both are empty, so the lower index wins, then
        // the other one (fewer modules), then back to the first.
        assert_eq!(new(&mut ledger, "vco", 1), vec![(1, Command::New { id: 1, kind: Kind::Vco }.into())]);
        assert_eq!(new(&mut ledger, "vco", 2)[0].0, 2);
        assert_eq!(new(&mut ledger, "vco", 3)[0].0, 1);
        ledger.set_loads(&[0.0, 0.9, 0.9]);
        assert_eq!(new(&mut ledger, "vco", 4)[0].0, 0);
        assert_usage_recounts(&ledger);
    }

    #[test]
    fn full_workers_are_skipped_and_all_full_is_rack_full() {
        let mut ledger = Ledger::new(2);
        ledger.set_loads(&[0.0, 0.5]);
        for id in 1..=RACK_DELAYS as i32 {
            assert_eq!(new(&mut ledger, "delay", id)[0].0, 0);
        }
        // Worker 0's delay pool is full: the next delay goes to worker 1, a vco still to 0.
        assert_eq!(new(&mut ledger, "delay", 100)[0].0, 1);
        assert_eq!(new(&mut ledger, "vco", 101)[0].0, 0);
        // The delays, one more and a vco so far: fill both racks.
        for id in 200..200 + (RACK_MODULES * 2 - RACK_DELAYS - 2) as i32 {
            new(&mut ledger, "vca", id);
        }
        assert_eq!(ledger.placement().usage(0).modules + ledger.placement().usage(1).modules, 2 * RACK_MODULES);
        let before = ledger.dump();
        assert_eq!(ledger.submit(&Request::New { kind: "vca", id: 9000 }), Err(Error::RackFull(Limit::Modules)));
        assert_eq!(ledger.dump(), before);
        assert_usage_recounts(&ledger);
    }

    #[test]
    fn a_voice_built_across_workers_ends_on_one_worker() {
        let mut ledger = Ledger::new(4);
        for (kind, id) in [("vco", 1), ("vcf", 2), ("vca", 3), ("adsr", 4)] {
            new(&mut ledger, kind, id);
        }
        // Four empty workers: one module on each.
        let owners: Vec<usize> = (1..=4).map(|id| ledger.owner(id).unwrap()).collect();
        assert_eq!(owners, vec![0, 1, 2, 3]);
        patch(&mut ledger, 1, 2, "in").unwrap();
        patch(&mut ledger, 2, 3, "in").unwrap();
        patch(&mut ledger, 4, 3, "cv").unwrap();
        patch(&mut ledger, 3, 0, "in").unwrap();
        assert_components_together(&ledger);
        let home = ledger.owner(1).unwrap();
        assert!((2..=4).all(|id| ledger.owner(id) == Some(home)));
        assert_eq!(ledger.placement().usage(home), Usage { modules: 4, cables: 4, delays: 0, reverbs: 0 });
        assert_usage_recounts(&ledger);
    }

    #[test]
    fn a_feedback_cable_gathers_its_cycle_on_one_worker() {
        let mut ledger = Ledger::new(2);
        new(&mut ledger, "vco", 1);
        new(&mut ledger, "vco", 2);
        new(&mut ledger, "delay", 5);
        patch(&mut ledger, 1, 5, "in").unwrap();
        // Into a port that has a cable already: a join, which may run between workers.
        patch(&mut ledger, 2, 5, "in").unwrap();
        assert_ne!(ledger.owner(2), ledger.owner(5), "the join runs between workers");
        // Back into the vco that feeds the delay: it closes 2 -> 5 -> 2, a feedback cable,
        // which never runs between workers: the cycle gathers on one.
        let commands = patch(&mut ledger, 5, 2, "fm").unwrap();
        let feedback = ledger.topology().cables().iter().filter(|c| c.is_feedback()).copied().collect::<Vec<_>>();
        assert_eq!(feedback.len(), 1);
        assert!(
            commands
                .iter()
                .any(|(_, c)| *c == Command::Patch { src: 5, out: 0, dst: 2, port: feedback[0].port }.into())
        );
        assert_eq!(ledger.owner(2), ledger.owner(5));
        assert!(!ledger.placement().crosses(&feedback[0]));
        assert_components_together(&ledger);
        assert_usage_recounts(&ledger);
    }

    #[test]
    fn a_joining_cable_moves_the_smaller_component_with_its_params_and_cables() {
        let mut ledger = Ledger::new(2);
        ledger.set_loads(&[0.0, 0.5]);
        for (kind, id) in [("vco", 1), ("vcf", 2), ("vca", 3)] {
            new(&mut ledger, kind, id);
        }
        patch(&mut ledger, 1, 2, "in").unwrap();
        patch(&mut ledger, 2, 3, "in").unwrap();
        patch(&mut ledger, 3, 0, "in").unwrap();
        ledger.set_loads(&[0.9, 0.0]);
        new(&mut ledger, "lfo", 10);
        new(&mut ledger, "vco", 11);
        ledger.submit(&Request::Set { id: 10, param: "rate", value: synthpool_core::command::Value::Int(5) }).unwrap();
        patch(&mut ledger, 10, 11, "fm").unwrap();
        assert_eq!((ledger.owner(1), ledger.owner(10)), (Some(0), Some(1)));

        // The lfo+vco pair (2 modules) joins the voice (3 modules): the pair moves to worker 0,
        // handed over through worker 1's outbox (slots 0 and 1: its first exports).
        let sent = patch(&mut ledger, 10, 2, "cutoff").unwrap();
        let lfo = Kind::Lfo.params().iter().enumerate();
        let mut expected: Commands = vec![
            (1, WorkerCommand::Export { id: 10, slot: 0 }),
            (1, WorkerCommand::Export { id: 11, slot: 1 }),
            (1, Command::Free { id: 10 }.into()),
            (1, Command::Free { id: 11 }.into()),
            (0, Command::New { id: 10, kind: Kind::Lfo }.into()),
            (0, Command::New { id: 11, kind: Kind::Vco }.into()),
        ];
        expected.extend(lfo.map(|(p, spec)| {
            let value = if p == 0 { 5.0 } else { spec.default };
            (0, Command::Set { id: 10, param: p as u8, value }.into())
        }));
        expected.extend(
            Kind::Vco
                .params()
                .iter()
                .enumerate()
                .map(|(p, s)| (0, Command::Set { id: 11, param: p as u8, value: s.default }.into())),
        );
        expected.push((0, Command::Patch { src: 10, out: 0, dst: 11, port: 1 }.into()));
        expected.push((0, WorkerCommand::Import { id: 10, from: 1, slot: 0 }));
        expected.push((0, WorkerCommand::Import { id: 11, from: 1, slot: 1 }));
        expected.push((0, Command::Patch { src: 10, out: 0, dst: 2, port: 1 }.into()));
        assert_eq!(sent, expected);
        assert_components_together(&ledger);
        assert_eq!(ledger.placement().usage(1), Usage::default());
        assert_usage_recounts(&ledger);
    }

    #[test]
    fn cables_into_the_output_join_nothing_but_the_outputs_out_does() {
        let mut ledger = Ledger::new(2);
        new(&mut ledger, "vco", 1);
        new(&mut ledger, "noise", 2);
        new(&mut ledger, "vca", 3);
        assert_eq!((ledger.owner(1), ledger.owner(2), ledger.owner(3)), (Some(0), Some(1), Some(0)));
        assert_eq!(
            patch(&mut ledger, 1, 0, "in").unwrap(),
            vec![(0, Command::Patch { src: 1, out: 0, dst: 0, port: 0 }.into())]
        );
        assert_eq!(
            patch(&mut ledger, 2, 0, "in").unwrap(),
            vec![(1, Command::Patch { src: 2, out: 0, dst: 0, port: 0 }.into())]
        );
        assert_ne!(ledger.owner(1), ledger.owner(2));
        // The output's out feeds module 3: everything heard must reach 3, so all gather on worker 0.
        let sent = patch(&mut ledger, 0, 3, "in").unwrap();
        assert!(sent.contains(&(1, Command::Free { id: 2 }.into())));
        assert!(sent.contains(&(0, Command::New { id: 2, kind: Kind::Noise }.into())));
        assert!(sent.contains(&(0, Command::Patch { src: 2, out: 0, dst: 0, port: 0 }.into())));
        assert_eq!(sent.last(), Some(&(0, Command::Patch { src: 0, out: 0, dst: 3, port: 0 }.into())));
        assert!((1..=3).all(|id| ledger.owner(id) == Some(0)));
        assert_usage_recounts(&ledger);
    }

    #[test]
    fn a_join_that_fits_nowhere_is_rack_full_and_changes_nothing() {
        let mut ledger = Ledger::new(2);
        ledger.set_loads(&[0.0, 0.9]);
        for id in 1..=RACK_MODULES as i32 {
            new(&mut ledger, "vca", id);
        }
        for id in 1..RACK_MODULES as i32 {
            patch(&mut ledger, id, id + 1, "in").unwrap();
        }
        ledger.set_loads(&[0.9, 0.0]);
        new(&mut ledger, "vca", 9000);
        new(&mut ledger, "vca", 9001);
        assert_eq!((ledger.owner(1), ledger.owner(9000)), (Some(0), Some(1)));
        let before = (ledger.dump(), ledger.placement().usage(0), ledger.placement().usage(1));
        // Worker 0 is full; worker 1 cannot take the full-rack chain beside its 2 modules.
        assert_eq!(patch(&mut ledger, 1, 9000, "in"), Err(Error::RackFull(Limit::Modules)));
        assert_eq!((ledger.dump(), ledger.placement().usage(0), ledger.placement().usage(1)), before);
        // Within worker 1 a cable still fits.
        assert_eq!(patch(&mut ledger, 9000, 9001, "in").unwrap().len(), 1);
        assert_usage_recounts(&ledger);
    }

    #[test]
    fn a_voice_sent_as_one_bundle_is_created_where_it_stays() {
        let mut ledger = Ledger::new(3);
        new(&mut ledger, "noise", 9); // worker 0: the voice's first module goes to worker 1
        let bundle = [
            Request::New { kind: "vco", id: 1 },
            Request::New { kind: "vcf", id: 2 },
            Request::New { kind: "vca", id: 3 },
            Request::Patch { src: 1, out_port: "out", dst: 2, in_port: "in", feedback: false },
            Request::Patch { src: 2, out_port: "out", dst: 3, in_port: "in", feedback: false },
            Request::Patch { src: 3, out_port: "out", dst: 0, in_port: "in", feedback: false },
            Request::Patch { src: 9, out_port: "out", dst: 0, in_port: "in", feedback: false },
        ];
        let staged = ledger.check_bundle(&bundle).unwrap();
        assert!(
            staged.commands().iter().all(|(_, c)| !matches!(c, WorkerCommand::Rack(Command::Free { .. }))),
            "nothing moved"
        );
        let voice: Vec<usize> = staged.commands()[..6].iter().map(|&(w, _)| w).collect();
        assert_eq!(voice, vec![1; 6]);
        ledger.commit(staged).unwrap();
        assert_components_together(&ledger);
        assert_usage_recounts(&ledger);
    }

    #[test]
    fn unpatch_and_free_move_nothing() {
        let mut ledger = Ledger::new(2);
        new(&mut ledger, "vco", 1);
        new(&mut ledger, "vcf", 2);
        patch(&mut ledger, 1, 2, "in").unwrap();
        let home = ledger.owner(1).unwrap();
        let unpatch = Request::Unpatch { src: 1, out_port: "out", dst: 2, in_port: "in" };
        assert_eq!(
            ledger.submit(&unpatch).unwrap(),
            vec![(home, Command::Unpatch { src: 1, out: 0, dst: 2, port: 0 }.into())]
        );
        assert_eq!((ledger.owner(1), ledger.owner(2)), (Some(home), Some(home)));
        assert_eq!(ledger.submit(&Request::Free { id: 2 }).unwrap(), vec![(home, Command::Free { id: 2 }.into())]);
        assert_eq!(ledger.owner(2), None);
        assert_usage_recounts(&ledger);
    }
}
