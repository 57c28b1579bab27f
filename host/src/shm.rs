//! The one place with `unsafe`: the shared memory region every process maps, its `repr(C)`
//! layout, futex wait and wake on its words, the counting allocator's `GlobalAlloc` impl
//! (its bookkeeping is `alloc_count.rs`), and the two raw calls behind `sched.rs`
//! (SCHED_FIFO, the flush-to-zero register).
//!
//! Layout (one memfd, laid out once by the host before any worker starts):
//! ```text
//! [Control: clock, per-worker rings/outputs/stats, links, capture]  (atomics only, any bits valid)
//! [pad to 4 KiB][HostRack worker 0][pad][HostRack worker 1]...
//! ```
//! Everything in `Control` is an atomic, so both sides may touch it at any time. A worker's
//! `HostRack` is plain memory that only that worker touches while it runs.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
use rustix::thread::futex;
use synthpool_core::BLOCK;
use synthpool_core::block::CHANNELS;
use synthpool_core::module::Module;
use synthpool_core::rack::HostRack;
use synthpool_core::ring::Ring;

/// Most workers one region holds.
pub const MAX_WORKERS: usize = 64;
/// Commands a worker's ring holds before the host answers `/fail busy`: every command due at
/// one block must fit (a bundle, a loaded patch: a standard voice is ~19 commands, so ~860
/// voices at once; 16,384 slots are 384 KiB per worker, touched only as they are used). A
/// rebuild larger than this is queued in parts as the worker drains them.
pub const RING_SLOTS: usize = 16_384;
/// Block timings each worker keeps (a ring of the most recent), for `/status` and profiling.
pub const TIMING_SLOTS: usize = 1024;

const PAGE: usize = 4096;
/// Region marker: a tag and the sizes of the layout, so a worker from another build (whose
/// layout may differ) refuses to attach instead of misreading memory.
const MAGIC: u64 = 0x5350_0000_0000_0000
    ^ ((size_of::<Outbox>() as u64) << 40)
    ^ ((size_of::<Control>() as u64) << 24)
    ^ size_of::<HostRack>() as u64;

/// Words every process watches: the block clock.
#[repr(C)]
pub struct Clock {
    /// Region format marker, written last by the host when the layout is ready.
    pub magic: AtomicU64,
    /// Block generation: the host bumps it for each block, then wakes the workers it owes
    /// that block through their own [`WorkerShared::wake`].
    pub generation: AtomicU32,
    /// Bumped by each worker after finishing a block (futex the host sleeps on).
    pub done: AtomicU32,
    /// Nonzero: workers exit.
    pub stop: AtomicU32,
    /// Workers the region was laid out for.
    pub workers: AtomicU32,
    /// The `done` count at which this block's last worker is finished: that worker, and only
    /// it, wakes the host (which otherwise would wake once per worker to find work left).
    pub expected_done: AtomicU32,
    /// Sample rate, Hz.
    pub sample_rate_hz: AtomicU32,
    /// When the host stops waiting for this block (CLOCK_MONOTONIC, ns), written before the
    /// generation is bumped: a worker waiting for a link's block gives up then.
    pub deadline_ns: AtomicU64,
}

/// One block's timing, as the worker measured it (CLOCK_MONOTONIC, ns).
#[repr(C)]
pub struct BlockTiming {
    /// The generation this block answered.
    pub generation: AtomicU32,
    /// From the host's wake to the worker starting, ns.
    pub wake_ns: AtomicU32,
    /// From start to output written, ns.
    pub work_ns: AtomicU32,
    /// Of `work_ns`, the time spent waiting for cables from other workers (links), ns: the
    /// rest is this worker's own work, which its load measures.
    pub wait_ns: AtomicU32,
}

/// One rack slot's module and the time it took, as its worker publishes them (every
/// [`crate::worker::TIME_MODULES_EVERY`]th block). The three words are written one by one:
/// a reader may see a slot change hands between them, which costs one reading's accuracy.
#[repr(C)]
pub struct ModuleTiming {
    /// The module in the slot, `id << 8 | (kind as u8 + 1)` ([`module_word`]); 0 when empty.
    pub module: AtomicU32,
    /// Timed blocks since this module took the slot.
    pub blocks: AtomicU32,
    /// Nanoseconds it took over those blocks (CLOCK_MONOTONIC).
    pub ns: AtomicU64,
}

