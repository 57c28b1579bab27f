//! Properties of the OSC server over in-process racks (`LocalEngine`): any datagram, well
//! formed or not, is answered as the protocol says and a refusal changes nothing.
//!
//! Each case starts from a small patch and sends a sequence of datagrams through
//! `Server::handle`, rendering a block after each. Datagrams are either messages built from
//! the protocol's addresses and the core's kinds, parameters and ports (ids near the limits,
//! special floats, wrong types and counts), or such datagrams with random bytes mutated.
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::FileFailurePersistence;
use rosc::{OscArray, OscBundle, OscMessage, OscPacket, OscTime, OscType};
use std::net::UdpSocket;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use synthpool_core::module::{Kind, OUTPUT_PORT};
use synthpool_core::script::parse_line;
use synthpool_core::topology::MAX_ID;
use synthpool_host::engine::Engine;
use synthpool_host::ledger::Ledger;
use synthpool_host::local::{LocalEngine, SAMPLE_PATCH as BASE};
use synthpool_host::osc::{MAX_BUNDLE_DEPTH, Server};
use synthpool_host::protocol::{FailName, Reply};

const WORKERS: usize = 2;

const IMMEDIATELY: OscTime = OscTime { seconds: 0, fractional: 1 };

struct Harness {
    engine: Arc<LocalEngine>,
    ledger: Arc<Mutex<Ledger>>,
    server: Server,
}

/// One server over one engine for the whole test binary (the racks are 31.9 MB each); each
/// case takes it and starts it afresh from [`BASE`].
fn harness() -> MutexGuard<'static, Harness> {
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    let h = HARNESS
        .get_or_init(|| {
            let engine = Arc::new(LocalEngine::new(WORKERS, 48_000).unwrap());
            let ledger = Arc::new(Mutex::new(Ledger::new(WORKERS)));
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let server = Server::new(socket, engine.clone(), Arc::clone(&ledger));
            Mutex::new(Harness { engine, ledger, server })
        })
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    h.engine.reset();
    let mut ledger = h.ledger.lock().unwrap();
    *ledger = Ledger::new(WORKERS);
    for line in BASE {
        for (worker, command) in ledger.submit(&parse_line(line, 0.0).unwrap().1.unwrap()).unwrap() {
            h.engine.send(worker, &command).unwrap();
        }
    }
    drop(ledger);
    h.engine.render();
    h
}

fn dump(h: &Harness) -> Vec<String> {
    h.ledger.lock().unwrap().dump()
}

/// The messages of a packet, bundles opened, in order.
fn messages(packet: &OscPacket) -> Vec<&OscMessage> {
    match packet {
        OscPacket::Message(m) => vec![m],
        OscPacket::Bundle(b) => b.content.iter().flat_map(messages).collect(),
    }
}

fn text(arg: Option<&OscType>) -> &str {
    match arg {
        Some(OscType::String(s)) => s,
        _ => "",
    }
}

