//! Just enough ELF to tell a static binary from a dynamic one.

/// True when the ELF file has no PT_INTERP program header (no dynamic loader
/// needed, so it runs in a bare initramfs). None if it is not a 64-bit ELF.
pub fn is_static(bytes: &[u8]) -> Option<bool> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let off = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(off)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tells_static_from_dynamic() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // This workspace builds static binaries (.cargo/config.toml).
        assert_eq!(super::is_static(&me), Some(true));
        if let Ok(sh) = std::fs::read("/bin/sh")
            && super::is_static(&sh) == Some(false)
        {
            return; // the usual case: a dynamically linked /bin/sh
        }
        assert_eq!(
            super::is_static(b"not an elf at all, just text......................................"),
            None
        );
    }
}
