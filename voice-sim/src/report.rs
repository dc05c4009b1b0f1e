//! What the server saw: violations, per-client and per-stream facts, as a serde [`Report`] with a
//! short human summary ([`Report`]'s `Display`).

use core::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::dave::DaveChannelReport;
use crate::stats::StreamSummary;

/// What rule a client broke (or, for advisories, what it did that is allowed but unusual).
///
/// The full checklist with the docs/protocol.md references is in the crate docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ViolationKind {
    /// The websocket URL lacked `v=8` (or asked for another version).
    GatewayVersion,
    /// A text frame that is not a JSON object with an integer `op`.
    MalformedJson,
    /// A payload whose fields have the wrong JSON types or are missing.
    InvalidPayload,
    /// A binary frame the client may not send (anything but ops 26/28, or those without DAVE).
    UnexpectedBinary,
    /// An opcode outside the table, or one only the server sends.
    UnknownOpcode,
    /// A message other than Identify, Resume or Heartbeat before Identify/Resume.
    NotAuthenticated,
    /// A second Identify (or a Resume) on an authenticated websocket.
    AlreadyAuthenticated,
    /// Identify/Resume with a wrong token or ids (the server closes with 4004).
    AuthenticationFailed,
    /// Identify/Resume for a session the server does not know (closed with 4006).
    UnknownSession,
    /// A message in the wrong place of the handshake (e.g. Select Protocol before IP discovery,
    /// Speaking before Session Description, Select Protocol twice, DAVE ops without DAVE).
    OpOrder,
    /// Select Protocol's address/port differ from what IP discovery answered.
    SelectProtocolAddress,
    /// Select Protocol's `protocol` is not `"udp"` (closed with 4012).
    ProtocolNotUdp,
    /// Select Protocol chose a mode Ready did not offer, or one the server cannot run (4016).
    ModeNotOffered,
    /// A heartbeat not shaped `{t: integer, seq_ack: integer}`.
    HeartbeatShape,
    /// A heartbeat or resume `seq_ack` ahead of the last seq the server sent, or below -1.
    SeqAck,
    /// Op 5 Speaking for an SSRC that is not the client's.
    SpeakingSsrc,
    /// Audio (non-silence) before any op 5 with non-zero flags, or after `speaking: 0`.
    AudioBeforeSpeaking,
    /// An RTP packet before Session Description.
    AudioBeforeSessionDescription,
    /// A datagram from a client's address that is neither RTP, RTCP, discovery nor keepalive, or
    /// an RTP packet whose header or padding is invalid.
    MalformedPacket,
    /// An RTP packet that failed transport decryption.
    DecryptFailure,
    /// The transport nonce counter did not increase (docs/protocol.md C25).
    NonceReuse,
    /// In-order packets whose timestamp did not advance 960 per sequence step (C19).
    TimestampStep,
    /// RTP with a client's SSRC from an address other than the one it discovered.
    ForeignSource,
    /// A 74-byte discovery request that is malformed or names an unknown SSRC.
    BadDiscoveryRequest,
    /// The websocket broke the framing rules (oversized frame, protocol error).
    WebSocket,
    /// A DAVE MLS message (op 26 key package, op 28 commit/welcome) that does not parse or does
    /// not fit: wrong credential, ciphersuite, group, epoch or content, a missing Welcome, or no
    /// commit for the proposals in time.
    DaveMls,
    /// Op 23 for a transition the server never announced, or none in time.
    DaveTransition,
    /// A DAVE-encrypted frame that a member of the group could not decrypt.
    DaveDecryptFailure,
    /// Audio (non-silence) without DAVE from a client that had executed its end-to-end
    /// encryption transition (docs/protocol.md 9.3).
    DavePlaintext,
    /// Advisory: audio (non-silence) without DAVE in an end-to-end encrypted call before the
    /// client held its keys; it reaches the server in clear (@discordjs/voice does this).
    DavePlainBeforeKeyed,
    /// Advisory: a talk spurt ended with fewer than five silence frames (C21; DJS sends four).
    FewSilenceFrames,
    /// Advisory: Identify without `max_dave_protocol_version >= 1` (Discord closes with 4017 on
    /// non-Stage channels).
    NoDaveSupport,
    /// Advisory: audio after a resume before op 5 was sent again (docs/protocol.md §3).
    NoSpeakingAfterResume,
    /// Advisory: a heartbeat came more than 1.5 intervals (+250 ms of slack) after Hello or the
    /// previous heartbeat (docs/protocol.md §4: the interval is an upper bound).
    HeartbeatLate,
}