/// Sends one datagram, renders a block, and checks every property that holds after it.
fn step(h: &Harness, datagram: &[u8]) -> Result<(), TestCaseError> {
    let before = dump(h);
    let dropped = h.server.stats().dropped_datagrams();
    let replies = h.server.handle(datagram);
    let newly_dropped = h.server.stats().dropped_datagrams() - dropped;
    let fails: Vec<&OscMessage> = replies.iter().filter(|r| r.addr == "/fail").collect();
    prop_assert!(newly_dropped <= 1);
    if let [fail] = fails[..] {
        prop_assert_eq!(replies.len(), 1, "a /fail comes alone: {:?}", replies);
        // Three strings, the second a name of the protocol's.
        prop_assert!(Reply::parse(fail).is_ok(), "{:?}", fail);
        prop_assert_eq!(&dump(h), &before, "a /fail changed the patch: {:?}", fail);
    } else {
        prop_assert!(fails.is_empty(), "{:?}", replies);
    }
    if newly_dropped == 1 {
        // Unanswerable (no reply), or answered as malformed.
        let malformed = |r: &OscMessage| {
            matches!(Reply::parse(r), Ok(Reply::Fail { name: FailName::WrongArgs, message: "malformed message", .. }))
        };
        prop_assert!(replies.is_empty() || (replies.len() == 1 && malformed(&replies[0])), "{:?}", replies);
        prop_assert_eq!(&dump(h), &before, "a dropped datagram changed the patch");
    } else if fails.is_empty() {
        // An address alone is a message without arguments (OSC 1.0's older clients).
        let packet = match synthpool_host::wire::bare_address(datagram) {
            Some(addr) => Ok(OscPacket::Message(OscMessage { addr: addr.into(), args: Vec::new() })),
            None => rosc::decoder::decode_udp(datagram).map(|(_, p)| p),
        };
        prop_assert!(packet.is_ok(), "answered without /fail, so it decoded: {:?}", replies);
        let packet = packet.unwrap();
        let sent = messages(&packet);
        let mut at = 0;
        for message in sent {
            let reply = replies.get(at);
            prop_assert!(reply.is_some(), "no reply for {:?}: {:?}", message, replies);
            let reply = reply.unwrap();
            match message.addr.as_str() {
                "/status" => prop_assert_eq!(&reply.addr, "/status"),
                "/patch/dump" | "/map/list" => {
                    prop_assert_eq!(&reply.addr, &message.addr);
                    let parts = match reply.args.get(1) {
                        Some(OscType::Int(n)) => *n as usize,
                        _ => 0,
                    };
                    prop_assert!(parts >= 1, "{:?}", reply);
                    at += parts - 1;
                }
                // A parameter's own address without a value: its value, at that address.
                addr if addr.starts_with("/m/") && message.args.is_empty() => {
                    prop_assert_eq!(&reply.addr, addr);
                    prop_assert_eq!(reply.args.len(), 1, "{:?}", reply);
                }
                addr => {
                    prop_assert_eq!(&reply.addr, "/done");
                    prop_assert_eq!(text(reply.args.first()), addr);
                    prop_assert_eq!(&reply.args[1..], &message.args[..]);
                }
            }
            at += 1;
        }
        prop_assert_eq!(at, replies.len(), "one reply per message: {:?}", replies);
    }
    let block = h.engine.render();
    prop_assert!(block.as_flattened().iter().all(|x| x.is_finite()), "{:?}", block);
    let ledger = h.ledger.lock().unwrap();
    for (w, counts) in h.engine.counts().into_iter().enumerate() {
        let (usage, (link_modules, link_cables)) = (ledger.usage(w), ledger.link_usage(w));
        let expected = (usage.modules + 1 + link_modules, usage.cables + link_cables);
        prop_assert_eq!(counts, expected, "worker {}'s rack vs the ledger", w);
    }
    Ok(())
}

/// The dump, read back into a fresh ledger, gives the same dump.
fn dump_rebuilds(h: &Harness) -> Result<(), TestCaseError> {
    let lines = dump(h);
    let mut fresh = Ledger::new(WORKERS);
    for line in &lines {
        if let Some(map) = synthpool_host::mapping::parse_map_line(line) {
            let mapped = map.and_then(|(address, spec)| {
                let mapping = spec.resolve(address, |id| fresh.topology().kind(id))?;
                fresh.map(mapping)
            });
            prop_assert!(mapped.is_ok(), "{}: {:?}", line, mapped);
            continue;
        }
        let request = parse_line(line, 0.0).map(|(_, r)| r);
        prop_assert!(matches!(request, Ok(Some(_))), "{}: {:?}", line, request);
        let submitted = fresh.submit(&request.unwrap().unwrap());
        prop_assert!(submitted.is_ok(), "{}: {:?}", line, submitted);
    }
    prop_assert_eq!(fresh.dump(), lines);
    Ok(())
}

fn kinds() -> Vec<&'static str> {
    let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    names.extend(["theremin", "", "VCO"]);
    names
}

fn params() -> Vec<&'static str> {
    let mut names: Vec<&str> = Kind::ALL
        .iter()
        .flat_map(|k| k.params())
        .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()))
        .collect();
    names.extend(["bogus", ""]);
    names
}

fn ports() -> Vec<&'static str> {
    // Every input, the parameters' own ports included.
    let mut names: Vec<&str> =
        Kind::ALL.iter().flat_map(|k| (0..k.input_count() as u8).filter_map(move |p| k.input_name(p))).collect();
    names.extend([OUTPUT_PORT, OUTPUT_PORT, "left", ""]);
    names
}

fn choices() -> Vec<&'static str> {
    let mut names: Vec<&str> = Kind::ALL.iter().flat_map(|k| k.params()).flat_map(|p| p.choices).copied().collect();
    names.extend(["wobble", "nan", "inf", "-inf", "1e3", " 2 ", "0x10", ""]);
    names
}

