//! DAVE end-to-end encryption: the glue between the voice gateway's DAVE opcodes (docs/protocol.md 9)
//! and the [`davey`](https://docs.rs/davey) MLS/frame-encryption implementation.
//!
//! What this module decides (docs/protocol.md 9.3, steps 1-9):
//!
//! 1. Session Description with `dave_protocol_version > 0` creates a DAVE session (our user id, the
//!    channel id as MLS group id) and sends op 26 with a fresh key package. Version 0 (Stage
//!    channels) means plain Opus and no session.
//! 2. Op 25 (external sender) is applied to the session, or kept until the session exists (C34).
//! 3. Op 27 proposals are checked against the recognised users (self + op 11 − op 13); a
//!    resulting commit goes out as op 28 `commit [welcome]` (C35).
//! 4. / 5. Op 29 commit and op 30 welcome: on success the transition is prepared and op 23 is sent
//!    (transition 0 executes at once, C37); on failure op 31 goes out, the session is re-initialised
//!    and a new op 26 is sent (C38).
//! 6. Op 22 executes a prepared transition: only then does the outgoing key or protocol version
//!    change (C41).
//! 7. Op 21 prepares a transition announced by the gateway; version 0 is a downgrade (receive
//!    passthrough on until the next upgrade), answered with op 23 unless its id is 0 (C40).
//! 8. Op 24 with epoch 1 re-initialises the session and sends a new op 26 (C39). After a
//!    downgrade this starts the upgrade: the call is becoming end-to-end encrypted, so from op 24
//!    until the upgrade executes non-silence audio is held ([`DaveStatus::Negotiating`], C48)
//!    rather than sent plain.
//! 9. An upgrade from version 0 lets unencrypted frames through for 10 more seconds.
//!
//! Plus the discord.js recovery rule: more than 36 consecutive decrypt failures while keyed and
//! with no pending transition send op 31 for the last transition and re-initialise.
//!
//! A new voice connection (fresh Identify after a reconnect or a channel move, C49) starts from a
//! blank state and builds a new DAVE session; a resume keeps it.
//!
//! # The one clock read
//!
//! The core reads no clock, with one isolated exception: `davey` reads `std::time::Instant`
//! internally, inside this module's calls only, to expire old decryption keys (10 s after a
//! transition) and passthrough windows (10 s after an upgrade), and to time its own per-frame
//! statistics. Those deadlines only decide whether a *received* frame can still be decrypted or
//! passed through; no output, timer or state transition of this crate depends on them, so tests
//! with a fake clock stay deterministic for everything they observe through
//! [`Output`](crate::Output), except the acceptance of late frames around a transition.
//!
//! # Debug builds
//!
//! `tls_codec` 0.4 (under `openmls`) checks the length prefix of MLS vectors with a
//! `debug_assert!` before returning its decoding error, so with debug assertions on a malformed
//! DAVE message would panic instead of being reported. This workspace turns debug assertions off
//! for that one crate (`[profile.dev.package.tls_codec]` in the root manifest); an application
//! that builds this crate in debug mode should do the same. Release builds are not affected.
//!
//! # Secrets
//!
//! The MLS state (signature key, group secrets, sender key ratchets) lives inside `davey`'s
//! session and is never logged: this module's `Debug` shows only versions and counters. This
//! crate holds no DAVE key of its own; the buffers that carry media through the DAVE stage are
//! zeroized when dropped, and the session is dropped (with the connection's other state) on
//! every fresh connection and on close. `openmls` zeroizes its secrets; `davey` 0.2.0 does not
//! zeroize its sender-key ratchets.

/// The highest DAVE protocol version this build can speak: `davey::DAVE_PROTOCOL_VERSION` (1)
/// with the `dave` feature, 0 without it.
#[cfg(feature = "dave")]
pub const SUPPORTED_PROTOCOL_VERSION: u16 = davey::DAVE_PROTOCOL_VERSION;
/// The highest DAVE protocol version this build can speak: `davey::DAVE_PROTOCOL_VERSION` (1)
/// with the `dave` feature, 0 without it.
#[cfg(not(feature = "dave"))]
pub const SUPPORTED_PROTOCOL_VERSION: u16 = 0;

/// Size of the DAVE trailer on an Opus frame at most: 8-byte tag, up to 5 bytes of ULEB128
/// nonce, the supplemental-size byte and the `FA FA` marker (docs/protocol.md 9.4).
pub const MAX_FRAME_OVERHEAD: usize = 8 + 5 + 1 + 2;