/// [`ModuleTiming::module`] for module `id` of `kind`.
pub fn module_word(id: u16, kind: synthpool_core::module::Kind) -> u32 {
    (u32::from(id) << 8) | (kind as u32 + 1)
}

/// The id and kind a [`ModuleTiming::module`] word names, or None for an empty slot.
pub fn module_of_word(word: u32) -> Option<(u16, synthpool_core::module::Kind)> {
    let kind = (word & 0xff).checked_sub(1)?;
    synthpool_core::module::Kind::ALL.get(kind as usize).map(|&k| ((word >> 8) as u16, k))
}

/// [`WorkerShared::state`]: launched, not ready yet (the host does not wait for it).
pub const STARTING: u32 = 0;
/// [`WorkerShared::state`]: rendering blocks; the host waits for it each block.
pub const READY: u32 = 1;
/// [`WorkerShared::state`]: exited when told to stop.
pub const EXITED: u32 = 2;
/// [`WorkerShared::state`]: died; the host's supervisor is replacing it.
pub const DEAD: u32 = 3;
/// [`WorkerShared::state`]: crashed too often; its modules moved to other workers.
pub const RETIRED: u32 = 4;

/// What the host and one worker share, besides the worker's rack.
#[repr(C)]
pub struct WorkerShared {
    /// Host -> worker: commands, each tagged with the generation it waits for.
    pub commands: Ring<RING_SLOTS>,
    /// [`STARTING`], [`READY`], [`EXITED`], [`DEAD`] or [`RETIRED`] (futex the host waits
    /// on at start-up). The host waits each block only for READY workers.
    pub state: AtomicU32,
    /// 1 while the worker changes its rack (applies commands, renders): a worker that dies
    /// with it set left its rack half-changed, so its replacement gets a rack rebuilt from
    /// the ledger; one that dies with it clear left a whole block's state to re-attach to.
    pub busy: AtomicU32,
    /// Set by the host when it launches a replacement: the first block gathered from it fades
    /// in over the block instead of starting with a step.
    pub fade_in: AtomicU32,
    /// Replacements launched for this slot.
    pub restarts: AtomicU32,
    /// Heap allocations the worker made while rendering (should stay 0).
    pub allocations: AtomicU64,
    /// Heap frees the worker made while rendering (should stay 0).
    pub frees: AtomicU64,
    /// Pid of the process that claimed this slot's rack (0: none). The host clears it
    /// before launching a worker and only touches the rack while it is 0.
    pub claimed_by: AtomicU32,
    /// The worker's process id.
    pub pid: AtomicU32,
    /// The core it pinned itself to.
    pub core: AtomicU32,
    /// The last generation whose output this worker finished.
    pub done_generation: AtomicU32,
    /// When the host woke the workers for the current generation (monotonic ns).
    pub woken_at_ns: AtomicU64,
    /// Blocks rendered.
    pub blocks: AtomicU64,
    /// Blocks finished after the host's deadline (the host counts them).
    pub late_blocks: AtomicU64,
    /// This block's output, f32 bits, by channel (left, right).
    pub output: [[AtomicU32; BLOCK]; CHANNELS],
    /// Recent block timings, indexed by `blocks % TIMING_SLOTS`.
    pub timing: [BlockTiming; TIMING_SLOTS],
    /// Blocks whose modules were timed one by one.
    pub timed_blocks: AtomicU64,
    /// Per rack slot: its module and the time it took.
    pub modules: [ModuleTiming; HostRack::SLOTS],
    /// Blocks in which a worker waiting for a link's block from this one gave up (this one
    /// was late, or died): the receive took silence for it.
    pub late_links: AtomicU64,
    /// The generation the host asks this worker to render (futex the worker sleeps on): the
    /// host writes it only for blocks it owes the worker (the worker has work, and the host's
    /// audio thread does not render its rack itself).
    pub wake: AtomicU32,
    /// 1 while the worker sleeps (or is about to) on `wake`: the host makes the wake syscall
    /// only then, so blocks that come back to back cost no syscall.
    pub sleeping: AtomicU32,
    /// The first generation of the blocks the host has owed this worker without a break:
    /// a worker that falls behind catches up from there, never over blocks it was not owed.
    pub owed_from: AtomicU32,
    /// 1 when the last block left its rack rendering only silence (nothing but the output,
    /// no cable, nothing fading): the host does not wake it until a command comes.
    pub idle: AtomicU32,
    /// 1 while the host's audio thread renders this rack itself ([`Region::take_lane`]): the
    /// worker process stands by and touches nothing of its rack; the host never writes
    /// `wake` meanwhile.
    pub inline: AtomicU32,
    /// 1 while a thread of the host holds this rack ([`LaneGuard`]): the audio thread for an
    /// inline block, the supervisor to clear it.
    pub host_holds: AtomicU32,
}

