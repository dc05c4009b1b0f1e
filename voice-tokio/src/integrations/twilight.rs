//! twilight: [`Voice::process_twilight_event`] for twilight-gateway's events, and
//! [`TwilightGateway`], op 4 through the shards' message senders.

use std::sync::Arc;

use twilight_gateway::{Event, MessageSender, Shard, ShardId};
use twilight_model::gateway::payload::incoming::VoiceServerUpdate;
use twilight_model::voice::VoiceState;
use voice_proto::gateway::{VoiceServerDispatch, VoiceStateDispatch, VoiceStateUpdate};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::secret::Token;

use super::shards::Shards;
use crate::{GatewayLink, Voice};

/// The [`GatewayLink`] of a twilight bot: op 4 goes out through the message sender of the shard
/// that carries the guild (`(guild_id >> 22) % shard_count`), however many shards run. Cheap to
/// clone; shards can be added (or replaced) while the bot runs.
///
/// ```no_run
/// # use twilight_model::id::{marker::UserMarker, Id};
/// # fn run(shards: Vec<twilight_gateway::Shard>, bot_user_id: Id<UserMarker>) {
/// use voice_tokio::{TwilightGateway, Voice, VoiceConfig};
///
/// // `shards`: every shard of the bot (e.g. `twilight_gateway::bucket` + `Shard::with_config`);
/// // `bot_user_id`: from Ready.
/// let voice = Voice::new(bot_user_id, TwilightGateway::from_shards(&shards), VoiceConfig::default());
/// // In each shard's event loop: `voice.process_twilight_event(&event);`
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct TwilightGateway {
    shards: Arc<Shards<MessageSender>>,
}

impl TwilightGateway {
    /// A link to no shard yet ([`add_shard`](Self::add_shard)).
    pub fn new() -> Self {
        Self::default()
    }

    /// A link to every shard of `shards` (e.g. from `twilight_gateway::create_recommended`).
    pub fn from_shards<'a, Q: 'a>(shards: impl IntoIterator<Item = &'a Shard<Q>>) -> Self {
        let gateway = Self::new();
        for shard in shards {
            gateway.add_shard(shard.id(), shard.sender());
        }
        gateway
    }

    /// Sends op 4 of the guilds that `id` carries through `sender`; `id` also tells how many
    /// shards there are.
    pub fn add_shard(&self, id: ShardId, sender: MessageSender) {
        self.shards.set_count(id.total());
        self.shards.insert(id.number(), sender);
    }

    /// Stops sending through shard `number` (until it is added again): a join or rejoin of a
    /// guild it carries fails meanwhile, as a refused op 4 would.
    pub fn remove_shard(&self, number: u32) {
        self.shards.remove(number);
    }
}

impl GatewayLink for TwilightGateway {
    fn send_voice_state_update(&self, update: &VoiceStateUpdate) -> Result<(), String> {
        self.shards.send(update, |sender, json| {
            sender.send(json).map_err(|e| e.to_string())
        })
    }
}

impl Voice {
    /// Feeds a twilight gateway event: VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE go to the
    /// guild's connection, anything else is ignored. Returns whether the event was one of the
    /// two. Call it for every event of every shard.
    pub fn process_twilight_event(&self, event: &Event) -> bool {
        match event {
            Event::VoiceStateUpdate(update) => {
                self.handle_voice_state_update(state_dispatch(&update.0));
                true
            }
            Event::VoiceServerUpdate(update) => {
                self.handle_voice_server_update(server_dispatch(update));
                true
            }
            _ => false,
        }
    }
}

/// twilight's VOICE_STATE_UPDATE, as the core's dispatch.
pub(crate) fn state_dispatch(state: &VoiceState) -> VoiceStateDispatch {
    VoiceStateDispatch {
        guild_id: state.guild_id.map(|g| GuildId(g.get())),
        channel_id: state.channel_id.map(|c| ChannelId(c.get())),
        user_id: UserId(state.user_id.get()),
        session_id: state.session_id.clone(),
    }
}

/// twilight's VOICE_SERVER_UPDATE, as the core's dispatch.
pub(crate) fn server_dispatch(update: &VoiceServerUpdate) -> VoiceServerDispatch {
    VoiceServerDispatch {
        token: Token::new(update.token.as_str()),
        guild_id: GuildId(update.guild_id.get()),
        endpoint: update.endpoint.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twilight_gateway::EventTypeFlags;

    /// Whole dispatch frames as Discord sends them on the main gateway.
    const STATE: &str = r#"{"op":0,"s":42,"t":"VOICE_STATE_UPDATE","d":{"guild_id":"41771983423143937","channel_id":"127121515262115840","user_id":"80351110224678912","member":{"user":{"id":"80351110224678912","username":"Nelly","discriminator":"1337","avatar":null,"global_name":null},"nick":null,"roles":[],"joined_at":"2015-04-26T06:26:56.936000+00:00","deaf":false,"mute":false,"flags":0},"session_id":"90326bd25d71d39b9ef95b299e3872ff","deaf":false,"mute":false,"self_deaf":false,"self_mute":true,"self_video":false,"suppress":false,"request_to_speak_timestamp":null}}"#;
    const SERVER: &str = r#"{"op":0,"s":43,"t":"VOICE_SERVER_UPDATE","d":{"token":"my_token","guild_id":"41771983423143937","endpoint":"sweetwater-12345.discord.media:2048"}}"#;
    const LEFT: &str = r#"{"op":0,"s":44,"t":"VOICE_STATE_UPDATE","d":{"guild_id":"41771983423143937","channel_id":null,"user_id":"80351110224678912","session_id":"90326bd25d71d39b9ef95b299e3872ff","deaf":false,"mute":false,"self_deaf":false,"self_mute":false,"self_video":false,"suppress":false,"request_to_speak_timestamp":null}}"#;

    /// The frame as twilight-gateway parses it.
    fn event(frame: &str) -> Event {
        let parsed = twilight_gateway::parse(frame.to_owned(), EventTypeFlags::all());
        Event::from(parsed.expect("twilight parses it").expect("a wanted event"))
    }

    /// The `d` object of a dispatch frame.
    fn data(frame: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(frame).expect("JSON");
        value["d"].to_string()
    }

    #[test]
    fn twilights_dispatches_become_the_same_as_the_raw_ones() {
        for frame in [STATE, LEFT] {
            let Event::VoiceStateUpdate(update) = event(frame) else {
                panic!("a voice state update")
            };
            let raw = VoiceStateDispatch::from_dispatch_json(&data(frame)).expect("raw");
            assert_eq!(state_dispatch(&update.0), raw);
        }
        let Event::VoiceServerUpdate(update) = event(SERVER) else {
            panic!("a voice server update")
        };
        let raw = VoiceServerDispatch::from_dispatch_json(&data(SERVER)).expect("raw");
        assert_eq!(server_dispatch(&update), raw);
    }

    #[test]
    fn only_the_two_voice_events_are_processed() {
        let voice = Voice::new(UserId(1), |_: &VoiceStateUpdate| Ok(()), Default::default());
        assert!(voice.process_twilight_event(&event(STATE)));
        assert!(voice.process_twilight_event(&event(SERVER)));
        assert!(!voice.process_twilight_event(&Event::GatewayHeartbeatAck));
    }
}