fn special_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        select(vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            0.5,
            1.0,
            1.5,
            2.0,
            3.0,
            220.0,
            -1.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            2_147_483_648.0,
            -2_147_483_904.0,
            1e30,
        ]),
        any::<f32>(),
    ]
}

fn special_f64() -> impl Strategy<Value = f64> {
    select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.25, 2.0, 1e300, -1e300, f64::MAX, 1e-300, 3.4028235e38])
}

/// An id as controllers send it: mostly a small int (modules that exist), sometimes at or
/// past the limits, as a float or a 64-bit value.
fn id_arg() -> impl Strategy<Value = OscType> {
    let max = i32::from(MAX_ID);
    prop_oneof![
        8 => (0..8i32).prop_map(OscType::Int),
        2 => select(vec![-1, max - 1, max, max + 1, i32::MIN, i32::MAX]).prop_map(OscType::Int),
        1 => (0..8i32).prop_map(|i| OscType::Float(i as f32)),
        1 => special_f32().prop_map(OscType::Float),
        1 => select(vec![1i64, 2, -1, i64::from(max) + 1, i64::MAX, i64::MIN]).prop_map(OscType::Long),
        1 => special_f64().prop_map(OscType::Double),
    ]
}

fn value_arg() -> impl Strategy<Value = OscType> {
    prop_oneof![
        4 => special_f32().prop_map(OscType::Float),
        2 => select(vec![0, 1, 2, 3, 4, -1, 100, i32::MAX, i32::MIN]).prop_map(OscType::Int),
        1 => special_f64().prop_map(OscType::Double),
        2 => select(choices()).prop_map(|s| OscType::String(s.into())),
        1 => any_arg(),
    ]
}

/// Any argument type rosc encodes, most of which no address takes.
fn any_arg() -> BoxedStrategy<OscType> {
    prop_oneof![
        any::<i32>().prop_map(OscType::Int),
        any::<f32>().prop_map(OscType::Float),
        "[a-z/]{0,8}".prop_map(OscType::String),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(OscType::Blob),
        any::<i64>().prop_map(OscType::Long),
        any::<f64>().prop_map(OscType::Double),
        any::<bool>().prop_map(OscType::Bool),
        Just(OscType::Nil),
        Just(OscType::Inf),
        any::<char>().prop_map(OscType::Char),
        (any::<u32>(), any::<u32>()).prop_map(|(s, f)| OscType::Time(OscTime { seconds: s, fractional: f })),
        Just(OscType::Array(OscArray { content: vec![OscType::Int(1)] })),
    ]
    .boxed()
}

/// The protocol's addresses, weighted by repetition (`/patch/clear` rare: it empties the
/// patch), and a few that are not. `/m` stands for `/m/<id>/<param>` with a value, `/m?` for
/// it without one (a query); `/fader` is the address `/map` maps.
const ADDRESSES: [&str; 26] = [
    "/module/new",
    "/module/new",
    "/module/new",
    "/module/new",
    "/module/free",
    "/module/set",
    "/module/set",
    "/module/set",
    "/module/set",
    "/patch",
    "/patch",
    "/patch",
    "/patch",
    "/unpatch",
    "/unpatch",
    "/patch/clear",
    "/status",
    "/patch/dump",
    "/module/bogus",
    "/module/new/",
    "/m",
    "/m?",
    "/map",
    "/fader",
    "/fader",
    "/map/list",
];

/// The address a mapped controller sends in these tests.
const FADER: &str = "/fader";

