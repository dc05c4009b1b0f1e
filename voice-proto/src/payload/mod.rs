//! payload (in progress)
