//! Tests of the core through its io contract: the seeded simulation with
//! restarts ([`sim`]), transactions ([`tx`]) and the at-least-once dead-letter
//! hold ([`dead_letter_hold`]).

mod dead_letter_hold;
mod sim;
mod tx;