/// The marker that ends every DAVE-encrypted frame.
pub const MAGIC_MARKER: [u8; 2] = [0xFA, 0xFA];

/// Where end-to-end encryption stands for our outgoing audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DaveStatus {
    /// No end-to-end encryption: not negotiated (Stage channel, or DAVE not offered), or the call
    /// was downgraded to version 0. Audio goes out as plain Opus under transport encryption.
    Off,
    /// DAVE is negotiated but we hold no sending key yet (joining the MLS group, re-joining
    /// after a recovery, or upgrading from version 0 after op 24). Queued audio waits
    /// ([`HoldReason::DaveKeysPending`](crate::playout::HoldReason::DaveKeysPending)).
    Negotiating,
    /// Audio is end-to-end encrypted.
    Active,
}

/// A DAVE failure that ends the connection (a failed MLS message does not: it is answered with
/// op 31 and reported as [`Event::DaveRecovery`](crate::Event::DaveRecovery)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DaveError {
    /// DAVE was negotiated but the channel id, which is the MLS group id, is unknown.
    #[error(
        "DAVE was negotiated but the channel id (the MLS group id) is unknown: \
         give ConnectionInfo a channel_id"
    )]
    MissingChannelId,
    /// The DAVE session could not be created or re-initialised.
    #[error("could not create the DAVE session: {0}")]
    Session(String),
    /// Encrypting an outgoing frame failed for another reason than missing keys.
    #[error("DAVE frame encryption failed: {0}")]
    Encrypt(String),
}

#[cfg(feature = "dave")]
pub(crate) use imp::Dave;
#[cfg(not(feature = "dave"))]
pub(crate) use stub::Dave;

/// What happened to a received frame in the DAVE stage.
#[derive(Debug)]
#[cfg_attr(not(feature = "dave"), allow(dead_code))]
pub(crate) enum Incoming<'a> {
    /// Not a DAVE frame that needs work (silence, plain Opus while DAVE is off, passthrough):
    /// deliver the frame as it is.
    Plain,
    /// Decrypted: deliver these bytes.
    Decrypted(&'a [u8]),
    /// A DAVE frame whose SSRC no op 5 has mapped to a user yet: it cannot be decrypted now, and
    /// the caller may hold it until the mapping arrives.
    UnknownSender,
    /// Dropped: the reason and the number of consecutive failures so far.
    Failed {
        /// What went wrong.
        reason: String,
        /// Consecutive failures (reset by a success or a transition).
        consecutive: u32,
    },
}

#[cfg(feature = "dave")]
mod imp {
    use std::collections::{BTreeSet, HashMap, VecDeque};
    use std::fmt;
    use std::num::NonZeroU16;

    use davey::{Codec, DaveSession, MediaType, ProposalsOperationType};
    use zeroize::Zeroizing;

    use super::{DaveError, DaveStatus, Incoming, MAGIC_MARKER};
    use crate::error::{Error, NotReady};
    use crate::id::{ChannelId, UserId};
    use crate::io::{Event, Output};
    use crate::payload::{
        ClientMessage, DaveMlsInvalidCommitWelcome, DavePrepareEpoch, DavePrepareTransition,
        DaveTransitionReady, Encoded, Opcode, ProposalsOperation, ServerMessage,
    };
    use crate::rtp::SILENCE_FRAME;

    /// More consecutive decrypt failures than this, with keys and no pending transition, trigger
    /// the op 31 recovery (discord.js `DEFAULT_DECRYPTION_FAILURE_TOLERANCE`).
    const DECRYPT_FAILURE_TOLERANCE: u32 = 36;
    /// Seconds unencrypted frames are still accepted after an upgrade from version 0 (step 9).
    const UPGRADE_PASSTHROUGH_SECS: u32 = 10;

