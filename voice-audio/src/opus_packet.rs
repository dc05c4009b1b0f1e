//! Opus packets (RFC 6716 §3): the TOC byte, the four framing codes, and repacketization of
//! any stream of packets into the 20 ms packets a Discord voice connection carries.
//!
//! A packet holds one or more frames of one configuration (§3.1): 2.5, 5, 10 or 20 ms for
//! CELT, 10 or 20 ms for Hybrid, 10, 20, 40 or 60 ms for SILK. Discord's RTP timestamps step by
//! 960 samples (20 ms) per packet, so a packet must last exactly 20 ms. [`Reframer`] turns:
//!
//! - a packet of several 20 ms frames (code 1, 2 or 3: a 40 or 60 ms packet made of 20 ms
//!   frames) into one single-frame (code 0) packet per frame, the frame bytes unchanged;
//! - shorter frames (2.5, 5, 10 ms), from one packet or across packets, into packets of exactly
//!   20 ms (code 1, 2 or 3 with the frames unchanged);
//! - and refuses what cannot be split without decoding: a single 40 or 60 ms SILK frame, a
//!   configuration change inside a 20 ms group, a 20 ms frame after an unfinished group, or a
//!   result above the 1275 bytes a voice packet may carry. The caller then decodes and
//!   re-encodes ([`crate::Input`]'s passthrough sources do that by themselves).

/// Samples per channel in 20 ms at 48 kHz: one Discord voice packet.
pub const SAMPLES_PER_PACKET: u32 = 960;

/// The largest Opus frame (RFC 6716 §3.2.1), and the largest packet a Discord voice connection
/// takes (`voice_proto`'s `queue_opus` refuses longer ones).
pub const MAX_PACKET_BYTES: usize = 1275;

/// The most frames one packet can hold: 120 ms of 2.5 ms frames (§3.2.5).
pub const MAX_FRAMES: usize = 48;

/// Why bytes are not a valid Opus packet (the violated rule of RFC 6716 §3.4 in words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// A packet has at least one byte, the TOC (R1).
    #[error("empty Opus packet")]
    Empty,
    /// A frame is longer than 1275 bytes (R2).
    #[error("an Opus frame is {0} bytes, more than 1275")]
    FrameTooLong(usize),
    /// Code 1 splits an odd payload (R3).
    #[error("a code 1 packet's payload ({0} bytes) is odd")]
    OddCode1(usize),
    /// A length byte or a frame runs past the end of the packet (R4, R6, R7).
    #[error("an Opus frame length runs past the end of the packet")]
    Overrun,
    /// Code 3 with no frames, or more than 120 ms of audio (R5).
    #[error("a code 3 packet holds {0} frames, not 1..=48 within 120 ms")]
    BadFrameCount(usize),
    /// A code 3 CBR payload does not split into equal frames (R6).
    #[error("a code 3 CBR payload of {len} bytes does not split into {count} frames")]
    UnevenCbr {
        /// Bytes after the header and padding.
        len: usize,
        /// Frames announced.
        count: usize,
    },
}

/// Samples per channel at 48 kHz of one frame of a packet whose TOC byte is `toc` (§3.1).
pub fn frame_samples(toc: u8) -> u32 {
    let config = toc >> 3;
    let size = usize::from(config & 3);
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][size],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][size & 1],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][size],
    }
}

/// One parsed Opus packet: its TOC byte and where each frame lies. No allocation.
#[derive(Debug, Clone, Copy)]
pub struct OpusPacket<'a> {
    data: &'a [u8],
    toc: u8,
    count: usize,
    /// `(start, end)` of each frame in `data`.
    frames: [(usize, usize); MAX_FRAMES],
}

