//! pci-testdev's BAR from QMP `query-pci`: where the MMIO rows' device is.

/// What vmbench reads of QMP's `query-pci` answer (QEMU's qapi/pci.json:
/// PciInfo, PciDeviceInfo, PciMemoryRegion, PciBridgeInfo).
#[derive(Debug, serde::Deserialize)]
pub struct PciBus {
    devices: Vec<PciDevice>,
}

#[derive(Debug, serde::Deserialize)]
struct PciDevice {
    id: PciId,
    #[serde(default)]
    regions: Vec<PciRegion>,
    #[serde(default)]
    pci_bridge: Option<PciBridge>,
}

#[derive(Debug, serde::Deserialize)]
struct PciId {
    vendor: u64,
    device: u64,
}

#[derive(Debug, serde::Deserialize)]
struct PciRegion {
    bar: u64,
    #[serde(rename = "type")]
    kind: String,
    address: u64,
    size: u64,
}

#[derive(Debug, serde::Deserialize)]
struct PciBridge {
    #[serde(default)]
    devices: Vec<PciDevice>,
}

/// The BAR in a `query-pci` answer, searching behind bridges too.
pub fn testdev_bar_in(buses: &[PciBus]) -> Option<std::ops::Range<u64>> {
    fn search(devices: &[PciDevice]) -> Option<std::ops::Range<u64>> {
        for d in devices {
            if (d.id.vendor, d.id.device) == (0x1b36, 0x0005) {
                let bar = d
                    .regions
                    .iter()
                    .find(|r| r.bar == 0 && r.kind == "memory")?;
                return Some(bar.address..bar.address.checked_add(bar.size)?);
            }
            if let Some(found) = d.pci_bridge.as_ref().and_then(|b| search(&b.devices)) {
                return Some(found);
            }
        }
        None
    }
    buses.iter().find_map(|bus| search(&bus.devices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_testdevs_mmio_bar_is_read_from_query_pci() {
        // QEMU 7.2's answer for `-machine q35 -nodefaults -device
        // pci-testdev` after SeaBIOS placed the BARs (the ioeventfd QEMU
        // then registers for the MMIO wildcard test is at 0xfebfe801).
        let text = include_str!("../../../fixtures/qemu/query-pci-q35-pci-testdev.json");
        let buses = |v: serde_json::Value| serde_json::from_value::<Vec<PciBus>>(v).unwrap();
        let answer: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            testdev_bar_in(&buses(answer.clone())),
            Some(0xfebf_e000..0xfebf_f000)
        );
        // Behind a bridge, and absent.
        let bridged = serde_json::json!([{"devices": [{"id": {"vendor": 0x8086, "device": 1},
            "regions": [], "pci_bridge": {"devices": answer[0]["devices"].clone()}}]}]);
        assert_eq!(
            testdev_bar_in(&buses(bridged)),
            Some(0xfebf_e000..0xfebf_f000)
        );
        assert_eq!(
            testdev_bar_in(&buses(serde_json::json!([{"devices": []}]))),
            None
        );
    }
}
