//! Bytes as one datagram to the OSC server over in-process racks: decode, validate, apply,
//! then render a block. Checks what must hold for any input: no panic; replies are one
//! `/fail`, or none (an unanswerable datagram, counted as dropped), or one per message;
//! after a `/fail` the patch is unchanged; the racks hold what the ledger says; the block
//! is finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use synthpool_host::ledger::Ledger;
use synthpool_host::local::{LocalEngine, SAMPLE_PATCH as BASE};
use synthpool_host::osc::Server;

const WORKERS: usize = 2;

struct Harness {
    engine: Arc<LocalEngine>,
    ledger: Arc<Mutex<Ledger>>,
    server: Server,
}

fn harness() -> &'static Mutex<Harness> {
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let engine = Arc::new(LocalEngine::new(WORKERS, 48_000).expect("racks"));
        let ledger = Arc::new(Mutex::new(Ledger::new(WORKERS)));
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a socket");
        let server = Server::new(socket, engine.clone(), Arc::clone(&ledger));
        Mutex::new(Harness { engine, ledger, server })
    })
}

fn message_count(datagram: &[u8]) -> Option<usize> {
    fn count(p: &rosc::OscPacket) -> usize {
        match p {
            rosc::OscPacket::Message(_) => 1,
            rosc::OscPacket::Bundle(b) => b.content.iter().map(count).sum(),
        }
    }
    if synthpool_host::wire::bare_address(datagram).is_some() {
        return Some(1); // an address alone: a message without arguments
    }
    rosc::decoder::decode_udp(datagram).ok().map(|(_, p)| count(&p))
}

fuzz_target!(|data: &[u8]| {
    let h = harness().lock().unwrap_or_else(PoisonError::into_inner);
    h.engine.reset();
    {
        let mut ledger = h.ledger.lock().unwrap();
        *ledger = Ledger::new(WORKERS);
        for line in BASE {
            let (_, request) = synthpool_core::script::parse_line(line, 0.0).unwrap();
            let commands = ledger.submit(&request.unwrap()).unwrap();
            for (worker, command) in commands {
                synthpool_host::engine::Engine::send(&*h.engine, worker, &command).unwrap();
            }
        }
    }
    h.engine.render();
    let before = h.ledger.lock().unwrap().dump();
    let dropped = h.server.stats().dropped_datagrams();
    let replies = h.server.handle(data);
    let after = h.ledger.lock().unwrap().dump();
    let newly_dropped = h.server.stats().dropped_datagrams() - dropped;
    let fails = replies.iter().filter(|r| r.addr == "/fail").count();
    assert!(fails <= 1, "{replies:?}");
    if fails == 1 {
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(before, after, "a /fail changed the patch");
    }
    if newly_dropped == 1 {
        assert!(replies.len() <= 1 && fails == replies.len(), "{replies:?}");
    } else if fails == 0 {
        let n = message_count(data).expect("answered, so it decoded");
        let dumps = replies.iter().filter(|r| r.addr == "/patch/dump").count();
        // A /patch/dump may come in several parts; a base patch this small is one part.
        assert_eq!(replies.len(), n, "{replies:?}, {dumps} dumps");
    }
    let block = h.engine.render();
    assert!(block.iter().all(|x| x.is_finite()), "{block:?}");
    let ledger = h.ledger.lock().unwrap();
    for (w, (modules, cables)) in h.engine.counts().into_iter().enumerate() {
        let (usage, (link_modules, link_cables)) = (ledger.usage(w), ledger.link_usage(w));
        let expected = (usage.modules + 1 + link_modules, usage.cables + link_cables);
        assert_eq!((modules, cables), expected, "worker {w}");
    }
});
