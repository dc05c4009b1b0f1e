//! What to play: a file, bytes in memory, a reader, a child process, raw PCM or a
//! [`Source`] of the application's own, opened when its track starts and probed by content.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use crate::decode::SymphoniaSource;
use crate::error::AudioError;
use crate::ogg::{looks_like_ogg_opus, OggOpusReader};
use crate::pcm::{PcmFormat, PcmReader};
use crate::process::{self, ProcessSource};
use crate::seekbuf::SeekBuf;
use crate::source::{OpusStream, PcmStream, Source};
use crate::webm::{self, Probed, EBML_MAGIC};

enum Kind {
    File(PathBuf),
    Bytes(Arc<[u8]>),
    Reader(Option<Box<dyn Read + Send + Sync>>),
    Command {
        program: OsString,
        args: Vec<OsString>,
    },
    Source(Option<Box<dyn Source>>),
}

/// A description of audio to play. Nothing is read until the player opens it (when its track
/// starts); opening probes the content — Ogg Opus and WebM/Matroska Opus are passed through,
/// anything symphonia decodes is decoded and re-encoded — unless [`raw_pcm`](Self::raw_pcm)
/// says the bytes are raw PCM. Files, bytes and commands can be opened again (loops); readers
/// and sources once.
pub struct Input {
    kind: Kind,
    pcm: Option<PcmFormat>,
    extension: Option<String>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Input {
    fn new(kind: Kind) -> Self {
        Input {
            kind,
            pcm: None,
            extension: None,
        }
    }

    /// A file (its extension is a hint to the probe; the content decides).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        Input {
            extension,
            ..Input::new(Kind::File(path))
        }
    }

    /// Bytes in memory (shared, not copied, when opened again).
    pub fn bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        Input::new(Kind::Bytes(bytes.into()))
    }

    /// A reader (a socket, a decompressor, ...): read forward only, so it cannot seek, and it
    /// plays once.
    pub fn reader(reader: impl Read + Send + Sync + 'static) -> Self {
        Input::new(Kind::Reader(Some(Box::new(reader))))
    }

    /// The stdout of `program args...` (found on `PATH`), probed like a file: an `ffmpeg` or
    /// `yt-dlp` pipeline. A missing program is [`AudioError::ProgramNotFound`]; one that exits
    /// with a failure is [`AudioError::ProcessFailed`] with the end of its stderr. The process
    /// is killed when its track ends early.
    pub fn command<S: Into<OsString>>(
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = S>,
    ) -> Self {
        Input::new(Kind::Command {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        })
    }

    /// `ffmpeg -i <input> -f s16le -ar 48000 -ac 2 -`: anything ffmpeg reads (a URL, a video),
    /// as raw PCM.
    pub fn ffmpeg(input: impl Into<OsString>) -> Self {
        let args: Vec<OsString> = vec![
            "-nostdin".into(),
            "-loglevel".into(),
            "error".into(),
            "-i".into(),
            input.into(),
            "-vn".into(),
            "-f".into(),
            "s16le".into(),
            "-ar".into(),
            "48000".into(),
            "-ac".into(),
            "2".into(),
            "-".into(),
        ];
        Input::command("ffmpeg", args).raw_pcm(PcmFormat::DISCORD_S16LE)
    }

    /// `yt-dlp -q -f bestaudio -o - <url>`: the best audio stream of a page, usually WebM Opus
    /// (passed through; a WebM from a pipe is kept in memory while it plays).
    pub fn yt_dlp(url: impl Into<OsString>) -> Self {
        let args: Vec<OsString> = vec![
            "-q".into(),
            "--no-warnings".into(),
            "-f".into(),
            "bestaudio".into(),
            "-o".into(),
            "-".into(),
            url.into(),
        ];
        Input::command("yt-dlp", args)
    }

    /// Audio of the application's own.
    pub fn source(source: impl Source + 'static) -> Self {
        Input::new(Kind::Source(Some(Box::new(source))))
    }

    /// The bytes are raw PCM in `format` (no probing).
    pub fn raw_pcm(mut self, format: PcmFormat) -> Self {
        self.pcm = Some(format);
        self
    }

    /// A file extension ("mp3", "flac", ...) to hint the probe for inputs that have no name.
    pub fn with_extension_hint(mut self, extension: impl Into<String>) -> Self {
        self.extension = Some(extension.into());
        self
    }

    /// What this input is, for logs.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::File(p) => p.display().to_string(),
            Kind::Bytes(b) => format!("{} bytes in memory", b.len()),
            Kind::Reader(_) => "a reader".to_owned(),
            Kind::Command { program, args } => {
                let mut line = program.to_string_lossy().into_owned();
                for a in args {
                    line.push(' ');
                    line.push_str(&a.to_string_lossy());
                }
                line
            }
            Kind::Source(_) => "an application source".to_owned(),
        }
    }

    /// Opens the input (blocking: reads its first bytes, starts its process). Called by the
    /// player when the track starts; again for each loop.
    pub fn open(&mut self) -> Result<Box<dyn Source>, AudioError> {
        let extension = self.extension.clone();
        let pcm = self.pcm;
        match &mut self.kind {
            Kind::File(path) => {
                let file = std::fs::File::open(&*path)
                    .map_err(|e| AudioError::io(path.display().to_string(), e))?;
                let io = SeekBuf::seekable(Box::new(file))
                    .map_err(|e| AudioError::io(path.display().to_string(), e))?;
                open_stream(io, extension.as_deref(), pcm)
            }
            Kind::Bytes(bytes) => {
                let cursor = std::io::Cursor::new(SharedBytes(Arc::clone(bytes)));
                let io =
                    SeekBuf::seekable(Box::new(cursor)).map_err(|e| AudioError::io("bytes", e))?;
                open_stream(io, extension.as_deref(), pcm)
            }
            Kind::Reader(reader) => {
                let reader = reader.take().ok_or(AudioError::NotReopenable)?;
                open_stream(SeekBuf::stream(reader), extension.as_deref(), pcm)
            }
            Kind::Command { program, args } => {
                let (reader, exit) = process::spawn(program, args)?;
                let name = program.to_string_lossy().into_owned();
                let mut io = SeekBuf::stream(Box::new(reader));
                let mut first = [0u8; 1];
                let got = io
                    .peek(&mut first)
                    .map_err(|e| AudioError::io(name.clone(), e))?;
                if got == 0 {
                    return Err(process::exit_error(&exit).unwrap_or_else(|| {
                        AudioError::truncated("process output", format!("{name} wrote nothing"))
                    }));
                }
                let inner = match open_stream(io, extension.as_deref(), pcm) {
                    Ok(inner) => inner,
                    Err(e) => return Err(process::exit_error(&exit).unwrap_or(e)),
                };
                Ok(Box::new(ProcessSource {
                    inner,
                    exit,
                    program: name,
                }))
            }
            Kind::Source(source) => source.take().ok_or(AudioError::NotReopenable),
        }
    }
}

