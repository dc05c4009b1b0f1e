//! Ids from the main-gateway libraries, as the core's ids: [`Voice`](crate::Voice) takes any
//! of them.

use voice_proto::id::{ChannelId, GuildId, UserId};

/// Names a guild: [`GuildId`], and with the `serenity` or `twilight` feature their guild ids.
pub trait IntoGuildId {
    /// The core's id of the same guild.
    fn into_guild_id(self) -> GuildId;
}

/// Names a channel: [`ChannelId`], and with the `serenity` or `twilight` feature their channel
/// ids.
pub trait IntoChannelId {
    /// The core's id of the same channel.
    fn into_channel_id(self) -> ChannelId;
}

/// Names a user: [`UserId`], and with the `serenity` or `twilight` feature their user ids.
pub trait IntoUserId {
    /// The core's id of the same user.
    fn into_user_id(self) -> UserId;
}

impl IntoGuildId for GuildId {
    fn into_guild_id(self) -> GuildId {
        self
    }
}

impl IntoChannelId for ChannelId {
    fn into_channel_id(self) -> ChannelId {
        self
    }
}

impl IntoUserId for UserId {
    fn into_user_id(self) -> UserId {
        self
    }
}

#[cfg(feature = "serenity")]
mod serenity_ids {
    use super::*;
    use serenity::model::id as theirs;

    impl IntoGuildId for theirs::GuildId {
        fn into_guild_id(self) -> GuildId {
            GuildId(self.get())
        }
    }

    impl IntoChannelId for theirs::ChannelId {
        fn into_channel_id(self) -> ChannelId {
            ChannelId(self.get())
        }
    }

    impl IntoUserId for theirs::UserId {
        fn into_user_id(self) -> UserId {
            UserId(self.get())
        }
    }
}

#[cfg(feature = "twilight")]
mod twilight_ids {
    use super::*;
    use twilight_model::id::marker::{ChannelMarker, GuildMarker, UserMarker};
    use twilight_model::id::Id;

    impl IntoGuildId for Id<GuildMarker> {
        fn into_guild_id(self) -> GuildId {
            GuildId(self.get())
        }
    }

    impl IntoChannelId for Id<ChannelMarker> {
        fn into_channel_id(self) -> ChannelId {
            ChannelId(self.get())
        }
    }

    impl IntoUserId for Id<UserMarker> {
        fn into_user_id(self) -> UserId {
            UserId(self.get())
        }
    }
}
