//! `voice-tokio`: placeholder until its issue lands. See the workspace README.
