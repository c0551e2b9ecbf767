//! The subcommands of `lbfwd`, one module each.

pub mod check;
pub mod replay;
pub mod run;
