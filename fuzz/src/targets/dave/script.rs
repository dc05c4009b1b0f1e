//! The DAVE script language of the [`dave_binary`](super::dave_binary) target.

use super::*;

/// Longest DAVE script the [`dave_binary`] target runs (each input builds a DAVE session and may
/// re-initialise it: keep inputs fast).
pub const MAX_DAVE_STEPS: usize = 48;

/// One byte of an echoed message changed: `xor` at `at % len` (nothing when `xor == 0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tamper {
    /// Where (modulo the length).
    pub at: u16,
    /// What to xor in (0: leave the message as it is).
    pub xor: u8,
}

impl Tamper {
    pub(crate) fn apply(self, bytes: &mut [u8]) {
        if self.xor != 0 && !bytes.is_empty() {
            let at = usize::from(self.at) % bytes.len();
            bytes[at] ^= self.xor;
        }
    }

    fn read(r: &mut ScriptReader<'_, '_>) -> arbitrary::Result<Self> {
        Ok(Self {
            at: r.u16()?,
            xor: r.u8()?,
        })
    }

    fn write(self, w: &mut ScriptWriter) {
        w.u16(self.at);
        w.u8(self.xor);
    }
}

/// One step of a [`DaveScript`]: a DAVE message from the voice gateway (binary ops 25, 27, 29, 30;
/// JSON ops 21, 22, 24; the op 11/13 membership that validates proposals and welcomes), media
/// through the DAVE stage in both directions, or a resume/reconnect around them. Messages are
/// delivered only while the websocket is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaveStep {
    /// Op 25 with these bytes as the payload.
    ExternalSender(Vec<u8>),
    /// Op 25 built from its parts: `signature_key<V>`, `Credential { credential_type, identity<V> }`.
    ExternalSenderParts {
        /// The signature key (65 bytes for an uncompressed P-256 point).
        key: Vec<u8>,
        /// 1 is basic.
        credential_type: u16,
        /// The identity (8 bytes in DAVE).
        identity: Vec<u8>,
    },
    /// Op 27: the operation byte, then `data` behind its variable-length prefix (`wrapped`) or
    /// as it is.
    Proposals {
        /// 0 append, 1 revoke, anything else unknown.
        operation: u8,
        /// Put the `<V>` length prefix in front of `data`.
        wrapped: bool,
        /// Concatenated MLSMessages (append) or ProposalRefs (revoke).
        data: Vec<u8>,
    },
    /// Op 29 with these commit bytes.
    Commit {
        /// Transition id.
        transition: u16,
        /// The MLSMessage.
        commit: Vec<u8>,
    },
    /// Op 30 with these welcome bytes.
    Welcome {
        /// Transition id.
        transition: u16,
        /// The Welcome.
        welcome: Vec<u8>,
    },
    /// Op 29 with the commit of our latest op 28 (the gateway announcing our own commit as the
    /// winner), possibly with one byte changed. Skipped when we never committed.
    EchoCommit {
        /// Transition id.
        transition: u16,
        /// The change.
        tamper: Tamper,
    },
    /// Op 30 with the welcome of our latest op 28 (meant for the member we added).
    EchoWelcome {
        /// Transition id.
        transition: u16,
        /// The change.
        tamper: Tamper,
    },
    /// Op 21.
    Prepare {
        /// Protocol version.
        version: u16,
        /// Transition id.
        transition: u16,
    },
    /// Op 22.
    Execute {
        /// Transition id.
        transition: u16,
    },
    /// Op 22 for the transition of our latest op 23 (0 when none).
    ExecuteLatest,
    /// Op 24.
    Epoch {
        /// Protocol version.
        version: u16,
        /// Epoch.
        epoch: u64,
    },
    /// Op 11 with `count % 17` users from `first` (0: [`OTHER_USER`]).
    Connect {
        /// First user id.
        first: u64,
        /// How many.
        count: u8,
    },
    /// Op 13 (0: [`OTHER_USER`]).
    Disconnect {
        /// The user.
        user: u64,
    },
    /// A datagram from the other member (SSRC mapped to [`OTHER_USER`]) carrying `payload`, with
    /// a DAVE trailer `[size] FA FA` appended when `marker` is given.
    Media {
        /// The frame.
        payload: Vec<u8>,
        /// The supplemental-size byte of an appended trailer.
        marker: Option<u8>,
    },
    /// Our latest audio frame (DAVE-encrypted when it was) back from the other member's SSRC.
    Loopback {
        /// The change.
        tamper: Tamper,
    },
    /// `queue_opus` with a frame of `len % 1400` bytes of `fill`, then the playout's next slot
    /// (held while DAVE keys are pending).
    Send {
        /// Frame length.
        len: u16,
        /// Frame byte.
        fill: u8,
    },
    /// Close 4015, then a resume (keeps the DAVE session).
    Resume,
    /// Close 4006, then a fresh Identify and handshake (a new DAVE session).
    Reconnect,
    /// `[seq][25 + op % 6][data]`: any binary DAVE frame, client-only opcodes included.
    Raw {
        /// Picks the opcode.
        op: u8,
        /// The payload.
        data: Vec<u8>,
    },
    /// Close 4006 and a fresh handshake in which the next `early % 8` steps arrive after Ready
    /// and IP discovery but before Session Description, i.e. before the DAVE session exists
    /// (an op 25 is kept for it, C34).
    Rejoin {
        /// How many of the following steps come early.
        early: u8,
    },
}

