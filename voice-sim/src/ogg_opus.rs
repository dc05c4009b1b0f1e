//! Ogg Opus in and out: read the audio packets of a file (simulated speakers, tests), write a
//! stream of received frames (`--record`).

use std::io::{Read, Seek, Write};
use std::path::Path;

use ogg::writing::PacketWriteEndInfo;
use ogg::{PacketReader, PacketWriter};

use crate::error::SimError;
use voice_proto::rtp::SAMPLES_PER_FRAME;

/// Reads the Opus audio packets of an Ogg Opus stream, skipping the `OpusHead` and `OpusTags`
/// header packets.
pub fn read_packets<R: Read + Seek>(reader: R) -> Result<Vec<Vec<u8>>, SimError> {
    let mut packets = PacketReader::new(reader);
    let mut out = Vec::new();
    let mut index = 0usize;
    loop {
        let packet = packets
            .read_packet()
            .map_err(|e| SimError::Ogg(e.to_string()))?;
        let Some(packet) = packet else { break };
        let is_header =
            packet.data.starts_with(b"OpusHead") || packet.data.starts_with(b"OpusTags");
        if index < 2 && is_header {
            index += 1;
            continue;
        }
        index += 1;
        out.push(packet.data);
    }
    if index == 0 {
        return Err(SimError::Ogg("no packets in the stream".into()));
    }
    Ok(out)
}

/// Reads the Opus audio packets of an Ogg Opus file.
pub fn read_file(path: &Path) -> Result<Vec<Vec<u8>>, SimError> {
    let file = std::fs::File::open(path)
        .map_err(|e| SimError::Ogg(format!("cannot open {}: {e}", path.display())))?;
    read_packets(std::io::BufReader::new(file))
}

/// Writes `frames` (20 ms stereo Opus frames) as an Ogg Opus stream.
pub fn write_stream<W: Write>(writer: W, frames: &[Vec<u8>], serial: u32) -> Result<(), SimError> {
    let io = |e: std::io::Error| SimError::Ogg(e.to_string());
    let mut out = PacketWriter::new(writer);
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(2); // channels
    head.extend_from_slice(&312u16.to_le_bytes()); // pre-skip
    head.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // mapping family
    out.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)
        .map_err(io)?;
    let vendor = b"voice-sim";
    let mut tags = Vec::new();
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    let end = if frames.is_empty() {
        PacketWriteEndInfo::EndStream
    } else {
        PacketWriteEndInfo::EndPage
    };
    out.write_packet(tags, serial, end, 0).map_err(io)?;
    let mut granule = 0u64;
    for (i, frame) in frames.iter().enumerate() {
        granule += u64::from(SAMPLES_PER_FRAME);
        let info = if i + 1 == frames.len() {
            PacketWriteEndInfo::EndStream
        } else if (i + 1) % 50 == 0 {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        out.write_packet(frame.clone(), serial, info, granule)
            .map_err(io)?;
    }
    Ok(())
}

/// Writes `frames` as an Ogg Opus file.
pub fn write_file(path: &Path, frames: &[Vec<u8>]) -> Result<(), SimError> {
    let file = std::fs::File::create(path)
        .map_err(|e| SimError::Ogg(format!("cannot create {}: {e}", path.display())))?;
    let mut writer = std::io::BufWriter::new(file);
    write_stream(&mut writer, frames, 0x5653_494D)?;
    writer.flush().map_err(|e| SimError::Ogg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_frames_read_back_unchanged() {
        let frames: Vec<Vec<u8>> = (0..120u8)
            .map(|i| vec![0xFC, i, i.wrapping_mul(3)])
            .collect();
        let mut buf = Vec::new();
        write_stream(&mut buf, &frames, 7).expect("writes");
        let back = read_packets(std::io::Cursor::new(buf)).expect("reads");
        assert_eq!(back, frames);
    }

    #[test]
    fn the_committed_sample_has_about_8_s_of_20ms_frames() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample.ogg");
        let frames = read_file(&path).expect("sample reads");
        assert_eq!(
            frames.len(),
            398,
            "8 s of 20 ms frames, less the encoder's final partial frames"
        );
        assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= 1275));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_packets(std::io::Cursor::new(vec![1u8; 100])).is_err());
        assert!(read_packets(std::io::Cursor::new(Vec::new())).is_err());
    }
}
