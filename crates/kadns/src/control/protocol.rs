//! The control socket's protocol: one JSON request on one line, one JSON
//! response on one line, then the server closes the connection.
//!
//! ```text
//! → {"command":"status"}
//! ← {"ok":true,"result":{…}}
//! → {"command":"cache_flush","name":"www.example.kad."}
//! ← {"ok":true,"result":{"bundles":1,"forwarded":0}}
//! → {"command":"reload"}
//! ← {"ok":false,"error":"/etc/kadns/kadns.toml: …"}
//! ```

use serde::{Deserialize, Serialize};

/// Longest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 4096;

/// A request to the running node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// The node's [`Status`](super::Status).
    Status,
    /// Drop cached answers: of `name`, or all of them.
    CacheFlush {
        /// The name; `None` flushes everything.
        #[serde(default)]
        name: Option<String>,
    },
    /// Re-read the configuration file (as SIGHUP does) and report.
    Reload,
    /// A test hook; refused unless the node was started with
    /// `KADNS_TEST_HOOKS=1`.
    Debug {
        /// What to do: `kill-event-loop` ends the DHT event loop.
        action: String,
    },
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The request's result (a status, a flush count, a reload report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

impl Response {
    /// A success carrying `result`.
    pub fn ok(result: impl Serialize) -> Self {
        match serde_json::to_value(result) {
            Ok(value) => Self {
                ok: true,
                error: None,
                result: Some(value),
            },
            Err(error) => Self::error(format!("cannot encode the result: {error}")),
        }
    }

    /// A failure with its reason.
    pub fn error(reason: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(reason.into()),
            result: None,
        }
    }
}

/// What a reload did, as `kadns reload` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// What changed and is now in force, one phrase each.
    pub applied: Vec<String>,
    /// Settings that changed in the file but need a restart.
    pub needs_restart: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json_and_strangers_are_refused() {
        let flush: Request =
            serde_json::from_str(r#"{"command":"cache_flush","name":"a.example."}"#).unwrap();
        assert_eq!(
            flush,
            Request::CacheFlush {
                name: Some("a.example.".into())
            }
        );
        let all: Request = serde_json::from_str(r#"{"command":"cache_flush"}"#).unwrap();
        assert_eq!(all, Request::CacheFlush { name: None });
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"command":"status"}"#
        );
        for bad in [r#"{"command":"shutdown"}"#, "status"] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        let error = serde_json::to_string(&Response::error("no")).unwrap();
        assert_eq!(error, r#"{"ok":false,"error":"no"}"#);
    }
}
