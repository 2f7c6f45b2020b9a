{
  description = "vmbench: reproducible VM-exit and host-guest shared-memory benchmarks for KVM hosts";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);
      inherit (cargoToml.workspace.package) version;
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          inherit (pkgs) lib;

          # Static binaries, as without Nix (.cargo/config.toml, which this
          # source set leaves out): `vmbench`, the host tool, and
          # `vmbench-agent`, the guest's /init. cargo applies RUSTFLAGS to the
          # --target build only, so build scripts and proc-macros stay dynamic.
          vmbench = pkgs.rustPlatform.buildRustPackage {
            pname = "vmbench";
            inherit version;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./Cargo.toml
                ./Cargo.lock
                ./clippy.toml
                ./crates
                ./examples
                ./fixtures
                ./kmod
              ];
            };
            cargoLock.lockFile = ./Cargo.lock;
            # The source set has no .git: the build script takes the commit
            # from here (`rev` of a clean tree, `dirtyRev` = HEAD + "-dirty"
            # of a tree with changes to tracked files).
            VMBENCH_COMMIT = self.rev or self.dirtyRev or "unknown";
            RUSTFLAGS = "-C target-feature=+crt-static";
            # The shared libc first, then its static archives, as nixpkgs'
            # busybox does: the cc wrapper's setup hook adds `-L<input>/lib`
            # in this order, ahead of its own libc, and GNU ld takes the
            # first directory holding the library. With glibc.static alone
            # the dynamic build scripts and proc-macros get the static libc
            # and crash (nixpkgs #59267); the static target link finds
            # libc.a only in glibc.static. crates/cli/tests/nix_sandbox.rs
            # links this way and fails with glibc.static alone.
            buildInputs = [
              pkgs.glibc
              pkgs.glibc.static
            ];
            # The suites' tests boot guests and touch /dev/kvm; `checks.tests`
            # runs what runs in the build sandbox.
            doCheck = false;
            # A static binary has no RPATH to shrink.
            dontPatchELF = true;
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

          # The OS-free micro-guest: its own cargo workspace (no_std, PVH ELF
          # linked at 1 MiB) with crates/abi as its one (path) dependency.
          microguest = pkgs.rustPlatform.buildRustPackage {
            pname = "vmbench-microguest";
            inherit version;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./crates/microguest/Cargo.toml
                ./crates/microguest/Cargo.lock
                ./crates/microguest/.cargo
                ./crates/microguest/build.rs
                ./crates/microguest/link.ld
                ./crates/microguest/src
                ./crates/abi
              ];
            };
            # cargo-setup-hook checks <source root>/<cargoRoot>/Cargo.lock;
            # buildAndTestSubdir is where cargo runs.
            cargoRoot = "crates/microguest";
            buildAndTestSubdir = "crates/microguest";
            cargoLock.lockFile = ./crates/microguest/Cargo.lock;
            # The rustflags of crates/microguest/.cargo/config.toml (a set
            # RUSTFLAGS replaces them; crates/repo-checks/tests/nix_files.rs keeps both equal).
            RUSTFLAGS = "-C relocation-model=static -C target-cpu=x86-64 -C target-feature=-sse,-sse2";
            # As nixpkgs does for rust-hypervisor-firmware, a PVH ELF with its
            # own linker script: cargo-auditable's link arguments do not fit.
            auditable = false;
            # Userland hardening flags mean nothing to an OS-free ELF.
            hardeningDisable = [ "all" ];
            # QEMU loads the ELF as linked; nothing to strip or patch.
            dontStrip = true;
            dontPatchELF = true;
            doCheck = false;
            meta = {
              description = "vmbench's OS-free micro-guest (PVH ELF for qemu -kernel)";
              platforms = [ "x86_64-linux" ];
            };
          };

          # The guest: nixos-25.11's default kernel (6.12 LTS) as built for
          # NixOS, so it comes from the binary cache; the vmbench module built
          # against it (kmod/Kbuild refuses a kernel without the options the
          # module needs); a static busybox for the console shell.
          guestKernelPackages = pkgs.linuxPackages;
          guestKernel = guestKernelPackages.kernel;
          guestModule = guestKernelPackages.callPackage ./kmod { };
          guestBusybox = pkgs.busybox.override { enableStatic = true; };

          # The same minimal image `vmbench image build` makes without Nix,
          # made by that same command: bzImage, initrd (vmbench-agent as
          # /init, the module, busybox), cmdline, manifest.json.
          guest-image = pkgs.runCommand "vmbench-guest-image-${version}" { } ''
            # vmbench-image-build: begin (crates/cli/tests/flake_image.rs runs this with Debian stand-ins)
            ${vmbench}/bin/vmbench image build \
              --kernel ${guestKernel}/${pkgs.stdenv.hostPlatform.linux-kernel.target} \
              --module ${guestModule}/lib/modules/${guestKernel.modDirVersion}/extra/vmbench.ko \
              --agent ${vmbench}/bin/vmbench-agent \
              --busybox ${guestBusybox}/bin/busybox \
              --out $out
            # vmbench-image-build: end
          '';

          # KVM-only QEMU for this host's CPU; ships ivshmem-server and isa-debugcon.
          qemu = pkgs.qemu_kvm;

          # `nix run .#bench -- ARGS` = `vmbench run ARGS` with this flake's
          # QEMU, guest image, micro-guest and ssh-keygen.
          bench = pkgs.writeShellApplication {
            name = "vmbench-bench";
            text = ''
              export VMBENCH_QEMU=${qemu}/bin/qemu-system-x86_64
              export VMBENCH_GUEST_IMAGE=${guest-image}
              export VMBENCH_MICRO_ELF=${microguest}/bin/vmbench-microguest
              export VMBENCH_SSH_KEYGEN=${pkgs.openssh}/bin/ssh-keygen
              exec ${vmbench}/bin/vmbench run "$@"
            '';
          };
        in
        {
          inherit
            vmbench
            guest-image
            microguest
            qemu
            bench
            ;
          default = vmbench;
        }
      );

      # A module that imports the file: the module system still names
      # host-tuning/module.nix in errors, and `nix flake check` of every Nix
      # version accepts it (Nix before the checkModule rewrite rejects a
      # bare path: "module must be a function or an attribute set").
      nixosModules.host-tuning = {
        imports = [ ./host-tuning/module.nix ];
      };

      apps = forAllSystems (
        pkgs:
        let
          p = self.packages.${pkgs.stdenv.hostPlatform.system};
        in
        {
          default = {
            type = "app";
            program = "${p.vmbench}/bin/vmbench";
            meta.description = "vmbench, any command";
          };
          bench = {
            type = "app";
            program = "${p.bench}/bin/vmbench-bench";
            meta.description = "vmbench run with the flake's QEMU, guest image and micro-guest";
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
          # Library tests only: the sandbox has no QEMU, /dev/kvm or guest
          # kernel. CI runs the same tests in bwrap the way this check runs
          # them (crates/cli/tests/nix_sandbox.rs).
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
            # --target as cargoBuildHook gives it: RUSTFLAGS (crt-static)
            # then reaches only the target's crates; without it rustc refuses
            # to build the proc-macros ("cannot produce proc-macro ... does
            # not support these crate types").
            # Only the correctness and suspicious groups fail this check: the
            # pin's clippy is older than the one CI gates on with
            # `-D warnings`, and style lints come and go between releases,
            # so a lint one version adds must not fail the other's build.
            buildPhase = ''
              runHook preBuild
              cargo clippy --offline --target ${pkgs.stdenv.hostPlatform.rust.rustcTargetSpec} --workspace --all-targets -- -D clippy::correctness -D clippy::suspicious
              runHook postBuild
            '';
            installPhase = "touch $out";
            # $out is a file: nothing to strip, patch or move.
            dontFixup = true;
            doCheck = false;
          });
          nix-format = pkgs.runCommand "nixfmt-check" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
            nixfmt --check ${./flake.nix} ${./kmod/default.nix} ${./host-tuning/module.nix}
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

      # nixfmt over every .nix file of the tree (plain nixfmt reads stdin).
      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
