//! Every step of every flow, as shown by `--dry-run`, recorded in the journal and run by
//! the executor (run.rs). A flow is a list of these; the executor knows the gates.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::BmcProtocol;
use crate::disks::md;
use crate::disks::verify::ArrayPlan;
use crate::fs::Policy;
use crate::scsi::reserve::Lun;

/// Where a filesystem lives, found again when the step runs (device names change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Device {
    /// UUID=..., LABEL=... or a device path, as hamn.toml writes it.
    Spec { spec: String },
    /// The md array with this UUID, as the assemble step of this run left it.
    Array { uuid: String, name: String },
}

/// One filesystem to check and mount, with the identity it must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filesystem {
    pub device: Device,
    pub fs_type: String,
    /// The filesystem UUID recorded for it; checked with `blkid -p` before any check.
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// None: checked only (no mount point recorded).
    pub mountpoint: Option<PathBuf>,
    pub policy: Policy,
    pub read_only: bool,
    /// NFS only: mount.nfs's options from hamn.toml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

impl Filesystem {
    /// An NFS share: nothing to check, and only a power-off stops the peer's writes.
    pub fn is_network(&self) -> bool {
        crate::fs::nfs::is_network_fs(&self.fs_type)
    }

    /// The name steps go by: the mount point, else the device.
    pub fn name(&self) -> String {
        match (&self.mountpoint, &self.device) {
            (Some(m), _) => m.display().to_string(),
            (None, Device::Spec { spec }) => spec.clone(),
            (None, Device::Array { name, .. }) => name.clone(),
        }
    }
}

/// One step. The fencing steps make the proof; every step after them needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// The moved disks are the recorded ones (identity before use): the verdict of
    /// `hamn disks verify`, taken again on every run.
    VerifyDisks {
        node: String,
        manifest: PathBuf,
        verdict: String,
        /// Findings that are accepted but worth the admin's attention.
        notes: Vec<String>,
    },
    /// Before any storage step: open a session to the peer's BMC and read the power
    /// state. A BMC that refuses or does not answer stops the takeover here, with the
    /// storage untouched (the power fence would fail later, after the preempt).
    BmcCheck {
        peer: String,
        bmc: String,
        /// IPMI unless said (plans journaled before Redfish have no such field).
        #[serde(default, skip_serializing_if = "BmcProtocol::is_ipmi")]
        protocol: BmcProtocol,
    },
    FenceStorage {
        peer: String,
        victim_key: String,
        own_key: String,
        luns: Vec<Lun>,
    },
    FencePower {
        peer: String,
        bmc: String,
        #[serde(default, skip_serializing_if = "BmcProtocol::is_ipmi")]
        protocol: BmcProtocol,
        /// The plan's NFS shares ("/install on filer:/srv/xcat"): with any, the power
        /// fence runs even after a clean giveback, which nothing can show for a share.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shares: Vec<String>,
        /// The plan's DRBD resources: a clean giveback shows in DRBD's state (connected,
        /// the peer Secondary), which then stands in for the power-off.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mirrors: Vec<String>,
    },
    /// In place of the power fence: the admin's statement that the peer is off or
    /// physically disconnected (--i-know-the-peer-is-off), logged as an audit record.
    FenceOverride {
        peer: String,
        statement: String,
    },
    /// Assemble an md array from exactly the verified members (moved disks).
    Assemble {
        array: ArrayPlan,
    },
    /// Make this node's DRBD copy Primary, once the peer is powered off: only an
    /// UpToDate or Consistent copy, or one the admin named with --force-promote.
    Promote {
        resource: String,
        #[serde(default)]
        force: bool,
        /// Seconds to wait for DRBD to notice that the powered-off peer is gone.
        #[serde(default = "default_drbd_wait")]
        wait: u64,
    },
    Check {
        fs: Filesystem,
    },
    Mount {
        fs: Filesystem,
    },
    /// The address xCAT's clients use, after checking nobody else answers for it.
    ServiceIp {
        ip: crate::net::ServiceIp,
    },
    Service {
        service: crate::svc::Service,
    },
    // The reverse steps of giveback.
    StopService {
        service: crate::svc::Service,
    },
    ServiceIpDown {
        ip: crate::net::ServiceIp,
    },
    Unmount {
        mountpoint: PathBuf,
    },
    /// Release this node's reservation on every shared LUN and remove its key: after a
    /// giveback it cannot write, so the other node takes over without powering it off.
    Release {
        luns: Vec<Lun>,
    },
    /// Make this node's DRBD copy Secondary again, so the peer can take over.
    Demote {
        resource: String,
    },
    /// Stop an array the takeover assembled, so its disks can go back.
    StopArray {
        uuid: String,
        name: String,
    },
}

