//! Scripts and connections the targets and the seed corpus start from: the scripted handshake,
//! one script per connection state, and drivers parked in every state.

use super::*;

/// Every datagram a session has seen, by what became of it (a frame waiting for the op 5 that
/// names its sender is counted as waiting until it is delivered or given up).
pub(crate) fn datagrams_accounted(stats: Stats) -> u64 {
    stats.packets_received
        + stats.packets_skipped
        + stats.decrypt_failures
        + stats.datagrams_ignored
        + stats.dave_decrypt_failures
        + stats.dave_frames_waiting
}

// ---- states for the frame and datagram targets ----------------------------------------------

pub(crate) fn text_step(message: ServerText) -> Step {
    Step::Text {
        message,
        numbered: true,
    }
}

/// The scripted handshake: both dispatches, open, Hello, Ready, discovery, Session Description.
pub fn handshake_steps(mode_bits: u8) -> Vec<Step> {
    vec![
        Step::StateUpdate(StateUpdate::Joined(1)),
        Step::ServerUpdate(ServerUpdate::Endpoint(1)),
        Step::Opened,
        Step::Text {
            message: ServerText::Hello { quarter_ms: 4000 },
            numbered: false,
        },
        text_step(ServerText::Ready {
            ssrc: 0,
            modes: mode_bits,
            bad_ip: false,
            port: 0,
        }),
        Step::DiscoveryAnswer(0),
        text_step(ServerText::SessionDescription {
            mode: 0,
            key_byte: KEY[0],
            dave: 0,
        }),
    ]
}

/// Scripts that leave a connection in each state a frame or datagram can meet: waiting for the
/// dispatches, websocket opening, open, after Hello, discovering, selecting the protocol,
/// connected (AES and XChaCha), resuming, backing off, waiting for a move, closed, connected
/// with audio playing and queued, and connected with DAVE negotiated and the MLS external sender
/// set.
pub fn state_scripts() -> Vec<(ScriptConfig, Vec<Step>)> {
    let plain = ScriptConfig {
        rtp_seed: 0,
        flags: 0,
    };
    let dave = ScriptConfig {
        rtp_seed: 0,
        flags: 1,
    };
    let mut dave_handshake = handshake_steps(0b0001);
    if let Some(Step::Text {
        message: ServerText::SessionDescription { dave: version, .. },
        ..
    }) = dave_handshake.last_mut()
    {
        *version = 1;
    }
    let mut scripts: Vec<(ScriptConfig, Vec<Step>)> = plain_state_scripts()
        .into_iter()
        .map(|steps| (plain, steps))
        .collect();
    // DAVE negotiated (version 1) with the gateway's external sender set: MLS messages reach
    // `davey`'s group logic, and the other member's SSRC is mapped to a user so their frames reach
    // DAVE decryption. (One such state only: creating a DAVE session costs milliseconds.)
    dave_handshake.push(Step::Text {
        message: ServerText::Speaking {
            user: OTHER_USER.0,
            ssrc: 0,
            flags: 1,
        },
        numbered: true,
    });
    dave_handshake.push(Step::Binary(external_sender()));
    scripts.push((dave, dave_handshake));
    scripts
}

/// A well-formed op 25 frame: `ExternalSender { signature_key<V> (65-byte P-256 point),
/// Credential { credential_type = 1 (basic), identity<V> (8 bytes) } }` after `[seq][25]`.
pub fn external_sender() -> Vec<u8> {
    let mut frame = vec![0, 9, 25, 0x40, 65, 0x04];
    frame.extend_from_slice(&[0x11; 64]);
    frame.extend_from_slice(&[0x00, 0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 1]);
    frame
}

pub(crate) fn plain_state_scripts() -> Vec<Vec<Step>> {
    let handshake = handshake_steps(0b0111);
    let prefix = |n: usize| handshake[..n].to_vec();
    let with = |mut base: Vec<Step>, more: &[Step]| {
        base.extend_from_slice(more);
        base
    };
    vec![
        Vec::new(),
        prefix(2),
        prefix(3),
        prefix(4),
        prefix(5),
        prefix(6),
        handshake.clone(),
        handshake_steps(0b0010),
        // Resuming (the backoff waited out), and backing off before the next attempt.
        with(
            handshake.clone(),
            &[
                Step::ServerClose(Some(4015)),
                Step::AdvanceToWake,
                Step::Opened,
            ],
        ),
        with(
            handshake.clone(),
            &[
                Step::ServerClose(Some(4015)),
                Step::AdvanceToWake,
                Step::Opened,
                Step::ServerClose(Some(4015)),
            ],
        ),
        with(handshake.clone(), &[Step::ServerClose(Some(4014))]),
        with(handshake.clone(), &[Step::Disconnect]),
        // Audio playing: the first frame out, two more queued.
        with(handshake, &{
            let frame = |fill| Step::QueueOpus {
                len: 20,
                fill,
                queue_only: true,
            };
            [
                frame(1),
                frame(2),
                frame(3),
                Step::PollTransmit,
                Step::PollTransmit,
            ]
        }),
    ]
}

/// Connections in every state of [`state_scripts`]; the DAVE-negotiated ones only `with_dave`
/// (creating a DAVE session costs milliseconds, so inputs that cannot reach the DAVE stage skip
/// them).
pub(crate) fn drivers(with_dave: bool) -> Vec<Driver> {
    state_scripts()
        .iter()
        .filter(|(config, _)| with_dave || config.flags & 1 == 0)
        .map(|(config, script)| {
            let mut driver = Driver::join(config.config());
            driver.run(script);
            driver
        })
        .collect()
}
