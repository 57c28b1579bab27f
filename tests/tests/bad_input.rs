//! Bad input against the real server: every kind of malformed datagram and refused request
//! gets exactly one `/fail` naming its error (or, when no address can be read, no reply and
//! a count in `/status`), `/patch/dump` is the same after each as before, and the patch keeps
//! playing its tone throughout.
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use std::time::Duration;
use synthpool_tests::*;

use synthpool_host::osc::MAX_BUNDLE_DEPTH;

const IMMEDIATELY: OscTime = OscTime { seconds: 0, fractional: 1 };

fn msg(addr: &str, args: Vec<OscType>) -> OscMessage {
    OscMessage { addr: addr.into(), args }
}

fn encode(packet: &OscPacket) -> Vec<u8> {
    rosc::encoder::encode(packet).unwrap()
}

fn bytes_of(addr: &str, args: Vec<OscType>) -> Vec<u8> {
    encode(&OscPacket::Message(msg(addr, args)))
}

fn bundle(content: Vec<OscPacket>) -> OscPacket {
    OscPacket::Bundle(OscBundle { timetag: IMMEDIATELY, content })
}

fn m(addr: &str, args: Vec<OscType>) -> OscPacket {
    OscPacket::Message(msg(addr, args))
}

/// An OSC string: the bytes, a NUL, NULs to a multiple of 4.
fn osc_string(text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

/// A message from raw parts: address, type tags, argument bytes.
fn raw(address: &[u8], tags: &[u8], args: &[u8]) -> Vec<u8> {
    [osc_string(address), osc_string(tags), args.to_vec()].concat()
}

/// A bundle from raw elements, each prefixed with `size` (None: its true size).
fn raw_bundle(elements: &[(Option<u32>, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"#bundle\0\0\0\0\0\0\0\0\x01".to_vec();
    for (size, element) in elements {
        out.extend_from_slice(&size.unwrap_or(element.len() as u32).to_be_bytes());
        out.extend_from_slice(element);
    }
    out
}

#[derive(Debug)]
enum Expect {
    /// One `/fail <address> <name> <message>`.
    Fail(&'static str, FailName),
    /// No reply.
    Unanswered,
}

struct Case {
    what: String,
    bytes: Vec<u8>,
    expect: Expect,
    /// Counted in `dropped_datagrams` (it did not decode).
    dropped: bool,
}

fn fail(what: &str, bytes: Vec<u8>, address: &'static str, name: FailName) -> Case {
    Case { what: what.into(), bytes, expect: Expect::Fail(address, name), dropped: false }
}

fn malformed(what: &str, bytes: Vec<u8>, address: &'static str) -> Case {
    Case { what: what.into(), bytes, expect: Expect::Fail(address, FailName::WrongArgs), dropped: true }
}

fn unanswered(what: &str, bytes: Vec<u8>) -> Case {
    Case { what: what.into(), bytes, expect: Expect::Unanswered, dropped: true }
}

fn int(n: i32) -> [u8; 4] {
    n.to_be_bytes()
}

/// Malformed datagrams, hand-built. The patch holds module 1 (a vco), so a free of module 1
/// that were wrongly accepted would show in the dump.
fn malformed_cases() -> Vec<Case> {
    let free_1 = raw(b"/module/free", b",i", &int(1));
    let mut cases = vec![
        malformed("truncated: the promised int missing", raw(b"/module/free", b",i", &[]), "/module/free"),
        malformed("truncated inside the int", free_1[..free_1.len() - 2].to_vec(), "/module/free"),
        malformed("truncated inside the type tags", b"/module/free\0\0\0\0,i".to_vec(), "/module/free"),
        unanswered("truncated inside the address", b"/module/fr".to_vec()),
        // An address alone is a message without arguments (OSC 1.0 asks servers to accept
        // older clients' messages without a type tag string): here one missing its id.
        fail("no type tag string", osc_string(b"/module/free"), "/module/free", FailName::WrongArgs),
        malformed(
            "bad padding after the address",
            [b"/module/free\0X\0\0".as_slice(), b",i\0\0", &int(1)].concat(),
            "/module/free",
        ),
        malformed(
            "bad padding after a string argument",
            raw(b"/module/set", b",iss", &[&int(1)[..], b"wave\0zz\0", &osc_string(b"sine")].concat()),
            "/module/set",
        ),
        malformed("bytes after the last argument", [free_1.as_slice(), &int(7)].concat(), "/module/free"),
        malformed("type tags without the comma", raw(b"/module/free", b"i", &int(1)), "/module/free"),
        malformed("an unknown type tag", raw(b"/module/free", b",q", &int(1)), "/module/free"),
        malformed("an array left open", raw(b"/module/free", b",[i", &int(1)), "/module/free"),
        malformed("an array closed that was never opened", raw(b"/module/free", b",i]", &int(1)), "/module/free"),
        malformed("a string without its NUL", raw(b"/module/free", b",s", b"abcd"), "/module/free"),
        malformed("a string's padding not zeros", raw(b"/module/new", b",si", b"vco\0abc\0\0\0\0\x05"), "/module/new"),
        malformed(
            "a blob longer than the datagram",
            raw(b"/module/free", b",b", &[&int(1000)[..], &[1, 2, 3, 4]].concat()),
            "/module/free",
        ),
        malformed(
            "a float64 cut short",
            raw(b"/module/set", b",isd", &[&int(1)[..], &osc_string(b"freq"), &[0x40, 0x70]].concat()),
            "/module/set",
        ),
        malformed(
            "a non-UTF-8 string argument",
            raw(b"/module/new", b",si", &[&osc_string(b"v\xffco")[..], &int(5)].concat()),
            "/module/new",
        ),
        unanswered("a non-UTF-8 address", raw(b"/module/fr\xffe", b",i", &int(1))),
        unanswered("an address without its slash", raw(b"module/free", b",i", &int(1))),
        fail("an address with a space", raw(b"/module free", b",i", &int(1)), "/module free", FailName::UnknownAddress),
        unanswered("an empty datagram", Vec::new()),
        unanswered("random bytes", b"\x01\x02\x03garbage\xfe\xff".to_vec()),
        unanswered(
            "a bundle tag misspelt",
            raw_bundle(&[(None, free_1.clone())]).iter().map(|&b| if b == b'e' { b'x' } else { b }).collect(),
        ),
        unanswered("a bundle cut inside its timetag", b"#bundle\0\0\0\0\0".to_vec()),
        unanswered("a bundle element's size past the datagram", raw_bundle(&[(Some(4096), free_1.clone())])),
        unanswered("a bundle element's size short of its message", raw_bundle(&[(Some(16), free_1.clone())])),
        unanswered("a bundle element's size not a multiple of 4", raw_bundle(&[(Some(23), free_1.clone())])),
        unanswered("a bundle element of size 0", raw_bundle(&[(Some(0), Vec::new()), (None, free_1.clone())])),
        unanswered(
            "a bundle whose second element is past the end",
            [raw_bundle(&[(None, free_1.clone())]), int(64).to_vec(), free_1.clone()].concat(),
        ),
        unanswered(
            "a bundle whose second element is malformed",
            raw_bundle(&[(None, free_1.clone()), (None, raw(b"/module/free", b",q", &int(1)))]),
        ),
        unanswered(
            "a bundle with a stray byte after its elements",
            [raw_bundle(&[(None, free_1.clone())]), vec![0]].concat(),
        ),
    ];
    let nest =
        |depth: usize| (1..depth).fold(bundle(vec![m("/module/free", vec![i(1)])]), |inner, _| bundle(vec![inner]));
    cases.push(fail(
        "bundles nested one past the limit",
        encode(&nest(MAX_BUNDLE_DEPTH + 1)),
        "#bundle",
        FailName::WrongArgs,
    ));
    cases.push(fail("bundles nested 3000 deep", encode(&nest(3000)), "#bundle", FailName::WrongArgs));
    cases
}

/// Well-formed requests the patch refuses. The patch: vco 1 -> vcf 2 -> output 0.
fn refused_cases() -> Vec<Case> {
    let max = 9_999;
    let nan_inf_f32 = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    let nan_inf_f64 = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    let patch = |src: i32, out: &str, dst: i32, port: &str| vec![i(src), s(out), i(dst), s(port)];
    let mut cases: Vec<(&'static str, Vec<OscType>, FailName)> = vec![
        ("/module/new", vec![], FailName::WrongArgs),
        ("/module/new", vec![s("vco")], FailName::WrongArgs),
        ("/module/new", vec![i(5), s("vco")], FailName::WrongArgs),
        ("/module/new", vec![s("vco"), i(5), i(6)], FailName::WrongArgs),
        ("/module/new", vec![s("vco"), s("5")], FailName::WrongArgs),
        ("/module/free", vec![s("one")], FailName::WrongArgs),
        ("/module/free", vec![f(1.5)], FailName::WrongArgs),
        ("/module/free", vec![OscType::Bool(true)], FailName::WrongArgs),
        ("/module/free", vec![OscType::Nil], FailName::WrongArgs),
        ("/module/free", vec![OscType::Blob(vec![1])], FailName::WrongArgs),
        ("/module/free", vec![OscType::Long(1 << 40)], FailName::WrongArgs),
        ("/module/free", vec![f(2_147_483_648.0)], FailName::WrongArgs),
        ("/module/free", vec![i(1), i(2)], FailName::WrongArgs),
        ("/module/set", vec![i(1), s("freq")], FailName::WrongArgs),
        ("/module/set", vec![i(1), i(0), f(220.0)], FailName::WrongArgs),
        ("/module/set", vec![i(1), s("freq"), OscType::Nil], FailName::WrongArgs),
        ("/module/set", vec![i(1), s("freq"), OscType::Double(1e300)], FailName::WrongArgs),
        ("/patch", vec![i(1), s("out"), i(0)], FailName::WrongArgs),
        ("/patch", vec![i(1), i(0), i(0), s("in")], FailName::WrongArgs),
        ("/unpatch", vec![], FailName::WrongArgs),
        ("/patch/clear", vec![i(1)], FailName::WrongArgs),
        ("/status", vec![i(1)], FailName::WrongArgs),
        ("/patch/dump", vec![s("all")], FailName::WrongArgs),
        ("/module/bogus", vec![], FailName::UnknownAddress),
        ("/Module/new", vec![s("vco"), i(5)], FailName::UnknownAddress),
        ("/module/new/", vec![s("vco"), i(5)], FailName::UnknownAddress),
        ("/", vec![], FailName::UnknownAddress),
        ("/module/new", vec![s("theremin"), i(5)], FailName::UnknownKind),
        ("/module/new", vec![s("VCO"), i(5)], FailName::UnknownKind),
        ("/module/new", vec![s(""), i(5)], FailName::UnknownKind),
        ("/module/set", vec![i(1), s("cutoff"), f(100.0)], FailName::UnknownParam),
        ("/module/set", vec![i(0), s("freq"), f(100.0)], FailName::UnknownParam),
        ("/module/set", vec![i(2), s(""), f(1.0)], FailName::UnknownParam),
        ("/patch", patch(1, "out", 2, "nope"), FailName::UnknownPort),
        ("/patch", patch(1, "left", 0, "in"), FailName::UnknownPort),
        ("/patch", patch(2, "out", 0, "cv"), FailName::UnknownPort),
        ("/unpatch", patch(1, "out", 2, "nope"), FailName::UnknownPort),
        ("/module/set", vec![i(1), s("wave"), s("wobble")], FailName::BadValue),
        ("/module/set", vec![i(1), s("wave"), f(1.5)], FailName::BadValue),
        ("/module/set", vec![i(1), s("wave"), i(4)], FailName::BadValue),
        ("/module/set", vec![i(2), s("mode"), i(-1)], FailName::BadValue),
        ("/module/set", vec![i(1), s("freq"), s("high")], FailName::BadValue),
        ("/module/new", vec![s("vco"), i(max + 1)], FailName::IdOutOfRange),
        ("/module/new", vec![s("vco"), i(-1)], FailName::IdOutOfRange),
        ("/module/new", vec![s("vco"), i(i32::MAX)], FailName::IdOutOfRange),
        ("/module/new", vec![s("vco"), f(1e9)], FailName::IdOutOfRange),
        ("/module/new", vec![s("vco"), OscType::Long(i64::from(max) + 1)], FailName::IdOutOfRange),
        ("/module/free", vec![i(i32::MIN)], FailName::IdOutOfRange),
        ("/module/set", vec![i(max + 1), s("freq"), f(1.0)], FailName::IdOutOfRange),
        ("/patch", patch(max + 1, "out", 0, "in"), FailName::IdOutOfRange),
        ("/patch", patch(1, "out", -5, "in"), FailName::IdOutOfRange),
        ("/module/new", vec![s("vco"), i(1)], FailName::IdInUse),
        ("/module/new", vec![s("noise"), f(2.0)], FailName::IdInUse),
        ("/module/free", vec![i(77)], FailName::NoSuchModule),
        ("/module/free", vec![i(max)], FailName::NoSuchModule),
        ("/module/set", vec![i(77), s("freq"), f(1.0)], FailName::NoSuchModule),
        ("/patch", patch(77, "out", 0, "in"), FailName::NoSuchModule),
        ("/patch", patch(1, "out", 2, "in"), FailName::AlreadyPatched),
        ("/unpatch", patch(2, "out", 1, "fm"), FailName::NoSuchCable),
        ("/unpatch", patch(1, "out", 0, "in"), FailName::NoSuchCable),
        ("/unpatch", patch(1, "out", 2, "cutoff"), FailName::NoSuchCable),
        ("/patch", patch(0, "out", 1, "fm"), FailName::WouldCycle),
        ("/module/free", vec![i(0)], FailName::OutputModule),
        ("/module/free", vec![f(0.0)], FailName::OutputModule),
        ("/module/new", vec![s("output"), i(5)], FailName::OutputModule),
        ("/module/new", vec![s("output"), i(0)], FailName::OutputModule),
        ("/module/new", vec![s("vco"), i(0)], FailName::OutputModule),
    ];
    for x in nan_inf_f32 {
        cases.push(("/module/set", vec![i(1), s("freq"), f(x)], FailName::NotFinite));
        cases.push(("/module/set", vec![i(0), s("level"), f(x)], FailName::NotFinite));
        cases.push(("/module/free", vec![f(x)], FailName::NotFinite));
    }
    for x in nan_inf_f64 {
        cases.push(("/module/set", vec![i(2), s("cutoff"), OscType::Double(x)], FailName::NotFinite));
        cases.push(("/module/new", vec![s("vco"), OscType::Double(x)], FailName::NotFinite));
    }
    // Controllers' addresses (issue 13): a parameter's own address, mappings, learn, notify.
    cases.extend([
        ("/m/77/freq", vec![f(1.0)], FailName::NoSuchModule),
        ("/m/77/freq", vec![], FailName::NoSuchModule),
        ("/m/1/cutoff", vec![f(100.0)], FailName::UnknownParam),
        ("/m/1/cutoff", vec![], FailName::UnknownParam),
        ("/m/1/freq", vec![f(f32::NAN)], FailName::NotFinite),
        ("/m/1/freq", vec![OscType::Double(f64::INFINITY)], FailName::NotFinite),
        ("/m/1/wave", vec![s("wobble")], FailName::BadValue),
        ("/m/10000/freq", vec![], FailName::IdOutOfRange),
        ("/m/one/freq", vec![f(1.0)], FailName::UnknownAddress),
        ("/m/1", vec![f(1.0)], FailName::UnknownAddress),
        ("/m/1/freq", vec![f(1.0), f(2.0)], FailName::WrongArgs),
        ("/m/1/freq", vec![OscType::Nil], FailName::WrongArgs),
        ("/map", vec![s("/1/fader1"), i(77), s("freq")], FailName::NoSuchModule),
        ("/map", vec![s("/1/fader1"), i(1), s("cutoff")], FailName::UnknownParam),
        ("/map", vec![s("/1/fader1"), i(max + 1), s("freq")], FailName::IdOutOfRange),
        ("/map", vec![s("/1/fader1"), i(1), s("freq"), f(f32::NAN), f(1.0)], FailName::NotFinite),
        ("/map", vec![s("/1/fader1"), i(1), s("freq"), f(0.0), f(100.0), s("exp")], FailName::BadValue),
        ("/map", vec![s("/1/fader1"), i(1), s("freq"), f(20.0), f(100.0), s("log")], FailName::BadValue),
        ("/map", vec![s("/module/set"), i(1), s("freq")], FailName::BadValue),
        ("/map", vec![s("/a b"), i(1), s("freq")], FailName::BadValue),
        ("/map", vec![s("/1/fader1")], FailName::WrongArgs),
        ("/map", vec![s("/1/fader1"), i(1), s("freq"), f(20.0)], FailName::WrongArgs),
        ("/unmap", vec![s("/nothing")], FailName::NoSuchMapping),
        ("/unmap", vec![], FailName::WrongArgs),
        ("/map/list", vec![i(1)], FailName::WrongArgs),
        ("/map/learn", vec![i(77), s("freq")], FailName::NoSuchModule),
        ("/map/learn", vec![i(1), s("freq"), f(1.0)], FailName::WrongArgs),
        ("/notify", vec![i(5)], FailName::WrongArgs),
        ("/notify", vec![i(1), i(70_000)], FailName::WrongArgs),
        ("/1/fader1", vec![f(0.5)], FailName::UnknownAddress),
    ]);
    cases.push(("/module/set", vec![i(1), s("freq"), s("nan")], FailName::NotFinite));
    cases.push(("/module/set", vec![i(1), s("freq"), s("-inf")], FailName::NotFinite));
    let mut out: Vec<Case> = cases
        .into_iter()
        .map(|(addr, args, name)| fail(&format!("{addr} {args:?}"), bytes_of(addr, args.clone()), addr, name))
        .collect();

    // Bundles with one bad message: refused whole, one /fail naming that message.
    let voice = |bad: OscPacket| {
        bundle(vec![
            m("/module/new", vec![s("vco"), i(5)]),
            m("/module/set", vec![i(5), s("wave"), s("sine")]),
            m("/patch", vec![i(5), s("out"), i(0), s("in")]),
            bad,
        ])
    };
    let bundles = [
        (
            "bundle: a bad value last",
            voice(m("/module/set", vec![i(5), s("wave"), s("wobble")])),
            "/module/set",
            FailName::BadValue,
        ),
        ("bundle: an id twice", voice(m("/module/new", vec![s("vco"), i(5)])), "/module/new", FailName::IdInUse),
        ("bundle: a cycle", voice(m("/patch", vec![i(0), s("out"), i(5), s("fm")])), "/patch", FailName::WouldCycle),
        (
            "bundle: NaN",
            voice(m("/module/set", vec![i(5), s("freq"), f(f32::NAN)])),
            "/module/set",
            FailName::NotFinite,
        ),
        ("bundle: freeing the output", voice(m("/module/free", vec![i(0)])), "/module/free", FailName::OutputModule),
        ("bundle: wrong args", voice(m("/module/free", vec![])), "/module/free", FailName::WrongArgs),
        ("bundle: an unknown address", voice(m("/module/nope", vec![])), "/module/nope", FailName::UnknownAddress),
        (
            "bundle: the bad one nested, status asked",
            bundle(vec![
                m("/status", vec![]),
                m("/module/new", vec![s("vco"), i(6)]),
                bundle(vec![m("/module/free", vec![i(1)]), bundle(vec![m("/module/free", vec![i(66)])])]),
            ]),
            "/module/free",
            FailName::NoSuchModule,
        ),
        (
            "bundle: the bad one first",
            bundle(vec![m("/module/free", vec![i(0)]), m("/module/free", vec![i(1)])]),
            "/module/free",
            FailName::OutputModule,
        ),
    ];
    for (what, packet, address, name) in bundles {
        out.push(fail(what, encode(&packet), address, name));
    }
    // A bundle due 0.2 s from now with a bad message: refused at once, nothing scheduled.
    let soon = OscTime::try_from(std::time::SystemTime::now() + Duration::from_millis(200)).unwrap();
    let timed = OscPacket::Bundle(OscBundle {
        timetag: soon,
        content: vec![m("/module/free", vec![i(1)]), m("/module/set", vec![i(2), s("q"), f(f32::INFINITY)])],
    });
    out.push(fail("a timetagged bundle with a bad message", encode(&timed), "/module/set", FailName::NotFinite));
    // A timetag before 1970 (0 seconds, not "immediately") with a bad message.
    let ancient = OscPacket::Bundle(OscBundle {
        timetag: OscTime { seconds: 0, fractional: 0 },
        content: vec![m("/module/free", vec![i(1)]), m("/module/free", vec![i(0)])],
    });
    out.push(fail(
        "a bundle timetagged 1900 with a bad message",
        encode(&ancient),
        "/module/free",
        FailName::OutputModule,
    ));
    out
}

/// Sends `case`, checks its one reply (or none), the dump, and the dropped count.
fn check(client: &Client, dump_before: &[String], case: &Case) {
    let dropped = client.status().dropped_datagrams;
    client.send_bytes(&case.bytes);
    if let Expect::Fail(address, name) = case.expect {
        let reply = client.reply();
        // A /fail is three strings, the second a name of the protocol's.
        let parsed = Reply::parse(&reply);
        let Ok(Reply::Fail { address: got, name: named, message }) = parsed else {
            panic!("{}: {reply:?}: {parsed:?}", case.what)
        };
        assert_eq!((got, named), (address, name), "{}: {reply:?}", case.what);
        assert!(!message.is_empty(), "{}: {reply:?}", case.what);
    }
    // The dump's reply comes next: no second reply was sent for the case.
    assert_eq!(client.dump(), dump_before, "{}: the patch changed", case.what);
    let counted = client.status().dropped_datagrams - dropped;
    assert_eq!(counted, u32::from(case.dropped), "{}: dropped datagrams counted", case.what);
}

#[test]
fn every_bad_input_gets_one_fail_or_is_counted_and_the_patch_plays_on() {
    let _machine = exclusive();
    let (server, wav) = Server::recording("bad-input", &["--workers", "2"]);
    let client = Client::new(server.port);
    // The patch: a 440 Hz sine at 0.5 through a lowpass at 5 kHz (-0.0003 dB at 440 Hz).
    for (addr, args) in [
        ("/module/new", vec![s("vco"), i(1)]),
        ("/module/set", vec![i(1), s("wave"), s("sine")]),
        ("/module/set", vec![i(1), s("freq"), f(440.0)]),
        ("/module/set", vec![i(1), s("level"), f(0.5)]),
        ("/module/new", vec![s("vcf"), i(2)]),
        ("/module/set", vec![i(2), s("cutoff"), f(5000.0)]),
        ("/patch", vec![i(1), s("out"), i(2), s("in")]),
        ("/patch", vec![i(2), s("out"), i(0), s("in")]),
    ] {
        let reply = client.ask(addr, args.clone());
        assert_eq!(reply.addr, "/done", "{addr} {args:?}: {reply:?}");
    }
    let built_at = client.status().generation;
    let dump = client.dump();
    assert_eq!(dump.len(), 7, "{dump:?}");
    let dropped_before = client.status().dropped_datagrams;

    let cases: Vec<Case> = malformed_cases().into_iter().chain(refused_cases()).collect();
    for case in &cases {
        check(&client, &dump, case);
    }
    let unanswerable = cases.iter().filter(|c| matches!(c.expect, Expect::Unanswered)).count();
    let dropped = cases.iter().filter(|c| c.dropped).count();
    let dropped_after = client.status().dropped_datagrams;
    assert_eq!((dropped_after - dropped_before) as usize, dropped, "every malformed datagram counted once");

    // A real third-party client: liblo's oscsend. Its replies go to its own socket, gone
    // when it exits; what shows here is that the patch did not change and nothing was
    // dropped (each was read and refused). The same requests from `client` above got /fail.
    let sent_by_oscsend: [(&str, &str, &[&str]); 9] = [
        ("/module/set", "isf", &["1", "freq", "nan"]),
        ("/module/set", "isd", &["1", "freq", "inf"]),
        ("/module/set", "isf", &["0", "level", "-inf"]),
        ("/module/new", "si", &["theremin", "5"]),
        ("/module/new", "si", &["vco", "10000"]),
        ("/module/free", "i", &["0"]),
        ("/module/free", "s", &["one"]),
        ("/patch", "isis", &["0", "out", "1", "fm"]),
        ("/module/bogus", "", &[]),
    ];
    for (address, types, args) in sent_by_oscsend {
        oscsend(server.port, address, types, args);
    }
    // The server answers in order: once the status is back, oscsend's datagrams were handled.
    let status = client.status();
    assert_eq!(status.dropped_datagrams, dropped_after, "oscsend's datagrams are well formed");
    assert_eq!(status.modules, 2);
    assert_eq!(client.dump(), dump);
    eprintln!(
        "bad inputs: {} sent ({} malformed, {unanswerable} of them unanswerable), {} by oscsend",
        cases.len(),
        dropped,
        sent_by_oscsend.len()
    );

    // The tone played throughout, and plays on after.
    std::thread::sleep(Duration::from_millis(600));
    let (code, said) = server.stop();
    assert_eq!(code, 0, "{said:?}");
    let out = read_wav(&wav);
    let start = (built_at as usize + 2) * BLOCK;
    let silent = silent_blocks(&out);
    let window = FS as usize / 10;
    let (mut checked, mut skipped) = (0, 0);
    for at in (start..out.len().saturating_sub(window)).step_by(window) {
        if silent[at / BLOCK..=(at + window - 1) / BLOCK].iter().any(|&q| q) {
            // A dropout (a late worker on a loaded machine), not a change of the patch.
            skipped += 1;
            continue;
        }
        let x = &out[at..at + window];
        // 0.5 Hz: 0.1 s of crossings resolves ~0.1 Hz; the rest is margin.
        let hz = freq_by_zero_crossings(x, FS as f32);
        assert!((hz - 440.0).abs() < 0.5, "at {at}: {hz} Hz");
        // A sine of amplitude 0.5: -9.03 dB RMS; 0.1 s holds 44 whole periods.
        assert!((rms_db(x) + 9.03).abs() < 0.05, "at {at}: {} dB", rms_db(x));
        checked += 1;
    }
    assert!(checked >= 5 && checked > skipped, "{checked} windows checked, {skipped} with dropouts");
}

#[test]
fn a_full_rack_is_refused_and_freeing_it_restores_the_patch() {
    let _machine = exclusive();
    let server = Server::start(&["--workers", "1"]);
    let client = Client::new(server.port);
    let empty = client.dump();
    let done = |addr: &str, args: Vec<OscType>| {
        let reply = client.ask(addr, args.clone());
        assert_eq!(reply.addr, "/done", "{addr} {args:?}: {reply:?}");
    };
    // The rack's pools: 16 reverbs, 32 delays.
    for id in 1000..1016 {
        done("/module/new", vec![s("reverb"), i(id)]);
    }
    for id in 2000..2032 {
        done("/module/new", vec![s("delay"), i(id)]);
    }
    let pools = client.dump();
    check(
        &client,
        &pools,
        &fail("a 17th reverb", bytes_of("/module/new", vec![s("reverb"), i(1016)]), "/module/new", FailName::RackFull),
    );
    check(
        &client,
        &pools,
        &fail("a 33rd delay", bytes_of("/module/new", vec![s("delay"), i(2032)]), "/module/new", FailName::RackFull),
    );
    // 4096 slots for the user, one the output's: 48 taken above, 4047 vcas fill it.
    let vcas: Vec<i32> = (3000..3000 + 4047).collect();
    for &id in &vcas {
        done("/module/new", vec![s("vca"), i(id)]);
    }
    assert_eq!(client.status().modules, 4095);
    let full = client.dump();
    for kind in ["vca", "noise", "delay"] {
        let case = fail(
            &format!("a {kind} in a full rack"),
            bytes_of("/module/new", vec![s(kind), i(9000)]),
            "/module/new",
            FailName::RackFull,
        );
        check(&client, &full, &case);
    }
    let in_a_bundle = encode(&bundle(vec![
        m("/module/free", vec![i(3000)]),
        m("/module/new", vec![s("vca"), i(3000)]),
        m("/module/new", vec![s("vca"), i(9000)]),
    ]));
    check(
        &client,
        &full,
        &fail("a bundle that frees one and creates two", in_a_bundle, "/module/new", FailName::RackFull),
    );
    // 8192 cables: each vca into the output (4047), a chain of vcas (4046), 99 more into cv.
    let mut cables = 0;
    for &id in &vcas {
        done("/patch", vec![i(id), s("out"), i(0), s("in")]);
        cables += 1;
    }
    for &id in &vcas[..4046] {
        done("/patch", vec![i(id), s("out"), i(id + 1), s("in")]);
        cables += 1;
    }
    for &id in &vcas[..8192 - cables] {
        done("/patch", vec![i(id), s("out"), i(id + 2), s("cv")]);
    }
    let wired = client.dump();
    check(
        &client,
        &wired,
        &fail(
            "a cable in a full rack",
            bytes_of("/patch", vec![i(3100), s("out"), i(3102), s("cv")]),
            "/patch",
            FailName::RackFull,
        ),
    );
    // Freed again, module by module: the patch is what it was.
    for id in vcas.iter().copied().chain(1000..1016).chain(2000..2032) {
        done("/module/free", vec![i(id)]);
    }
    assert_eq!(client.dump(), empty);
    let status = client.status();
    assert_eq!((status.modules, status.cables), (0, 0), "no modules, no cables");
    // And there is room again.
    done("/module/new", vec![s("vca"), i(1)]);
}
