#!/usr/bin/env bash
# Builds two signed flat APT repositories (the layout of NVIDIA's CUDA and container
# toolkit repositories) from the Packages files beside this script, signed with a
# throwaway key made here: the role then runs its real path (fingerprint-pinned key,
# Signed-By sources, apt update, version pick, pin, apt --simulate) without NVIDIA's
# servers. Usage: build-fake-repos.sh OUT_DIR  (writes OUT_DIR/key.asc, key.fpr, srv/).
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
export GNUPGHOME="$out/gnupg"
mkdir -p "$GNUPGHOME"
chmod 700 "$GNUPGHOME"
gpg_batch=(gpg --batch --quiet --pinentry-mode loopback --passphrase '')
if [[ ! -s "$out/key.fpr" ]]; then
  "${gpg_batch[@]}" --quick-gen-key \
    'llmhost Molecule fake repositories (tests only) <molecule@llmhost.invalid>' ed25519 sign 2d
  gpg --armor --export >"$out/key.asc"
  gpg --with-colons --list-keys | awk -F: '/^fpr/ {print $10; exit}' >"$out/key.fpr"
fi

build() {  # build DIR PACKAGES LABEL
  local dir=$1 packages=$2 label=$3 f
  mkdir -p "$dir"
  cp "$packages" "$dir/Packages"
  gzip -9nkf "$dir/Packages"
  {
    echo "Origin: llmhost-molecule"
    echo "Label: $label"
    echo "Date: $(LC_ALL=C date -Ru)"
    echo "SHA256:"
    for f in Packages Packages.gz; do
      printf ' %s %s %s\n' "$(sha256sum "$dir/$f" | cut -d' ' -f1)" "$(stat -c %s "$dir/$f")" "$f"
    done
  } >"$dir/Release"
  rm -f "$dir/InRelease"
  "${gpg_batch[@]}" --yes --clearsign -o "$dir/InRelease" "$dir/Release"
}

build "$out/srv/llmhost-fake-cuda/debian12/x86_64" "$here/fake-cuda-Packages" "fake NVIDIA CUDA"
build "$out/srv/llmhost-fake-ctk/amd64" "$here/fake-ctk-Packages" "fake libnvidia-container"
