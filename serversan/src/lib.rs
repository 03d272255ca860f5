//! The ServerSan server: one process that ingests signed reports, stores
//! them, and runs the Telegram bot, alerts and charts.
//!
//! Each module owns one job and its SQL; `main.rs` only parses arguments and
//! calls [`cli::run`].

pub mod admin;
pub mod alerts;
pub mod bot;
pub mod charts;
pub mod cli;
pub mod config;
pub mod demo;
pub mod history;
pub mod ingest;
pub mod install;
pub mod storage;
pub mod web;