const DAVE_STEP_KINDS: u8 = 20;

impl DaveStep {
    fn read(r: &mut ScriptReader<'_, '_>) -> arbitrary::Result<Self> {
        Ok(match r.u8()? % DAVE_STEP_KINDS {
            0 => DaveStep::ExternalSender(r.bytes()?),
            1 => DaveStep::ExternalSenderParts {
                key: r.bytes()?,
                credential_type: r.u16()?,
                identity: r.bytes()?,
            },
            2 => DaveStep::Proposals {
                operation: r.u8()?,
                wrapped: r.bool()?,
                data: r.bytes()?,
            },
            3 => DaveStep::Commit {
                transition: r.u16()?,
                commit: r.bytes()?,
            },
            4 => DaveStep::Welcome {
                transition: r.u16()?,
                welcome: r.bytes()?,
            },
            5 => DaveStep::EchoCommit {
                transition: r.u16()?,
                tamper: Tamper::read(r)?,
            },
            6 => DaveStep::EchoWelcome {
                transition: r.u16()?,
                tamper: Tamper::read(r)?,
            },
            7 => DaveStep::Prepare {
                version: r.u16()?,
                transition: r.u16()?,
            },
            8 => DaveStep::Execute {
                transition: r.u16()?,
            },
            9 => DaveStep::ExecuteLatest,
            10 => DaveStep::Epoch {
                version: r.u16()?,
                epoch: r.u64()?,
            },
            11 => DaveStep::Connect {
                first: r.u64()?,
                count: r.u8()?,
            },
            12 => DaveStep::Disconnect { user: r.u64()? },
            13 => {
                let marked = r.bool()?;
                DaveStep::Media {
                    marker: if marked { Some(r.u8()?) } else { None },
                    payload: r.bytes()?,
                }
            }
            14 => DaveStep::Loopback {
                tamper: Tamper::read(r)?,
            },
            15 => DaveStep::Send {
                len: r.u16()?,
                fill: r.u8()?,
            },
            16 => DaveStep::Resume,
            17 => DaveStep::Reconnect,
            18 => DaveStep::Raw {
                op: r.u8()?,
                data: r.bytes()?,
            },
            _ => DaveStep::Rejoin { early: r.u8()? },
        })
    }