/// What kind of access a step needs: the executor's gates read this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only, or undoes this node's own work (giveback).
    Read,
    /// Makes a fencing proof.
    Fence,
    /// Writes storage or serves it: needs a proof for the peer.
    Write,
}

impl Step {
    /// Stable name in the journal and the progress lines.
    pub fn id(&self) -> String {
        match self {
            Step::VerifyDisks { .. } => "verify-disks".into(),
            Step::BmcCheck { .. } => "bmc-check".into(),
            Step::FenceStorage { .. } => "fence-storage".into(),
            Step::FencePower { .. } => "fence-power".into(),
            Step::FenceOverride { .. } => "fence-override".into(),
            Step::Assemble { array } => {
                format!("assemble {}", md::label(array.name.as_deref(), &array.uuid))
            }
            Step::Promote { resource, .. } => format!("promote {resource}"),
            Step::Demote { resource } => format!("demote {resource}"),
            Step::Check { fs } => format!("check {}", fs.name()),
            Step::Mount { fs } => format!("mount {}", fs.name()),
            Step::ServiceIp { ip } => format!("service-ip {}/{}", ip.address, ip.prefix),
            Step::Service { service } => format!("service {}", service.name),
            Step::StopService { service } => format!("stop {}", service.name),
            Step::ServiceIpDown { ip } => format!("service-ip-down {}/{}", ip.address, ip.prefix),
            Step::Unmount { mountpoint } => format!("unmount {}", mountpoint.display()),
            Step::Release { .. } => "release".into(),
            Step::StopArray { name, .. } => format!("stop-array {name}"),
        }
    }

    pub fn access(&self) -> Access {
        match self {
            Step::BmcCheck { .. }
            | Step::VerifyDisks { .. }
            | Step::StopService { .. }
            | Step::ServiceIpDown { .. }
            | Step::Unmount { .. }
            | Step::Release { .. }
            | Step::Demote { .. }
            | Step::StopArray { .. } => Access::Read,
            Step::FenceStorage { .. } | Step::FencePower { .. } | Step::FenceOverride { .. } => {
                Access::Fence
            }
            Step::Assemble { .. }
            | Step::Promote { .. }
            | Step::Check { .. }
            | Step::Mount { .. }
            | Step::ServiceIp { .. }
            | Step::Service { .. } => Access::Write,
        }
    }

