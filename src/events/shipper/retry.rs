//! Retry classification, in one place: which INSERT failures are the rows'
//! fault (kept in a rejected file) and which are worth retrying.

/// How an INSERT failure is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying: the server may take the same rows later.
    Transient,
    /// The rows themselves were refused; retrying cannot help.
    Data,
}

/// ClickHouse error codes that mean "these rows are bad", not "try later":
/// parse failures, type mismatches, incorrect data, too-large values.
const DATA_ERROR_CODES: &[u32] = &[6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131];

/// Classifies an INSERT error for retry: [`ErrorKind::Data`] only for a
/// ClickHouse server error whose code is one of `DATA_ERROR_CODES`, every
/// other error transient. Rows go to a rejected file only when the server
/// has said they are bad; an error on our side (a TLS or URL problem, a
/// client bug, a variant a newer client adds) is retried, leaving the
/// events in the log.
pub fn classify(e: &clickhouse::error::Error) -> ErrorKind {
    match e {
        clickhouse::error::Error::BadResponse(msg) => match server_code(msg) {
            Some(code) if DATA_ERROR_CODES.contains(&code) => ErrorKind::Data,
            _ => ErrorKind::Transient,
        },
        _ => ErrorKind::Transient,
    }
}

/// The `Code: N` of a ClickHouse error message.
pub(super) fn server_code(msg: &str) -> Option<u32> {
    let rest = &msg[msg.find("Code: ")? + 6..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
