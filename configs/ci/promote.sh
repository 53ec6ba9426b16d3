#!/usr/bin/env bash
# The promotion gate, one step per call: export → verify → diff → publish (docs/ci.md).
#
#   bash configs/ci/promote.sh export|verify|diff|publish
#
# Both CI recipes (github-actions.yml, gitlab-ci.yml) run these steps, so the logic has one
# home and a run on a laptop is the run in CI. Each step writes its JSON summary to
# $ARTIFACTS and exits non-zero when its check fails, which stops the pipeline.
#
# Settings (environment):
#   MODEL            the .keras model (or SavedModel directory) to export      (required)
#   MODEL_BASE_PATH  the serving model's base path (TF Serving --model_base_path) (required)
#   CANDIDATE        where the candidate version is written    (default build/candidate)
#   ARTIFACTS        where the JSON summaries go                (default build/ci)
#   EXPORT_FLAGS     extra saliency-export flags, e.g. "--config configs/export.toml"
#   RUNTIMES         older TF runtimes for verify, e.g. "2.14,2.20" (needs `make compat`)
#   DIFF_FLAGS       extra diff flags, e.g. "--images refs.npy --min-agreement 0.99"
#   SALIENCY_EXPORT  the command (default: saliency-export)
set -euo pipefail

step="${1:?usage: promote.sh export|verify|diff|publish}"
: "${MODEL_BASE_PATH:?set MODEL_BASE_PATH to the serving model base path}"
CANDIDATE="${CANDIDATE:-build/candidate}"
ARTIFACTS="${ARTIFACTS:-build/ci}"
SALIENCY_EXPORT="${SALIENCY_EXPORT:-saliency-export}"
mkdir -p "$ARTIFACTS"

# The newest numeric version under a base path (what TF Serving's latest policy serves), or "".
latest() {
  [ -d "$1" ] || return 0
  find "$1" -mindepth 1 -maxdepth 1 -type d -regex '.*/[0-9]+' -printf '%f\n' | sort -n | tail -1
}

candidate_path() {
  if [ ! -s "$ARTIFACTS/candidate" ]; then
    echo "promote.sh: no candidate recorded in $ARTIFACTS/candidate; run the export step first" >&2
    exit 1
  fi
  cat "$ARTIFACTS/candidate"
}

case "$step" in
  export)
    : "${MODEL:?set MODEL to the model file to export}"
    serving="$(latest "$MODEL_BASE_PATH")"
    version=$(( ${serving:-0} + 1 ))
    # shellcheck disable=SC2086  # EXPORT_FLAGS is a list of flags
    "$SALIENCY_EXPORT" --model "$MODEL" --output "$CANDIDATE" --version "$version" \
      --report "$ARTIFACTS/export_report.json" -q ${EXPORT_FLAGS:-} | tail -1 > "$ARTIFACTS/candidate"
    echo "exported candidate version $version: $(cat "$ARTIFACTS/candidate")"
    ;;
  verify)
    "$SALIENCY_EXPORT" verify "$(candidate_path)" --output "$ARTIFACTS/verify.json" -q \
      ${RUNTIMES:+--runtimes "$RUNTIMES"}
    ;;
  diff)
    serving="$(latest "$MODEL_BASE_PATH")"
    if [ -z "$serving" ]; then
      echo '{"command": "diff", "passed": true, "skipped": "no serving version yet"}' | tee "$ARTIFACTS/diff.json"
      exit 0
    fi
    # shellcheck disable=SC2086  # DIFF_FLAGS is a list of flags
    "$SALIENCY_EXPORT" diff "$MODEL_BASE_PATH/$serving" "$(candidate_path)" \
      --output "$ARTIFACTS/diff.json" -q ${DIFF_FLAGS:-}
    ;;
  publish)
    source_dir="$(candidate_path)"
    version="$(basename "$source_dir")"
    target="$MODEL_BASE_PATH/$version"
    if [ -e "$target" ]; then
      echo "promote.sh: $target exists; versions are never overwritten (re-run the pipeline)" >&2
      exit 1
    fi
    mkdir -p "$MODEL_BASE_PATH"
    # Copy under a hidden, non-numeric name (TF Serving ignores it), check the copy, then
    # rename: on one filesystem the server sees the whole version or nothing.
    staging="$MODEL_BASE_PATH/.publish-$version"
    rm -rf "$staging"
    cp -R "$source_dir" "$staging"
    if ! "$SALIENCY_EXPORT" verify "$staging" --output "$ARTIFACTS/verify_published.json" -q; then
      echo "promote.sh: the copy in $staging does not verify; not published" >&2
      exit 1
    fi
    mv "$staging" "$target"
    echo "published $target"
    ;;
  *)
    echo "promote.sh: unknown step '$step'; expected export, verify, diff or publish" >&2
    exit 2
    ;;
esac