impl ViolationKind {
    /// Whether this kind is only advisory (reported apart, never a failure).
    pub fn is_advisory(self) -> bool {
        matches!(
            self,
            Self::FewSilenceFrames
                | Self::NoDaveSupport
                | Self::NoSpeakingAfterResume
                | Self::HeartbeatLate
                | Self::DavePlainBeforeKeyed
        )
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name, e.g. `op_order`.
        let name = serde_json::to_value(self)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{self:?}"));
        f.write_str(&name)
    }
}

/// One deviation from docs/protocol.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Milliseconds since the server started.
    pub at_ms: u64,
    /// The client (index from [`VoiceServer::expect_client`](crate::VoiceServer::expect_client)),
    /// when the deviation could be attributed.
    pub client: Option<usize>,
    /// What rule.
    pub kind: ViolationKind,
    /// What exactly arrived.
    pub detail: String,
}

/// One websocket connection of a client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionReport {
    /// Milliseconds since server start when the websocket opened.
    pub opened_ms: u64,
    /// Path and query the client asked for, e.g. `/?v=8`.
    pub path: String,
    /// `identify` or `resume`, if the client got that far.
    pub started_with: Option<String>,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Close code the server sent, if it closed.
    pub server_close: Option<u16>,
    /// Close code the client sent, if it sent a close frame.
    pub client_close: Option<u16>,
    /// Milliseconds since server start when it ended.
    pub closed_ms: Option<u64>,
}

/// Everything about one expected client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReport {
    /// Index of the client.
    pub client: usize,
    /// Its user id.
    pub user_id: String,
    /// Its session id.
    pub session_id: String,
    /// SSRCs handed out in Ready, one per fresh Identify.
    pub ssrcs: Vec<u32>,
    /// Mode chosen in the latest Select Protocol.
    pub mode: Option<String>,
    /// `max_dave_protocol_version` from the latest Identify.
    pub max_dave_protocol_version: Option<u64>,
    /// Successful Identifies.
    pub identifies: u32,
    /// Successful Resumes.
    pub resumes: u32,
    /// IP discovery requests received.
    pub discovery_requests: u32,
    /// UDP keepalives (4 or 8 bytes) received.
    pub keepalives: u64,
    /// RTCP packets received (ignored).
    pub rtcp_packets: u64,
    /// Speaking flags in the order received.
    pub speaking: Vec<u32>,
    /// The client's websocket connections in order.
    pub connections: Vec<ConnectionReport>,
}

/// One SSRC's media.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    /// The SSRC.
    pub ssrc: u32,
    /// The client it belongs to.
    pub client: usize,
    /// Transport mode it was decrypted with.
    pub mode: Option<String>,
    /// The statistics.
    #[serde(flatten)]
    pub stats: StreamSummary,
}

