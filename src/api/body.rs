//! Reading a response body with a bound on its size.

pub(super) enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the body into `buf` (cleared first) chunk by chunk, stopping past `limit` bytes.
pub(super) async fn read_body(
    response: &mut reqwest::Response,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), BodyError> {
    buf.clear();
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(())
}
