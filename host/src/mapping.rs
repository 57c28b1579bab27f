//! Mappings: any OSC address a controller sends (`/1/fader1 0.73`) drives parameters.
//!
//! A [`Mapping`] takes the first numeric argument of a message to its address as a position
//! 0..1 and scales it to the parameter's `min..max` along a [`Curve`]; feedback scales a
//! value back to 0..1 ([`Mapping::position`]). Several mappings may share an address (one
//! fader, several parameters). [`Mappings`] holds them in the order they were made; they are
//! part of the patch: the ledger keeps them, frees them with their module, and dumps them as
//! script lines (`/map /1/fader1 1 freq_hz 20 2000 exp`, [`Mapping::line`]) that
//! [`parse_map`] reads back.
use std::fmt;

use synthpool_core::command::{Error, ModuleId, Value};
use synthpool_core::module::{Kind, ParamSpec};
use synthpool_core::topology::MAX_ID;

use crate::protocol::FailName;

/// Most mappings a patch holds (each is an address and a few numbers; the bound keeps a
/// flood of `/map` from growing the server without end).
pub const MAX_MAPPINGS: usize = 1024;

/// Longest address a mapping takes, bytes (TouchOSC's and Open Stage Control's are short).
pub const MAX_ADDRESS_BYTES: usize = 128;

/// How a position 0..1 spreads over `min..max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// Evenly: `min + (max - min) * x`.
    Lin,
    /// Evenly in ratio: `min * (max / min)^x`, for frequencies and times (a fader's middle
    /// is the geometric mean: 20..20000 Hz puts 632 Hz there). `min` and `max` share a sign
    /// and neither is 0.
    Exp,
}

impl Curve {
    /// The name scripts and `/map` use (`lin`, `exp`).
    pub const fn name(self) -> &'static str {
        match self {
            Curve::Lin => "lin",
            Curve::Exp => "exp",
        }
    }

    /// The curve called `name`.
    pub fn from_name(name: &str) -> Option<Curve> {
        [Curve::Lin, Curve::Exp].into_iter().find(|c| c.name() == name)
    }
}

/// One address driving one parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    /// The OSC address that drives it (`/1/fader1`).
    pub address: String,
    /// The module.
    pub id: ModuleId,
    /// Its kind (the parameter's name and range come from it).
    pub kind: Kind,
    /// Index into the kind's parameters.
    pub param: u8,
    /// The value at position 0, in the parameter's unit.
    pub min: f32,
    /// The value at position 1, in the parameter's unit (below `min` for a reversed fader).
    pub max: f32,
    /// How positions between spread.
    pub curve: Curve,
}

impl Mapping {
    /// The parameter it drives.
    pub fn spec(&self) -> &'static ParamSpec {
        &self.kind.params()[self.param as usize]
    }

    /// The parameter's value for position `x` (0..1; outside is clamped): along the curve
    /// from `min` to `max`, an enumeration's to the nearest choice.
    pub fn value(&self, x: f32) -> f32 {
        let x = x.clamp(0.0, 1.0);
        let value = match self.curve {
            Curve::Lin => self.min + (self.max - self.min) * x,
            Curve::Exp => self.min * (self.max / self.min).powf(x),
        };
        if self.spec().is_choice() { value.round().clamp(0.0, self.spec().max) } else { value }
    }

    /// The position 0..1 at which [`Mapping::value`] gives `value` (clamped to 0..1 when the
    /// value lies outside `min..max`; 0 when `min == max`): feedback to a fader.
    pub fn position(&self, value: f32) -> f32 {
        let x = match self.curve {
            Curve::Lin => (value - self.min) / (self.max - self.min),
            // ln(v / min) / ln(max / min); a value of the other sign (or 0) is below the range.
            Curve::Exp if value / self.min > 0.0 => (value / self.min).ln() / (self.max / self.min).ln(),
            Curve::Exp => 0.0,
        };
        if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 }
    }

    /// The script line that makes it again (`/map /1/fader1 1 freq_hz 20 2000 exp`).
    pub fn line(&self) -> String {
        format!(
            "/map {} {} {} {} {} {}",
            self.address,
            self.id,
            self.spec().name,
            self.min,
            self.max,
            self.curve.name()
        )
    }
}

