#!/usr/bin/env bash
# Install into a throwaway venv per extra interpreter and run start -> ping -> stop.
set -euo pipefail
repo=$(pwd)
root=$(command -v pyenv >/dev/null && pyenv root || echo "$HOME/.pyenv")
main_ver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for py in "$root"/versions/*/bin/python; do
  [ -x "$py" ] || continue
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || continue
  [ "$ver" = "$main_ver" ] && continue
  echo "== smoke test on Python $ver ($py)"
  work=$(mktemp -d /tmp/aiwg-smoke.XXXX)
  "$py" -m venv "$work/venv"
  "$work/venv/bin/pip" install -q "$repo"
  mkdir "$work/proj"
  "$work/venv/bin/aiwg" --root "$work/proj" start
  "$work/venv/bin/aiwg" --root "$work/proj" ping
  "$work/venv/bin/aiwg" --root "$work/proj" stop
  rm -rf "$work"
done
echo "smoke: ok"
