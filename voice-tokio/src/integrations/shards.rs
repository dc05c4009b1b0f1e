//! The main gateway's shards, as far as voice needs them: where to send a guild's op 4.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use voice_proto::gateway::{shard_for_guild, VoiceStateUpdate};

/// The senders of the shards that are up, by shard number, and how many shards there are.
#[derive(Debug)]
pub(crate) struct Shards<S> {
    inner: Mutex<Inner<S>>,
}

#[derive(Debug)]
struct Inner<S> {
    count: u32,
    senders: HashMap<u32, S>,
}

impl<S> Default for Shards<S> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                count: 1,
                senders: HashMap::new(),
            }),
        }
    }
}

impl<S> Shards<S> {
    /// How many shards the bot runs (Discord's formula needs it).
    pub(crate) fn set_count(&self, count: u32) {
        self.lock().count = count.max(1);
    }

    /// Shard `number` is up and sends through `sender`.
    pub(crate) fn insert(&self, number: u32, sender: S) {
        self.lock().senders.insert(number, sender);
    }

    /// Shard `number` went down (until it is inserted again).
    pub(crate) fn remove(&self, number: u32) {
        self.lock().senders.remove(&number);
    }

    /// Sends `update` as op 4 JSON through the shard that carries its guild.
    pub(crate) fn send(
        &self,
        update: &VoiceStateUpdate,
        send: impl FnOnce(&S, String) -> Result<(), String>,
    ) -> Result<(), String> {
        let inner = self.lock();
        let shard = shard_for_guild(update.guild_id, inner.count);
        match inner.senders.get(&shard) {
            Some(sender) => send(sender, update.to_gateway_json()),
            None => Err(format!(
                "shard {shard} of {} (guild {}) is not connected",
                inner.count, update.guild_id.0
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<S>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use voice_proto::id::{ChannelId, GuildId};

    fn join(guild: u64) -> VoiceStateUpdate {
        VoiceStateUpdate::join(GuildId(guild), ChannelId(9), false, true)
    }

    #[test]
    fn op_4_goes_through_the_shard_that_carries_the_guild() {
        let shards = Shards::default();
        shards.set_count(4);
        let (tx0, rx0) = mpsc::channel();
        let (tx3, rx3) = mpsc::channel();
        shards.insert(0, tx0);
        shards.insert(3, tx3);
        let send = |tx: &mpsc::Sender<String>, json| tx.send(json).map_err(|e| e.to_string());
        // (guild >> 22) % 4: shard 0 for 0 << 22, shard 3 for 7 << 22.
        assert_eq!(shards.send(&join(7 << 22), send), Ok(()));
        assert_eq!(shards.send(&join(4 << 22), send), Ok(()));
        let on3: Vec<String> = rx3.try_iter().collect();
        let on0: Vec<String> = rx0.try_iter().collect();
        assert_eq!(on3, [join(7 << 22).to_gateway_json()]);
        assert_eq!(on0, [join(4 << 22).to_gateway_json()]);
        // Shard 1 is not up: the caller is told, nothing is sent anywhere.
        let error = shards.send(&join(1 << 22), send).unwrap_err();
        assert!(error.contains("shard 1 of 4"), "{error}");
        shards.remove(3);
        assert!(shards.send(&join(7 << 22), send).is_err());
    }

    #[test]
    fn one_shard_carries_every_guild() {
        let shards = Shards::default();
        let (tx, rx) = mpsc::channel();
        shards.insert(0, tx);
        for guild in [1, 41771983423143937, u64::MAX] {
            let sent = shards.send(&join(guild), |tx, json| {
                tx.send(json).map_err(|e| e.to_string())
            });
            assert_eq!(sent, Ok(()));
        }
        assert_eq!(rx.try_iter().count(), 3);
    }
}
