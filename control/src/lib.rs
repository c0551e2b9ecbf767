//! lbfwd's control plane: the request and response types of the unix-socket
//! API (JSON lines), the server the daemon embeds (generic over a handler the
//! daemon implements), and the client `lbctl` uses.
#![deny(unsafe_code)]

pub mod protocol;
