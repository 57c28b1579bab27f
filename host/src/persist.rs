//! The patch survives the server: the ledger's dump is saved after every change, and named
//! patches live in a folder.
//!
//! The state folder (`--state DIR`, by default `$XDG_STATE_HOME/synthpool` or
//! `~/.local/state/synthpool`) holds `patch.osc`, the last patch, and `patches/NAME.osc`, the
//! patches saved with `/patch/save NAME`. Each file is a script (`/module/new vco 1` lines) as
//! `/patch/dump` gives it, so a user can read, edit or render it. Every write is atomic: the
//! text goes to a temporary file in the same folder, is flushed to disk, and is renamed over the
//! old one; a crash at any point leaves the old file or the new one, never half of one.
//!
//! The [`Saver`] thread does the writing, off the audio path and off the OSC thread: a change
//! only sends it a wake-up; it takes the ledger's dump and writes it, so a burst of changes
//! costs one write.
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use synthpool_core::command::{Error, Request};
use synthpool_core::script::parse_line;

use crate::engine::{Busy, Engine};
use crate::ledger::{Ledger, Refused};
use crate::mapping::{self, MapError, MapSpec};
use crate::protocol::Failure;

/// Longest patch name, bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Where patches are kept.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// Why a named patch could not be saved or loaded (its `/fail` name:
/// [`crate::protocol::Failure::Store`]).
#[derive(Debug)]
pub enum StoreError {
    /// The name is not 1..=64 of `A-Z a-z 0-9 _ -` (so it cannot leave the patches folder).
    BadName,
    /// No patch of that name.
    NoSuchPatch,
    /// Reading or writing failed.
    Io(io::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::BadName => write!(f, "a patch name is 1 to {MAX_NAME_BYTES} letters, digits, '_' or '-'"),
            StoreError::NoSuchPatch => write!(f, "no patch of this name"),
            StoreError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl Store {
    /// The store in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default state folder: `$XDG_STATE_HOME/synthpool`, else `~/.local/state/synthpool`,
    /// else `./synthpool-state`.
    pub fn default_dir() -> PathBuf {
        let nonempty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
        if let Some(state) = std::env::var_os("XDG_STATE_HOME").and_then(nonempty) {
            return state.join("synthpool");
        }
        if let Some(home) = std::env::var_os("HOME").and_then(nonempty) {
            return home.join(".local/state/synthpool");
        }
        PathBuf::from("synthpool-state")
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last patch's file.
    pub fn last_path(&self) -> PathBuf {
        self.dir.join("patch.osc")
    }

    /// The last patch saved, if there is one.
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub fn load_last(&self) -> io::Result<Option<String>> {
        match fs::read_to_string(self.last_path()) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves `lines` as the last patch, atomically.
    ///
    /// # Errors
    /// The folder or file cannot be written.
    pub fn save_last(&self, lines: &[String]) -> io::Result<()> {
        write_atomically(&self.last_path(), &script(lines))
    }

    /// Saves `lines` as patch `name`, atomically.
    ///
    /// # Errors
    /// A bad name, or the file cannot be written.
    pub fn save_named(&self, name: &str, lines: &[String]) -> Result<(), StoreError> {
        write_atomically(&self.named_path(name)?, &script(lines)).map_err(StoreError::Io)
    }

    /// The text of patch `name`.
    ///
    /// # Errors
    /// A bad name, no such patch, or it cannot be read.
    pub fn load_named(&self, name: &str) -> Result<String, StoreError> {
        fs::read_to_string(self.named_path(name)?).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NoSuchPatch,
            _ => StoreError::Io(e),
        })
    }

    /// `patches/NAME.osc`, for a name that cannot leave the folder.
    fn named_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        let fine = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.bytes().all(fine) {
            return Err(StoreError::BadName);
        }
        Ok(self.dir.join("patches").join(format!("{name}.osc")))
    }
}

fn script(lines: &[String]) -> String {
    let mut text = String::from("# synthpool patch (a script: see PROTOCOL.md)\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Writes `text` to `path` so that `path` holds the old text or the new, never a part.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("patch");
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    // The rename itself reaches the disk with the folder's entry.
    if let Ok(folder) = fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// The thread that saves the last patch after changes.
pub struct Saver {
    wake: SyncSender<Wake>,
    thread: JoinHandle<()>,
}

/// What the saver is woken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    /// The patch changed.
    Changed,
    /// Save what is pending and end (whoever still holds a [`Notifier`]: a shared OSC server,
    /// an OSCQuery connection on its way out).
    Finish,
}

impl Saver {
    /// Starts the saver for `ledger` into `store`.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub fn start(store: Store, ledger: Arc<Mutex<Ledger>>) -> io::Result<Saver> {
        let (wake, changes) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("saver".into())
            .spawn(move || save_on_change(&store, &ledger, &changes))?;
        Ok(Saver { wake, thread })
    }

    /// A handle to tell it the patch changed.
    pub fn notifier(&self) -> Notifier {
        Notifier(self.wake.clone())
    }

    /// Saves what is pending and ends the thread.
    pub fn finish(self) {
        // Blocks only while a wake-up waits in the channel, which the thread is taking.
        let _ = self.wake.send(Wake::Finish);
        let _ = self.thread.join();
    }
}

/// Tells the [`Saver`] that the patch changed; never blocks (a wake-up already pending covers
/// this change too).
#[derive(Clone, Debug)]
pub struct Notifier(SyncSender<Wake>);

impl Notifier {
    /// The patch changed.
    pub fn changed(&self) {
        let _ = self.0.try_send(Wake::Changed);
    }
}

fn save_on_change(store: &Store, ledger: &Mutex<Ledger>, wakes: &Receiver<Wake>) {
    let mut last_saved: Option<Vec<String>> = None;
    let mut finishing = false;
    while !finishing {
        // Every sender gone is a finish too.
        finishing = wakes.recv().map_or(true, |wake| wake == Wake::Finish);
        // Take every wake-up that came meanwhile: one write covers them all.
        while let Ok(wake) = wakes.try_recv() {
            finishing |= wake == Wake::Finish;
        }
        let lines = ledger.lock().unwrap_or_else(PoisonError::into_inner).dump();
        if last_saved.as_ref() == Some(&lines) {
            continue;
        }
        match store.save_last(&lines) {
            Ok(()) => last_saved = Some(lines),
            Err(e) => eprintln!("synthpool: cannot save the patch to {}: {e}", store.last_path().display()),
        }
    }
}

/// Why a script could not be applied as a whole.
#[derive(Clone, Debug, PartialEq)]
pub enum ScriptRefused {
    /// Line `line` (1-based) was refused with `error`; nothing changed.
    Line {
        /// 1-based line number.
        line: usize,
        /// Why.
        error: Error,
    },
    /// Line `line` (1-based), a mapping, was refused with `error`; nothing changed.
    Map {
        /// 1-based line number.
        line: usize,
        /// Why.
        error: MapError,
    },
    /// The workers' rings had no room for it; nothing changed.
    Busy,
}

impl std::fmt::Display for ScriptRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptRefused::Line { line, error } => write!(f, "line {line}: {}", Failure::Refused(*error)),
            ScriptRefused::Map { line, error } => write!(f, "line {line}: {}", Failure::from(*error)),
            ScriptRefused::Busy => write!(f, "{}", Failure::Busy),
        }
    }
}

