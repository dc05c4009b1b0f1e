//! Ogg Opus demuxing (RFC 3533, RFC 7845) without allocation per packet: pages are checked
//! (capture pattern, version, CRC) and packets assembled in reused buffers. Seeking bisects
//! the file by granule position, then skips whole packets up to the target.

use std::io::{Seek, SeekFrom};
use std::time::Duration;

use crate::error::AudioError;
use crate::seekbuf::{read_full, SeekBuf};
use crate::source::PacketSource;

const FORMAT: &str = "Ogg Opus";

/// CRC-32 of Ogg pages: polynomial 0x04C11DB7, not reflected, initial value 0.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

pub(crate) fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(crc, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

/// The fixed part of a page header.
#[derive(Debug, Clone, Copy)]
struct PageHeader {
    flags: u8,
    granule: i64,
    serial: u32,
    segments: usize,
}

const CONTINUED: u8 = 1;
const END_OF_STREAM: u8 = 4;

/// The `OpusHead` fields a player needs (RFC 7845 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpusHead {
    pub(crate) channels: u8,
    pub(crate) pre_skip: u16,
}

impl OpusHead {
    /// Parses an `OpusHead` packet (Ogg) or a Matroska `CodecPrivate`.
    pub(crate) fn parse(format: &'static str, data: &[u8]) -> Result<Self, AudioError> {
        if data.len() < 19 || !data.starts_with(b"OpusHead") {
            return Err(AudioError::corrupt(format, "no OpusHead header"));
        }
        if data[8] & 0xF0 != 0 {
            return Err(AudioError::unsupported(
                format,
                format!("OpusHead version {}", data[8]),
            ));
        }
        let channels = data[9];
        let pre_skip = u16::from_le_bytes([data[10], data[11]]);
        let family = data[18];
        if family != 0 || !(1..=2).contains(&channels) {
            return Err(AudioError::unsupported(
                format,
                format!(
                    "{channels} channels (mapping family {family}); only mono and stereo Opus \
                     play as passthrough"
                ),
            ));
        }
        Ok(OpusHead { channels, pre_skip })
    }
}

/// Reads the Opus packets of the first logical stream of an Ogg file or pipe.
#[derive(Debug)]
pub(crate) struct OggOpusReader {
    io: SeekBuf,
    serial: u32,
    head: OpusHead,
    /// Byte offset of the first page after the headers.
    data_start: u64,
    /// The current page's lacing values and body.
    lacing: [u8; 255],
    segments: usize,
    segment: usize,
    body: Vec<u8>,
    body_pos: usize,
    /// The current page continues a packet whose start was not read (after a seek).
    skip_continued: bool,
    page_flags: u8,
    packet: Vec<u8>,
    /// `packet` is to be returned again (the seek target's packet).
    replay: bool,
    ended: bool,
    duration: Option<Duration>,
}

impl OggOpusReader {
    /// Opens the stream: reads `OpusHead` and `OpusTags`; measures the duration when the input
    /// can seek.
    pub(crate) fn open(io: SeekBuf) -> Result<Self, AudioError> {
        let mut reader = OggOpusReader {
            io,
            serial: 0,
            head: OpusHead {
                channels: 2,
                pre_skip: 0,
            },
            data_start: 0,
            lacing: [0; 255],
            segments: 0,
            segment: 0,
            body: Vec::with_capacity(65_536),
            body_pos: 0,
            skip_continued: false,
            page_flags: 0,
            packet: Vec::with_capacity(4096),
            replay: false,
            ended: false,
            duration: None,
        };
        let Some(first) = reader.read_page(false)? else {
            return Err(AudioError::truncated(FORMAT, "no page"));
        };
        reader.serial = first.serial;
        reader.start_page(first);
        let head = match reader.next_raw_packet()? {
            Some(p) => OpusHead::parse(FORMAT, p)?,
            None => return Err(AudioError::truncated(FORMAT, "no OpusHead packet")),
        };
        reader.head = head;
        match reader.next_raw_packet()? {
            Some(p) if p.starts_with(b"OpusTags") => {}
            Some(_) => return Err(AudioError::corrupt(FORMAT, "no OpusTags packet")),
            None => return Err(AudioError::truncated(FORMAT, "no OpusTags packet")),
        }
        reader.data_start = reader.io.position();
        if reader.segment < reader.segments {
            // Audio starts on the tags' page (not allowed by RFC 7845 but seen); no seeking to
            // the start by offset then, the page is re-read from its beginning.
            reader.data_start = 0;
        }
        reader.io.set_retain(false);
        if reader.io.is_seekable() && reader.data_start > 0 {
            reader.duration = reader.measure_duration()?;
        }
        Ok(reader)
    }

