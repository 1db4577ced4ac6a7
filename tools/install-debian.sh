#!/usr/bin/env bash
# Install the Debian packages the local environment needs (Alertmanager; ssh-keygen for signed
# approvals; Chromium, which the service desk's browser tests drive), once.
set -euo pipefail
packages=(prometheus-alertmanager git openssh-client chromium fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "[tools] installing Debian packages: ${missing[*]}" >&2
sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package enables a system service on its default port; the environment runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus-alertmanager 2>/dev/null; then
  $sudo systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
fi
