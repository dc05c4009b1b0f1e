//! crypto (in progress)
