//! Which RMCP+ cipher suites a configuration or a hardware profile may name.
//!
//! Only the suite's number and the decision whether hamn accepts it live here, so that
//! hamn.toml and hw-profiles/ refuse suite 0 at parse time without the ground floor
//! importing the BMC adapter; the algorithms behind each suite are `bmc::crypto`'s.
//! Only suites with authentication, integrity and confidentiality are representable:
//! a `CipherSuite` cannot hold suite 0, whose RAKP-none accepts any password.

/// The RMCP+ cipher suites hamn will use for fencing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum CipherSuite {
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    Suite3,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    Suite17,
}

/// Why a cipher suite number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    #[error(
        "cipher suite 0 has no authentication: a BMC accepts any password with it, so a \
         'success' proves nothing; configure cipher suite 3 or 17"
    )]
    NoAuthentication,
    #[error(
        "cipher suite {0} lacks authentication, integrity or confidentiality that fencing \
         relies on (or uses MD5/RC4); configure cipher suite 3 or 17"
    )]
    Weak(u8),
    #[error("cipher suite {0} is not defined by IPMI 2.0; configure cipher suite 3 or 17")]
    Unknown(u8),
}

impl TryFrom<u8> for CipherSuite {
    type Error = SuiteError;
    fn try_from(id: u8) -> Result<Self, SuiteError> {
        match id {
            3 => Ok(Self::Suite3),
            17 => Ok(Self::Suite17),
            0 => Err(SuiteError::NoAuthentication),
            1 | 2 | 4..=16 | 18 | 19 => Err(SuiteError::Weak(id)),
            _ => Err(SuiteError::Unknown(id)),
        }
    }
}

impl CipherSuite {
    pub fn id(self) -> u8 {
        match self {
            Self::Suite3 => 3,
            Self::Suite17 => 17,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_zero_and_weak_suites_are_refused() {
        assert_eq!(CipherSuite::try_from(0), Err(SuiteError::NoAuthentication));
        for weak in [1u8, 2, 6, 15, 16] {
            assert!(matches!(
                CipherSuite::try_from(weak),
                Err(SuiteError::Weak(_))
            ));
        }
        assert!(matches!(
            CipherSuite::try_from(42),
            Err(SuiteError::Unknown(42))
        ));
        assert_eq!(CipherSuite::try_from(3), Ok(CipherSuite::Suite3));
        assert_eq!(CipherSuite::try_from(17), Ok(CipherSuite::Suite17));
    }
}
