//! A password that cannot leak through Debug, Display, serde or logs, and is wiped from
//! memory when dropped.

use zeroize::Zeroizing;

#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes; only the RAKP key computation should call this.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Password files conventionally end with a newline that is not part of the secret.
    pub fn from_file_contents(mut bytes: Vec<u8>) -> Self {
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        Self::new(bytes)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = Secret::new(b"hunter2".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn trailing_newline_of_a_password_file_is_not_part_of_it() {
        assert_eq!(Secret::from_file_contents(b"pw\n".to_vec()).expose(), b"pw");
    }
}