/// A script's lines read: its requests and its mappings (times ignored), each with its
/// 1-based line number.
#[derive(Debug, Default)]
pub struct ScriptLines<'a> {
    /// The requests, in order.
    pub requests: Vec<(usize, Request<'a>)>,
    /// The mappings (`/map` lines): address and what it asks.
    pub maps: Vec<(usize, &'a str, MapSpec)>,
}

/// Reads a script's lines.
///
/// # Errors
/// The first line that does not parse.
pub fn script_requests(text: &str) -> Result<ScriptLines<'_>, ScriptRefused> {
    let mut lines = ScriptLines::default();
    for (number, line) in text.lines().enumerate() {
        if let Some(map) = mapping::parse_map_line(line) {
            let (address, spec) = map.map_err(|error| ScriptRefused::Map { line: number + 1, error })?;
            lines.maps.push((number + 1, address, spec));
            continue;
        }
        match parse_line(line, 0.0) {
            Ok((_, Some(request))) => lines.requests.push((number + 1, request)),
            Ok((_, None)) => {}
            Err(error) => return Err(ScriptRefused::Line { line: number + 1, error }),
        }
    }
    Ok(lines)
}

/// Applies the script `text` as one bundle, all or none: with `replace`, the patch is cleared
/// first (in the same block). Its mappings are checked with it and made after its requests.
/// Returns how many requests and mappings it held.
///
/// # Errors
/// A line that does not parse or is refused, or rings without room: nothing changed.
pub fn apply_script(
    ledger: &mut Ledger,
    engine: &dyn Engine,
    text: &str,
    replace: bool,
) -> Result<usize, ScriptRefused> {
    let lines = script_requests(text)?;
    let mut requests: Vec<Request<'_>> = Vec::with_capacity(lines.requests.len() + 1);
    if replace {
        requests.push(Request::Clear);
    }
    requests.extend(lines.requests.iter().map(|&(_, r)| r));
    let mappings = ledger
        .check_maps(&requests, lines.maps.iter().map(|(_, address, spec)| (*address, spec)))
        .map_err(|(k, error)| ScriptRefused::Map { line: lines.maps[k].0, error })?;
    let first = usize::from(replace);
    ledger
        .submit_with(&requests, |commands| if commands.is_empty() { Ok(()) } else { engine.send_together(commands) })
        .map_err(|refused| match refused {
            Refused::Invalid { index, error } => {
                ScriptRefused::Line { line: index.checked_sub(first).map_or(0, |i| lines.requests[i].0), error }
            }
            Refused::Send(Busy) => ScriptRefused::Busy,
        })?;
    for mapping in mappings {
        // Checked against the patch the requests left: cannot fail.
        let _ = ledger.map(mapping);
    }
    Ok(lines.requests.len() + lines.maps.len())
}

