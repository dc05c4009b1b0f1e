//! A buffered byte source with cheap seeks: the window it holds is seekable in memory, a
//! seekable inner reader (a file) seeks outside it, and a pipe can replay what it retained (for
//! probing by content, and for demuxers that jump around).

use std::io::{self, Read, Seek, SeekFrom};

/// A reader that can also seek (files, in-memory cursors).
pub trait ReadSeek: Read + Seek + Send + Sync {}
impl<T: Read + Seek + Send + Sync> ReadSeek for T {}

enum Inner {
    Seekable(Box<dyn ReadSeek>),
    Stream(Box<dyn Read + Send + Sync>),
}

/// Bytes read from the inner source, kept in a window of at least `WINDOW` bytes.
const WINDOW: usize = 64 * 1024;

/// See the module docs.
pub(crate) struct SeekBuf {
    inner: Inner,
    buf: Vec<u8>,
    /// Absolute offset of `buf[0]`.
    start: u64,
    /// Cursor in `buf`.
    pos: usize,
    /// Keep every byte read (a pipe that may be rewound).
    retain: bool,
    len: Option<u64>,
    eof: bool,
}

impl std::fmt::Debug for SeekBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeekBuf")
            .field("start", &self.start)
            .field("pos", &self.pos)
            .field("buffered", &self.buf.len())
            .field("retain", &self.retain)
            .finish_non_exhaustive()
    }
}

impl SeekBuf {
    /// A seekable source (its length is read once).
    pub(crate) fn seekable(mut inner: Box<dyn ReadSeek>) -> io::Result<Self> {
        let len = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        Ok(Self::new(Inner::Seekable(inner), Some(len), false))
    }

    /// A pipe: what is read is retained until [`set_retain(false)`](Self::set_retain).
    pub(crate) fn stream(inner: Box<dyn Read + Send + Sync>) -> Self {
        Self::new(Inner::Stream(inner), None, true)
    }

    fn new(inner: Inner, len: Option<u64>, retain: bool) -> Self {
        SeekBuf {
            inner,
            buf: Vec::with_capacity(2 * WINDOW),
            start: 0,
            pos: 0,
            retain,
            len,
            eof: false,
        }
    }

    /// Whether seeks outside the retained bytes are possible.
    pub(crate) fn is_seekable(&self) -> bool {
        matches!(self.inner, Inner::Seekable(_))
    }

    /// The total length, when known.
    pub(crate) fn len(&self) -> Option<u64> {
        self.len
    }

    /// Keep (or stop keeping) every byte of a pipe.
    pub(crate) fn set_retain(&mut self, retain: bool) {
        self.retain = retain;
    }

    /// The absolute position of the cursor.
    pub(crate) fn position(&self) -> u64 {
        self.start + self.pos as u64
    }

