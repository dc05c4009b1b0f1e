//! Glue for the main-gateway libraries (features `serenity` and `twilight`, off by default):
//! op 4 routed to the shard that carries the guild, their dispatches fed to [`Voice`], and
//! conversions from their id types ([`IntoGuildId`], [`IntoChannelId`], [`IntoUserId`]).
//!
//! [`Voice`]: crate::Voice

mod ids;
#[cfg(feature = "serenity")]
pub(crate) mod serenity;
#[cfg(any(feature = "serenity", feature = "twilight"))]
mod shards;
#[cfg(feature = "twilight")]
pub(crate) mod twilight;

pub use ids::{IntoChannelId, IntoGuildId, IntoUserId};
