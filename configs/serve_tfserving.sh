#!/usr/bin/env bash
# Serve the demo export with the real TensorFlow Serving (Docker), as `make serve-tfserving` does.
#
# Prints the exact `docker run` command, then runs it only if a Docker engine answers
# `docker info`; without one it exits 0 after the note, so the command can be copied elsewhere.
# The export must exist first (`make demo` writes build/demo/models/mnist/<version>/).
#
# Overridable for other setups (and tests): TFS_IMAGE, MODEL_DIR, CONFIG_DIR, DOCKER.
set -euo pipefail

# Pinned to the newest TF Serving release tag (2.20.0; `git ls-remote --tags
# https://github.com/tensorflow/serving` lists them). `make compat` runs every export on the
# TF runtimes 2.14-2.21; SignatureDef `defaults` (the optional `target_class` of `explain`)
# need TF Serving >= 2.14.0. See README "Production".
TFS_IMAGE="${TFS_IMAGE:-tensorflow/serving:2.20.0}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
MODEL_DIR="${MODEL_DIR:-$PWD/build/demo/models/mnist}"
CONFIG_DIR="${CONFIG_DIR:-$PWD/configs}"
DOCKER="${DOCKER:-docker}"

# TF_ENABLE_ONEDNN_OPTS=1: TF's oneDNN kernels, compiled into tensorflow_model_server
# (tensorflow/serving .bazelrc: build --define=build_with_onednn_v2=true) and read by TF when
# its library loads; CPUs without AVX512-VNNI/AMX get them off otherwise. Explain's input
# gradients (Conv2DBackpropInput) are ~10x faster with them; the bundled server, the exporter's
# verification and `make bench` run with the same default. See README "Production".
TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-1}"

command=(
  "$DOCKER" run --rm -p 8500:8500 -p 8501:8501
  --mount "type=bind,source=$MODEL_DIR,target=/models/mnist"
  --mount "type=bind,source=$CONFIG_DIR,target=/configs"
  -e "TF_ENABLE_ONEDNN_OPTS=$TF_ENABLE_ONEDNN_OPTS"
  "$TFS_IMAGE"
  --model_config_file=/configs/models.config
  --enable_batching=true
  --batching_parameters_file=/configs/batching.config
  --monitoring_config_file=/configs/monitoring.config
)

# One copy-pasteable line; only arguments with shell-special characters get quoted.
quoted=()
for arg in "${command[@]}"; do
  if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then quoted+=("$arg"); else quoted+=("$(printf '%q' "$arg")"); fi
done
echo "TensorFlow Serving command:"
echo "  ${quoted[*]}"

# TF Serving loads only integer-named version directories that hold a saved_model.pb.
shopt -s nullglob
versions=()
for candidate in "$MODEL_DIR"/*/saved_model.pb; do
  version="$(basename "$(dirname "$candidate")")"
  [[ "$version" =~ ^[0-9]+$ ]] && versions+=("$version")
done
if (( ${#versions[@]} == 0 )); then
  echo "No export found: expected $MODEL_DIR/<integer version>/saved_model.pb." >&2
  echo "Run \`make demo\` first; it trains (cached) and exports the demo model there." >&2
  exit 1
fi
echo "Export versions found in $MODEL_DIR: ${versions[*]} (TF Serving serves the newest)."

if ! command -v "$DOCKER" >/dev/null 2>&1 || ! "$DOCKER" info >/dev/null 2>&1; then
  echo "Note: no Docker engine answered \`$DOCKER info\`, so nothing was started."
  echo "Run the command above on a machine with Docker; then: gRPC on :8500, REST on :8501,"
  echo "  curl localhost:8501/v1/models/mnist   (model status)"
  echo "  curl localhost:8501/monitoring/prometheus/metrics"
  exit 0
fi

echo "Starting TensorFlow Serving (Ctrl-C stops it) ..."
exec "${command[@]}"