    /// The exact commands, or their standard-tool equivalents where hamn speaks the
    /// protocol itself (SG_IO, IPMI).
    pub fn commands(&self) -> Vec<String> {
        match self {
            Step::VerifyDisks {
                node,
                manifest,
                verdict,
                notes,
            } => {
                let mut v = vec![format!(
                    "hamn disks verify --manifest {}   # {node}'s disks: {verdict}",
                    manifest.display()
                )];
                v.extend(notes.iter().map(|n| format!("# note: {n}")));
                v
            }
            Step::FenceStorage {
                victim_key,
                own_key,
                luns,
                ..
            } => {
                let mut v = Vec::new();
                for l in luns {
                    let paths: Vec<String> =
                        l.paths.iter().map(|p| p.display().to_string()).collect();
                    v.push(format!(
                        "# LUN {} ({}): read keys on {}; this node's key {own_key} must be \
                         registered on at least one path, else stop (the peer won)",
                        l.name,
                        l.wwid.as_deref().unwrap_or("?"),
                        paths.join(" ")
                    ));
                    v.push(format!(
                        "sg_persist --out --preempt-abort --param-rk={own_key} \
                         --param-sark={victim_key} --prout-type=<type> <a registered path>   \
                         # PREEMPT if the target lacks PREEMPT AND ABORT"
                    ));
                    v.push(format!(
                        "sg_persist --out --register-ignore --param-sark={own_key} <each other path>"
                    ));
                    v.push(format!(
                        "sg_persist --in --read-keys --read-reservation <each path>   # must show \
                         holder {own_key}, no {victim_key}"
                    ));
                }
                v
            }
            Step::BmcCheck {
                peer,
                bmc,
                protocol: BmcProtocol::Ipmi,
            } => vec![format!(
                "IPMI session to {bmc} ({peer}) and one power status read, changing nothing \
                 (like: ipmitool -I lanplus -H {bmc} chassis power status)"
            )],
            Step::BmcCheck {
                peer,
                bmc,
                protocol: BmcProtocol::Redfish,
            } => vec![format!(
                "Redfish session to {bmc} ({peer}), its certificate checked first, and one \
                 PowerState read, changing nothing (like: fence_redfish --ip {bmc} \
                 --action status)"
            )],
            Step::FenceOverride { peer, statement } => vec![format!(
                "# no power fence: the admin states that {peer} is off or disconnected \
                 ({statement}), logged"
            )],
            Step::FencePower {
                peer,
                bmc,
                protocol,
                shares,
                mirrors,
            } => vec![
                match protocol {
                    BmcProtocol::Ipmi => format!(
                        "IPMI chassis power down to {bmc} ({peer}), then consecutive 'off' \
                         reads (like: ipmitool -I lanplus -H {bmc} chassis power off; chassis \
                         power status)"
                    ),
                    BmcProtocol::Redfish => format!(
                        "Redfish ComputerSystem.Reset ForceOff to {bmc} ({peer}), then \
                         consecutive PowerState 'Off' reads (like: fence_redfish --ip {bmc} \
                         --action off)"
                    ),
                },
                if !shares.is_empty() {
                    format!(
                        "# never skipped: no reservation could show that {peer} let go of {}",
                        shares.join(", ")
                    )
                } else if !mirrors.is_empty() {
                    format!(
                        "# skipped when DRBD shows {peer} Secondary and connected, both copies \
                         UpToDate, on {} (drbdadm role/cstate/dstate), and any shared LUN was \
                         given back cleanly",
                        mirrors.join(", ")
                    )
                } else {
                    format!(
                        "# skipped when the storage fence found that {peer} gave the storage \
                         back cleanly (its key on no path, no holder)"
                    )
                },
            ],
            Step::Assemble { array } => {
                let mut v = Vec::new();
                if let Some(k) = &array.assembled {
                    v.push(format!(
                        "# {k} is already assembled from the verified members: used as it is"
                    ));
                    return v;
                }
                for (k, state) in &array.running {
                    v.push(format!(
                        "mdadm {}    # {k} was started by udev ({})",
                        md::stop_args(k).join(" "),
                        state.as_deref().unwrap_or("state unknown")
                    ));
                }
                v.push(format!("mdadm {}", md::assemble_args(array).join(" ")));
                v
            }
            Step::Promote {
                resource,
                force,
                wait,
            } => {
                let mut v = vec![format!(
                    "# after the power fence; asked again until DRBD sees the peer gone (up \
                     to {wait} s); only an UpToDate or Consistent copy{}",
                    if *force {
                        ", or this one as asked by name"
                    } else {
                        ""
                    }
                )];
                v.extend(crate::drbd::promote_commands(resource, *force));
                v
            }
            Step::Demote { resource } => vec![format!("drbdadm secondary {resource}")],
            Step::Check { fs } => {
                let dev = shown_device(&fs.device);
                let mut v = Vec::new();
                if let Some(u) = &fs.uuid {
                    v.push(format!(
                        "blkid -p -o export {}   # must show TYPE={} UUID={u}",
                        dev.display(),
                        fs.fs_type
                    ));
                }
                v.extend(crate::fs::plan(&dev, &fs.fs_type, fs.policy));
                v
            }
            // hamn makes the mount(2) call itself (issue 13); the line is the mount(8)
            // command that does the same, for the admin.
            Step::Mount { fs } => match (&fs.mountpoint, &fs.device) {
                (Some(mp), Device::Spec { spec }) if fs.is_network() => vec![format!(
                    "{}   # NFS: no check; {}",
                    crate::fs::nfs::mount_command(spec, &fs.fs_type, fs.options.as_deref(), mp),
                    "only after the power fence (or --i-know-the-peer-is-off)"
                )],
                (Some(mp), _) => vec![format!(
                    "mount -t {} -o {} {} {}   # done by hamn with mount(2)",
                    fs.fs_type,
                    if fs.read_only { "ro" } else { "rw" },
                    shown_device(&fs.device).display(),
                    mp.display()
                )],
                (None, _) => vec!["# no mount point recorded: checked only".into()],
            },
            Step::ServiceIp { ip } => crate::net::ip_plan(ip),
            Step::Service { service } => crate::svc::service_plan(service),
            Step::StopService { service } if service.stop.is_empty() => {
                vec![format!("# {}: nothing to stop", service.name)]
            }
            Step::StopService { service } => vec![service.stop.join(" ")],
            Step::ServiceIpDown { ip } => vec![format!(
                "ip addr del {}/{} dev {}",
                ip.address,
                ip.prefix,
                ip.device()
            )],
            Step::Unmount { mountpoint } => {
                vec![format!("umount {}   # never lazy", mountpoint.display())]
            }
            Step::Release { luns } => {
                let names = if luns.is_empty() {
                    "every shared LUN".to_string()
                } else {
                    luns.iter()
                        .map(|l| l.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                vec![
                    format!(
                        "PERSISTENT RESERVE OUT RELEASE on {names} (like: sg_persist --out \
                         --release --param-rk=<this node's key> --prout-type=<type> <path>)"
                    ),
                    "then remove this node's key on every path (like: sg_persist --out \
                     --register-ignore --param-sark=0 <each path>)"
                        .to_string(),
                ]
            }
            Step::StopArray { uuid, name } => {
                vec![format!(
                    "mdadm --stop <the array with UUID {uuid}>   # {name}"
                )]
            }
        }
    }
}

pub(crate) fn default_drbd_wait() -> u64 {
    30
}

/// UUID=, LABEL= or a path, to a device node, if it is here now.
pub fn resolve_spec(spec: &str) -> Option<PathBuf> {
    let link = if let Some(u) = spec.strip_prefix("UUID=") {
        PathBuf::from("/dev/disk/by-uuid").join(u)
    } else if let Some(l) = spec.strip_prefix("LABEL=") {
        PathBuf::from("/dev/disk/by-label").join(l)
    } else {
        PathBuf::from(spec)
    };
    std::fs::canonicalize(&link).ok()
}

/// The device node a plan shows: the kernel's name where it can be found now
/// ("/dev/md127"), else the name it will have.
pub fn shown_device(device: &Device) -> PathBuf {
    match device {
        Device::Spec { spec } => resolve_spec(spec).unwrap_or_else(|| PathBuf::from(spec)),
        Device::Array { name, .. } => PathBuf::from(name),
    }
}
