//! Hardware profiles: what hamn knows about each BMC family (cipher suites to try, how to
//! confirm power off, quirks), as data in hw-profiles/bmc/*.toml.
//!
//! Search path, first match of a name wins: each directory in $HAMN_PROFILE_PATH
//! (colon-separated), /etc/hamn/hw-profiles, /usr/share/hamn/hw-profiles, then the
//! profiles built into the binary. Each directory holds a `bmc/` subdirectory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::suite::CipherSuite;

include!(concat!(env!("OUT_DIR"), "/builtin_profiles.rs"));

pub const SYSTEM_DIRS: [&str; 2] = ["/etc/hamn/hw-profiles", "/usr/share/hamn/hw-profiles"];
pub const GENERIC: &str = "generic";

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("hardware profile {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("cannot read hardware profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no BMC hardware profile named '{name}' (pinned in hamn.toml); known profiles: {known}"
    )]
    Unknown { name: String, known: String },
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Quirk {
    pub id: String,
    pub description: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBmcProfile {
    name: String,
    description: String,
    manufacturer_ids: Vec<u32>,
    /// IPMI's; empty in a profile for Redfish services only.
    #[serde(default)]
    cipher_suites: Vec<u8>,
    confirm_reads: u32,
    poll_interval_ms: u64,
    power_off_settle_ms: u64,
    timeout_s: u64,
    #[serde(default)]
    quirks: Vec<Quirk>,
    #[serde(default)]
    redfish: Option<RedfishMatch>,
}

/// How a Redfish service is recognised as of a profile's family, and what the family
/// needs. Any one recognition rule that holds chooses the profile.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedfishMatch {
    /// ServiceRoot.Vendor values (ServiceRoot v1.5.0 and later), case-insensitive.
    #[serde(default)]
    pub vendors: Vec<String>,
    /// ServiceRoot.Product prefixes that only this family uses, case-insensitive.
    #[serde(default)]
    pub products: Vec<String>,
    /// Keys of the service root's Oem object, for a root that names no Vendor (older
    /// firmware); case-sensitive, as Redfish OEM names are.
    #[serde(default)]
    pub oem_keys: Vec<String>,
    /// Manager Model values, read (after the login) only when the service root names no
    /// maker that any profile knows: some services (OpenBMC's bmcweb) name none there.
    #[serde(default)]
    pub manager_models: Vec<String>,
    /// How many sessions the service allows at once, for the message when it refuses one.
    #[serde(default)]
    pub max_sessions: Option<u32>,
    /// The longest one request may take (default 10 s): a frozen service must not use
    /// the whole fencing deadline on one read, but some services answer slowly.
    #[serde(default)]
    pub request_timeout_s: Option<u64>,
}

/// What a Redfish service says about who made it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedfishIdentity {
    pub vendor: String,
    pub product: String,
    pub oem_keys: Vec<String>,
    /// Empty unless read (see `RedfishMatch::manager_models`).
    pub manager_models: Vec<String>,
}