/// Link channels in the region: each carries one block a block from the worker that sends
/// it to the one that receives it (a cable between workers; see ledger.rs's `Link`).
pub const LINK_CHANNELS: usize = synthpool_core::rack::HOST_LINKS;

/// One link channel. The sender writes the block, then the generation it is for (Release);
/// the receiver reads the generation (Acquire), then the block.
#[repr(C, align(64))]
pub struct LinkChannel {
    /// The generation whose block `block` holds.
    pub generation: AtomicU32,
    /// The worker that sends on it (set when its send is made).
    pub sender: AtomicU32,
    /// The block, as f32 bits.
    pub block: [AtomicU32; BLOCK],
}

/// The atomics part of the region.
#[repr(C)]
pub struct Control {
    /// The clock.
    pub clock: Clock,
    /// One entry per possible worker.
    pub workers: [WorkerShared; MAX_WORKERS],
    /// The link channels.
    pub links: [LinkChannel; LINK_CHANNELS],
    /// The audio input of the block the host is about to render, f32 bits, by channel
    /// (left, right): written by the audio thread before it bumps the generation, read by
    /// every rack that renders that block (its `input` modules play it).
    pub capture: [[AtomicU32; BLOCK]; CHANNELS],
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

fn rack_offset(index: usize) -> usize {
    round_up(size_of::<Control>(), PAGE) + index * round_up(size_of::<HostRack>(), PAGE)
}

/// Modules a worker's outbox holds at once: a move hands over at most this many modules
/// from one worker (the rest start afresh), and the ledger hands out a worker's slots in
/// turn, so a slot is reused only after this many more exports.
pub const OUTBOX_SLOTS: usize = 64;

/// One module handed from one worker to another (a move between workers): written by the
/// worker that owns the outbox, read by the one taking the module, in the same block.
#[repr(C)]
struct OutSlot {
    /// Odd while the owner writes the slot (a sequence lock).
    seq: AtomicU32,
    /// The generation the module was exported for (0: none yet).
    generation: AtomicU32,
    /// The module's id.
    id: AtomicU32,
    /// 1 when `module` holds it; 0 when the exporter had none to give (the module was new
    /// that block): the importer then starts it afresh without waiting.
    present: AtomicU32,
    /// The module, as the owner's rack held it before that block.
    module: std::cell::UnsafeCell<std::mem::MaybeUninit<Module>>,
}

/// A worker's outbox: [`OUTBOX_SLOTS`] modules on their way to other workers.
#[repr(C)]
struct Outbox {
    slots: [OutSlot; OUTBOX_SLOTS],
}

/// Where worker `index`'s outbox lies in a region of `workers` workers (after every rack).
fn outbox_offset(workers: usize, index: usize) -> usize {
    rack_offset(workers) + index * round_up(size_of::<Outbox>(), PAGE)
}

fn region_len(workers: usize) -> usize {
    outbox_offset(workers, workers)
}

/// The mapped region. Dropping it unmaps it.
pub struct Region {
    base: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
    workers: usize,
}

// SAFETY: the region is shared memory; `Control` is made of atomics only, and racks are
// handed out only through `rack_mut`, whose contract gives each rack a single user.
unsafe impl Send for Region {}
// SAFETY: as above: shared access goes through atomics.
unsafe impl Sync for Region {}

impl Region {
    /// Creates and maps a zeroed region for `workers` workers and lays it out: every rack is
    /// cleared in place for `sample_rate_hz`. The memfd is inheritable (no CLOEXEC) so that
    /// workers started later find it at [`Region::raw_fd`].
    ///
    /// # Errors
    /// memfd_create, ftruncate or mmap failed, or `workers` is 0 or above [`MAX_WORKERS`].
    pub fn create(workers: usize, sample_rate_hz: u32) -> io::Result<Region> {
        if workers == 0 || workers > MAX_WORKERS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("1..={MAX_WORKERS} workers")));
        }
        let fd = memfd_create("synthpool", MemfdFlags::empty())?;
        let len = region_len(workers);
        ftruncate(&fd, len as u64)?;
        let mut region = Self::map(fd, len, workers, ProtFlags::READ | ProtFlags::WRITE)?;
        for index in 0..workers {
            // A fresh memfd reads as zeros, which is a valid HostRack (see `rack_mut`);
            // `init_zeroed` writes only the few pages whose empty value is not zeros, so the
            // rack's memory is allocated as its modules use it.
            // SAFETY: no worker exists yet, so nothing else uses this rack.
            unsafe { region.rack_mut(index) }.init_zeroed(sample_rate_hz as f32);
        }
        let clock = &region.control().clock;
        clock.workers.store(workers as u32, std::sync::atomic::Ordering::Relaxed);
        clock.sample_rate_hz.store(sample_rate_hz, std::sync::atomic::Ordering::Relaxed);
        clock.magic.store(MAGIC, std::sync::atomic::Ordering::Release);
        region.workers = workers;
        Ok(region)
    }

    /// Maps the region a host created, from the inherited descriptor `raw_fd`.
    ///
    /// # Errors
    /// The descriptor is not an open memfd of a laid-out region.
    pub fn attach(raw_fd: RawFd) -> io::Result<Region> {
        // SAFETY: `raw_fd` was inherited from the host for this purpose and nothing else in
        // this process owns it; fstat below checks it is open before we rely on it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw_fd) };
        Self::map_laid_out(fd, ProtFlags::READ | ProtFlags::WRITE)
    }

    /// Maps a running server's region read-only from `path`, a `/proc/PID/fd/N` link to its
    /// memfd (see [`crate::profile::find_region`]): the profiler's view. The mapping has no
    /// write permission, so nothing this process does can change what the server renders.
    ///
    /// # Errors
    /// The file cannot be opened (another user's process), or is not a laid-out region of
    /// this build.
    pub fn attach_read_only(path: &std::path::Path) -> io::Result<ReadOnlyRegion> {
        let fd: OwnedFd = std::fs::File::open(path)?.into();
        Ok(ReadOnlyRegion { region: Self::map_laid_out(fd, ProtFlags::READ)? })
    }

    /// Maps a region another process created and laid out, with `prot`, and checks it is one
    /// of this build: large enough, its magic word, its worker count within the mapping.
    fn map_laid_out(fd: OwnedFd, prot: ProtFlags) -> io::Result<Region> {
        let len = rustix::fs::fstat(&fd)?.st_size as usize;
        if len < size_of::<Control>() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "region too small"));
        }
        let mut region = Self::map(fd, len, 0, prot)?;
        let clock = &region.control().clock;
        if clock.magic.load(std::sync::atomic::Ordering::Acquire) != MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a synthpool region of this build"));
        }
        let workers = clock.workers.load(std::sync::atomic::Ordering::Relaxed) as usize;
        if workers > MAX_WORKERS || region_len(workers) > len {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "region layout does not match this build"));
        }
        region.workers = workers;
        Ok(region)
    }

    fn map(fd: OwnedFd, len: usize, workers: usize, prot: ProtFlags) -> io::Result<Region> {
        // SAFETY: a fresh shared mapping of `len` bytes of `fd` (read-write, or read-only for
        // the profiler), at an address the kernel picks; no existing memory is affected.
        let ptr = unsafe { mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, &fd, 0)? };
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Region { base, len, fd, workers })
    }

    /// The atomics every process shares.
    pub fn control(&self) -> &Control {
        // SAFETY: the mapping is at least size_of::<Control>() bytes (checked at create and
        // attach), page-aligned (so aligned for Control), lives as long as `self`, and Control
        // is repr(C) of atomics only, for which every bit pattern (zeros included) is valid.
        unsafe { self.base.cast::<Control>().as_ref() }
    }

    /// Worker `index`'s rack.
    ///
    /// # Safety
    /// While the returned reference lives, nothing else (in this process or another) may
    /// access that rack: only the worker that owns `index` calls this, once, and the host
    /// calls it only before that worker starts or after it is gone.
    pub unsafe fn rack_mut(&mut self, index: usize) -> &mut HostRack {
        // SAFETY: see `rack_ptr`; exclusive access is the caller's contract.
        unsafe { &mut *self.rack_ptr(index) }
    }

    /// Worker `index`'s rack, as a pointer that is valid (aligned, inside the mapping, a valid
    /// HostRack) as long as `self` lives; dereferencing it mutably needs exclusive access.
    fn rack_ptr(&self, index: usize) -> *mut HostRack {
        assert!(index < MAX_WORKERS && rack_offset(index + 1) <= self.len, "rack {index} outside the region");
        // SAFETY: the offset is page-aligned and inside the mapping (asserted), the memory is
        // either zeros from the fresh memfd or a rack left by `clear_in_place`. Zeros are a valid
        // HostRack: `Module` is repr(u8) with tag 0 = Empty, heapless vectors of length 0,
        // integer and float arrays, and `Fade` whose tag 0 is a valid variant; the delay and
        // reverb pools hold only f32 and usize.
        unsafe { self.base.as_ptr().add(rack_offset(index)).cast::<HostRack>() }
    }

    /// Makes this process the user of worker `index`'s rack, if no process holds it
    /// (`claimed_by` is 0). The host clears `claimed_by` only when no worker for `index` is
    /// alive, and touches a rack only while it is unclaimed: so the rack has one user.
    ///
    /// # Errors
    /// `index` is outside the region, or another process holds the slot.
    pub fn claim_worker(self, index: usize) -> io::Result<WorkerRegion> {
        if index >= self.workers {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("worker {index} outside the region")));
        }
        let me = std::process::id();
        let claimed = &self.control().workers[index].claimed_by;
        match claimed.compare_exchange(0, me, std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire)
        {
            Ok(_) => Ok(WorkerRegion { region: self, index }),
            Err(holder) => {
                Err(io::Error::new(io::ErrorKind::AddrInUse, format!("worker {index} is held by pid {holder}")))
            }
        }
    }

    /// The descriptor number workers inherit.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The descriptor, borrowed.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Workers this region was laid out for.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty mapping (never: a region holds at least its control block).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A region mapped without write permission ([`Region::attach_read_only`]): only its