    /// Reads the next page of our stream (or any stream, for the first page). `Ok(None)` at
    /// a clean end of the input.
    fn read_page(&mut self, ours_only: bool) -> Result<Option<PageHeader>, AudioError> {
        loop {
            let mut header = [0u8; 27];
            let n = read_full(&mut self.io, &mut header).map_err(|e| AudioError::io(FORMAT, e))?;
            if n == 0 {
                return Ok(None);
            }
            if n < 27 {
                return Err(AudioError::truncated(FORMAT, "in a page header"));
            }
            if &header[..4] != b"OggS" || header[4] != 0 {
                return Err(AudioError::corrupt(
                    FORMAT,
                    format!("no Ogg page at byte {}", self.io.position() - 27),
                ));
            }
            let page = parse_header(&header);
            let mut lacing = [0u8; 255];
            let lacing = &mut lacing[..page.segments];
            if read_full(&mut self.io, lacing).map_err(|e| AudioError::io(FORMAT, e))?
                < lacing.len()
            {
                return Err(AudioError::truncated(FORMAT, "in a segment table"));
            }
            let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
            self.body.resize(body_len, 0);
            if read_full(&mut self.io, &mut self.body).map_err(|e| AudioError::io(FORMAT, e))?
                < body_len
            {
                return Err(AudioError::truncated(FORMAT, "in a page body"));
            }
            let expected = u32::from_le_bytes([header[22], header[23], header[24], header[25]]);
            let mut zeroed = header;
            zeroed[22..26].fill(0);
            let crc = crc32(crc32(crc32(0, &zeroed), lacing), &self.body);
            if crc != expected {
                return Err(AudioError::corrupt(
                    FORMAT,
                    format!("page CRC mismatch at byte {}", self.io.position()),
                ));
            }
            self.lacing[..page.segments].copy_from_slice(lacing);
            if ours_only && page.serial != self.serial {
                continue;
            }
            return Ok(Some(page));
        }
    }

    fn start_page(&mut self, page: PageHeader) {
        self.segments = page.segments;
        self.segment = 0;
        self.body_pos = 0;
        self.page_flags = page.flags;
    }

    /// The next packet, headers included.
    fn next_raw_packet(&mut self) -> Result<Option<&[u8]>, AudioError> {
        self.packet.clear();
        let mut in_packet = false;
        loop {
            if self.segment >= self.segments {
                if self.ended || (!in_packet && self.page_flags & END_OF_STREAM != 0) {
                    self.ended = true;
                    return Ok(None);
                }
                let Some(page) = self.read_page(true)? else {
                    if in_packet {
                        return Err(AudioError::truncated(FORMAT, "in a packet"));
                    }
                    self.ended = true;
                    return Ok(None);
                };
                let continued = page.flags & CONTINUED != 0;
                if in_packet && !continued {
                    return Err(AudioError::corrupt(FORMAT, "a packet is cut by a page"));
                }
                self.start_page(page);
                if !in_packet && continued {
                    if !self.skip_continued {
                        return Err(AudioError::corrupt(
                            FORMAT,
                            "a page continues a packet that never began",
                        ));
                    }
                    // After a seek: skip the tail of a packet whose start was not read.
                    while self.segment < self.segments {
                        let l = self.lacing[self.segment];
                        self.segment += 1;
                        self.body_pos += usize::from(l);
                        if l < 255 {
                            break;
                        }
                    }
                }
                self.skip_continued = false;
                continue;
            }
            let l = usize::from(self.lacing[self.segment]);
            self.segment += 1;
            let bytes = self
                .body
                .get(self.body_pos..self.body_pos + l)
                .ok_or_else(|| AudioError::corrupt(FORMAT, "segment past the page body"))?;
            self.packet.extend_from_slice(bytes);
            self.body_pos += l;
            in_packet = true;
            if l < 255 {
                return Ok(Some(&self.packet));
            }
        }
    }

