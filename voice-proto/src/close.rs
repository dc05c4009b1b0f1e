//! close (in progress)
