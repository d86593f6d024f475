//! The body of a reply to a request: a value, or an error code with a message.

use serde::{Deserialize, Serialize};

/// Error codes that the bus itself puts in error replies. Services define their own codes (such as
/// `not_found`) next to their operations.
pub mod error_code {
    /// The request could not be decoded into the route's body type, or its envelope is invalid.
    pub const INVALID_REQUEST: &str = "invalid_request";

    /// The authorizer rejected the request.
    pub const FORBIDDEN: &str = "forbidden";
}

/// The body of the envelope that replies to a request.
///
/// In JSON it is an object tagged by `status`:
///
/// ```json
/// {"status":"ok","value":{"state":"on"}}
/// {"status":"error","error":{"code":"not_found","message":"device \"lamp-9\" is not registered"}}
/// ```
///
/// The envelope around it carries the request's message id as its correlation id.
///
/// NOTE: the `status` tag makes this an internally tagged enum, which serde can decode only from
/// self-describing formats. Replies therefore travel as JSON, never as postcard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reply<T> {
    /// The request succeeded.
    Ok {
        /// The operation's result.
        value: T,
    },

    /// The request failed.
    Error {
        /// What failed.
        error: ErrorBody,
    },
}

impl<T> Reply<T> {
    /// Converts the reply into a `Result`.
    pub fn into_result(self) -> Result<T, ErrorBody> {
        match self {
            Reply::Ok { value } => Ok(value),
            Reply::Error { error } => Err(error),
        }
    }
}

impl<T> From<Result<T, ErrorBody>> for Reply<T> {
    fn from(result: Result<T, ErrorBody>) -> Self {
        match result {
            Ok(value) => Reply::Ok { value },
            Err(error) => Reply::Error { error },
        }
    }
}

/// The error in a failed reply: a stable code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code in `snake_case`, such as [`error_code::INVALID_REQUEST`].
    pub code: String,
    /// Explanation for the person who sent the request: what failed and what to do.
    pub message: String,
}

impl ErrorBody {
    /// Creates an error body from a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}