/// Why a mapping request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// As the core refuses a parameter: `WrongArgs`, `IdOutOfRange`, `NoSuchModule`,
    /// `UnknownParam`, `NotFinite`.
    Refused(Error),
    /// The address is no OSC address of a controller's own: it must start with `/`, hold
    /// only printable ASCII without spaces or `#`, be at most [`MAX_ADDRESS_BYTES`] long, and
    /// not be the protocol's.
    BadAddress,
    /// The curve is neither `lin` nor `exp`.
    BadCurve,
    /// `exp` over a range that spans or touches 0.
    ExpAcrossZero,
    /// `/unmap` of a mapping that does not exist.
    NoSuchMapping,
    /// [`MAX_MAPPINGS`] exist already.
    Full,
}

impl MapError {
    /// Its `/fail` name.
    pub fn name(self) -> FailName {
        match self {
            MapError::Refused(error) => FailName::from(error),
            MapError::BadAddress | MapError::BadCurve | MapError::ExpAcrossZero => FailName::BadValue,
            MapError::NoSuchMapping => FailName::NoSuchMapping,
            MapError::Full => FailName::TooMany,
        }
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Refused(error) => write!(f, "{error}"),
            MapError::BadAddress => write!(
                f,
                "a mapped address starts with /, has no spaces or #, is at most {MAX_ADDRESS_BYTES} bytes and is not the protocol's own"
            ),
            MapError::BadCurve => write!(f, "the curve is lin or exp"),
            MapError::ExpAcrossZero => write!(f, "exp needs min and max of one sign, neither 0"),
            MapError::NoSuchMapping => write!(f, "no such mapping"),
            MapError::Full => write!(f, "no room for another mapping ({MAX_MAPPINGS})"),
        }
    }
}

impl std::error::Error for MapError {}

impl From<Error> for MapError {
    fn from(error: Error) -> MapError {
        MapError::Refused(error)
    }
}

/// What `/map` and `/map/learn` ask, before the patch is consulted.
#[derive(Clone, Debug, PartialEq)]
pub struct MapSpec {
    /// The module id as given.
    pub id: i32,
    /// The parameter's name or alias.
    pub param: String,
    /// `min max` when given (else the parameter's range).
    pub range: Option<(f32, f32)>,
    /// The curve (`lin` when not given).
    pub curve: Curve,
}

