//! The IPMI commands fencing needs, as `ipmi-rs-core` commands: Chassis Control, Get
//! Chassis Status (IPMI 2.0 §28.2, §28.3), Set Power Restore Policy (§28.8), and the session commands ipmi-rs-core lacks
//! (Set Session Privilege Level §22.18, Close Session §22.19). Get Device ID comes from
//! ipmi-rs-core itself.

use ipmi_rs_core::connection::{IpmiCommand, Message, NetFn, NotEnoughData};

/// Power state as the BMC reports it in Get Chassis Status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

/// The chassis power restore policy: what the chassis does when AC/mains power returns.
/// Encoded as in IPMI 2.0 §28.2 (table "Get Chassis Status Command", "Current Power State" bits
/// 6:5) and §28.8 (table "Set Power Restore Policy Command", request bits 2:0), which agree on
/// 0, 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestorePolicy {
    /// 00b: the chassis stays powered off after AC/mains returns.
    AlwaysOff,
    /// 01b: power is restored to the state it had when AC/mains was lost.
    Previous,
    /// 10b: the chassis always powers up after AC/mains returns.
    AlwaysOn,
    /// 11b in Get Chassis Status: the BMC does not know.
    Unknown,
}

impl RestorePolicy {
    /// From the two bits of Get Chassis Status (already shifted down).
    pub fn from_status_bits(bits: u8) -> RestorePolicy {
        match bits & 0x03 {
            0 => Self::AlwaysOff,
            1 => Self::Previous,
            2 => Self::AlwaysOn,
            _ => Self::Unknown,
        }
    }

    /// The words `ipmitool chassis policy` uses for it, which are also what most BMC
    /// web interfaces show.
    pub fn ipmitool_word(self) -> &'static str {
        match self {
            Self::AlwaysOff => "always-off",
            Self::Previous => "previous",
            Self::AlwaysOn => "always-on",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for RestorePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.ipmitool_word())
    }
}

/// What Get Chassis Status says that hamn uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChassisStatus {
    pub power: PowerState,
    pub restore_policy: RestorePolicy,
}

/// Get Chassis Status (IPMI 2.0 §28.2, table "Get Chassis Status Command"). Response data after the completion
/// code: byte 1 "Current Power State" (bit 0 power is on, bits 6:5 power restore
/// policy), byte 2 "Last Power Event", byte 3 "Misc. Chassis State", byte 4 (optional)
/// front panel buttons.
pub struct GetChassisStatus;

impl From<GetChassisStatus> for Message {
    fn from(_: GetChassisStatus) -> Self {
        Message::new_request(NetFn::Chassis, 0x01, Vec::new())
    }
}

impl IpmiCommand for GetChassisStatus {
    type Output = ChassisStatus;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<ChassisStatus, NotEnoughData> {
        // The spec requires three bytes; a shorter answer is not a readable status.
        if data.len() < 3 {
            return Err(NotEnoughData);
        }
        Ok(ChassisStatus {
            power: if data[0] & 0x01 != 0 {
                PowerState::On
            } else {
                PowerState::Off
            },
            restore_policy: RestorePolicy::from_status_bits(data[0] >> 5),
        })
    }
}

/// Which restore policies a chassis supports: the response of Set Power Restore Policy
/// (IPMI 2.0 §28.8, table "Set Power Restore Policy Command", response byte 2: bit 0 "staying powered off", bit 1 "restore
/// to previous state", bit 2 "always powering up").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PolicySupport {
    pub always_off: bool,
    pub previous: bool,
    pub always_on: bool,
}

/// Set Power Restore Policy (IPMI 2.0 §28.8): NetFn Chassis, command 06h,
/// request byte 1 bits 2:0 000b always off, 001b previous, 010b always on, 011b no
/// change (only read which policies are supported).
pub struct SetPowerRestorePolicy(pub Option<RestorePolicy>);

impl SetPowerRestorePolicy {
    fn code(&self) -> u8 {
        match self.0 {
            Some(RestorePolicy::AlwaysOff) => 0b000,
            Some(RestorePolicy::Previous) => 0b001,
            Some(RestorePolicy::AlwaysOn) => 0b010,
            // "No change": there is no policy called unknown to set.
            Some(RestorePolicy::Unknown) | None => 0b011,
        }
    }
}

impl From<SetPowerRestorePolicy> for Message {
    fn from(c: SetPowerRestorePolicy) -> Self {
        let code = c.code();
        Message::new_request(NetFn::Chassis, 0x06, vec![code])
    }
}

impl IpmiCommand for SetPowerRestorePolicy {
    type Output = PolicySupport;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<PolicySupport, NotEnoughData> {
        let b = *data.first().ok_or(NotEnoughData)?;
        Ok(PolicySupport {
            always_off: b & 0x01 != 0,
            previous: b & 0x02 != 0,
            always_on: b & 0x04 != 0,
        })
    }
}

