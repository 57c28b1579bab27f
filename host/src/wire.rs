//! OSC 1.0 framing, checked strictly before `rosc` decodes a datagram.
//!
//! rosc is lenient where the server must not be: it skips string and blob padding without
//! reading it, ignores bytes after a message's last argument, stops at a bundle's first bad
//! element and returns the elements before it (so half a bundle would apply), takes any
//! first character of a type tag string for the comma, and accepts an array left open.
//! [`well_formed`] refuses all of these, so a datagram either decodes whole or is malformed.

/// True when `datagram` is one OSC 1.0 packet and nothing else: a message (address starting
/// with `/`, a type tag string starting with `,`, arguments of known types filling the rest
/// exactly) or a bundle (`#bundle`, a timetag, elements each a well-formed packet of the
/// size it states) nested at most `max_depth` deep, every string UTF-8 and NUL-padded to a
/// multiple of 4 bytes with zeros, every blob padded with zeros, arrays closed.
pub fn well_formed(datagram: &[u8], max_depth: usize) -> bool {
    packet(datagram, max_depth)
}

/// The address of a datagram that is an address and nothing else (no type tag string): a
/// message without arguments as older OSC implementations send it, which OSC 1.0 asks
/// servers to accept (`/status`, `/patch/dump`, `/patch/clear`).
pub fn bare_address(datagram: &[u8]) -> Option<&str> {
    if datagram.is_empty() || !datagram.len().is_multiple_of(4) {
        return None;
    }
    let (address, rest) = string(datagram)?;
    (rest.is_empty() && address.starts_with('/')).then_some(address)
}

fn packet(bytes: &[u8], depth: usize) -> bool {
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return false;
    }
    match bytes.strip_prefix(b"#bundle\0") {
        Some(rest) => bundle(rest, depth),
        None => message(bytes),
    }
}

/// A bundle after its tag: the timetag, then (size, element) pairs to the end exactly.
fn bundle(rest: &[u8], depth: usize) -> bool {
    let Some((_timetag, mut rest)) = rest.split_first_chunk::<8>() else { return false };
    if depth == 0 {
        return false;
    }
    while !rest.is_empty() {
        let Some((size, tail)) = rest.split_first_chunk::<4>() else { return false };
        let size = u32::from_be_bytes(*size) as usize;
        let Some(element) = tail.get(..size) else { return false };
        if !packet(element, depth - 1) {
            return false;
        }
        rest = &tail[size..];
    }
    true
}

fn message(bytes: &[u8]) -> bool {
    let Some((address, rest)) = string(bytes) else { return false };
    let Some((tags, mut rest)) = string(rest) else { return false };
    let Some(tags) = tags.strip_prefix(',') else { return false };
    if !address.starts_with('/') {
        return false;
    }
    let mut open_arrays = 0usize;
    for tag in tags.bytes() {
        let size = match tag {
            b'i' | b'f' | b'c' | b'r' | b'm' => 4,
            b'h' | b'd' | b't' => 8,
            b'T' | b'F' | b'N' | b'I' => 0,
            b'[' => {
                open_arrays += 1;
                0
            }
            b']' if open_arrays > 0 => {
                open_arrays -= 1;
                0
            }
            b's' => match string(rest) {
                Some((_, tail)) => {
                    rest = tail;
                    continue;
                }
                None => return false,
            },
            b'b' => match blob(rest) {
                Some(tail) => {
                    rest = tail;
                    continue;
                }
                None => return false,
            },
            _ => return false,
        };
        let Some(tail) = rest.get(size..) else { return false };
        rest = tail;
    }
    open_arrays == 0 && rest.is_empty()
}

/// An OSC string at the start of `bytes` (UTF-8, a NUL, zeros to a multiple of 4 bytes),
/// and what follows it.
fn string(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    let padded = (end / 4 + 1) * 4;
    let padding = bytes.get(end..padded)?;
    if padding.iter().any(|&b| b != 0) {
        return None;
    }
    Some((std::str::from_utf8(&bytes[..end]).ok()?, &bytes[padded..]))
}