impl MapSpec {
    /// Reads `i:id s:param [f:min f:max [s:curve]]` (ids and bounds as ints or floats).
    ///
    /// # Errors
    /// `WrongArgs` for a wrong count or type, `NotFinite` for a NaN or infinite bound,
    /// [`MapError::BadCurve`].
    pub fn parse(args: &[Value<'_>]) -> Result<MapSpec, MapError> {
        let (id, param, rest) = match args {
            [id, Value::Str(param), rest @ ..] => (whole(id)?, *param, rest),
            _ => return Err(Error::WrongArgs.into()),
        };
        let (range, curve) = match rest {
            [] => (None, Curve::Lin),
            [min, max] => (Some((number(min)?, number(max)?)), Curve::Lin),
            [min, max, Value::Str(curve)] => {
                (Some((number(min)?, number(max)?)), Curve::from_name(curve).ok_or(MapError::BadCurve)?)
            }
            _ => return Err(Error::WrongArgs.into()),
        };
        Ok(MapSpec { id, param: param.to_owned(), range, curve })
    }

    /// The mapping of `address` this asks for, checked against the patch: `kind_of` gives a
    /// module's kind (None: no such module).
    ///
    /// # Errors
    /// [`MapError::BadAddress`], `IdOutOfRange`, `NoSuchModule`, `UnknownParam`,
    /// [`MapError::ExpAcrossZero`].
    pub fn resolve(&self, address: &str, kind_of: impl Fn(ModuleId) -> Option<Kind>) -> Result<Mapping, MapError> {
        if !mappable(address) {
            return Err(MapError::BadAddress);
        }
        let id = ModuleId::try_from(self.id)
            .ok()
            .filter(|&id| id <= MAX_ID)
            .ok_or(Error::IdOutOfRange { id: self.id, max: MAX_ID })?;
        let kind = kind_of(id).ok_or(Error::NoSuchModule(id))?;
        let param = kind.param_index(&self.param).ok_or(Error::UnknownParam)?;
        let spec = &kind.params()[param as usize];
        let (min, max) = self.range.unwrap_or((spec.min, spec.max));
        // NaN (0 / 0) and negatives alike: only a ratio above 0 has a logarithm. A zero of
        // either sign is refused too: -0 / -1e-20 is above 0, but a dump writes -0 as `-0`,
        // which reads back as the integer 0, and the mapping would not replay.
        let one_sign = min != 0.0 && max != 0.0 && min / max > 0.0;
        if self.curve == Curve::Exp && !one_sign {
            return Err(MapError::ExpAcrossZero);
        }
        Ok(Mapping { address: address.to_owned(), id, kind, param, min, max, curve: self.curve })
    }
}

/// Reads `/map`'s arguments: `s:address` then a [`MapSpec`].
///
/// # Errors
/// As [`MapSpec::parse`]; `WrongArgs` when the address is missing or not a string.
pub fn parse_map<'a>(args: &[Value<'a>]) -> Result<(&'a str, MapSpec), MapError> {
    match args {
        [Value::Str(address), rest @ ..] => Ok((address, MapSpec::parse(rest)?)),
        _ => Err(Error::WrongArgs.into()),
    }
}

/// Reads a script line that is a mapping (`/map /1/fader1 1 freq_hz 20 2000 exp`, as
/// [`Mapping::line`] writes it; `@SECONDS` before it and `# comments` after are allowed);
/// None for any other line.
///
/// # Errors
/// As [`parse_map`].
pub fn parse_map_line(line: &str) -> Option<Result<(&str, MapSpec), MapError>> {
    let code = line.split('#').next().unwrap_or("").trim();
    let code = match code.strip_prefix('@') {
        Some(timed) => timed.split_once(char::is_whitespace).map_or("", |(_, rest)| rest.trim_start()),
        None => code,
    };
    let mut words = code.split_whitespace();
    if words.next() != Some("/map") {
        return None;
    }
    let args: Vec<Value<'_>> = words
        .map(|w| {
            w.parse::<i32>().map(Value::Int).or_else(|_| w.parse::<f32>().map(Value::Float)).unwrap_or(Value::Str(w))
        })
        .collect();
    Some(parse_map(&args))
}

