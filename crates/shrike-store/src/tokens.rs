//! API tokens: created and revoked by the CLI, checked by the API. Only a token's SHA-256 is
//! stored; the token itself is shown once, when it is created.

use crate::{Result, Store, now_ms};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "shrike_";

/// A row of `api_tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ApiTokenRow {
    /// Token id (shown in listings; not secret).
    pub id: u64,
    /// What the token is for, as its creator named it.
    pub name: String,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// `read`, `write` or `admin`.
    pub scope: String,
    /// Creation time, Unix seconds.
    pub created_at: u32,
    /// 1 once revoked.
    pub revoked: u8,
    /// Row version (Unix ms).
    pub version: u64,
}

/// The SHA-256 of a token, hex: what is stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Creates a token with `scope`; returns its row and the token, which is not stored.
    pub async fn create_token(&self, name: &str, scope: &str) -> Result<(ApiTokenRow, String)> {
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let _one_at_a_time = crate::NEXT_ID.lock().await;
        let next: u64 = self
            .client
            .query(&format!("SELECT max(id) + 1 FROM {}.api_tokens", self.db))
            .fetch_one()
            .await?;
        let row = ApiTokenRow {
            id: next.max(1),
            name: name.to_owned(),
            token_hash: token_hash(&token),
            scope: scope.to_owned(),
            created_at: (now_ms() / 1000) as u32,
            revoked: 0,
            version: now_ms(),
        };
        self.insert_rows("api_tokens", std::slice::from_ref(&row))
            .await?;
        Ok((row, token))
    }

    /// Every token in its latest state, oldest first.
    pub async fn tokens(&self) -> Result<Vec<ApiTokenRow>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT id, argMax(name, version), argMax(token_hash, version),
                        argMax(scope, version), argMax(created_at, version),
                        argMax(revoked, version), max(version)
                 FROM {}.api_tokens GROUP BY id ORDER BY id",
                self.db
            ))
            .fetch_all()
            .await?)
    }

    /// The unrevoked token with this hash.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiTokenRow>> {
        let rows: Vec<ApiTokenRow> = self
            .client
            .query(&format!(
                "SELECT id, argMax(name, version), argMax(token_hash, version),
                        argMax(scope, version), argMax(created_at, version),
                        argMax(revoked, version) AS is_revoked, max(version)
                 FROM {}.api_tokens WHERE id IN (SELECT id FROM {}.api_tokens WHERE token_hash = ?)
                 GROUP BY id HAVING is_revoked = 0",
                self.db, self.db
            ))
            .bind(hash)
            .fetch_all()
            .await?;
        Ok(rows.into_iter().find(|row| row.token_hash == hash))
    }

    /// Revokes a token; returns false when there is no such token.
    pub async fn revoke_token(&self, id: u64) -> Result<bool> {
        let Some(mut row) = self.tokens().await?.into_iter().find(|t| t.id == id) else {
            return Ok(false);
        };
        row.revoked = 1;
        row.version = now_ms().max(row.version + 1);
        self.insert_rows("api_tokens", &[row]).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
