//! The voice gateway's DAVE role for one voice channel (docs/protocol.md 9): MLS external sender and
//! delivery service, transitions, downgrade and upgrade, and simulated members with davey
//! sessions of their own.
//!
//! Like a sans-IO core, [`DaveChannel`] does no I/O: every call takes `now` and returns the
//! [`Effect`]s the caller applies under the server's state lock (numbered frames to clients,
//! violations). The MLS work of the server side (signing external proposals, parsing key packages
//! and commits) is openmls, the version davey uses; the members it simulates are davey sessions,
//! the same code @discordjs/voice runs.
//!
//! # What the server does
//!
//! - A client whose Identify allows DAVE gets `dave_protocol_version: 1` and, right after the
//!   Session Description, op 25 with the channel's external sender.
//! - Op 26 key packages are validated (KeyPackage signature, ciphersuite 2, credential = the
//!   user id as 8 big-endian bytes) and turn into external Add proposals (op 27, append).
//! - With no group yet, every member that sent a key package gets proposals adding all the others
//!   to its own pending group once there are two or more; the first commit wins (docs/protocol.md
//!   9.3). A lone member stays unkeyed, as on Discord.
//! - With a group, the members in it get proposals (removes of members that left or re-keyed,
//!   then adds); the first valid op 28 wins and is announced with op 29 to the members and op 30
//!   (its welcome) to the added ones, under a fresh non-zero transition id.
//! - Op 22 executes a transition once every participant sent op 23, or after
//!   [`DaveConfig::transition_timeout`](crate::config::DaveConfig::transition_timeout).
//! - A user without DAVE downgrades the call (op 21 with version 0, then op 22); when the last
//!   such user leaves, op 24 (epoch 1) starts a new group and the call upgrades again.
//! - Clients get the first chance to commit. A simulated member's commit is used when no client
//!   is asked, or when no client commit arrives within
//!   [`DaveConfig::commit_timeout`](crate::config::DaveConfig::commit_timeout).
//!
//! # Leaf bookkeeping
//!
//! Remove proposals name a leaf index. The server does not decrypt the group, so it tracks leaf
//! occupancy itself with RFC 9420's rules (removes blank their leaf and trailing blanks are
//! truncated, each add takes the leftmost blank leaf or extends the tree), relying on the
//! committer committing exactly the proposals of the round, as davey does. Tests check the
//! result against the simulated members' own view of the group.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use davey::{DaveSession, MediaType, ProposalsOperationType};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use serde::{Deserialize, Serialize};
use voice_proto::payload::{
    DaveExecuteTransition, DavePrepareEpoch, DavePrepareTransition, ProposalsOperation,
    ServerMessage,
};
use voice_proto::rtp::SILENCE_FRAME;

use crate::config::DaveConfig;
use crate::report::ViolationKind;

/// The DAVE protocol version the server speaks.
pub(crate) const PROTOCOL_VERSION: u16 = 1;

/// Something to do with the outside world.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Send a numbered message to this client.
    Send {
        /// The client index.
        client: usize,
        /// The message.
        message: ServerMessage,
    },
    /// The client broke a DAVE rule.
    Violation {
        /// The client index.
        client: usize,
        /// What rule.
        kind: ViolationKind,
        /// What arrived.
        detail: String,
    },
}

/// How a member takes part.
enum Kind {
    /// A client over the websocket.
    Remote { client: usize },
    /// A davey session inside the server. `holders` counts the client timelines that simulate
    /// this user (each client's scenario has its own timeline).
    Simulated {
        session: Box<DaveSession>,
        holders: u32,
    },
}

/// A DAVE-capable user in the call.
struct Member {
    kind: Kind,
    /// A key package not yet consumed by a commit.
    key_package: Option<KeyPackage>,
    /// Whether op 25 went to this (remote) member.
    has_external_sender: bool,
    /// When it last executed a transition to a non-zero version (it must encrypt from then on).
    keyed_since: Option<Instant>,
}

impl Member {
    fn client(&self) -> Option<usize> {
        match self.kind {
            Kind::Remote { client } => Some(client),
            Kind::Simulated { .. } => None,
        }
    }

    fn session(&mut self) -> Option<&mut DaveSession> {
        match &mut self.kind {
            Kind::Remote { .. } => None,
            Kind::Simulated { session, .. } => Some(session),
        }
    }
}

/// Proposals out, waiting for the first commit.
struct Round {
    epoch: u64,
    /// No group yet: each recipient gets proposals adding every other one.
    creation: bool,
    /// Users proposed for addition, in proposal order.
    adds: Vec<u64>,
    /// Leaves proposed for removal.
    removes: Vec<u32>,
    /// Members asked to commit.
    recipients: BTreeSet<u64>,
    /// A simulated member's commit, used if no client commits in time.
    fallback: Option<(u64, Vec<u8>, Option<Vec<u8>>)>,
    deadline: Instant,
}

/// A transition announced and not yet executed.
struct Transition {
    id: u16,
    version: u16,
    /// Participants whose op 23 has not arrived.
    awaiting: BTreeSet<u64>,
    /// Everyone who was told about it.
    participants: BTreeSet<u64>,
    deadline: Instant,
}

/// What the server did in one channel's DAVE role, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaveChannelReport {
    /// The voice channel (the MLS group id).
    pub channel_id: String,
    /// The call's protocol version now (0 after a downgrade).
    pub protocol_version: u16,
    /// The group's epoch now (0: no group).
    pub epoch: u64,
    /// User ids by leaf index (`None`: a blank leaf).
    pub leaves: Vec<Option<String>>,
    /// Key packages accepted.
    pub key_packages: u64,
    /// Op 27 messages sent (to clients and simulated members).
    pub proposals_sent: u64,
    /// Commits announced (op 29).
    pub commits_announced: u64,
    /// Commits announced that a client (not a simulated member) made.
    pub client_commits: u64,
    /// Welcomes delivered (op 30).
    pub welcomes_sent: u64,
    /// Transitions executed (op 22), downgrades included.
    pub transitions_executed: u64,
    /// Op 31 received.
    pub invalid_commit_welcomes: u64,
    /// Downgrades to version 0 executed.
    pub downgrades: u64,
    /// Upgrades started (op 24 epoch 1 after a downgrade).
    pub upgrades: u64,
    /// Errors of the simulated members' davey sessions (each is a server-side bug or a bad
    /// message that reached them).
    pub simulated_errors: Vec<String>,
}