impl<'a> OpusPacket<'a> {
    /// Parses `data` by RFC 6716 §3.2, checking every rule of §3.4.
    pub fn parse(data: &'a [u8]) -> Result<Self, PacketError> {
        let (&toc, _) = data.split_first().ok_or(PacketError::Empty)?;
        let mut packet = OpusPacket {
            data,
            toc,
            count: 0,
            frames: [(0, 0); MAX_FRAMES],
        };
        let len = data.len();
        match toc & 3 {
            0 => packet.add(1, len)?,
            1 => {
                let payload = len - 1;
                if !payload.is_multiple_of(2) {
                    return Err(PacketError::OddCode1(payload));
                }
                packet.add(1, 1 + payload / 2)?;
                packet.add(1 + payload / 2, len)?;
            }
            2 => {
                let (first, at) = read_length(data, 1)?;
                let end = at.checked_add(first).filter(|&e| e <= len);
                let end = end.ok_or(PacketError::Overrun)?;
                packet.add(at, end)?;
                packet.add(end, len)?;
            }
            _ => packet.parse_code3()?,
        }
        Ok(packet)
    }

    fn parse_code3(&mut self) -> Result<(), PacketError> {
        let data = self.data;
        let &count_byte = data.get(1).ok_or(PacketError::Overrun)?;
        let count = usize::from(count_byte & 0x3F);
        let vbr = count_byte & 0x80 != 0;
        let padded = count_byte & 0x40 != 0;
        let samples = frame_samples(self.toc) as usize * count;
        if count == 0 || samples > 5760 {
            return Err(PacketError::BadFrameCount(count));
        }
        let mut at = 2;
        let mut padding = 0usize;
        if padded {
            loop {
                let &byte = data.get(at).ok_or(PacketError::Overrun)?;
                at += 1;
                if byte == 255 {
                    padding += 254;
                } else {
                    padding += usize::from(byte);
                    break;
                }
            }
        }
        let end = data
            .len()
            .checked_sub(padding)
            .filter(|&e| e >= at)
            .ok_or(PacketError::Overrun)?;
        if vbr {
            let mut lengths = [0usize; MAX_FRAMES];
            for length in lengths.iter_mut().take(count - 1) {
                let (l, next) = read_length(data, at)?;
                *length = l;
                at = next;
            }
            if at > end {
                return Err(PacketError::Overrun);
            }
            for &l in lengths.iter().take(count - 1) {
                let frame_end = at.checked_add(l).filter(|&e| e <= end);
                let frame_end = frame_end.ok_or(PacketError::Overrun)?;
                self.add(at, frame_end)?;
                at = frame_end;
            }
            self.add(at, end)
        } else {
            let payload = end - at;
            if !payload.is_multiple_of(count) {
                return Err(PacketError::UnevenCbr {
                    len: payload,
                    count,
                });
            }
            let each = payload / count;
            for i in 0..count {
                self.add(at + i * each, at + (i + 1) * each)?;
            }
            Ok(())
        }
    }

    fn add(&mut self, start: usize, end: usize) -> Result<(), PacketError> {
        let len = end.checked_sub(start).ok_or(PacketError::Overrun)?;
        if len > MAX_PACKET_BYTES {
            return Err(PacketError::FrameTooLong(len));
        }
        let slot = self
            .frames
            .get_mut(self.count)
            .ok_or(PacketError::BadFrameCount(self.count + 1))?;
        *slot = (start, end);
        self.count += 1;
        Ok(())
    }

    /// The TOC byte.
    pub fn toc(&self) -> u8 {
        self.toc
    }

    /// How many frames the packet holds.
    pub fn frame_count(&self) -> usize {
        self.count
    }

    /// Frame `index`'s bytes (empty for a DTX frame).
    pub fn frame(&self, index: usize) -> Option<&'a [u8]> {
        let &(start, end) = self.frames.get(..self.count)?.get(index)?;
        self.data.get(start..end)
    }

    /// The frames, in order.
    pub fn frames(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.count).filter_map(|i| self.frame(i))
    }

    /// Samples per channel at 48 kHz of each frame.
    pub fn frame_samples(&self) -> u32 {
        frame_samples(self.toc)
    }

    /// Samples per channel at 48 kHz of the whole packet.
    pub fn samples(&self) -> u32 {
        self.frame_samples() * self.count as u32
    }
}

