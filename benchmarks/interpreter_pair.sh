#!/usr/bin/env bash
# One tool's year under two Python interpreters at once (one per core), user CPU compared.
#
#   benchmarks/interpreter_pair.sh qt|nt|ft [ROUNDS]
#
# Set up beside the usual ones (docs/BENCHMARKS.md, "Twentieth pass"):
#   OTHER_VENV        a venv of this project on the other interpreter, e.g.
#                     /usr/bin/python3.11 -m venv /tmp/other && /tmp/other/bin/pip install -e .
#   ANCHORBENCH_HOME  the anchor benchmark set up with the first interpreter (default
#                     /tmp/anchorbench), OTHER_ANCHORBENCH the one set up with the other
#                     (ANCHORBENCH_HOME=… ANCHORBENCH_PYTHON=… ../shared/anchorbench/setup.sh).
# Both runs of a round start together, so a busy machine slows both; the rounds alternate
# which starts first. Prints each round's user CPU and other ÷ first.
set -euo pipefail

TOOL=${1:?qt, nt or ft}
ROUNDS=${2:-2}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIRST_VENV=${FIRST_VENV:-$ROOT/.venv}
OTHER_VENV=${OTHER_VENV:?a venv of this project on the other interpreter}
FIRST_AB=${ANCHORBENCH_HOME:-/tmp/anchorbench}
OTHER_AB=${OTHER_ANCHORBENCH:-/tmp/anchorbench-other}
DATA=${QT_MARKET__REPLAY_DIR:-$ROOT/../shared/data/binance/futures}
OUT=$(mktemp -d)

run() {  # run LABEL VENV ANCHORBENCH_HOME
  local label=$1 venv=$2 home=$3
  local time="/usr/bin/time -f %U -o $OUT/$label.time"
  case $TOOL in
    qt) local data_dir; data_dir=$(mktemp -d)
        (cd "$ROOT" && PYTHONPATH=$ROOT QT_DATA_DIR=$data_dir QT_MARKET__REPLAY_DIR=$DATA \
          QT_SIGNALS__SOURCE=rules QT_BACKTEST__OPERATOR_RESET_AFTER=86400 \
          $time "$venv/bin/quantum-trader" backtest --start 2025-01-01 --end 2026-01-01 \
          --out "$data_dir/out") ;;
    nt) (cd "$home/nt" && $time ../nt-venv/bin/python -W ignore::DeprecationWarning nt_bench.py \
          --out "$OUT/$label-nt.json") ;;
    ft) (cd "$home/ft" && $time ../ft-venv/bin/python ft_offline.py backtesting -c config.json \
          --timerange 20250101-20251231 --cache none --export trades \
          --backtest-directory "$OUT/$label-ft") ;;
    *) echo "qt, nt or ft, not $TOOL" >&2; exit 2 ;;
  esac > "$OUT/$label.log" 2>&1
}

for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then
    run first "$FIRST_VENV" "$FIRST_AB" & run other "$OTHER_VENV" "$OTHER_AB" &
  else
    run other "$OTHER_VENV" "$OTHER_AB" & run first "$FIRST_VENV" "$FIRST_AB" &
  fi
  wait
  first=$(cat "$OUT/first.time") other=$(cat "$OUT/other.time")
  python3 -c "print(f'$TOOL round $round: first {$first:.2f} s, other {$other:.2f} s user CPU, other / first {$other / $first:.3f}')"
done
echo "logs: $OUT"
