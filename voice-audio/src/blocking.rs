//! The pump for voice-std (feature `std`): `voice_std::OpusSender` is a [`FrameSink`] as it is,
//! its `send` blocking while the connection's playout queue is full.

use crate::pump::{FrameSink, SinkClosed};

impl FrameSink for voice_std::OpusSender {
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), SinkClosed> {
        self.send(frame).map_err(|_| SinkClosed)
    }

    fn try_send_frame(&mut self, frame: &[u8]) -> Result<bool, SinkClosed> {
        self.try_send(frame).map_err(|_| SinkClosed)
    }
}
