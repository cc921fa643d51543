#!/usr/bin/env bash
# Installs the Debian packages the skill needs ("run") or its tests need too ("test").
# Uses apt-get as root, or sudo without a password; otherwise says what is missing and
# carries on (the skill still coaches in text without a speech engine).
set -euo pipefail

run_pkgs=(espeak-ng libespeak-ng1 libportaudio2 alsa-utils libasound2-plugins)
test_pkgs=(flite sox pulseaudio pulseaudio-utils)
# more voices and everyday text for training and measuring the trigger spotter
train_pkgs=(festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts fortunes)

want=("${run_pkgs[@]}")
if [[ "${1:-run}" == "test" ]]; then
    want+=("${test_pkgs[@]}")
elif [[ "${1:-run}" == "train" ]]; then
    want+=("${test_pkgs[@]}" "${train_pkgs[@]}")
fi

missing=()
for pkg in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "voice-skill: please install these packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 0
fi

echo "voice-skill: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >/dev/null
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
