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

    disableIrqbalance = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Keep irqbalance off: it rewrites IRQ affinities every 10 s.";
    };
  };

  config = lib.mkIf cfg.enable {
    boot.kernelParams = [
      "isolcpus=managed_irq,domain,${cfg.benchCpus}"
      "nohz_full=${cfg.benchCpus}"
      "rcu_nocbs=${cfg.benchCpus}"
      "irqaffinity=${cfg.housekeepingCpus}"
      "skew_tick=1"
      "nowatchdog"
      "nmi_watchdog=0"
    ]
    ++ lib.optional cfg.stableTsc "tsc=reliable"
    ++ lib.optional cfg.disableSmt "nosmt"
    ++ lib.optional cfg.intelPstatePassive "intel_pstate=passive";

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