    /// Reads the last page's granule position: the stream's end.
    fn measure_duration(&mut self) -> Result<Option<Duration>, AudioError> {
        let Some(len) = self.io.len() else {
            return Ok(None);
        };
        let resume = self.io.position();
        let from = len.saturating_sub(128 * 1024).max(self.data_start);
        let last = self.scan_granules(from, len, i64::MAX)?;
        self.io
            .seek(SeekFrom::Start(resume))
            .map_err(|e| AudioError::io(FORMAT, e))?;
        Ok(last.map(|(_, granule)| self.granule_to_time(granule)))
    }

    fn granule_to_time(&self, granule: i64) -> Duration {
        let samples = granule.saturating_sub(i64::from(self.head.pre_skip)).max(0);
        Duration::from_nanos((samples as u64).saturating_mul(1_000_000_000) / 48_000)
    }

    /// Scans pages from byte `from` (resynchronising on the capture pattern, checking CRCs) up
    /// to `until`; returns the offset just after, and the granule of, the last page of our
    /// stream whose granule is at most `limit`.
    fn scan_granules(
        &mut self,
        from: u64,
        until: u64,
        limit: i64,
    ) -> Result<Option<(u64, i64)>, AudioError> {
        self.io
            .seek(SeekFrom::Start(from))
            .map_err(|e| AudioError::io(FORMAT, e))?;
        let mut best = None;
        let mut window = [0u8; 4];
        let mut at = from;
        while at + 27 <= until {
            self.io
                .seek(SeekFrom::Start(at))
                .map_err(|e| AudioError::io(FORMAT, e))?;
            if read_full(&mut self.io, &mut window).map_err(|e| AudioError::io(FORMAT, e))? < 4 {
                break;
            }
            if &window != b"OggS" {
                at += 1;
                continue;
            }
            self.io
                .seek(SeekFrom::Start(at))
                .map_err(|e| AudioError::io(FORMAT, e))?;
            match self.read_page(false) {
                Ok(Some(page)) => {
                    let end = self.io.position();
                    if page.serial == self.serial && page.granule >= 0 {
                        if page.granule > limit {
                            break;
                        }
                        best = Some((end, page.granule));
                    }
                    at = end;
                }
                Ok(None) => break,
                Err(_) => at += 1,
            }
        }
        Ok(best)
    }
}

fn parse_header(h: &[u8; 27]) -> PageHeader {
    let mut granule = [0u8; 8];
    granule.copy_from_slice(&h[6..14]);
    PageHeader {
        flags: h[5],
        granule: i64::from_le_bytes(granule),
        serial: u32::from_le_bytes([h[14], h[15], h[16], h[17]]),
        segments: usize::from(h[26]),
    }
}

impl PacketSource for OggOpusReader {
    fn next_packet(&mut self) -> Result<Option<&[u8]>, AudioError> {
        if self.replay {
            self.replay = false;
            return Ok(Some(&self.packet));
        }
        self.next_raw_packet()
    }