/// Reads a frame length coded in one or two bytes (§3.2.1) at `at`; returns it and the index
/// after it.
fn read_length(data: &[u8], at: usize) -> Result<(usize, usize), PacketError> {
    let &first = data.get(at).ok_or(PacketError::Overrun)?;
    if first < 252 {
        return Ok((usize::from(first), at + 1));
    }
    let &second = data.get(at + 1).ok_or(PacketError::Overrun)?;
    Ok((usize::from(second) * 4 + usize::from(first), at + 2))
}

/// Writes a frame length in one or two bytes (§3.2.1). `len` is at most 1275.
fn write_length(len: usize, out: &mut [u8], at: usize) -> Option<usize> {
    if len < 252 {
        *out.get_mut(at)? = len as u8;
        return Some(at + 1);
    }
    let first = 252 + (len - 252) % 4;
    let second = (len - first) / 4;
    *out.get_mut(at)? = first as u8;
    *out.get_mut(at + 1)? = u8::try_from(second).ok()?;
    Some(at + 2)
}

/// Writes a packet of `frames` (all of configuration `toc`; its code bits are ignored) into
/// `out` with the smallest framing: code 0 for one frame, code 1 for two equal frames, code 2
/// for two unequal ones, code 3 (CBR when all are equal, VBR otherwise, never padded) for more.
/// Returns the packet's length, or `None` when it does not fit in `out`.
pub fn write_packet(toc: u8, frames: &[&[u8]], out: &mut [u8]) -> Option<usize> {
    let config = toc & !3;
    let mut at;
    match frames {
        [] => return None,
        [one] => {
            *out.first_mut()? = config;
            at = 1;
            let _ = one;
        }
        [a, b] if a.len() == b.len() => {
            *out.first_mut()? = config | 1;
            at = 1;
        }
        [a, _] => {
            *out.first_mut()? = config | 2;
            at = write_length(a.len(), out, 1)?;
        }
        _ => {
            let count = u8::try_from(frames.len()).ok().filter(|&c| c <= 48)?;
            let cbr = frames.iter().all(|f| f.len() == frames[0].len());
            *out.first_mut()? = config | 3;
            *out.get_mut(1)? = count | if cbr { 0 } else { 0x80 };
            at = 2;
            if !cbr {
                for frame in &frames[..frames.len() - 1] {
                    at = write_length(frame.len(), out, at)?;
                }
            }
        }
    }
    for frame in frames {
        let end = at.checked_add(frame.len())?;
        out.get_mut(at..end)?.copy_from_slice(frame);
        at = end;
    }
    Some(at)
}

/// Why [`Reframer::push`] cannot pass a packet through as 20 ms packets. Nothing was consumed;
/// the caller decodes it (and [`Reframer::take_partial`]) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReframeError {
    /// The bytes are not an Opus packet.
    #[error(transparent)]
    Malformed(#[from] PacketError),
    /// A single frame lasts 40 or 60 ms (SILK): it cannot be split without decoding.
    #[error("a {0} ms Opus frame cannot be split into 20 ms packets without re-encoding")]
    FrameLongerThan20Ms(u32),
    /// Frames shorter than 20 ms change configuration (or duration) before adding up to 20 ms,
    /// or a 20 ms frame follows an unfinished group.
    #[error("Opus frames shorter than 20 ms do not add up to 20 ms packets of one configuration")]
    Unaligned,
    /// A 20 ms packet built from these frames would be longer than 1275 bytes.
    #[error("a 20 ms packet of these frames would exceed 1275 bytes")]
    TooLarge,
}