impl RedfishMatch {
    fn matches(&self, id: &RedfishIdentity) -> bool {
        let vendor = id.vendor.trim();
        let product = id.product.trim().to_ascii_lowercase();
        (!vendor.is_empty() && self.vendors.iter().any(|v| v.eq_ignore_ascii_case(vendor)))
            || (!product.is_empty()
                && self
                    .products
                    .iter()
                    .any(|p| product.starts_with(&p.to_ascii_lowercase())))
            // The Oem key counts only where the root names no vendor: a service that
            // names one is judged by it.
            || (vendor.is_empty() && self.oem_keys.iter().any(|k| id.oem_keys.contains(k)))
            || id.manager_models.iter().any(|m| {
                self.manager_models
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(m.trim()))
            })
    }

    fn recognises_nothing(&self) -> bool {
        self.vendors.is_empty()
            && self.products.is_empty()
            && self.oem_keys.is_empty()
            && self.manager_models.is_empty()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BmcProfile {
    pub name: String,
    pub description: String,
    pub manufacturer_ids: Vec<u32>,
    pub cipher_suites: Vec<CipherSuite>,
    pub confirm_reads: u32,
    pub poll_interval: Duration,
    pub power_off_settle: Duration,
    pub timeout: Duration,
    pub quirks: Vec<Quirk>,
    /// How a Redfish service of this family is recognised; None: never chosen for one
    /// unless pinned.
    pub redfish: Option<RedfishMatch>,
    /// Where it was read from ("built-in" or a path).
    pub origin: String,
}

impl BmcProfile {
    pub fn parse(origin: &str, stem: &str, text: &str) -> Result<Self, ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let raw: RawBmcProfile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if raw.name != stem {
            return Err(invalid(format!(
                "name '{}' differs from the file name '{stem}.toml'",
                raw.name
            )));
        }
        let cipher_suites = raw
            .cipher_suites
            .iter()
            .map(|&s| CipherSuite::try_from(s).map_err(|e| invalid(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if cipher_suites.is_empty() && !raw.manufacturer_ids.is_empty() {
            return Err(invalid(
                "cipher_suites is empty, but manufacturer_ids make it an IPMI profile".into(),
            ));
        }
        if let Some(r) = &raw.redfish {
            if r.recognises_nothing() {
                return Err(invalid(
                    "[redfish] has no vendors, products, oem_keys or manager_models, so it \
                     would match no service"
                        .into(),
                ));
            }
            if r.request_timeout_s == Some(0) {
                return Err(invalid(
                    "[redfish] request_timeout_s must be at least 1".into(),
                ));
            }
        }
        if raw.confirm_reads == 0 || raw.poll_interval_ms == 0 || raw.timeout_s == 0 {
            return Err(invalid(
                "confirm_reads, poll_interval_ms and timeout_s must be at least 1".into(),
            ));
        }
        Ok(BmcProfile {
            name: raw.name,
            description: raw.description,
            manufacturer_ids: raw.manufacturer_ids,
            cipher_suites,
            confirm_reads: raw.confirm_reads,
            poll_interval: Duration::from_millis(raw.poll_interval_ms),
            power_off_settle: Duration::from_millis(raw.power_off_settle_ms),
            timeout: Duration::from_secs(raw.timeout_s),
            quirks: raw.quirks,
            redfish: raw.redfish,
            origin: origin.to_string(),
        })
    }
}

/// What hamn knows about a SCSI target family, matched by INQUIRY vendor/product.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageProfile {
    pub name: String,
    pub description: String,
    /// INQUIRY vendor identifications (trimmed); empty: matched only as the fallback.
    pub vendors: Vec<String>,
    /// INQUIRY product identifications (trimmed); empty: any product of those vendors.
    pub products: Vec<String>,
    /// Whether the target implements PREEMPT AND ABORT; if not, hamn uses PREEMPT at once.
    pub preempt_and_abort: bool,
    #[serde(default)]
    pub quirks: Vec<Quirk>,
}

impl StorageProfile {
    pub fn parse(origin: &str, stem: &str, text: &str) -> Result<Self, ProfileError> {
        let p: StorageProfile = toml::from_str(text).map_err(|e| ProfileError::Invalid {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        if p.name != stem {
            return Err(ProfileError::Invalid {
                origin: origin.to_string(),
                message: format!("name '{}' differs from the file name '{stem}.toml'", p.name),
            });
        }
        Ok(p)
    }

    fn matches(&self, vendor: &str, product: &str) -> bool {
        self.vendors
            .iter()
            .any(|v| v.eq_ignore_ascii_case(vendor.trim()))
            && (self.products.is_empty()
                || self
                    .products
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(product.trim())))
    }
}

/// What hamn knows about a server model, matched by DMI product name: which drive slot
/// (udev ID_PATH) is which bay label printed on the chassis, so messages can say "bay 2"
/// instead of a PCI path.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerProfile {
    pub name: String,
    pub description: String,
    /// DMI product names (/sys/class/dmi/id/product_name, trimmed, case-insensitive).
    pub products: Vec<String>,
    /// ID_PATH of a drive slot -> the bay label on the chassis.
    #[serde(default)]
    pub bays: BTreeMap<String, String>,
}

impl ServerProfile {
    pub fn parse(origin: &str, stem: &str, text: &str) -> Result<Self, ProfileError> {
        let p: ServerProfile = toml::from_str(text).map_err(|e| ProfileError::Invalid {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        if p.name != stem {
            return Err(ProfileError::Invalid {
                origin: origin.to_string(),
                message: format!("name '{}' differs from the file name '{stem}.toml'", p.name),
            });
        }
        Ok(p)
    }

    /// The bay label of a slot, if this model's profile knows it.
    pub fn bay(&self, id_path: &str) -> Option<&str> {
        self.bays.get(id_path).map(String::as_str)
    }
}

/// All profiles visible on the search path.
#[derive(Debug, Clone)]
pub struct Profiles {
    bmc: BTreeMap<String, BmcProfile>,
    storage: BTreeMap<String, StorageProfile>,
    server: BTreeMap<String, ServerProfile>,
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

type Parse<T> = fn(&str, &str, &str) -> Result<T, ProfileError>;

/// One kind of profile (a subdirectory of each search directory): the built-in copies,
/// then the installed ones from the least to the most specific directory, so that later
/// insertions of a name override earlier ones.
fn load_kind<T>(
    builtin: &[(&str, &str)],
    dirs: &[PathBuf],
    kind: &str,
    parse: Parse<T>,
) -> Result<BTreeMap<String, T>, ProfileError> {
    let mut map = BTreeMap::new();
    for (path, text) in builtin {
        let stem = stem_of(Path::new(path));
        let p = parse(&format!("built-in {path}"), &stem, text)?;
        map.insert(stem, p);
    }
    for dir in dirs.iter().rev() {
        for path in toml_files(&dir.join(kind)) {
            let text = std::fs::read_to_string(&path).map_err(|source| ProfileError::Read {
                path: path.clone(),
                source,
            })?;
            let stem = stem_of(&path);
            let p = parse(&path.display().to_string(), &stem, &text)?;
            map.insert(stem, p);
        }
    }
    Ok(map)
}

impl Profiles {
    /// The directories searched, most specific first.
    pub fn search_path() -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("HAMN_PROFILE_PATH")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
        dirs
    }

    /// Load the search path; a broken installed profile is an error, not silently skipped,
    /// because it would otherwise fall back to a less fitting profile unnoticed.
    pub fn load() -> Result<Self, ProfileError> {
        Self::load_from(&Self::search_path())
    }

    pub fn load_from(dirs: &[PathBuf]) -> Result<Self, ProfileError> {
        Ok(Profiles {
            bmc: load_kind(BUILTIN_BMC_PROFILES, dirs, "bmc", BmcProfile::parse)?,
            storage: load_kind(
                BUILTIN_STORAGE_PROFILES,
                dirs,
                "storage",
                StorageProfile::parse,
            )?,
            server: load_kind(
                BUILTIN_SERVER_PROFILES,
                dirs,
                "server",
                ServerProfile::parse,
            )?,
        })
    }

    /// The storage profile for an INQUIRY vendor/product, or the generic one.
    pub fn for_target(&self, vendor: &str, product: &str) -> Option<&StorageProfile> {
        self.storage
            .values()
            .find(|p| p.matches(vendor, product))
            .or_else(|| self.storage.get(GENERIC))
    }

    /// The server profile for a DMI product name, if any (there is no generic one: without
    /// a profile, slots are shown as their ID_PATH).
    pub fn for_server(&self, product: &str) -> Option<&ServerProfile> {
        let product = product.trim();
        self.server
            .values()
            .find(|p| p.products.iter().any(|q| q.eq_ignore_ascii_case(product)))
    }

    pub fn all(&self) -> impl Iterator<Item = &BmcProfile> {
        self.bmc.values()
    }

    pub fn by_name(&self, name: &str) -> Result<&BmcProfile, ProfileError> {
        self.bmc.get(name).ok_or_else(|| ProfileError::Unknown {
            name: name.to_string(),
            known: self.bmc.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The profile for a Redfish service root's identity, or the generic one.
    pub fn for_redfish(&self, id: &RedfishIdentity) -> Result<&BmcProfile, ProfileError> {
        match self
            .bmc
            .values()
            .find(|p| p.redfish.as_ref().is_some_and(|r| r.matches(id)))
        {
            Some(p) => Ok(p),
            None => self.by_name(GENERIC),
        }
    }

    /// Whether some profile recognises a Redfish service by its Manager's Model (worth
    /// reading only then).
    pub fn match_manager_models(&self) -> bool {
        self.bmc.values().any(|p| {
            p.redfish
                .as_ref()
                .is_some_and(|r| !r.manager_models.is_empty())
        })
    }

    /// The profile for a manufacturer ID from Get Device ID, or the generic one.
    pub fn for_manufacturer(&self, id: u32) -> Result<&BmcProfile, ProfileError> {
        match self.bmc.values().find(|p| p.manufacturer_ids.contains(&id)) {
            Some(p) => Ok(p),
            None => self.by_name(GENERIC),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_loads_and_the_required_families_exist() {
        let p = Profiles::load_from(&[]).expect("built-in profiles load");
        for name in [
            "generic",
            "openbmc",
            "lenovo-xcc",
            "dell-idrac",
            "hpe-ilo",
            "supermicro",
            "openipmi-sim",
        ] {
            assert!(p.by_name(name).is_ok(), "missing profile {name}");
        }
    }

    #[test]
    fn manufacturer_ids_pick_the_family_and_unknown_ones_the_generic_profile() {
        let p = Profiles::load_from(&[]).expect("loads");
        assert_eq!(p.for_manufacturer(4753).expect("sim").name, "openipmi-sim");
        assert_eq!(p.for_manufacturer(674).expect("dell").name, "dell-idrac");
        assert_eq!(
            p.for_manufacturer(0xfffff).expect("generic").name,
            "generic"
        );
    }

    #[test]
    fn no_manufacturer_id_is_claimed_by_two_profiles() {
        let p = Profiles::load_from(&[]).expect("loads");
        let mut seen = BTreeMap::new();
        for prof in p.all() {
            for id in &prof.manufacturer_ids {
                if let Some(other) = seen.insert(*id, prof.name.clone()) {
                    panic!("manufacturer id {id} in both {other} and {}", prof.name);
                }
            }
        }
    }

    #[test]
    fn an_installed_profile_overrides_the_builtin_one_and_a_broken_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("bmc")).expect("mkdir");
        let text = BUILTIN_BMC_PROFILES
            .iter()
            .find(|(p, _)| p.ends_with("generic.toml"))
            .map(|(_, t)| t.replace("timeout_s = 30", "timeout_s = 7"))
            .expect("generic exists");
        std::fs::write(dir.path().join("bmc/generic.toml"), text).expect("write");
        let p = Profiles::load_from(&[dir.path().to_path_buf()]).expect("loads");
        assert_eq!(
            p.by_name("generic").expect("g").timeout,
            Duration::from_secs(7)
        );
        std::fs::write(dir.path().join("bmc/generic.toml"), "name = 3").expect("write");
        assert!(Profiles::load_from(&[dir.path().to_path_buf()]).is_err());
    }

    #[test]
    fn storage_targets_are_matched_by_inquiry_vendor() {
        let p = Profiles::load_from(&[]).expect("loads");
        assert_eq!(
            p.for_target("IET     ", "VIRTUAL-DISK")
                .map(|s| s.name.as_str()),
            Some("tgt")
        );
        assert!(!p.for_target("IET", "x").expect("tgt").preempt_and_abort);
        assert_eq!(
            p.for_target("LIO-ORG", "disk1").map(|s| s.name.as_str()),
            Some("lio")
        );
        assert_eq!(
            p.for_target("NETAPP", "LUN").map(|s| s.name.as_str()),
            Some("generic")
        );
    }

    #[test]
    fn redfish_services_are_matched_by_vendor_product_oem_key_or_manager_model() {
        let p = Profiles::load_from(&[]).expect("loads");
        let by = |vendor: &str, product: &str, oem: &[&str], models: &[&str]| {
            p.for_redfish(&RedfishIdentity {
                vendor: vendor.into(),
                product: product.into(),
                oem_keys: oem.iter().map(|s| s.to_string()).collect(),
                manager_models: models.iter().map(|s| s.to_string()).collect(),
            })
            .expect("a profile")
            .name
            .clone()
        };
        assert_eq!(
            by(
                "Dell",
                "Integrated Dell Remote Access Controller",
                &["Dell"],
                &[]
            ),
            "dell-idrac"
        );
        // Older iDRAC firmware: no Vendor, its Product and Oem key.
        assert_eq!(
            by("", "Integrated Dell Remote Access Controller", &[], &[]),
            "dell-idrac"
        );
        assert_eq!(by("HPE", "ProLiant DL380a Gen11", &["Hpe"], &[]), "hpe-ilo");
        assert_eq!(by("", "", &["Hp"], &[]), "hpe-ilo");
        assert_eq!(by("Lenovo", "", &[], &[]), "lenovo-xcc");
        assert_eq!(by("", "", &["Supermicro"], &[]), "supermicro");
        assert_eq!(by("Supermicro", "", &[], &[]), "supermicro");
        assert_eq!(by("", "", &[], &["OpenBmc"]), "openbmc");
        // A vendor named outright is judged by its name, not by an Oem key it carries.
        assert_eq!(by("AMI", "AMI Redfish Server", &["Dell"], &[]), "generic");
        assert_eq!(by("", "", &[], &[]), "generic");
        assert!(p.match_manager_models());
    }

    /// Every fact's source is one a user can follow: an address, a public repository
    /// (owner/name@commit-or-tag:path), a file of this project (a lab test), or
    /// "unverified"; never a path outside the project.
    #[test]
    fn every_quirk_cites_a_source_a_user_can_follow() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let repo = |s: &str| {
            s.split_once('@').is_some_and(|(owner_name, rest)| {
                owner_name.split('/').count() == 2 && rest.contains(':')
            })
        };
        let project_file = |s: &str| {
            s.split([' ', ',', ';', '(', ')'])
                .filter(|w| {
                    w.starts_with("tests/") || w.starts_with("bench/") || w.starts_with("src/")
                })
                .any(|w| root.join(w).exists())
        };
        let all = BUILTIN_BMC_PROFILES
            .iter()
            .chain(BUILTIN_STORAGE_PROFILES.iter());
        for (path, text) in all {
            assert!(
                !text.contains("/work/") && !text.contains("../shared"),
                "{path} cites a file outside the project"
            );
            let v: toml::Value = toml::from_str(text).expect("toml");
            for q in v
                .get("quirks")
                .and_then(|q| q.as_array())
                .into_iter()
                .flatten()
            {
                let source = q["source"].as_str().unwrap_or_default();
                let ok = source == "unverified"
                    || source.split("; ").all(|part| {
                        part.starts_with("https://") || repo(part) || project_file(part)
                    });
                assert!(ok, "{path}: quirk {} cites '{source}'", q["id"]);
            }
        }
    }

    #[test]
    fn a_profile_offering_suite_zero_is_refused() {
        let text = r#"name = "x"
description = "d"
manufacturer_ids = []
cipher_suites = [0]
confirm_reads = 1
poll_interval_ms = 1
power_off_settle_ms = 0
timeout_s = 1
"#;
        let e = BmcProfile::parse("t", "x", text).unwrap_err().to_string();
        assert!(e.contains("cipher suite 0"), "{e}");
    }
}