    fn seek(&mut self, to: Duration) -> Result<Duration, AudioError> {
        if !self.io.is_seekable() || self.data_start == 0 {
            return Err(AudioError::NotSeekable);
        }
        let target = i64::try_from(to.as_nanos() * 48 / 1_000_000)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::from(self.head.pre_skip));
        let len = self.io.len().unwrap_or(0);
        // Bisection on byte offsets, then a linear scan of the last stretch.
        let (mut lo, mut hi) = (self.data_start, len);
        while hi.saturating_sub(lo) > 256 * 1024 {
            let mid = lo + (hi - lo) / 2;
            match self.scan_granules(mid, (mid + 128 * 1024).min(hi), target)? {
                Some(_) => lo = mid,
                None => hi = mid,
            }
        }
        let found = self.scan_granules(lo, len, target)?;
        let (offset, granule) = found.unwrap_or((self.data_start, i64::from(self.head.pre_skip)));
        self.io
            .seek(SeekFrom::Start(offset))
            .map_err(|e| AudioError::io(FORMAT, e))?;
        self.segments = 0;
        self.segment = 0;
        self.page_flags = 0;
        self.ended = false;
        self.skip_continued = offset != self.data_start;
        // Whole packets up to the target; the one that reaches past it is played first.
        // (A packet that began on the page before `offset` and continues past it is skipped
        // with its position unknown: the position may then be early by that packet.)
        let mut position = granule;
        self.replay = false;
        while let Some(packet) = self.next_raw_packet()? {
            let samples =
                crate::opus_packet::OpusPacket::parse(packet).map_or(0, |p| i64::from(p.samples()));
            if position + samples > target {
                self.replay = true;
                break;
            }
            position += samples;
        }
        Ok(self.granule_to_time(position))
    }

    fn duration(&self) -> Option<Duration> {
        self.duration
    }

    fn channels(&self) -> u8 {
        self.head.channels
    }
}

/// Writes Ogg Opus pages: used by tests, benchmarks and fixture generation.
pub mod write {
    use super::crc32;