/// Everything the server observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Milliseconds since server start when the report was taken.
    pub duration_ms: u64,
    /// The websocket endpoint (`127.0.0.1:PORT`).
    pub endpoint: String,
    /// The UDP media address.
    pub udp: String,
    /// Whether the gateway spoke TLS.
    pub tls: bool,
    /// The expected clients.
    pub clients: Vec<ClientReport>,
    /// Media per SSRC.
    pub streams: Vec<StreamReport>,
    /// Deviations from the protocol.
    pub violations: Vec<Violation>,
    /// Allowed but unusual behaviour.
    pub advisories: Vec<Violation>,
    /// Violations not listed because the same client already had 20 of that kind.
    pub suppressed: u64,
    /// Datagrams that could not be attributed to any client (garbage, unknown SSRCs).
    pub stray_datagrams: u64,
    /// Websocket connections that failed before the websocket handshake completed.
    pub failed_handshakes: u64,
    /// The DAVE role per voice channel (empty when DAVE is off).
    #[serde(default)]
    pub dave: Vec<DaveChannelReport>,
    /// What simulated users said to each client, and what the network emulator did to it.
    #[serde(default)]
    pub spoken: Vec<SpokenStream>,
}

/// What one simulated user said to one client ([`Scenario::users`](crate::Scenario::users)),
/// frame by frame, with the fate the network emulator gave each packet
/// ([`Scenario::impairment`](crate::Scenario::impairment)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpokenStream {
    /// The client it was sent to.
    pub client: usize,
    /// The simulated user.
    pub user_id: u64,
    /// The SSRC it spoke on.
    pub ssrc: u32,
    /// Every frame, in the order spoken (silence frames included).
    pub frames: Vec<SpokenFrame>,
    /// What the network emulator did (zero without impairment).
    pub netem: NetemReport,
}

impl SpokenStream {
    /// The frames that reached the network (sent, not lost), in the order spoken.
    pub fn delivered(&self) -> impl Iterator<Item = &SpokenFrame> {
        self.frames.iter().filter(|f| f.sent && !f.lost)
    }
}

/// One frame a simulated user spoke.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpokenFrame {
    /// Its RTP sequence number.
    pub sequence: u16,
    /// The Opus frame (before DAVE encryption).
    pub opus: Vec<u8>,
    /// Whether a packet went out at all (`false`: no session or no DAVE key at that moment).
    pub sent: bool,
    /// The emulator lost it.
    pub lost: bool,
    /// The emulator sent it twice.
    pub duplicated: bool,
    /// The emulator held it back for later packets to overtake.
    pub reordered: bool,
}

/// The network emulator's counts for one spoken stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetemReport {
    /// Packets that went into it.
    pub sent: u64,
    /// Lost.
    pub lost: u64,
    /// Extra copies.
    pub duplicated: u64,
    /// Held back.
    pub reordered: u64,
    /// Handed to the socket (copies included).
    pub delivered: u64,
}

impl Report {
    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    /// Violations of one kind.
    pub fn violations_of(&self, kind: ViolationKind) -> Vec<&Violation> {
        self.violations
            .iter()
            .chain(&self.advisories)
            .filter(|v| v.kind == kind)
            .collect()
    }

