# The vmbench guest: a minimal NixOS booted by QEMU with -kernel/-initrd.
# Everything lives in one initrd (netboot: the closure as a squashfs inside
# it), so the guest needs no disk and no share. The agent starts at boot,
# finds the ivshmem device through the vmbench module, and answers the host.
{
  config,
  lib,
  pkgs,
  modulesPath,
  vmbench,
  ...
}:
let
  vmbenchKmod = config.boot.kernelPackages.callPackage ./kmod { };
in
{
  imports = [
    "${modulesPath}/profiles/minimal.nix"
    "${modulesPath}/installer/netboot/netboot.nix"
  ];

  system.stateVersion = "25.11";

  # The pinned nixpkgs kernel, with the options the module needs. Note the
  # attribute name: inside boot.kernelPatches it is extraStructuredConfig.
  boot.kernelPatches = [
    {
      name = "vmbench-guest";
      patch = null;
      extraStructuredConfig = with lib.kernel; {
        ZONE_DEVICE = yes; # devm_memremap_pages: write-back BAR2
        X86_IOPL_IOPERM = yes; # ioperm(): OUTB from guest user space (slow-path rows)
        PCI_MSI = yes; # doorbell mode
      };
    }
  ];
  boot.extraModulePackages = [ vmbenchKmod ];
  boot.kernelModules = [ "vmbench" ];

  # Measurement-friendly guest kernel: serial console, no watchdogs, power off
  # (QEMU exits with -no-reboot) instead of rebooting on panic.
  boot.kernelParams = [
    "console=ttyS0"
    "8250.nr_uarts=1"
    "loglevel=4"
    "panic=-1"
    "nowatchdog"
    "nmi_watchdog=0"
    "tsc=reliable"
  ];
  boot.loader.grub.enable = false;
  boot.initrd.systemd.enable = true;
  netboot.squashfsCompression = "zstd -Xcompression-level 3";

  # No network, nothing that wakes up periodically.
  networking.hostName = "vmbench-guest";
  networking.useDHCP = false;
  networking.firewall.enable = false;
  services.timesyncd.enable = false;
  services.udisks2.enable = false;
  systemd.oomd.enable = false;
  nix.enable = false;
  documentation.enable = false;

  systemd.services.vmbench-guest = {
    description = "vmbench guest agent";
    wantedBy = [ "multi-user.target" ];
    after = [ "systemd-modules-load.service" ];
    wants = [ "systemd-modules-load.service" ];
    serviceConfig = {
      ExecStart = "${vmbench}/bin/vmbench-guest --poweroff";
      StandardOutput = "journal+console";
      StandardError = "journal+console";
      Restart = "no";
    };
  };
}