/// `text` (a script) with its `/map` lines blanked (line numbers kept): for a renderer,
/// which has no controllers to map.
pub fn without_maps(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if parse_map_line(line).is_none() {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// True for an address a controller may map: `/`, then printable ASCII without spaces or
/// `#` (a script line splits at spaces; `#` starts its comment), not an address the
/// protocol answers itself or sends (`/done`, `/fail`, `/map/learned`).
pub fn mappable(address: &str) -> bool {
    const OWN: [&str; 9] = ["/patch", "/unpatch", "/status", "/map", "/unmap", "/notify", "/done", "/fail", "/m"];
    const OWN_UNDER: [&str; 4] = ["/module/", "/m/", "/map/", "/patch/"];
    address.len() > 1
        && address.len() <= MAX_ADDRESS_BYTES
        && address.starts_with('/')
        && address.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
        && !OWN.contains(&address)
        && !OWN_UNDER.iter().any(|p| address.starts_with(p))
}

/// An int, or a float holding a whole number.
fn whole(value: &Value<'_>) -> Result<i32, MapError> {
    match *value {
        Value::Int(i) => Ok(i),
        Value::Float(x) if !x.is_finite() => Err(Error::NotFinite.into()),
        Value::Float(x) if x.fract() == 0.0 && x.abs() < 2_147_483_648.0 => Ok(x as i32),
        _ => Err(Error::WrongArgs.into()),
    }
}

/// A finite number, given as an int or a float.
fn number(value: &Value<'_>) -> Result<f32, MapError> {
    match *value {
        Value::Int(i) => Ok(i as f32),
        Value::Float(x) if x.is_finite() => Ok(x),
        Value::Float(_) => Err(Error::NotFinite.into()),
        Value::Str(_) => Err(Error::WrongArgs.into()),
    }
}

/// The position a controller sent: its message's first numeric argument (int, float),
/// taken as 0..1 (clamped later).
///
/// # Errors
/// `WrongArgs` when it has none; `NotFinite` for NaN or infinity.
pub fn position_of(args: &[Value<'_>]) -> Result<f32, Error> {
    match args.iter().find(|v| !matches!(v, Value::Str(_))) {
        Some(Value::Int(i)) => Ok(*i as f32),
        Some(Value::Float(x)) if x.is_finite() => Ok(*x),
        Some(Value::Float(_)) => Err(Error::NotFinite),
        _ => Err(Error::WrongArgs),
    }
}

/// The patch's mappings, in the order they were made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mappings {
    list: Vec<Mapping>,
}

impl Mappings {
    /// Adds `mapping`; one of the same address, module and parameter is replaced (it keeps
    /// its place).
    ///
    /// # Errors
    /// [`MapError::Full`]: nothing changed.
    pub fn add(&mut self, mapping: Mapping) -> Result<(), MapError> {
        let same = |m: &Mapping| m.address == mapping.address && m.id == mapping.id && m.param == mapping.param;
        if let Some(old) = self.list.iter_mut().find(|m| same(m)) {
            *old = mapping;
            return Ok(());
        }
        if self.list.len() >= MAX_MAPPINGS {
            return Err(MapError::Full);
        }
        self.list.push(mapping);
        Ok(())
    }

    /// Removes the mappings of `address` (only those to module `id`'s parameter `param`
    /// when given: `param` is a parameter's index); returns how many.
    ///
    /// # Errors
    /// [`MapError::NoSuchMapping`] when none matched.
    pub fn remove(&mut self, address: &str, which: Option<(ModuleId, u8)>) -> Result<usize, MapError> {
        let before = self.list.len();
        self.list.retain(|m| m.address != address || which.is_some_and(|(id, p)| (m.id, m.param) != (id, p)));
        match before - self.list.len() {
            0 => Err(MapError::NoSuchMapping),
            n => Ok(n),
        }
    }

    /// Drops the mappings of module `id` (it was freed).
    pub fn free_module(&mut self, id: ModuleId) {
        self.list.retain(|m| m.id != id);
    }

    /// Drops them all (the patch was cleared).
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// The mappings of `address`, in order.
    pub fn of_address<'s>(&'s self, address: &'s str) -> impl Iterator<Item = &'s Mapping> {
        self.list.iter().filter(move |m| m.address == address)
    }

    /// The mappings to module `id`'s parameter `param` (an index).
    pub fn of_param(&self, id: ModuleId, param: u8) -> impl Iterator<Item = &Mapping> {
        self.list.iter().filter(move |m| m.id == id && m.param == param)
    }

    /// Every mapping, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.list.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Their script lines, in order.
    pub fn lines(&self) -> Vec<String> {
        self.list.iter().map(Mapping::line).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vco(id: ModuleId) -> Option<Kind> {
        (id == 1).then_some(Kind::Vco)
    }

    fn spec(args: &[Value<'_>]) -> Result<MapSpec, MapError> {
        MapSpec::parse(args)
    }

    fn fader_to_freq(curve: &str) -> Mapping {
        let args = [Value::Int(1), Value::Str("freq"), Value::Float(20.0), Value::Int(20_000), Value::Str(curve)];
        spec(&args).unwrap().resolve("/1/fader1", vco).unwrap()
    }

    #[test]
    fn exp_spreads_evenly_in_ratio_and_lin_evenly() {
        let exp = fader_to_freq("exp");
        assert_eq!((exp.value(0.0), exp.value(1.0)), (20.0, 20_000.0));
        // The middle of 20..20000 Hz is their geometric mean, 632.46 Hz; f32 pow to 0.01%.
        assert!((exp.value(0.5) - 632.455_5).abs() < 0.06, "{}", exp.value(0.5));
        let lin = fader_to_freq("lin");
        assert_eq!(lin.value(0.5), 10_010.0);
        assert_eq!((lin.value(-3.0), lin.value(7.0)), (20.0, 20_000.0), "positions are clamped to 0..1");
    }

    #[test]
    fn position_inverts_value() {
        for curve in ["lin", "exp"] {
            let m = fader_to_freq(curve);
            for x in [0.0, 0.1, 0.25, 0.5, 0.9, 1.0] {
                // f32 round trip through pow and ln: 1e-5 of the fader's travel.
                assert!((m.position(m.value(x)) - x).abs() < 1e-5, "{curve} {x}");
            }
            assert_eq!((m.position(1.0), m.position(1e9)), (0.0, 1.0), "outside the range: the ends");
        }
        let flat = Mapping { min: 3.0, max: 3.0, ..fader_to_freq("lin") };
        assert_eq!(flat.position(3.0), 0.0);
    }

    #[test]
    fn defaults_are_the_parameters_range_and_lin() {
        let m = spec(&[Value::Float(1.0), Value::Str("level")]).unwrap().resolve("/x", vco).unwrap();
        assert_eq!((m.param, m.min, m.max, m.curve), (3, 0.0, 1.0, Curve::Lin));
        assert_eq!(m.line(), "/map /x 1 level 0 1 lin");
    }

    #[test]
    fn an_enumeration_takes_the_nearest_choice() {
        let m = spec(&[Value::Int(1), Value::Str("wave")]).unwrap().resolve("/w", vco).unwrap();
        assert_eq!((m.min, m.max), (0.0, 3.0));
        assert_eq!([0.0, 0.2, 0.5, 0.9, 1.0].map(|x| m.value(x)), [0.0, 1.0, 2.0, 3.0, 3.0]);
    }

    #[test]
    fn bad_requests_name_what_is_wrong() {
        let ok = |args: &[Value<'_>]| spec(args).and_then(|s| s.resolve("/f", vco));
        assert_eq!(ok(&[Value::Int(1)]), Err(MapError::Refused(Error::WrongArgs)));
        assert_eq!(ok(&[Value::Int(2), Value::Str("freq")]), Err(MapError::Refused(Error::NoSuchModule(2))));
        assert_eq!(ok(&[Value::Int(1), Value::Str("cutoff")]), Err(MapError::Refused(Error::UnknownParam)));
        let id = Err(MapError::Refused(Error::IdOutOfRange { id: 10_000, max: MAX_ID }));
        assert_eq!(ok(&[Value::Int(10_000), Value::Str("freq")]), id);
        let nan = [Value::Int(1), Value::Str("freq"), Value::Float(f32::NAN), Value::Float(1.0)];
        assert_eq!(ok(&nan), Err(MapError::Refused(Error::NotFinite)));
        let curve = [Value::Int(1), Value::Str("freq"), Value::Int(1), Value::Int(2), Value::Str("log")];
        assert_eq!(ok(&curve), Err(MapError::BadCurve));
        let across = [Value::Int(1), Value::Str("freq"), Value::Int(0), Value::Int(2), Value::Str("exp")];
        assert_eq!(ok(&across), Err(MapError::ExpAcrossZero));
        // Found by osc_props: a negative zero bound (its dump line would replay as +0).
        let negative_zero =
            [Value::Int(1), Value::Str("freq"), Value::Float(-1e-20), Value::Float(-0.0), Value::Str("exp")];
        assert_eq!(ok(&negative_zero), Err(MapError::ExpAcrossZero));
        let odd = [Value::Int(1), Value::Str("freq"), Value::Int(0)];
        assert_eq!(ok(&odd), Err(MapError::Refused(Error::WrongArgs)));
        for address in ["", "/", "fader", "/a b", "/a#b", "/module/set", "/m/1/freq", "/map", "/status", "/patch/dump"]
        {
            assert_eq!(
                spec(&[Value::Int(1), Value::Str("freq")]).unwrap().resolve(address, vco),
                Err(MapError::BadAddress)
            );
        }
        for address in ["/patchbay/fader", "/mixer/1", "/1/fader1", "/m", "/maps"] {
            let mapped = spec(&[Value::Int(1), Value::Str("freq")]).unwrap().resolve(address, vco);
            assert_eq!(mapped.is_ok(), address != "/m", "{address}");
        }
        assert_eq!(MapError::Full.name(), FailName::TooMany);
        assert_eq!(MapError::NoSuchMapping.name(), FailName::NoSuchMapping);
    }

    #[test]
    fn a_controllers_position_is_its_first_number() {
        assert_eq!(position_of(&[Value::Float(0.25)]), Ok(0.25));
        assert_eq!(position_of(&[Value::Str("x"), Value::Int(1)]), Ok(1.0));
        assert_eq!(position_of(&[]), Err(Error::WrongArgs));
        assert_eq!(position_of(&[Value::Float(f32::NAN)]), Err(Error::NotFinite));
    }

    #[test]
    fn several_per_address_replaced_by_key_freed_with_their_module() {
        let mut all = Mappings::default();
        let freq = fader_to_freq("exp");
        let level = Mapping { param: 3, min: 0.0, max: 1.0, curve: Curve::Lin, ..freq.clone() };
        let other = Mapping { id: 2, ..level.clone() };
        all.add(freq.clone()).unwrap();
        all.add(level.clone()).unwrap();
        all.add(other).unwrap();
        all.add(Mapping { max: 880.0, ..freq.clone() }).unwrap();
        assert_eq!(all.len(), 3, "the same address, module and parameter replaces");
        assert_eq!(all.of_address("/1/fader1").count(), 3);
        assert_eq!(all.of_address("/1/fader1").next().map(|m| m.max), Some(880.0), "in its place");
        assert_eq!(all.of_param(1, 3).count(), 1);
        all.free_module(2);
        assert_eq!(all.len(), 2);
        assert_eq!(all.remove("/1/fader1", Some((1, 3))), Ok(1));
        assert_eq!(all.remove("/1/fader1", Some((1, 3))), Err(MapError::NoSuchMapping));
        assert_eq!(all.remove("/1/fader1", None), Ok(1));
        assert!(all.is_empty());
        for k in 0..MAX_MAPPINGS {
            all.add(Mapping { address: format!("/f{k}"), ..freq.clone() }).unwrap();
        }
        assert_eq!(all.add(Mapping { address: "/one/more".into(), ..freq }), Err(MapError::Full));
    }

    #[test]
    fn a_line_reads_back_as_the_same_mapping() {
        let m = fader_to_freq("exp");
        let line = m.line();
        let (address, spec) = parse_map_line(&line).unwrap().unwrap();
        assert_eq!(spec.resolve(address, vco), Ok(m.clone()));
        let timed = format!("@1.5 {line} # the fader");
        assert_eq!(parse_map_line(&timed).unwrap().unwrap().1.resolve(address, vco), Ok(m));
        assert!(parse_map_line("/module/new vco 1").is_none());
        assert!(parse_map_line("# /map /a 1 freq").is_none());
        assert_eq!(parse_map_line("/map /a 1"), Some(Err(MapError::Refused(Error::WrongArgs))));
        assert_eq!(
            without_maps("/module/new vco 1\n/map /a 1 freq\n/patch 1 out 0 in"),
            "/module/new vco 1\n\n/patch 1 out 0 in\n"
        );
    }
}
