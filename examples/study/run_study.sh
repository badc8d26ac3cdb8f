#!/usr/bin/env bash
# The tuning study of docs/results.md, resumable: for each dataset and variant, an Optuna study
# (TPE, pruned on valid MRR) with the same number of trials and the same per-trial budget, then
# the best configuration retrained with several seeds at a longer budget, then one table.
#
#   ROOT=DIR bash examples/study/run_study.sh            # everything, one process
#   ROOT=DIR DATASETS=MKG-Y VARIANTS=native,mean bash examples/study/run_study.sh
#   ROOT=DIR DATASETS=DB15K TUNE_ARGS=--remove-leakage bash examples/study/run_study.sh
#
# Rerun it after an interruption: finished trials and runs are kept, a killed run resumes.
# Several copies may run at once on one study (e.g. one per GPU process): trials are shared
# through each study's SQLite file, and a copy's tune returns only once every trial has ended,
# so its best.yaml is the study's. Retrain one seed per copy (SEEDS=0, SEEDS=1, ...): two
# copies on one run folder stop at its lock.
set -euo pipefail
ROOT=${ROOT:?set ROOT to the dataset root (ROOT/<name>/raw holds the WildKGC files)}
OUT=${OUT:-runs/study}
DATASETS=${DATASETS:-MKG-Y,DB15K}
VARIANTS=${VARIANTS:-native,native-no-comat,adamf,mean,rotate}
TRIALS=${TRIALS:-30}          # finished trials per study
EPOCHS=${EPOCHS:-30}          # per-trial budget
EVAL_EVERY=${EVAL_EVERY:-10}  # validation and pruning
SEEDS=${SEEDS:-0,1,2}         # retraining seeds
LONG=${LONG:-200}             # retraining epochs (model selected on valid)
STAGE=${STAGE:-all}           # all | tune | retrain | table
TEXT=${TEXT-names}            # --text-features (empty: none, e.g. for the synthetic default)
NP=${NP:-native-pyg}
SPACES=${SPACES:-}            # a folder of search spaces: VARIANT.yaml, else shared.yaml (empty: built-ins)
TUNE_ARGS=${TUNE_ARGS:-}      # more options of tune, e.g. --remove-leakage (DB15K: most valid rows are train rows)

for dataset in ${DATASETS//,/ }; do
  for variant in ${VARIANTS//,/ }; do
    study=$OUT/$dataset/$variant
    space=()
    if [[ -n $SPACES ]]; then
      file=$SPACES/$variant.yaml; [[ -f $file ]] || file=$SPACES/shared.yaml
      space=(--space "$file")
    fi
    if [[ $STAGE == all || $STAGE == tune ]]; then
      # shellcheck disable=SC2086  # TUNE_ARGS holds several options
      $NP tune "${space[@]}" $TUNE_ARGS --dataset "$dataset" --root "$ROOT" ${TEXT:+--text-features "$TEXT"} --variant "$variant" \
        --trials "$TRIALS" --epochs "$EPOCHS" --eval-every "$EVAL_EVERY" --quiet --out "$study"
    fi
    if [[ $STAGE == all || $STAGE == retrain ]]; then
      for seed in ${SEEDS//,/ }; do
        run=$study/retrain-seed$seed
        [[ -f $run/metrics.json ]] && continue
        resume=(); [[ -f $run/last.pt ]] && resume=(--resume)
        $NP train --config "$study/best.yaml" --root "$ROOT" --epochs "$LONG" \
          --set training.seed="$seed" --set training.eval_every="$EVAL_EVERY" \
          --set training.progress=false --quiet --out "$run" "${resume[@]}"
      done
    fi
  done
done
if [[ $STAGE == all || $STAGE == table ]]; then
  python "$(dirname "$0")/table.py" "$OUT"
fi