/// Turns a stream of Opus packets of any framing into packets of exactly 20 ms, the frames'
/// bytes unchanged (see the [module docs](self)). Allocation-free once its buffers have grown
/// to the stream's largest packet.
#[derive(Debug)]
pub struct Reframer {
    /// The packet being split.
    packet: Vec<u8>,
    toc: u8,
    frames: [(usize, usize); MAX_FRAMES],
    count: usize,
    next: usize,
    /// Frames shorter than 20 ms waiting for the rest of their 20 ms.
    partial: Vec<u8>,
    partial_frames: [(usize, usize); 8],
    partial_count: usize,
    partial_toc: u8,
    partial_samples: u32,
}

impl Default for Reframer {
    fn default() -> Self {
        Self::new()
    }
}

impl Reframer {
    /// An empty reframer.
    pub fn new() -> Self {
        Reframer {
            packet: Vec::with_capacity(2 * MAX_PACKET_BYTES),
            toc: 0,
            frames: [(0, 0); MAX_FRAMES],
            count: 0,
            next: 0,
            partial: Vec::with_capacity(MAX_PACKET_BYTES),
            partial_frames: [(0, 0); 8],
            partial_count: 0,
            partial_toc: 0,
            partial_samples: 0,
        }
    }

    /// Forgets everything (after a seek).
    pub fn reset(&mut self) {
        self.count = 0;
        self.next = 0;
        self.partial.clear();
        self.partial_count = 0;
        self.partial_samples = 0;
    }

    /// Whether every packet pushed has been taken by [`pop`](Self::pop) (a partial group of
    /// short frames may still wait for more).
    pub fn is_drained(&self) -> bool {
        self.next >= self.count
    }

    /// Takes the next packet to split. Call only when [`is_drained`](Self::is_drained); a
    /// packet pushed before that replaces the frames not yet popped. Fails, consuming nothing,
    /// when the packet cannot be passed through as 20 ms packets.
    pub fn push(&mut self, data: &[u8]) -> Result<(), ReframeError> {
        let packet = OpusPacket::parse(data)?;
        self.check(&packet)?;
        self.packet.clear();
        self.packet.extend_from_slice(data);
        self.toc = packet.toc();
        self.count = packet.count;
        self.frames = packet.frames;
        self.next = 0;
        Ok(())
    }

    /// Dry run of `pop` over `packet` from the current partial group.
    fn check(&self, packet: &OpusPacket<'_>) -> Result<(), ReframeError> {
        let samples = packet.frame_samples();
        if samples > SAMPLES_PER_PACKET {
            return Err(ReframeError::FrameLongerThan20Ms(samples / 48));
        }
        let mut group_samples = self.partial_samples;
        let mut group_bytes = self.partial.len();
        let mut group_frames = self.partial_count;
        if group_frames > 0 && (self.partial_toc & !3) != (packet.toc() & !3) {
            return Err(ReframeError::Unaligned);
        }
        for frame in packet.frames() {
            if samples == SAMPLES_PER_PACKET && group_frames > 0 {
                return Err(ReframeError::Unaligned);
            }
            group_samples += samples;
            group_bytes += frame.len();
            group_frames += 1;
            if group_samples == SAMPLES_PER_PACKET {
                // TOC, count byte, up to two bytes of length per frame but the last.
                let header = if group_frames == 1 {
                    1
                } else {
                    2 + 2 * (group_frames - 1)
                };
                if group_bytes + header > MAX_PACKET_BYTES {
                    return Err(ReframeError::TooLarge);
                }
                group_samples = 0;
                group_bytes = 0;
                group_frames = 0;
            }
        }
        Ok(())
    }

