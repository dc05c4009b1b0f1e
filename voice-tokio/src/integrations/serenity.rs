//! serenity's voice gateway manager hook: [`SerenityVoice`] is registered with
//! `ClientBuilder::voice_manager_arc`, as songbird registers, and serenity hands it the bot's
//! id, every shard's message sender and the two voice dispatches.

use std::sync::{Arc, OnceLock};

use serenity::async_trait;
use serenity::futures::channel::mpsc::UnboundedSender;
use serenity::gateway::{ShardRunnerMessage, VoiceGatewayManager};
use serenity::model::id as theirs;
use serenity::model::voice::VoiceState;
use serenity_tungstenite::tungstenite::Message;
use voice_proto::gateway::{VoiceServerDispatch, VoiceStateDispatch, VoiceStateUpdate};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::secret::Token;

use super::shards::Shards;
use crate::{GatewayLink, Voice, VoiceConfig};

/// A [`Voice`] that serenity drives: register it with the client, then use
/// [`voice`](Self::voice) once the client is ready.
///
/// ```no_run
/// # async fn run(token: String) -> Result<(), serenity::Error> {
/// use serenity::all::{Client, GatewayIntents};
/// use voice_tokio::{SerenityVoice, VoiceConfig};
///
/// let voice = SerenityVoice::new(VoiceConfig::default());
/// let intents = GatewayIntents::GUILDS | GatewayIntents::GUILD_VOICE_STATES;
/// let mut client = Client::builder(token, intents)
///     .voice_manager_arc(voice.clone())
///     .await?;
/// // In a handler, once ready: voice.voice().unwrap().join_channel(guild_id, channel_id, ..)
/// client.start().await
/// # }
/// ```
///
/// Op 4 goes out on the shard that carries the guild (`(guild_id >> 22) % shard_count`); while
/// that shard is down (between serenity's `deregister_shard` and `register_shard`) a join or a
/// rejoin fails as a refused op 4 would.
#[derive(Debug)]
pub struct SerenityVoice {
    config: VoiceConfig,
    shards: Arc<Shards<UnboundedSender<ShardRunnerMessage>>>,
    voice: OnceLock<Voice>,
}

impl SerenityVoice {
    /// A voice manager whose connections use `config`; give it to
    /// `ClientBuilder::voice_manager_arc`.
    pub fn new(config: VoiceConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            shards: Arc::default(),
            voice: OnceLock::new(),
        })
    }

    /// The [`Voice`] to join channels with, once serenity has started (it tells the bot's
    /// user id then); `None` before.
    pub fn voice(&self) -> Option<Voice> {
        self.voice.get().cloned()
    }
}

/// Op 4 through the serenity shard that carries the guild.
struct ShardLink(Arc<Shards<UnboundedSender<ShardRunnerMessage>>>);

impl GatewayLink for ShardLink {
    fn send_voice_state_update(&self, update: &VoiceStateUpdate) -> Result<(), String> {
        self.0.send(update, |sender, json| {
            sender
                .unbounded_send(ShardRunnerMessage::Message(Message::Text(json)))
                .map_err(|_| "the serenity shard has stopped".to_owned())
        })
    }
}

#[async_trait]
impl VoiceGatewayManager for SerenityVoice {
    async fn initialise(&self, shard_count: u32, user_id: theirs::UserId) {
        self.shards.set_count(shard_count);
        self.voice.get_or_init(|| {
            let link = ShardLink(Arc::clone(&self.shards));
            Voice::new(UserId(user_id.get()), link, self.config.clone())
        });
    }

    async fn register_shard(&self, shard_id: u32, sender: UnboundedSender<ShardRunnerMessage>) {
        self.shards.insert(shard_id, sender);
    }

    async fn deregister_shard(&self, shard_id: u32) {
        self.shards.remove(shard_id);
    }

    async fn server_update(
        &self,
        guild_id: theirs::GuildId,
        endpoint: &Option<String>,
        token: &str,
    ) {
        if let Some(voice) = self.voice.get() {
            voice.handle_voice_server_update(server_dispatch(guild_id, endpoint, token));
        }
    }

    async fn state_update(&self, guild_id: theirs::GuildId, voice_state: &VoiceState) {
        if let Some(voice) = self.voice.get() {
            voice.handle_voice_state_update(state_dispatch(guild_id, voice_state));
        }
    }
}