/// Restores the last patch saved in `store` onto an empty `ledger`: as one bundle, or, if
/// that is refused (a smaller pool may not hold it all, or it is larger than the rings),
/// line by line, keeping every line that fits. Call it with the audio running: a line that
/// finds a ring full waits for the worker to drain it. Returns the lines restored and the problems met (for the log).
pub fn restore(store: &Store, ledger: &mut Ledger, engine: &dyn Engine) -> (usize, Vec<String>) {
    let text = match store.load_last() {
        Ok(Some(text)) => text,
        Ok(None) => return (0, Vec::new()),
        Err(e) => return (0, vec![format!("cannot read {}: {e}", store.last_path().display())]),
    };
    if let Ok(n) = apply_script(ledger, engine, &text, false) {
        return (n, Vec::new());
    }
    feed_script(ledger, engine, &text)
}

/// Applies the script `text` line by line, each line its own bundle, keeping every line
/// that is accepted: for a patch larger than the rings (it goes in as the workers drain
/// them, so the audio must run) or one a smaller pool cannot hold whole. Returns the lines
/// applied and the problems met, one line each.
pub fn feed_script(ledger: &mut Ledger, engine: &dyn Engine, text: &str) -> (usize, Vec<String>) {
    let mut applied = 0;
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if let Some(map) = mapping::parse_map_line(line) {
            let mapped = map.and_then(|(address, spec)| {
                let mapping = spec.resolve(address, |id| ledger.topology().kind(id))?;
                ledger.map(mapping)
            });
            match mapped {
                Ok(()) => applied += 1,
                Err(error) => problems.push(format!("line {}: {}", number + 1, Failure::from(error))),
            }
            continue;
        }
        let request = match parse_line(line, 0.0) {
            Ok((_, Some(request))) => request,
            Ok((_, None)) => continue,
            Err(error) => {
                problems.push(format!("line {}: {}", number + 1, Failure::Refused(error)));
                continue;
            }
        };
        match submit_waiting(ledger, engine, request) {
            Ok(()) => applied += 1,
            Err(Refused::Invalid { error, .. }) => {
                problems.push(format!("line {}: {}", number + 1, Failure::Refused(error)))
            }
            Err(Refused::Send(Busy)) => problems.push(format!("line {}: {}", number + 1, Failure::Busy)),
        }
    }
    (applied, problems)
}

