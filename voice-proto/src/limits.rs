//! Every bound on what the network can make the core hold (issue 14, row 6).
//!
//! The voice server decides how many users, SSRCs and messages a connection sees; none of that may
//! grow the core's memory without limit. The caps are far above what a real call needs (a voice
//! channel holds at most a few hundred users, a Stage's listeners never send op 5), so they only
//! ever bite a misbehaving or hostile server. What the adapters bound (the websocket message
//! size, the event queue) is documented in `voice-adapter`.

use core::time::Duration;

/// SSRC → user mappings kept from op 5 (per media session: the map is emptied when the session
/// ends, since another voice server reuses SSRCs for other users). When full, a new SSRC evicts
/// the oldest mapping.
pub const SSRC_USERS: usize = 4096;

/// User ids DAVE recognises (ourselves, op 11 joins, minus op 13 leaves), against which MLS add
/// proposals are checked. Ids beyond the cap are not recognised (and reported as
/// [`Event::Ignored`](crate::Event::Ignored)); the cap is the largest group we accept.
pub const DAVE_RECOGNISED_USERS: usize = 4096;

/// Bytes of an unknown opcode's payload kept in [`Event::UnknownOpcode`](crate::Event::UnknownOpcode):
/// longer JSON text is cut (on a character boundary) and marked; a binary payload is shown as hex
/// of at most half as many bytes.
pub const UNKNOWN_OPCODE_PAYLOAD: usize = 1024;

/// Received DAVE frames held while no op 5 names their sender, over all SSRCs (50 frames are one
/// second of one speaker); when full, the oldest is given up.
pub const HELD_FRAMES: usize = 64;

/// How long a received DAVE frame waits for the op 5 naming its sender before it counts as
/// undecryptable.
pub const HELD_FRAME_WAIT: Duration = Duration::from_secs(1);

/// Frames one receive buffer (one sender's SSRC) holds at most. A packet further ahead of the
/// playout point than this gives the missing frames up at once (with more than 1.2 s missing,
/// waiting longer would not bring them back).
pub const RECEIVE_BUFFER_FRAMES: usize = 64;

/// The largest depth a receive buffer waits for a missing frame, in frames (1 s), whatever
/// [`ReceiveConfig::max_depth`](crate::receive::ReceiveConfig::max_depth) says.
pub const RECEIVE_MAX_DEPTH: usize = 50;

/// A jump of the sequence (in frames) inside a talk spurt beyond which the packet starts a new
/// stream instead of reporting the frames in between as lost (5 s).
pub const RECEIVE_RESYNC_GAP: u16 = 250;

/// Senders (SSRCs) whose audio is followed at once; a new one beyond this evicts the one heard
/// from least recently. With every buffer and queue full this bounds what received audio can
/// make the core hold.
pub const RECEIVE_STREAMS: usize = 256;