    /// Writes the next 20 ms packet into `out` (at least [`MAX_PACKET_BYTES`] long) and
    /// returns its length; `None` when the pushed packets are used up.
    pub fn pop(&mut self, out: &mut [u8]) -> Option<usize> {
        while self.next < self.count {
            let (start, end) = *self.frames.get(self.next)?;
            self.next += 1;
            let frame = self.packet.get(start..end)?;
            let samples = frame_samples(self.toc);
            if samples == SAMPLES_PER_PACKET {
                // Code 0, byte-exact when the input was a code 0 packet already.
                return write_packet(self.toc, &[frame], out);
            }
            let at = self.partial.len();
            self.partial.extend_from_slice(frame);
            let slot = self.partial_frames.get_mut(self.partial_count)?;
            *slot = (at, at + frame.len());
            self.partial_count += 1;
            self.partial_toc = self.toc;
            self.partial_samples += samples;
            if self.partial_samples == SAMPLES_PER_PACKET {
                let len = self.write_partial(out);
                self.partial.clear();
                self.partial_count = 0;
                self.partial_samples = 0;
                return len;
            }
        }
        None
    }

    fn write_partial(&self, out: &mut [u8]) -> Option<usize> {
        let mut frames: [&[u8]; 8] = [&[]; 8];
        for (slot, &(start, end)) in frames
            .iter_mut()
            .zip(&self.partial_frames[..self.partial_count])
        {
            *slot = self.partial.get(start..end)?;
        }
        write_packet(self.partial_toc, &frames[..self.partial_count], out)
    }