/// Submits `request` alone, waiting up to 2 s for room while a worker's ring is full.
///
/// # Errors
/// As [`Ledger::submit_with`]: nothing was recorded.
fn submit_waiting(ledger: &mut Ledger, engine: &dyn Engine, request: Request<'_>) -> Result<(), Refused<Busy>> {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let sent =
            ledger.submit_with(
                &[request],
                |commands| {
                    if commands.is_empty() { Ok(()) } else { engine.send_together(commands) }
                },
            );
        if sent != Err(Refused::Send(Busy)) || std::time::Instant::now() >= give_up {
            return sent;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Replaces the patch with the script `text` (`/patch/load`): as one bundle, all or none;
/// when it is valid but larger than the rings, the patch is cleared and the script fed line
/// by line as the workers drain their rings ([`feed_script`]), over a few blocks.
///
/// # Errors
/// A line that does not parse or is refused (nothing changed); `Busy` when a ring stayed
/// full 2 s while feeding (the lines before it are applied and recorded).
pub fn load_script(ledger: &mut Ledger, engine: &dyn Engine, text: &str) -> Result<usize, ScriptRefused> {
    match apply_script(ledger, engine, text, true) {
        Err(ScriptRefused::Busy) => {}
        other => return other,
    }
    // Valid as a whole (it was checked before the rings were asked): only room lacked.
    submit_waiting(ledger, engine, Request::Clear).map_err(|_| ScriptRefused::Busy)?;
    let (applied, problems) = feed_script(ledger, engine, text);
    if problems.is_empty() { Ok(applied) } else { Err(ScriptRefused::Busy) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("synthpool-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_saver_finishes_with_the_last_change_though_notifiers_live_on() {
        let store = Store::new(scratch("saver"));
        let ledger = Arc::new(Mutex::new(Ledger::new(1)));
        let saver = Saver::start(store.clone(), Arc::clone(&ledger)).unwrap();
        let notifier = saver.notifier();
        ledger.lock().unwrap().submit(&Request::New { kind: "vco", id: 1 }).unwrap();
        notifier.changed();
        // A notifier still held (a shared OSC server's) does not keep the saver from ending.
        saver.finish();
        assert!(store.load_last().unwrap().unwrap().ends_with("/module/new vco 1\n"));
        notifier.changed();
    }

    #[test]
    fn names_that_could_leave_the_patches_folder_are_refused() {
        let store = Store::new(scratch("names"));
        for bad in ["", "../x", "a/b", "..", ".hidden", "a b", "é", &"x".repeat(65), "a\0b"] {
            assert!(matches!(store.save_named(bad, &[]), Err(StoreError::BadName)), "{bad:?}");
            assert!(matches!(store.load_named(bad), Err(StoreError::BadName)), "{bad:?}");
        }
        assert!(matches!(store.load_named("absent"), Err(StoreError::NoSuchPatch)));
    }

    #[test]
    fn a_saved_patch_reads_back_and_a_rewrite_replaces_it_whole() {
        let store = Store::new(scratch("roundtrip"));
        assert!(store.load_last().unwrap().is_none());
        let lines = vec!["/module/new vco 1".to_owned(), "/patch 1 out 0 in".to_owned()];
        store.save_last(&lines).unwrap();
        store.save_named("set-1", &lines).unwrap();
        let text = store.load_last().unwrap().unwrap();
        assert!(text.ends_with("/module/new vco 1\n/patch 1 out 0 in\n"), "{text}");
        assert_eq!(store.load_named("set-1").unwrap(), text);
        store.save_last(&lines[..1]).unwrap();
        assert!(store.load_last().unwrap().unwrap().ends_with("/module/new vco 1\n"));
        let leftovers: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
