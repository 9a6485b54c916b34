#!/usr/bin/env bash
# Install what shorts_pipeline needs and is missing: ffmpeg, espeak-ng, fonts (Hangul and
# emoji), uv, and the project's virtual environment. Safe to run again: it skips what is there.
# `scripts/bootstrap.sh test` also installs what only the test suite uses: a PostgreSQL server
# (the Dagster instance and catalog on PostgreSQL) and Chromium with its driver (the browser test).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

missing_system_packages() {
  local missing=()
  command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
  command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  command -v fc-list >/dev/null 2>&1 || missing+=(fontconfig)
  if command -v fc-list >/dev/null 2>&1; then
    fc-list | grep -qi 'NanumGothic' || missing+=(fonts-nanum)
    fc-list | grep -qi 'DejaVuSans-Bold' || missing+=(fonts-dejavu-core)
    fc-list | grep -qi 'NotoColorEmoji' || missing+=(fonts-noto-color-emoji)
  else
    missing+=(fonts-nanum fonts-dejavu-core fonts-noto-color-emoji)
  fi
  if [ "${BOOTSTRAP_MODE:-}" = test ]; then
    postgres_bin >/dev/null || missing+=(postgresql)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  fi
  printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' '
}

# The PostgreSQL server binaries (Debian keeps them out of PATH, under /usr/lib/postgresql/N/bin).
postgres_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  return 1
}

install_system_packages() {
  local pkgs
  pkgs=$(missing_system_packages)
  if [ -z "${pkgs// /}" ]; then
    say "system packages: ffmpeg, espeak-ng and fonts are present"
    return
  fi
  case "$(uname -s)" in
    Darwin)
      if command -v brew >/dev/null 2>&1; then
        say "installing with Homebrew: ffmpeg espeak-ng fonts"
        brew install ffmpeg espeak-ng fontconfig
        brew install --cask font-nanum-gothic font-noto-color-emoji font-dejavu || true
      else
        say "missing: $pkgs. Install Homebrew (https://brew.sh), then: brew install ffmpeg espeak-ng && brew install --cask font-nanum-gothic font-noto-color-emoji font-dejavu"
        exit 1
      fi
      ;;
    Linux)
      if ! command -v apt-get >/dev/null 2>&1; then
        say "missing: $pkgs. This script installs them with apt-get (Debian/Ubuntu); on other systems install ffmpeg, espeak-ng, Nanum Gothic, DejaVu Sans and Noto Color Emoji with your package manager, then run this again."
        exit 1
      fi
      local sudo=""
      if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
          sudo="sudo"
        else
          say "missing: $pkgs. Run as root or with sudo: sudo apt-get update && sudo apt-get install -y $pkgs"
          exit 1
        fi
      fi
      say "installing with apt-get: $pkgs"
      $sudo apt-get update -qq
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
      command -v fc-cache >/dev/null 2>&1 && fc-cache -f >/dev/null 2>&1 || true
      ;;
    *)
      say "unsupported system $(uname -s): install ffmpeg, espeak-ng and the fonts by hand"
      exit 1
      ;;
  esac
}

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then return; fi
  if [ -x "$HOME/.local/bin/uv" ]; then export PATH="$HOME/.local/bin:$PATH"; return; fi
  say "installing uv (Python package manager) with pip"
  local py
  py=$(command -v python3.11 || command -v python3 || true)
  if [ -z "$py" ]; then
    say "no python3 found: install Python 3.11 (Debian: apt-get install python3; macOS: brew install python@3.11)"
    exit 1
  fi
  "$py" -m pip install --quiet --user uv 2>/dev/null || "$py" -m pip install --quiet uv \
    || "$py" -m pip install --quiet --break-system-packages uv
  export PATH="$HOME/.local/bin:$PATH"
  command -v uv >/dev/null 2>&1 || { say "uv was installed but is not on PATH; add ~/.local/bin to PATH"; exit 1; }
}

BOOTSTRAP_MODE="${1:-}"
install_system_packages
ensure_uv
say "python environment: uv sync --frozen --compile-bytecode ${UV_SYNC_ARGS:-}"
# Bytecode compiled once at install: where PYTHONDONTWRITEBYTECODE is set (CI images often do),
# every `shorts` or `dagster` process would otherwise compile Dagster again (import 9.6 s -> 4.5 s).
# shellcheck disable=SC2086
uv sync --frozen --python 3.11 --compile-bytecode ${UV_SYNC_ARGS:-} >&2
