# NixOS host module: boot-time CPU isolation for vmbench.
#
# Boot-only knobs (isolcpus, nohz_full, rcu_nocbs, irqaffinity, nosmt, ...)
# need a reboot, so they belong in the system configuration. Runtime knobs
# (governor, turbo, IRQ affinity, sysctls) are applied and restored by
# `vmbench isolate apply` / `vmbench run`, which journal the original values.
#
#   imports = [ vmbench.nixosModules.host-tuning ];
#   vmbench.hostTuning = { enable = true; benchCpus = "2-3"; housekeepingCpus = "0-1"; };
{ config, lib, ... }:
let
  cfg = config.vmbench.hostTuning;
in
{
  options.vmbench.hostTuning = {
    enable = lib.mkEnableOption "boot-time CPU isolation for vmbench";

    benchCpus = lib.mkOption {
      type = lib.types.str;
      example = "2-3";
      description = "CPUs reserved for the benchmark (kernel cpulist format). One per vCPU.";
    };

    housekeepingCpus = lib.mkOption {
      type = lib.types.str;
      example = "0-1";
      description = "CPUs that take interrupts, RCU callbacks and everything else.";
    };

    disableSmt = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Boot with nosmt, so no SMT sibling shares a benchmark core.";
    };

    stableTsc = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Add tsc=reliable. Only correct when the TSC is invariant (constant_tsc and nonstop_tsc).";
    };

    intelPstatePassive = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Add intel_pstate=passive (intel_pstate in active mode interacts badly with nohz_full).";
    };

    nohzFull = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Add nohz_full= for the benchmark CPUs (needs a kernel built with CONFIG_NO_HZ_FULL).";
    };

    rcuNormalAfterBoot = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Add rcupdate.rcu_normal_after_boot=1: after boot, expedited RCU grace periods (an IPI to every CPU) run as normal ones.";
    };

    rcuPatienceDelayMs = lib.mkOption {
      type = lib.types.nullOr lib.types.int;
      default = 1000;
      description = "Add rcutree.nohz_full_patience_delay= (ms, kernel 6.10 and later): RCU leaves a nohz_full CPU alone until a grace period is this old. null leaves it out.";
    };

    kvmLowLatency = lib.mkOption {
      type = lib.types.nullOr (lib.types.enum [ "intel" "amd" ]);
      default = null;
      description = "Add kvm.kvmclock_periodic_sync=N and turn PAUSE-loop exiting off for this vendor's module (kvm_intel.ple_gap=0 or kvm_amd.pause_filter_count=0), as tuned's realtime-virtual-host does.";
    };

    systemdCpuAffinity = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Set systemd's CPUAffinity to the housekeeping CPUs: every service, and what it forks, starts there.";
    };

    disableIrqbalance = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Keep irqbalance off: it rewrites IRQ affinities every 10 s.";
    };
  };

  config = lib.mkIf cfg.enable {
    # The order `vmbench isolate suggest` prints them in.
    boot.kernelParams = [
      "isolcpus=managed_irq,domain,${cfg.benchCpus}"
    ]
    ++ lib.optional cfg.nohzFull "nohz_full=${cfg.benchCpus}"
    ++ [
      "rcu_nocbs=${cfg.benchCpus}"
      "irqaffinity=${cfg.housekeepingCpus}"
      "skew_tick=1"
      "nowatchdog"
      "nmi_watchdog=0"
    ]
    ++ lib.optional cfg.rcuNormalAfterBoot "rcupdate.rcu_normal_after_boot=1"
    ++ lib.optional (
      cfg.rcuPatienceDelayMs != null
    ) "rcutree.nohz_full_patience_delay=${toString cfg.rcuPatienceDelayMs}"
    ++ lib.optional cfg.stableTsc "tsc=reliable"
    ++ lib.optional cfg.disableSmt "nosmt"
    ++ lib.optional cfg.intelPstatePassive "intel_pstate=passive"
    ++ lib.optionals (cfg.kvmLowLatency != null) [
      "kvm.kvmclock_periodic_sync=N"
      (if cfg.kvmLowLatency == "intel" then "kvm_intel.ple_gap=0" else "kvm_amd.pause_filter_count=0")
    ];

    # systemd-system.conf(5) [Manager] CPUAffinity: read by PID 1 at boot.
    systemd.settings.Manager = lib.mkIf cfg.systemdCpuAffinity {
      CPUAffinity = cfg.housekeepingCpus;
    };

    services.irqbalance.enable = lib.mkIf cfg.disableIrqbalance (lib.mkForce false);

    # QEMU locks guest RAM (-overcommit mem-lock=on): let wheel users lock memory.
    security.pam.loginLimits = [
      {
        domain = "@wheel";
        item = "memlock";
        type = "-";
        value = "unlimited";
      }
    ];
  };
}
