//! Sound out: the audio thread that drives the block clock, and where its blocks go.
//!
//! One [`Clocked`] source renders blocks from the pool on demand. It is driven by a cpal
//! stream (the default device, JACK, or a named ALSA device), by a null sink paced by the
//! system clock when no device is there, or as fast as the CPU allows when rendering
//! offline. Whatever is played can also be recorded: the audio thread hands samples to a
//! writer thread through a lock-free ring (ringbuf, inside one process) and never touches
//! the file itself. Sound is stereo throughout (left, right). The capture side of the same
//! device, when it has one, comes the other way through a ring of its own ([`Capture`]) and
//! is the racks' audio input (`input` modules); on the null sink the input is silence.
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use synthpool_core::BLOCK;
use synthpool_core::block::{CHANNELS, STEREO_SILENCE, StereoBlock};

use crate::pool::Pool;

/// Which output to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AudioChoice {
    /// The default device; else JACK if a server runs; else the null sink.
    Auto,
    /// A running JACK server.
    Jack,
    /// ALSA (the default device, or --device).
    Alsa,
    /// No device: a null sink paced by the system clock (use --record to hear it later).
    Null,
}

/// Counters the audio thread keeps (read by `/status`).
#[derive(Debug, Default)]
pub struct AudioStats {
    /// Blocks rendered.
    pub blocks: AtomicU64,
    /// Blocks where at least one worker missed the deadline.
    pub late_blocks: AtomicU64,
    /// Samples the recorder could not take (its ring was full).
    pub dropped_record_samples: AtomicU64,
    /// Buffer underruns or overruns the device reported (JACK, ALSA).
    pub xruns: AtomicU64,
    /// Blocks of audio input that were missing when a block was rendered (it played silence)
    /// or dropped because input had piled up past [`CAPTURE_SLACK_BLOCKS`].
    pub input_glitches: AtomicU64,
}

/// Blocks of audio input allowed to wait in the capture ring: a device's input and output
/// callbacks need not alternate, so a little slack rides out their jitter; more than this is
/// latency, and the oldest is dropped.
pub const CAPTURE_SLACK_BLOCKS: usize = 4;

/// The audio thread's end of the capture ring: interleaved frames of `channels` samples
/// from the device's input callback.
pub struct Capture {
    ring: ringbuf::HeapCons<f32>,
    channels: usize,
    /// One block of interleaved frames, allocated here, not on the audio path.
    frames: Vec<f32>,
}

impl Capture {
    /// A ring for a capture stream of `channels` channels (and the input callback's end):
    /// room for 16 blocks.
    pub fn new(channels: usize) -> (Capture, ringbuf::HeapProd<f32>) {
        let channels = channels.max(1);
        let (producer, consumer) = HeapRb::<f32>::new(BLOCK * channels * 16).split();
        (Capture { ring: consumer, channels, frames: vec![0.0; BLOCK * channels] }, producer)
    }

    /// The next block of input into `block` (a mono input on both sides, channels past the
    /// second ignored). Returns whether a whole block had come (else `block` is silence) and
    /// whether older input was dropped to keep the latency down.
    fn next_block(&mut self, block: &mut StereoBlock) -> (bool, bool) {
        let whole = BLOCK * self.channels;
        let mut dropped = false;
        while self.ring.occupied_len() > whole * CAPTURE_SLACK_BLOCKS {
            self.ring.skip(whole);
            dropped = true;
        }
        if self.ring.occupied_len() < whole {
            *block = STEREO_SILENCE;
            return (false, dropped);
        }
        self.ring.pop_slice(&mut self.frames);
        crate::render::deinterleave(&self.frames, self.channels, block);
        (true, dropped)
    }
}

/// Renders blocks from the pool and hands out any number of frames: cpal does not promise
/// one callback per block, so a partly used block waits in `pending` for the next call.
pub struct Clocked {
    pool: Arc<Pool>,
    deadline: Duration,
    pending: StereoBlock,
    pending_at: usize,
    recorder: Option<ringbuf::HeapProd<f32>>,
    /// Interleaved stereo of the block for the recorder.
    interleaved: [f32; BLOCK * CHANNELS],
    capture: Option<Capture>,
    input: StereoBlock,
    stats: Arc<AudioStats>,
}

impl Clocked {
    /// A source for `pool`; each block waits for the workers at most `deadline`.
    pub fn new(
        pool: Arc<Pool>,
        deadline: Duration,
        recorder: Option<ringbuf::HeapProd<f32>>,
        stats: Arc<AudioStats>,
    ) -> Self {
        Self {
            pool,
            deadline,
            pending: STEREO_SILENCE,
            pending_at: BLOCK,
            recorder,
            interleaved: [0.0; BLOCK * CHANNELS],
            capture: None,
            input: STEREO_SILENCE,
            stats,
        }
    }