/// An OSC blob at the start of `bytes` (a big-endian u32 size, that many bytes, zeros to a
/// multiple of 4), and what follows it.
fn blob(bytes: &[u8]) -> Option<&[u8]> {
    let (size, rest) = bytes.split_first_chunk::<4>()?;
    let size = u32::from_be_bytes(*size) as usize;
    let padded = size.div_ceil(4).checked_mul(4)?;
    let padding = rest.get(size..padded)?;
    if padding.iter().any(|&b| b != 0) {
        return None;
    }
    Some(&rest[padded..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};

    fn encode(packet: &OscPacket) -> Vec<u8> {
        rosc::encoder::encode(packet).unwrap()
    }

    fn free(id: i32) -> OscPacket {
        OscPacket::Message(OscMessage { addr: "/module/free".into(), args: vec![OscType::Int(id)] })
    }

    fn bundle(content: Vec<OscPacket>) -> OscPacket {
        OscPacket::Bundle(OscBundle { timetag: OscTime { seconds: 0, fractional: 1 }, content })
    }

    #[test]
    fn what_rosc_encodes_is_well_formed() {
        let every_type = OscPacket::Message(OscMessage {
            addr: "/a".into(),
            args: vec![
                OscType::Int(1),
                OscType::Float(2.0),
                OscType::String("three".into()),
                OscType::Blob(vec![4, 5, 6]),
                OscType::Long(7),
                OscType::Double(8.0),
                OscType::Time(OscTime { seconds: 9, fractional: 0 }),
                OscType::Char('x'),
                OscType::Bool(true),
                OscType::Nil,
                OscType::Inf,
                OscType::Array(rosc::OscArray { content: vec![OscType::Int(1)] }),
            ],
        });
        for packet in [free(1), every_type.clone(), bundle(vec![free(1), bundle(vec![every_type])]), bundle(vec![])] {
            let bytes = encode(&packet);
            assert!(well_formed(&bytes, 4), "{packet:?}");
            assert_eq!(rosc::decoder::decode_udp(&bytes).unwrap().1, packet);
        }
    }

    #[test]
    fn what_rosc_lets_through_is_refused() {
        let good = encode(&free(1));
        let mut bad_padding = good.clone();
        bad_padding[13] = b'X'; // "/module/free" is 12 bytes, padded with 4 NULs
        assert!(rosc::decoder::decode_udp(&bad_padding).is_ok(), "rosc reads it");
        assert!(!well_formed(&bad_padding, 4));

        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0, 0, 0, 5]);
        assert!(!well_formed(&trailing, 4));

        let mut no_comma = good.clone();
        no_comma[16] = b'x';
        assert!(rosc::decoder::decode_udp(&no_comma).is_ok(), "rosc reads it");
        assert!(!well_formed(&no_comma, 4));

        // ",[i": an array never closed.
        let open = b"/module/free\0\0\0\0,[i\0\0\0\0\x01";
        assert!(!well_formed(open, 4));

        // A bundle whose second element claims more bytes than there are: rosc returns the first.
        let mut half = encode(&bundle(vec![free(1), free(2)]));
        let second_size = 16 + 4 + good.len();
        half[second_size..second_size + 4].copy_from_slice(&1000u32.to_be_bytes());
        assert!(rosc::decoder::decode_udp(&half).is_ok(), "rosc reads half of it");
        assert!(!well_formed(&half, 4));

        let nested = (0..5).fold(free(1), |inner, _| bundle(vec![inner]));
        assert!(!well_formed(&encode(&nested), 4));
        assert!(well_formed(&encode(&nested), 5));
        assert!(!well_formed(b"", 4));
        assert!(!well_formed(b"/a\0\0", 4), "no type tag string");
        assert!(!well_formed(b"/a\0\0,s\0\0\xff\xfe\0\0", 4), "not UTF-8");
        assert!(!well_formed(b"/a\0\0,b\0\0\0\0\0\x02\x01\x02\x03\x04", 4), "blob padding");
    }
}
