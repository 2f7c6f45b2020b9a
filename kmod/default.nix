# The vmbench guest module, built against the guest's own kernel. Call it
# from that kernel's package scope so `kernel` and `kernelModuleMakeFlags`
# match it (flake.nix: linuxPackages.callPackage ./kmod { }). Kbuild refuses
# a kernel without the options the module needs.
{
  lib,
  stdenv,
  kernel,
  kernelModuleMakeFlags,
}:
stdenv.mkDerivation {
  pname = "vmbench-kmod";
  version = "0.1.0-${kernel.version}";

  src = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./vmbench.c
      ./vmbench_uapi.h
      ./Kbuild
      ./Makefile
    ];
  };

  nativeBuildInputs = kernel.moduleBuildDependencies;
  hardeningDisable = [
    "pic"
    "format"
  ];

  makeFlags = kernelModuleMakeFlags ++ [
    "KDIR=${kernel.dev}/lib/modules/${kernel.modDirVersion}/build"
  ];

  installPhase = ''
    runHook preInstall
    install -D -m 0644 vmbench.ko $out/lib/modules/${kernel.modDirVersion}/extra/vmbench.ko
    runHook postInstall
  '';

  meta = {
    description = "vmbench guest module: write-back ivshmem mapping, doorbell, VM-exit loops";
    license = lib.licenses.gpl2Only;
    platforms = [ "x86_64-linux" ];
  };
}
