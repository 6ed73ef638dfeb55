//! Printing tokens as a table or as JSON.

use clap::ValueEnum;
use serde::Serialize;

use crate::grpc::pb;

/// Output format of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// A token as the CLI prints it. Times are RFC 3339 in UTC; `null` in JSON
/// means never.
#[derive(Debug, Serialize)]
pub(super) struct TokenView {
    id: String,
    owner: String,
    name: String,
    status: &'static str,
    scopes: Vec<String>,
    display_hint: String,
    created_at: Option<String>,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<&pb::Token> for TokenView {
    fn from(token: &pb::Token) -> Self {
        Self {
            id: token.id.clone(),
            owner: token.owner.clone(),
            name: token.name.clone(),
            status: status_name(token.status()),
            scopes: token.scopes.clone(),
            display_hint: token.display_hint.clone(),
            created_at: token.created_at.as_ref().map(rfc3339),
            expires_at: token.expires_at.as_ref().map(rfc3339),
            last_used_at: token.last_used_at.as_ref().map(rfc3339),
            revoked_at: token.revoked_at.as_ref().map(rfc3339),
        }
    }
}

fn status_name(status: pb::TokenStatus) -> &'static str {
    match status {
        pb::TokenStatus::Active => "active",
        pb::TokenStatus::Expired => "expired",
        pb::TokenStatus::Revoked => "revoked",
        pb::TokenStatus::Unspecified => "unknown",
    }
}

/// Formats a protobuf timestamp as RFC 3339 in UTC, seconds precision.
pub(super) fn rfc3339(time: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(time.seconds, time.nanos.max(0) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{}s", time.seconds))
}

/// Prints tokens as an aligned table with a header row.
pub(super) fn print_table(tokens: &[TokenView]) {
    let header = [
        "ID",
        "OWNER",
        "NAME",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "SCOPES",
        "HINT",
    ];
    let rows: Vec<[String; 9]> = tokens
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                t.owner.clone(),
                t.name.clone(),
                t.status.to_owned(),
                t.created_at.clone().unwrap_or_default(),
                t.expires_at.clone().unwrap_or_else(|| "never".to_owned()),
                t.last_used_at
                    .clone()
                    .unwrap_or_else(|| "never used".to_owned()),
                t.scopes.join(","),
                t.display_hint.clone(),
            ]
        })
        .collect();

    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
}

/// Prints a value as pretty JSON.
pub(super) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
