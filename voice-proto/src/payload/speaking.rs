//! Op 5 Speaking and its flags.

use core::fmt;
use core::ops::{BitOr, BitOrAssign};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::UserId;

/// Op 5 Speaking, both directions.
///
/// Client -> server: `{"speaking":1,"delay":0,"ssrc":12345}` (bots send `delay: 0`; send it with
/// non-zero flags before the first audio packet, C20). Server -> client: `{speaking, ssrc,
/// user_id}`, which maps a remote SSRC to its user (C30).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Speaking {
    /// What kind of audio is being sent.
    pub speaking: SpeakingFlags,
    /// Delay in ms; 0 for bots. Absent in server messages (then 0).
    #[serde(default)]
    pub delay: u32,
    /// The RTP SSRC the flags apply to.
    pub ssrc: u32,
    /// The user who owns `ssrc`; only in server -> client messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
}

impl Speaking {
    /// The client's own Speaking message: `flags` for `ssrc`, delay 0, no user id.
    pub const fn new(flags: SpeakingFlags, ssrc: u32) -> Self {
        Self {
            speaking: flags,
            delay: 0,
            ssrc,
            user_id: None,
        }
    }
}

/// The `speaking` bit field (DOCS): microphone, soundshare, priority.
///
/// Unknown bits are kept as they are, so a value round-trips unchanged. Serialized as an integer;
/// on input a legacy boolean (`true` = microphone) is also accepted.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SpeakingFlags(u32);

impl SpeakingFlags {
    /// Not speaking.
    pub const NONE: SpeakingFlags = SpeakingFlags(0);
    /// Normal voice audio (1 << 0).
    pub const MICROPHONE: SpeakingFlags = SpeakingFlags(1);
    /// Audio from a screen share / Go Live, no speaking indicator (1 << 1).
    pub const SOUNDSHARE: SpeakingFlags = SpeakingFlags(1 << 1);
    /// Priority speaker: lowers other speakers' volume (1 << 2).
    pub const PRIORITY: SpeakingFlags = SpeakingFlags(1 << 2);

    const NAMED: [(SpeakingFlags, &'static str); 3] = [
        (Self::MICROPHONE, "MICROPHONE"),
        (Self::SOUNDSHARE, "SOUNDSHARE"),
        (Self::PRIORITY, "PRIORITY"),
    ];

    /// Flags from their raw value, unknown bits included.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: SpeakingFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set (not speaking).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for SpeakingFlags {
    type Output = SpeakingFlags;
    fn bitor(self, rhs: SpeakingFlags) -> SpeakingFlags {
        SpeakingFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for SpeakingFlags {
    fn bitor_assign(&mut self, rhs: SpeakingFlags) {
        self.0 |= rhs.0;
    }
}

/// Lists the set flags by name, e.g. `SpeakingFlags(MICROPHONE | PRIORITY)`; unknown bits are shown
/// in hex, no flags as `SpeakingFlags(NONE)`.
impl fmt::Debug for SpeakingFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpeakingFlags(")?;
        if self.is_empty() {
            f.write_str("NONE")?;
        }
        let mut rest = self.0;
        let mut first = true;
        for (flag, name) in Self::NAMED {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        f.write_str(")")
    }
}

impl From<u32> for SpeakingFlags {
    fn from(bits: u32) -> Self {
        Self(bits)
    }
}

impl From<SpeakingFlags> for u32 {
    fn from(flags: SpeakingFlags) -> u32 {
        flags.0
    }
}

impl Serialize for SpeakingFlags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for SpeakingFlags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlagsVisitor)
    }
}

struct FlagsVisitor;

impl Visitor<'_> for FlagsVisitor {
    type Value = SpeakingFlags;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("speaking flags as an integer in 0..=4294967295 (or a legacy boolean)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SpeakingFlags, E> {
        u32::try_from(v)
            .map(SpeakingFlags)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SpeakingFlags, E> {
        u32::try_from(v)
            .map(SpeakingFlags)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    // Gateway versions before 3 sent `speaking: true/false`.
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<SpeakingFlags, E> {
        Ok(if v {
            SpeakingFlags::MICROPHONE
        } else {
            SpeakingFlags::NONE
        })
    }
}