    /// The DAVE state of one voice connection.
    pub(crate) struct Dave {
        user_id: u64,
        session: Option<DaveSession>,
        /// The protocol version our outgoing media uses now (changes only when a transition
        /// executes, or with a Session Description).
        protocol_version: u16,
        /// Self + op 11 − op 13 (validates add proposals and welcomes).
        recognized: BTreeSet<u64>,
        /// Prepared transitions: id -> protocol version.
        pending: HashMap<u16, u16>,
        /// Op 25 that arrived before the session existed.
        early_external_sender: Option<Vec<u8>>,
        last_transition_id: u16,
        /// A recovery is under way: no second one until a transition executes.
        reinitializing: bool,
        /// Op 24 started a new group while the call was at version 0: the call is becoming
        /// end-to-end encrypted, so non-silence audio waits for the upgrade to execute (C48)
        /// instead of going out plain.
        upgrading: bool,
        consecutive_failures: u32,
        /// DAVE output of the frame being sent (reused: no allocation per packet).
        tx: Zeroizing<Vec<u8>>,
        /// Decrypted frame being received (reused).
        rx: Zeroizing<Vec<u8>>,
    }

    impl fmt::Debug for Dave {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // Never the MLS state: versions and counters only.
            f.debug_struct("Dave")
                .field("protocol_version", &self.protocol_version)
                .field("status", &self.status())
                .field("has_session", &self.session.is_some())
                .field("recognized_users", &self.recognized.len())
                .field("pending_transitions", &self.pending.len())
                .field("consecutive_failures", &self.consecutive_failures)
                .finish_non_exhaustive()
        }
    }

    fn send(out: &mut VecDeque<Output>, message: &ClientMessage) {
        out.push_back(match message.encode() {
            Encoded::Text(text) => Output::SendText(text),
            Encoded::Binary(bytes) => Output::SendBinary(bytes),
        });
    }

    impl Dave {
        pub(crate) fn new(user_id: UserId) -> Self {
            let mut dave = Self {
                user_id: user_id.0,
                session: None,
                protocol_version: 0,
                recognized: BTreeSet::new(),
                pending: HashMap::new(),
                early_external_sender: None,
                last_transition_id: 0,
                reinitializing: false,
                upgrading: false,
                consecutive_failures: 0,
                tx: Zeroizing::new(Vec::new()),
                rx: Zeroizing::new(Vec::new()),
            };
            dave.recognized.insert(dave.user_id);
            dave
        }

        /// A new voice connection (fresh Identify): everything of the previous one is dropped.
        pub(crate) fn reset(&mut self) {
            self.session = None;
            self.protocol_version = 0;
            self.recognized.clear();
            self.recognized.insert(self.user_id);
            self.pending.clear();
            self.early_external_sender = None;
            self.last_transition_id = 0;
            self.reinitializing = false;
            self.upgrading = false;
            self.consecutive_failures = 0;
        }

        /// Op 11. Returns how many ids were not recognised because the set is full
        /// ([`DAVE_RECOGNISED_USERS`](crate::limits::DAVE_RECOGNISED_USERS)).
        pub(crate) fn add_users(&mut self, users: &[UserId]) -> usize {
            let mut refused = 0;
            for user in users {
                if self.recognized.len() < crate::limits::DAVE_RECOGNISED_USERS
                    || self.recognized.contains(&user.0)
                {
                    self.recognized.insert(user.0);
                } else {
                    refused += 1;
                }
            }
            refused
        }

        /// Users recognised now (ourselves included).
        pub(crate) fn recognised_users(&self) -> usize {
            self.recognized.len()
        }

        /// Op 13.
        pub(crate) fn remove_user(&mut self, user: UserId) {
            if user.0 != self.user_id {
                self.recognized.remove(&user.0);
            }
        }

        pub(crate) fn status(&self) -> DaveStatus {
            if self.protocol_version == 0 {
                if self.upgrading {
                    DaveStatus::Negotiating
                } else {
                    DaveStatus::Off
                }
            } else if self.session.as_ref().is_some_and(DaveSession::can_encrypt) {
                DaveStatus::Active
            } else {
                DaveStatus::Negotiating
            }
        }

        pub(crate) fn protocol_version(&self) -> u16 {
            self.protocol_version
        }

        pub(crate) fn epoch(&self) -> Option<u64> {
            self.session
                .as_ref()
                .and_then(DaveSession::epoch)
                .map(|epoch| epoch.as_u64())
        }

        pub(crate) fn privacy_code(&self) -> Option<&str> {
            self.session
                .as_ref()
                .and_then(DaveSession::voice_privacy_code)
        }

        pub(crate) fn verification_code(&self, user: UserId) -> Option<String> {
            self.session
                .as_ref()
                .and_then(|s| s.get_verification_code(user.0).ok())
        }

        pub(crate) fn user_ids(&self) -> Option<Vec<UserId>> {
            self.session
                .as_ref()
                .and_then(DaveSession::get_user_ids)
                .map(|ids| ids.into_iter().map(UserId).collect())
        }

        /// Step 1: Session Description.
        pub(crate) fn on_session_description(
            &mut self,
            version: u16,
            channel: Option<ChannelId>,
            out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            self.protocol_version = version;
            self.upgrading = false;
            if version == 0 {
                return Ok(());
            }
            self.start_session(version, channel, out)
        }

        /// Creates (or re-initialises) the session for `version` and sends op 26.
        fn start_session(
            &mut self,
            version: u16,
            channel: Option<ChannelId>,
            out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            let channel = channel.ok_or(DaveError::MissingChannelId)?;
            let version = NonZeroU16::new(version)
                .ok_or_else(|| DaveError::Session("protocol version 0 has no session".into()))?;
            match self.session.as_mut() {
                Some(session) => session
                    .reinit(version, self.user_id, channel.0, None)
                    .map_err(|e| DaveError::Session(e.to_string()))?,
                None => {
                    let session = DaveSession::new(version, self.user_id, channel.0, None)
                        .map_err(|e| DaveError::Session(e.to_string()))?;
                    self.session = Some(session);
                }
            }
            self.pending.clear();
            if let Some(external_sender) = self.early_external_sender.take() {
                self.set_external_sender(&external_sender, out);
            }
            self.send_key_package(out);
            Ok(())
        }

        fn send_key_package(&mut self, out: &mut VecDeque<Output>) {
            let Some(session) = self.session.as_mut() else {
                return;
            };
            match session.create_key_package() {
                Ok(key_package) => send(out, &ClientMessage::DaveMlsKeyPackage(key_package)),
                Err(error) => failed(out, Opcode::DaveMlsKeyPackage, error.to_string()),
            }
        }

        fn set_external_sender(&mut self, payload: &[u8], out: &mut VecDeque<Output>) {
            let Some(session) = self.session.as_mut() else {
                self.early_external_sender = Some(payload.to_vec());
                return;
            };
            if let Err(error) = session.set_external_sender(payload) {
                failed(out, Opcode::DaveMlsExternalSender, error.to_string());
            }
        }

        /// A DAVE message from the gateway (ops 21, 22, 24, 25, 27, 29, 30). `Err` ends the
        /// connection.
        pub(crate) fn on_message(
            &mut self,
            message: ServerMessage,
            channel: Option<ChannelId>,
            out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            match message {
                // A version we did not offer: the gateway is wrong, the call goes on as it is.
                ServerMessage::DavePrepareTransition(DavePrepareTransition {
                    protocol_version,
                    ..
                })
                | ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
                    protocol_version, ..
                }) if protocol_version > super::SUPPORTED_PROTOCOL_VERSION => {
                    let op = Opcode::from_u8(message.op()).unwrap_or(Opcode::DavePrepareEpoch);
                    let reason = format!(
                        "protocol version {protocol_version} was not offered (we support up to {})",
                        super::SUPPORTED_PROTOCOL_VERSION
                    );
                    failed(out, op, reason);
                }
                ServerMessage::DaveMlsExternalSender(payload) => {
                    self.set_external_sender(&payload, out);
                }
                ServerMessage::DaveMlsProposals {
                    operation,
                    proposals,
                } => self.on_proposals(operation, &proposals, out),
                ServerMessage::DaveMlsAnnounceCommitTransition {
                    transition_id,
                    commit,
                } => self.on_commit(transition_id, &commit, channel, out)?,
                ServerMessage::DaveMlsWelcome {
                    transition_id,
                    welcome,
                } => self.on_welcome(transition_id, &welcome, channel, out)?,
                ServerMessage::DavePrepareTransition(prepare) => {
                    self.on_prepare_transition(
                        prepare.transition_id,
                        prepare.protocol_version,
                        out,
                    );
                }
                ServerMessage::DaveExecuteTransition(execute) => {
                    self.on_execute_transition(execute.transition_id, out);
                }
                // Epoch 1: a new group is being created. Later epochs would change the version of
                // the existing group; with one protocol version there is nothing to do.
                ServerMessage::DavePrepareEpoch(prepare)
                    if prepare.epoch == 1 && prepare.protocol_version > 0 =>
                {
                    self.reinitializing = false;
                    // After a downgrade this is the upgrade: hold audio until it executes.
                    self.upgrading = self.protocol_version == 0;
                    self.start_session(prepare.protocol_version, channel, out)?;
                }
                _ => {}
            }
            Ok(())
        }

        /// Step 3: op 27.
        fn on_proposals(
            &mut self,
            operation: ProposalsOperation,
            proposals: &[u8],
            out: &mut VecDeque<Output>,
        ) {
            let Some(session) = self.session.as_mut() else {
                ignored(out, "op 27 DAVE proposals arrived without a DAVE session");
                return;
            };
            let operation = match operation {
                ProposalsOperation::Append => ProposalsOperationType::APPEND,
                ProposalsOperation::Revoke => ProposalsOperationType::REVOKE,
                ProposalsOperation::Unknown(byte) => {
                    let reason =
                        format!("unknown proposals operation type {byte}, expected 0 or 1");
                    failed(out, Opcode::DaveMlsProposals, reason);
                    return;
                }
            };
            let recognized: Vec<u64> = self.recognized.iter().copied().collect();
            match session.process_proposals(operation, proposals, Some(&recognized)) {
                Ok(Some(commit_welcome)) => {
                    let mut payload = commit_welcome.commit;
                    if let Some(welcome) = commit_welcome.welcome {
                        payload.extend_from_slice(&welcome);
                    }
                    send(out, &ClientMessage::DaveMlsCommitWelcome(payload));
                }
                Ok(None) => {}
                Err(error) => failed(out, Opcode::DaveMlsProposals, error.to_string()),
            }
        }

        /// Step 4: op 29.
        fn on_commit(
            &mut self,
            transition_id: u16,
            commit: &[u8],
            channel: Option<ChannelId>,
            out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            let Some(session) = self.session.as_mut() else {
                ignored(out, "op 29 DAVE commit arrived without a DAVE session");
                return Ok(());
            };
            match session.process_commit(commit) {
                Ok(true) => self.prepare_after_join(transition_id, channel, out),
                // No group or nothing proposed: the commit is not for us (libdave ignores it too).
                Ok(false) => Ok(()),
                Err(error) => {
                    let reason = format!("op 29 commit failed: {error}");
                    self.recover(transition_id, reason, channel, out)
                }
            }
        }

        /// Step 5: op 30.
        fn on_welcome(
            &mut self,
            transition_id: u16,
            welcome: &[u8],
            channel: Option<ChannelId>,
            out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            let Some(session) = self.session.as_mut() else {
                ignored(out, "op 30 DAVE welcome arrived without a DAVE session");
                return Ok(());
            };
            let recognized: Vec<u64> = self.recognized.iter().copied().collect();
            match session.process_welcome(welcome, Some(&recognized)) {
                Ok(()) => self.prepare_after_join(transition_id, channel, out),
                Err(error) => {
                    let reason = format!("op 30 welcome failed: {error}");
                    self.recover(transition_id, reason, channel, out)
                }
            }
        }

        /// After a processed commit or welcome: install the new receive keys, then op 23 (or
        /// switch at once for transition 0).
        fn prepare_after_join(
            &mut self,
            transition_id: u16,
            channel: Option<ChannelId>,
            out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            let Some(session) = self.session.as_mut() else {
                return Ok(());
            };
            let version = session.protocol_version().get();
            if let Err(error) = session.prepare_transition(transition_id, version) {
                let reason = format!("preparing transition {transition_id} failed: {error}");
                return self.recover(transition_id, reason, channel, out);
            }
            if transition_id == 0 {
                self.executed(0, version, out);
            } else {
                self.pending.insert(transition_id, version);
                send(
                    out,
                    &ClientMessage::DaveTransitionReady(DaveTransitionReady { transition_id }),
                );
            }
            Ok(())
        }

        /// Step 7: op 21.
        fn on_prepare_transition(
            &mut self,
            transition_id: u16,
            version: u16,
            out: &mut VecDeque<Output>,
        ) {
            if let Some(session) = self.session.as_mut() {
                if version == 0 {
                    // Downgrade: accept unencrypted frames until the next upgrade.
                    session.set_passthrough_mode(true, None);
                }
                if let Err(error) = session.prepare_transition(transition_id, version) {
                    failed(out, Opcode::DavePrepareTransition, error.to_string());
                }
            }
            if transition_id == 0 {
                self.executed(0, version, out);
            } else {
                self.pending.insert(transition_id, version);
                send(
                    out,
                    &ClientMessage::DaveTransitionReady(DaveTransitionReady { transition_id }),
                );
            }
        }

        /// Step 6: op 22.
        fn on_execute_transition(&mut self, transition_id: u16, out: &mut VecDeque<Output>) {
            let Some(version) = self.pending.remove(&transition_id) else {
                ignored(
                    out,
                    &format!("op 22 for transition {transition_id}, which was not prepared"),
                );
                return;
            };
            if let Some(session) = self.session.as_mut() {
                if let Err(error) = session.execute_transition(transition_id) {
                    failed(out, Opcode::DaveExecuteTransition, error.to_string());
                }
            }
            self.executed(transition_id, version, out);
        }

        /// Bookkeeping once a transition took effect (davey switched the keys).
        fn executed(&mut self, transition_id: u16, version: u16, out: &mut VecDeque<Output>) {
            let from = self.protocol_version;
            self.protocol_version = version;
            self.last_transition_id = transition_id;
            self.reinitializing = false;
            self.upgrading = false;
            self.consecutive_failures = 0;
            if from == 0 && version > 0 {
                if let Some(session) = self.session.as_mut() {
                    // Step 9: in-flight plain frames still play for a while after an upgrade.
                    session.set_passthrough_mode(false, Some(UPGRADE_PASSTHROUGH_SECS));
                }
            }
            out.push_back(Output::Event(Event::DaveTransition {
                transition_id,
                from,
                to: version,
            }));
            if self.status() == DaveStatus::Active {
                out.push_back(Output::Event(Event::DaveReady {
                    protocol_version: version,
                    epoch: self.epoch().unwrap_or_default(),
                    privacy_code: self.privacy_code().map(str::to_owned),
                }));
            }
        }

        /// Op 31 for `transition_id`, re-initialise, new op 26 (C38).
        fn recover(
            &mut self,
            transition_id: u16,
            reason: String,
            channel: Option<ChannelId>,
            out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            tracing::debug!(transition_id, %reason, "DAVE recovery");
            out.push_back(Output::Event(Event::DaveRecovery {
                transition_id,
                reason,
            }));
            send(
                out,
                &ClientMessage::DaveMlsInvalidCommitWelcome(DaveMlsInvalidCommitWelcome {
                    transition_id,
                }),
            );
            self.reinitializing = true;
            self.consecutive_failures = 0;
            let version = self
                .session
                .as_ref()
                .map_or(self.protocol_version, |s| s.protocol_version().get());
            self.start_session(version, channel, out)
        }

        /// Frames that failed to decrypt in a row (reset by a success or a transition).
        pub(crate) fn consecutive_failures(&self) -> u32 {
            self.consecutive_failures
        }

        /// The outgoing DAVE stage: `frame` itself while DAVE is off, its DAVE-encrypted form
        /// while keyed, [`NotReady::E2eeNotReady`] while negotiated but not keyed (C48). Silence
        /// is never transformed (C46).
        pub(crate) fn encrypt<'a>(&'a mut self, frame: &'a [u8]) -> Result<&'a [u8], Error> {
            if self.protocol_version == 0 || frame == SILENCE_FRAME {
                return Ok(frame);
            }
            let Some(session) = self.session.as_mut() else {
                return Err(Error::NotReady(NotReady::E2eeNotReady));
            };
            if !session.can_encrypt() {
                return Err(Error::NotReady(NotReady::E2eeNotReady));
            }
            match session.encrypt_into(MediaType::AUDIO, Codec::OPUS, frame, &mut self.tx) {
                Ok(()) => Ok(&self.tx[..]),
                Err(davey::errors::EncryptError::NotReady) => {
                    Err(Error::NotReady(NotReady::E2eeNotReady))
                }
                Err(error) => Err(Error::Dave(DaveError::Encrypt(error.to_string()))),
            }
        }

        /// The incoming DAVE stage for a transport-decrypted frame from `user` (docs/protocol.md 10).
        /// Failures may queue the op 31 recovery into `out`.
        pub(crate) fn decrypt<'a>(
            &'a mut self,
            user: Option<UserId>,
            frame: &[u8],
            channel: Option<ChannelId>,
            out: &mut VecDeque<Output>,
        ) -> Incoming<'a> {
            if frame == SILENCE_FRAME {
                return Incoming::Plain;
            }
            let marked = frame.ends_with(&MAGIC_MARKER);
            if self.protocol_version == 0 && !marked {
                return Incoming::Plain;
            }
            let Some(session) = self.session.as_mut() else {
                if self.protocol_version == 0 {
                    return Incoming::Plain;
                }
                return Incoming::Failed {
                    reason: "no DAVE session yet".to_owned(),
                    consecutive: self.consecutive_failures,
                };
            };
            let Some(user) = user else {
                return Incoming::UnknownSender;
            };
            self.rx.clear();
            self.rx.resize(frame.len(), 0);
            let keyed = session.can_encrypt();
            match session.decrypt_into(user.0, MediaType::AUDIO, frame, &mut self.rx) {
                Ok(len) => {
                    self.consecutive_failures = 0;
                    match self.rx.get(..len) {
                        Some(plain) => Incoming::Decrypted(plain),
                        None => Incoming::Plain,
                    }
                }
                Err(error) => {
                    let reason = error.to_string();
                    if self.protocol_version > 0 && keyed {
                        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                    }
                    let consecutive = self.consecutive_failures;
                    if consecutive > DECRYPT_FAILURE_TOLERANCE
                        && self.pending.is_empty()
                        && !self.reinitializing
                    {
                        let transition_id = self.last_transition_id;
                        let why = format!("{consecutive} consecutive frames failed to decrypt");
                        if let Err(error) = self.recover(transition_id, why, channel, out) {
                            failed(out, Opcode::DaveMlsInvalidCommitWelcome, error.to_string());
                        }
                    }
                    Incoming::Failed {
                        reason,
                        consecutive,
                    }
                }
            }
        }
    }

    fn failed(out: &mut VecDeque<Output>, op: Opcode, reason: String) {
        tracing::debug!(?op, %reason, "DAVE message failed");
        out.push_back(Output::Event(Event::DaveMessageFailed { op, reason }));
    }

    fn ignored(out: &mut VecDeque<Output>, reason: &str) {
        tracing::debug!(%reason, "DAVE message ignored");
        out.push_back(Output::Event(Event::Ignored {
            reason: reason.to_owned(),
        }));
    }
}

