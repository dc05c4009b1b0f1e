//! DAVE test support: the voice gateway's MLS external sender (openmls), a second group member
//! (davey), and an independent implementation of the DAVE sender-key ratchet and Opus frame format
//! (docs/protocol.md 9.4) built on hkdf/sha2/aes-gcm only.
#![allow(dead_code)]

use std::num::NonZeroU16;

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::Aes128Gcm;
use davey::{DaveSession, MediaType};
use hmac::{Hmac, Mac};
use openmls::prelude::tls_codec::{Deserialize, Serialize};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use sha2::Sha256;
use voice_proto::id::{ChannelId, UserId};
use voice_proto::payload::{
    ClientMessage, DaveExecuteTransition, DavePrepareEpoch, DavePrepareTransition, Encoded,
    ProposalsOperation, ServerFrame, ServerMessage,
};
use voice_proto::Output;

use super::{Harness, CHANNEL};

/// The voice gateway acting as MLS external sender (Delivery Service).
pub struct Gateway {
    provider: OpenMlsRustCrypto,
    group_id: GroupId,
    signer: SignatureKeyPair,
    external_sender: ExternalSender,
}

impl Gateway {
    pub fn new(channel: ChannelId) -> Self {
        let ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;
        let signer = SignatureKeyPair::new(ciphersuite.signature_algorithm()).expect("keypair");
        let external_sender = ExternalSender::new(
            signer.public().into(),
            BasicCredential::new(vec![0x00, 0x01, 0x01, 0x00]).into(),
        );
        Self {
            provider: OpenMlsRustCrypto::default(),
            group_id: GroupId::from_slice(&channel.0.to_be_bytes()),
            signer,
            external_sender,
        }
    }

    /// Op 25 payload.
    pub fn external_sender(&self) -> Vec<u8> {
        self.external_sender
            .tls_serialize_detached()
            .expect("serialize external sender")
    }

    /// Op 27 append payload (after the operation byte) proposing to add `key_package`'s owner.
    pub fn propose_add(&self, epoch: u64, key_package: &[u8]) -> Vec<u8> {
        VLBytes::new(self.add_message(epoch, key_package))
            .tls_serialize_detached()
            .expect("serialize proposals vector")
    }

