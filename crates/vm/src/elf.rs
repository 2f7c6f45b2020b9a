//! Just enough ELF for the guest image: tell a static binary from a dynamic
//! one, drop debug sections, read a kernel module's `.modinfo`.

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

/// An ELF file that cannot be read or rewritten as asked.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file is not an ELF file the rewriter can read.
    #[error("not a readable ELF file")]
    Parse(#[source] object::build::Error),
    /// The stripped file could not be written.
    #[error("rewriting the ELF file")]
    Write(#[source] object::build::Error),
    /// A module without `.modinfo`.
    #[error("no .modinfo section: not a kernel module")]
    NoModinfo,
    /// An empty `.modinfo`.
    #[error(".modinfo has no data")]
    EmptyModinfo,
    /// `.modinfo` lacks the key.
    #[error("no {0}= in .modinfo")]
    NoModinfoKey(String),
}

/// The file without debug sections and symbol table (what `strip` does;
/// binutils is not needed). The release profile keeps line tables for host
/// backtraces (`debug = 1`), which would make the agent about 40 MB in the
/// initramfs; a guest panic still says where (its file and line are data,
/// not debug info). A file with nothing to drop comes back unchanged.
pub fn strip(bytes: &[u8]) -> Result<Vec<u8>, ElfError> {
    use object::build::elf::SectionData;
    let mut b = object::build::elf::Builder::read(bytes).map_err(ElfError::Parse)?;
    let mut dropped = 0;
    for s in b.sections.iter_mut() {
        let debug = s.name.starts_with(b".debug_") || s.name.starts_with(b".zdebug_");
        // SectionData::String is the symbol table's strings (.strtab), not
        // the section names (.shstrtab, SectionString).
        let symbols = matches!(
            s.data,
            SectionData::Symbol | SectionData::SymbolSectionIndex | SectionData::String
        );
        if debug || symbols {
            s.delete = true;
            dropped += 1;
        }
    }
    if dropped == 0 {
        return Ok(bytes.to_vec());
    }
    for sym in b.symbols.iter_mut() {
        sym.delete = true;
    }
    let mut out = Vec::with_capacity(bytes.len());
    b.write(&mut out).map_err(ElfError::Write)?;
    Ok(out)
}

/// The value of `key=` in a kernel module's `.modinfo` (NUL-separated
/// `key=value` strings), e.g. `vermagic`.
pub fn modinfo(bytes: &[u8], key: &str) -> Result<String, ElfError> {
    let b = object::build::elf::Builder::read(bytes).map_err(ElfError::Parse)?;
    let section = b
        .sections
        .iter()
        .find(|s| s.name.as_slice() == b".modinfo")
        .ok_or(ElfError::NoModinfo)?;
    let object::build::elf::SectionData::Data(data) = &section.data else {
        return Err(ElfError::EmptyModinfo);
    };
    let prefix = format!("{key}=");
    data.split(|&c| c == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .ok_or_else(|| ElfError::NoModinfoKey(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header with `types` as its program headers.
    fn elf_with_program_headers(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * types.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = 1; // little-endian
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            let off = 64 + 56 * i;
            b[off..off + 4].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn tells_static_from_dynamic() {
        const PT_LOAD: u32 = 1;
        const PT_INTERP: u32 = 3;
        const PT_NOTE: u32 = 4;
        assert_eq!(
            is_static(&elf_with_program_headers(&[PT_LOAD, PT_NOTE])),
            Some(true)
        );
        assert_eq!(
            is_static(&elf_with_program_headers(&[PT_LOAD, PT_INTERP])),
            Some(false)
        );
        assert_eq!(
            is_static(b"not an elf at all, just text......................................"),
            None
        );
        // Program headers that run past the end: not an answer, not a panic.
        let mut cut = elf_with_program_headers(&[PT_LOAD, PT_INTERP]);
        cut.truncate(64 + 56 + 2);
        assert_eq!(is_static(&cut), None);
    }

    /// This test's own executable has debug sections and symbols: stripped,
    /// it has neither, keeps its code and program headers, and shrinks.
    #[test]
    fn strips_debug_sections_and_symbols_and_keeps_the_rest() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let names = |bytes: &[u8]| -> Vec<String> {
            let b = object::build::elf::Builder::read(bytes).unwrap();
            b.sections
                .iter()
                .map(|s| String::from_utf8_lossy(s.name.as_slice()).into_owned())
                .collect()
        };
        let before = names(&me);
        assert!(
            before.iter().any(|n| n.starts_with(".debug_")),
            "{before:?}"
        );
        assert!(before.iter().any(|n| n == ".symtab"), "{before:?}");
        let stripped = strip(&me).unwrap();
        let after = names(&stripped);
        assert!(!after.iter().any(|n| n.starts_with(".debug_")), "{after:?}");
        assert!(
            !after.iter().any(|n| n == ".symtab" || n == ".strtab"),
            "{after:?}"
        );
        assert!(after.iter().any(|n| n == ".text") && after.iter().any(|n| n == ".rodata"));
        assert!(stripped.len() < me.len());
        assert_eq!(is_static(&stripped), is_static(&me));
        // Nothing left to drop: the bytes come back as they were.
        assert_eq!(strip(&stripped).unwrap(), stripped);
        assert!(strip(b"not an elf").is_err());
    }

    /// A relocatable object like a `.ko`, with a `.modinfo` section.
    fn module_with_modinfo(modinfo_text: &[u8]) -> Vec<u8> {
        use object::write::{Object, StandardSection};
        use object::{Architecture, BinaryFormat, Endianness, SectionKind};
        let mut o = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = o.section_id(StandardSection::Text);
        o.append_section_data(text, &[0xc3], 1);
        let info = o.add_section(
            Vec::new(),
            b".modinfo".to_vec(),
            SectionKind::ReadOnlyString,
        );
        o.append_section_data(info, modinfo_text, 1);
        o.write().unwrap()
    }

    #[test]
    fn reads_a_modules_vermagic() {
        let ko = module_with_modinfo(
            b"license=GPL\0vermagic=6.12.58 SMP preempt mod_unload \0name=vmbench\0",
        );
        assert_eq!(
            modinfo(&ko, "vermagic").unwrap(),
            "6.12.58 SMP preempt mod_unload "
        );
        assert_eq!(modinfo(&ko, "name").unwrap(), "vmbench");
        assert!(
            modinfo(&ko, "author")
                .unwrap_err()
                .to_string()
                .contains("no author=")
        );
    }

    #[test]
    fn modinfo_of_a_file_without_one_is_an_error() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(
            modinfo(&me, "vermagic").unwrap_err(),
            ElfError::NoModinfo
        ));
    }
}