    /// Builds an Ogg Opus stream (stereo, pre-skip `pre_skip`) of `packets`, each lasting
    /// `samples[i]` samples at 48 kHz, `per_page` packets per page.
    pub fn ogg_opus(
        packets: &[Vec<u8>],
        samples: &[u32],
        per_page: usize,
        pre_skip: u16,
    ) -> Vec<u8> {
        let serial = 0x000A_0D10_u32;
        let mut out = Vec::new();
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2]);
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        page(&mut out, serial, 0, 2, 0, &[&head]);
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&4u32.to_le_bytes());
        tags.extend_from_slice(b"test");
        tags.extend_from_slice(&0u32.to_le_bytes());
        page(&mut out, serial, 1, 0, 0, &[&tags]);
        let mut granule = u64::from(pre_skip);
        let chunks: Vec<&[Vec<u8>]> = packets.chunks(per_page.max(1)).collect();
        let mut index = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            for _ in chunk.iter() {
                granule += u64::from(samples.get(index).copied().unwrap_or(960));
                index += 1;
            }
            let flags = if i + 1 == chunks.len() { 4 } else { 0 };
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            page(&mut out, serial, i as u32 + 2, flags, granule, &refs);
        }
        out
    }

    /// Appends one page holding whole `packets`.
    pub fn page(
        out: &mut Vec<u8>,
        serial: u32,
        sequence: u32,
        flags: u8,
        granule: u64,
        packets: &[&[u8]],
    ) {
        let mut lacing = Vec::new();
        for p in packets {
            lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
            lacing.push((p.len() % 255) as u8);
        }
        let start = out.len();
        out.extend_from_slice(b"OggS");
        out.push(0);
        out.push(flags);
        out.extend_from_slice(&granule.to_le_bytes());
        out.extend_from_slice(&serial.to_le_bytes());
        out.extend_from_slice(&sequence.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(lacing.len() as u8);
        out.extend_from_slice(&lacing);
        for p in packets {
            out.extend_from_slice(p);
        }
        let crc = crc32(0, &out[start..]);
        out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Whether `head` (the first bytes of an input) is an Ogg stream whose first packet is
/// `OpusHead`.
pub(crate) fn looks_like_ogg_opus(head: &[u8]) -> bool {
    if head.len() < 27 || &head[..4] != b"OggS" {
        return false;
    }
    let segments = usize::from(head[26]);
    head.get(27 + segments..)
        .is_some_and(|body| body.starts_with(b"OpusHead"))
}

/// Reads all packets (for tests).
#[cfg(test)]
pub(crate) fn read_all(bytes: Vec<u8>) -> Result<Vec<Vec<u8>>, AudioError> {
    let io = SeekBuf::seekable(Box::new(std::io::Cursor::new(bytes)))
        .map_err(|e| AudioError::io("test", e))?;
    let mut r = OggOpusReader::open(io)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet()? {
        out.push(p.to_vec());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut p = vec![0xFC];
                p.extend((0..(50 + i * 7 % 400)).map(|j| (i + j) as u8));
                p
            })
            .collect()
    }

    #[test]
    fn reads_packets_byte_exact_including_multi_page_ones() {
        let mut ps = packets(120);
        ps[7] = vec![0xFC; 1000]; // spans several lacing values
        let bytes = write::ogg_opus(&ps, &[], 50, 312);
        assert_eq!(read_all(bytes).unwrap(), ps);
    }

    #[test]
    fn matches_the_ogg_crate_on_the_bundled_sample() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../voice-sim/assets/sample.ogg"
        );
        let bytes = std::fs::read(path).unwrap();
        let mut theirs = ogg::PacketReader::new(std::io::Cursor::new(bytes.clone()));
        let mut expected = Vec::new();
        while let Some(p) = theirs.read_packet().unwrap() {
            expected.push(p.data);
        }
        let ours = read_all(bytes).unwrap();
        assert_eq!(ours, expected[2..]);
    }

    #[test]
    fn duration_and_seek() {
        let ps = packets(500); // 10 s
        let bytes = write::ogg_opus(&ps, &[], 10, 312);
        let io = SeekBuf::seekable(Box::new(std::io::Cursor::new(bytes))).unwrap();
        let mut r = OggOpusReader::open(io).unwrap();
        assert_eq!(r.duration(), Some(Duration::from_secs(10)));
        for (to, index) in [
            (3_000, 150),
            (0, 0),
            (9_990, 499),
            (4_010, 200),
            (7_777, 388),
        ] {
            let at = r.seek(Duration::from_millis(to)).unwrap();
            assert_eq!(
                at,
                Duration::from_millis(index as u64 * 20),
                "seek to {to} ms"
            );
            assert_eq!(
                r.next_packet().unwrap().unwrap(),
                &ps[index][..],
                "seek to {to} ms"
            );
        }
        let at = r.seek(Duration::from_secs(60)).unwrap();
        assert_eq!(at, Duration::from_secs(10));
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn corrupt_and_truncated_inputs_are_typed_errors() {
        let bytes = write::ogg_opus(&packets(100), &[], 10, 312);
        // A flipped byte in an audio page: CRC mismatch.
        let mut flipped = bytes.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x55;
        assert!(matches!(read_all(flipped), Err(AudioError::Corrupt { .. })));
        // Cut in the middle of a page.
        let cut = bytes[..bytes.len() - 100].to_vec();
        assert!(matches!(read_all(cut), Err(AudioError::Truncated { .. })));
        // Every prefix and a few corruptions: errors or fewer packets, never a panic.
        for len in (0..bytes.len()).step_by(37) {
            let _ = read_all(bytes[..len].to_vec());
        }
        for i in (0..bytes.len()).step_by(53) {
            let mut b = bytes.clone();
            b[i] = b[i].wrapping_add(1);
            let _ = read_all(b);
        }
        // Not Opus: a Vorbis-like first packet.
        let mut other = Vec::new();
        write::page(&mut other, 1, 0, 2, 0, &[b"\x01vorbis-not-opus-header"]);
        assert!(read_all(other).is_err());
    }
}
