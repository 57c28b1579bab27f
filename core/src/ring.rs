//! A single-producer single-consumer ring of fixed-size messages, made only of atomics.
//!
//! It holds no pointers and every bit pattern is a valid state (all zeros is an empty
//! ring), so it can live in memory shared by two processes: the host pushes commands into a
//! worker's ring, the worker pops them between blocks. `ringbuf`'s rings hold per-process
//! pointers and cannot do this. A full ring hands the message back (`try_push` returns it):
//! nothing blocks, nothing grows. What the host sends its workers is a [`DueCommand`], which
//! alone lays itself out in a message's words and reads itself back.
use core::sync::atomic::{AtomicU32, Ordering};

use crate::block::Generation;
use crate::command::WorkerCommand;

/// Words per message: a [`DueCommand`]'s six (the command's four, its due generation, its
/// frame).
pub const WORDS: usize = 6;

/// A command on its way to a worker: the command, the block it waits for and, when a timetag
/// names one, the sample of that block it lands on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DueCommand {
    /// The command.
    pub command: WorkerCommand,
    /// The block it applies before: a worker takes it when it renders this block or a later
    /// one (a bundle's share for each worker all wait for the same block).
    pub due: Generation,
    /// The sample of that block a timetag names, 0 ..< [`crate::BLOCK`]; None: with the block.
    pub frame: Option<u8>,
}

impl DueCommand {
    /// As a [`Message`]: words 0..4 the command ([`WorkerCommand::to_words`]), word 4 the due
    /// generation, word 5 0 for an untimed command, else 1 + its frame.
    pub fn to_words(&self) -> Message {
        let [a, b, c, d] = self.command.to_words();
        [a, b, c, d, self.due.0, self.frame.map_or(0, |f| u32::from(f) + 1)]
    }

    /// Reads [`DueCommand::to_words`] back; None for words it never writes.
    pub fn from_words(words: Message) -> Option<DueCommand> {
        let [a, b, c, d, due, frame] = words;
        let frame = match frame {
            0 => None,
            timed => Some(u8::try_from(timed - 1).ok()?),
        };
        Some(DueCommand { command: WorkerCommand::from_words([a, b, c, d])?, due: Generation(due), frame })
    }
}

/// One message of [`WORDS`] 32-bit words.
pub type Message = [u32; WORDS];

/// A ring of `N` message slots (`N` a power of two; holds up to `N` messages).
#[repr(C)]
pub struct Ring<const N: usize> {
    /// Messages pushed so far (wrapping); written only by the producer.
    head: AtomicU32,
    /// Messages popped so far (wrapping); written only by the consumer.
    tail: AtomicU32,
    slots: [[AtomicU32; WORDS]; N],
}

impl<const N: usize> Ring<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        const { assert!(N.is_power_of_two() && N <= 1 << 30, "N must be a power of two") };
        Self {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            slots: [const { [const { AtomicU32::new(0) }; WORDS] }; N],
        }
    }

    /// Appends `message`, or hands it back when the ring is full. Producer side only.
    ///
    /// # Errors
    /// The ring is full: the message comes back unchanged.
    pub fn try_push(&self, message: Message) -> Result<(), Message> {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head.wrapping_sub(tail) as usize >= N {
            return Err(message);
        }
        let slot = &self.slots[head as usize & (N - 1)];
        for (word, value) in slot.iter().zip(message) {
            word.store(value, Ordering::Relaxed);
        }
        // Release: the words above are visible before the consumer sees the new head.
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Takes the oldest message, if any. Consumer side only.
    pub fn pop(&self) -> Option<Message> {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        // A corrupt head (more than N ahead) reads as empty rather than as garbage.
        if head == tail || head.wrapping_sub(tail) as usize > N {
            return None;
        }
        let slot = &self.slots[tail as usize & (N - 1)];
        let message: Message = core::array::from_fn(|i| slot[i].load(Ordering::Relaxed));
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Some(message)
    }

    /// The oldest message without taking it, if any. Consumer side only: a consumer that
    /// applies messages only when they are due looks, then [`Ring::pop`]s.
    pub fn peek(&self) -> Option<Message> {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if head == tail || head.wrapping_sub(tail) as usize > N {
            return None;
        }
        let slot = &self.slots[tail as usize & (N - 1)];
        Some(core::array::from_fn(|i| slot[i].load(Ordering::Relaxed)))
    }

    /// Messages waiting (as seen from either side; a snapshot).
    pub fn len(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        (head.wrapping_sub(tail) as usize).min(N)
    }

    /// True when no message waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the ring.
    pub const fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, LinkEnd};
    use crate::module::Kind;

    #[test]
    fn due_commands_survive_the_trip_through_a_ring() {
        let commands = [
            Command::New { id: 9999, kind: Kind::Vcf }.into(),
            Command::Set { id: 3, param: 1, value: -0.5 }.into(),
            WorkerCommand::Export { id: 7, slot: 63 },
            WorkerCommand::Import { id: 7, from: 2, slot: 63 },
            Command::Link { id: 10_511, channel: 255, end: LinkEnd::Receive }.into(),
        ];
        let ring = Ring::<8>::new();
        for (n, &command) in commands.iter().enumerate() {
            let frame = [None, Some(0), Some(63)][n % 3];
            let sent = DueCommand { command, due: Generation(u32::MAX - 1).after(n as u32), frame };
            ring.try_push(sent.to_words()).unwrap();
            assert_eq!(ring.pop().and_then(DueCommand::from_words), Some(sent));
        }
        // Words no DueCommand writes: an unknown command, a frame beyond a u8.
        let set = DueCommand { command: commands[1], due: Generation(5), frame: None }.to_words();
        assert_eq!(DueCommand::from_words([0, 0, 0, 0, 5, 0]), None);
        assert_eq!(DueCommand::from_words([set[0], set[1], set[2], set[3], 5, 257]), None);
    }

    #[test]
    fn fifo_and_full_hands_back() {
        let ring = Ring::<4>::new();
        assert!(ring.pop().is_none());
        for i in 0..4 {
            ring.try_push([i, i + 1, i + 2, i + 3, i + 4, i + 5]).unwrap();
        }
        assert_eq!(ring.try_push([9; WORDS]), Err([9; WORDS]));
        assert_eq!(ring.len(), 4);
        for i in 0..4 {
            assert_eq!(ring.peek(), Some([i, i + 1, i + 2, i + 3, i + 4, i + 5]));
            assert_eq!(ring.pop(), Some([i, i + 1, i + 2, i + 3, i + 4, i + 5]));
        }
        assert!(ring.is_empty());
    }

    #[test]
    fn wraps_past_u32_max() {
        let ring = Ring::<2>::new();
        ring.head.store(u32::MAX, Ordering::Relaxed);
        ring.tail.store(u32::MAX, Ordering::Relaxed);
        for i in 0..10u32 {
            ring.try_push([i; WORDS]).unwrap();
            assert_eq!(ring.pop(), Some([i; WORDS]));
        }
    }

    #[test]
    fn two_threads_pass_every_message_in_order() {
        let ring = Ring::<8>::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..100_000u32 {
                    let mut m = [i; WORDS];
                    while let Err(back) = ring.try_push(m) {
                        m = back;
                        std::hint::spin_loop();
                    }
                }
            });
            let mut next = 0u32;
            while next < 100_000 {
                if let Some(m) = ring.pop() {
                    assert_eq!(m, [next; WORDS]);
                    next += 1;
                }
            }
        });
    }
}