/// `Arc<[u8]>` as `AsRef<[u8]>` for a cursor.
struct SharedBytes(Arc<[u8]>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Probes `io` by content and opens the matching source.
pub(crate) fn open_stream(
    mut io: SeekBuf,
    extension: Option<&str>,
    pcm: Option<PcmFormat>,
) -> Result<Box<dyn Source>, AudioError> {
    if let Some(format) = pcm {
        io.set_retain(false);
        return Ok(Box::new(PcmStream::new(PcmReader::new(io, format)?)));
    }
    let mut head = [0u8; 512];
    let n = io
        .peek(&mut head)
        .map_err(|e| AudioError::io("the input", e))?;
    let head = &head[..n];
    if head.is_empty() {
        return Err(AudioError::truncated("input", "it is empty"));
    }
    if looks_like_ogg_opus(head) {
        let reader = OggOpusReader::open(io)?;
        return Ok(Box::new(OpusStream::new(reader, "Ogg Opus")));
    }
    if head.starts_with(&EBML_MAGIC) {
        // WebM from a pipe keeps every byte (the demuxer seeks); a file streams.
        let seekable = io.is_seekable();
        match webm::probe(io)? {
            Probed::Opus(reader) => {
                return Ok(Box::new(OpusStream::new(reader, "WebM/Matroska Opus")));
            }
            Probed::OtherCodec(codec) if !seekable => {
                return Err(AudioError::unsupported(
                    "WebM/Matroska",
                    format!("{codec} from a pipe (only Opus plays from a pipe)"),
                ));
            }
            Probed::OtherCodec(_) => {
                // Re-read from the start by symphonia (seekable, so it can be reopened).
                return Err(AudioError::unsupported(
                    "WebM/Matroska",
                    "a codec other than Opus (convert it with ffmpeg: Input::ffmpeg)",
                ));
            }
        }
    }
    io.set_retain(false);
    let source = SymphoniaSource::open(io, extension).map_err(|e| match e {
        AudioError::UnknownFormat { .. } => AudioError::UnknownFormat {
            detail: format!("starts with {}", hex_prefix(head)),
        },
        other => other,
    })?;
    Ok(Box::new(PcmStream::new(source)))
}

fn hex_prefix(head: &[u8]) -> String {
    let printable: String = head
        .iter()
        .take(12)
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect();
    let hex: Vec<String> = head.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{} ({printable:?})", hex.join(" "))
}
