//! `hamn giveback`: the planned reverse of a takeover, on the node that owns the storage
//! now, so the other node can take over cleanly: unmount (never lazily: a busy mount
//! point is reported with who holds it), release the reservation on every shared LUN
//! (the registration stays: this node remains a registered standby), retire the journal.
//! Services and the service IP come first once takeover runs them.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::journal::{self, Journal};
use crate::config::Config;
use crate::scsi::pr::Key;
use crate::scsi::reserve;

#[derive(Debug, thiserror::Error)]
pub enum GivebackError {
    #[error(
        "unmount {mountpoint}: {source}. Nothing after it was done: the reservation is \
         still this node's. Stop what uses it, then run `hamn giveback` again"
    )]
    Unmount {
        mountpoint: String,
        source: crate::fs::FsError,
    },
    #[error(
        "{0}. Nothing after it was done: the storage is still mounted and reserved here; \
         fix it and run `hamn giveback` again"
    )]
    Svc(#[from] crate::svc::SvcError),
    #[error(
        "{0}. Nothing after it was done: the storage is still mounted and reserved here; \
         fix it and run `hamn giveback` again"
    )]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Pr(#[from] reserve::PrError),
    #[error(transparent)]
    Scan(#[from] crate::disks::scan::ScanError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub step: String,
    pub detail: String,
    pub seconds: f64,
}

/// The commands giveback runs, for --dry-run.
pub fn plan(cfg: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Ok(services) = crate::svc::services(&cfg.takeover) {
        for s in services.iter().rev().filter(|s| !s.stop.is_empty()) {
            out.push(s.stop.join(" "));
        }
    }
    if let Some(ip) = cfg
        .takeover
        .service_ip
        .as_ref()
        .and_then(|c| crate::net::ServiceIp::parse(c).ok())
    {
        out.push(format!(
            "ip addr del {}/{} dev {}",
            ip.address,
            ip.prefix,
            ip.device()
        ));
    }
    out.extend(
        cfg.takeover
            .mounts
            .iter()
            .rev()
            .map(|m| format!("umount {}   # never lazy", m.mountpoint.display())),
    );
    out.push(
        "PERSISTENT RESERVE OUT RELEASE on every shared LUN (like: sg_persist --out \
         --release --param-rk=<this node's key> --prout-type=<type> <path>)"
            .into(),
    );
    out.push(format!(
        "move the journal {} aside",
        cfg.takeover
            .journal
            .clone()
            .unwrap_or_else(|| PathBuf::from(journal::DEFAULT_PATH))
            .display()
    ));
    out
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&Step)) -> Result<Vec<Step>, GivebackError> {
    let mut steps = Vec::new();
    let mut emit = |step: String, detail: String, t: Instant| {
        let s = Step {
            step,
            detail,
            seconds: t.elapsed().as_secs_f64(),
        };
        progress(&s);
        steps.push(s);
    };
    for service in crate::svc::services(&cfg.takeover)?.iter().rev() {
        let t = Instant::now();
        crate::svc::stop(service)?;
        emit(format!("stop {}", service.name), "stopped".into(), t);
    }
    if let Some(c) = &cfg.takeover.service_ip {
        let t = Instant::now();
        let ip = crate::net::ServiceIp::parse(c)?;
        crate::net::take_down(&ip)?;
        emit(
            format!("service-ip {}/{}", ip.address, ip.prefix),
            "removed".into(),
            t,
        );
    }
    for m in cfg.takeover.mounts.iter().rev() {
        let t = Instant::now();
        crate::fs::unmount(&m.mountpoint).map_err(|source| GivebackError::Unmount {
            mountpoint: m.mountpoint.display().to_string(),
            source,
        })?;
        emit(
            format!("unmount {}", m.mountpoint.display()),
            "not mounted now".into(),
            t,
        );
    }
    let t = Instant::now();
    let inv = crate::disks::inventory()?;
    let luns = reserve::shared_luns(&inv, &cfg.storage.shared)?;
    let own = Key(cfg.own_key());
    let ty = reserve::pr_type(cfg.storage.reservation_type);
    for lun in &luns {
        reserve::release(lun, own, ty)?;
    }
    emit(
        "release".into(),
        format!(
            "reservation released on {}",
            luns.iter()
                .map(|l| l.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        t,
    );
    let jpath = cfg
        .takeover
        .journal
        .clone()
        .unwrap_or_else(|| PathBuf::from(journal::DEFAULT_PATH));
    Journal::retire(&jpath)?;
    Ok(steps)
}