    /// Takes the racks' audio input from `capture` from now on (else it is silence).
    pub fn set_capture(&mut self, capture: Capture) {
        self.capture = Some(capture);
    }

    /// Fills `out` (interleaved, `channels` per frame: left and right on the first two and
    /// silence on any others; a mono device gets their mean), rendering blocks as needed.
    /// Allocation-free and lock-free.
    pub fn fill<T: cpal::FromSample<f32> + Copy>(&mut self, out: &mut [T], channels: usize) {
        for frame in out.chunks_mut(channels.max(1)) {
            if self.pending_at == BLOCK {
                self.render_one();
            }
            let [left, right] = [self.pending[0][self.pending_at], self.pending[1][self.pending_at]];
            self.pending_at += 1;
            match frame {
                [mono] => *mono = T::from_sample_(0.5 * (left + right)),
                [l, r, rest @ ..] => {
                    *l = T::from_sample_(left);
                    *r = T::from_sample_(right);
                    rest.fill(T::from_sample_(0.0));
                }
                [] => {}
            }
        }
    }

    /// Sets up the calling thread as the audio thread ([`Pool::enter_audio_thread`]); says
    /// once when real-time scheduling was refused.
    pub fn enter(&self) {
        if !self.pool.enter_audio_thread().realtime {
            eprintln!("synthpool: real-time scheduling refused for the audio thread; running at normal priority");
        }
    }

    /// Renders the next block into `out` (for offline rendering and the null sink).
    pub fn next_block(&mut self, out: &mut StereoBlock) {
        self.render_one();
        *out = self.pending;
        self.pending_at = BLOCK;
    }