    /// The unfinished group of short frames as one (shorter than 20 ms) packet, for a caller
    /// that switches to decoding; empty when there is none. Clears the group.
    pub fn take_partial(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.partial_count == 0 {
            return None;
        }
        let len = self.write_partial(out);
        self.partial.clear();
        self.partial_count = 0;
        self.partial_samples = 0;
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CELT fullband 20 ms stereo, code 0.
    const CELT_20: u8 = (31 << 3) | 0b100;
    /// CELT fullband 10 ms mono.
    const CELT_10: u8 = 30 << 3;
    /// SILK wideband 60 ms.
    const SILK_60: u8 = 11 << 3;
    /// SILK wideband 20 ms.
    const SILK_20: u8 = 9 << 3;

    fn frame(seed: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    fn packet(toc: u8, frames: &[Vec<u8>]) -> Vec<u8> {
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut out = vec![0u8; 8000];
        let len = write_packet(toc, &refs, &mut out).expect("fits");
        out.truncate(len);
        out
    }

    #[test]
    fn frame_durations_follow_the_toc_table() {
        assert_eq!(frame_samples(0 << 3), 480);
        assert_eq!(frame_samples(3 << 3), 2880);
        assert_eq!(frame_samples(13 << 3), 960);
        assert_eq!(frame_samples(16 << 3), 120);
        assert_eq!(frame_samples(CELT_20), 960);
        assert_eq!(frame_samples(CELT_10), 480);
    }

    #[test]
    fn each_code_round_trips() {
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![frame(1, 100)],
            vec![frame(1, 80), frame(2, 80)],
            vec![frame(1, 80), frame(2, 300)],
            vec![frame(1, 20), frame(2, 20), frame(3, 20)],
            vec![frame(1, 20), frame(2, 700), frame(3, 0), frame(4, 1275)],
        ];
        for frames in cases {
            let bytes = packet(CELT_10, &frames);
            let parsed = OpusPacket::parse(&bytes).expect("parses");
            let back: Vec<Vec<u8>> = parsed.frames().map(<[u8]>::to_vec).collect();
            assert_eq!(back, frames);
            assert_eq!(parsed.samples(), 480 * frames.len() as u32);
        }
        // Code 2 with a two-byte length.
        let bytes = packet(CELT_10, &[frame(1, 600), frame(2, 3)]);
        assert_eq!(bytes[0] & 3, 2);
        assert_eq!(
            OpusPacket::parse(&bytes).unwrap().frame(0).unwrap().len(),
            600
        );
    }

    #[test]
    fn code3_padding_is_skipped() {
        // Code 3, CBR, padded: 2 frames of 3 bytes, 300 bytes of padding (255 -> 254, then 46).
        let mut bytes = vec![CELT_10 | 3, 0x40 | 2, 255, 46];
        bytes.extend_from_slice(&[7, 7, 7, 8, 8, 8]);
        bytes.extend(std::iter::repeat_n(0, 300));
        let parsed = OpusPacket::parse(&bytes).expect("parses");
        assert_eq!(parsed.frame(0), Some(&[7u8, 7, 7][..]));
        assert_eq!(parsed.frame(1), Some(&[8u8, 8, 8][..]));
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(OpusPacket::parse(&[]).unwrap_err(), PacketError::Empty);
        assert_eq!(
            OpusPacket::parse(&[CELT_10 | 1, 1, 2, 3]).unwrap_err(),
            PacketError::OddCode1(3)
        );
        assert_eq!(
            OpusPacket::parse(&[CELT_10 | 2, 200, 1]).unwrap_err(),
            PacketError::Overrun
        );
        assert_eq!(
            OpusPacket::parse(&[CELT_10 | 3, 0]).unwrap_err(),
            PacketError::BadFrameCount(0)
        );
        // 13 x 10 ms = 130 ms > 120 ms.
        assert_eq!(
            OpusPacket::parse(&[CELT_10 | 3, 13]).unwrap_err(),
            PacketError::BadFrameCount(13)
        );
        assert!(matches!(
            OpusPacket::parse(&[CELT_10 | 3, 3, 1, 2, 3, 4]).unwrap_err(),
            PacketError::UnevenCbr { .. }
        ));
        let long = vec![CELT_20; 1277];
        assert_eq!(
            OpusPacket::parse(&long).unwrap_err(),
            PacketError::FrameTooLong(1276)
        );
        // Padding longer than the packet.
        assert_eq!(
            OpusPacket::parse(&[CELT_10 | 3, 0x41, 200, 1]).unwrap_err(),
            PacketError::Overrun
        );
    }

    #[test]
    fn every_byte_string_parses_or_fails_without_panicking() {
        let mut state = 0x1234_5678u32;
        for len in 0..300 {
            for _ in 0..40 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        state as u8
                    })
                    .collect();
                if let Ok(p) = OpusPacket::parse(&bytes) {
                    assert!(p.frames().all(|f| f.len() <= MAX_PACKET_BYTES));
                }
                let mut r = Reframer::new();
                if r.push(&bytes).is_ok() {
                    let mut out = [0u8; MAX_PACKET_BYTES];
                    while let Some(n) = r.pop(&mut out) {
                        assert!(n <= MAX_PACKET_BYTES);
                        assert_eq!(OpusPacket::parse(&out[..n]).unwrap().samples(), 960);
                    }
                }
            }
        }
    }

    fn reframe_all(packets: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, ReframeError> {
        let mut r = Reframer::new();
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_PACKET_BYTES];
        for p in packets {
            r.push(p)?;
            while let Some(n) = r.pop(&mut buf) {
                out.push(buf[..n].to_vec());
            }
        }
        Ok(out)
    }

    #[test]
    fn twenty_ms_code0_packets_pass_through_byte_exact() {
        let packets: Vec<Vec<u8>> = (0..5).map(|i| packet(CELT_20, &[frame(i, 90)])).collect();
        assert_eq!(reframe_all(&packets).unwrap(), packets);
    }

    #[test]
    fn sixty_ms_packets_of_20ms_frames_split_into_three_code0_packets() {
        for frames in [
            vec![frame(1, 100), frame(2, 100), frame(3, 100)], // CBR
            vec![frame(1, 100), frame(2, 50), frame(3, 300)],  // VBR
        ] {
            let p = packet(SILK_20 | 0b100, &frames);
            assert_eq!(p[0] & 3, 3);
            let out = reframe_all(&[p]).unwrap();
            assert_eq!(out.len(), 3);
            for (o, f) in out.iter().zip(&frames) {
                assert_eq!(o[0], SILK_20 | 0b100, "code 0, same config and stereo bit");
                assert_eq!(&o[1..], &f[..]);
            }
        }
        // 40 ms as code 1 (two equal 20 ms frames) and code 2 (two unequal ones).
        let out = reframe_all(&[packet(CELT_20, &[frame(1, 60), frame(2, 60)])]).unwrap();
        assert_eq!(
            out,
            vec![
                packet(CELT_20, &[frame(1, 60)]),
                packet(CELT_20, &[frame(2, 60)])
            ]
        );
        let out = reframe_all(&[packet(CELT_20, &[frame(1, 60), frame(2, 61)])]).unwrap();
        assert_eq!(
            out,
            vec![
                packet(CELT_20, &[frame(1, 60)]),
                packet(CELT_20, &[frame(2, 61)])
            ]
        );
    }

    #[test]
    fn short_frames_are_grouped_into_20ms_packets_across_packets() {
        // 10 ms packets one by one: pairs become code 1 (equal) or code 2 (unequal) packets.
        let singles: Vec<Vec<u8>> = (0..4)
            .map(|i| packet(CELT_10, &[frame(i, 40 + usize::from(i / 2))]))
            .collect();
        let out = reframe_all(&singles).unwrap();
        assert_eq!(out.len(), 2);
        for (o, pair) in out.iter().zip(singles.chunks(2)) {
            let parsed = OpusPacket::parse(o).unwrap();
            assert_eq!(parsed.samples(), 960);
            assert_eq!(parsed.frame(0).unwrap(), &pair[0][1..]);
            assert_eq!(parsed.frame(1).unwrap(), &pair[1][1..]);
        }
        // A 60 ms code 3 packet of six 10 ms frames -> three 20 ms packets.
        let frames: Vec<Vec<u8>> = (0..6).map(|i| frame(i, 30 + usize::from(i))).collect();
        let out = reframe_all(&[packet(CELT_10, &frames)]).unwrap();
        assert_eq!(out.len(), 3);
        let back: Vec<Vec<u8>> = out
            .iter()
            .flat_map(|o| {
                let p = OpusPacket::parse(o).unwrap();
                assert_eq!(p.samples(), 960);
                p.frames().map(<[u8]>::to_vec).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(back, frames);
        // 2.5 ms frames: eight per packet, code 3.
        let frames: Vec<Vec<u8>> = (0..16).map(|i| frame(i, 10)).collect();
        let out = reframe_all(&[packet(16 << 3, &frames)]).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| o[0] & 3 == 3 && o[1] == 8));
    }

    #[test]
    fn what_cannot_be_split_is_refused_without_consuming() {
        let mut r = Reframer::new();
        assert_eq!(
            r.push(&packet(SILK_60, &[frame(1, 100)])),
            Err(ReframeError::FrameLongerThan20Ms(60))
        );
        // Half a group, then a change of configuration.
        r.push(&packet(CELT_10, &[frame(1, 10)])).unwrap();
        let mut buf = [0u8; MAX_PACKET_BYTES];
        assert_eq!(r.pop(&mut buf), None);
        assert_eq!(
            r.push(&packet(CELT_20, &[frame(2, 10)])),
            Err(ReframeError::Unaligned)
        );
        assert_eq!(
            r.push(&packet(29 << 3, &[frame(2, 10)])),
            Err(ReframeError::Unaligned)
        );
        // The waiting half comes out as a valid 10 ms packet for decoding.
        let n = r.take_partial(&mut buf).unwrap();
        assert_eq!(&buf[..n], &packet(CELT_10, &[frame(1, 10)])[..]);
        // Too large: two 10 ms frames of 700 bytes.
        let mut r = Reframer::new();
        assert_eq!(
            r.push(&packet(CELT_10, &[frame(1, 700), frame(2, 700)])),
            Err(ReframeError::TooLarge)
        );
        assert!(matches!(r.push(&[]), Err(ReframeError::Malformed(_))));
    }
}
