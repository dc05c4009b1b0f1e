//! A serenity bot: `!join` joins the author's voice channel and plays a file there (any format
//! voice-audio reads), `!leave` leaves. `SerenityVoice` is registered with serenity as its voice
//! manager, like songbird: serenity hands it the shards and the voice dispatches.
//!
//! ```sh
//! DISCORD_TOKEN=... cargo run --release -p voice-tokio --features serenity \
//!     --example serenity_bot -- my.mp3
//! ```
//!
//! The bot needs the GUILDS, GUILD_VOICE_STATES, GUILD_MESSAGES and MESSAGE_CONTENT intents
//! (MESSAGE_CONTENT is privileged: turn it on in the developer portal).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serenity::all::{
    ChannelId, Client, Context, EventHandler, GatewayIntents, Guild, GuildId, Message, UserId,
    VoiceState,
};
use serenity::async_trait;
use voice_tokio::{IntoGuildId, JoinOptions, SerenityVoice, VoiceConfig};

#[path = "bot/playing.rs"]
mod playing;
use playing::Playing;

struct Handler {
    voice: Arc<SerenityVoice>,
    file: String,
    /// Who sits in which voice channel (serenity's cache would know; this bot keeps its own).
    voice_states: Mutex<HashMap<(GuildId, UserId), ChannelId>>,
    playing: Playing,
}

impl Handler {
    fn note(&self, guild: GuildId, state: &VoiceState) {
        let mut states = self
            .voice_states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match state.channel_id {
            Some(channel) => states.insert((guild, state.user_id), channel),
            None => states.remove(&(guild, state.user_id)),
        };
    }

    async fn join(&self, guild: GuildId, author: UserId) -> Result<String, String> {
        let voice = self.voice.voice().ok_or("not ready yet")?;
        let channel = {
            let states = self
                .voice_states
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            states.get(&(guild, author)).copied()
        };
        let channel = channel.ok_or("join a voice channel first")?;
        let connection = voice
            .join_channel(guild, channel, JoinOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        (self.playing)
            .start(&connection, &self.file)
            .map_err(|e| e.to_string())?;
        Ok(format!("playing {} in <#{channel}>", self.file))
    }

    async fn leave(&self, guild: GuildId) -> String {
        self.playing.stop(guild.into_guild_id());
        match self.voice.voice() {
            Some(voice) if voice.leave(guild).await => "left".to_owned(),
            _ => "not in a voice channel".to_owned(),
        }
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn guild_create(&self, _: Context, guild: Guild, _: Option<bool>) {
        for state in guild.voice_states.values() {
            self.note(guild.id, state);
        }
    }

    async fn voice_state_update(&self, _: Context, _: Option<VoiceState>, new: VoiceState) {
        if let Some(guild) = new.guild_id {
            self.note(guild, &new);
        }
    }

    async fn message(&self, ctx: Context, message: Message) {
        let Some(guild) = message.guild_id else {
            return;
        };
        let reply = match message.content.trim() {
            "!join" => self
                .join(guild, message.author.id)
                .await
                .unwrap_or_else(|e| format!("could not join: {e}")),
            "!leave" => self.leave(guild).await,
            _ => return,
        };
        if let Err(error) = message.channel_id.say(&ctx.http, reply).await {
            eprintln!("could not reply: {error}");
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("DISCORD_TOKEN").map_err(|_| "set DISCORD_TOKEN")?;
    let file = std::env::args().nth(1).ok_or("usage: serenity_bot FILE")?;
    let voice = SerenityVoice::new(VoiceConfig::default());
    let intents = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_VOICE_STATES
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT;
    let handler = Handler {
        voice: Arc::clone(&voice),
        file,
        voice_states: Mutex::default(),
        playing: Playing::default(),
    };
    let mut client = Client::builder(token, intents)
        .voice_manager_arc(voice)
        .event_handler(handler)
        .await?;
    client.start_autosharded().await?;
    Ok(())
}