    /// One external Add proposal (an MLSMessage) for `key_package`'s owner at `epoch`.
    pub fn add_message(&self, epoch: u64, key_package: &[u8]) -> Vec<u8> {
        let key_package = KeyPackageIn::tls_deserialize_exact_bytes(key_package)
            .expect("key package parses")
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .expect("key package validates");
        ExternalProposal::new_add::<OpenMlsRustCrypto>(
            key_package,
            self.group_id.clone(),
            GroupEpoch::from(epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .expect("external add proposal")
        .tls_serialize_detached()
        .expect("serialize proposal")
    }

    /// One external Remove proposal (an MLSMessage) for the member at `leaf` at `epoch`.
    pub fn remove_message(&self, epoch: u64, leaf: u32) -> Vec<u8> {
        ExternalProposal::new_remove::<OpenMlsRustCrypto>(
            LeafNodeIndex::new(leaf),
            self.group_id.clone(),
            GroupEpoch::from(epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .expect("external remove proposal")
        .tls_serialize_detached()
        .expect("serialize proposal")
    }
}

/// The ProposalRef of an external proposal (RFC 9420 5.2, `MakeProposalRef`): SHA-256 over
/// `RefHashInput { label<V> = "MLS 1.0 Proposal Reference", value<V> = AuthenticatedContent }`,
/// where the AuthenticatedContent of an external sender's PublicMessage is the MLSMessage without
/// its 2-byte version (there is no membership tag).
pub fn proposal_ref(message: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let label: &[u8] = b"MLS 1.0 Proposal Reference";
    let value = &message[2..];
    let mut input = VLBytes::new(label.to_vec())
        .tls_serialize_detached()
        .expect("label");
    input.extend(
        VLBytes::new(value.to_vec())
            .tls_serialize_detached()
            .expect("value"),
    );
    Sha256::digest(&input).to_vec()
}

/// Splits an op 28 payload `MLSMessage commit ‖ [Welcome]`.
pub fn split_commit_welcome(payload: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut rest = payload;
    let _commit = MlsMessageIn::tls_deserialize(&mut rest).expect("op 28 starts with a commit");
    let commit_len = payload.len() - rest.len();
    let welcome = (!rest.is_empty()).then(|| rest.to_vec());
    (payload[..commit_len].to_vec(), welcome)
}

/// A davey member of the call other than the engine.
pub fn peer(user: UserId, gateway: &Gateway) -> DaveSession {
    let mut session = DaveSession::new(NonZeroU16::new(1).unwrap(), user.0, CHANNEL.0, None)
        .expect("peer session");
    session
        .set_external_sender(&gateway.external_sender())
        .expect("peer external sender");
    session
}

/// The sender base secret of `sender` in `member`'s current epoch (docs/protocol.md 9.4).
pub fn base_secret(member: &DaveSession, sender: UserId) -> Vec<u8> {
    let provider = OpenMlsRustCrypto::default();
    member
        .group()
        .expect("member has a group")
        .export_secret(
            provider.crypto(),
            "Discord Secure Frames v0",
            &sender.0.to_le_bytes(),
            16,
        )
        .expect("export secret")
}

pub fn decrypt_from(member: &mut DaveSession, sender: UserId, frame: &[u8]) -> Vec<u8> {
    member
        .decrypt(sender.0, MediaType::AUDIO, frame)
        .expect("peer decrypts the frame")
}

// ---- the independent frame format implementation ---------------------------------------------

fn varint(len: usize) -> Vec<u8> {
    assert!(len < 64, "short vectors only");
    vec![len as u8]
}

/// RFC 9420 ExpandWithLabel over HKDF-SHA256.
pub fn expand_with_label(secret: &[u8], label: &str, context: &[u8], length: u16) -> Vec<u8> {
    let full_label = format!("MLS 1.0 {label}");
    let mut info = length.to_be_bytes().to_vec();
    info.extend(varint(full_label.len()));
    info.extend(full_label.as_bytes());
    info.extend(varint(context.len()));
    info.extend(context);
    // HKDF-Expand (RFC 5869) by hand: the 16-byte base secret is shorter than SHA-256's output,
    // which RustCrypto's `Hkdf::from_prk` refuses, but MLS uses it as the PRK all the same.
    let mut out = Vec::new();
    let mut previous: Vec<u8> = Vec::new();
    let mut counter = 1u8;
    while out.len() < usize::from(length) {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
        mac.update(&previous);
        mac.update(&info);
        mac.update(&[counter]);
        previous = mac.finalize().into_bytes().to_vec();
        out.extend_from_slice(&previous);
        counter += 1;
    }
    out.truncate(usize::from(length));
    out
}

/// The AES-128 key of `generation` from a base secret (hash ratchet).
pub fn ratchet_key(base: &[u8], generation: u32) -> [u8; 16] {
    let mut secret = base.to_vec();
    for g in 0..generation {
        secret = expand_with_label(&secret, "secret", &g.to_be_bytes(), 32);
    }
    let key = expand_with_label(&secret, "key", &generation.to_be_bytes(), 16);
    key.try_into().expect("16 bytes")
}

fn uleb128(mut value: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn gcm_nonce(counter: u32) -> Nonce<Aes128Gcm> {
    let mut nonce = Nonce::<Aes128Gcm>::default();
    nonce[8..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// Encrypts an Opus frame: ciphertext ‖ 8-byte tag ‖ ULEB128(nonce) ‖ size ‖ FA FA.
pub fn encrypt_frame(key: &[u8; 16], nonce: u32, opus: &[u8]) -> Vec<u8> {
    let cipher = Aes128Gcm::new(key.into());
    let mut out = opus.to_vec();
    let tag = cipher
        .encrypt_inout_detached(&gcm_nonce(nonce), b"", out.as_mut_slice().into())
        .expect("encrypt");
    out.extend_from_slice(&tag[..8]);
    let nonce_bytes = uleb128(nonce);
    let size = 8 + nonce_bytes.len() + 1 + 2;
    out.extend(nonce_bytes);
    out.push(size as u8);
    out.extend([0xFA, 0xFA]);
    out
}

/// A parsed DAVE Opus frame.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedFrame {
    pub ciphertext: Vec<u8>,
    pub tag: [u8; 8],
    pub nonce: u32,
    pub nonce_len: usize,
    pub size_byte: u8,
}

/// Parses the trailer of a DAVE Opus frame (no unencrypted ranges).
pub fn parse_frame(frame: &[u8]) -> ParsedFrame {
    assert!(frame.ends_with(&[0xFA, 0xFA]), "magic marker");
    let size_byte = frame[frame.len() - 3];
    let size = usize::from(size_byte);
    let start = frame.len() - size;
    let tag: [u8; 8] = frame[start..start + 8].try_into().unwrap();
    let nonce_bytes = &frame[start + 8..frame.len() - 3];
    let mut nonce = 0u32;
    for (i, byte) in nonce_bytes.iter().enumerate() {
        nonce |= u32::from(byte & 0x7f) << (7 * i);
    }
    assert_eq!(uleb128(nonce), nonce_bytes, "ULEB128 nonce, no ranges");
    ParsedFrame {
        ciphertext: frame[..start].to_vec(),
        tag,
        nonce,
        nonce_len: nonce_bytes.len(),
        size_byte,
    }
}

/// Decrypts a DAVE Opus frame with `key`, checking the truncated tag.
pub fn decrypt_frame(key: &[u8; 16], frame: &[u8]) -> Vec<u8> {
    let parsed = parse_frame(frame);
    // GCM with an 8-byte tag: re-encrypt the recovered plaintext and compare the tag prefix.
    // GCM's CTR keystream is the same both ways: "encrypting" the ciphertext recovers the
    // plaintext; re-encrypting that must reproduce the whole frame, truncated tag included.
    let cipher = Aes128Gcm::new(key.into());
    let mut plain = parsed.ciphertext.clone();
    let _ = cipher
        .encrypt_inout_detached(&gcm_nonce(parsed.nonce), b"", plain.as_mut_slice().into())
        .expect("keystream");
    let check = encrypt_frame(key, parsed.nonce, &plain);
    assert_eq!(
        check, frame,
        "tag and layout match an independent encryption"
    );
    plain
}

// ---- driving the engine with DAVE frames -----------------------------------------------------

impl Harness {
    /// Feeds a server binary frame (numbered like the JSON ones).
    pub fn binary(&mut self, message: ServerMessage) -> Vec<Output> {
        self.server.seq += 1;
        let frame = ServerFrame {
            seq: Some(self.server.seq),
            message,
        };
        match frame.encode() {
            Encoded::Binary(bytes) => self.feed(voice_proto::Input::Binary(&bytes)),
            Encoded::Text(_) => panic!("expected a binary message"),
        }
    }

    pub fn json(&mut self, message: ServerMessage) -> Vec<Output> {
        let text = self.server.frame(message);
        self.text(&text)
    }

    pub fn external_sender(&mut self, gateway: &Gateway) -> Vec<Output> {
        self.binary(ServerMessage::DaveMlsExternalSender(
            gateway.external_sender(),
        ))
    }

    pub fn proposals(&mut self, proposals: Vec<u8>) -> Vec<Output> {
        self.binary(ServerMessage::DaveMlsProposals {
            operation: ProposalsOperation::Append,
            proposals,
        })
    }

    pub fn commit(&mut self, transition_id: u16, commit: Vec<u8>) -> Vec<Output> {
        self.binary(ServerMessage::DaveMlsAnnounceCommitTransition {
            transition_id,
            commit,
        })
    }

    pub fn welcome(&mut self, transition_id: u16, welcome: Vec<u8>) -> Vec<Output> {
        self.binary(ServerMessage::DaveMlsWelcome {
            transition_id,
            welcome,
        })
    }

    pub fn execute(&mut self, transition_id: u16) -> Vec<Output> {
        self.json(ServerMessage::DaveExecuteTransition(
            DaveExecuteTransition { transition_id },
        ))
    }

    pub fn prepare_transition(&mut self, protocol_version: u16, transition_id: u16) -> Vec<Output> {
        self.json(ServerMessage::DavePrepareTransition(
            DavePrepareTransition {
                protocol_version,
                transition_id,
            },
        ))
    }

    pub fn prepare_epoch(&mut self, protocol_version: u16, epoch: u64) -> Vec<Output> {
        self.json(ServerMessage::DavePrepareEpoch(DavePrepareEpoch {
            protocol_version,
            epoch,
        }))
    }
}

/// The op 26 key packages among `outputs`.
pub fn key_packages(outputs: &[Output]) -> Vec<Vec<u8>> {
    super::client_messages(outputs)
        .into_iter()
        .filter_map(|m| match m {
            ClientMessage::DaveMlsKeyPackage(kp) => Some(kp),
            _ => None,
        })
        .collect()
}

/// The op 28 payloads among `outputs`.
pub fn commit_welcomes(outputs: &[Output]) -> Vec<Vec<u8>> {
    super::client_messages(outputs)
        .into_iter()
        .filter_map(|m| match m {
            ClientMessage::DaveMlsCommitWelcome(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// The op 23 transition ids among `outputs`.
pub fn transition_ready(outputs: &[Output]) -> Vec<u16> {
    super::client_messages(outputs)
        .into_iter()
        .filter_map(|m| match m {
            ClientMessage::DaveTransitionReady(r) => Some(r.transition_id),
            _ => None,
        })
        .collect()
}

/// The op 31 transition ids among `outputs`.
pub fn invalid_commit_welcome(outputs: &[Output]) -> Vec<u16> {
    super::client_messages(outputs)
        .into_iter()
        .filter_map(|m| match m {
            ClientMessage::DaveMlsInvalidCommitWelcome(r) => Some(r.transition_id),
            _ => None,
        })
        .collect()
}

/// A transport-encrypted RTP packet from another member, as the SFU relays it (X=1 with a
/// one-byte extension), carrying `payload` (plain Opus or a DAVE frame).
pub fn inbound(h: &Harness, ssrc: u32, sequence: u16, payload: &[u8]) -> Vec<u8> {
    super::relayed_packet(
        h.server.mode,
        h.server.key,
        ssrc,
        sequence,
        1000 + u32::from(sequence),
        payload,
    )
}

/// A DAVE call in which our engine holds a sending key: it committed a peer's addition with
/// transition 0. Returns the harness and the peer.
pub fn keyed_call() -> (Harness, DaveSession) {
    let mut h = Harness::join(super::test_config());
    h.server.dave_protocol_version = 1;
    h.connect();
    let gateway = Gateway::new(CHANNEL);
    h.external_sender(&gateway);
    h.json(ServerMessage::ClientsConnect(
        voice_proto::payload::ClientsConnect {
            user_ids: vec![super::OTHER_USER],
        },
    ));
    let mut member = peer(super::OTHER_USER, &gateway);
    let key_package = member.create_key_package().expect("key package");
    let outs = h.proposals(gateway.propose_add(0, &key_package));
    let (commit, welcome) = split_commit_welcome(&commit_welcomes(&outs)[0]);
    h.commit(0, commit);
    member
        .process_welcome(
            &welcome.expect("welcome"),
            Some(&[super::USER.0, super::OTHER_USER.0]),
        )
        .expect("peer welcomed");
    member.prepare_transition(0, 1).expect("peer keys");
    (h, member)
}