    /// The stream with this SSRC.
    pub fn stream(&self, ssrc: u32) -> Option<&StreamReport> {
        self.streams.iter().find(|s| s.ssrc == ssrc)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "voice-sim on {} ({}), udp {}, {:.1} s",
            self.endpoint,
            if self.tls { "wss" } else { "ws" },
            self.udp,
            self.duration_ms as f64 / 1000.0
        )?;
        for c in &self.clients {
            writeln!(
                f,
                "  client {} user {}: {} identify, {} resume, {} connection(s), mode {}, ssrcs {:?}",
                c.client,
                c.user_id,
                c.identifies,
                c.resumes,
                c.connections.len(),
                c.mode.as_deref().unwrap_or("-"),
                c.ssrcs
            )?;
        }
        for s in &self.streams {
            let st = &s.stats;
            writeln!(
                f,
                "  ssrc {} (client {}): {} packets, {} bytes, {} silence, {} decrypt failures, \
                 gaps {} missing {} dup {} reordered {} ts errors {}, jitter p50 {:.1} p99 {:.1} max {:.1} ms, {} spurt(s)",
                s.ssrc,
                s.client,
                st.packets,
                st.bytes,
                st.silence_frames,
                st.decrypt_failures,
                st.gaps,
                st.missing,
                st.duplicates,
                st.reordered,
                st.timestamp_errors,
                st.jitter.p50_ms,
                st.jitter.p99_ms,
                st.jitter.max_ms,
                st.spurts.len()
            )?;
            if st.dave_decrypted + st.dave_failures + st.dave_unverified + st.dave_plain > 0 {
                writeln!(
                    f,
                    "    DAVE: {} decrypted, {} failed, {} unverified, {} plain",
                    st.dave_decrypted, st.dave_failures, st.dave_unverified, st.dave_plain
                )?;
            }
        }
        for spoken in &self.spoken {
            let n = &spoken.netem;
            writeln!(
                f,
                "  simulated user {} to client {} on ssrc {}: {} frames spoken, {} sent; netem lost {}, \
                 duplicated {}, reordered {}",
                spoken.user_id,
                spoken.client,
                spoken.ssrc,
                spoken.frames.len(),
                spoken.frames.iter().filter(|f| f.sent).count(),
                n.lost,
                n.duplicated,
                n.reordered
            )?;
        }
        for d in &self.dave {
            writeln!(
                f,
                "  DAVE channel {}: version {}, epoch {}, leaves {:?}, {} key packages, {} commits ({} by clients), {} welcomes, {} transitions, {} op 31, {} downgrade(s), {} upgrade(s){}",
                d.channel_id,
                d.protocol_version,
                d.epoch,
                d.leaves,
                d.key_packages,
                d.commits_announced,
                d.client_commits,
                d.welcomes_sent,
                d.transitions_executed,
                d.invalid_commit_welcomes,
                d.downgrades,
                d.upgrades,
                if d.simulated_errors.is_empty() {
                    String::new()
                } else {
                    format!(", simulated member errors: {:?}", d.simulated_errors)
                }
            )?;
        }
        writeln!(
            f,
            "  {} violation(s){}, {} advisory note(s), {} stray datagram(s)",
            self.violations.len(),
            if self.suppressed > 0 {
                format!(" (+{} suppressed)", self.suppressed)
            } else {
                String::new()
            },
            self.advisories.len(),
            self.stray_datagrams
        )?;
        for v in self.violations.iter().chain(&self.advisories) {
            let client = v.client.map_or_else(|| "-".to_owned(), |c| c.to_string());
            writeln!(
                f,
                "  [{:>7} ms] client {client} {}: {}",
                v.at_ms, v.kind, v.detail
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_through_json_and_summarises() {
        let report = Report {
            endpoint: "127.0.0.1:1".into(),
            violations: vec![Violation {
                at_ms: 5,
                client: Some(0),
                kind: ViolationKind::OpOrder,
                detail: "x".into(),
            }],
            streams: vec![StreamReport {
                ssrc: 9,
                client: 0,
                mode: None,
                stats: StreamSummary {
                    packets: 3,
                    ..StreamSummary::default()
                },
            }],
            ..Report::default()
        };
        let json = serde_json::to_string(&report).expect("serializes");
        assert!(json.contains(r#""kind":"op_order""#), "{json}");
        assert!(
            json.contains(r#""packets":3"#),
            "stats are flattened: {json}"
        );
        let back: Report = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, report);
        let text = report.to_string();
        assert!(text.contains("1 violation(s)"), "{text}");
        assert!(text.contains("client 0 op_order: x"), "{text}");
        assert!(text.contains("ssrc 9 (client 0): 3 packets"), "{text}");
    }

    #[test]
    fn advisory_kinds_are_marked() {
        assert!(ViolationKind::FewSilenceFrames.is_advisory());
        assert!(!ViolationKind::DecryptFailure.is_advisory());
        assert_eq!(
            ViolationKind::AudioBeforeSpeaking.to_string(),
            "audio_before_speaking"
        );
    }
}