/// serenity's VOICE_SERVER_UPDATE, as the core's dispatch.
pub(crate) fn server_dispatch(
    guild_id: theirs::GuildId,
    endpoint: &Option<String>,
    token: &str,
) -> VoiceServerDispatch {
    VoiceServerDispatch {
        token: Token::new(token),
        guild_id: GuildId(guild_id.get()),
        endpoint: endpoint.clone(),
    }
}

/// serenity's VOICE_STATE_UPDATE, as the core's dispatch.
pub(crate) fn state_dispatch(guild_id: theirs::GuildId, state: &VoiceState) -> VoiceStateDispatch {
    VoiceStateDispatch {
        guild_id: Some(GuildId(guild_id.get())),
        channel_id: state.channel_id.map(|c| ChannelId(c.get())),
        user_id: UserId(state.user_id.get()),
        session_id: state.session_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serenity::futures::channel::mpsc;

    /// VOICE_STATE_UPDATE's `d` as Discord sends it (the voice state object of Discord's
    /// documentation, with the member of a guild).
    const STATE: &str = r#"{
        "guild_id": "41771983423143937",
        "channel_id": "127121515262115840",
        "user_id": "80351110224678912",
        "member": {
            "user": {"id": "80351110224678912", "username": "Nelly", "discriminator": "1337",
                     "avatar": null, "global_name": null},
            "nick": null, "roles": [], "joined_at": "2015-04-26T06:26:56.936000+00:00",
            "deaf": false, "mute": false, "flags": 0
        },
        "session_id": "90326bd25d71d39b9ef95b299e3872ff",
        "deaf": false, "mute": false, "self_deaf": false, "self_mute": true,
        "self_video": false, "suppress": false, "request_to_speak_timestamp": null
    }"#;

    /// VOICE_SERVER_UPDATE's `d`, Discord's documented example.
    const SERVER: &str = r#"{
        "token": "my_token", "guild_id": "41771983423143937", "endpoint": "sweetwater-12345.discord.media:2048"
    }"#;

    #[test]
    fn serenitys_dispatches_become_the_same_as_the_raw_ones() {
        let state: VoiceState = serde_json::from_str(STATE).expect("serenity parses it");
        let guild = theirs::GuildId::new(41771983423143937);
        let ours = state_dispatch(guild, &state);
        assert_eq!(
            ours,
            VoiceStateDispatch::from_dispatch_json(STATE).expect("raw")
        );

        let raw: serde_json::Value = serde_json::from_str(SERVER).expect("JSON");
        let endpoint = raw["endpoint"].as_str().map(str::to_owned);
        let token = raw["token"].as_str().unwrap_or_default();
        let ours = server_dispatch(guild, &endpoint, token);
        assert_eq!(
            ours,
            VoiceServerDispatch::from_dispatch_json(SERVER).expect("raw")
        );
    }

    #[test]
    fn the_voice_exists_once_initialised_and_op_4_goes_to_the_guilds_shard() {
        let manager = SerenityVoice::new(VoiceConfig::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            assert!(manager.voice().is_none());
            manager
                .initialise(2, theirs::UserId::new(80351110224678912))
                .await;
            let (tx0, mut rx0) = mpsc::unbounded();
            let (tx1, mut rx1) = mpsc::unbounded();
            manager.register_shard(0, tx0).await;
            manager.register_shard(1, tx1).await;
            assert!(manager.voice().is_some());

            // (41771983423143937 >> 22) % 2 == 0.
            let link = ShardLink(Arc::clone(&manager.shards));
            let join = VoiceStateUpdate::join(
                GuildId(41771983423143937),
                ChannelId(127121515262115840),
                false,
                false,
            );
            assert_eq!(link.send_voice_state_update(&join), Ok(()));
            match rx0.try_recv() {
                Ok(ShardRunnerMessage::Message(Message::Text(json))) => {
                    assert_eq!(json, join.to_gateway_json());
                }
                other => panic!("op 4 on shard 0: {other:?}"),
            }
            assert!(rx1.try_recv().is_err(), "nothing on shard 1");
            manager.deregister_shard(0).await;
            assert!(link.send_voice_state_update(&join).is_err());
        });
    }
}