/// atomics can be read, never a rack, and a store through [`ReadOnlyRegion::control`] would
/// fault (SIGSEGV in this process; the server is untouched). The profiler only loads.
pub struct ReadOnlyRegion {
    region: Region,
}

impl ReadOnlyRegion {
    /// The shared atomics, to load from.
    pub fn control(&self) -> &Control {
        self.region.control()
    }

    /// Workers the region was laid out for.
    pub fn workers(&self) -> usize {
        self.region.workers
    }
}

/// A region as one worker process sees it: the shared atomics and its own rack.
pub struct WorkerRegion {
    region: Region,
    index: usize,
}

impl WorkerRegion {
    /// The shared atomics, this worker's rack and the outboxes, borrowed together.
    pub fn parts(&mut self) -> (&Control, &mut HostRack, Outboxes<'_>) {
        let index = self.index;
        let rack: *mut HostRack = {
            // SAFETY: this process claimed rack `index` (`claim_worker`), so it is its only
            // user; see `rack_mut` for layout and validity.
            unsafe { &mut *self.region.rack_ptr(index) }
        };
        let outboxes = Outboxes { region: &self.region, own: index };
        // SAFETY: the rack lies after the control block (rack_offset >= its page-rounded
        // size) and before the outboxes, so the shared `&Control`, the outboxes and the `&mut
        // HostRack` never overlap; all borrow `self`, so none outlives the mapping.
        (self.region.control(), unsafe { &mut *rack }, outboxes)
    }

