//! The kernel command line, as the isolation audit needs it.
//!
//! Handles what naive regexes get wrong: `isolcpus=` flag prefixes, `rcu_nocbs=all`,
//! a bare `rcu_nocbs`, quoted values, repeated parameters (the last one wins, as
//! for the kernel's `__setup` handlers), a name that is the suffix of another
//! (`foo.isolcpus=`), the trailing newline, and everything after ` -- ` (init's
//! arguments, not the kernel's).

use vmbench_host::{CpuList, CpuListError};

/// A kernel command line, parsed into parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// (name, value) in order; `value` is None for bare flags such as `nosmt`.
    params: Vec<(String, Option<String>)>,
}

/// `isolcpus=[flag,...,]list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolCpus {
    /// `nohz`, `domain`, `managed_irq`.
    pub flags: Vec<String>,
    /// The isolated CPUs.
    pub cpus: CpuList,
}

impl IsolCpus {
    /// CPUs removed from scheduler load balancing: `domain` is the default
    /// when no flag is given.
    pub fn has_domain(&self) -> bool {
        self.flags.is_empty() || self.flags.iter().any(|f| f == "domain")
    }
    /// Whether `managed_irq` keeps managed interrupts off the CPUs.
    pub fn has_managed_irq(&self) -> bool {
        self.flags.iter().any(|f| f == "managed_irq")
    }
}

/// `rcu_nocbs=`: a list, `all`, or the bare flag (offloading infrastructure
/// only, no CPU offloaded at boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcuNocbs {
    /// Every CPU.
    All,
    /// These CPUs.
    Cpus(CpuList),
}

const ISOLCPUS_FLAGS: &[&str] = &["nohz", "domain", "managed_irq"];

impl Cmdline {
    /// Splits as the kernel does (double quotes group spaces; `--` ends it).
    pub fn parse(text: &str) -> Cmdline {
        let mut params = Vec::new();
        let mut chars = text.trim().chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            // One token; double quotes group spaces (the kernel's next_arg()).
            let mut tok = String::new();
            let mut quoted = false;
            while let Some(&c) = chars.peek() {
                if c == '"' {
                    quoted = !quoted;
                    chars.next();
                    continue;
                }
                if c.is_whitespace() && !quoted {
                    break;
                }
                tok.push(c);
                chars.next();
            }
            if tok == "--" {
                break;
            }
            match tok.split_once('=') {
                Some((k, v)) => params.push((k.to_string(), Some(v.to_string()))),
                None => params.push((tok, None)),
            }
        }
        Cmdline { params }
    }

    /// The last value of `name` (exact name, not a suffix); `Some(None)` for a bare flag.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref())
    }

    /// Whether `name` appears (as a flag or with a value).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// How many times `name` appears (repeats are worth a warning).
    pub fn count(&self, name: &str) -> usize {
        self.params.iter().filter(|(k, _)| k == name).count()
    }

    /// `isolcpus=`, if given (an error if its CPU list is malformed).
    pub fn isolcpus(&self) -> Result<Option<IsolCpus>, CpuListError> {
        let Some(Some(v)) = self.get("isolcpus") else {
            return Ok(None);
        };
        let mut flags = Vec::new();
        let mut rest = v;
        // Leading comma-separated words that are flags; the remainder is the list.
        while let Some((head, tail)) = rest.split_once(',') {
            if ISOLCPUS_FLAGS.contains(&head) {
                flags.push(head.to_string());
                rest = tail;
            } else {
                break;
            }
        }
        if ISOLCPUS_FLAGS.contains(&rest) {
            flags.push(rest.to_string());
            rest = "";
        }
        Ok(Some(IsolCpus {
            flags,
            cpus: CpuList::parse(rest)?,
        }))
    }

    /// A parameter whose value is a CPU list (`nohz_full=`, `irqaffinity=`), if given.
    pub fn cpulist(&self, name: &str) -> Result<Option<CpuList>, CpuListError> {
        match self.get(name) {
            Some(Some(v)) => CpuList::parse(v).map(Some),
            Some(None) => Ok(Some(CpuList::new())),
            None => Ok(None),
        }
    }

    /// `rcu_nocbs=`, if given.
    pub fn rcu_nocbs(&self) -> Result<Option<RcuNocbs>, CpuListError> {
        match self.get("rcu_nocbs") {
            None => Ok(None),
            Some(None) => Ok(Some(RcuNocbs::Cpus(CpuList::new()))),
            Some(Some("all")) => Ok(Some(RcuNocbs::All)),
            Some(Some(v)) => CpuList::parse(v).map(|l| Some(RcuNocbs::Cpus(l))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolcpus_with_flags() {
        let c = Cmdline::parse("ro isolcpus=managed_irq,domain,2-3 quiet\n");
        let i = c.isolcpus().unwrap().unwrap();
        assert_eq!(i.flags, vec!["managed_irq", "domain"]);
        assert_eq!(i.cpus, CpuList::from_cpus([2, 3]));
        assert!(i.has_domain() && i.has_managed_irq());
    }

    #[test]
    fn isolcpus_plain_list_means_domain() {
        let i = Cmdline::parse("isolcpus=1,3").isolcpus().unwrap().unwrap();
        assert!(i.flags.is_empty() && i.has_domain() && !i.has_managed_irq());
        assert_eq!(i.cpus, CpuList::from_cpus([1, 3]));
        let i = Cmdline::parse("isolcpus=nohz,5")
            .isolcpus()
            .unwrap()
            .unwrap();
        assert!(!i.has_domain());
    }

    #[test]
    fn last_occurrence_wins_and_suffixes_do_not_match() {
        let c = Cmdline::parse("foo.isolcpus=9 nohz_full=1 nohz_full=2-3");
        assert!(c.isolcpus().unwrap().is_none());
        assert_eq!(
            c.cpulist("nohz_full").unwrap().unwrap(),
            CpuList::from_cpus([2, 3])
        );
        assert_eq!(c.count("nohz_full"), 2);
    }

    #[test]
    fn rcu_nocbs_forms() {
        assert_eq!(
            Cmdline::parse("rcu_nocbs=all").rcu_nocbs().unwrap(),
            Some(RcuNocbs::All)
        );
        assert_eq!(
            Cmdline::parse("rcu_nocbs").rcu_nocbs().unwrap(),
            Some(RcuNocbs::Cpus(CpuList::new()))
        );
        assert_eq!(
            Cmdline::parse("rcu_nocbs=1-2").rcu_nocbs().unwrap(),
            Some(RcuNocbs::Cpus(CpuList::from_cpus([1, 2])))
        );
        assert!(Cmdline::parse("rcu_nocbs=x").rcu_nocbs().is_err());
    }

    #[test]
    fn quotes_and_init_arguments() {
        let c = Cmdline::parse(r#"dyndbg="file x.c +p" nosmt -- isolcpus=3 --init"#);
        assert_eq!(c.get("dyndbg"), Some(Some("file x.c +p")));
        assert_eq!(c.get("nosmt"), Some(None));
        assert!(!c.has("isolcpus"), "init's arguments are not the kernel's");
    }
}