#[cfg(not(feature = "dave"))]
mod stub {
    use std::collections::VecDeque;

    use super::{DaveError, DaveStatus, Incoming};
    use crate::error::Error;
    use crate::id::{ChannelId, UserId};
    use crate::io::Output;
    use crate::payload::ServerMessage;

    /// Without the `dave` feature nothing is negotiated: every frame is plain.
    #[derive(Debug)]
    pub(crate) struct Dave;

    impl Dave {
        pub(crate) fn new(_user_id: UserId) -> Self {
            Self
        }
        pub(crate) fn reset(&mut self) {}
        pub(crate) fn add_users(&mut self, _users: &[UserId]) -> usize {
            0
        }
        pub(crate) fn recognised_users(&self) -> usize {
            0
        }
        pub(crate) fn remove_user(&mut self, _user: UserId) {}
        pub(crate) fn status(&self) -> DaveStatus {
            DaveStatus::Off
        }
        pub(crate) fn protocol_version(&self) -> u16 {
            0
        }
        pub(crate) fn epoch(&self) -> Option<u64> {
            None
        }
        pub(crate) fn privacy_code(&self) -> Option<&str> {
            None
        }
        pub(crate) fn verification_code(&self, _user: UserId) -> Option<String> {
            None
        }
        pub(crate) fn user_ids(&self) -> Option<Vec<UserId>> {
            None
        }
        pub(crate) fn on_session_description(
            &mut self,
            _version: u16,
            _channel: Option<ChannelId>,
            _out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            Ok(())
        }
        pub(crate) fn on_message(
            &mut self,
            _message: ServerMessage,
            _channel: Option<ChannelId>,
            _out: &mut VecDeque<Output>,
        ) -> Result<(), DaveError> {
            Ok(())
        }
        pub(crate) fn consecutive_failures(&self) -> u32 {
            0
        }
        pub(crate) fn encrypt<'a>(&'a mut self, frame: &'a [u8]) -> Result<&'a [u8], Error> {
            Ok(frame)
        }
        pub(crate) fn decrypt<'a>(
            &'a mut self,
            _user: Option<UserId>,
            _frame: &[u8],
            _channel: Option<ChannelId>,
            _out: &mut VecDeque<Output>,
        ) -> Incoming<'a> {
            Incoming::Plain
        }
    }
}
