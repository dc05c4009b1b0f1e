//! Who sends on which SSRC (server op 5), for one media session, bounded.
//!
//! The map belongs to the media session it was learnt on: another voice server (a move) or a
//! fresh session hands the same SSRC to another user, and audio or DAVE decryption attributed
//! through a stale entry would name the wrong sender. So it is emptied whenever the media
//! session ends, and it holds at most [`SSRC_USERS`] entries: a new SSRC beyond that evicts the
//! oldest mapping.

use std::collections::{HashMap, VecDeque};

use crate::id::UserId;
use crate::limits::SSRC_USERS;

/// SSRC → user, with the SSRCs in the order they were first mapped (for eviction).
#[derive(Debug, Default)]
pub(crate) struct SsrcUsers {
    users: HashMap<u32, UserId>,
    order: VecDeque<u32>,
}

impl SsrcUsers {
    /// Maps `ssrc` to `user` (a known SSRC keeps its place in the eviction order).
    pub(crate) fn insert(&mut self, ssrc: u32, user: UserId) {
        if self.users.insert(ssrc, user).is_some() {
            return;
        }
        self.order.push_back(ssrc);
        while self.order.len() > SSRC_USERS {
            if let Some(oldest) = self.order.pop_front() {
                self.users.remove(&oldest);
            }
        }
    }

    /// The user behind `ssrc`.
    pub(crate) fn get(&self, ssrc: u32) -> Option<UserId> {
        self.users.get(&ssrc).copied()
    }

    /// Forgets every SSRC of `user` (op 13).
    pub(crate) fn remove_user(&mut self, user: UserId) {
        self.users.retain(|_, mapped| *mapped != user);
        let users = &self.users;
        self.order.retain(|ssrc| users.contains_key(ssrc));
    }

    /// Forgets everything (the media session ended).
    pub(crate) fn clear(&mut self) {
        self.users.clear();
        self.order.clear();
    }

    /// SSRCs mapped now.
    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_keeps_the_newest_mappings_up_to_its_cap() {
        let mut map = SsrcUsers::default();
        for ssrc in 0..u32::try_from(SSRC_USERS).unwrap_or(u32::MAX) + 10 {
            map.insert(ssrc, UserId(u64::from(ssrc)));
        }
        assert_eq!(map.len(), SSRC_USERS);
        assert_eq!(map.get(9), None, "the oldest were evicted");
        assert_eq!(map.get(10), Some(UserId(10)));
        // A remapped SSRC changes its user without growing the map.
        map.insert(10, UserId(u64::MAX));
        assert_eq!(
            (map.len(), map.get(10)),
            (SSRC_USERS, Some(UserId(u64::MAX)))
        );
        map.remove_user(UserId(u64::MAX));
        assert_eq!(
            (map.len(), map.order.len()),
            (SSRC_USERS - 1, SSRC_USERS - 1)
        );
        map.clear();
        assert_eq!((map.len(), map.order.len()), (0, 0));
    }
}