    fn write(&self, w: &mut ScriptWriter) {
        match self {
            DaveStep::ExternalSender(bytes) => {
                w.u8(0);
                w.bytes(bytes);
            }
            DaveStep::ExternalSenderParts {
                key,
                credential_type,
                identity,
            } => {
                w.u8(1);
                w.bytes(key);
                w.u16(*credential_type);
                w.bytes(identity);
            }
            DaveStep::Proposals {
                operation,
                wrapped,
                data,
            } => {
                w.u8(2);
                w.u8(*operation);
                w.bool(*wrapped);
                w.bytes(data);
            }
            DaveStep::Commit { transition, commit } => {
                w.u8(3);
                w.u16(*transition);
                w.bytes(commit);
            }
            DaveStep::Welcome {
                transition,
                welcome,
            } => {
                w.u8(4);
                w.u16(*transition);
                w.bytes(welcome);
            }
            DaveStep::EchoCommit { transition, tamper } => {
                w.u8(5);
                w.u16(*transition);
                tamper.write(w);
            }
            DaveStep::EchoWelcome { transition, tamper } => {
                w.u8(6);
                w.u16(*transition);
                tamper.write(w);
            }
            DaveStep::Prepare {
                version,
                transition,
            } => {
                w.u8(7);
                w.u16(*version);
                w.u16(*transition);
            }
            DaveStep::Execute { transition } => {
                w.u8(8);
                w.u16(*transition);
            }
            DaveStep::ExecuteLatest => w.u8(9),
            DaveStep::Epoch { version, epoch } => {
                w.u8(10);
                w.u16(*version);
                w.u64(*epoch);
            }
            DaveStep::Connect { first, count } => {
                w.u8(11);
                w.u64(*first);
                w.u8(*count);
            }
            DaveStep::Disconnect { user } => {
                w.u8(12);
                w.u64(*user);
            }
            DaveStep::Media { payload, marker } => {
                w.u8(13);
                w.bool(marker.is_some());
                if let Some(size) = marker {
                    w.u8(*size);
                }
                w.bytes(payload);
            }
            DaveStep::Loopback { tamper } => {
                w.u8(14);
                tamper.write(w);
            }
            DaveStep::Send { len, fill } => {
                w.u8(15);
                w.u16(*len);
                w.u8(*fill);
            }
            DaveStep::Resume => w.u8(16),
            DaveStep::Reconnect => w.u8(17),
            DaveStep::Raw { op, data } => {
                w.u8(18);
                w.u8(*op);
                w.bytes(data);
            }
            DaveStep::Rejoin { early } => {
                w.u8(19);
                w.u8(*early);
            }
        }
    }
}

/// Input of the [`dave_binary`] target: up to [`MAX_DAVE_STEPS`] steps, run on a connection that
/// negotiated DAVE version 1 (Session Description `dave_protocol_version: 1`, channel id known,
/// the other member's SSRC mapped to [`OTHER_USER`] by op 5) and has sent its first key package.
///
/// The byte layout is the small language of [`SessionScript`] (a tag byte per step, little-endian
/// integers, `u16`-length-prefixed byte strings), so seed files carrying real MLS messages can be
/// written with [`DaveScript::to_bytes`] and mutated in place by libFuzzer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaveScript {
    /// What happens, in order.
    pub steps: Vec<DaveStep>,
}

impl<'a> Arbitrary<'a> for DaveScript {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut r = ScriptReader { u };
        let mut steps = Vec::new();
        while !r.u.is_empty() && steps.len() < MAX_DAVE_STEPS {
            steps.push(DaveStep::read(&mut r)?);
        }
        Ok(Self { steps })
    }
}

impl DaveScript {
    /// The bytes that [`Arbitrary`] reads back as this script (for seed files).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ScriptWriter::default();
        for step in &self.steps {
            step.write(&mut w);
        }
        w.out
    }
}

/// What a [`DaveScript`] made the connection do: the milestones a seed is expected to reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaveReport {
    /// Op 26 key packages sent after the handshake's first one (re-initialisations).
    pub key_packages: u32,
    /// Op 28 commits sent.
    pub commits: u32,
    /// Op 23 sent.
    pub transitions_ready: u32,
    /// Op 31 sent (recoveries).
    pub invalid_commit_welcomes: u32,
    /// `DaveTransition` events.
    pub transitions: u32,
    /// `DaveReady` events.
    pub ready: u32,
    /// `DaveMessageFailed` events.
    pub message_failures: u32,
    /// Highest MLS epoch seen.
    pub max_epoch: u64,
    /// Frames we sent DAVE-encrypted.
    pub dave_frames_sent: u64,
    /// Received frames that failed DAVE decryption.
    pub dave_decrypt_failures: u64,
    /// `PlayoutHeld` events for DAVE keys (queued audio waiting for them).
    pub dave_holds: u32,
}