    /// The worker slot this process owns.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// Worker `index`'s rack, held by a thread of the host ([`Region::take_lane`],
/// [`release_dead_worker`]); released when dropped.
pub struct LaneGuard<'a> {
    region: &'a Region,
    index: usize,
}

impl LaneGuard<'_> {
    /// The shared atomics, the rack and the outboxes as lane `index`'s renderer uses them.
    pub fn parts(&mut self) -> (&Control, &mut HostRack, Outboxes<'_>) {
        let rack = self.region.rack_ptr(self.index);
        let outboxes = Outboxes { region: self.region, own: self.index };
        // SAFETY: `host_holds` is 1 for this guard alone (taken by compare-exchange), so no
        // other thread of the host uses the rack; the worker process does not either, as
        // `take_lane` and `release_dead_worker` establish (see there); the rack lies apart from
        // the control block and the outboxes; layout and validity as in `rack_mut`.
        (self.region.control(), unsafe { &mut *rack }, outboxes)
    }

    /// The lane's index.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        self.region.control().workers[self.index].host_holds.store(0, std::sync::atomic::Ordering::Release);
    }
}

impl Region {
    /// Takes worker `index`'s rack for the calling thread (the audio thread) to render this
    /// block itself, while the worker process stands by: when [`WorkerShared::inline`] is
    /// already set, or when the worker is idle at the clock and it can be set now. None when
    /// the worker may be using its rack, or another thread of the host holds it.
    ///
    /// Why the worker is not using its rack: it touches the rack only after it reads a new
    /// [`WorkerShared::wake`] with `inline` clear, sets `busy` first and clears it (Release)
    /// before publishing `done_generation`; at start-up it prepares the rack before saying
    /// READY, and only if the lane never rendered a block. So a READY worker whose
    /// `done_generation` equals its `wake` and whose `busy` is clear has finished everything
    /// it was asked and waits for a wake the host will not write while `inline` is set. A
    /// dead, exited or retired worker (not STARTING) with `busy` clear cannot touch it either,
    /// and its replacement finds `blocks` above 0 once the host rendered a block here.
    pub fn take_lane(&self, index: usize) -> Option<LaneGuard<'_>> {
        use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
        let shared = self.control().workers.get(index).filter(|_| index < self.workers)?;
        shared.host_holds.compare_exchange(0, 1, AcqRel, Acquire).ok()?;
        let guard = LaneGuard { region: self, index };
        if shared.inline.load(Acquire) == 1 {
            return Some(guard);
        }
        let (blocks, wake) = (shared.blocks.load(Relaxed), shared.wake.load(Relaxed));
        let idle = shared.busy.load(Acquire) == 0
            && match shared.state.load(Acquire) {
                READY => shared.done_generation.load(Acquire) == wake || blocks == 0 && wake == 0,
                STARTING => false,
                _ => blocks > 0,
            };
        if !idle {
            return None; // the guard's drop lets go
        }
        shared.inline.store(1, Release);
        Some(guard)
    }
}

