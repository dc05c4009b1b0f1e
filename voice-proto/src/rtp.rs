//! rtp (in progress)