    /// Reads more bytes into the window; returns how many (0 at the end).
    fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if !self.retain && self.pos >= WINDOW {
            // Drop what was consumed, keeping the window's capacity (no allocation).
            self.buf.drain(..self.pos);
            self.start += self.pos as u64;
            self.pos = 0;
        }
        let old = self.buf.len();
        let want = WINDOW
            .min(self.buf.capacity().saturating_sub(old))
            .max(4096);
        self.buf.resize(old + want, 0);
        let read = loop {
            let target = &mut self.buf[old..];
            let result = match &mut self.inner {
                Inner::Seekable(r) => r.read(target),
                Inner::Stream(r) => r.read(target),
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match read {
            Ok(n) => {
                self.buf.truncate(old + n);
                if n == 0 {
                    self.eof = true;
                }
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(e)
            }
        }
    }

    /// Reads up to `out.len()` bytes at the cursor without advancing it; returns how many (less
    /// only at the end).
    pub(crate) fn peek(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let at = self.position();
        let n = read_full(self, out)?;
        self.seek(SeekFrom::Start(at))?;
        Ok(n)
    }
}

/// Reads until `out` is full or the source ends; returns the bytes read.
pub(crate) fn read_full(reader: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < out.len() {
        match reader.read(&mut out[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Read for SeekBuf {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.buf.len() && self.fill()? == 0 {
            return Ok(0);
        }
        let available = &self.buf[self.pos..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Seek for SeekBuf {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.position().checked_add_signed(d),
            SeekFrom::End(d) => match self.len {
                Some(len) => len.checked_add_signed(d),
                None if self.retain => {
                    // A retained pipe: read it to its end to know where that is (a demuxer
                    // that seeks from the end, as Matroska's does, gets the whole stream in
                    // memory).
                    let at = self.pos;
                    self.pos = self.buf.len();
                    while self.fill()? > 0 {
                        self.pos = self.buf.len();
                    }
                    self.pos = at;
                    let len = self.start + self.buf.len() as u64;
                    self.len = Some(len);
                    len.checked_add_signed(d)
                }
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "cannot seek from the end of a pipe",
                    ))
                }
            },
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        let end = self.start + self.buf.len() as u64;
        if target >= self.start && target <= end {
            self.pos = (target - self.start) as usize;
            return Ok(target);
        }
        match &mut self.inner {
            Inner::Seekable(r) => {
                r.seek(SeekFrom::Start(target))?;
                self.buf.clear();
                self.start = target;
                self.pos = 0;
                self.eof = false;
                Ok(target)
            }
            Inner::Stream(_) if target > end => {
                // Forward in a pipe: read up to it.
                self.pos = self.buf.len();
                while self.position() < target {
                    if self.fill()? == 0 {
                        break;
                    }
                    let step = (target - self.start) as usize;
                    self.pos = step.min(self.buf.len());
                }
                Ok(self.position())
            }
            Inner::Stream(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "cannot seek back in a pipe past what was retained",
            )),
        }
    }
}

impl symphonia::core::io::MediaSource for SeekBuf {
    fn is_seekable(&self) -> bool {
        self.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn seekable_reads_and_seeks_anywhere() {
        let bytes = data(300_000);
        let mut b = SeekBuf::seekable(Box::new(io::Cursor::new(bytes.clone()))).unwrap();
        assert_eq!(b.len(), Some(300_000));
        let mut out = vec![0; 100_000];
        assert_eq!(read_full(&mut b, &mut out).unwrap(), 100_000);
        assert_eq!(out, bytes[..100_000]);
        b.seek(SeekFrom::Start(250_000)).unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, bytes[250_000..]);
        b.seek(SeekFrom::Start(10)).unwrap();
        let mut four = [0; 4];
        assert_eq!(b.peek(&mut four).unwrap(), 4);
        assert_eq!(b.position(), 10);
        assert_eq!(four, bytes[10..14]);
    }

    #[test]
    fn a_pipe_rewinds_what_it_retained_and_streams_after() {
        let bytes = data(500_000);
        let mut b = SeekBuf::stream(Box::new(io::Cursor::new(bytes.clone())));
        let mut head = [0; 1000];
        read_full(&mut b, &mut head).unwrap();
        b.seek(SeekFrom::Start(0)).unwrap();
        b.set_retain(false);
        b.seek(SeekFrom::Start(200_000)).unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, bytes[200_000..]);
        assert!(b.seek(SeekFrom::Start(0)).is_err());
        assert!(b.seek(SeekFrom::End(0)).is_err());
        // While retaining, the end is found by reading everything.
        let mut b = SeekBuf::stream(Box::new(io::Cursor::new(bytes.clone())));
        assert_eq!(b.seek(SeekFrom::End(-10)).unwrap(), 499_990);
        b.seek(SeekFrom::Start(5)).unwrap();
        let mut five = [0; 5];
        read_full(&mut b, &mut five).unwrap();
        assert_eq!(five, bytes[5..10]);
    }
}