/// The workers' outboxes, as one worker uses them: it writes its own ([`Outboxes::export`])
/// and reads the others' ([`Outboxes::import`]).
///
/// The protocol that makes the plain (non-atomic) module bytes safe to share: the owner
/// writes a slot only when an `Export` command names it, between its `seq` turning odd and
/// even again, and publishes the generation after (Release); a reader copies the bytes only
/// once it sees that generation and an even `seq` (Acquire), and keeps the copy only if
/// `seq` did not move meanwhile. The ledger hands out each worker's slots in turn
/// ([`OUTBOX_SLOTS`] of them), and a reader reads a slot in the block it was written for, so
/// a slot is not rewritten while read unless that many modules leave one worker within a
/// block; the sequence check then discards the copy (the module starts afresh).
#[derive(Clone, Copy)]
pub struct Outboxes<'a> {
    region: &'a Region,
    own: usize,
}

impl Outboxes<'_> {
    fn slot(&self, worker: usize, slot: usize) -> Option<&OutSlot> {
        let workers = self.region.workers;
        if worker >= workers || slot >= OUTBOX_SLOTS || outbox_offset(workers, worker + 1) > self.region.len {
            return None;
        }
        // SAFETY: inside the mapping (checked), aligned (page-aligned outbox, repr(C) array),
        // and zeros or slots written by `export` are valid OutSlots: atomics, and a
        // MaybeUninit read only through the protocol above.
        let outbox = unsafe { &*self.region.base.as_ptr().add(outbox_offset(workers, worker)).cast::<Outbox>() };
        Some(&outbox.slots[slot])
    }

    /// Copies `module` (id `id`; None: nothing to hand over) into slot `slot` of this
    /// worker's outbox, for generation `generation`. Ignored for a slot out of range.
    pub fn export(&self, slot: usize, id: u16, generation: u32, module: Option<&Module>) {
        let Some(out) = self.slot(self.own, slot) else { return };
        out.seq.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Some(module) = module {
            // SAFETY: only this worker writes its own outbox (the protocol above); the value
            // is a whole Module, which holds no pointers, so its bytes mean the same in any
            // process.
            unsafe { out.module.get().write(std::mem::MaybeUninit::new(module.clone())) };
        }
        out.present.store(u32::from(module.is_some()), std::sync::atomic::Ordering::Relaxed);
        out.id.store(u32::from(id), std::sync::atomic::Ordering::Relaxed);
        out.seq.fetch_add(1, std::sync::atomic::Ordering::Release);
        out.generation.store(generation, std::sync::atomic::Ordering::Release);
    }

    /// Module `id` from slot `slot` of worker `from`'s outbox, exported for generation
    /// `generation`: waits for it until the monotonic clock reads `give_up_ns` (the exporter
    /// writes it at the start of the same block), then gives up (None). None at once when the
    /// exporter had none to give.
    pub fn import(&self, from: usize, slot: usize, id: u16, generation: u32, give_up_ns: u64) -> Option<Module> {
        let out = self.slot(from, slot)?;
        loop {
            let seq = out.seq.load(std::sync::atomic::Ordering::Acquire);
            if seq % 2 == 0
                && out.generation.load(std::sync::atomic::Ordering::Acquire) == generation
                && out.id.load(std::sync::atomic::Ordering::Relaxed) == u32::from(id)
            {
                if out.present.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                    return None;
                }
                // SAFETY: the bytes are copied as MaybeUninit (no claim they are a valid Module
                // yet); a volatile read keeps the copy between the two sequence loads.
                let copy = unsafe { out.module.get().read_volatile() };
                std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                if out.seq.load(std::sync::atomic::Ordering::Relaxed) == seq {
                    // SAFETY: the sequence did not move while copying, so the copy is the whole
                    // Module the exporter wrote before publishing this generation.
                    return Some(unsafe { copy.assume_init() });
                }
            }
            if crate::clock::now_ns() >= give_up_ns {
                return None;
            }
            std::hint::spin_loop();
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `map`, and every reference into
        // it borrows `self`, so none outlives this point.
        let _ = unsafe { munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout` (None: until woken). Returns at
/// once if the word differs. A shared (not PRIVATE) futex: it works across processes.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let timespec =
        timeout.map(|t| rustix::time::Timespec { tv_sec: t.as_secs() as i64, tv_nsec: t.subsec_nanos() as i64 });
    // Errors are EAGAIN (the word changed), ETIMEDOUT and EINTR: all mean "look again".
    let _ = futex::wait(word, futex::Flags::empty(), expected, timespec.as_ref());
}

/// Wake everyone: the kernel reads the count as an i32, so u32::MAX would mean -1 (one).
pub const ALL: u32 = i32::MAX as u32;

/// Wakes up to `count` processes sleeping on `word` (at most [`ALL`]).
pub fn futex_wake(word: &AtomicU32, count: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), count);
}

/// pthread_setschedparam(SCHED_FIFO, `priority`) for the calling thread: the raw call behind
/// [`crate::sched::set_realtime`] (rustix has no sched_setscheduler).
///
/// # Errors
/// The OS refused (no CAP_SYS_NICE or RLIMIT_RTPRIO).
pub(crate) fn set_fifo_priority(priority: i32) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: pthread_self() is the calling thread; `param` is a valid sched_param for the call.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// Sets this thread's flush-to-zero modes (FTZ and DAZ on x86-64, FZ on aarch64): the
/// register writes behind [`crate::sched::flush_denormals`].
pub(crate) fn set_flush_to_zero() {
    #[cfg(target_arch = "x86_64")]
    {
        // MXCSR bit 15 is flush-to-zero, bit 6 denormals-are-zero.
        #[allow(deprecated)]
        // SAFETY: reading and writing MXCSR only changes this thread's float rounding/denormal
        // modes; SSE is always present on x86-64.
        unsafe {
            let csr = std::arch::x86_64::_mm_getcsr();
            std::arch::x86_64::_mm_setcsr(csr | (1 << 15) | (1 << 6));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // FPCR bit 24 is FZ (flush-to-zero).
        // SAFETY: reading and writing FPCR only changes this thread's float modes.
        unsafe {
            let fpcr: u64;
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr);
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr | (1 << 24));
        }
    }
}

/// Clears worker `index`'s slot after its process is gone so a replacement can claim it:
/// drops the commands it had not taken when `rebuild` (they are replaced by the ledger's
/// rebuild), clears its rack in place when `rebuild` (its predecessor died while changing
/// it), and releases the claim. The caller must be the ring's only producer meanwhile.
///
/// # Errors
/// A process still holds the slot (its pid is in `claimed_by` and alive).
pub fn release_dead_worker(region: &Region, index: usize, rebuild: bool) -> io::Result<()> {
    use std::sync::atomic::Ordering;
    let shared = &region.control().workers[index];
    let holder = shared.claimed_by.load(std::sync::atomic::Ordering::Acquire);
    if holder != 0 && crate::pid::is_alive(holder) {
        return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("worker {index} is still held by pid {holder}")));
    }
    if rebuild {
        // Not while the audio thread renders a block of this rack (it never does once the
        // lane is not inline, and a worker dies mid-change only in a lane that is not).
        while shared.host_holds.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
            std::hint::spin_loop();
        }
        while shared.commands.pop().is_some() {}
        let sample_rate_hz = region.control().clock.sample_rate_hz.load(std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the process that held this rack is gone (checked above), no replacement is
        // launched before this returns, the pool calls this from its supervisor only (one
        // caller at a time), and the hold taken above keeps the audio thread out: so nothing
        // else uses the rack.
        unsafe { &mut *region.rack_ptr(index) }.clear_in_place(sample_rate_hz as f32);
        shared.host_holds.store(0, Ordering::Release);
    }
    let shared = &region.control().workers[index];
    shared.busy.store(0, std::sync::atomic::Ordering::Relaxed);
    shared.claimed_by.store(0, std::sync::atomic::Ordering::Release);
    Ok(())
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting only touches
// atomics and a const-initialised thread local (neither allocates).
unsafe impl std::alloc::GlobalAlloc for crate::alloc_count::CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        crate::alloc_count::note_allocation();
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        crate::alloc_count::note_free();
        // SAFETY: the caller's contract for `dealloc` is passed on as it is.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        crate::alloc_count::note_allocation();
        // SAFETY: as `alloc`.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        crate::alloc_count::note_allocation();
        crate::alloc_count::note_free();
        // SAFETY: as `alloc` and `dealloc`.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_created_region_attaches_and_its_racks_play() {
        let mut region = Region::create(2, 48_000).unwrap();
        assert!(region.len() >= 2 * size_of::<HostRack>());
        // SAFETY: test-only, single user.
        let rack = unsafe { region.rack_mut(1) };
        let mut topology = rack.topology();
        for line in ["/module/new vco 1", "/module/set 1 wave sine", "/patch 1 out 0 in"] {
            let (_, request) = synthpool_core::script::parse_line(line, 0.0).unwrap();
            rack.submit(&mut topology, &request.unwrap()).unwrap();
        }
        let mut block = synthpool_core::block::STEREO_SILENCE;
        rack.process(&mut block);
        rack.process(&mut block);
        assert!(block[0].iter().any(|&s| s.abs() > 0.1));
        let dup = rustix::io::dup(region.fd()).unwrap();
        let attached = Region::attach(std::os::fd::IntoRawFd::into_raw_fd(dup)).unwrap();
        assert_eq!(attached.workers(), 2);
        attached.control().workers[0].pid.store(7, Ordering::Relaxed);
        assert_eq!(region.control().workers[0].pid.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn futex_wait_returns_when_the_word_differs_or_times_out() {
        let word = AtomicU32::new(1);
        futex_wait(&word, 0, None); // differs: returns at once
        futex_wait(&word, 1, Some(Duration::from_millis(1)));
        futex_wake(&word, 1);
    }
}