    fn render_one(&mut self) {
        // The whole block, recorder hand-off included, is the audio path: counted.
        let _counting = crate::alloc_count::CountAllocations::here();
        if let Some(capture) = self.capture.as_mut() {
            let (came, dropped) = capture.next_block(&mut self.input);
            if !came || dropped {
                self.stats.input_glitches.fetch_add(1, Ordering::Relaxed);
            }
            self.pool.set_input(&self.input);
        }
        let late = self.pool.render_block(&mut self.pending, self.deadline);
        self.pending_at = 0;
        self.stats.blocks.fetch_add(1, Ordering::Relaxed);
        if late > 0 {
            self.stats.late_blocks.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(recorder) = self.recorder.as_mut() {
            crate::render::interleave(&self.pending, &mut self.interleaved);
            let taken = recorder.push_slice(&self.interleaved);
            if taken < self.interleaved.len() {
                let dropped = self.interleaved.len() - taken;
                self.stats.dropped_record_samples.fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Writes what the audio thread plays to a 32-bit float stereo WAV file, off the audio thread.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<u64>>>,
    path: PathBuf,
}

impl Recorder {
    /// Starts the writer thread; the returned producer goes to the audio thread. Its ring
    /// holds 2 s, far more than the writer's 20 ms naps need, and is written through once
    /// here so its pages are resident before the audio starts (no page faults on the audio
    /// path, and the process's memory does not creep up while the ring first fills).
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn start(path: &Path, sample_rate_hz: u32) -> io::Result<(Recorder, ringbuf::HeapProd<f32>)> {
        let spec = crate::render::wav_spec(sample_rate_hz);
        let mut writer = hound::WavWriter::create(path, spec).map_err(io::Error::other)?;
        let ring = sample_rate_hz as usize * 2 * CHANNELS;
        let (mut producer, mut consumer) = HeapRb::<f32>::new(ring).split();
        let zeros = vec![0.0f32; ring];
        producer.push_slice(&zeros);
        consumer.skip(zeros.len());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new().name("recorder".into()).spawn(move || {
            let mut chunk = vec![0.0f32; 4096];
            let mut written = 0u64;
            loop {
                let done = stopping.load(Ordering::Acquire);
                loop {
                    let n = consumer.pop_slice(&mut chunk);
                    if n == 0 {
                        break;
                    }
                    for &s in &chunk[..n] {
                        writer.write_sample(s).map_err(io::Error::other)?;
                    }
                    written += n as u64;
                }
                if done && consumer.occupied_len() == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            writer.finalize().map_err(io::Error::other)?;
            Ok(written)
        })?;
        Ok((Recorder { stop, thread: Some(thread), path: path.to_owned() }, producer))
    }

    /// Drains what is left, finalises the file; returns the samples written.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> io::Result<u64> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other(format!("recorder thread for {} failed", self.path.display()))),
        }
    }
}

/// A playing output; dropping it stops the sound.
pub enum Output {
    /// A cpal stream on a device.
    Device {
        /// The stream (kept alive).
        stream: cpal::Stream,
        /// The capture stream of the same host's default input, when it has one (kept alive).
        input: Option<cpal::Stream>,
        /// What was opened, for the log.
        description: String,
    },
    /// The null sink's thread, paced by the system clock.
    Null {
        /// Set to stop the thread.
        stop: Arc<AtomicBool>,
        /// The thread.
        thread: Option<JoinHandle<()>>,
    },
}

impl Output {
    /// Opens the output `choice` asks for and starts it. With `Auto`, falls back to JACK,
    /// then the null sink, and says so in the returned description.
    ///
    /// # Errors
    /// An explicitly chosen device cannot be opened.
    pub fn open(
        choice: AudioChoice,
        device: Option<&str>,
        sample_rate_hz: u32,
        source: Clocked,
    ) -> io::Result<(Output, String)> {
        let source = std::sync::Mutex::new(Some(source));
        let take = || source.lock().ok().and_then(|mut s| s.take());
        let attempts: &[(&str, AudioChoice)] = match choice {
            AudioChoice::Auto => &[("default", AudioChoice::Alsa), ("jack", AudioChoice::Jack)],
            AudioChoice::Jack => &[("jack", AudioChoice::Jack)],
            AudioChoice::Alsa => &[("alsa", AudioChoice::Alsa)],
            AudioChoice::Null => &[],
        };
        let mut failures = Vec::new();
        for (name, kind) in attempts {
            match open_cpal(*kind, device, sample_rate_hz) {
                Ok((dev, config, description)) => {
                    let Some(mut source) = take() else { break };
                    let (input, heard) = match open_capture(*kind, sample_rate_hz, source.stats.clone()) {
                        Ok((stream, capture, heard)) => {
                            source.set_capture(capture);
                            (Some(stream), heard)
                        }
                        Err(e) => (None, format!("no audio input ({e}): `input` modules play silence")),
                    };
                    match start_stream(&dev, config, source) {
                        Ok(stream) => {
                            if let Some(input) = &input
                                && let Err(e) = input.play()
                            {
                                eprintln!("synthpool: audio input did not start: {e}");
                            }
                            let description = format!("{description}; {heard}");
                            return Ok((
                                Output::Device { stream, input, description: description.clone() },
                                description,
                            ));
                        }
                        Err(e) => {
                            failures.push(format!("{name}: {e}"));
                            break; // the source is gone with the failed stream
                        }
                    }
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        if choice != AudioChoice::Auto && choice != AudioChoice::Null {
            return Err(io::Error::new(io::ErrorKind::NotFound, failures.join("; ")));
        }
        let Some(source) = take() else {
            return Err(io::Error::other(format!("audio device failed: {}", failures.join("; "))));
        };
        let why =
            if failures.is_empty() { String::new() } else { format!(" (no audio device: {})", failures.join("; ")) };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = spawn_null_sink(source, sample_rate_hz, stop.clone())?;
        Ok((Output::Null { stop, thread: Some(thread) }, format!("null sink paced by the system clock{why}")))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        match self {
            Output::Device { stream, input, .. } => {
                let _ = stream.pause();
                if let Some(input) = input {
                    let _ = input.pause();
                }
            }
            Output::Null { stop, thread } => {
                stop.store(true, Ordering::Release);
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

fn open_cpal(
    kind: AudioChoice,
    device: Option<&str>,
    sample_rate_hz: u32,
) -> Result<(cpal::Device, cpal::StreamConfig, String), String> {
    let host = match kind {
        AudioChoice::Jack => cpal::host_from_id(cpal::HostId::Jack).map_err(|e| e.to_string())?,
        _ => cpal::default_host(),
    };
    let dev = match device {
        Some(name) => {
            let id = name.parse().map_err(|e| format!("bad device id {name}: {e}"))?;
            host.device_by_id(&id).ok_or_else(|| format!("no device {name}"))?
        }
        None => host.default_output_device().ok_or("no default output device")?,
    };
    let supported = dev.default_output_config().map_err(|e| e.to_string())?;
    if supported.sample_format() != cpal::SampleFormat::F32 && supported.sample_format() != cpal::SampleFormat::I16 {
        return Err(format!("sample format {} not supported here", supported.sample_format()));
    }
    let mut config: cpal::StreamConfig = supported.config();
    if config.sample_rate != sample_rate_hz {
        return Err(format!(
            "device runs at {} Hz, not {sample_rate_hz} Hz (use --sample-rate {})",
            config.sample_rate, config.sample_rate
        ));
    }
    config.buffer_size = cpal::BufferSize::Default;
    let id = dev.id().map(|i| i.to_string()).unwrap_or_else(|_| "unknown".into());
    Ok((dev, config, format!("{id}, {} channels at {} Hz", config.channels, config.sample_rate)))
}

/// Opens the default input of the host `kind` names (JACK's capture ports on JACK) at
/// `sample_rate_hz`, as 32-bit float, feeding a [`Capture`] ring; the stream is built but not
/// started. Returns the stream, the audio thread's end of the ring and what was opened.
fn open_capture(
    kind: AudioChoice,
    sample_rate_hz: u32,
    stats: Arc<AudioStats>,
) -> Result<(cpal::Stream, Capture, String), String> {
    let host = match kind {
        AudioChoice::Jack => cpal::host_from_id(cpal::HostId::Jack).map_err(|e| e.to_string())?,
        _ => cpal::default_host(),
    };
    let dev = host.default_input_device().ok_or("no default input device")?;
    let supported = dev.default_input_config().map_err(|e| e.to_string())?;
    let mut config: cpal::StreamConfig = supported.config();
    if config.sample_rate != sample_rate_hz {
        return Err(format!("the input runs at {} Hz, not {sample_rate_hz} Hz", config.sample_rate));
    }
    config.buffer_size = cpal::BufferSize::Default;
    let (capture, mut producer) = Capture::new(config.channels as usize);
    let id = dev.id().map(|i| i.to_string()).unwrap_or_else(|_| "unknown".into());
    let heard = format!("input {id}, {} channels", config.channels);
    let errors = stats.clone();
    let stream = dev
        .build_input_stream(
            config,
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                // A full ring means the output stopped taking input: what does not fit is lost.
                if producer.push_slice(data) < data.len() {
                    stats.input_glitches.fetch_add(1, Ordering::Relaxed);
                }
            },
            move |e: cpal::Error| stream_error(&errors, "audio input", &e),
            None,
        )
        .map_err(|e| e.to_string())?;
    Ok((stream, capture, heard))
}

/// What a stream's error callback does: an xrun can come every period on a loaded machine,
/// so the first is said and the rest counted (`AudioStats::xruns`, reported at stop); any
/// other error is said.
fn stream_error(stats: &AudioStats, stream: &str, e: &cpal::Error) {
    if e.kind() == cpal::ErrorKind::Xrun {
        if stats.xruns.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!("synthpool: {stream}: {e} (further xruns are counted, reported at stop)");
        }
    } else {
        eprintln!("synthpool: {stream}: {e}");
    }
}

fn start_stream(dev: &cpal::Device, config: cpal::StreamConfig, source: Clocked) -> Result<cpal::Stream, String> {
    let format = dev.default_output_config().map(|c| c.sample_format()).map_err(|e| e.to_string())?;
    let stream = match format {
        cpal::SampleFormat::I16 => build_stream::<i16>(dev, config, source),
        _ => build_stream::<f32>(dev, config, source),
    }?;
    stream.play().map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A stream of samples of type `T` fed by `source`; the callback makes its thread the audio
/// thread ([`Clocked::enter`]) the first time it runs (cpal owns that thread).
fn build_stream<T: cpal::SizedSample + cpal::FromSample<f32>>(
    dev: &cpal::Device,
    config: cpal::StreamConfig,
    mut source: Clocked,
) -> Result<cpal::Stream, String> {
    let channels = config.channels as usize;
    let mut entered = false;
    let stats = source.stats.clone();
    dev.build_output_stream(
        config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            if !entered {
                // cpal owns this thread: its first callback makes it the audio thread (the
                // only syscalls of the callback besides the wake-up, and only this once).
                entered = true;
                source.enter();
            }
            source.fill(data, channels)
        },
        move |e: cpal::Error| stream_error(&stats, "audio stream", &e),
        None,
    )
    .map_err(|e| e.to_string())
}

fn spawn_null_sink(mut source: Clocked, sample_rate_hz: u32, stop: Arc<AtomicBool>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("audio-null".into()).spawn(move || {
        source.enter();
        let period = Duration::from_secs_f64(BLOCK as f64 / sample_rate_hz as f64);
        let mut block = STEREO_SILENCE;
        let mut next = Instant::now();
        while !stop.load(Ordering::Acquire) {
            source.next_block(&mut block);
            next += period;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > period * 8 {
                next = now; // fell far behind (machine busy): resume pacing from now
            }
        }
    })
}
