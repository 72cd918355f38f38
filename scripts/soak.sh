#!/usr/bin/env bash
# Soak test (issue 11), run by hand: like load.sh, but reads (32 connections) and writes (8 connections)
# at the same time for SOAK_SECONDS (default 600), sampling the server's resident memory every 30 s. A
# server that keeps its memory flat under mixed traffic for ten minutes passes.
#
#   scripts/soak.sh [postgres-url]
set -euo pipefail
export LOAD_SECONDS="${SOAK_SECONDS:-600}" LOAD_MODE=soak
exec "$(dirname "$0")/load.sh" "$@"
