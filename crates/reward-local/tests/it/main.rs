//! Integration tests of reward-local.

mod maps;
mod phrases;
mod proposals;