/// Chassis Control actions hamn issues. Power cycle and hard reset are deliberately
/// absent: neither proves the peer stays off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChassisAction {
    PowerDown,
    PowerUp,
}

pub struct ChassisControl(pub ChassisAction);

impl From<ChassisControl> for Message {
    fn from(c: ChassisControl) -> Self {
        let code = match c.0 {
            ChassisAction::PowerDown => 0x00,
            ChassisAction::PowerUp => 0x01,
        };
        Message::new_request(NetFn::Chassis, 0x02, vec![code])
    }
}

impl IpmiCommand for ChassisControl {
    type Output = ();
    type Error = NotEnoughData;

    fn parse_success_response(_: &[u8]) -> Result<(), NotEnoughData> {
        Ok(())
    }
}

pub const PRIV_ADMINISTRATOR: u8 = 0x04;

pub struct SetSessionPrivilegeLevel(pub u8);

impl From<SetSessionPrivilegeLevel> for Message {
    fn from(p: SetSessionPrivilegeLevel) -> Self {
        Message::new_request(NetFn::App, 0x3b, vec![p.0])
    }
}

impl IpmiCommand for SetSessionPrivilegeLevel {
    /// The privilege level now in effect.
    type Output = u8;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<u8, NotEnoughData> {
        data.first().map(|b| b & 0x0f).ok_or(NotEnoughData)
    }
}

pub struct CloseSession(pub u32);

impl From<CloseSession> for Message {
    fn from(c: CloseSession) -> Self {
        Message::new_request(NetFn::App, 0x3c, c.0.to_le_bytes().to_vec())
    }
}

impl IpmiCommand for CloseSession {
    type Output = ();
    type Error = NotEnoughData;

    fn parse_success_response(_: &[u8]) -> Result<(), NotEnoughData> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_status_reads_the_power_bit_and_the_restore_policy() {
        let st = |d: &[u8]| GetChassisStatus::parse_success_response(d).expect("status");
        assert_eq!(st(&[0x01, 0, 0]).power, PowerState::On);
        assert_eq!(st(&[0x01, 0, 0]).restore_policy, RestorePolicy::AlwaysOff);
        // §28.2, "Current Power State": bits 6:5 = 11b (unknown), bit 4..1 faults, bit 0 off.
        let s = st(&[0x60, 0x10, 0]);
        assert_eq!(
            (s.power, s.restore_policy),
            (PowerState::Off, RestorePolicy::Unknown)
        );
        // 0xea = 1110_1010b: reserved bit 7 set, policy 11b, power control fault 0,
        // power fault 1, interlock 0, overload 1, power off.
        let s = st(&[0xea, 0xaa, 0xaa]);
        assert_eq!(
            (s.power, s.restore_policy),
            (PowerState::Off, RestorePolicy::Unknown)
        );
        assert_eq!(st(&[0x21, 0, 0]).restore_policy, RestorePolicy::Previous);
        assert_eq!(st(&[0x41, 0, 0]).restore_policy, RestorePolicy::AlwaysOn);
        // The power bit does not leak into the policy, nor the fault bits.
        assert_eq!(st(&[0x1f, 0, 0]).restore_policy, RestorePolicy::AlwaysOff);
        assert!(GetChassisStatus::parse_success_response(&[0x01]).is_err());
    }

    #[test]
    fn set_power_restore_policy_encodes_the_spec_table() {
        let enc = |p| {
            let m: Message = SetPowerRestorePolicy(p).into();
            (m.netfn_raw(), m.cmd(), m.data().to_vec())
        };
        assert_eq!(
            enc(Some(RestorePolicy::AlwaysOff)),
            (0x00, 0x06, vec![0b000])
        );
        assert_eq!(
            enc(Some(RestorePolicy::Previous)),
            (0x00, 0x06, vec![0b001])
        );
        assert_eq!(
            enc(Some(RestorePolicy::AlwaysOn)),
            (0x00, 0x06, vec![0b010])
        );
        assert_eq!(enc(None), (0x00, 0x06, vec![0b011]), "no change: just read");
    }

    #[test]
    fn set_power_restore_policy_response_is_the_supported_policies() {
        let p = SetPowerRestorePolicy::parse_success_response(&[0x05]).expect("support");
        assert_eq!(
            p,
            PolicySupport {
                always_off: true,
                previous: false,
                always_on: true
            }
        );
        assert!(SetPowerRestorePolicy::parse_success_response(&[]).is_err());
    }

    #[test]
    fn chassis_control_encodes_power_down_as_zero() {
        let m: Message = ChassisControl(ChassisAction::PowerDown).into();
        assert_eq!((m.netfn_raw(), m.cmd(), m.data()), (0x00, 0x02, &[0u8][..]));
    }
}
