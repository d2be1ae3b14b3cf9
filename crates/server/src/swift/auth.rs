//! TempAuth: accounts and keys from the configuration, tokens kept in memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use parking_lot::Mutex;

use super::error::SwiftError;
use crate::config::SwiftAccount;

/// How long a token lives, as TempAuth's default.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

struct Session {
    account: String,
    expires: Instant,
}

/// The configured users and the tokens issued to them. A user gets its live token again on
/// every login, so the table holds at most one token per user.
pub struct Sessions {
    accounts: Vec<SwiftAccount>,
    tokens: Mutex<HashMap<String, Session>>,
}

/// A successful login.
pub struct Login {
    pub account: String,
    pub token: String,
    pub expires_in: Duration,
}

impl Sessions {
    pub fn new(accounts: Vec<SwiftAccount>) -> Self {
        Sessions {
            accounts,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `X-Auth-User: <account>:<user>` and `X-Auth-Key`, and issues a token.
    pub fn login(&self, headers: &HeaderMap) -> Result<Login, SwiftError> {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let (Some(user), Some(key)) = (header("x-auth-user"), header("x-auth-key")) else {
            return Err(SwiftError::unauthorized());
        };
        let Some((account, user)) = user.split_once(':') else {
            return Err(SwiftError::unauthorized());
        };
        let known = self.accounts.iter().any(|entry| {
            entry.account == account
                && entry.user == user
                && crate::http::constant_time_eq(entry.key.as_bytes(), key.as_bytes())
        });
        if !known {
            return Err(SwiftError::unauthorized());
        }
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, session| session.expires > now);
        let live = tokens
            .iter()
            .find(|(_, session)| session.account == account)
            .map(|(token, session)| (token.clone(), session.expires - now));
        if let Some((token, expires_in)) = live {
            return Ok(Login {
                account: account.to_owned(),
                token,
                expires_in,
            });
        }
        let token = new_token()?;
        tokens.insert(
            token.clone(),
            Session {
                account: account.to_owned(),
                expires: now + TOKEN_LIFETIME,
            },
        );
        Ok(Login {
            account: account.to_owned(),
            token,
            expires_in: TOKEN_LIFETIME,
        })
    }

    /// Checks that the request's `X-Auth-Token` (or `X-Storage-Token`) is a live token of
    /// `account`.
    pub fn authorize(&self, headers: &HeaderMap, account: &str) -> Result<(), SwiftError> {
        let token = ["x-auth-token", "x-storage-token"]
            .iter()
            .find_map(|name| headers.get(*name))
            .and_then(|value| value.to_str().ok())
            .ok_or_else(SwiftError::unauthorized)?;
        let tokens = self.tokens.lock();
        match tokens.get(token) {
            Some(session) if session.account == account && session.expires > Instant::now() => {
                Ok(())
            }
            _ => Err(SwiftError::unauthorized()),
        }
    }
}

fn new_token() -> Result<String, SwiftError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| {
        SwiftError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("no randomness: {error}"),
        )
    })?;
    Ok(format!("AUTH_tk{}", crate::hex(&bytes)))
}
