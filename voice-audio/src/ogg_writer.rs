//! A streaming Ogg Opus writer (RFC 3533, RFC 7845): `OpusHead` and `OpusTags`, then the packets
//! as they come, a page per second or so, the last page marked end of stream. For recordings of
//! received audio, where packets arrive one by one and the length is not known in advance.

use std::io::Write;

use crate::ogg::write::page;

/// Packets per page at most (one second of 20 ms frames).
const PACKETS_PER_PAGE: usize = 50;
/// Lacing values a page holds at most (RFC 3533).
const MAX_SEGMENTS: usize = 255;
const BEGINNING_OF_STREAM: u8 = 2;
const END_OF_STREAM: u8 = 4;

/// Writes one Ogg Opus logical stream (48 kHz, `channels` in `OpusHead`) packet by packet.
///
/// ```
/// let mut writer = voice_audio::OggOpusWriter::new(Vec::new(), 2, 7)?;
/// writer.write_packet(&[0xF8, 0xFF, 0xFE], 960)?;
/// let file = writer.finish()?;
/// assert!(file.starts_with(b"OggS"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct OggOpusWriter<W: Write> {
    out: W,
    serial: u32,
    sequence: u32,
    /// Granule position (48 kHz samples) after the packets written so far.
    granule: u64,
    pending: Vec<Vec<u8>>,
    segments: usize,
    packets: u64,
    page: Vec<u8>,
}

impl<W: Write> OggOpusWriter<W> {
    /// Writes the two header pages (`OpusHead`: version 1, `channels`, pre-skip 0, 48 kHz,
    /// mapping family 0; `OpusTags` with vendor `voice-audio`) to `out`. `serial` names the
    /// logical stream.
    pub fn new(out: W, channels: u8, serial: u32) -> std::io::Result<Self> {
        let mut writer = Self {
            out,
            serial,
            sequence: 0,
            granule: 0,
            pending: Vec::new(),
            segments: 0,
            packets: 0,
            page: Vec::new(),
        };
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, channels.clamp(1, 2)]);
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        writer.write_page(BEGINNING_OF_STREAM, 0, &[&head])?;
        let vendor = b"voice-audio";
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        writer.write_page(0, 0, &[&tags])?;
        Ok(writer)
    }

    /// Appends one Opus packet lasting `samples` samples at 48 kHz (960 for 20 ms).
    pub fn write_packet(&mut self, packet: &[u8], samples: u32) -> std::io::Result<()> {
        let segments = packet.len() / 255 + 1;
        if self.segments + segments > MAX_SEGMENTS || self.pending.len() >= PACKETS_PER_PAGE {
            self.flush_page(0)?;
        }
        self.granule += u64::from(samples);
        self.segments += segments;
        self.packets += 1;
        self.pending.push(packet.to_vec());
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Writes what is pending as the last page (marked end of stream) and gives the output back.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_page(END_OF_STREAM)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn flush_page(&mut self, flags: u8) -> std::io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let packets: Vec<&[u8]> = pending.iter().map(Vec::as_slice).collect();
        self.write_page(flags, self.granule, &packets)?;
        self.segments = 0;
        Ok(())
    }

    fn write_page(&mut self, flags: u8, granule: u64, packets: &[&[u8]]) -> std::io::Result<()> {
        self.page.clear();
        page(
            &mut self.page,
            self.serial,
            self.sequence,
            flags,
            granule,
            packets,
        );
        self.sequence += 1;
        self.out.write_all(&self.page)
    }
}
