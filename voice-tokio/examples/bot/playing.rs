//! What the two bot examples play: one file per guild, through voice-audio's player and a pump
//! thread into the connection's sender.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use voice_audio::{Input, Player, PlayerConfig, Pump};
use voice_tokio::{Connection, GuildId, SpeakingFlags};

/// The pump playing into each guild's connection.
#[derive(Default)]
pub struct Playing {
    pumps: Mutex<HashMap<GuildId, Pump>>,
}

impl Playing {
    /// Plays `file` into `connection` (instead of what played there).
    pub fn start(&self, connection: &Connection, file: &str) -> std::io::Result<()> {
        connection.speaking(SpeakingFlags::MICROPHONE);
        let player = Player::new(PlayerConfig::default());
        player.handle().enqueue(Input::file(file));
        let pump = Pump::spawn(player, connection.opus_send(), |event| {
            println!("{event:?}")
        })?;
        let mut pumps = self.pumps.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = pumps.insert(connection.guild_id(), pump) {
            old.stop();
        }
        Ok(())
    }

    /// Stops what plays in `guild`.
    pub fn stop(&self, guild: GuildId) {
        let pump = (self.pumps.lock().unwrap_or_else(PoisonError::into_inner)).remove(&guild);
        if let Some(pump) = pump {
            pump.stop();
        }
    }
}