/// What the media check makes of one received frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameCheck {
    /// The call is not end-to-end encrypted for this sender (version 0, or not a member).
    NotE2ee,
    /// The silence frame, which DAVE leaves untouched.
    Silence,
    /// A DAVE frame a simulated member decrypted to these Opus bytes.
    Decrypted(Vec<u8>),
    /// A DAVE frame no simulated member could decrypt.
    Failed(String),
    /// A DAVE frame, with no simulated member in the group to decrypt it.
    Unverified,
    /// A frame without DAVE; `keyed` tells whether the sender had executed its E2EE transition
    /// (more than the grace period ago).
    Plain { keyed: bool },
}

/// The channel's DAVE state.
pub(crate) struct DaveChannel {
    channel_id: u64,
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    external_sender: Vec<u8>,
    group_id: GroupId,
    /// The call's protocol version (0 after a downgrade).
    version: u16,
    epoch: u64,
    leaves: Vec<Option<u64>>,
    members: BTreeMap<u64, Member>,
    /// Users without DAVE in the call, with the number of timelines/sessions holding each.
    plain_users: BTreeMap<u64, u32>,
    round: Option<Round>,
    transition: Option<Transition>,
    last_transition_id: u16,
    /// When the last upgrade started (op 24): plain frames sent before the members saw it may
    /// still arrive for a grace period.
    upgraded_at: Option<Instant>,
    commit_timeout: Duration,
    transition_timeout: Duration,
    /// [`DaveConfig::corrupt_first_handshake`](crate::config::DaveConfig::corrupt_first_handshake)
    corrupt_first_handshake: bool,
    /// Clients whose first commit or welcome was already corrupted.
    corrupted: BTreeSet<usize>,
    report: DaveChannelReport,
}

impl std::fmt::Debug for DaveChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never key material: versions, epoch and membership only.
        f.debug_struct("DaveChannel")
            .field("channel_id", &self.channel_id)
            .field("version", &self.version)
            .field("epoch", &self.epoch)
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn send(effects: &mut Vec<Effect>, client: Option<usize>, message: ServerMessage) {
    if let Some(client) = client {
        effects.push(Effect::Send { client, message });
    }
}

fn violation(effects: &mut Vec<Effect>, client: usize, kind: ViolationKind, detail: String) {
    effects.push(Effect::Violation {
        client,
        kind,
        detail,
    });
}

/// Whether `frame` passes DAVE's protocol-frame check (docs/protocol.md 9.4): it ends with the
/// `FA FA` marker and its supplemental size is between 11 and the frame length.
pub(crate) fn looks_encrypted(frame: &[u8]) -> bool {
    let len = frame.len();
    if !frame.ends_with(&[0xFA, 0xFA]) || len < 3 {
        return false;
    }
    let size = frame.get(len - 3).map_or(0, |&s| usize::from(s));
    (11..=len).contains(&size)
}

impl DaveChannel {
    /// A channel whose group does not exist yet.
    pub(crate) fn new(channel_id: u64, config: &DaveConfig) -> Result<Self, String> {
        let ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;
        let signer = SignatureKeyPair::new(ciphersuite.signature_algorithm())
            .map_err(|e| format!("external sender key: {e:?}"))?;
        let external_sender = ExternalSender::new(
            signer.public().into(),
            BasicCredential::new(b"voice-sim".to_vec()).into(),
        )
        .tls_serialize_detached()
        .map_err(|e| format!("external sender: {e}"))?;
        Ok(Self {
            channel_id,
            provider: OpenMlsRustCrypto::default(),
            signer,
            external_sender,
            group_id: GroupId::from_slice(&channel_id.to_be_bytes()),
            version: PROTOCOL_VERSION,
            epoch: 0,
            leaves: Vec::new(),
            members: BTreeMap::new(),
            plain_users: BTreeMap::new(),
            round: None,
            transition: None,
            last_transition_id: 0,
            upgraded_at: None,
            commit_timeout: config.commit_timeout,
            transition_timeout: config.transition_timeout,
            corrupt_first_handshake: config.corrupt_first_handshake,
            corrupted: BTreeSet::new(),
            report: DaveChannelReport {
                channel_id: channel_id.to_string(),
                ..DaveChannelReport::default()
            },
        })
    }

    /// The protocol version a joining client gets in Session Description.
    pub(crate) fn version(&self) -> u16 {
        self.version
    }

    /// Whether `user` takes part in the channel's DAVE role (a client whose Session Description
    /// offered DAVE, or a simulated DAVE user).
    pub(crate) fn is_member(&self, user: u64) -> bool {
        self.members.contains_key(&user)
    }

