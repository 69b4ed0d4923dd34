//! The IPMI commands fencing needs, as `ipmi-rs-core` commands: Chassis Control, Get
//! Chassis Status (IPMI 2.0 §28.2, §28.3), and the session commands ipmi-rs-core lacks
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

/// Get Chassis Status: byte 1 bit 0 is "system power is on".
pub struct GetChassisStatus;

impl From<GetChassisStatus> for Message {
    fn from(_: GetChassisStatus) -> Self {
        Message::new_request(NetFn::Chassis, 0x01, Vec::new())
    }
}

impl IpmiCommand for GetChassisStatus {
    type Output = PowerState;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<PowerState, NotEnoughData> {
        // The spec requires three bytes; a shorter answer is not a readable status.
        if data.len() < 3 {
            return Err(NotEnoughData);
        }
        Ok(if data[0] & 0x01 != 0 {
            PowerState::On
        } else {
            PowerState::Off
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
    fn chassis_status_reads_the_power_bit_only() {
        assert_eq!(
            GetChassisStatus::parse_success_response(&[0x01, 0, 0]),
            Ok(PowerState::On)
        );
        assert_eq!(
            GetChassisStatus::parse_success_response(&[0x60, 0x10, 0]),
            Ok(PowerState::Off)
        );
        assert!(GetChassisStatus::parse_success_response(&[0x01]).is_err());
    }

    #[test]
    fn chassis_control_encodes_power_down_as_zero() {
        let m: Message = ChassisControl(ChassisAction::PowerDown).into();
        assert_eq!((m.netfn_raw(), m.cmd(), m.data()), (0x00, 0x02, &[0u8][..]));
    }
}
