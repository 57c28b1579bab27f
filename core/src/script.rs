//! Patch scripts: text, one OSC message a line, optionally scheduled.
//!
//! ```text
//! # a comment; blank lines are skipped
//! /module/new vco 1
//! /patch 1 out 0 in
//! @1.5 /module/set 1 freq_hz 220   # at 1.5 s from the start
//! /module/set 1 level 0.5          # a line without @ shares the time of the line before
//! @2                               # a time on its own sets it for the lines that follow
//! ```
//! Arguments are integers (`1`), floats (`0.5`, `1e3`) or words (`vco`); a word may be put in
//! double quotes. The host's `synthpool render`, its demo and the firmware all play scripts
//! through [`Player`], so they apply each line at the same block.
use crate::block::BLOCK;
use crate::command::{Error, Request, Value};
use heapless::Vec;

/// Most arguments on one line (`/patch` has four).
pub const MAX_ARGS: usize = 8;

/// One line's message and when it is due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line<'a> {
    /// Seconds from the start of the script.
    pub at_s: f32,
    /// The request.
    pub request: Request<'a>,
    /// 1-based line number, for error messages.
    pub number: usize,
}

/// A script line that could not be read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineError {
    /// 1-based line number.
    pub number: usize,
    /// What was wrong (`UnknownAddress`, `WrongArgs`, `BadValue` for a bad `@time`).
    pub error: Error,
}

/// Reads the lines of a script lazily, in order, without allocating.
#[derive(Clone, Debug)]
pub struct Player<'a> {
    lines: core::iter::Enumerate<core::str::Lines<'a>>,
    now_s: f32,
    pending: Option<Line<'a>>,
}

impl<'a> Player<'a> {
    /// A player at the start of `script`.
    pub fn new(script: &'a str) -> Self {
        Self { lines: script.lines().enumerate(), now_s: 0.0, pending: None }
    }

    /// The next line due before `before_s` seconds, if any. Lines are due in file order; a
    /// line whose time has not come stops the ones after it.
    ///
    /// # Errors
    /// A line that cannot be read (it is then skipped).
    pub fn next_due(&mut self, before_s: f32) -> Option<Result<Line<'a>, LineError>> {
        if self.pending.is_none() {
            match self.read_line()? {
                Ok(line) => self.pending = Some(line),
                Err(e) => return Some(Err(e)),
            }
        }
        match self.pending {
            Some(line) if line.at_s < before_s => {
                self.pending = None;
                Some(Ok(line))
            }
            _ => None,
        }
    }

    /// The next line due before the end of block `block_index` (at `sample_rate_hz`) began:
    /// what a renderer applies before rendering that block. Block k starts at k * BLOCK frames.
    ///
    /// # Errors
    /// As [`Player::next_due`].
    pub fn next_due_for_block(&mut self, block_index: u64, sample_rate_hz: f32) -> Option<Result<Line<'a>, LineError>> {
        // Due when its time falls before the middle of the block, so a line lands on the
        // block boundary nearest its time (at most half a block, 0.67 ms at 48 kHz, off).
        let middle_s = ((block_index as f64 + 0.5) * BLOCK as f64 / sample_rate_hz as f64) as f32;
        self.next_due(middle_s)
    }

    /// True when every line has been read and applied.
    pub fn finished(&self) -> bool {
        self.pending.is_none() && self.lines.clone().all(|(_, l)| is_blank(l))
    }

    fn read_line(&mut self) -> Option<Result<Line<'a>, LineError>> {
        for (index, text) in self.lines.by_ref() {
            let number = index + 1;
            match parse_line(text, self.now_s) {
                Ok((at_s, None)) => self.now_s = at_s,
                Ok((at_s, Some(request))) => {
                    self.now_s = at_s;
                    return Some(Ok(Line { at_s, request, number }));
                }
                Err(error) => return Some(Err(LineError { number, error })),
            }
        }
        None
    }
}