    /// The simulated DAVE users in the call.
    pub(crate) fn simulated_users(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|(_, m)| matches!(m.kind, Kind::Simulated { .. }))
            .map(|(&u, _)| u)
            .collect()
    }

    /// The report so far.
    pub(crate) fn report(&self) -> DaveChannelReport {
        let mut report = self.report.clone();
        report.protocol_version = self.version;
        report.epoch = self.epoch;
        report.leaves = self
            .leaves
            .iter()
            .map(|leaf| leaf.map(|u| u.to_string()))
            .collect();
        report
    }

    /// The leaf index of every simulated member, as its own session sees the group (for tests
    /// of the leaf bookkeeping).
    #[cfg(test)]
    fn simulated_view(&self) -> Vec<(u64, Vec<Option<u64>>)> {
        let mut views = Vec::new();
        for (&user, member) in &self.members {
            let Kind::Simulated { session, .. } = &member.kind else {
                continue;
            };
            let Some(group) = session.group() else {
                continue;
            };
            let mut leaves = Vec::new();
            for m in group.members() {
                let index = m.index.u32() as usize;
                if leaves.len() <= index {
                    leaves.resize(index + 1, None);
                }
                let id = <[u8; 8]>::try_from(m.credential.serialized_content())
                    .map(u64::from_be_bytes)
                    .ok();
                if let Some(slot) = leaves.get_mut(index) {
                    *slot = id;
                }
            }
            views.push((user, leaves));
        }
        views
    }

    // ---- membership --------------------------------------------------------------------------

    /// A client's session was described with DAVE (or joined while the call is downgraded):
    /// it becomes a member and gets op 25 when the call speaks DAVE.
    pub(crate) fn join_remote(&mut self, client: usize, user: u64, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let send_sender = self.version > 0;
        match self.members.get_mut(&user) {
            // A fresh Identify of the same user: its old leaf goes when its key package comes.
            Some(member) => {
                member.kind = Kind::Remote { client };
                member.key_package = None;
                member.keyed_since = None;
                member.has_external_sender = send_sender;
            }
            None => {
                self.members.insert(
                    user,
                    Member {
                        kind: Kind::Remote { client },
                        key_package: None,
                        has_external_sender: send_sender,
                        keyed_since: None,
                    },
                );
            }
        }
        if send_sender {
            send(
                &mut effects,
                Some(client),
                ServerMessage::DaveMlsExternalSender(self.external_sender.clone()),
            );
        }
        self.forget_participant(user, now, &mut effects);
        effects
    }

    /// A simulated DAVE user joins (one more timeline holds it if it is already there).
    pub(crate) fn join_simulated(&mut self, user: u64, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(Member {
            kind: Kind::Simulated { holders, .. },
            ..
        }) = self.members.get_mut(&user)
        {
            *holders += 1;
            return effects;
        }
        let Some(version) = NonZeroU16::new(PROTOCOL_VERSION) else {
            return effects;
        };
        let session = match DaveSession::new(version, user, self.channel_id, None) {
            Ok(session) => session,
            Err(error) => {
                self.report
                    .simulated_errors
                    .push(format!("user {user}: new session: {error:?}"));
                return effects;
            }
        };
        self.members.insert(
            user,
            Member {
                kind: Kind::Simulated {
                    session: Box::new(session),
                    holders: 1,
                },
                key_package: None,
                has_external_sender: false,
                keyed_since: None,
            },
        );
        if self.version > 0 {
            self.simulated_key_package(user);
        }
        self.advance(now, &mut effects);
        effects
    }

    /// Gives a simulated member the external sender (if it lacks it) and a fresh key package.
    fn simulated_key_package(&mut self, user: u64) {
        let external_sender = self.external_sender.clone();
        let Some(member) = self.members.get_mut(&user) else {
            return;
        };
        let needs_sender = !member.has_external_sender;
        let Some(session) = member.session() else {
            return;
        };
        let result = (|| {
            if needs_sender {
                session
                    .set_external_sender(&external_sender)
                    .map_err(|e| format!("set_external_sender: {e:?}"))?;
            }
            session
                .create_key_package()
                .map_err(|e| format!("create_key_package: {e:?}"))
        })();
        match result.and_then(|bytes| self.parse_key_package(user, &bytes)) {
            Ok(key_package) => {
                if let Some(member) = self.members.get_mut(&user) {
                    member.has_external_sender = true;
                    member.key_package = Some(key_package);
                }
                self.report.key_packages += 1;
            }
            Err(error) => self
                .report
                .simulated_errors
                .push(format!("user {user}: {error}")),
        }
    }

    /// A user leaves the call (its client closed for good, or one simulated timeline ended).
    pub(crate) fn leave(&mut self, user: u64, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(count) = self.plain_users.get_mut(&user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.plain_users.remove(&user);
            }
            self.advance(now, &mut effects);
            return effects;
        }
        let gone = match self.members.get_mut(&user) {
            Some(Member {
                kind: Kind::Simulated { holders, .. },
                ..
            }) => {
                *holders = holders.saturating_sub(1);
                *holders == 0
            }
            Some(_) => true,
            None => false,
        };
        if gone {
            self.members.remove(&user);
            self.forget_participant(user, now, &mut effects);
            self.advance(now, &mut effects);
        }
        effects
    }

    /// A user without DAVE joins: the call downgrades while it is there.
    pub(crate) fn join_plain(&mut self, user: u64, now: Instant) -> Vec<Effect> {
        *self.plain_users.entry(user).or_insert(0) += 1;
        let mut effects = Vec::new();
        self.advance(now, &mut effects);
        effects
    }

    /// `user` no longer answers: it is dropped from the pending round and transition.
    fn forget_participant(&mut self, user: u64, now: Instant, effects: &mut Vec<Effect>) {
        if let Some(round) = &mut self.round {
            round.recipients.remove(&user);
            if round.fallback.as_ref().is_some_and(|(u, ..)| *u == user) {
                round.fallback = None;
            }
            if round.recipients.is_empty() {
                // Nobody left to commit; the next round starts from the current membership.
                self.round = None;
            }
        }
        let execute = self.transition.as_mut().is_some_and(|t| {
            t.awaiting.remove(&user);
            t.awaiting.is_empty()
        });
        if execute {
            self.execute(now, effects);
        }
    }

    // ---- client messages ---------------------------------------------------------------------

    fn parse_key_package(&self, user: u64, bytes: &[u8]) -> Result<KeyPackage, String> {
        let key_package = KeyPackageIn::tls_deserialize_exact_bytes(bytes)
            .map_err(|e| format!("not a KeyPackage: {e}"))?
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| format!("KeyPackage does not validate: {e:?}"))?;
        if key_package.ciphersuite() != Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256 {
            return Err(format!(
                "KeyPackage ciphersuite {:?}, DAVE v1 uses MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
                key_package.ciphersuite()
            ));
        }
        let identity = key_package.leaf_node().credential().serialized_content();
        if identity != user.to_be_bytes() {
            return Err(format!(
                "KeyPackage credential identity is {} bytes {:02x?}, expected the user id {user} as 8 big-endian bytes",
                identity.len(),
                identity
            ));
        }
        Ok(key_package)
    }

    /// Op 26 from a client.
    pub(crate) fn key_package(&mut self, user: u64, bytes: &[u8], now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(client) = self.members.get(&user).and_then(Member::client) else {
            return effects;
        };
        if self.version == 0 {
            violation(
                &mut effects,
                client,
                ViolationKind::OpOrder,
                "op 26 key package while the call is downgraded to DAVE version 0".to_owned(),
            );
            return effects;
        }
        match self.parse_key_package(user, bytes) {
            Ok(key_package) => {
                self.report.key_packages += 1;
                if let Some(member) = self.members.get_mut(&user) {
                    member.key_package = Some(key_package);
                    member.keyed_since = None;
                }
                // A new key package means the member re-initialised: it no longer takes part
                // in what is under way.
                self.forget_participant(user, now, &mut effects);
                self.advance(now, &mut effects);
            }
            Err(detail) => violation(
                &mut effects,
                client,
                ViolationKind::DaveMls,
                format!("op 26: {detail}"),
            ),
        }
        effects
    }

    /// Op 28 from a client.
    pub(crate) fn commit_welcome(&mut self, user: u64, bytes: &[u8], now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(client) = self.members.get(&user).and_then(Member::client) else {
            return effects;
        };
        let Some(round) = &self.round else {
            // A commit that lost the race, or one for a round abandoned: ignored, as Discord does.
            return effects;
        };
        if !round.recipients.contains(&user) {
            return effects;
        }
        match self.check_commit(round, user, bytes) {
            Ok((commit, welcome)) => {
                self.report.client_commits += 1;
                self.announce(user, commit, welcome, now, &mut effects);
            }
            Err(detail) => violation(
                &mut effects,
                client,
                ViolationKind::DaveMls,
                format!("op 28: {detail}"),
            ),
        }
        effects
    }

    /// Splits and checks an op 28 payload against the round.
    fn check_commit(
        &self,
        round: &Round,
        user: u64,
        bytes: &[u8],
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
        let mut rest = bytes;
        let message = MlsMessageIn::tls_deserialize(&mut rest)
            .map_err(|e| format!("not an MLSMessage: {e}"))?;
        let commit_len = bytes.len() - rest.len();
        let commit = bytes.get(..commit_len).unwrap_or_default().to_vec();
        let welcome = if rest.is_empty() {
            None
        } else {
            Welcome::tls_deserialize_exact_bytes(rest)
                .map_err(|e| format!("the bytes after the commit are not a Welcome: {e}"))?;
            Some(rest.to_vec())
        };
        let protocol = message
            .try_into_protocol_message()
            .map_err(|e| format!("not a handshake message: {e:?}"))?;
        if protocol.group_id() != &self.group_id {
            return Err(format!(
                "commit for group {:02x?}, expected the channel id {} as 8 big-endian bytes",
                protocol.group_id().as_slice(),
                self.channel_id
            ));
        }
        let ProtocolMessage::PublicMessage(public) = &protocol else {
            return Err(
                "commit is not a PublicMessage (DAVE uses plaintext handshakes)".to_owned(),
            );
        };
        if public.content_type() != ContentType::Commit {
            return Err(format!(
                "MLS content type {:?}, expected a Commit",
                public.content_type()
            ));
        }
        if public.epoch().as_u64() != round.epoch {
            return Err(format!(
                "commit for epoch {}, the proposals were for epoch {}",
                public.epoch().as_u64(),
                round.epoch
            ));
        }
        if !matches!(public.sender(), Sender::Member(_)) {
            return Err("commit sender is not a group member".to_owned());
        }
        let adds_someone = round.adds.iter().any(|&u| u != user);
        match (adds_someone, welcome.is_some()) {
            (true, false) => Err("commit adds members but no Welcome follows it".to_owned()),
            (false, true) => Err("a Welcome follows a commit that adds nobody".to_owned()),
            _ => Ok((commit, welcome)),
        }
    }

    /// Op 23 from a client.
    pub(crate) fn transition_ready(
        &mut self,
        user: u64,
        transition_id: u16,
        now: Instant,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(client) = self.members.get(&user).and_then(Member::client) else {
            return effects;
        };
        match &mut self.transition {
            Some(t) if t.id == transition_id => {
                if !t.participants.contains(&user) {
                    violation(
                        &mut effects,
                        client,
                        ViolationKind::DaveTransition,
                        format!("op 23 for transition {transition_id}, which it was not part of"),
                    );
                    return effects;
                }
                t.awaiting.remove(&user);
                if t.awaiting.is_empty() {
                    self.execute(now, &mut effects);
                }
            }
            _ if transition_id == 0 || transition_id > self.last_transition_id => violation(
                &mut effects,
                client,
                ViolationKind::DaveTransition,
                format!(
                    "op 23 for transition {transition_id}, which the server never announced \
                     (last announced: {})",
                    self.last_transition_id
                ),
            ),
            // Late, after a timeout executed it.
            _ => {}
        }
        effects
    }

    /// Op 31 from a client: it could not process a commit or welcome and re-initialises.
    pub(crate) fn invalid_commit_welcome(
        &mut self,
        user: u64,
        transition_id: u16,
        now: Instant,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.report.invalid_commit_welcomes += 1;
        tracing::debug!(user, transition_id, "op 31 invalid commit/welcome");
        if let Some(member) = self.members.get_mut(&user) {
            member.keyed_since = None;
        }
        self.forget_participant(user, now, &mut effects);
        effects
    }

    /// Deadlines: a missing commit, a missing op 23.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.round.as_ref().is_some_and(|r| now >= r.deadline) {
            let fallback = self.round.as_mut().and_then(|r| r.fallback.take());
            let late: Vec<usize> = self
                .round
                .as_ref()
                .map(|r| {
                    r.recipients
                        .iter()
                        .filter_map(|u| self.members.get(u).and_then(Member::client))
                        .collect()
                })
                .unwrap_or_default();
            for client in late {
                violation(
                    &mut effects,
                    client,
                    ViolationKind::DaveMls,
                    format!(
                        "no op 28 commit within {} ms of the op 27 proposals",
                        self.commit_timeout.as_millis()
                    ),
                );
            }
            match fallback {
                Some((user, commit, welcome)) => {
                    self.announce(user, commit, welcome, now, &mut effects)
                }
                // Nobody can commit: keep waiting (no second deadline report).
                None => {
                    if let Some(round) = &mut self.round {
                        round.deadline = now + Duration::from_secs(3600);
                    }
                }
            }
        }
        if self.transition.as_ref().is_some_and(|t| now >= t.deadline) {
            let late: Vec<(u16, usize)> = self
                .transition
                .as_ref()
                .map(|t| {
                    t.awaiting
                        .iter()
                        .filter_map(|u| self.members.get(u).and_then(Member::client))
                        .map(|c| (t.id, c))
                        .collect()
                })
                .unwrap_or_default();
            for (id, client) in late {
                violation(
                    &mut effects,
                    client,
                    ViolationKind::DaveTransition,
                    format!(
                        "no op 23 for transition {id} within {} ms; executed without it",
                        self.transition_timeout.as_millis()
                    ),
                );
            }
            self.execute(now, &mut effects);
        }
        effects
    }

    // ---- the delivery service ------------------------------------------------------------------

    fn next_transition_id(&mut self) -> u16 {
        self.last_transition_id = self.last_transition_id.checked_add(1).unwrap_or(1);
        self.last_transition_id
    }

    /// Starts whatever is due when nothing is under way: a downgrade, an upgrade, or a round of
    /// proposals.
    fn advance(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if self.round.is_some() || self.transition.is_some() {
            return;
        }
        let wanted = if self.plain_users.is_empty() {
            PROTOCOL_VERSION
        } else {
            0
        };
        if wanted == 0 && self.version > 0 {
            self.downgrade(now, effects);
        } else if wanted > 0 && self.version == 0 {
            self.upgrade(now, effects);
        } else if self.version > 0 {
            self.propose(now, effects);
        }
    }

    fn downgrade(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let id = self.next_transition_id();
        let mut participants = BTreeSet::new();
        let mut awaiting = BTreeSet::new();
        for (&user, member) in &mut self.members {
            participants.insert(user);
            match &mut member.kind {
                Kind::Remote { client } => {
                    awaiting.insert(user);
                    effects.push(Effect::Send {
                        client: *client,
                        message: ServerMessage::DavePrepareTransition(DavePrepareTransition {
                            protocol_version: 0,
                            transition_id: id,
                        }),
                    });
                }
                Kind::Simulated { session, .. } => {
                    if let Err(e) = session.prepare_transition(id, 0) {
                        self.report
                            .simulated_errors
                            .push(format!("user {user}: prepare downgrade: {e:?}"));
                    }
                }
            }
        }
        self.begin_transition(id, 0, awaiting, participants, now, effects);
    }

    fn upgrade(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        self.report.upgrades += 1;
        self.upgraded_at = Some(now);
        self.version = PROTOCOL_VERSION;
        self.epoch = 0;
        self.leaves.clear();
        let users: Vec<u64> = self.members.keys().copied().collect();
        for user in users {
            let Some(member) = self.members.get_mut(&user) else {
                continue;
            };
            member.key_package = None;
            member.keyed_since = None;
            match &mut member.kind {
                Kind::Remote { client } => {
                    let client = *client;
                    effects.push(Effect::Send {
                        client,
                        message: ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
                            protocol_version: PROTOCOL_VERSION,
                            epoch: 1,
                        }),
                    });
                    if !member.has_external_sender {
                        member.has_external_sender = true;
                        effects.push(Effect::Send {
                            client,
                            message: ServerMessage::DaveMlsExternalSender(
                                self.external_sender.clone(),
                            ),
                        });
                    }
                }
                Kind::Simulated { session, .. } => {
                    let reinit = NonZeroU16::new(PROTOCOL_VERSION)
                        .map(|v| session.reinit(v, user, self.channel_id, None));
                    if let Some(Err(e)) = reinit {
                        self.report
                            .simulated_errors
                            .push(format!("user {user}: reinit: {e:?}"));
                        continue;
                    }
                    self.simulated_key_package(user);
                }
            }
        }
        self.propose(now, effects);
    }

    /// Sends the proposals the membership calls for, if any.
    fn propose(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        // Leaves whose user left or re-keyed go; every fresh key package is added.
        let removes: Vec<u32> = self
            .leaves
            .iter()
            .enumerate()
            .filter_map(|(index, leaf)| {
                let user = (*leaf)?;
                let stale = self
                    .members
                    .get(&user)
                    .is_none_or(|m| m.key_package.is_some());
                stale.then_some(u32::try_from(index).ok()).flatten()
            })
            .collect();
        let adds: Vec<u64> = self
            .members
            .iter()
            .filter(|(_, m)| m.key_package.is_some())
            .map(|(&u, _)| u)
            .collect();
        let holders: BTreeSet<u64> = self
            .leaves
            .iter()
            .flatten()
            .copied()
            .filter(|u| self.members.get(u).is_some_and(|m| m.key_package.is_none()))
            .collect();
        if holders.is_empty() && self.epoch > 0 {
            // Everyone who held the group left or re-keyed: start a new one.
            self.epoch = 0;
            self.leaves.clear();
        }
        let round = if self.epoch == 0 {
            if adds.len() < 2 {
                return;
            }
            Round {
                epoch: 0,
                creation: true,
                recipients: adds.iter().copied().collect(),
                adds,
                removes: Vec::new(),
                fallback: None,
                deadline: now + self.commit_timeout,
            }
        } else {
            if adds.is_empty() && removes.is_empty() {
                return;
            }
            Round {
                epoch: self.epoch,
                creation: false,
                recipients: holders,
                adds,
                removes,
                fallback: None,
                deadline: now + self.commit_timeout,
            }
        };
        let recipients: Vec<u64> = round.recipients.iter().copied().collect();
        let any_client = recipients
            .iter()
            .any(|u| self.members.get(u).and_then(Member::client).is_some());
        let mut fallback = None;
        for user in recipients {
            let proposals = match self.proposals_for(&round, user) {
                Ok(proposals) => proposals,
                Err(error) => {
                    self.report
                        .simulated_errors
                        .push(format!("proposals for {user}: {error}"));
                    continue;
                }
            };
            self.report.proposals_sent += 1;
            let Some(member) = self.members.get_mut(&user) else {
                continue;
            };
            match &mut member.kind {
                Kind::Remote { client } => effects.push(Effect::Send {
                    client: *client,
                    message: ServerMessage::DaveMlsProposals {
                        operation: ProposalsOperation::Append,
                        proposals,
                    },
                }),
                Kind::Simulated { session, .. } => {
                    match session.process_proposals(
                        ProposalsOperationType::APPEND,
                        &proposals,
                        None,
                    ) {
                        Ok(Some(cw)) => {
                            if fallback.is_none() {
                                fallback = Some((user, cw.commit, cw.welcome));
                            }
                        }
                        Ok(None) => {}
                        Err(e) => self
                            .report
                            .simulated_errors
                            .push(format!("user {user}: process_proposals: {e:?}")),
                    }
                }
            }
        }
        let mut round = round;
        round.fallback = fallback;
        if !any_client {
            if let Some((user, commit, welcome)) = round.fallback.take() {
                self.round = Some(round);
                self.announce(user, commit, welcome, now, effects);
                return;
            }
        }
        self.round = Some(round);
    }

    /// The op 27 payload (after the operation byte) for one recipient of `round`.
    fn proposals_for(&self, round: &Round, recipient: u64) -> Result<Vec<u8>, String> {
        let epoch = GroupEpoch::from(round.epoch);
        let mut messages = Vec::new();
        for &leaf in &round.removes {
            let message = ExternalProposal::new_remove::<OpenMlsRustCrypto>(
                LeafNodeIndex::new(leaf),
                self.group_id.clone(),
                epoch,
                &self.signer,
                SenderExtensionIndex::new(0),
            )
            .map_err(|e| format!("remove proposal: {e:?}"))?;
            messages.extend(
                message
                    .tls_serialize_detached()
                    .map_err(|e| format!("remove proposal: {e}"))?,
            );
        }
        for user in round.adds.iter().filter(|&&u| u != recipient) {
            let Some(key_package) = self.members.get(user).and_then(|m| m.key_package.clone())
            else {
                continue;
            };
            let message = ExternalProposal::new_add::<OpenMlsRustCrypto>(
                key_package,
                self.group_id.clone(),
                epoch,
                &self.signer,
                SenderExtensionIndex::new(0),
            )
            .map_err(|e| format!("add proposal: {e:?}"))?;
            messages.extend(
                message
                    .tls_serialize_detached()
                    .map_err(|e| format!("add proposal: {e}"))?,
            );
        }
        VLBytes::new(messages)
            .tls_serialize_detached()
            .map_err(|e| format!("proposals vector: {e}"))
    }

    /// The winning commit: new epoch and leaves, op 29 to the members, op 30 to the added ones.
    fn announce(
        &mut self,
        committer: u64,
        commit: Vec<u8>,
        welcome: Option<Vec<u8>>,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        let Some(round) = self.round.take() else {
            return;
        };
        let id = self.next_transition_id();
        let added: Vec<u64> = round
            .adds
            .iter()
            .copied()
            .filter(|&u| u != committer)
            .collect();
        let told_commit: BTreeSet<u64> = if round.creation {
            BTreeSet::from([committer])
        } else {
            round.recipients.clone()
        };
        // Leaves (RFC 9420 12.1: removes blank, trailing blanks go, adds fill the leftmost).
        if round.creation {
            self.leaves = vec![Some(committer)];
        } else {
            for &leaf in &round.removes {
                if let Some(slot) = self.leaves.get_mut(leaf as usize) {
                    *slot = None;
                }
            }
        }
        while self.leaves.last().is_some_and(Option::is_none) {
            self.leaves.pop();
        }
        for &user in &added {
            match self.leaves.iter_mut().find(|l| l.is_none()) {
                Some(slot) => *slot = Some(user),
                None => self.leaves.push(Some(user)),
            }
        }
        self.epoch = round.epoch + 1;
        for user in round.adds.iter() {
            if let Some(member) = self.members.get_mut(user) {
                member.key_package = None;
            }
        }
        self.report.commits_announced += 1;
        let version = self.version;
        let mut participants = BTreeSet::new();
        let mut awaiting = BTreeSet::new();
        let audience = told_commit
            .iter()
            .map(|&u| (u, true))
            .chain(added.iter().map(|&u| (u, false)));
        for (user, gets_commit) in audience {
            let Some(member) = self.members.get_mut(&user) else {
                continue;
            };
            participants.insert(user);
            match &mut member.kind {
                Kind::Remote { client } => {
                    awaiting.insert(user);
                    let mut payload = if gets_commit {
                        commit.clone()
                    } else {
                        welcome.clone().unwrap_or_default()
                    };
                    if self.corrupt_first_handshake && self.corrupted.insert(*client) {
                        if let Some(last) = payload.last_mut() {
                            *last ^= 0xFF;
                        }
                    }
                    let message = if gets_commit {
                        ServerMessage::DaveMlsAnnounceCommitTransition {
                            transition_id: id,
                            commit: payload,
                        }
                    } else {
                        self.report.welcomes_sent += 1;
                        ServerMessage::DaveMlsWelcome {
                            transition_id: id,
                            welcome: payload,
                        }
                    };
                    effects.push(Effect::Send {
                        client: *client,
                        message,
                    });
                }
                Kind::Simulated { session, .. } => {
                    let result = if gets_commit {
                        session
                            .process_commit(&commit)
                            .map(|_| ())
                            .map_err(|e| format!("{e:?}"))
                    } else {
                        self.report.welcomes_sent += 1;
                        session
                            .process_welcome(welcome.as_deref().unwrap_or_default(), None)
                            .map_err(|e| format!("{e:?}"))
                    };
                    let result = result.and_then(|()| {
                        session
                            .prepare_transition(id, version)
                            .map_err(|e| format!("{e:?}"))
                    });
                    if let Err(error) = result {
                        self.report.simulated_errors.push(format!(
                            "user {user}: transition {id} ({}): {error}",
                            if gets_commit { "commit" } else { "welcome" }
                        ));
                    }
                }
            }
        }
        tracing::debug!(
            channel = self.channel_id,
            epoch = self.epoch,
            transition = id,
            committer,
            "DAVE commit announced"
        );
        self.begin_transition(id, version, awaiting, participants, now, effects);
    }

    /// Waits for the op 23 of `awaiting` (executing at once when nobody is awaited).
    fn begin_transition(
        &mut self,
        id: u16,
        version: u16,
        awaiting: BTreeSet<u64>,
        participants: BTreeSet<u64>,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        let nobody = awaiting.is_empty();
        self.transition = Some(Transition {
            id,
            version,
            awaiting,
            participants,
            deadline: now + self.transition_timeout,
        });
        if nobody {
            self.execute(now, effects);
        }
    }

    /// Op 22 to every participant; simulated members switch keys.
    fn execute(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let Some(transition) = self.transition.take() else {
            return;
        };
        for user in &transition.participants {
            let Some(member) = self.members.get_mut(user) else {
                continue;
            };
            member.keyed_since = (transition.version > 0).then_some(now);
            match &mut member.kind {
                Kind::Remote { client } => effects.push(Effect::Send {
                    client: *client,
                    message: ServerMessage::DaveExecuteTransition(DaveExecuteTransition {
                        transition_id: transition.id,
                    }),
                }),
                Kind::Simulated { session, .. } => {
                    if let Err(e) = session.execute_transition(transition.id) {
                        self.report
                            .simulated_errors
                            .push(format!("user {user}: execute {}: {e:?}", transition.id));
                    }
                }
            }
        }
        self.report.transitions_executed += 1;
        if transition.version == 0 && self.version > 0 {
            self.report.downgrades += 1;
            self.version = 0;
            self.epoch = 0;
            self.leaves.clear();
            for member in self.members.values_mut() {
                member.key_package = None;
                member.keyed_since = None;
            }
        }
        self.advance(now, effects);
    }

    // ---- media -------------------------------------------------------------------------------

    /// A simulated member's Opus frame, DAVE-encrypted; `None` while it holds no key (the frame
    /// must then not be sent: docs/protocol.md 9.3). Plain when the call is downgraded.
    pub(crate) fn encrypt(&mut self, user: u64, frame: &[u8]) -> Option<Vec<u8>> {
        if !self.can_send(user) {
            return None;
        }
        if self.version == 0 || frame == SILENCE_FRAME {
            return Some(frame.to_vec());
        }
        match self.members.get_mut(&user).and_then(Member::session) {
            Some(session) => session.encrypt_opus(frame).ok().map(|c| c.into_owned()),
            // A user without DAVE speaks plain.
            None => Some(frame.to_vec()),
        }
    }

    /// Whether simulated `user` may send audio: the call is not end-to-end encrypted, the user
    /// has no DAVE, or it holds a sending key.
    pub(crate) fn can_send(&mut self, user: u64) -> bool {
        if self.version == 0 {
            return true;
        }
        self.members
            .get_mut(&user)
            .and_then(Member::session)
            .is_none_or(|session| session.can_encrypt())
    }

    /// Checks a frame from `sender`: DAVE-decrypts it with a simulated member when one is in the
    /// group. `grace` is how long after its transition a sender may still send plain frames.
    pub(crate) fn inspect(
        &mut self,
        sender: u64,
        frame: &[u8],
        now: Instant,
        grace: Duration,
    ) -> FrameCheck {
        if frame == SILENCE_FRAME {
            return FrameCheck::Silence;
        }
        let Some(member) = self.members.get(&sender) else {
            return FrameCheck::NotE2ee;
        };
        let keyed = member
            .keyed_since
            .is_some_and(|since| now.saturating_duration_since(since) > grace);
        if !looks_encrypted(frame) {
            let in_flight = self
                .upgraded_at
                .is_some_and(|at| now.saturating_duration_since(at) <= grace);
            return if self.version == 0 || in_flight {
                FrameCheck::NotE2ee
            } else {
                FrameCheck::Plain { keyed }
            };
        }
        let mut last_error = None;
        for (&user, member) in &mut self.members {
            if user == sender {
                continue;
            }
            let Some(session) = member.session() else {
                continue;
            };
            if !session.is_ready() {
                continue;
            }
            match session.decrypt(sender, MediaType::AUDIO, frame) {
                Ok(plain) => return FrameCheck::Decrypted(plain),
                Err(error) => last_error = Some(format!("{error:?}")),
            }
        }
        match last_error {
            Some(error) => FrameCheck::Failed(error),
            None => FrameCheck::Unverified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANNEL: u64 = 1_234_567_890_123_456_789;
    const T: Duration = Duration::from_secs(2);

    fn channel() -> DaveChannel {
        let config = DaveConfig {
            enabled: true,
            commit_timeout: T,
            transition_timeout: T,
            ..DaveConfig::default()
        };
        DaveChannel::new(CHANNEL, &config).expect("channel")
    }

    fn sent(effects: &[Effect]) -> Vec<(usize, &ServerMessage)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { client, message } => Some((*client, message)),
                Effect::Violation { .. } => None,
            })
            .collect()
    }

    fn violations(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Violation { detail, .. } => Some(detail.clone()),
                Effect::Send { .. } => None,
            })
            .collect()
    }

    fn assert_clean(channel: &DaveChannel) {
        assert!(
            channel.report.simulated_errors.is_empty(),
            "{:?}",
            channel.report.simulated_errors
        );
    }

    /// The server's leaf bookkeeping equals every simulated member's own view of the tree.
    fn assert_leaves_agree(channel: &DaveChannel) {
        for (user, view) in channel.simulated_view() {
            assert_eq!(view, channel.leaves, "member {user}'s tree");
        }
    }

    #[test]
    fn a_lone_member_stays_unkeyed_and_two_form_a_group() {
        let now = Instant::now();
        let mut ch = channel();
        assert!(ch.join_simulated(1, now).is_empty());
        assert_eq!(ch.epoch, 0, "a lone member has no group");
        assert!(
            ch.encrypt(1, &[0xFC, 1, 2]).is_none(),
            "unkeyed: nothing to send"
        );
        assert!(ch.join_simulated(2, now).is_empty());
        assert_clean(&ch);
        assert_eq!(ch.epoch, 1);
        assert_eq!(ch.report.commits_announced, 1);
        assert_eq!(ch.report.transitions_executed, 1);
        assert_leaves_agree(&ch);
        let frame = ch.encrypt(1, &[0xFC, 1, 2]).expect("keyed");
        assert!(looks_encrypted(&frame));
        assert_eq!(
            ch.inspect(1, &frame, now, Duration::ZERO),
            FrameCheck::Decrypted(vec![0xFC, 1, 2])
        );
    }

    #[test]
    fn members_join_and_leave_with_the_leaves_tracked() {
        let now = Instant::now();
        let mut ch = channel();
        for user in 1..=4 {
            ch.join_simulated(user, now);
        }
        assert_clean(&ch);
        assert_leaves_agree(&ch);
        ch.leave(2, now);
        assert_clean(&ch);
        assert_leaves_agree(&ch);
        assert_eq!(ch.leaves, vec![Some(1), None, Some(3), Some(4)]);
        ch.join_simulated(5, now);
        assert_clean(&ch);
        assert_leaves_agree(&ch);
        assert_eq!(ch.leaves, vec![Some(1), Some(5), Some(3), Some(4)]);
        ch.leave(4, now);
        ch.leave(3, now);
        assert_clean(&ch);
        assert_leaves_agree(&ch);
        assert_eq!(ch.leaves, vec![Some(1), Some(5)]);
        let frame = ch.encrypt(5, &[0xFC, 9]).expect("keyed");
        assert_eq!(
            ch.inspect(5, &frame, now, Duration::ZERO),
            FrameCheck::Decrypted(vec![0xFC, 9])
        );
    }

    #[test]
    fn a_remote_member_is_proposed_welcomed_and_executed_after_its_op_23() {
        let now = Instant::now();
        let mut ch = channel();
        ch.join_simulated(1, now);
        ch.join_simulated(2, now);
        let effects = ch.join_remote(0, 3, now);
        assert!(matches!(
            sent(&effects)[..],
            [(0, ServerMessage::DaveMlsExternalSender(_))]
        ));
        // The client, as a davey session of its own.
        let mut client = DaveSession::new(NonZeroU16::MIN, 3, CHANNEL, None).expect("session");
        let ServerMessage::DaveMlsExternalSender(sender) = sent(&effects)[0].1 else {
            unreachable!()
        };
        client.set_external_sender(sender).expect("external sender");
        let kp = client.create_key_package().expect("key package");
        let effects = ch.key_package(3, &kp, now);
        assert!(
            violations(&effects).is_empty(),
            "{:?}",
            violations(&effects)
        );
        let welcome = sent(&effects)
            .into_iter()
            .find_map(|(c, m)| match m {
                ServerMessage::DaveMlsWelcome {
                    transition_id,
                    welcome,
                } => Some((c, *transition_id, welcome.clone())),
                _ => None,
            })
            .expect("welcomed (a simulated member committed: no client was asked)");
        assert_eq!(welcome.0, 0);
        client.process_welcome(&welcome.2, None).expect("welcome");
        client.prepare_transition(welcome.1, 1).expect("prepare");
        assert!(ch.transition.is_some(), "waits for the client's op 23");
        let effects = ch.transition_ready(3, welcome.1, now);
        assert!(matches!(
            sent(&effects)[..],
            [(0, ServerMessage::DaveExecuteTransition(DaveExecuteTransition { transition_id }))] if *transition_id == welcome.1
        ));
        client.execute_transition(welcome.1).expect("execute");
        assert_clean(&ch);
        assert_leaves_agree(&ch);
        let frame = client
            .encrypt_opus(&[0xFC, 7, 7])
            .expect("encrypts")
            .into_owned();
        assert_eq!(
            ch.inspect(3, &frame, now, Duration::ZERO),
            FrameCheck::Decrypted(vec![0xFC, 7, 7])
        );
        assert_eq!(
            ch.inspect(3, &[0xFC, 7, 7], now + T, Duration::ZERO),
            FrameCheck::Plain { keyed: true }
        );
    }

    #[test]
    fn a_plain_user_downgrades_the_call_and_its_leaving_upgrades_it() {
        let now = Instant::now();
        let mut ch = channel();
        ch.join_simulated(1, now);
        ch.join_simulated(2, now);
        ch.join_plain(9, now);
        assert_eq!(ch.version, 0);
        assert_eq!(ch.report.downgrades, 1);
        assert_eq!(ch.encrypt(1, &[0xFC, 1]), Some(vec![0xFC, 1]));
        assert_eq!(
            ch.inspect(1, &[0xFC, 1], now, Duration::ZERO),
            FrameCheck::NotE2ee
        );
        ch.leave(9, now);
        assert_clean(&ch);
        assert_eq!(ch.version, 1);
        assert_eq!(ch.report.upgrades, 1);
        assert_eq!(ch.epoch, 1, "a new group");
        assert_leaves_agree(&ch);
        let frame = ch.encrypt(2, &[0xFC, 2]).expect("keyed again");
        assert_eq!(
            ch.inspect(2, &frame, now, Duration::ZERO),
            FrameCheck::Decrypted(vec![0xFC, 2])
        );
    }

    #[test]
    fn bad_key_packages_and_commits_are_violations() {
        let now = Instant::now();
        let mut ch = channel();
        ch.join_remote(0, 3, now);
        let effects = ch.key_package(3, &[0, 1, 2, 3], now);
        assert_eq!(violations(&effects).len(), 1, "{:?}", violations(&effects));
        // A key package of another user.
        let mut other = DaveSession::new(NonZeroU16::MIN, 4, CHANNEL, None).expect("session");
        other
            .set_external_sender(&ch.external_sender.clone())
            .expect("sender");
        let kp = other.create_key_package().expect("kp");
        let effects = ch.key_package(3, &kp, now);
        assert!(
            violations(&effects)
                .first()
                .is_some_and(|v| v.contains("expected the user id")),
            "{:?}",
            violations(&effects)
        );
        // A commit with nothing proposed is ignored; garbage during a round is a violation.
        assert!(ch.commit_welcome(3, &[1, 2, 3], now).is_empty());
    }
}
