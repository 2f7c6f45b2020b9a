{
  description = "vmbench: reproducible VM-exit and host-guest shared-memory benchmarks for KVM hosts";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          inherit (pkgs) lib;
          vmbench = pkgs.rustPlatform.buildRustPackage {
            pname = "vmbench";
            version = cargoToml.workspace.package.version;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./Cargo.toml
                ./Cargo.lock
                ./clippy.toml
                ./crates
                ./examples
                ./fixtures
                ./nixos-guest/kmod
              ];
            };
            cargoLock.lockFile = ./Cargo.lock;
            # Both binaries: vmbench (host) and vmbench-guest (the NixOS guest's agent).
            cargoBuildFlags = [ "--workspace" ];
            # The suites' tests boot guests and touch /dev/kvm; `checks` runs
            # what can run in the sandbox.
            doCheck = false;
            meta = {
              description = "Reproducible VM-exit and host-guest shared-memory benchmarks";
              license = with lib.licenses; [
                mit
                asl20
              ];
              mainProgram = "vmbench";
              platforms = [ "x86_64-linux" ];
            };
          };
          guest = self.nixosConfigurations.guest.config;
          guestBuild = guest.system.build;
          guest-image = pkgs.runCommand "vmbench-guest-image" { } ''
            mkdir -p $out
            ln -s ${guestBuild.kernel}/${guest.system.boot.loader.kernelFile} $out/bzImage
            ln -s ${guestBuild.netbootRamdisk}/initrd $out/initrd
            echo "init=${guestBuild.toplevel}/init ${toString guest.boot.kernelParams}" > $out/cmdline
            cp ${
              pkgs.writeText "manifest.json" (
                builtins.toJSON {
                  schema_version = 1;
                  kernel_source = "${guestBuild.kernel}";
                  kernel_version = guest.boot.kernelPackages.kernel.version;
                  kernel_release = guest.boot.kernelPackages.kernel.modDirVersion;
                  agent_source = "${vmbench}/bin/vmbench-guest";
                  module = "vmbench (boot.extraModulePackages)";
                  busybox = null;
                  cmdline = toString guest.boot.kernelParams;
                  toplevel = "${guestBuild.toplevel}";
                }
              )
            } $out/manifest.json
          '';
          # The OS-free micro-guest: its own cargo workspace (no_std, PVH ELF
          # linked at 1 MiB); it includes two files of crates/proto by path.
          microguest = pkgs.rustPlatform.buildRustPackage {
            pname = "vmbench-microguest";
            version = cargoToml.workspace.package.version;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./crates/microguest/Cargo.toml
                ./crates/microguest/Cargo.lock
                ./crates/microguest/.cargo
                ./crates/microguest/build.rs
                ./crates/microguest/link.ld
                ./crates/microguest/src
                ./crates/proto/src
              ];
            };
            buildAndTestSubdir = "crates/microguest";
            cargoLock.lockFile = ./crates/microguest/Cargo.lock;
            doCheck = false;
            meta = {
              description = "vmbench's OS-free micro-guest (PVH ELF for qemu -kernel)";
              platforms = [ "x86_64-linux" ];
            };
          };
          # KVM-only QEMU for this host's CPU; ships ivshmem-server and isa-debugcon.
          qemu = pkgs.qemu_kvm;
          # `nix run .#bench -- ARGS` = `vmbench run ARGS` with this flake's
          # QEMU, guest image and micro-guest: no PATH lookups.
          bench = pkgs.writeShellApplication {
            name = "vmbench-bench";
            text = ''
              export VMBENCH_QEMU=${qemu}/bin/qemu-system-x86_64
              export VMBENCH_GUEST_IMAGE=${guest-image}
              export VMBENCH_MICRO_ELF=${microguest}/bin/vmbench-microguest
              exec ${vmbench}/bin/vmbench run "$@"
            '';
          };
        in
        {
          inherit vmbench guest-image microguest qemu bench;
          default = vmbench;
        }
      );

      nixosConfigurations.guest = nixpkgs.lib.nixosSystem {
        specialArgs.vmbench = self.packages.x86_64-linux.vmbench;
        modules = [
          { nixpkgs.hostPlatform = "x86_64-linux"; }
          ./nixos-guest/configuration.nix
        ];
      };

      nixosModules.host-tuning = import ./host-tuning/module.nix;

      apps = forAllSystems (
        pkgs:
        let
          p = self.packages.${pkgs.stdenv.hostPlatform.system};
        in
        {
          default = {
            type = "app";
            program = "${p.vmbench}/bin/vmbench";
          };
          bench = {
            type = "app";
            program = "${p.bench}/bin/vmbench-bench";
          };
        }
      );

      checks = forAllSystems (
        pkgs:
        let
          p = self.packages.${pkgs.stdenv.hostPlatform.system};
        in
        {
          inherit (p) vmbench guest-image microguest;
          # Unit tests only: the sandbox has no QEMU, /dev/kvm or guest kernel.
          tests = p.vmbench.overrideAttrs (_: {
            pname = "vmbench-tests";
            doCheck = true;
            cargoTestFlags = [
              "--workspace"
              "--lib"
            ];
          });
          clippy = p.vmbench.overrideAttrs (old: {
            pname = "vmbench-clippy";
            nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.clippy ];
            buildPhase = ''
              runHook preBuild
              cargo clippy --offline --workspace --all-targets -- -D warnings
              runHook postBuild
            '';
            installPhase = "touch $out";
            doCheck = false;
          });
          nix-format = pkgs.runCommand "nixfmt-check" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
            nixfmt --check ${./flake.nix} ${./nixos-guest/configuration.nix} ${./nixos-guest/kmod/default.nix} ${./host-tuning/module.nix}
            touch $out
          '';
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.vmbench ];
          packages = with pkgs; [
            clippy
            rustfmt
            qemu_kvm
            openssh
            nixfmt
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
