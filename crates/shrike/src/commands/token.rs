//! `shrike token ...`: API tokens, created (printed once), listed and revoked.

use crate::cli::TokenCommand;
use crate::config::Config;

/// Runs `shrike token ...`.
pub async fn run(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let store = crate::store::connect(config).await?;
    match command {
        TokenCommand::Create { scope, name } => {
            let (row, token) = store.create_token(&name, &scope).await?;
            eprintln!(
                "token {} ({} scope) created; it is shown only now:",
                row.id, row.scope
            );
            println!("{token}");
        }
        TokenCommand::List => {
            println!(
                "{:>4}  {:<6}  {:<8}  {:<20}  name",
                "id", "scope", "state", "created"
            );
            for token in store.tokens().await? {
                println!(
                    "{:>4}  {:<6}  {:<8}  {:<20}  {}",
                    token.id,
                    token.scope,
                    if token.revoked == 0 {
                        "active"
                    } else {
                        "revoked"
                    },
                    shrike_api::views::rfc3339(token.created_at),
                    token.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke_token(id).await? {
                anyhow::bail!("no token {id}");
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}
