//! `voice-sim`: placeholder until its issue lands. See the workspace README.