/// A message of the protocol's shape for its address (right count, mostly right types), or
/// one with any arguments at all.
fn message() -> impl Strategy<Value = OscMessage> {
    let shaped = (
        select(ADDRESSES.to_vec()),
        select(kinds()),
        id_arg(),
        id_arg(),
        select(params()),
        select(ports()),
        value_arg(),
        value_arg(),
    )
        .prop_map(|(addr, kind, id, other, param, port, value, bound)| {
            let s = |t: &str| OscType::String(t.into());
            let (addr, args) = match addr {
                "/module/new" => (addr.to_owned(), vec![s(kind), id]),
                "/module/free" => (addr.to_owned(), vec![id]),
                "/module/set" => (addr.to_owned(), vec![id, s(param), value]),
                "/patch" | "/unpatch" => (addr.to_owned(), vec![id, s(OUTPUT_PORT), other, s(port)]),
                "/m" => (format!("/m/{}/{param}", id_text(&id)), vec![value]),
                "/m?" => (format!("/m/{}/{param}", id_text(&id)), vec![]),
                "/map" => (addr.to_owned(), vec![s(FADER), id, s(param), value, bound, s("exp")]),
                "/fader" => (addr.to_owned(), vec![value]),
                _ => (addr.to_owned(), vec![]),
            };
            OscMessage { addr, args }
        });
    let loose = (select(ADDRESSES.to_vec()), prop::collection::vec(any_arg(), 0..5))
        .prop_map(|(addr, args)| OscMessage { addr: addr.into(), args });
    prop_oneof![8 => shaped, 1 => loose]
}

/// An id argument written into an address (`/m/<id>/...`): ints as they are, anything else
/// as a word that is no id.
fn id_text(id: &OscType) -> String {
    match id {
        OscType::Int(i) => i.to_string(),
        _ => "x".into(),
    }
}

/// Timetags: now, before 1970 (0 and 1 s past 1900), long past, soon, and the far future.
fn timetag() -> impl Strategy<Value = OscTime> {
    let now = OscTime::try_from(std::time::SystemTime::now()).unwrap();
    let soon = OscTime { seconds: now.seconds, fractional: now.fractional.wrapping_add(1 << 28) };
    select(vec![
        IMMEDIATELY,
        IMMEDIATELY,
        IMMEDIATELY,
        OscTime { seconds: 0, fractional: 0 },
        OscTime { seconds: 1, fractional: 0 },
        OscTime { seconds: 2_208_988_801, fractional: 0 },
        soon,
        OscTime { seconds: u32::MAX, fractional: u32::MAX },
    ])
}

/// Mostly single messages; bundles of up to 4 elements nested up to one past the limit.
fn packet() -> impl Strategy<Value = OscPacket> {
    let leaf = message().prop_map(OscPacket::Message).boxed();
    let bundles = leaf.clone().prop_recursive(MAX_BUNDLE_DEPTH as u32 + 1, 12, 4, |inner| {
        (timetag(), prop::collection::vec(inner, 0..4))
            .prop_map(|(timetag, content)| OscPacket::Bundle(OscBundle { timetag, content }))
    });
    prop_oneof![3 => leaf, 1 => bundles]
}

fn datagram() -> impl Strategy<Value = Vec<u8>> {
    packet().prop_filter_map("rosc encodes it", |p| rosc::encoder::encode(&p).ok())
}

/// One change to a datagram's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    Set(Index, u8),
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// A big-endian word (a size, an int, a timetag half) replaced by an awkward value.
    Word(Index, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![select(vec![0u8, 0xff, b',', b'/', b'#', b'[', b']', b's', b'i', b'b', 0x80]), any::<u8>()];
    let word = select(vec![0u32, 1, 3, 4, 8, 0x7fff_ffff, 0x8000_0000, u32::MAX, 0x7fc0_0000, 0x7f80_0000]);
    prop_oneof![
        3 => (any::<Index>(), byte).prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::Flip(i, 1 << bit)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..5)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1..9usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        2 => (any::<Index>(), word).prop_map(|(i, w)| Mutation::Word(i, w)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match m {
            Mutation::Set(i, b) => bytes[i.index(len)] = *b,
            Mutation::Flip(i, bit) => bytes[i.index(len)] ^= bit,
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Insert(i, b) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let at = i.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Word(i, w) => {
                // Words sit on 4-byte boundaries in a well-formed datagram.
                let at = i.index(len.div_ceil(4)) * 4;
                for (k, b) in w.to_be_bytes().into_iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + k) {
                        *slot = b;
                    }
                }
            }
        }
    }
    bytes
}

fn mutated_datagram() -> impl Strategy<Value = Vec<u8>> {
    (datagram(), prop::collection::vec(mutation(), 1..4)).prop_map(|(bytes, ms)| mutate(bytes, &ms))
}

