//! A twilight bot on any number of shards: `!join` joins the author's voice channel and plays a
//! file there (any format voice-audio reads), `!leave` leaves. Op 4 goes out on the shard that
//! carries the guild (`TwilightGateway`); every shard's events go through
//! `Voice::process_twilight_event`.
//!
//! ```sh
//! DISCORD_TOKEN=... SHARDS=2 cargo run --release -p voice-tokio --features twilight \
//!     --example twilight_bot -- my.mp3
//! ```
//!
//! The bot needs the GUILDS, GUILD_VOICE_STATES, GUILD_MESSAGES and MESSAGE_CONTENT intents
//! (MESSAGE_CONTENT is privileged: turn it on in the developer portal).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use twilight_gateway::{Config, Event, EventTypeFlags, Intents, Shard, StreamExt as _};
use twilight_model::gateway::payload::incoming::GuildCreate;
use twilight_model::id::marker::{ChannelMarker, GuildMarker, UserMarker};
use twilight_model::id::Id;
use twilight_model::voice::VoiceState;
use voice_tokio::{IntoGuildId, JoinOptions, TwilightGateway, Voice, VoiceConfig};

#[path = "bot/playing.rs"]
mod playing;
use playing::Playing;

type Guild = Id<GuildMarker>;
/// Each member's voice channel, by guild and user.
type VoiceStates = HashMap<(Guild, Id<UserMarker>), Id<ChannelMarker>>;

struct Bot {
    gateway: TwilightGateway,
    /// Made when the first shard is ready (it tells the bot's user id).
    voice: OnceLock<Voice>,
    file: String,
    /// Who sits in which voice channel.
    voice_states: Mutex<VoiceStates>,
    playing: Playing,
}

impl Bot {
    fn note(&self, guild: Guild, state: &VoiceState) {
        let mut states = self
            .voice_states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match state.channel_id {
            Some(channel) => states.insert((guild, state.user_id), channel),
            None => states.remove(&(guild, state.user_id)),
        };
    }

    async fn join(&self, guild: Guild, author: Id<UserMarker>) -> Result<(), String> {
        let voice = self.voice.get().ok_or("not ready yet")?;
        let channel = {
            let states = self
                .voice_states
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            states.get(&(guild, author)).copied()
        };
        let channel = channel.ok_or("the author is in no voice channel")?;
        let connection = voice
            .join_channel(guild, channel, JoinOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        (self.playing)
            .start(&connection, &self.file)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn leave(&self, guild: Guild) {
        self.playing.stop(guild.into_guild_id());
        if let Some(voice) = self.voice.get() {
            voice.leave(guild).await;
        }
    }

    /// One shard's events, until it stops.
    async fn run(self: Arc<Self>, mut shard: Shard) {
        let wanted = EventTypeFlags::READY
            | EventTypeFlags::GUILD_CREATE
            | EventTypeFlags::VOICE_STATE_UPDATE
            | EventTypeFlags::VOICE_SERVER_UPDATE
            | EventTypeFlags::MESSAGE_CREATE;
        while let Some(event) = shard.next_event(wanted).await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    eprintln!("shard {}: {error}", shard.id());
                    continue;
                }
            };
            if let Some(voice) = self.voice.get() {
                voice.process_twilight_event(&event);
            }
            match event {
                Event::Ready(ready) => {
                    let (gateway, config) = (self.gateway.clone(), VoiceConfig::default());
                    self.voice
                        .get_or_init(|| Voice::new(ready.user.id, gateway, config));
                }
                Event::GuildCreate(guild) => {
                    if let GuildCreate::Available(guild) = *guild {
                        for state in &guild.voice_states {
                            self.note(guild.id, state);
                        }
                    }
                }
                Event::VoiceStateUpdate(update) => {
                    if let Some(guild) = update.guild_id {
                        self.note(guild, &update.0);
                    }
                }
                Event::MessageCreate(message) => {
                    let Some(guild) = message.guild_id else {
                        continue;
                    };
                    // Joining waits for dispatches this very loop forwards: not here.
                    let bot = Arc::clone(&self);
                    let author = message.author.id;
                    match message.content.trim() {
                        "!join" => {
                            tokio::spawn(async move {
                                if let Err(error) = bot.join(guild, author).await {
                                    eprintln!("could not join: {error}");
                                }
                            });
                        }
                        "!leave" => {
                            tokio::spawn(async move { bot.leave(guild).await });
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("DISCORD_TOKEN").map_err(|_| "set DISCORD_TOKEN")?;
    let file = std::env::args().nth(1).ok_or("usage: twilight_bot FILE")?;
    let total: u32 = std::env::var("SHARDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let intents = Intents::GUILDS
        | Intents::GUILD_VOICE_STATES
        | Intents::GUILD_MESSAGES
        | Intents::MESSAGE_CONTENT;
    let config = Config::new(token, intents);
    let shards: Vec<Shard> = twilight_gateway::bucket(0, 1, total)
        .map(|id| Shard::with_config(id, config.clone()))
        .collect();
    let bot = Arc::new(Bot {
        gateway: TwilightGateway::from_shards(&shards),
        voice: OnceLock::new(),
        file,
        voice_states: Mutex::default(),
        playing: Playing::default(),
    });
    let tasks: Vec<_> = shards
        .into_iter()
        .map(|shard| tokio::spawn(Arc::clone(&bot).run(shard)))
        .collect();
    for task in tasks {
        task.await?;
    }
    Ok(())
}
