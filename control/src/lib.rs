//! lbfwd's control plane: the request and response types of the unix-socket
//! API (JSON lines), the server the daemon embeds (generic over a handler the
//! daemon implements), and the client `lbctl` uses.
//!
//! - [`protocol`]: [`Request`], [`Response`], [`Payload`], [`ApiError`] and
//!   the payload types; the wire format.
//! - [`server`]: [`Server::bind`] takes the socket (directory, lock file,
//!   stale socket, mode, group), [`Server::spawn`] serves it with a
//!   [`Handler`].
//! - [`client`]: [`Client::call`] sends one request and reads one response.
//! - [`convert`]: requests into the `config` crate's changes, its summaries
//!   and errors back into wire types (the daemon's handler is glue over
//!   these).
//!
//! Dependencies point `config` <- `control` <- `forwarder`: this crate knows
//! the model's resolved types (to present them) but never the dataplane.

pub mod announce;
pub mod client;
pub mod convert;
pub mod protocol;
pub mod server;

pub use client::{Client, ClientError};
pub use protocol::{ApiError, ErrorCode, Payload, Request, Response, PROTOCOL_VERSION};
pub use server::{Handler, Server, ServerConfig, ServerError, ServerHandle};
