#!/usr/bin/env bash
# GPU check: the one-GPU profile (profiles/gpu1.yaml) end to end, timed, plus the throughput and
# MFU of the GPT2-125M proxy. Installs nothing from the network.
#
#   bench/gpu_check.sh [OUT_DIR] [options]     results folder: OUT_DIR, else $OUT
#     --wheels DIR      pip install these wheels first (--no-index, into a private folder): for a
#                       machine whose Python lacks some of the project's packages (dvc, datasets, ...)
#     --archives DIR    the corpus archives of proxyrank/data/sources.yaml (default: data/raw of this
#                       checkout); the fetch stage checks each SHA-256 and downloads nothing present
#     --compile         also measure the proxy's throughput under torch.compile
#     --profile FILE    another params file for the study (default profiles/gpu1.yaml)
#     --skip-study, --skip-throughput
#     --no-dvc          run the study's stage commands directly, in dvc.yaml's order (no DVC there)
#     --dry-run         print the commands and stop (needs no GPU)
#     --allow-cpu       go on without a GPU (checks the flow, e.g. with --profile profiles/smoke.yaml)
# Writes gpu_check.md and gpu_check.json (the GPU as nvidia-smi names it, study wall time, MFU per
# role, Spearman standard vs tiny), throughput*.json, nvidia-smi.txt, study.log, and the study's
# report.md and metrics.json.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "gpu_check: $*" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT_DIR=${OUT:-}
WHEELS=""
ARCHIVES="$REPO/data/raw"
PROFILE="$REPO/profiles/gpu1.yaml"
COMPILE=0 STUDY=1 THROUGHPUT=1 USE_DVC=1 DRY=0 ALLOW_CPU=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ $# -ge 2 ] || die "--wheels needs a folder"; WHEELS=$2; shift 2 ;;
    --archives) [ $# -ge 2 ] || die "--archives needs a folder"; ARCHIVES=$2; shift 2 ;;
    --compile) COMPILE=1; shift ;;
    --profile) [ $# -ge 2 ] || die "--profile needs a params file"; PROFILE=$(realpath -m "$2"); shift 2 ;;
    --allow-cpu) ALLOW_CPU=1; shift ;;
    --skip-study) STUDY=0; shift ;;
    --skip-throughput) THROUGHPUT=0; shift ;;
    --no-dvc) USE_DVC=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) OUT_DIR=$1; shift ;;
  esac
done
[ -n "$OUT_DIR" ] || { usage >&2; die "name the results folder (first argument, or \$OUT)"; }
[ -z "$WHEELS" ] || [ -d "$WHEELS" ] || die "--wheels $WHEELS: no such folder"
[ -f "$PROFILE" ] || die "--profile $PROFILE: no such params file"
if [ "$STUDY" = 1 ] && [ "$DRY" = 0 ] && [ ! -d "$ARCHIVES" ]; then
  die "--archives $ARCHIVES: no such folder; the study's corpus comes from the pinned archives (run \`dvc repro fetch\` or \`dvc pull fetch\` where the network is, and carry data/raw)"
fi
PY=${PYTHON:-}
[ -n "$PY" ] || { [ -x "$REPO/.venv/bin/python" ] && PY="$REPO/.venv/bin/python"; } || PY=python3
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

run() {  # echo a command; run it unless --dry-run
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}
logged() {  # run a command of the study with its output appended to study.log
  echo "+ $* >> study.log"
  [ "$DRY" = 1 ] || "$@" >> "$OUT_DIR/study.log" 2>&1 \
    || { echo "gpu_check: \`$*\` failed; the end of $OUT_DIR/study.log:" >&2; tail -30 "$OUT_DIR/study.log" >&2; exit 1; }
}

# scratch space, removed at exit: the study copy, a `python` for the stages' commands (whatever the
# machine calls this Python), and wheels installed with --wheels
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/bin"
PY=$(command -v "$PY") || die "no Python at $PY (set PYTHON)"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PY" > "$TMP/bin/python"
chmod +x "$TMP/bin/python"
export PATH="$TMP/bin:$(dirname "$PY"):$PATH" PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1 \
  PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$WHEELS" ]; then
  SITE="$TMP/site"
  run "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE:$PYTHONPATH" PATH="$SITE/bin:$PATH"
fi

GPU="(dry run)"
[ "$ALLOW_CPU" = 0 ] || GPU="(none: --allow-cpu)"
if [ "$DRY" = 0 ] && [ "$ALLOW_CPU" = 0 ]; then
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this check needs an NVIDIA GPU"
  nvidia-smi > "$OUT_DIR/nvidia-smi.txt"
  GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || die "torch (from $PY) sees no CUDA device"
fi
echo "gpu_check: $GPU; python $PY; results in $OUT_DIR"

if [ "$THROUGHPUT" = 1 ]; then
  run "$PY" "$REPO/bench/gpu_check.py" throughput --out "$OUT_DIR" --device cuda
  [ "$COMPILE" = 0 ] || run "$PY" "$REPO/bench/gpu_check.py" throughput --out "$OUT_DIR" --device cuda --compile
fi

STUDY_ARGS=()
if [ "$STUDY" = 1 ]; then
  S="$TMP/study"
  echo "+ study copy in $S with ${PROFILE#"$REPO"/} as params.yaml, archives from $ARCHIVES"
  if [ "$DRY" = 0 ]; then
    mkdir -p "$S/.dvc" "$S/data/raw"
    cp -r "$REPO/proxyrank" "$REPO/stages" "$REPO/profiles" "$REPO/dvc.yaml" "$REPO/.dvcignore" "$REPO/.gitignore" "$S/"
    cp "$REPO/.dvc/config" "$S/.dvc/config"
    if grep -q '^overrides:' "$PROFILE"; then  # a profile: its base with its overrides
      (cd "$REPO" && "$PY" -m proxyrank profile "$PROFILE" --out "$S/params.yaml")
    else
      cp "$PROFILE" "$S/params.yaml"
    fi
    find "$ARCHIVES" -maxdepth 1 -type f -exec cp {} "$S/data/raw/" \;
    (cd "$S" && git init -q && git add -A \
      && git -c user.name=gpu-check -c user.email=gpu-check@localhost commit -qm "gpu check study")
  fi
  start=$(date +%s.%N)
  [ "$DRY" = 1 ] || cd "$S"
  if [ "$USE_DVC" = 1 ]; then
    command -v dvc >/dev/null || [ "$DRY" = 1 ] || die "dvc not found: give --wheels with DVC's wheels, or --no-dvc"
    # the archives are there already: fetch verifies them, `dvc commit` records the stage, so
    # `dvc repro` does not remove them to download them again
    logged "$PY" -m stages.fetch
    logged dvc commit -f fetch
    logged dvc repro
  else
    GPU_ID=${CUDA_VISIBLE_DEVICES:-0}
    logged "$PY" -m proxyrank gpus --no-dvc --gpus "${GPU_ID%%,*}"
  fi
  end=$(date +%s.%N)
  cd "$REPO"
  if [ "$DRY" = 0 ]; then
    cp "$S/reports/report.md" "$S/reports/metrics.json" "$OUT_DIR/"
    STUDY_ARGS=(--study "$S" --profile "${PROFILE#"$REPO"/}" --wall-s "$("$PY" -c "print(round($end - $start, 1))")")
  fi
fi
run "$PY" "$REPO/bench/gpu_check.py" summarize --out "$OUT_DIR" --gpu "$GPU" ${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}
[ "$DRY" = 1 ] || cat "$OUT_DIR/gpu_check.md"