proptest! {
    // 1024 cases of up to 40 datagrams each: about a second in a debug build. Failures
    // found are kept as the named tests below, not in a regressions file.
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn valid_ish_messages_are_answered_and_refusals_change_nothing(datagrams in prop::collection::vec(datagram(), 1..40)) {
        let h = harness();
        for datagram in &datagrams {
            step(&h, datagram)?;
        }
        dump_rebuilds(&h)?;
    }

    #[test]
    fn mutated_datagrams_are_answered_or_dropped_and_change_nothing_when_refused(
        datagrams in prop::collection::vec(prop_oneof![1 => datagram(), 3 => mutated_datagram()], 1..40),
    ) {
        let h = harness();
        for datagram in &datagrams {
            step(&h, datagram)?;
        }
        dump_rebuilds(&h)?;
    }
}

fn encode(packet: &OscPacket) -> Vec<u8> {
    rosc::encoder::encode(packet).unwrap()
}

fn new_vco(id: i32) -> OscPacket {
    OscPacket::Message(OscMessage {
        addr: "/module/new".into(),
        args: vec![OscType::String("vco".into()), OscType::Int(id)],
    })
}

fn check(h: &Harness, datagram: &[u8]) {
    step(h, datagram).unwrap_or_else(|e| panic!("{e}"));
}

/// Found reading rosc, and by the property above: a timetag before 1970 other than
/// "immediately" made `SystemTime::from` panic (it subtracts Durations), which would stop the
/// server's OSC thread. Such a time has passed: the bundle applies at once.
#[test]
fn a_bundle_timetagged_before_1970_applies_at_once() {
    let h = harness();
    for (id, seconds) in [(10, 0), (11, 1), (12, 2_208_988_799)] {
        let timetag = OscTime { seconds, fractional: 0 };
        let bundle = OscPacket::Bundle(OscBundle { timetag, content: vec![new_vco(id)] });
        let replies = h.server.handle(&encode(&bundle));
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].addr, "/done", "{replies:?}");
    }
    check(
        &h,
        &encode(&OscPacket::Bundle(OscBundle { timetag: OscTime { seconds: 0, fractional: 0 }, content: vec![] })),
    );
}

/// Found by the property above: a bundle that cleared the patch and then asked a parameter's
/// value was answered `/done` and then `/fail` (the query checked before the clear, answered
/// after). A bundle's queries are checked on the patch its edits leave: the bundle is refused.
#[test]
fn a_query_after_a_clear_in_one_bundle_refuses_the_bundle() {
    let h = harness();
    let query = |addr: &str| OscPacket::Message(OscMessage { addr: addr.into(), args: vec![] });
    let clear = query("/patch/clear");
    check(
        &h,
        &encode(&OscPacket::Bundle(OscBundle { timetag: IMMEDIATELY, content: vec![clear, query("/m/1/freq_hz")] })),
    );
    let asked = OscBundle { timetag: IMMEDIATELY, content: vec![new_vco(30), query("/m/30/freq")] };
    let replies = h.server.handle(&encode(&OscPacket::Bundle(asked)));
    assert_eq!(replies[1], OscMessage { addr: "/m/30/freq".into(), args: vec![OscType::Float(440.0)] });
}

/// rosc's leniencies (see host/src/wire.rs): each of these was applied, in whole or in part.
#[test]
fn datagrams_rosc_would_half_read_are_malformed_and_change_nothing() {
    let h = harness();
    let before = dump(&h);
    let good = encode(&new_vco(20));
    let free = OscMessage { addr: "/module/free".into(), args: vec![OscType::Int(1)] };
    let mut padding = encode(&OscPacket::Message(free));
    padding[13] = b'!'; // "/module/free" is 12 bytes: its NUL, then padding at 13..16
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0, 0, 1]);
    // ",[si": an array never closed; rosc returned the array's contents as the arguments.
    let mut open_array = b"/module/new\0,[si\0\0\0\0vco\0".to_vec();
    open_array.extend_from_slice(&21i32.to_be_bytes());
    for bytes in [&padding, &trailing, &open_array] {
        let replies = h.server.handle(bytes);
        assert_eq!(replies.len(), 1);
        assert_eq!(text(replies[0].args.get(2)), "malformed message", "{replies:?}");
    }
    // A bundle whose second element is past the end: rosc gave the first and dropped the rest.
    let bundle = OscBundle { timetag: IMMEDIATELY, content: vec![new_vco(22), new_vco(23)] };
    let mut half = encode(&OscPacket::Bundle(bundle));
    let second = 16 + 4 + good.len();
    half[second..second + 4].copy_from_slice(&4096u32.to_be_bytes());
    let dropped = h.server.stats().dropped_datagrams();
    assert!(h.server.handle(&half).is_empty());
    assert_eq!(h.server.stats().dropped_datagrams(), dropped + 1);
    // A bundle with one element that does not decode: rosc gave the elements before it.
    let bad = OscBundle { timetag: IMMEDIATELY, content: vec![new_vco(24)] };
    let mut bytes = encode(&OscPacket::Bundle(bad));
    bytes.extend_from_slice(&8u32.to_be_bytes());
    bytes.extend_from_slice(b"/x\0\0,q\0\0");
    assert!(h.server.handle(&bytes).is_empty());
    assert_eq!(dump(&h), before);
}