fn is_blank(line: &str) -> bool {
    let code = line.split('#').next().unwrap_or("");
    code.trim().is_empty()
}

/// Reads one line: its time (the previous line's `now_s` unless it starts with `@T`) and its
/// request, if it has one.
///
/// # Errors
/// `BadValue` for a time that is not a finite, non-negative number; `WrongArgs` for more than
/// [`MAX_ARGS`] arguments or an unclosed quote; `UnknownAddress` for a line not starting with `/`
/// or an address not in the protocol; and whatever [`Request::parse`] refuses.
pub fn parse_line(line: &str, now_s: f32) -> Result<(f32, Option<Request<'_>>), Error> {
    let code = line.split('#').next().unwrap_or("").trim();
    let mut rest = code;
    let mut at_s = now_s;
    if let Some(after) = rest.strip_prefix('@') {
        let (time, tail) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
        at_s = time.parse::<f32>().map_err(|_| Error::BadValue)?;
        if !at_s.is_finite() || at_s < 0.0 {
            return Err(Error::BadValue);
        }
        rest = tail.trim_start();
    }
    if rest.is_empty() {
        return Ok((at_s, None));
    }
    let (address, mut args_text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !address.starts_with('/') {
        return Err(Error::UnknownAddress);
    }
    let mut args: Vec<Value<'_>, MAX_ARGS> = Vec::new();
    loop {
        args_text = args_text.trim_start();
        if args_text.is_empty() {
            break;
        }
        let (token, tail, quoted) = if let Some(inner) = args_text.strip_prefix('"') {
            let (word, tail) = inner.split_once('"').ok_or(Error::WrongArgs)?;
            (word, tail, true)
        } else {
            let (word, tail) = args_text.split_once(char::is_whitespace).unwrap_or((args_text, ""));
            (word, tail, false)
        };
        args.push(value_of(token, quoted)).map_err(|_| Error::WrongArgs)?;
        args_text = tail;
    }
    Request::parse(address, &args).map(|r| (at_s, Some(r)))
}

/// Writes the standard voice `voices` times, as a script: vco (band-limited saw, 55..880 Hz
/// spread evenly in pitch) -> vcf (low-pass 2000 Hz, Q 2) -> vca (x 0.05) <- adsr (10 ms,
/// 100 ms, 0.7, 200 ms, gate held), every vca into the output; ids 1 ..= 4 * voices. The
/// benchmarks and the firmware's instruction counts play this same text.
///
/// # Errors
/// `out` refused a write (a fixed-size string that is full: about 700 bytes a voice).
pub fn write_voice_script(voices: usize, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    for v in 0..voices {
        let base = 1 + 4 * v;
        let (vco, vcf, vca, adsr) = (base, base + 1, base + 2, base + 3);
        let octaves = if voices > 1 { 4.0 * v as f32 / (voices - 1) as f32 } else { 0.0 };
        let freq = 55.0 * crate::dsp::math::exp2(octaves);
        write!(
            out,
            "/module/new vco {vco}\n/module/set {vco} wave saw\n/module/set {vco} freq_hz {freq}\n\
             /module/new vcf {vcf}\n/module/set {vcf} mode lowpass\n/module/set {vcf} cutoff_hz 2000\n/module/set {vcf} q 2\n\
             /module/new vca {vca}\n/module/set {vca} gain 0.05\n\
             /module/new adsr {adsr}\n/module/set {adsr} attack_s 0.01\n/module/set {adsr} decay_s 0.1\n\
             /module/set {adsr} sustain 0.7\n/module/set {adsr} release_s 0.2\n/module/set {adsr} gate 1\n\
             /patch {vco} out {vcf} in\n/patch {vcf} out {vca} in\n/patch {adsr} out {vca} cv\n/patch {vca} out 0 in\n"
        )?;
    }
    Ok(())
}

/// Writes [`write_voice_script`]'s voices and a shared bus they all feed: every vca also into
/// one delay (0.25 s) -> reverb -> output (ids `4 * voices + 1` and `+ 2`, made after the
/// voices). One connected component: the patch a polysynth with effects is. The benchmarks
/// time it on one worker and on several.
///
/// # Errors
/// `out` refused a write.
pub fn write_bus_script(voices: usize, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    write_voice_script(voices, out)?;
    let (delay, reverb) = (4 * voices + 1, 4 * voices + 2);
    write!(
        out,
        "/module/new delay {delay}\n/module/set {delay} time_s 0.25\n/module/new reverb {reverb}\n\
         /patch {delay} out {reverb} in\n/patch {reverb} out 0 in\n"
    )?;
    for v in 0..voices {
        writeln!(out, "/patch {} out {delay} in", 3 + 4 * v)?;
    }
    Ok(())
}

fn value_of(token: &str, quoted: bool) -> Value<'_> {
    if quoted {
        return Value::Str(token);
    }
    if let Ok(i) = token.parse::<i32>() {
        return Value::Int(i);
    }
    // "nan" and "inf" parse as floats: they reach validation and earn NotFinite.
    match token.parse::<f32>() {
        Ok(x) => Value::Float(x),
        Err(_) => Value::Str(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_comments_and_arguments() {
        assert_eq!(parse_line("# only a comment", 0.0), Ok((0.0, None)));
        assert_eq!(parse_line("   ", 1.0), Ok((1.0, None)));
        assert_eq!(parse_line("@2.5", 1.0), Ok((2.5, None)));
        assert_eq!(
            parse_line("@1.5 /module/set 1 freq 220.5 # comment", 0.0),
            Ok((1.5, Some(Request::Set { id: 1, param: "freq", value: Value::Float(220.5) })))
        );
        assert_eq!(parse_line("/module/new \"vco\" 3", 4.0), Ok((4.0, Some(Request::New { kind: "vco", id: 3 }))));
        assert_eq!(
            parse_line("/module/set 1 wave saw", 0.0).map(|(_, r)| r),
            Ok(Some(Request::Set { id: 1, param: "wave", value: Value::Str("saw") }))
        );
        assert_eq!(parse_line("@x /patch/clear", 0.0), Err(Error::BadValue));
        assert_eq!(parse_line("@-1 /patch/clear", 0.0), Err(Error::BadValue));
        assert_eq!(parse_line("module/new vco 1", 0.0), Err(Error::UnknownAddress));
        assert_eq!(parse_line("/module/new \"vco 1", 0.0), Err(Error::WrongArgs));
        assert_eq!(parse_line("/patch/clear 1 2 3 4 5 6 7 8 9", 0.0), Err(Error::WrongArgs));
    }

    #[test]
    fn player_releases_lines_when_due_and_reports_bad_ones() {
        let script = "/module/new vco 1\n@0.01 /module/set 1 freq 220\n/bogus\n@1 /patch/clear\n\n# end\n";
        let mut player = Player::new(script);
        let first = player.next_due_for_block(0, 48_000.0).unwrap().unwrap();
        assert_eq!((first.number, first.at_s), (1, 0.0));
        assert!(player.next_due_for_block(0, 48_000.0).is_none()); // 10 ms is block 7 or 8
        let mut block = 1;
        let second = loop {
            if let Some(line) = player.next_due_for_block(block, 48_000.0) {
                break line.unwrap();
            }
            block += 1;
        };
        // 10 ms = 480 frames = block 7.5: lands at the boundary of block 7 or 8.
        assert!((7..=8).contains(&block), "block {block}");
        assert_eq!(second.number, 2);
        let bad = player.next_due_for_block(block, 48_000.0).unwrap();
        assert_eq!(bad, Err(LineError { number: 3, error: Error::UnknownAddress }));
        assert!(!player.finished());
        let last = player.next_due(2.0).unwrap().unwrap();
        assert_eq!(last.request, Request::Clear);
        assert!(player.finished());
        assert!(player.next_due(100.0).is_none());
    }
}
