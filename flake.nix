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
        in
        {
          inherit vmbench guest-image;
          # KVM-only QEMU for this host's CPU; ships ivshmem-server and isa-debugcon.
          qemu = pkgs.qemu_kvm;
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

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.vmbench}/bin/vmbench";
        };
      });

      checks = forAllSystems (pkgs: {
        inherit (self.packages.${pkgs.stdenv.hostPlatform.system}) vmbench guest-image;
      });

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