#[test]
fn every_refusal_names_its_error() {
    let h = harness();
    let s = |t: &str| OscType::String(t.into());
    let cases: Vec<(OscMessage, FailName)> = vec![
        (
            OscMessage { addr: "/module/new".into(), args: vec![s("vco"), OscType::Double(f64::NAN)] },
            FailName::NotFinite,
        ),
        (OscMessage { addr: "/module/free".into(), args: vec![OscType::Float(2_147_483_648.0)] }, FailName::WrongArgs),
        (OscMessage { addr: "/module/new".into(), args: vec![s("output"), OscType::Int(30)] }, FailName::OutputModule),
        (
            OscMessage { addr: "/patch".into(), args: vec![OscType::Int(0), s("out"), OscType::Int(1), s("fm")] },
            FailName::WouldCycle,
        ),
    ];
    for (message, name) in cases {
        let replies = h.server.handle(&encode(&OscPacket::Message(message.clone())));
        let failed = Reply::parse(&replies[0]).ok().and_then(|r| r.failed());
        assert_eq!(failed, Some((message.addr.as_str(), name)), "{message:?}: {replies:?}");
        check(&h, &encode(&OscPacket::Message(message)));
    }
}

/// Found by the properties above: `/module/set 1 freq -0.0` was recorded as -0.0, dumped as
/// `-0`, which a script reads as the integer 0: the rebuilt patch differed. Validation now
/// records a negative zero as zero.
#[test]
fn a_negative_zero_is_recorded_as_zero_and_the_dump_rebuilds() {
    let h = harness();
    let set = OscMessage {
        addr: "/module/set".into(),
        args: vec![OscType::Int(1), OscType::String("freq".into()), OscType::Float(-0.0)],
    };
    check(&h, &encode(&OscPacket::Message(set)));
    assert!(dump(&h).contains(&"/module/set 1 freq_hz 0".to_string()), "{:?}", dump(&h));
    dump_rebuilds(&h).unwrap();
}

/// The fuzz target's corpus (`host/fuzz/corpus/osc_decode_apply`, kept minimised by `cargo
/// fuzz cmin`), read once. CI cannot run the fuzzer itself: it needs a nightly toolchain,
/// which these machines cannot fetch. So the inputs it found interesting run here, through
/// the same path (`Server::handle` over `LocalEngine`, then a block), as they are and as
/// seeds the properties mutate.
fn fuzz_corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/osc_decode_apply");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files.into_iter().map(|path| std::fs::read(path).unwrap()).collect()
    })
}

#[test]
fn every_fuzz_corpus_input_is_answered_as_the_protocol_says() {
    let corpus = fuzz_corpus();
    // The corpus is checked in: an empty or missing one would make this test pass vacuously.
    assert!(corpus.len() >= 100, "{} corpus files", corpus.len());
    for datagram in corpus {
        // Each from the base patch, as the fuzz target runs each input.
        let h = harness();
        step(&h, datagram).unwrap_or_else(|e| panic!("{e}: {datagram:?}"));
        dump_rebuilds(&h).unwrap_or_else(|e| panic!("{e}: {datagram:?}"));
    }
}

proptest! {
    // 256 cases of up to 8 corpus inputs, each mutated: the fuzzer's own move, from its seeds.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_fuzz_corpus_inputs_are_answered_or_dropped_and_change_nothing_when_refused(
        seeds in prop::collection::vec((any::<Index>(), prop::collection::vec(mutation(), 0..4)), 1..8),
    ) {
        let corpus = fuzz_corpus();
        let h = harness();
        for (index, mutations) in &seeds {
            step(&h, &mutate(index.get(corpus).clone(), mutations))?;
        }
        dump_rebuilds(&h)?;
    }
}
