#!/usr/bin/env bash
# Install everything tinyhil needs on Debian 12 (system packages + Python venv), then optionally run the main job.
#   bash scripts/setup.sh          # install only
#   bash scripts/setup.sh --run    # install, then `tinyhil run` (closed loop on the default emulated board)
# Idempotent: re-running skips what is already there. Nothing is downloaded at run time afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=0
for a in "$@"; do case "$a" in --run) RUN=1 ;; *) echo "unknown option $a" >&2; exit 2 ;; esac; done

DEB_PKGS=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm dataset-fashion-mnist python3-venv python3-pip gcc llvm)
missing=()
for p in "${DEB_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "[setup] installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
# Reinstall only when the dependency list changed.
stamp=.venv/.tinyhil-deps
want=$(sha1sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing Python packages (torch==2.13.0 CPU build and the rest from PyPI)"
  .venv/bin/python -m pip install -q --upgrade pip
  # The CPU build of torch: take it from the PyTorch CPU index when that is reachable, else from PyPI/local wheels.
  if [ -n "${TINYHIL_TORCH_INDEX:-}" ]; then
    .venv/bin/python -m pip install -q torch==2.13.0 --index-url "$TINYHIL_TORCH_INDEX"
  fi
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

# PlatformIO builds offline through the project's local platform; its scons package is prepared from PyPI's scons.
.venv/bin/python -c "from harness.build.pio_core import ensure_pio_core; print('[setup] PlatformIO core:', ensure_pio_core())"
# The QEMU timing plugin of timer=qemu-cycles (C, host gcc; rebuilt on demand when its sources change).
.venv/bin/python -c "from harness.timing.plugin import plugin_path; print(plugin_path())" | sed 's/^/[setup] timing plugin: /'
echo "[setup] done: run '. .venv/bin/activate' to get the tinyhil command"

if ((RUN)); then
  exec .venv/bin/tinyhil run
fi
