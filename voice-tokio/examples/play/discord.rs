//! The real-Discord mode of the example: twilight-gateway for the main gateway, voice-tokio for
//! the voice side. It cannot run without a bot token and network; it compiles in CI.

use std::sync::Arc;

use twilight_gateway::{Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _};
use voice_proto::gateway::{VoiceServerDispatch, VoiceStateDispatch, VoiceStateUpdate};
use voice_proto::id::{ChannelId, GuildId, UserId};
use voice_proto::secret::Token;
use voice_tokio::{Connection, JoinOptions, Voice, VoiceConfig};

/// Connects to the main gateway with `DISCORD_TOKEN`, joins the channel (receiving the others'
/// audio when `receive`) and returns the voice connection. The shard keeps running in a
/// background task that forwards the voice dispatches.
pub async fn join(guild: GuildId, channel: ChannelId, receive: bool) -> Result<Connection, String> {
    let token =
        std::env::var("DISCORD_TOKEN").map_err(|_| "DISCORD_TOKEN is not set".to_owned())?;
    let mut shard = Shard::new(
        ShardId::ONE,
        token,
        Intents::GUILDS | Intents::GUILD_VOICE_STATES,
    );
    let wanted = EventTypeFlags::READY
        | EventTypeFlags::VOICE_STATE_UPDATE
        | EventTypeFlags::VOICE_SERVER_UPDATE;

    // Our user id comes with Ready.
    let user_id = loop {
        match shard.next_event(wanted).await {
            Some(Ok(Event::Ready(ready))) => break UserId(ready.user.id.get()),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(format!("main gateway: {error}")),
            None => {
                return Err("the main gateway closed before Ready (check DISCORD_TOKEN)".to_owned())
            }
        }
    };

    let sender = shard.sender();
    let link = move |update: &VoiceStateUpdate| {
        sender
            .send(update.to_gateway_json())
            .map_err(|e| format!("main gateway: {e}"))
    };
    let voice = Arc::new(Voice::new(user_id, link, VoiceConfig::default()));
    let forward = Arc::clone(&voice);
    tokio::spawn(async move {
        while let Some(event) = shard.next_event(wanted).await {
            match event {
                Ok(Event::VoiceStateUpdate(update)) => {
                    forward.handle_voice_state_update(VoiceStateDispatch {
                        guild_id: update.guild_id.map(|g| GuildId(g.get())),
                        channel_id: update.channel_id.map(|c| ChannelId(c.get())),
                        user_id: UserId(update.user_id.get()),
                        session_id: update.session_id.clone(),
                    })
                }
                Ok(Event::VoiceServerUpdate(update)) => {
                    forward.handle_voice_server_update(VoiceServerDispatch {
                        token: Token::new(update.token.clone()),
                        guild_id: GuildId(update.guild_id.get()),
                        endpoint: update.endpoint.clone(),
                    })
                }
                Ok(_) => {}
                Err(error) => eprintln!("main gateway: {error}"),
            }
        }
    });
    let options = if receive {
        JoinOptions::receiving()
    } else {
        JoinOptions::default()
    };
    voice
        .join_channel(guild, channel, options)
        .await
        .map_err(|e| format!("joining channel {channel} failed: {e}"))
}
