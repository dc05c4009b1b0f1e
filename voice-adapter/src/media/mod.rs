//! The media side shared by both adapters: a few worker threads send the audio of every
//! connection ([`MediaScheduler`]), each connection's core is shared by its driver, a worker and
//! the application ([`SharedCore`]), and the media socket is bound once for both directions
//! ([`bind_media_socket`]).

mod scheduler;
mod shared_core;
mod socket;

pub use scheduler::{MediaScheduler, Registration, Transmitted, Transmitter, GRANULARITY};
pub use shared_core::{CoreGuard, CoreState, DriverWake, SharedCore};
pub use socket::{bind_media_socket, MediaSocket};
